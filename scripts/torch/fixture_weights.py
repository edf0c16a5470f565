"""Deterministic, formula-defined tensors shared with test/backbones/fixture-weights.ts.

Every value is a pure function of the tensor's torchvision name and its flat
index in PyTorch's layout, so the TypeScript tests regenerate bit-identical
weights without committing tens of megabytes of fixtures:

    seed  = fnv1a32(name)
    h     = fmix32((seed + index * 0x9E3779B9) mod 2**32)      # MurmurHash3 finalizer
    u     = h / 2**32                                           # in [0, 1)
    value = float32(offset + scale * (2 * u - 1))               # computed in float64, then rounded

`offset` and `scale` depend on the kind of tensor (see `tensor_scale`).
"""
import math

import numpy as np

MASK = 0xFFFFFFFF


def fnv1a32(text: str) -> int:
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h ^= byte
        h = (h * 0x01000193) & MASK
    return h


def fmix32(h: np.ndarray) -> np.ndarray:
    h = h.astype(np.uint64)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & np.uint64(MASK)
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & np.uint64(MASK)
    h ^= h >> np.uint64(16)
    return h


def uniform01(name: str, count: int) -> np.ndarray:
    index = np.arange(count, dtype=np.uint64)
    h = (np.uint64(fnv1a32(name)) + index * np.uint64(0x9E3779B9)) & np.uint64(MASK)
    return fmix32(h).astype(np.float64) / 4294967296.0


def tensor_scale(name: str, shape) -> tuple:
    """(offset, scale) of a tensor: He-uniform convs, BN near identity, small residual-branch gammas."""
    if name == "input":
        return 0.0, 2.0
    if name.endswith("running_var"):
        return 1.25, 0.25
    if name.endswith("running_mean"):
        return 0.0, 0.1
    if name.endswith(".bias"):
        return 0.0, 0.1
    if name.endswith(".weight") and len(shape) == 1:
        # BN gamma: the last BN of a residual branch is small so activations stay O(1) through 50 layers.
        last = ("layer" in name and name.endswith("bn2.weight")) or name.endswith("bn3.weight")
        return (0.2, 0.05) if last else (1.0, 0.2)
    if name.endswith(".weight") and len(shape) == 2:  # fc [out, in]
        return 0.0, math.sqrt(3.0 / shape[1])
    fan_in = int(np.prod(shape[1:]))
    return 0.0, math.sqrt(6.0 / fan_in)


def make_tensor(name: str, shape) -> np.ndarray:
    count = int(np.prod(shape)) if len(shape) else 1
    offset, scale = tensor_scale(name, shape)
    values = offset + scale * (2.0 * uniform01(name, count) - 1.0)
    return values.astype(np.float32).reshape(shape)
