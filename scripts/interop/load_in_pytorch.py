"""Load a selfsup backbone export in PyTorch and embed images with it.

    /usr/bin/python3 scripts/interop/load_in_pytorch.py runs/demo/export/safetensors img1.png img2.png
    /usr/bin/python3 scripts/interop/load_in_pytorch.py <export dir> --expected expected.json

The export folder holds backbone.safetensors (torchvision key names) and
manifest.json (architecture, stem, input channels, width multiplier, input size,
mean/std). The network is built from torchvision's own ResNet modules
(torchvision.models.resnet.ResNet and its _make_layer), with the stage widths
scaled when the backbone was pretrained narrower than torchvision's 64-512, so
`load_state_dict(strict=True)` checks every key and shape.

With --expected (a JSON file {"paths": [...], "features": [[...], ...]} written by
scripts/interop/check-pytorch.mjs from selfsup's own features) the script
compares and exits 1 when any feature differs by more than --tolerance.
Needs torch + torchvision + Pillow + numpy; uses the `safetensors` package when
installed, else the small reader below.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
from PIL import Image
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

BLOCKS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}


def read_safetensors(path):
    """A dict name -> tensor. The `safetensors` package when installed, else a minimal reader (F32/F16/BF16/I64)."""
    try:
        from safetensors.torch import load_file

        return load_file(path)
    except ImportError:
        pass
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[8 + n + begin : 8 + n + end]
        if info["dtype"] == "BF16":
            array = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=dtypes[info["dtype"]])
        tensors[name] = torch.from_numpy(array.reshape(info["shape"]).astype(array.dtype).copy())
    return tensors


class ScaledResNet(ResNet):
    """torchvision's ResNet with every stage width multiplied, and the small-image stem as an option.

    Module names are torchvision's (conv1, bn1, layer1.0.conv1, ..., fc), so a
    torchvision state dict loads into it unchanged."""

    def __init__(self, arch, in_channels=3, width=1.0, stem="imagenet"):
        block, layers = BLOCKS[arch]
        super().__init__(block, layers)
        base = max(1, round(64 * width))
        small = stem == "small"
        self.inplanes = base
        self.conv1 = torch.nn.Conv2d(
            in_channels, base, kernel_size=3 if small else 7, stride=1 if small else 2, padding=1 if small else 3, bias=False
        )
        self.bn1 = torch.nn.BatchNorm2d(base)
        if small:
            self.maxpool = torch.nn.Identity()
        self.layer1 = self._make_layer(block, base, layers[0])
        self.layer2 = self._make_layer(block, base * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, base * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, base * 8, layers[3], stride=2)
        self.fc = torch.nn.Identity()  # the export is a backbone: forward() returns pooled features


def load_export(folder):
    """(model in eval mode, manifest) of a selfsup export folder."""
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    model = ScaledResNet(
        manifest["architecture"], manifest["inputChannels"], manifest["widthMultiplier"], manifest["stem"]
    )
    weights = os.path.join(folder, manifest["files"].get("weights", "backbone.safetensors"))
    state = {k: v for k, v in read_safetensors(weights).items() if not k.startswith("fc.")}
    model.load_state_dict(state, strict=True)  # every key and shape must match
    return model.eval(), manifest


def preprocess(path, manifest):
    """An image file -> a [1, C, S, S] tensor: shorter side resized to S, center crop, (x/255 - mean)/std."""
    size = manifest.get("inputSize") or (32 if manifest["stem"] == "small" else 224)
    image = Image.open(path).convert("L" if manifest["inputChannels"] == 1 else "RGB")
    scale = size / min(image.size)
    if scale != 1:
        image = image.resize((max(size, round(image.size[0] * scale)), max(size, round(image.size[1] * scale))), Image.BILINEAR)
    left, top = (image.size[0] - size) // 2, (image.size[1] - size) // 2
    image = image.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    mean = torch.tensor(manifest["mean"]).view(-1, 1, 1)
    std = torch.tensor(manifest["std"]).view(-1, 1, 1)
    return ((x - mean) / std)[None]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export", help="a selfsup export folder (backbone.safetensors + manifest.json)")
    parser.add_argument("images", nargs="*", help="image files to embed")
    parser.add_argument("--expected", help="JSON {paths, features} of selfsup's features for the same images")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    model, manifest = load_export(args.export)
    expected = None
    paths = args.images
    if args.expected:
        with open(args.expected) as f:
            expected = json.load(f)
        paths = expected["paths"]
    if not paths:
        sys.exit("load_in_pytorch: give image files or --expected")
    with torch.no_grad():
        features = torch.cat([model(preprocess(p, manifest)) for p in paths])  # [N, D]
    print(
        f"{manifest['architecture']} ({manifest['stem']} stem, width {manifest['widthMultiplier']}, "
        f"{manifest['inputChannels']} channel(s)) loaded with strict=True; features {list(features.shape)}"
    )
    if expected is None:
        for p, v in zip(paths, features):
            print(f"{p}: {', '.join(f'{x:.4f}' for x in v[:6].tolist())} ...")
        return
    difference = (features - torch.tensor(expected["features"])).abs().max().item()
    print(f"max |PyTorch - selfsup| = {difference:.3g} (tolerance {args.tolerance})")
    if difference > args.tolerance:
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
