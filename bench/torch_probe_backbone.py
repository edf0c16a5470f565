#!/usr/bin/python3
"""Probes selfsup backbone exports with the PyTorch side's probes, to tell a pretraining
difference from a probe difference in bench/methods-side-by-side.sh.

Loads each backbone.safetensors (a selfsup export, torchvision names) into the reference
ResNet-18 of bench/torch_fashion_pretext.py and runs the probes bench/lightly_fashion_methods.py
runs on lightly's backbones: the linear probe (full-batch Adam on standardised pooled
features of a seeded subset of labelled training images) and the weighted kNN (k 200),
tested on the first --probe-test test images; the subset is drawn as that script draws it
for --seed. Prints one JSON line per backbone.

    selfsup export <run> --format safetensors --out <dir>
    /work/venvs/lightly/bin/python bench/torch_probe_backbone.py --seed 0 <dir>/backbone.safetensors ...
With --random-init, first the untrained backbone lightly's side starts from for that seed.
With --save-random-init PATH, writes that untrained backbone as .safetensors (torchvision names)
and exits: selfsup's side can then start from it (bench/fashion-mnist-pretext.mjs --init PATH),
so both sides pretrain from the same initial backbone.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_fashion_pretext import ResNet18, features, knn_accuracy, linear_probe, read_idx  # noqa: E402
from torch_fewlabels import read_safetensors  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("backbones", nargs="*", help="backbone.safetensors files of selfsup exports")
    p.add_argument("--random-init", action="store_true", help="also probe the backbone lightly_fashion_methods.py starts from for --seed")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--limit", type=int, default=60000, help="as the pretraining run's --limit (the probe subset is drawn after it)")
    p.add_argument("--probe-train", type=int, default=10000)
    p.add_argument("--probe-test", type=int, default=10000)
    p.add_argument("--probe-steps", type=int, default=500)
    p.add_argument("--knn-k", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save-random-init", metavar="PATH", help="write lightly's starting backbone for --seed to PATH and exit")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.save_random_init:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "torch"))
        from make_fixtures import write_safetensors  # noqa: E402

        torch.manual_seed(args.seed)  # as lightly_fashion_methods.py before it builds the backbone
        model = ResNet18(args.width)
        state = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        write_safetensors(args.save_random_init, state, {"width_multiplier": str(args.width)})
        print(f"wrote {args.save_random_init}")
        return
    train_images = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    train_labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    test_images = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))
    test_labels = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    # The same draws as lightly_fashion_methods.py: the pretraining subset first, then the probe subset.
    rng = np.random.default_rng(args.seed)
    rng.permutation(len(train_images))[: args.limit]
    probe_idx = np.sort(rng.permutation(len(train_images))[: args.probe_train])
    ytr = torch.from_numpy(train_labels[probe_idx])
    yte = torch.from_numpy(test_labels[: args.probe_test])
    for path in (["random-init"] if args.random_init else []) + args.backbones:
        if path == "random-init":
            torch.manual_seed(args.seed)  # as lightly_fashion_methods.py before it builds the backbone
            model = ResNet18(args.width)
        else:
            state, meta = read_safetensors(path)
            model = ResNet18(float(meta.get("width_multiplier", args.width)))
            model.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
            missing = [k for k in model.state_dict() if k not in state]
            if missing:
                raise SystemExit(f"{path}: missing {missing[:5]}")
        start = time.time()
        ftr = features(model, train_images[probe_idx])
        fte = features(model, test_images[: args.probe_test])
        probe = linear_probe(ftr, ytr, fte, yte, steps=args.probe_steps)
        probe["knnAccuracy"] = knn_accuracy(ftr, ytr, fte, yte, k=args.knn_k)
        print(json.dumps({"backbone": path, "seed": args.seed, "probeMinutes": round((time.time() - start) / 60, 2), **probe}), flush=True)


if __name__ == "__main__":
    main()
