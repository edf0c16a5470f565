#!/usr/bin/env python3
"""A plain PyTorch finetuning loop for Fashion-MNIST with few labels: the reference
that `selfsup finetune` / `selfsup budget` with recipes/finetune-few-labels.yaml is
compared against (docs/results.md, "Few labels: the default path against a plain
PyTorch loop"). A benchmark, not part of the package.

The loop: a quarter-width ResNet-18 with the small stem (3x3/1 conv, no max pool;
torchvision parameter names), either randomly initialised (torchvision's init) or
loaded from a selfsup backbone export (backbone.safetensors, torchvision names), a
fresh linear head, every layer trained from the first step: SGD lr 0.02, momentum
0.9, weight decay 5e-4, cosine schedule to 0 over 200 steps of 64 images drawn with
replacement-free reshuffles of the labeled set, label smoothing 0.1, per-image
augmentation: random crop (32 px, 4 px zero padding), horizontal flip, brightness
and contrast jitter 0.4. Evaluated on all 10,000 test images.

Same data as selfsup: the label subsets are read from the `subsets.json` that
`selfsup budget` writes (source indices into the training IDX file); the 28 px
images are resized to the backbone's input size (its safetensors metadata; no
resize at 28 px) with selfsup's resampling filter (a triangle filter over pixel
centres, ported below) and normalised with the backbone's mean/std (also from
its metadata). Threads: --threads (default 2), OpenMP waiting passively.

    /work/venvs/lightly/bin/python bench/torch_fewlabels.py --data /usr/share/datasets/fashion-mnist \
        --backbone runs/rotation/backbone/backbone.safetensors --subsets studies/few/subsets.json \
        --per-class 10 --seeds 0,1,2 --out torch-fewlabels.json
"""

import argparse
import json
import math
import os
import struct
import time

import numpy as np

# OpenMP threads that spin while they wait are starved on a shared, oversubscribed machine: with
# two threads at a load average of 17 on 2 cores, 10 steps took 55 s spinning and 3.7 s passive.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch_fashion_pretext import ResNet18, read_idx  # noqa: E402  (the one small-stem ResNet-18 of bench/)


def resample_matrix(in_length, out_length):
    """selfsup's resampling along one axis (src/data/augment/image.ts filterTaps): a
    triangle filter of radius max(scale, 1) over pixel centres, weights normalised."""
    scale = in_length / out_length
    radius = max(scale, 1.0)
    m = np.zeros((out_length, in_length), dtype=np.float64)
    for o in range(out_length):
        center = (o + 0.5) * scale
        low = max(0, math.floor(center - radius))
        high = min(in_length, math.ceil(center + radius))
        for i in range(low, high):
            m[o, i] = max(0.0, 1 - abs((i + 0.5 - center) / radius))
        m[o] /= m[o].sum()
    return m.astype(np.float32)


def prepare(images, size):
    """uint8 [N, 28, 28] -> float [N, 1, size, size] on [0, 1], resized as selfsup does."""
    x = images.astype(np.float32) / 255.0
    if images.shape[1] != size:
        r = resample_matrix(images.shape[1], size)
        x = np.einsum("oh,nhw,pw->nop", r, x, r)
    return torch.from_numpy(np.ascontiguousarray(x[:, None]))


DTYPES = {"F32": np.float32, "I64": np.int64, "F64": np.float64, "F16": np.float16}


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        blob = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        array = np.frombuffer(blob[start:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors, meta


def augment(batch, generator):
    """Per image: random crop of 32 px from a 4 px zero-padded image, horizontal flip (p 0.5),
    brightness and contrast factors uniform in [0.6, 1.4] (torchvision ColorJitter(0.4, 0.4)),
    on [0, 1] pixels before normalisation."""
    n, c, h, w = batch.shape
    padded = F.pad(batch, (4, 4, 4, 4))
    out = torch.empty_like(batch)
    offsets = torch.randint(0, 9, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    factors = 0.6 + 0.8 * torch.rand(n, 2, generator=generator)
    orders = torch.rand(n, generator=generator) < 0.5
    for i in range(n):
        y, x = offsets[i].tolist()
        img = padded[i, :, y : y + h, x : x + w]
        if flips[i]:
            img = img.flip(-1)
        b, k = factors[i].tolist()
        for step in ("b", "c") if orders[i] else ("c", "b"):
            if step == "b":
                img = (img * b).clamp(0, 1)
            else:
                img = ((img - img.mean()) * k + img.mean()).clamp(0, 1)
        out[i] = img
    return out


def run_one(args, state, meta, x_train, y_train, x_test, y_test, seed, mean, std):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    width = float(meta.get("width_multiplier", args.width))
    model = ResNet18(width, x_train.shape[1], 10)
    if state is not None:
        missing, unexpected = model.load_state_dict(state, strict=False)
        assert set(missing) == {"fc.weight", "fc.bias"}, missing
        assert not unexpected, unexpected
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)
    normalize = lambda t: ((t - mean) / std).contiguous(memory_format=torch.channels_last)  # noqa: E731
    started = time.time()
    model.train()
    order = torch.randperm(len(x_train), generator=generator)
    cursor = 0
    for _ in range(args.steps):
        if cursor + args.batch > len(order):
            order = torch.cat([order[cursor:], torch.randperm(len(x_train), generator=generator)])
            cursor = 0
        idx = order[cursor : cursor + args.batch]
        cursor += args.batch
        inputs = normalize(augment(x_train[idx], generator))
        loss = F.cross_entropy(model(inputs), y_train[idx], label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    train_seconds = time.time() - started
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x_test), 500):
            logits = model(normalize(x_test[i : i + 500]))
            correct += (logits.argmax(1) == y_test[i : i + 500]).sum().item()
    return correct / len(x_test), time.time() - started, train_seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--backbone", required=True, help="backbone.safetensors of a selfsup export (torchvision names)")
    p.add_argument("--subsets", required=True, help="subsets.json written by selfsup budget")
    p.add_argument("--per-class", type=int, default=10)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--arms", default="scratch,pretrained")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--width", type=float, default=0.25, help="width multiplier when the metadata has none")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    state, meta = read_safetensors(args.backbone)
    state = {k: v for k, v in state.items()}
    size = int(meta.get("input_size", 32))
    mean = torch.tensor(json.loads(meta.get("mean", "[0.5]"))).view(1, -1, 1, 1)
    std = torch.tensor(json.loads(meta.get("std", "[0.5]"))).view(1, -1, 1, 1)
    train_images = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    train_labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    x_test = prepare(read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")), size)
    y_test = torch.from_numpy(read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    with open(args.subsets) as f:
        subsets = json.load(f)["subsets"]

    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        match = [s for s in subsets if s["perClass"] == args.per_class and s["seed"] == seed]
        if not match:
            raise SystemExit(f"{args.subsets} has no subset for {args.per_class} per class, seed {seed}")
        indices = np.array(match[0]["indices"], dtype=np.int64)
        x_train = prepare(train_images[indices], size)
        y_train = torch.from_numpy(train_labels[indices])
        for arm in args.arms.split(","):
            accuracy, seconds, train_seconds = run_one(
                args, state if arm == "pretrained" else None, meta, x_train, y_train, x_test, y_test, seed, mean, std
            )
            load = os.getloadavg()[0]
            row = {"arm": arm, "perClass": args.per_class, "seed": seed, "trainImages": len(indices),
                   "accuracy": accuracy, "seconds": seconds, "trainSeconds": train_seconds, "load1": load}
            results.append(row)
            print(f"{arm:12s} {args.per_class}/class seed {seed}: accuracy {100 * accuracy:.1f}% "
                  f"({seconds:.0f} s, load {load:.2f})", flush=True)
    for arm in args.arms.split(","):
        acc = np.array([r["accuracy"] for r in results if r["arm"] == arm])
        secs = np.array([r["seconds"] for r in results if r["arm"] == arm])
        print(f"{arm:12s} {100 * acc.mean():.1f} ± {100 * acc.std(ddof=1) if len(acc) > 1 else 0:.1f} % "
              f"({secs.mean() / 60:.2f} min/run)")
    if args.out:
        summary = {"torch": torch.__version__, "threads": args.threads, "steps": args.steps, "batch": args.batch,
                   "lr": args.lr, "weightDecay": args.weight_decay, "backbone": args.backbone, "runs": results}
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=2)
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
