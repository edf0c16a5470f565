"""Writes the PyTorch reference fixtures used by test/backbones/parity.test.ts.

Run with Debian's Python that has torch 1.13 + torchvision 0.14:

    /usr/bin/python3 scripts/torch/make_fixtures.py

Each model is torchvision's own ResNet (torchvision.models.resnet18/resnet50, and
resnet18 with the small-image stem swapped in the usual CIFAR way). Weights and
inputs come from fixture_weights.py (a formula the tests reproduce exactly), so
only the outputs are committed: a few kilobytes instead of ~150 MB of weights.
Outputs are written as safetensors with our own minimal writer below (the
`safetensors` package is used instead when it is importable).
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_weights import make_tensor  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "fixtures", "torch")


def write_safetensors(path, tensors, metadata):
    try:
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, path, metadata=metadata)
        return "safetensors " + __import__("safetensors").__version__
    except ImportError:
        pass
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        dtype = {np.float32: "F32", np.float16: "F16", np.int64: "I64"}[array.dtype.type]
        data = array.tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return "scripts/torch/make_fixtures.py writer"


def build(arch, stem, channels):
    model = getattr(torchvision.models, arch)(weights=None)
    if stem == "small":
        model.conv1 = torch.nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = torch.nn.Identity()
    elif channels != 3:
        model.conv1 = torch.nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    state = model.state_dict()
    fixed = {}
    for name, value in state.items():
        if name.endswith("num_batches_tracked"):
            fixed[name] = torch.tensor(5, dtype=torch.int64)
        else:
            fixed[name] = torch.from_numpy(make_tensor(name, tuple(value.shape)))
    model.load_state_dict(fixed, strict=True)
    return model


def features_of(model, x):
    m = model
    h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    h = m.layer4(m.layer3(m.layer2(m.layer1(h))))
    return torch.flatten(m.avgpool(h), 1)


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    cases = [
        ("resnet18", "imagenet", 3, 64, 2),
        ("resnet50", "imagenet", 3, 64, 2),
        ("resnet18", "small", 1, 32, 3),
    ]
    summary = {}
    for arch, stem, channels, size, batch in cases:
        model = build(arch, stem, channels)
        x = torch.from_numpy(make_tensor("input", (batch, channels, size, size)))
        outputs = {}
        model.eval()
        with torch.no_grad():
            outputs["eval.features"] = features_of(model, x).numpy()
            outputs["eval.logits"] = model(x).numpy()
        # One training-mode forward + backward: batch-statistics output, running-stat update, gradients.
        model.train()
        x_train = x.clone()
        features = features_of(model, x_train)
        probe = torch.from_numpy(make_tensor("probe", tuple(features.shape)))
        (features * probe).sum().backward()
        outputs["train.features"] = features.detach().numpy()
        for name in ["bn1.running_mean", "bn1.running_var", "layer4.1.bn2.running_mean", "layer4.1.bn2.running_var"]:
            outputs["train." + name] = model.state_dict()[name].numpy()
        params = dict(model.named_parameters())
        for name in ["conv1.weight", "layer1.0.bn1.weight", "layer1.0.bn1.bias"]:
            outputs["grad." + name] = params[name].grad.numpy()
        outputs = {k: np.ascontiguousarray(v.astype(np.float32)) for k, v in outputs.items()}
        name = f"{arch}-{stem}-c{channels}-{size}px"
        metadata = {
            "arch": arch,
            "stem": stem,
            "input_channels": str(channels),
            "input_size": str(size),
            "batch": str(batch),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        }
        writer = write_safetensors(os.path.join(OUT, name + ".safetensors"), outputs, metadata)
        summary[name] = {k: float(np.abs(v).max()) for k, v in outputs.items()}
        print(name, "written with", writer, {k: round(v, 4) for k, v in summary[name].items()})

    # A reader fixture written by the reference safetensors library (when available): all dtypes and metadata.
    try:
        from safetensors.torch import save_file

        tensors = {
            "f32": torch.tensor([[1.5, -2.25, 3.0], [0.0, 1e-8, -1e8]], dtype=torch.float32),
            "f16": torch.tensor([0.5, -65504.0, 6.1035e-05, 1.0 / 3.0], dtype=torch.float16),
            "bf16": torch.tensor([1.0, -3.140625, 1e30], dtype=torch.bfloat16),
            "i64": torch.tensor([0, -1, 2**40, 7], dtype=torch.int64),
            "scalar_i64": torch.tensor(42, dtype=torch.int64),
            "empty": torch.zeros((0, 4), dtype=torch.float32),
        }
        save_file(tensors, os.path.join(OUT, "dtypes.safetensors"), metadata={"producer": "safetensors.torch"})
        expected = {k: {"shape": list(v.shape), "values": v.float().flatten().tolist() if k != "i64" and k != "scalar_i64" else [str(int(i)) for i in v.flatten().tolist()]} for k, v in tensors.items()}
        with open(os.path.join(OUT, "dtypes.expected.json"), "w") as f:
            json.dump(expected, f, indent=1)
        print("dtypes.safetensors written with safetensors.torch")
    except ImportError:
        print("safetensors not importable: dtypes.safetensors not regenerated")


if __name__ == "__main__":
    main()
