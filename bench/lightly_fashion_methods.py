#!/usr/bin/env python3
"""The Fashion-MNIST protocol of bench/fashion-mnist-pretext.mjs for the methods, with lightly.

A reference to compare selfsup against, not part of the package: lightly's
heads, losses, momentum update and cosine momentum schedule for BYOL, SimSiam,
Barlow Twins, VICReg, MoCo v2 and DINO, on the same backbone as selfsup (ResNet-18,
width multiplier, small stem: bench/torch_fashion_pretext.py's), the same
augmentations (random resized crop, flip, brightness/contrast jitter p 0.8), the
same head sizes and method options as bench/fashion-mnist-pretext.mjs's TASK_OPTIONS,
the same AdamW + cosine schedule, and the same linear probe. The pretraining subset is
drawn by NumPy from the seed (not the same images as selfsup's seedrandom subset).

    python3 -m venv /work/venvs/lightly
    /work/venvs/lightly/bin/pip install torch==2.14.1 torchvision==0.29.1 lightly
    /work/venvs/lightly/bin/python bench/lightly_fashion_methods.py --methods byol,simsiam --limit 4096 --batch 64
"""

import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from lightly.loss import BarlowTwinsLoss, DINOLoss, NegativeCosineSimilarity, NTXentLoss, VICRegLoss
from lightly.loss.vicreg_loss import covariance_loss, invariance_loss, variance_loss
from lightly.models.modules import (
    BarlowTwinsProjectionHead,
    BYOLPredictionHead,
    BYOLProjectionHead,
    DINOProjectionHead,
    MoCoProjectionHead,
    SimCLRProjectionHead,
    SimSiamPredictionHead,
    SimSiamProjectionHead,
)
from lightly.models.modules.heads import VICRegProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_fashion_pretext import ResNet18, augment, features, knn_accuracy, linear_probe, read_idx  # noqa: E402


def view(size, scale):
    return T.Compose(
        [
            T.RandomResizedCrop(size, scale=scale, ratio=(3 / 4, 4 / 3)),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(brightness=0.4, contrast=0.4)], p=0.8),
        ]
    )


class Method(torch.nn.Module):
    """One method's modules and loss, with the options of bench/fashion-mnist-pretext.mjs."""

    def __init__(self, name, backbone, total_steps):
        super().__init__()
        self.name, self.backbone, self.total_steps = name, backbone, total_steps
        d = backbone.feature_dim
        self.momentum = None
        self.views = [view(28, (0.2, 1.0)), view(28, (0.2, 1.0))]
        if name == "byol":
            self.projection = BYOLProjectionHead(d, 512, 128)
            self.prediction = BYOLPredictionHead(128, 512, 128)
            self.momentum = (0.99, 1.0)
            self.criterion = NegativeCosineSimilarity()
        elif name == "simsiam":
            self.projection = SimSiamProjectionHead(d, 512, 512)
            self.prediction = SimSiamPredictionHead(512, 128, 512)
            self.criterion = NegativeCosineSimilarity()
        elif name == "simclr":  # selfsup's "contrastive": hidden = feature size, 128 out, t = 0.5
            self.projection = SimCLRProjectionHead(d, d, 128)
            self.criterion = NTXentLoss(temperature=0.5)
        elif name == "barlow-twins":
            self.projection = BarlowTwinsProjectionHead(d, 1024, 1024)
            self.criterion = BarlowTwinsLoss(lambda_param=0.0051)
        elif name == "vicreg":
            self.projection = VICRegProjectionHead(d, 1024, 1024, num_layers=3)
            self.criterion = VICRegLoss()
        elif name == "moco":
            self.projection = MoCoProjectionHead(d, d, 128)
            self.momentum = (0.99, 1.0)
            self.criterion = NTXentLoss(temperature=0.1, memory_bank_size=(2048, 128))
        elif name == "dino":
            self.projection = DINOProjectionHead(d, 512, 128, 1024, batch_norm=True)
            self.momentum = (0.99, 1.0)
            self.criterion = DINOLoss(output_dim=1024, warmup_teacher_temp=0.04, teacher_temp=0.04, warmup_teacher_temp_epochs=0)
            self.views = [view(28, (0.4, 1.0)), view(28, (0.4, 1.0)), view(14, (0.05, 0.4)), view(14, (0.05, 0.4))]
        else:
            raise SystemExit(f"unknown method {name}")
        if self.momentum:
            self.target_backbone = copy.deepcopy(backbone)
            if name == "dino":  # weight_norm modules cannot be deep-copied: build a twin and copy the weights
                self.target_projection = DINOProjectionHead(d, 512, 128, 1024, batch_norm=True)
                self.target_projection.load_state_dict(self.projection.state_dict())
            else:
                self.target_projection = copy.deepcopy(self.projection)
            deactivate_requires_grad(self.target_backbone)
            deactivate_requires_grad(self.target_projection)

    def trained_parameters(self):
        modules = [self.backbone, self.projection] + ([self.prediction] if hasattr(self, "prediction") else [])
        return [p for m in modules for p in m.named_parameters()]

    def loss(self, batch, step):
        views = [augment(batch, v) for v in self.views]
        if self.momentum:
            m = cosine_schedule(step, self.total_steps, *self.momentum)
            update_momentum(self.backbone, self.target_backbone, m)
            update_momentum(self.projection, self.target_projection, m)
        if self.name in ("byol", "simsiam"):
            z = [self.projection(self.backbone(x)) for x in views]
            p = [self.prediction(zi) for zi in z]
            if self.name == "simsiam":
                return 0.5 * (self.criterion(p[0], z[1].detach()) + self.criterion(p[1], z[0].detach()))
            with torch.no_grad():
                t = [self.target_projection(self.target_backbone(x)) for x in views]
            # BYOL's normalised MSE = 2 + 2 x negative cosine similarity (symmetric).
            return (2 + 2 * self.criterion(p[0], t[1])) + (2 + 2 * self.criterion(p[1], t[0]))
        if self.name in ("barlow-twins", "vicreg", "simclr"):
            z = [self.projection(self.backbone(x)) for x in views]
            if self.name == "vicreg" and (step + 1) % 50 == 0:  # the terms on the logged steps, as selfsup's metrics
                with torch.no_grad():
                    self.terms = {
                        "invariance": invariance_loss(z[0], z[1]).item(),
                        "variance": 0.5 * (variance_loss(z[0]) + variance_loss(z[1])).item(),
                        "covariance": (covariance_loss(z[0]) + covariance_loss(z[1])).item(),
                    }
            return self.criterion(z[0], z[1])
        if self.name == "moco":
            q = self.projection(self.backbone(views[0]))
            with torch.no_grad():
                k = self.target_projection(self.target_backbone(views[1]))
            return self.criterion(q, k)
        # DINO: global views together through the networks, local views together.
        b = len(batch)
        globals_ = torch.cat(views[:2])
        student = list(self.projection(self.backbone(globals_)).split(b))
        student += list(self.projection(self.backbone(torch.cat(views[2:]))).split(b))
        with torch.no_grad():
            teacher = list(self.target_projection(self.target_backbone(globals_)).split(b))
        return self.criterion(teacher, student, teacher_temp=0.04)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--methods", default="byol,simsiam,barlow-twins,vicreg,moco,dino,simclr")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--limit", type=int, default=60000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--probe-train", type=int, default=10000)
    p.add_argument("--probe-test", type=int, default=10000)
    p.add_argument("--probe-steps", type=int, default=500)
    p.add_argument("--knn-k", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/fashion-mnist-methods")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    train_images = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    train_labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    test_images = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))
    test_labels = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)

    results = []
    for name in args.methods.split(","):
        torch.manual_seed(args.seed)
        rng = np.random.default_rng(args.seed)
        pretrain_idx = np.sort(rng.permutation(len(train_images))[: args.limit])
        probe_idx = np.sort(rng.permutation(len(train_images))[: args.probe_train])
        steps_per_epoch = len(pretrain_idx) // args.batch
        total = steps_per_epoch * args.epochs
        method = Method(name, ResNet18(args.width), total)
        params = method.trained_parameters()
        decay = [p for n, p in params if p.ndim > 1]
        no_decay = [p for n, p in params if p.ndim <= 1]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
        step, losses, start = 0, [], time.time()
        for epoch in range(args.epochs):
            method.train()
            order = pretrain_idx[rng.permutation(len(pretrain_idx))]
            for s in range(steps_per_epoch):
                for group in opt.param_groups:
                    group["lr"] = 0.5 * args.lr * (1 + math.cos(math.pi * step / max(1, total - 1)))
                batch = torch.from_numpy(train_images[order[s * args.batch : (s + 1) * args.batch]]).unsqueeze(1)
                loss = method.loss(batch, step)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
                step += 1
                if step % 50 == 0:
                    terms = " ".join(f"{k} {v:.4f}" for k, v in getattr(method, "terms", {}).items())
                    print(f"{name} step {step}/{total} loss {loss.item():.4f} {terms}", flush=True)
        pretrain_minutes = round((time.time() - start) / 60, 2)
        probe_start = time.time()
        ftr = features(method.backbone, train_images[probe_idx])
        fte = features(method.backbone, test_images[: args.probe_test])
        probe = linear_probe(
            ftr, torch.from_numpy(train_labels[probe_idx]), fte, torch.from_numpy(test_labels[: args.probe_test]),
            steps=args.probe_steps,
        )
        probe["knnAccuracy"] = knn_accuracy(
            ftr, torch.from_numpy(train_labels[probe_idx]), fte, torch.from_numpy(test_labels[: args.probe_test]),
            k=args.knn_k,
        )
        probe["knnK"] = args.knn_k
        results.append(
            {
                "task": f"{name} (lightly)",
                "steps": step,
                "firstLoss": losses[0],
                "lastLoss": losses[-1],
                "pretrainMinutes": pretrain_minutes,
                "probeMinutes": round((time.time() - probe_start) / 60, 2),
                **probe,
            }
        )
        print(json.dumps(results[-1]), flush=True)

    import lightly

    summary = {
        "command": "bench/lightly_fashion_methods.py " + " ".join(sys.argv[1:]),
        "torch": torch.__version__,
        "lightly": lightly.__version__,
        "args": vars(args),
        "results": results,
    }
    os.makedirs(args.out, exist_ok=True)
    target = os.path.join(args.out, f"lightly-results-{int(time.time())}.json")
    with open(target + ".tmp", "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(target + ".tmp", target)
    print("| method | pretrain min | probe test acc | probe train acc |")
    for r in results:
        print(f"| {r['task']} | {r['pretrainMinutes']} | {100 * r['testAccuracy']:.2f}% | {100 * r['trainAccuracy']:.2f}% |")


if __name__ == "__main__":
    main()
