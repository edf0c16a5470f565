"""torchvision RandomResizedCrop.get_params boxes with the random draws they used.

The TypeScript test replays the recorded draws through randomResizedCropBox and
expects the same boxes (including the fallback after 10 failed tries).
    /usr/bin/python3 test/data/reference/make-rrc-reference.py > test/data/reference/rrc.json
"""
import json

import torch
from torchvision.transforms import RandomResizedCrop

draws = []
original_uniform = torch.Tensor.uniform_
original_randint = torch.randint


def recording_uniform(self, low, high):
    out = original_uniform(self, low, high)
    draws.append(["uniform", float(low), float(high), out.item()])
    return out


def recording_randint(low, high, size):
    out = original_randint(low, high, size)
    draws.append(["int", int(high), out.item()])
    return out


torch.Tensor.uniform_ = recording_uniform
torch.randint = recording_randint

cases = []
torch.manual_seed(0)
for width, height, scale, ratio in [
    (120, 80, (0.08, 1.0), (3 / 4, 4 / 3)),
    (64, 64, (0.2, 1.0), (3 / 4, 4 / 3)),
    (300, 40, (0.5, 1.0), (0.9, 1.1)),  # often falls back: ratio clamped to the max
    (40, 300, (0.5, 1.0), (0.9, 1.1)),  # fallback with the min ratio
    (50, 50, (0.99, 1.0), (2.0, 3.0)),
]:
    for _ in range(20):
        draws = []
        i, j, h, w = RandomResizedCrop.get_params(torch.zeros(3, height, width), list(scale), list(ratio))
        cases.append(
            {
                "width": width,
                "height": height,
                "scale": list(scale),
                "ratio": list(ratio),
                "draws": draws,
                "box": {"top": i, "left": j, "height": h, "width": w},
            }
        )
print(json.dumps(cases))
