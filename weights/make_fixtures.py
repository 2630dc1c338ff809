#!/usr/bin/env python3
"""Write the parity fixtures of test/models.test.ts (the engine's graphs vs this PyTorch reference).

    /usr/bin/python3 weights/make_fixtures.py        (about 20 s; writes test/fixtures/)

Rerun it whenever weights/reference/*.py, weights/export.py, weights/safetensors_io.py or this script
change: every fixture records ``fixture.code_sha256`` (see ``code_hash``), and the test fails, naming this
script, when the hash no longer matches the code.

Fixtures (a few MB in all):

* ``tiny.fixture.safetensors``: the tiny two-stage config (weights/reference/config.py ``tiny_config``).
  Tensors: inputs, outputs and every intermediate of two forward cases, prefixed ``A/`` (batch 2, 64x64,
  from 80x80 HU slices, both slices one patient) and ``B/`` (batch 1, 64x48 non-square, from 40x36 HU).
  Stage 2 runs on a given (teacher-forced) elliptic lung mask so that its input has structure whatever the
  random stage 1 predicts; ``lung_mask_pred`` is the mask stage 1 itself would give.
* ``efficientnet_b0.fixture.safetensors``: torchvision ``efficientnet_b0`` (1000 classes), inputs ``A/input``
  1x3x64x64 and ``B/input`` 1x3x48x64, ``logits`` and ``features.{0..8}``.
* ``efficientnet_specs.json``: for every torchvision variant b0..b7, the state-dict names and shapes, the BN
  eps and each MBConv's (in, out, expanded, kernel, stride, squeeze, residual), for the TS scaling table.

Weights are NOT stored (the tiny model alone is 4.6 M values): they are a deterministic function of a seed and
the tensor list, ``weight_values`` below, which the TS test reimplements (a 32-bit integer hash per element,
values k * 2^-q exactly representable in f16, so the f16 export is lossless). Conv/Linear weights are uniform
in +-2^-s with 2^-s the power of two nearest sqrt(6 / fan_in) (half that for MBConv project convs); biases +-2^-s' nearest 1/sqrt(fan_in); BatchNorm
gets non-trivial statistics like ``randomize_batchnorm`` (weight 1 +- 0.25, bias and running_mean +- 0.125,
running_var 1 +- 0.5). The weights file is then written by ``export.export_model`` (dtype f16) and its sha256
recorded, so the test can rebuild the identical file and check it byte for byte before loading it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import sys
import tempfile
from collections import OrderedDict

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_HERE)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torchvision  # noqa: E402

import export  # noqa: E402
import safetensors_io  # noqa: E402
from reference import build_model, preprocess_hu, tiny_config  # noqa: E402
from reference.config import EFFICIENTNET_VARIANTS  # noqa: E402

OUT = os.path.join(_REPO, "test", "fixtures")
MASK32 = 0xFFFFFFFF


def code_hash() -> str:
    """sha256 over (path, NUL, bytes, NUL) of weights/reference/*.py (sorted), weights/make_fixtures.py,
    weights/export.py, weights/safetensors_io.py; paths relative to the repository, '/'-separated."""
    files = sorted(glob.glob(os.path.join(_HERE, "reference", "*.py")))
    files += [os.path.join(_HERE, n) for n in ("make_fixtures.py", "export.py", "safetensors_io.py")]
    h = hashlib.sha256()
    for f in files:
        rel = os.path.relpath(f, _REPO).replace(os.sep, "/")
        h.update(rel.encode() + b"\0")
        with open(f, "rb") as fh:
            h.update(fh.read())
        h.update(b"\0")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# deterministic weights

def _mix32(x: np.ndarray) -> np.ndarray:
    """lowbias32 integer hash on uint64 arrays holding 32-bit values."""
    x = x & MASK32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & MASK32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & MASK32
    x ^= x >> np.uint64(16)
    return x


def weight_values(seed: int, index: int, n: int, center: float, bits: int, q: int) -> np.ndarray:
    """Element i of tensor ``index``: center + (k - 2^(bits-1)) * 2^-q, k = top ``bits`` bits of
    mix32(mix32(seed * 0x9E3779B1 + index * 0x85EBCA77) + i)."""
    base = int(_mix32(np.array([(seed * 0x9E3779B1 + index * 0x85EBCA77) & MASK32], dtype=np.uint64))[0])
    h = _mix32((np.arange(n, dtype=np.uint64) + np.uint64(base)) & MASK32)
    k = (h >> np.uint64(32 - bits)).astype(np.float64)
    return center + (k - 2.0 ** (bits - 1)) * 2.0 ** -q


def _pow2_exponent(bound: float) -> int:
    return int(round(-math.log2(bound)))


def recipes(model: nn.Module, names: list) -> dict:
    """name -> (center, bits, q) for every exported tensor."""
    out = {}
    # MBConv project convs (no activation, then the residual add) get half the bound, so that activations
    # stay O(1) through the residual stages instead of doubling at every stage.
    project = {id(m.block[-1][0]) for m in model.modules() if isinstance(m, torchvision.models.efficientnet.MBConv)}
    for mod_name, mod in model.named_modules():
        pre = f"{mod_name}." if mod_name else ""
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            out[pre + "weight"] = (1.0, 9, 10)
            out[pre + "bias"] = (0.0, 9, 11)
            out[pre + "running_mean"] = (0.0, 9, 11)
            out[pre + "running_var"] = (1.0, 9, 9)
        elif isinstance(mod, (nn.Conv2d, nn.Linear)):
            if isinstance(mod, nn.Conv2d):
                fan_in = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            else:
                fan_in = mod.in_features
            s = _pow2_exponent(math.sqrt(6.0 / fan_in)) + (1 if id(mod) in project else 0)
            out[pre + "weight"] = (0.0, 11, 10 + s)
            if mod.bias is not None:
                out[pre + "bias"] = (0.0, 8, 7 + _pow2_exponent(1.0 / math.sqrt(fan_in)))
    missing = [n for n in names if n not in out]
    if missing:
        raise RuntimeError(f"no recipe for {missing[:5]}")
    return out


def fill_weights(model: nn.Module, seed: int) -> list:
    """Overwrites every exported tensor; returns the manifest [[name, shape, center, bits, q], ...] in
    state_dict order (= export order)."""
    sd = OrderedDict((k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked"))
    rec = recipes(model, list(sd))
    manifest = []
    new = {}
    for i, (name, t) in enumerate(sd.items()):
        c, bits, q = rec[name]
        vals = weight_values(seed, i, t.numel(), c, bits, q)
        tt = torch.from_numpy(vals).to(torch.float32).reshape(t.shape)
        assert torch.equal(tt.to(torch.float16).to(torch.float32), tt), f"{name}: not exact in f16"
        new[name] = tt
        manifest.append([name, list(t.shape), c, bits, q])
    missing, unexpected = model.load_state_dict(new, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    return manifest


def sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---------------------------------------------------------------------------------------------
# inputs

def hu_slices(b: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Synthetic chest-CT-like HU slices: air outside a body ellipse (~40 HU), two lungs (~-850 HU), bone
    spots (~700 HU, beyond the window), noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    out = []
    for i in range(b):
        body = (xx / 0.9) ** 2 + (yy / 0.75) ** 2 < 1
        lung_l = ((xx + 0.4 + 0.05 * i) / 0.3) ** 2 + (yy / 0.5) ** 2 < 1
        lung_r = ((xx - 0.4) / 0.3) ** 2 + ((yy + 0.05 * i) / 0.5) ** 2 < 1
        hu = torch.full((h, w), -1024.0)
        hu[body] = 40.0
        hu[lung_l | lung_r] = -850.0
        hu[(xx.abs() < 0.08) & (yy > 0.3) & body] = 700.0
        hu = hu + torch.randn(h, w, generator=g) * 60.0
        out.append(hu)
    return torch.stack(out)[:, None]


def ellipse_masks(b: int, h: int, w: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    ms = []
    for i in range(b):
        m = (((xx + 0.4) / (0.35 + 0.05 * i)) ** 2 + (yy / 0.55) ** 2 < 1) | (((xx - 0.4) / 0.35) ** 2 + (yy / 0.55) ** 2 < 1)
        ms.append(m.to(torch.float32))
    return torch.stack(ms)[:, None]


# ---------------------------------------------------------------------------------------------
# fixtures

def tiny_fixture(chash: str) -> None:
    cfg = tiny_config()
    model = build_model(cfg, seed=0).eval()
    seed = 1
    manifest = fill_weights(model, seed)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tiny.safetensors")
        export.export_model(model, path, "f16", f"make_fixtures deterministic weights, seed {seed}")
        _, metadata = safetensors_io.load(path)
        wsha, wsize = sha256_file(path), os.path.getsize(path)
        # Reference outputs from the model as reloaded from the file (what the engine sees).
        model = export.load_model(path)

    tensors = OrderedDict()
    cases = {}
    for key, (b, hu_hw, size, ids) in {"A": (2, (80, 80), (64, 64), [0, 0]), "B": (1, (40, 36), (64, 48), [0])}.items():
        hu = hu_slices(b, *hu_hw, seed=7 if key == "A" else 8)
        windowed = preprocess_hu(hu, cfg, size=size)
        mask = ellipse_masks(b, *size)
        with torch.no_grad():
            out = model(windowed, lung_mask=mask, patient_ids=torch.tensor(ids), return_intermediates=True)
        put = lambda n, t: tensors.__setitem__(f"{key}/{n}", t.detach().to(torch.float32).contiguous())  # noqa: E731
        put("hu", hu)
        put("windowed", windowed)
        put("lung_mask_given", mask)
        put("lung_mask_pred", (out["lung_prob"] > cfg.preprocess.lung_threshold).to(torch.float32))
        for n in ("lung_logits", "lung_prob", "lung_area", "cls_input", "infection_logits_s8", "infection_prob_s8",
                  "infection_prob", "slice_embedding", "slice_logits", "patient_logits"):
            put(n, out[n])
        put("slice_used", out["slice_used"].to(torch.float32))
        for n, t in out["intermediates"].items():
            put(n, t)
        cases[key] = {"batch": b, "hu_size": list(hu_hw), "size": list(size), "patient_ids": ids}
        lp = out["lung_prob"]
        print(f"  case {key}: lung_prob in [{lp.min():.3f}, {lp.max():.3f}] mean {lp.mean():.3f}; "
              f"slice_logits {out['slice_logits'].flatten().tolist()}")
        for n, t in out["intermediates"].items():
            a = t.abs()
            if not (1e-3 < float(a.mean()) < 1e3):
                print(f"    WARNING {n}: mean |x| = {float(a.mean()):.3g}")

    meta = {
        "fixture.code_sha256": chash,
        "fixture.cases": json.dumps(cases),
        "fixture.weights": json.dumps({"seed": seed, "dtype": "F16", "sha256": wsha, "size": wsize,
                                       "metadata": metadata, "manifest": manifest}),
    }
    path = os.path.join(OUT, "tiny.fixture.safetensors")
    safetensors_io.save(tensors, meta, path)
    print(f"wrote {path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes (weights file would be {wsize})")


def efficientnet_fixture(chash: str) -> None:
    model = torchvision.models.efficientnet_b0(weights=None).eval()
    seed = 2
    manifest = fill_weights(model, seed)
    sd = OrderedDict((k, v.detach().to(torch.float32).contiguous()) for k, v in model.state_dict().items()
                     if not k.endswith("num_batches_tracked"))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "b0.safetensors")
        safetensors_io.save(sd, None, path)  # a plain torchvision state dict, F32, no metadata
        wsha, wsize = sha256_file(path), os.path.getsize(path)
    g = torch.Generator().manual_seed(3)
    tensors = OrderedDict()
    for key, (h, w) in {"A": (64, 64), "B": (48, 64)}.items():
        x = torch.randn(1, 3, h, w, generator=g)
        tensors[f"{key}/input"] = x
        with torch.no_grad():
            y = x
            for i, f in enumerate(model.features):
                y = f(y)
                tensors[f"{key}/features.{i}"] = y.contiguous()
            tensors[f"{key}/logits"] = model(x).contiguous()
    meta = {
        "fixture.code_sha256": chash,
        "fixture.weights": json.dumps({"seed": seed, "dtype": "F32", "sha256": wsha, "size": wsize,
                                       "metadata": None, "manifest": manifest}),
    }
    path = os.path.join(OUT, "efficientnet_b0.fixture.safetensors")
    safetensors_io.save(tensors, meta, path)
    print(f"wrote {path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


def specs_fixture(chash: str) -> None:
    specs = {}
    for v in EFFICIENTNET_VARIANTS:
        m = getattr(torchvision.models, v)(weights=None)
        bn = next(x for x in m.modules() if isinstance(x, nn.BatchNorm2d))
        stages = []
        for i in range(1, 8):
            blocks = []
            for blk in m.features[i]:
                convs = [c for c in blk.block.modules() if isinstance(c, nn.Conv2d)]
                dw = next(c for c in convs if c.groups > 1)
                se = blk.block[-2]
                blocks.append([convs[0].in_channels, blk.out_channels, dw.in_channels, dw.kernel_size[0],
                               dw.stride[0], se.fc1.out_channels, bool(blk.use_res_connect)])
            stages.append(blocks)
        specs[v] = {
            "bn_eps": bn.eps,
            "feature_channels": [[c for c in f.modules() if isinstance(c, nn.Conv2d)][-1].out_channels for f in m.features],
            "blocks": stages,
            "state": [[k, list(t.shape)] for k, t in m.state_dict().items() if not k.endswith("num_batches_tracked")],
        }
    path = os.path.join(OUT, "efficientnet_specs.json")
    with open(path, "w") as f:
        json.dump({"code_sha256": chash, "torchvision": torchvision.__version__, "variants": specs}, f, separators=(",", ":"))
    print(f"wrote {path}: {os.path.getsize(path)} bytes")


def main() -> int:
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    os.makedirs(OUT, exist_ok=True)
    chash = code_hash()
    print(f"code sha256 {chash}")
    tiny_fixture(chash)
    efficientnet_fixture(chash)
    specs_fixture(chash)
    return 0


if __name__ == "__main__":
    sys.exit(main())
