"""Writes the torch.save fixtures of test/export/pytorch-checkpoint.test.ts.

Run with Debian's Python that has torch 1.13 + torchvision 0.14:

    /usr/bin/python3 scripts/torch/make_checkpoints.py

The network is torchvision's own ResNet-18 at 1/16 width (stem 4 channels, stages
4/8/16/32; torchvision's class with narrower planes, same module names), ImageNet
stem, 3 input channels, a 10-class fc. Weights are random (seeded) with
non-trivial BatchNorm statistics. The same weights are saved in the ways real
checkpoints come:

    r18-zip.pth             torch.save(state_dict)                               (zip, the default)
    r18-legacy.pth          torch.save(state_dict, _use_new_zipfile_serialization=False)
    r18-half.pth            torch.save(model.half().state_dict())                (float16 storages)
    r18-bf16.pth            bfloat16 storages, legacy format
    r18-lightning.ckpt      a Lightning-style dict: state_dict with backbone. / projection_head. keys,
                            optimizer_states (SGD momentum buffers), epoch, global_step, hyper_parameters
    r18-dataparallel.pth    torch.save(nn.DataParallel(model).state_dict())      (module. keys)
    r18-views.pth           every conv weight a permuted (non-contiguous) view, every BatchNorm tensor a
                            slice of one shared storage (storage offsets), fc.weight a transposed view
    r18-moco.pth            {"state_dict": module.encoder_q.* and module.encoder_k.* (two backbones)}
    r18-lightly.ckpt        {"state_dict": backbone.<index>.* of nn.Sequential(*children[:-1])}
    r18-deflated.pth        r18-zip.pth re-zipped with deflate (zipfile), as another tool might
    evil-*.pth              pickles whose payload would create /tmp/selfsup-pickle-payload-<name>
                            (os.system, builtins.eval, subprocess.Popen): they must be refused

expected.safetensors holds the input (formula of fixture_weights.py) and the eval-mode features
and logits PyTorch computes for each weight set (float16/bfloat16 sets: the rounded weights run in
float32), plus each state_dict's key list in the metadata.
"""
import collections
import json
import os
import struct
import sys
import zipfile

import numpy as np
import torch
import torchvision
from torchvision.models.resnet import BasicBlock, ResNet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_weights import make_tensor  # noqa: E402
from make_fixtures import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "fixtures", "torch", "checkpoints")
WIDTH = 1 / 16


class NarrowResNet(ResNet):
    """torchvision's ResNet with every width scaled (module names unchanged)."""

    width = WIDTH

    def __init__(self, layers, num_classes=10, in_channels=3):
        super().__init__(BasicBlock, layers, num_classes=num_classes)
        base = int(64 * self.width)
        self.conv1 = torch.nn.Conv2d(in_channels, base, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(base)
        self.fc = torch.nn.Linear(int(512 * self.width) * BasicBlock.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:
            self.inplanes = int(64 * self.width)
        return super()._make_layer(block, int(planes * self.width), blocks, stride, dilate)


def build():
    torch.manual_seed(0)
    model = NarrowResNet([2, 2, 2, 2])
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.weight.copy_(1 + 0.2 * torch.randn(c, generator=generator))
                module.bias.copy_(0.1 * torch.randn(c, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                module.running_var.copy_(0.75 + 0.5 * torch.rand(c, generator=generator))
                module.num_batches_tracked.fill_(7)
    return model.eval()


def features_of(model, x):
    m = model
    h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    h = m.layer4(m.layer3(m.layer2(m.layer1(h))))
    return torch.flatten(m.avgpool(h), 1)


def outputs(model, x):
    with torch.no_grad():
        return features_of(model, x).numpy().copy(), model(x).numpy().copy()


def views_state(state):
    """The same values, stored as views: permuted convs, BatchNorm slices of one storage, transposed fc."""
    out = collections.OrderedDict()
    flat_names = [k for k, v in state.items() if v.dim() == 1 and v.dtype == torch.float32 and k != "fc.bias"]
    flat = torch.cat([state[k] for k in flat_names])
    offset = 0
    slices = {}
    for k in flat_names:
        n = state[k].numel()
        slices[k] = flat[offset : offset + n]
        offset += n
    for k, v in state.items():
        if v.dim() == 4:
            out[k] = v.permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3)
            assert not out[k].is_contiguous()
        elif k == "fc.weight":
            out[k] = v.t().contiguous().t()
            assert not out[k].is_contiguous()
        elif k in slices:
            out[k] = slices[k]
        else:
            out[k] = v
    assert out["bn1.weight"].storage().data_ptr() == out["layer4.1.bn2.running_var"].storage().data_ptr()
    return out


class Payload:
    def __init__(self, kind, marker):
        self.kind, self.marker = kind, marker

    def __reduce__(self):
        import subprocess

        if self.kind == "os-system":
            return (os.system, (f"touch {self.marker}",))
        if self.kind == "builtins-eval":
            return (eval, (f"open({self.marker!r}, 'w').close()",))
        return (subprocess.Popen, (["touch", self.marker],))


def main():
    os.makedirs(OUT, exist_ok=True)
    model = build()
    x = torch.from_numpy(make_tensor("input", (2, 3, 32, 32)))
    state = model.state_dict()
    backbone_keys = [k for k in state if not k.startswith("fc.")]
    expected = {"input": x.numpy()}
    meta = {"torch": torch.__version__, "torchvision": torchvision.__version__, "width": str(WIDTH)}

    def record(tag, m):
        features, logits = outputs(m, x)
        expected[f"{tag}.features"] = features
        expected[f"{tag}.logits"] = logits

    record("f32", model)
    torch.save(state, os.path.join(OUT, "r18-zip.pth"))
    torch.save(state, os.path.join(OUT, "r18-legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save(views_state(state), os.path.join(OUT, "r18-views.pth"))

    half = build().half()
    torch.save(half.state_dict(), os.path.join(OUT, "r18-half.pth"))
    record("f16", half.float())
    bf16 = build().to(torch.bfloat16)
    torch.save(bf16.state_dict(), os.path.join(OUT, "r18-bf16.pth"), _use_new_zipfile_serialization=False)
    record("bf16", bf16.float())

    dp = torch.nn.DataParallel(build())
    torch.save(dp.state_dict(), os.path.join(OUT, "r18-dataparallel.pth"))

    # Lightning-style: an SSL module with backbone (fc removed) + projection head, one SGD step taken
    # on a throwaway copy so the optimizer has momentum buffers, while the saved backbone stays `model`.
    projection = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))
    lightning_state = collections.OrderedDict()
    for k in backbone_keys:
        lightning_state["backbone." + k] = state[k]
    for k, v in projection.state_dict().items():
        lightning_state["projection_head.layers." + k] = v
    params = [torch.nn.Parameter(v.clone()) for k, v in lightning_state.items() if v.dtype == torch.float32]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    sum((p * p).sum() for p in params).backward()
    optimizer.step()
    checkpoint = {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.1.0",
        "state_dict": lightning_state,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 4, "completed": 3}}}},
        "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_score": None, "dirpath": "/runs/x"}},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {"lr": 0.1, "batch_size": 256, "temperature": 0.5, "arch": "resnet18"},
    }
    torch.save(checkpoint, os.path.join(OUT, "r18-lightning.ckpt"))

    moco = collections.OrderedDict()
    other = build()
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.5)
    for prefix, source in [("module.encoder_q.", state), ("module.encoder_k.", other.state_dict())]:
        for k in backbone_keys:
            moco[prefix + k] = source[k]
    moco["module.queue"] = torch.randn(8, 16)
    torch.save({"epoch": 200, "arch": "resnet18", "state_dict": moco}, os.path.join(OUT, "r18-moco.pth"))

    sequential = torch.nn.Sequential(*list(model.children())[:-1])
    lightly = collections.OrderedDict(("backbone." + k, v) for k, v in sequential.state_dict().items())
    torch.save({"epoch": 1, "state_dict": lightly}, os.path.join(OUT, "r18-lightly.ckpt"))

    with zipfile.ZipFile(os.path.join(OUT, "r18-zip.pth")) as source, zipfile.ZipFile(
        os.path.join(OUT, "r18-deflated.pth"), "w", compression=zipfile.ZIP_DEFLATED
    ) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info.filename))

    for kind in ["os-system", "builtins-eval", "subprocess-popen"]:
        marker = f"/tmp/selfsup-pickle-payload-{kind}"
        evil = collections.OrderedDict([("conv1.weight", state["conv1.weight"])])
        evil["extra"] = Payload(kind, marker)
        torch.save(evil, os.path.join(OUT, f"evil-{kind}.pth"))
        if os.path.exists(marker):
            os.remove(marker)

    meta["backbone_keys"] = json.dumps(backbone_keys)
    meta["state_keys"] = json.dumps(list(state.keys()))
    expected = {k: np.ascontiguousarray(v.astype(np.float32)) for k, v in expected.items()}
    writer = write_safetensors(os.path.join(OUT, "expected.safetensors"), expected, meta)
    sizes = {f: os.path.getsize(os.path.join(OUT, f)) for f in sorted(os.listdir(OUT))}
    print("written with", writer, json.dumps(sizes, indent=1))


if __name__ == "__main__":
    main()
