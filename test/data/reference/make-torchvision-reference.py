"""Reference numbers for test/data/torchvision-reference.test.ts, from torchvision.

Run with the system Python that has torch + torchvision (reference only, never a runtime dependency):
    /usr/bin/python3 test/data/reference/make-torchvision-reference.py > test/data/reference/torchvision.json
"""
import json

import torch
import torchvision
import torchvision.transforms.functional as F


def image(h, w):
    # CHW float in [0, 1], the same formula as the TypeScript test.
    values = [[[((x * 37 + y * 11 + c * 71) % 97) / 96.0 for x in range(w)] for y in range(h)] for c in range(3)]
    return torch.tensor(values, dtype=torch.float32)


def hwc(t):
    return t.permute(1, 2, 0).reshape(-1).tolist()


img = image(5, 6)
big = image(10, 12)
out = {
    "torchvision": torchvision.__version__,
    "input": hwc(img),
    "brightness_1.3": hwc(F.adjust_brightness(img, 1.3)),
    "contrast_0.6": hwc(F.adjust_contrast(img, 0.6)),
    "saturation_1.7": hwc(F.adjust_saturation(img, 1.7)),
    "hue_0.2": hwc(F.adjust_hue(img, 0.2)),
    "hue_-0.35": hwc(F.adjust_hue(img, -0.35)),
    "grayscale": hwc(F.rgb_to_grayscale(img, num_output_channels=3)),
    "blur_5_1.2": hwc(F.gaussian_blur(img, [5, 5], [1.2, 1.2])),
    "solarize_0.5": hwc(F.solarize(img, 0.5)),
    "big": hwc(big),
    "resize_big_to_4x5": hwc(F.resize(big, [4, 5], antialias=True)),
    "resize_big_to_13x17": hwc(F.resize(big, [13, 17], antialias=True)),
}
print(json.dumps(out))
