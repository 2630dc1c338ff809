#!/usr/bin/env python3
"""Write the parity fixtures of test/models.test.ts (the engine's graphs on the CPU references) and
test/parity.test.ts (the same graphs on the GPU) against this PyTorch reference.

    /usr/bin/python3 weights/make_fixtures.py        (about 4 min on 2 cores; writes test/fixtures/)

Rerun it whenever weights/reference/*.py, weights/export.py, weights/safetensors_io.py or this script
change: every fixture records ``fixture.code_sha256`` (see ``code_hash``), and the tests fail, naming this
script, when the hash no longer matches the code.

Fixtures (a few MB in all):

* ``tiny.fixture.safetensors``: the tiny two-stage config (weights/reference/config.py ``tiny_config``).
  Tensors: inputs, outputs and every intermediate of two forward cases, prefixed ``A/`` (batch 2, 64x64,
  from 80x80 HU slices, both slices one patient) and ``B/`` (batch 1, 64x48 non-square, from 40x36 HU).
  Stage 2 runs on a given (teacher-forced) elliptic lung mask so that its input has structure whatever the
  random stage 1 predicts; ``lung_mask_pred`` is the mask stage 1 itself would give.
* ``default.fixture.safetensors``: the two-stage model with the DEFAULT config (B0 encoder, B7 classifier,
  default widths; 74 M weights) at low resolution: case ``A/`` (batch 2, 64x64, from 80x80 HU, one patient,
  teacher-forced mask as for tiny). Inputs, every output, and a few small intermediates (``seg.e4``,
  ``seg.bottleneck``, ``cls.f8``, ``cls.msff``, ``cls.pool_a``, ``cls.pool_g``, ``patient.pooled.0``).
* ``efficientnet_b0.fixture.safetensors``: torchvision ``efficientnet_b0`` (1000 classes), inputs ``A/input``
  1x3x64x64 and ``B/input`` 1x3x48x64, ``logits`` and ``features.{0..8}``.
* ``efficientnet_b{1..7}.fixture.safetensors``: torchvision ``efficientnet_b1`` .. ``b7`` (1000 classes),
  inputs ``A/input`` 1x3x64x64 and ``B/input`` 1x3x48x80, and only ``logits`` and ``features.8``.
  (64 rather than 32: at 32x32 the stride-32 stages are 1x1, where a depthwise kernel only uses its centre
  tap and the output hardly depends on the input; at 64 the deepest grid is 2x2, 2x3 for 48x80.)
* ``efficientnet_specs.json``: for every torchvision variant b0..b7, the state-dict names and shapes, the BN
  eps and each MBConv's (in, out, expanded, kernel, stride, squeeze, residual), for the TS scaling table.

Weights are NOT stored (the default model alone is 74 M values): they are a deterministic function of a seed
and a per-tensor recipe, ``weight_values`` below, which the TS tests reimplement (test/fixtures.ts: a 32-bit
integer hash per element, values k * 2^-q exactly representable in f16, so the f16 export is lossless).
Conv/Linear weights are uniform in +-2^-s with 2^-s the power of two nearest sqrt(6 / fan_in) (half that for
MBConv project convs); biases +-2^-s' nearest 1/sqrt(fan_in); BatchNorm gets non-trivial statistics like
``randomize_batchnorm`` (weight 1 +- 0.25, bias and running_mean +- 0.125, running_var c * (1 +- 0.5)).

BatchNorm calibration (``fill_weights(calibrate=...)``): the centre c of every running_var is a power of two
chosen from the activations the BN actually sees on a calibration batch (the mean over channels of the
per-channel variance), layer by layer in forward order. Without it the random network attenuates the
input-dependent part of the activations at every MBConv block (SiLU, SE gate ~0.5, halved project conv)
while the BN biases keep adding constants: through B7's 55 blocks the output changed by only ~1e-4 between
two different inputs, the size of the parity tolerance, so a comparison would have checked little more than
the biases. Calibrated, the outputs depend on the input at O(1) (the script prints this "input sensitivity",
relL2 between the outputs for two different inputs, and warns below 0.01) and magnitudes stay O(1). The
recipe (centre, bits, q) of every tensor is in the fixture's manifest, so the TS side needs no calibration.

The weights file is written as the engine would read it (two-stage: ``export.export_model``, dtype f16;
torchvision: a plain F32 state dict without metadata) and its sha256 recorded, so the tests can rebuild the
identical file and check it byte for byte before loading it.
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
from reference import build_model, default_config, preprocess_hu, tiny_config  # noqa: E402
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


def fill_weights(model: nn.Module, seed: int, calibrate=None) -> list:
    """Overwrites every exported tensor; returns the manifest [[name, shape, center, bits, q], ...] in
    state_dict order (= export order).

    With ``calibrate`` (a function running the model forward on a calibration batch, in eval mode), every BN
    whose input that forward reaches gets its running_var centre set to the power of two nearest the mean over
    channels of the per-channel variance of that input (see the module docstring)."""
    sd = OrderedDict((k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked"))
    rec = recipes(model, list(sd))
    index = {name: i for i, name in enumerate(sd)}

    def values(name: str) -> torch.Tensor:
        c, bits, q = rec[name]
        vals = weight_values(seed, index[name], sd[name].numel(), c, bits, q)
        tt = torch.from_numpy(vals).to(torch.float32).reshape(sd[name].shape)
        assert torch.equal(tt.to(torch.float16).to(torch.float32), tt), f"{name}: not exact in f16"
        return tt

    missing, unexpected = model.load_state_dict({name: values(name) for name in sd}, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)

    if calibrate is not None:
        hooks = []

        def make_hook(name: str):
            def hook(mod: nn.Module, inputs) -> None:
                x = inputs[0].detach()
                dims = [d for d in range(x.dim()) if d != 1]
                v = float(x.to(torch.float64).var(dim=dims, unbiased=False).mean())
                j = max(-12, min(12, round(math.log2(v)))) if v > 0 else 0
                rec[f"{name}.running_var"] = (2.0 ** j, 9, 9 - j)
                mod.running_var.copy_(values(f"{name}.running_var"))
            return hook

        for name, mod in model.named_modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                hooks.append(mod.register_forward_pre_hook(make_hook(name)))
        try:
            with torch.no_grad():
                calibrate(model)
        finally:
            for h in hooks:
                h.remove()

    return [[name, list(t.shape), *rec[name]] for name, t in sd.items()]


def rel_l2(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.double() - ref.double()).norm() / ref.double().norm())


def report_sensitivity(what: str, pairs: dict) -> None:
    """Prints relL2 between outputs for two different inputs (must be far above the 1e-4 tolerance)."""
    parts = []
    for n, (a, b) in pairs.items():
        e = rel_l2(a, b)
        parts.append(f"{n} {e:.2g}")
        if not e > 0.01:
            print(f"    WARNING {what} {n}: input sensitivity {e:.2g} (outputs barely depend on the input)")
    print(f"  {what}: input sensitivity (relL2 between two inputs): {', '.join(parts)}")


def report_magnitudes(what: str, tensors: dict) -> None:
    bad = []
    for n, t in tensors.items():
        a = t.detach().abs()
        if not (1e-3 < float(a.mean()) < 1e2) or not torch.isfinite(t).all():
            bad.append(f"{n} mean|x| {float(a.mean()):.3g}")
    if bad:
        print(f"    WARNING {what}: badly scaled: {', '.join(bad)}")


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

def calibration_forward(cfg) -> callable:
    """The BN calibration batch of a two-stage model: 4 synthetic 64x64 slices with teacher-forced masks."""
    windowed = preprocess_hu(hu_slices(4, 80, 80, seed=11), cfg, size=(64, 64))
    mask = ellipse_masks(4, 64, 64)
    return lambda model: model(windowed, lung_mask=mask)


def two_stage_fixture(chash: str, name: str, cfg, seed: int, cases: dict, keep=None) -> None:
    """Writes ``<name>.fixture.safetensors``. cases: key -> (batch, HU size, model size, patient ids, HU seed).
    keep: the intermediates to store (None: all)."""
    model = build_model(cfg, seed=0).eval()
    manifest = fill_weights(model, seed, calibrate=calibration_forward(cfg))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"{name}.safetensors")
        export.export_model(model, path, "f16", f"make_fixtures deterministic weights, seed {seed}")
        _, metadata = safetensors_io.load(path)
        wsha, wsize = sha256_file(path), os.path.getsize(path)
        # Reference outputs from the model as reloaded from the file (what the engine sees).
        del model
        model = export.load_model(path)

    tensors = OrderedDict()
    info = {}
    for key, (b, hu_hw, size, ids, hu_seed) in cases.items():
        hu = hu_slices(b, *hu_hw, seed=hu_seed)
        windowed = preprocess_hu(hu, cfg, size=size)
        mask = ellipse_masks(b, *size)
        with torch.no_grad():
            out = model(windowed, lung_mask=mask, patient_ids=torch.tensor(ids), return_intermediates=True)
            other = model(preprocess_hu(hu_slices(b, *hu_hw, seed=hu_seed + 100), cfg, size=size), lung_mask=mask,
                          patient_ids=torch.tensor(ids))
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
            if keep is None or n in keep or n == "seg.input" or n == "cls.input" or n.startswith("patient.pooled."):
                put(n, t)
        info[key] = {"batch": b, "hu_size": list(hu_hw), "size": list(size), "patient_ids": ids}
        lp = out["lung_prob"]
        print(f"  {name} case {key}: lung_prob in [{lp.min():.3f}, {lp.max():.3f}] mean {lp.mean():.3f}; "
              f"slice_logits {[round(v, 4) for v in out['slice_logits'].flatten().tolist()]}; "
              f"patient_logits {[round(v, 4) for v in out['patient_logits'].flatten().tolist()]}")
        report_magnitudes(f"{name} case {key}", {**out["intermediates"], **{n: out[n] for n in ("lung_logits", "infection_logits_s8", "slice_embedding", "slice_logits", "patient_logits")}})
        report_sensitivity(f"{name} case {key}", {n: (other[n], out[n]) for n in (
            "lung_logits", "infection_logits_s8", "slice_embedding", "slice_logits", "patient_logits")})

    meta = {
        "fixture.code_sha256": chash,
        "fixture.cases": json.dumps(info),
        "fixture.weights": json.dumps({"seed": seed, "dtype": "F16", "sha256": wsha, "size": wsize,
                                       "metadata": metadata, "manifest": manifest}),
    }
    path = os.path.join(OUT, f"{name}.fixture.safetensors")
    safetensors_io.save(tensors, meta, path)
    print(f"wrote {path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes (weights file would be {wsize})")


def efficientnet_fixture(chash: str, variant: str, seed: int, sizes: dict, input_seed: int, all_features: bool) -> None:
    """Writes ``<variant>.fixture.safetensors``: per case (key -> (H, W)) ``input`` 1x3xHxW, ``logits`` and
    ``features.8`` (all of ``features.{0..8}`` with all_features)."""
    model = getattr(torchvision.models, variant)(weights=None).eval()
    gcal = torch.Generator().manual_seed(5)
    xcal = torch.randn(4, 3, *next(iter(sizes.values())), generator=gcal)
    manifest = fill_weights(model, seed, calibrate=lambda m: m(xcal))
    sd = OrderedDict((k, v.detach().to(torch.float32).contiguous()) for k, v in model.state_dict().items()
                     if not k.endswith("num_batches_tracked"))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"{variant}.safetensors")
        safetensors_io.save(sd, None, path)  # a plain torchvision state dict, F32, no metadata
        wsha, wsize = sha256_file(path), os.path.getsize(path)
    del sd
    g = torch.Generator().manual_seed(input_seed)
    tensors = OrderedDict()
    for key, (h, w) in sizes.items():
        x = torch.randn(1, 3, h, w, generator=g)
        x2 = torch.randn(1, 3, h, w, generator=g)
        tensors[f"{key}/input"] = x
        with torch.no_grad():
            y = x
            feats = {}
            for i, f in enumerate(model.features):
                y = f(y)
                feats[f"features.{i}"] = y.contiguous()
                if all_features or i == 8:
                    tensors[f"{key}/features.{i}"] = y.contiguous()
            tensors[f"{key}/logits"] = model(x).contiguous()
            y2 = model.features(x2)
            logits2 = model(x2)
        report_magnitudes(f"{variant} {key}", {**feats, "logits": tensors[f"{key}/logits"]})
        report_sensitivity(f"{variant} {key} {h}x{w}", {"features.8": (y2, tensors[f"{key}/features.8"]),
                                                         "logits": (logits2, tensors[f"{key}/logits"])})
    meta = {
        "fixture.code_sha256": chash,
        "fixture.weights": json.dumps({"seed": seed, "dtype": "F32", "sha256": wsha, "size": wsize,
                                       "metadata": None, "manifest": manifest}),
    }
    path = os.path.join(OUT, f"{variant}.fixture.safetensors")
    safetensors_io.save(tensors, meta, path)
    print(f"wrote {path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes (weights file would be {wsize})")


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
    two_stage_fixture(chash, "tiny", tiny_config(), 1, {
        "A": (2, (80, 80), (64, 64), [0, 0], 7),
        "B": (1, (40, 36), (64, 48), [0], 8),
    })
    two_stage_fixture(chash, "default", default_config(), 4, {"A": (2, (80, 80), (64, 64), [0, 0], 9)},
                      keep={"seg.e4", "seg.bottleneck", "cls.f8", "cls.msff", "cls.pool_a", "cls.pool_g"})
    efficientnet_fixture(chash, "efficientnet_b0", 2, {"A": (64, 64), "B": (48, 64)}, 3, all_features=True)
    for i in range(1, 8):
        efficientnet_fixture(chash, f"efficientnet_b{i}", 10 + i, {"A": (64, 64), "B": (48, 80)}, 100 + i,
                             all_features=False)
    specs_fixture(chash)
    return 0


if __name__ == "__main__":
    sys.exit(main())
