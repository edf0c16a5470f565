"""Loads a selfsup-written backbone into torchvision and runs it.

    /usr/bin/python3 scripts/torch/load_check.py <backbone dir | file.safetensors> [--expected expected.safetensors]

The weights load into torchvision's own ResNet with
`model.load_state_dict(state, strict=False)`: a backbone has no `fc`, so the only
keys reported missing must be `fc.weight` and `fc.bias`. With `--expected`
(written by scripts/torch/write-check-export.mjs: an input and the features
selfsup computed for it), the torchvision features are compared with selfsup's.
Uses the `safetensors` package when importable, else a small reader below.
Exit code 0 when everything matches.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torchvision


def read_safetensors(path):
    """(tensors, metadata). The `safetensors` package when available, else a minimal reader."""
    try:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    except ImportError:
        pass
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[8 + n + begin : 8 + n + end]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=dtypes[info["dtype"]])
        tensors[name] = torch.from_numpy(array.reshape(info["shape"]).copy())
    return tensors, metadata


def build_model(metadata):
    arch = metadata.get("arch", "resnet18")
    stem = metadata.get("stem", "imagenet")
    channels = int(metadata.get("input_channels", "3"))
    if float(metadata.get("width_multiplier", "1")) != 1:
        sys.exit("load_check: torchvision ResNets have width 64-512; this export uses width_multiplier != 1")
    model = getattr(torchvision.models, arch)(weights=None)
    if stem == "small":
        model.conv1 = torch.nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = torch.nn.Identity()
    elif channels != 3:
        model.conv1 = torch.nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def features_of(model, x):
    m = model
    h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    h = m.layer4(m.layer3(m.layer2(m.layer1(h))))
    return torch.flatten(m.avgpool(h), 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("path", help="a backbone directory or a .safetensors file written by selfsup")
    parser.add_argument("--expected", help="safetensors with `input` (NCHW) and `features` computed by selfsup")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    path = os.path.join(args.path, "backbone.safetensors") if os.path.isdir(args.path) else args.path
    tensors, metadata = read_safetensors(path)
    print(f"read {len(tensors)} tensors from {path}; metadata: {json.dumps(metadata)}")
    model = build_model(metadata)
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    result = model.load_state_dict(state, strict=False)
    print("missing keys:", result.missing_keys)
    print("unexpected keys:", result.unexpected_keys)
    ok = set(result.missing_keys) <= {"fc.weight", "fc.bias"} and not result.unexpected_keys
    model.eval()
    size = int(metadata.get("input_size") or 32)
    channels = int(metadata.get("input_channels", "3"))
    if args.expected:
        expected, _ = read_safetensors(args.expected)
        x = expected["input"].float()
    else:
        x = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = features_of(model, x)
    print(f"torchvision {metadata.get('arch')} ran: input {list(x.shape)} -> features {list(features.shape)}, "
          f"mean {features.mean():.4f}, std {features.std():.4f}")
    if args.expected:
        diff = (features - expected["features"].float()).abs().max().item()
        print(f"max |torchvision - selfsup| = {diff:.3g} (tolerance {args.tolerance})")
        ok = ok and diff < args.tolerance
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
