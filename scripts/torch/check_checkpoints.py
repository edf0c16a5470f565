"""torch.save checkpoints through selfsup and back into torchvision, end to end.

    npm run build
    /usr/bin/python3 scripts/torch/check_checkpoints.py              # full-size torchvision ResNet-18 and ResNet-50
    /usr/bin/python3 scripts/torch/check_checkpoints.py --fixtures   # the committed test fixtures (1/16-width ResNet-18)

For each checkpoint: `selfsup import` it, compute eval features and logits in selfsup
(scripts/torch/checkpoint-features.mjs) and compare with PyTorch's; then
`selfsup export --format safetensors` the imported backbone and load that file into
torchvision's ResNet with load_state_dict(strict=True): once with model.fc = Identity
and the fc keys left out (the backbone alone), once whole. Full-size mode saves
torchvision.models.resnet18/50 with random weights and random BatchNorm statistics
(the ImageNet downloads need internet) as a zip .pth, a legacy .pth, a float16 .pth
and a Lightning-style .ckpt with a DataParallel `module.backbone.` prefix.
Outputs must agree within 1e-4 x max(1, largest |output|). Exit code 0 when every check passes.
"""
import argparse
import collections
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from load_check import read_safetensors  # noqa: E402
from make_checkpoints import NarrowResNet, features_of  # noqa: E402
from make_fixtures import write_safetensors  # noqa: E402


def selfsup(*args):
    subprocess.run(["node", os.path.join(ROOT, "bin", "selfsup.js"), *args, "--quiet"], check=True, stdout=subprocess.DEVNULL)


def selfsup_outputs(weights, x, work):
    input_file = os.path.join(work, "input.safetensors")
    out = os.path.join(work, "outputs.safetensors")
    write_safetensors(input_file, {"input": x.numpy()}, {})
    subprocess.run(
        ["node", os.path.join(HERE, "checkpoint-features.mjs"), weights, input_file, out], check=True, stdout=subprocess.DEVNULL
    )
    tensors, _ = read_safetensors(out)
    return tensors["features"], tensors.get("logits")


def randomise_bn(model, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                module.running_var.copy_(0.75 + 0.5 * torch.rand(c, generator=generator))
                module.weight.copy_(1 + 0.1 * torch.randn(c, generator=generator))
    return model.eval()


def check(name, path, model, make_model, x, work, key=None, tolerance=1e-4):
    """Import `path`, compare outputs with `model`'s, re-export and load strictly into `make_model()`."""
    ok = True
    with torch.no_grad():
        want_features, want_logits = features_of(model, x), model(x)
    imported = os.path.join(work, name + "-imported")
    selfsup("import", path, "--out", imported, *(["--key", key] if key else []))
    features, logits = selfsup_outputs(imported, x, work)
    # Tolerance relative to the outputs' size when they exceed 1 (random full-size ResNet-50 logits reach ~10:
    # float32 sums in another order over 50 layers differ by ~1e-5 of that).
    scale_f = max(1.0, want_features.abs().max().item())
    diff_f = (features - want_features).abs().max().item()
    line = f"{name}: features max|diff| {diff_f:.2e} (max|features| {scale_f:.3g})"
    ok &= diff_f < tolerance * scale_f
    if logits is not None:
        scale_l = max(1.0, want_logits.abs().max().item())
        diff_l = (logits - want_logits).abs().max().item()
        line += f", logits max|diff| {diff_l:.2e} (max|logits| {scale_l:.3g})"
        ok &= diff_l < tolerance * scale_l
    reexported = os.path.join(work, name + "-reexport.safetensors")
    selfsup("export", imported, "--format", "safetensors", "--out", reexported)
    state, _ = read_safetensors(reexported)
    fresh = make_model()
    fresh.fc = torch.nn.Identity()
    backbone_state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    fresh.load_state_dict(backbone_state, strict=True)  # raises on any missing or unexpected key
    fresh.eval()
    with torch.no_grad():
        diff_r = (fresh(x) - want_features).abs().max().item()
    line += f"; re-export loads strict=True (backbone), features max|diff| {diff_r:.2e}"
    ok &= diff_r < tolerance * scale_f
    if "fc.weight" in state:
        whole = make_model()
        whole.fc = torch.nn.Linear(state["fc.weight"].shape[1], state["fc.weight"].shape[0])
        whole.load_state_dict(state, strict=True)
        line += ", with fc strict=True"
    print(line, "OK" if ok else "MISMATCH", flush=True)
    return ok


def full_size(work):
    ok = True
    for arch, seed in [("resnet18", 1), ("resnet50", 2)]:
        torch.manual_seed(seed)
        def make_model(arch=arch):
            return getattr(torchvision.models, arch)(weights=None)

        model = randomise_bn(make_model(), seed)
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(seed))
        state = model.state_dict()
        zip_path = os.path.join(work, f"{arch}.pth")
        torch.save(state, zip_path)
        ok &= check(f"{arch} zip", zip_path, model, make_model, x, work)
        legacy = os.path.join(work, f"{arch}-legacy.pth")
        torch.save(state, legacy, _use_new_zipfile_serialization=False)
        ok &= check(f"{arch} legacy", legacy, model, make_model, x, work)
        half = os.path.join(work, f"{arch}-half.pth")
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, half)
        rounded = make_model()
        rounded.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in state.items()})
        ok &= check(f"{arch} float16", half, rounded.eval(), make_model, x, work)
        wrapped = collections.OrderedDict(("module.backbone." + k, v) for k, v in state.items() if not k.startswith("fc."))
        wrapped["module.head.weight"] = torch.randn(8, model.fc.in_features)
        ckpt = os.path.join(work, f"{arch}-lightning.ckpt")
        torch.save({"epoch": 1, "state_dict": wrapped, "optimizer_states": [], "hyper_parameters": {"lr": 0.1}}, ckpt)
        model.fc = torch.nn.Identity()
        ok &= check(f"{arch} lightning module.backbone.", ckpt, model, make_model, x, work)
    return ok


def fixtures(work):
    from fixture_weights import make_tensor

    directory = os.path.join(ROOT, "test", "fixtures", "torch", "checkpoints")
    ok = True
    x = torch.from_numpy(make_tensor("input", (2, 3, 32, 32)))
    for name, key in [("r18-zip.pth", None), ("r18-legacy.pth", None), ("r18-views.pth", None),
                      ("r18-dataparallel.pth", None), ("r18-half.pth", None), ("r18-bf16.pth", None),
                      ("r18-lightning.ckpt", None), ("r18-lightly.ckpt", None), ("r18-moco.pth", "encoder_q"),
                      ("r18-deflated.pth", None)]:
        model = NarrowResNet([2, 2, 2, 2])
        # Our own fixtures: trusted (torch 1.13's weights_only reader lacks BINFLOAT, which the .ckpt uses).
        raw = torch.load(os.path.join(directory, name)) if name != "r18-deflated.pth" else None
        if raw is None:
            raw = torch.load(os.path.join(directory, "r18-zip.pth"))
        state = raw.get("state_dict", raw)
        if name == "r18-lightly.ckpt":
            sequential = torch.nn.Sequential(*list(model.children())[:-1])
            sequential.load_state_dict({k[len("backbone."):]: v for k, v in state.items()})
            model.fc = torch.nn.Identity()
        else:
            prefix = {"r18-dataparallel.pth": "module.", "r18-lightning.ckpt": "backbone.", "r18-moco.pth": "module.encoder_q."}.get(name, "")
            own = {k[len(prefix):]: v.float() if v.is_floating_point() else v for k, v in state.items() if k.startswith(prefix)}
            if "fc.weight" not in own:
                model.fc = torch.nn.Identity()
            model.load_state_dict(own, strict=True)
        ok &= check(name, os.path.join(directory, name), model.eval(), lambda: NarrowResNet([2, 2, 2, 2]), x, work, key=key)
    return ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fixtures", action="store_true", help="check the committed fixtures instead of full-size models")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="selfsup-ckpt-") as work:
        ok = fixtures(work) if args.fixtures else full_size(work)
    print("ALL OK" if ok else "SOME CHECKS FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
