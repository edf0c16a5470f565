"""PyTorch reference for selfsup's optimizers (test/train/optimizers.test.ts).

Runs torch.optim.SGD (momentum, Nesterov), torch.optim.Adam and torch.optim.AdamW for three steps
with a changing learning rate on a weight (decayed) and a bias (no decay, its own
parameter group), from fixed gradients, and writes the final values as JSON.

    /usr/bin/python3 scripts/reference/torch_optimizers.py > test/train/fixtures/torch-optimizers.json
    npx biome format --write test/train/fixtures/torch-optimizers.json
"""
import json

import torch

W0 = [0.5, -1.2, 2.0, 0.3]
B0 = [0.1, -0.4]
GW = [[0.2, -0.1, 0.4, 1.0], [-0.3, 0.5, 0.1, -0.2], [0.05, 0.0, -0.6, 0.3]]
GB = [[1.0, -2.0], [0.5, 0.5], [-1.0, 0.25]]
LRS = [0.1, 0.05, 0.2]

CASES = {
    "sgd momentum": ("sgd", dict(momentum=0.9, weight_decay=0.01)),
    "sgd Nesterov": ("sgd", dict(momentum=0.9, nesterov=True, weight_decay=0.05)),
    "adamw": ("adamw", dict(betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)),
    "adam": ("adam", dict(betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)),
}

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def run(kind, options):
    w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(B0, dtype=torch.float64, requires_grad=True)
    decay = options.pop("weight_decay")
    groups = [{"params": [w], "weight_decay": decay}, {"params": [b], "weight_decay": 0.0}]
    opt = OPTIMIZERS[kind](groups, lr=LRS[0], **options)
    for t, lr in enumerate(LRS):
        for group in opt.param_groups:
            group["lr"] = lr
        w.grad = torch.tensor(GW[t], dtype=torch.float64)
        b.grad = torch.tensor(GB[t], dtype=torch.float64)
        opt.step()
    return {"w": w.detach().tolist(), "b": b.detach().tolist()}


out = {"torch": torch.__version__, "lrs": LRS}
for name, (kind, options) in CASES.items():
    out[name] = run(kind, dict(options))
print(json.dumps(out, indent=1))
