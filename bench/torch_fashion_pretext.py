#!/usr/bin/python3
"""The Fashion-MNIST pretext protocol of bench/fashion-mnist-pretext.mjs, in PyTorch.

A reference to compare selfsup against, not part of the package. Same
protocol: a ResNet-18 with a width multiplier and the small stem (3x3/1 conv, no
max pool), pretrained on a seeded subset of the 60,000 training images without
labels with one pretext task (rotation: 4-way, all four rotations per image;
contrastive: SimCLR two views + NT-Xent; jigsaw: 2x2 tiles, 24 permutations),
AdamW (no weight decay on BatchNorm parameters and biases), cosine schedule to 0,
then a linear probe: softmax regression (full-batch Adam, L2 on the weights) on
standardised frozen pooled features of labeled training images, tested on the
test images. A randomly initialised backbone is probed the same way.

Run with the system Python that has torch:
    /usr/bin/python3 bench/torch_fashion_pretext.py --task rotation --width 0.25 --limit 16384 --batch 64

--save-backbone <file>.safetensors keeps the pretrained backbone (torchvision names and the
metadata keys of `selfsup export --format safetensors`), so selfsup and bench/torch_fewlabels.py
can finetune the PyTorch-pretrained backbone too (bench/fewlabels-compare.sh).
"""

import argparse
import gzip
import itertools
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms as T

MEAN, STD = 0.286, 0.353


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class ResNet18(nn.Module):
    """torchvision's ResNet-18 layout and names with widths 64*w..512*w and the small stem;
    with `classes`, a linear head `fc` on the pooled features (forward then gives logits)."""

    def __init__(self, width, channels=1, classes=None):
        super().__init__()
        widths = [max(1, round(64 * width * 2**i)) for i in range(4)]
        self.conv1 = nn.Conv2d(channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(cin, w, stride), BasicBlock(w, w, 1)))
            cin = w
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.feature_dim = cin
        self.fc = nn.Linear(cin, classes) if classes else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x)))).mean(dim=(2, 3))
        return self.fc(x) if self.fc is not None else x


def nt_xent(z1, z2, temperature):
    """SimCLR eq. (1) averaged over the 2B positive pairs."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(-1e9)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, targets), (sim.argmax(1) == targets).float().mean()


def max_hamming_permutations(tiles, count, rng):
    """Greedy max-min Hamming selection over all permutations (ties broken by rng)."""
    perms = np.array(list(itertools.permutations(range(tiles))))
    min_dist = np.full(len(perms), 255)
    chosen = [rng.integers(len(perms))]
    while True:
        d = (perms != perms[chosen[-1]]).sum(1)
        min_dist = np.minimum(min_dist, d)
        if len(chosen) == count:
            break
        best = min_dist.max()
        chosen.append(rng.choice(np.flatnonzero(min_dist == best)))
    return torch.tensor(perms[chosen])


def augment(images, transform):
    """Applies a per-image torchvision transform to uint8 [B, 1, 28, 28]; returns normalised float."""
    out = torch.stack([transform(img) for img in images]).float() / 255.0
    return (out - MEAN) / STD


def jigsaw_tiles(images, tile):
    """Random resized crop then a 2x2 grid of `tile` px tiles at random offsets in their cells. [B, 4, 1, t, t]."""
    b, _, h, w = images.shape
    cell = h // 2
    tiles = []
    for r in range(2):
        for c in range(2):
            oy = torch.randint(0, cell - tile + 1, (1,)).item()
            ox = torch.randint(0, cell - tile + 1, (1,)).item()
            tiles.append(images[:, :, r * cell + oy : r * cell + oy + tile, c * cell + ox : c * cell + ox + tile])
    return torch.stack(tiles, 1)


def features(backbone, images, batch=512):
    backbone.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = (torch.from_numpy(images[i : i + batch]).float().unsqueeze(1) / 255.0 - MEAN) / STD
            out.append(backbone(x))
    return torch.cat(out)


def knn_accuracy(train_x, train_y, test_x, test_y, k=200, t=0.1, classes=10):
    """Weighted kNN on cosine similarity: each of the k nearest train features votes exp(s / t) for its label."""
    a = F.normalize(train_x, dim=1)
    b = F.normalize(test_x, dim=1)
    right = 0
    for i in range(0, len(b), 1000):
        sim, idx = (b[i : i + 1000] @ a.T).topk(min(k, len(a)), dim=1)
        votes = torch.zeros(len(idx), classes).scatter_add_(1, train_y[idx], torch.exp((sim - 1) / t))
        right += (votes.argmax(1) == test_y[i : i + 1000]).sum().item()
    return right / len(b)


def linear_probe(train_x, train_y, test_x, test_y, steps=500, lr=0.05, l2=1e-4):
    mean, std = train_x.mean(0), (train_x.var(0, unbiased=False) + 1e-6).sqrt()
    xs, xt = (train_x - mean) / std, (test_x - mean) / std
    w = torch.zeros(xs.shape[1], 10, requires_grad=True)
    b = torch.zeros(10, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(xs @ w + b, train_y) + l2 * (w**2).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return {
            "trainAccuracy": ((xs @ w + b).argmax(1) == train_y).float().mean().item(),
            "testAccuracy": ((xt @ w + b).argmax(1) == test_y).float().mean().item(),
            "trainLoss": loss.item(),
        }


def save_backbone(backbone, args, path):
    """The backbone's state dict (BatchNorm buffers included) as safetensors, written atomically by the
    fixtures' writer (scripts/torch/make_fixtures.py), with the metadata keys `selfsup export --format
    safetensors` writes, so `selfsup budget --backbone <file>` and bench/torch_fewlabels.py read it as they
    read a selfsup export."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "torch"))
    from make_fixtures import write_safetensors

    metadata = {
        "format": "pt",
        "producer": "bench/torch_fashion_pretext.py",
        "arch": "resnet18",
        "stem": "small",
        "input_channels": "1",
        "width_multiplier": str(args.width),
        "input_size": "28",
        "mean": f"[{MEAN}]",
        "std": f"[{STD}]",
        "channel_order": "L",
        "pretext_task": args.task,
    }
    tensors = {name: t.detach().cpu().numpy() for name, t in backbone.state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_safetensors(path + ".tmp", tensors, metadata)
    os.replace(path + ".tmp", path)
    print(f"backbone written to {path}", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--task", choices=["rotation", "contrastive", "jigsaw", "none"], default="rotation")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--limit", type=int, default=60000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--probe-train", type=int, default=10000)
    p.add_argument("--probe-test", type=int, default=10000)
    p.add_argument("--probe-steps", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/fashion-mnist-pretext")
    p.add_argument(
        "--save-backbone",
        help="write the pretrained backbone here as .safetensors (torchvision names, selfsup's metadata keys)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    train_images = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    train_labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    test_images = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))
    test_labels = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    pretrain_idx = np.sort(rng.permutation(len(train_images))[: args.limit])
    probe_idx = np.sort(rng.permutation(len(train_images))[: args.probe_train])

    def probe(backbone):
        start = time.time()
        ftr = features(backbone, train_images[probe_idx])
        fte = features(backbone, test_images[: args.probe_test])
        result = linear_probe(
            ftr, torch.from_numpy(train_labels[probe_idx]), fte, torch.from_numpy(test_labels[: args.probe_test]),
            steps=args.probe_steps,
        )
        result["probeMinutes"] = round((time.time() - start) / 60, 2)
        return result

    results = []
    random_backbone = ResNet18(args.width)
    results.append({"task": "random init (torch)", "pretrainMinutes": 0, **probe(random_backbone)})
    print(json.dumps(results[-1]), flush=True)

    if args.task != "none":
        backbone = ResNet18(args.width)
        dim = backbone.feature_dim
        if args.task == "rotation":
            head = nn.Linear(dim, 4)
            view = T.Compose([T.RandomResizedCrop(28, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3)), T.RandomHorizontalFlip()])
        elif args.task == "contrastive":
            head = nn.Sequential(nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, 128))
            view = T.Compose(
                [
                    T.RandomResizedCrop(28, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)),
                    T.RandomHorizontalFlip(),
                    T.RandomApply([T.ColorJitter(brightness=0.4, contrast=0.4)], p=0.8),
                ]
            )
        else:
            permutations = max_hamming_permutations(4, 24, rng)
            head = nn.Sequential(nn.Linear(4 * dim, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 24))
            view = T.RandomResizedCrop(28, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3))
        params = list(backbone.named_parameters()) + list(head.named_parameters())
        decay = [p for n, p in params if p.ndim > 1]
        no_decay = [p for n, p in params if p.ndim <= 1]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr
        )
        steps_per_epoch = len(pretrain_idx) // args.batch
        total = steps_per_epoch * args.epochs
        step = 0
        start = time.time()
        losses = []
        for epoch in range(args.epochs):
            backbone.train()
            head.train()
            order = pretrain_idx[rng.permutation(len(pretrain_idx))]
            for s in range(steps_per_epoch):
                for group in opt.param_groups:
                    group["lr"] = 0.5 * args.lr * (1 + math.cos(math.pi * step / max(1, total - 1)))
                batch = torch.from_numpy(train_images[order[s * args.batch : (s + 1) * args.batch]]).unsqueeze(1)
                if args.task == "rotation":
                    x = augment(batch, view)
                    x = torch.cat([torch.rot90(x, k, (2, 3)) for k in range(4)])
                    y = torch.arange(4).repeat_interleave(len(batch))
                    logits = head(backbone(x))
                    loss = F.cross_entropy(logits, y)
                    acc = (logits.argmax(1) == y).float().mean()
                elif args.task == "contrastive":
                    x = torch.cat([augment(batch, view), augment(batch, view)])
                    z = head(backbone(x))
                    loss, acc = nt_xent(z[: len(batch)], z[len(batch) :], 0.5)
                else:
                    tiles = jigsaw_tiles(augment(batch, view), 12)  # [B, 4, 1, 12, 12]
                    flat = tiles.reshape(-1, 1, 12, 12)
                    flat = (flat - flat.mean((1, 2, 3), keepdim=True)) / (flat.var((1, 2, 3), keepdim=True, unbiased=False) + 1e-5).sqrt()
                    f = backbone(flat).reshape(len(batch), 4, dim)
                    y = torch.randint(0, 24, (len(batch),))
                    order_tiles = permutations[y]  # [B, 4]
                    f = torch.gather(f, 1, order_tiles.unsqueeze(2).expand(-1, -1, dim)).reshape(len(batch), -1)
                    logits = head(f)
                    loss = F.cross_entropy(logits, y)
                    acc = (logits.argmax(1) == y).float().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
                step += 1
                if step % 50 == 0:
                    print(f"{args.task} step {step}/{total} loss {loss.item():.4f} acc {acc.item():.3f}", flush=True)
        pretrain_minutes = round((time.time() - start) / 60, 2)
        if args.save_backbone:
            save_backbone(backbone, args, args.save_backbone)
        results.append(
            {
                "task": f"{args.task} (torch)",
                "steps": step,
                "firstLoss": losses[0],
                "lastLoss": losses[-1],
                "pretrainMinutes": pretrain_minutes,
                **probe(backbone),
            }
        )
        print(json.dumps(results[-1]), flush=True)

    summary = {"command": "/usr/bin/python3 bench/torch_fashion_pretext.py " + " ".join(sys.argv[1:]), "torch": torch.__version__, "args": vars(args), "results": results}
    os.makedirs(args.out, exist_ok=True)
    target = os.path.join(args.out, f"torch-results-{int(time.time())}.json")
    with open(target + ".tmp", "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(target + ".tmp", target)
    print("| backbone | pretrain min | probe test acc | probe train acc |")
    for r in results:
        print(f"| {r['task']} | {r['pretrainMinutes']} | {100 * r['testAccuracy']:.2f}% | {100 * r['trainAccuracy']:.2f}% |")


if __name__ == "__main__":
    main()
