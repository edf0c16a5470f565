"""Checks selfsup's ONNX exports in Python: the ONNX checker, then onnxruntime.

    npm run build && node scripts/onnx/write-parity-cases.mjs /tmp/selfsup-onnx
    /work/venvs/onnx/bin/python scripts/onnx/check_onnx.py /tmp/selfsup-onnx
    /work/venvs/onnx/bin/python scripts/onnx/check_onnx.py exports/probe/model.onnx   # one model, no reference

For a case directory (cases.json from write-parity-cases.mjs) every model must
pass `onnx.checker.check_model(full_check=True)` (which includes strict shape
inference) and reproduce selfsup's own outputs in onnxruntime's CPU provider
within the case's tolerance (1e-4 absolute for float32 weights). For a single
.onnx file the checker runs and the model is fed a random batch of two images.
Needs `onnx`, `onnxruntime` and `numpy` (e.g. a venv: pip install onnx onnxruntime).
Exit code 0 when everything passes.
"""
import json
import os
import struct
import sys

import numpy as np
import onnx
import onnxruntime as ort


def read_safetensors(path):
    """{name: float32 array} from a safetensors file (F32 tensors only)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {entry['dtype']}, expected F32")
        start, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[start:end], dtype="<f4").reshape(entry["shape"])
    return tensors


def check_and_load(path):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    metadata = {p.key: p.value for p in model.metadata_props}
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return model, metadata, opset, session


def check_case(directory, case):
    path = os.path.join(directory, case["model"])
    _, metadata, opset, session = check_and_load(path)
    expected = read_safetensors(os.path.join(directory, case["expected"]))
    outputs = session.run(None, {"image": expected["image"]})
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, outputs))
    reference = expected[case["output"]]
    difference = float(np.max(np.abs(got[case["output"]] - reference)))
    scale = float(np.max(np.abs(reference)))
    tolerance = case["tolerance"]
    limit = tolerance.get("absolute", tolerance.get("relative", 0) * scale)
    ok = difference < limit
    if "probabilities" in got:
        logits = got["logits"].astype(np.float64)
        softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
        softmax /= softmax.sum(axis=1, keepdims=True)
        ok = ok and float(np.max(np.abs(got["probabilities"] - softmax))) < 1e-5
    print(
        f"{case['name']:24s} opset {opset[0]}  weights {metadata.get('weights', '?'):7s}  "
        f"{case['output']} {list(reference.shape)}  max |onnx - selfsup| {difference:.2e} "
        f"(scale {scale:.2f}, limit {limit:.1e})  {'ok' if ok else 'FAIL'}"
    )
    return ok


def check_single(path):
    model, metadata, opset, session = check_and_load(path)
    image = session.get_inputs()[0]
    size = int(metadata["input_size"]) if metadata.get("input_size") else 64
    channels = image.shape[1]
    batch = np.random.default_rng(0).random((2, channels, size, size), dtype=np.float32)
    outputs = session.run(None, {image.name: batch})
    shapes = {o.name: list(v.shape) for o, v in zip(session.get_outputs(), outputs)}
    finite = all(np.isfinite(v).all() for v in outputs)
    print(f"{path}: checker ok, opset {opset[0]}, input {image.name} {image.shape}, outputs {shapes}, finite {finite}")
    print(f"  metadata: { {k: v for k, v in metadata.items() if k != 'selfsup_manifest'} }")
    return finite


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    target = argv[1]
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    if os.path.isfile(target):
        return 0 if check_single(target) else 1
    with open(os.path.join(target, "cases.json")) as f:
        cases = json.load(f)
    results = [check_case(target, case) for case in cases]
    print(f"{sum(results)}/{len(results)} cases pass")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
