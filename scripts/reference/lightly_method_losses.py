"""Reference outputs of the method losses from lightly (the published implementation
most CPU users compare with), for test/pretext-tasks/lightly-losses.test.ts.

Draws small seeded inputs, runs lightly's NegativeCosineSimilarity (SimSiam; BYOL's
normalised MSE is 2 + 2 x it), BarlowTwinsLoss, VICRegLoss, NTXentLoss with a memory
bank (MoCo: queue set to known rows, then the enqueue it performs), DINOLoss (centre
set, explicit teacher temperature, then its centre update) and cosine_schedule
(the target momentum), and writes inputs and outputs as JSON. lightly and PyTorch
live in a virtual environment, never in selfsup's dependencies:

    python3 -m venv /work/venvs/lightly
    /work/venvs/lightly/bin/pip install torch==2.14.1 torchvision==0.29.1 lightly
    /work/venvs/lightly/bin/python scripts/reference/lightly_method_losses.py \
        > test/pretext-tasks/fixtures/lightly-losses.json
"""
import json

import lightly
import torch
from lightly.loss import BarlowTwinsLoss, DINOLoss, NegativeCosineSimilarity, NTXentLoss, VICRegLoss
from lightly.utils.scheduler import cosine_schedule

torch.manual_seed(13)


def rows(t):
    return [[round(float(v), 7) for v in row] for row in t.tolist()]


def f32(t):
    # Round-trip the inputs through the JSON precision, so both sides see the same numbers.
    return torch.tensor(rows(t), dtype=torch.float32)


N, D = 6, 5
p1, p2 = f32(torch.randn(N, D)), f32(torch.randn(N, D))
z1, z2 = f32(2 * torch.randn(N, D) + 0.5), f32(0.7 * torch.randn(N, D) - 0.2)

negative_cosine = NegativeCosineSimilarity()
simsiam = 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)
byol = (2 + 2 * negative_cosine(p1, z2)) + (2 + 2 * negative_cosine(p2, z1))

barlow = {str(lam): float(BarlowTwinsLoss(lambda_param=lam)(z1, z2)) for lam in (0.0051, 0.5)}
vicreg = float(VICRegLoss(lambda_param=25, mu_param=25, nu_param=1)(z1, z2))

# MoCo: queue of K = 12 normalised rows (a multiple of the batch, so lightly's
# drop-at-the-end and selfsup's ring agree), pointer at 6.
K = 12
queue = f32(torch.nn.functional.normalize(torch.randn(K, D), dim=1))
moco = {}
for temperature in (0.1, 0.2):
    loss_fn = NTXentLoss(temperature=temperature, memory_bank_size=(K, D))
    loss_fn.memory_bank.bank = queue.clone()
    loss_fn.memory_bank.bank_ptr = torch.tensor([6])
    q = p1.clone().requires_grad_(True)  # lightly enqueues only when the queries need a gradient
    moco[str(temperature)] = {
        "loss": float(loss_fn(q, z1).detach()),
        "queueAfter": rows(loss_fn.memory_bank.bank),
        "pointerAfter": int(loss_fn.memory_bank.bank_ptr[0]),
    }

# DINO: 2 global + 2 local views of a batch of 4, output size 6.
B, K_OUT = 4, 6
teacher = [f32(torch.randn(B, K_OUT)) for _ in range(2)]
student = [f32(torch.randn(B, K_OUT)) for _ in range(4)]
center = f32(0.3 * torch.randn(1, K_OUT))
dino = {}
for teacher_temperature in (0.04, 0.07):
    loss_fn = DINOLoss(output_dim=K_OUT, student_temp=0.1, center_momentum=0.9)
    loss_fn.center = center.clone().reshape(1, 1, K_OUT)
    loss = loss_fn(teacher, student, teacher_temp=teacher_temperature)
    dino[str(teacher_temperature)] = {"loss": float(loss), "centerAfter": rows(loss_fn.center.reshape(1, K_OUT))}

momentum = [cosine_schedule(step, 10, 0.99, 1.0) for step in range(10)]

json.dump(
    {
        "generator": f"scripts/reference/lightly_method_losses.py, lightly {lightly.__version__}, torch {torch.__version__}",
        "inputs": {
            "p1": rows(p1),
            "p2": rows(p2),
            "z1": rows(z1),
            "z2": rows(z2),
            "queue": rows(queue),
            "teacher": [rows(t) for t in teacher],
            "student": [rows(s) for s in student],
            "center": rows(center),
        },
        "simsiam": float(simsiam),
        "byol": float(byol),
        "barlowTwins": barlow,
        "vicreg": vicreg,
        "moco": moco,
        "dino": dino,
        "momentum": {"start": 0.99, "end": 1.0, "steps": 10, "values": momentum},
    },
    fp := __import__("sys").stdout,
    indent=1,
)
fp.write("\n")
