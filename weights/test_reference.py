#!/usr/bin/env python3
"""Smoke tests of the PyTorch reference, the exporter and the safetensors I/O.

    /usr/bin/python3 weights/test_reference.py          (about 30 s on 2 CPU cores)

Prints one line per test and 'N passed, M failed'; exit status 1 on any failure.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import safetensors_io  # noqa: E402
import export  # noqa: E402
from reference import (  # noqa: E402
    ModelConfig,
    build_model,
    default_config,
    exported_state_dict,
    get_config,
    make_optimizer,
    normalise,
    preprocess_hu,
    random_batch,
    randomize_batchnorm,
    tiny_config,
    train_step,
    window,
)

torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
TESTS = []
TMP = tempfile.mkdtemp(prefix="covidct_weights_test_")


def test(fn):
    TESTS.append(fn)
    return fn


def close(a, b, tol=1e-6):
    return torch.allclose(a, b, atol=tol, rtol=tol)


_MODEL_CACHE = {}


def tiny_model(seed=0, randomize_bn=True):
    key = (seed, randomize_bn)
    if key not in _MODEL_CACHE:
        m = build_model(tiny_config(), seed)
        if randomize_bn:
            randomize_batchnorm(m, torch.Generator().manual_seed(seed))
        _MODEL_CACHE[key] = m.eval()
    return _MODEL_CACHE[key]


def set_lung_bias(model, value):
    """Force stage 1 to see lung everywhere (+) or nowhere (-)."""
    with torch.no_grad():
        old = model.seg.head.out.bias.clone()
        model.seg.head.out.bias.fill_(value)
        model.seg.head.out.weight.mul_(0.0 if abs(value) > 10 else 1.0)
    return old


# ------------------------------------------------------------------------------ config

@test
def config_json_round_trip():
    for cfg in (tiny_config(), default_config(), get_config("tiny", "efficientnet_b5")):
        d = json.loads(json.dumps(cfg.to_dict()))
        assert ModelConfig.from_dict(d) == cfg
        md = {"covidct.config": json.dumps(cfg.model_dict()),
              "covidct.preprocess": json.dumps(cfg.preprocess.to_dict())}
        assert ModelConfig.from_metadata(md) == cfg
    d = default_config().to_dict()
    assert d["seg"]["dense_blocks"] == 3 and d["seg"]["bottleneck_channels"] == 256
    assert d["seg"]["decoder_channels"] == [128, 64, 32] and d["seg"]["head_channels"] == 16
    assert d["cls"]["backbone"] == "efficientnet_b7" and d["cls"]["fused_channels"] == 256
    assert d["cls"]["slice_head_widths"] == [512, 256] and d["cls"]["patient_hidden"] == 128
    assert d["cls"]["backbone_bn_eps"] == 1e-3 and d["seg"]["encoder_bn_eps"] == 1e-5
    assert d["preprocess"]["window_min"] == -1150 and d["preprocess"]["lung_area_threshold"] == 0.01
    assert get_config("tiny", "efficientnet_b3").cls.backbone_bn_eps == 1e-5
    try:
        ModelConfig.from_dict({"bogus": 1})
        raise AssertionError("unknown key accepted")
    except ValueError:
        pass


# ------------------------------------------------------------------------------ model structure

PREFIXES = ("seg.encoder.features.", "seg.bottleneck.blocks.", "seg.dec3.", "seg.dec2.", "seg.dec1.",
            "seg.head.", "cls.backbone.features.", "cls.msff.", "cls.infection.", "cls.slice_head.",
            "cls.slice_out.", "patient.fc1.", "patient.fc2.")


@test
def state_dict_names_and_shapes():
    m = tiny_model()
    sd = exported_state_dict(m)
    assert all(k.startswith(PREFIXES) for k in sd), [k for k in sd if not k.startswith(PREFIXES)][:5]
    assert not any(k.endswith("num_batches_tracked") for k in sd)
    enc = {k.split(".")[3] for k in sd if k.startswith("seg.encoder.features.")}
    assert enc == {"0", "1", "2", "3", "4"}, enc
    bb = {k.split(".")[3] for k in sd if k.startswith("cls.backbone.features.")}
    assert bb == {str(i) for i in range(9)}, bb
    assert sd["seg.encoder.features.0.0.weight"].shape == (32, 3, 3, 3)
    cfg = m.config
    cb, (d3, d2, d1) = cfg.seg.bottleneck_channels, cfg.seg.decoder_channels
    assert sd["seg.bottleneck.blocks.0.conv1.weight"].shape == (cb, 80, 3, 3)
    assert sd["seg.bottleneck.blocks.2.conv1.weight"].shape == (cb, 80 + 2 * cb, 3, 3)
    assert sd["seg.dec3.up_conv.weight"].shape == (d3, cb, 3, 3)
    assert sd["seg.dec3.skip_conv.weight"].shape == (d3, 40, 1, 1)
    assert sd["seg.dec2.up_conv.weight"].shape == (d2, d3, 3, 3)
    assert sd["seg.dec1.skip_conv.weight"].shape == (d1, 16, 1, 1)
    assert sd["seg.dec3.gru.fwd.conv_zr.weight"].shape == (2 * d3, 2 * d3, 3, 3)
    assert sd["seg.dec3.gru.fwd.conv_zr.bias"].shape == (2 * d3,)
    assert sd["seg.dec3.gru.bwd.conv_n.weight"].shape == (d3, 2 * d3, 3, 3)
    assert sd["seg.dec3.gru.out.weight"].shape == (d3, 2 * d3, 1, 1) and "seg.dec3.gru.out.bias" in sd
    assert sd["seg.dec3.scse.cse_fc1.weight"].shape == (max(d3 // 8, 4), d3, 1, 1)
    assert sd["seg.dec3.scse.sse.weight"].shape == (1, d3, 1, 1)
    assert sd["seg.dec3.scse.fuse_conv.weight"].shape == (d3, 2 * d3, 1, 1)
    assert "seg.dec3.scse.fuse_conv.bias" not in sd and "seg.dec3.up_conv.bias" not in sd
    assert sd["seg.head.conv.weight"].shape == (cfg.seg.head_channels, d1, 3, 3)
    assert sd["seg.head.out.weight"].shape == (1, cfg.seg.head_channels, 1, 1)
    cf = cfg.cls.fused_channels
    assert sd["cls.msff.conv.weight"].shape == (cf, 40 + 112 + 1280, 1, 1)
    assert sd["cls.infection.weight"].shape == (2, cf, 1, 1)
    w1, w2 = cfg.cls.slice_head_widths
    assert sd["cls.slice_head.0.linear.weight"].shape == (w1, cf + 1280)
    assert sd["cls.slice_head.1.bn.running_var"].shape == (w2,)
    assert sd["cls.slice_out.weight"].shape == (3, w2)
    assert sd["patient.fc1.weight"].shape == (cfg.cls.patient_hidden, 2 * w2)
    assert sd["patient.fc2.weight"].shape == (3, cfg.cls.patient_hidden)
    # names are torchvision's under the prefix
    import torchvision
    tv = torchvision.models.efficientnet_b0(weights=None).state_dict()
    for k in tv:
        if k.startswith("features.") and not k.endswith("num_batches_tracked"):
            assert "cls.backbone." + k in sd, k
            if int(k.split(".")[1]) <= 4:
                assert "seg.encoder." + k in sd, k


@test
def deterministic_init():
    a = exported_state_dict(build_model(tiny_config(), 3))
    b = exported_state_dict(build_model(tiny_config(), 3))
    c = exported_state_dict(build_model(tiny_config(), 4))
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


# ------------------------------------------------------------------------------ forward

def check_forward(h, w):
    m = tiny_model()
    torch.manual_seed(1)
    x = torch.rand(3, 1, h, w)
    with torch.no_grad():
        o = m(x, return_intermediates=True)
        o2 = m(x)
    h8, w8 = o["infection_prob_s8"].shape[-2:]
    assert (h8, w8) == tuple(o["intermediates"]["cls.f3"].shape[-2:])
    want = {
        "lung_logits": (3, 1, h, w), "lung_prob": (3, 1, h, w), "lung_mask": (3, 1, h, w),
        "infection_prob": (3, 1, h, w), "infection_prob_s8": (3, 1, h8, w8),
        "infection_logits_s8": (3, 2, h8, w8), "slice_logits": (3, 3), "slice_embedding": (3, 16),
        "patient_logits": (1, 3), "lung_area": (3,), "slice_used": (3,), "patient_no_lung": (1,),
        "cls_input": (3, 3, h, w),
    }
    for k, s in want.items():
        assert tuple(o[k].shape) == s, (k, tuple(o[k].shape), s)
    for k in ("lung_logits", "lung_prob", "infection_prob", "slice_logits", "slice_embedding"):
        assert torch.isfinite(o[k]).all(), k
        assert torch.equal(o[k], o2[k]), f"{k} not deterministic"
    it = o["intermediates"]
    strides = {"seg.e1": 2, "seg.e2": 4, "seg.e3": 8, "seg.e4": 16, "seg.bottleneck": 16,
               "seg.dec3": 8, "seg.dec2": 4, "seg.dec1": 2, "cls.f3": 8, "cls.f5": 16, "cls.f8": 32,
               "cls.msff": 8}
    for k, s in strides.items():
        assert k in it, k
        exp = (-(-h // s), -(-w // s))  # ceil: conv stride 2 / pad k//2 gives ceil(n/2) per level
        assert tuple(it[k].shape[-2:]) == exp, (k, tuple(it[k].shape), exp)
    assert it["seg.bottleneck"].shape[1] == 32 and it["seg.dec3"].shape[1] == 16
    assert it["cls.msff"].shape[1] == 16 and it["cls.f8"].shape[1] == 1280
    assert torch.equal(it["seg.bottleneck"], it["seg.dense.x3"])
    # P at input resolution is the bilinear resize of the stride-8 map
    assert close(o["infection_prob"], F.interpolate(o["infection_prob_s8"], size=(h, w), mode="bilinear",
                                                    align_corners=False))
    assert close(o["infection_prob_s8"], torch.softmax(o["infection_logits_s8"], 1)[:, 1:2])
    assert close(o["lung_prob"], torch.sigmoid(o["lung_logits"]))


@test
def forward_64x64():
    check_forward(64, 64)


@test
def forward_64x48_nonsquare():
    check_forward(64, 48)


@test
def forward_odd_size():
    m = tiny_model()
    with torch.no_grad():
        o = m(torch.rand(2, 1, 50, 37), return_intermediates=True)
    assert o["lung_prob"].shape == (2, 1, 50, 37) and o["infection_prob"].shape == (2, 1, 50, 37)
    assert o["intermediates"]["seg.dec3"].shape[-2:] == o["intermediates"]["seg.e3"].shape[-2:]


@test
def preprocessing():
    cfg = tiny_config()
    pre = cfg.preprocess
    hu = torch.tensor([-3000.0, -1150.0, -400.0, 350.0, 2000.0])
    assert close(window(hu, pre), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    x = preprocess_hu(torch.full((2, 100, 80), -400.0), cfg)
    assert x.shape == (2, 1, 64, 64) and close(x, torch.full_like(x, 0.5))
    n = normalise(x, pre)
    assert n.shape == (2, 3, 64, 64)
    assert close(n[0, :, 0, 0], (0.5 - torch.tensor(pre.mean)) / torch.tensor(pre.std))


@test
def stage2_input_masked():
    m = tiny_model()
    x = torch.rand(2, 1, 64, 48)
    lung = torch.zeros(2, 1, 64, 48)
    lung[:, :, 16:48, 8:40] = 1
    with torch.no_grad():
        o = m(x, lung_mask=lung)
    pre = m.config.preprocess
    outside = ((0.0 - torch.tensor(pre.mean)) / torch.tensor(pre.std)).view(1, 3, 1, 1)
    ci = o["cls_input"]
    assert close(ci[:, :, 0:1, 0:1], outside.expand(2, 3, 1, 1))
    assert close(ci[:, :, 20:21, 20:21], normalise(x[:, :, 20:21, 20:21], pre))
    assert close(o["lung_area"], torch.full((2,), 32 * 32 / (64 * 48)))


@test
def patient_head_and_no_lung():
    m = build_model(tiny_config(), 5).eval()
    randomize_batchnorm(m, torch.Generator().manual_seed(5))
    x = torch.rand(4, 1, 64, 48)
    set_lung_bias(m, -50.0)
    with torch.no_grad():
        o = m(x)
    assert bool(o["patient_no_lung"][0]) and torch.isnan(o["patient_logits"]).all()
    assert int(o["patient_slices_used"][0]) == 0 and not o["slice_used"].any()
    set_lung_bias(m, 50.0)
    pids = torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        o = m(x, patient_ids=pids)
        e = o["slice_embedding"]
        for j, pid in enumerate((0, 1)):
            es = e[pids == pid]
            ref = m.patient(torch.cat([es.mean(0), es.max(0).values])[None])[0]
            assert close(o["patient_logits"][j], ref), j
    assert not o["patient_no_lung"].any() and o["patient_slices_used"].tolist() == [2, 2]
    assert o["lung_mask"].all() and close(o["lung_area"], torch.ones(4))


@test
def gru_cell_math():
    m = tiny_model()
    cell = m.seg.dec2.gru.fwd
    c = cell.c
    x, h = torch.randn(1, c, 5, 4), torch.randn(1, c, 5, 4)
    wz, wr = cell.conv_zr.weight[:c], cell.conv_zr.weight[c:]
    bz, br = cell.conv_zr.bias[:c], cell.conv_zr.bias[c:]
    xh = torch.cat([x, h], 1)
    with torch.no_grad():
        z = torch.sigmoid(F.conv2d(xh, wz, bz, padding=1))
        r = torch.sigmoid(F.conv2d(xh, wr, br, padding=1))
        n = torch.tanh(F.conv2d(torch.cat([x, r * h], 1), cell.conv_n.weight, cell.conv_n.bias, padding=1))
        assert close(cell(x, h), (1 - z) * h + z * n, 1e-5)


# ------------------------------------------------------------------------------ training

@test
def train_two_steps():
    m = build_model(tiny_config(), 7)
    opt = make_optimizer(m, lr=1e-3)
    batch = random_batch(3, 64, 48, n_patients=1, generator=torch.Generator().manual_seed(7))
    before = {k: v.detach().clone() for k, v in m.named_parameters()}
    torch.manual_seed(7)
    hist = [train_step(m, opt, batch) for _ in range(2)]
    for losses in hist:
        assert set(losses) >= {"lung_dice", "infection_dice", "slice_ce", "patient_ce", "total"}, losses
        assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    unused = [k for k, p in m.named_parameters() if p.grad is None]
    assert not unused, f"parameters without gradient: {unused[:5]}"
    changed = [k for k, p in m.named_parameters() if not torch.equal(before[k], p.detach())]
    assert len(changed) == len(before), f"{len(before) - len(changed)} parameters did not change"
    print(f"      losses step1 {hist[0]['total']:.4f} step2 {hist[1]['total']:.4f}")


# ------------------------------------------------------------------------------ safetensors / export

@test
def safetensors_io_round_trip():
    p = os.path.join(TMP, "io.safetensors")
    ts = {
        "f32": torch.randn(3, 5), "f16": torch.randn(7).half(), "bf16": torch.randn(2, 3).bfloat16(),
        "i64": torch.arange(5), "u8": torch.arange(9, dtype=torch.uint8).reshape(3, 3),
        "b": torch.tensor([True, False]), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4),
    }
    safetensors_io.save(ts, {"k": "v", "json": '{"a": 1}'}, p)
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    assert (8 + n) % 8 == 0
    assert [k for k in hdr if k != "__metadata__"] == list(ts)
    out, md = safetensors_io.load(p)
    assert md == {"k": "v", "json": '{"a": 1}'}
    assert list(out) == list(ts)
    for k in ts:
        assert out[k].dtype == ts[k].dtype and out[k].shape == ts[k].shape and torch.equal(out[k], ts[k]), k
    try:
        safetensors_io.save({"a": torch.zeros(1)}, {"k": 1}, p)
        raise AssertionError("non-string metadata accepted")
    except TypeError:
        pass


@test
def export_load_round_trip_f32():
    m = tiny_model()
    p = os.path.join(TMP, "tiny_f32.safetensors")
    export.export_model(m, p, "f32", "test")
    header, md, start = safetensors_io.read_header(p)
    assert start % 8 == 0
    sd = exported_state_dict(m)
    assert list(header) == list(sd), "file order must be state_dict order"
    pos = 0
    for k, info in header.items():
        assert info["dtype"] == "F32" and info["data_offsets"][0] == pos
        pos = info["data_offsets"][1]
    assert md["covidct.format"] == "1"
    assert ModelConfig.from_metadata(md) == m.config
    assert json.loads(md["covidct.preprocess"]) == m.config.preprocess.to_dict()
    tensors, _ = safetensors_io.load(p)
    assert all(torch.equal(tensors[k], sd[k]) for k in sd)
    m2 = export.load_model(p)
    x = torch.rand(2, 1, 64, 48)
    with torch.no_grad():
        a, b = m(x), m2(x)
    for k in ("lung_logits", "infection_prob", "slice_logits", "slice_embedding"):
        assert torch.equal(a[k], b[k]), k


@test
def export_half_precision():
    m = tiny_model()
    sd = exported_state_dict(m)
    for dt, tol in (("f16", 1e-3), ("bf16", 8e-3)):
        p = os.path.join(TMP, f"tiny_{dt}.safetensors")
        export.export_model(m, p, dt)
        tensors, md = safetensors_io.load(p)
        assert md["covidct.dtype"] == dt
        for k, v in tensors.items():
            assert v.dtype == export.DTYPES[dt]
            assert torch.allclose(v.float(), sd[k], rtol=tol, atol=1e-4), k
        assert os.path.getsize(p) < 0.6 * sum(t.numel() * 4 for t in sd.values())


@test
def export_cli_and_checkpoint():
    out = os.path.join(TMP, "cli.safetensors")
    cmd = [sys.executable, os.path.join(_HERE, "export.py"), "--config", "tiny", "--seed", "2",
           "--out", out, "--randomize-bn"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ref = build_model(tiny_config(), 2)
    randomize_batchnorm(ref, torch.Generator().manual_seed(2))
    tensors, md = safetensors_io.load(out)
    sd = exported_state_dict(ref)
    assert all(torch.equal(tensors[k], sd[k]) for k in sd)
    assert not torch.equal(tensors["seg.head.bn.running_var"], torch.ones_like(tensors["seg.head.bn.running_var"]))
    ck = os.path.join(TMP, "ckpt.pt")
    torch.save({"state_dict": ref.state_dict(), "config": ref.config.to_dict()}, ck)
    out2 = os.path.join(TMP, "cli2.safetensors")
    r = subprocess.run([sys.executable, os.path.join(_HERE, "export.py"), "--from-checkpoint", ck,
                        "--out", out2, "--dtype", "bf16"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    t2, md2 = safetensors_io.load(out2)
    assert md2["covidct.config"] == md["covidct.config"]
    assert all(torch.equal(t2[k], sd[k].bfloat16()) for k in sd)


@test
def default_config_builds():
    m = build_model(default_config(), 0).eval()
    n_bb = sum(p.numel() for p in m.cls.backbone.parameters())
    assert abs(n_bb - 63_786_960) < 1000, n_bb  # torchvision B7 features (66.3M incl. its classifier)
    assert m.cls.backbone.features[0][1].eps == 1e-3 and m.seg.encoder.features[0][1].eps == 1e-5
    assert m.seg.dec3.bn1.eps == 1e-5
    with torch.no_grad():
        o = m(torch.rand(2, 1, 64, 64), lung_mask=torch.ones(2, 1, 64, 64))
    assert o["slice_embedding"].shape == (2, 256) and o["patient_logits"].shape == (1, 3)
    assert torch.isfinite(o["patient_logits"]).all()


@test
def postprocess_drops_gas_far_below_the_lungs():
    """weights/postprocess.py (the engine's rule, test/postprocess.test.ts): a component read as lung that lies mostly
    more than NEAR_ANCHORS_MM from the slices of the large components (the lungs) is dropped; one within it is kept."""
    import numpy as np
    import postprocess as pp
    z, y, x = 40, 32, 32
    hu = np.full((z, y, x), 40.0, dtype=np.float32)
    hu[:, 0, :] = hu[:, -1, :] = hu[:, :, 0] = hu[:, :, -1] = -1000.0  # air around the body
    lung = np.zeros((z, y, x), dtype=bool)
    lung[20:38, 6:26, 4:14] = True  # the largest component, slices 20..37
    lung[14:17, 8:20, 18:28] = True  # 360 voxels, slices 14..16: within 6 slices of 5 mm
    lung[0:6, 8:18, 18:28] = True  # 600 voxels, slices 0..5: 70 mm below
    assert pp.NEAR_ANCHORS_MM / 5.0 == 6
    r = pp.postprocess(lung, hu, 5.0)
    out = r["lung"]
    assert out[20:38, 6:26, 4:14].all() and out[14:17, 8:20, 18:28].all()
    assert not out[0:6].any()
    assert r["removed_components"] == 600, r["removed_components"]
    # At 10 mm slices the margin is 3 slices: the pocket 4..6 slices below is dropped as well.
    r = pp.postprocess(lung, hu, 10.0)
    assert not r["lung"][14:17].any() and r["removed_components"] == 960
    # Gas larger than either lung (4000 voxels against 3600 each, far below them): the lungs still set the range
    # (ANCHOR_FRACTION), so nothing is dropped rather than the lungs.
    lung = np.zeros((z, y, x), dtype=bool)
    lung[20:38, 6:26, 2:12] = True
    lung[20:38, 6:26, 18:28] = True
    lung[0:10, 6:26, 6:26] = True
    assert 3600 >= pp.ANCHOR_FRACTION * 4000
    r = pp.postprocess(lung, hu, 5.0)
    assert r["lung"].sum() == 3600 * 2 + 4000 and r["removed_components"] == 0



@test
def chest_coverage_whole_lungs_or_not():
    """weights/postprocess.py's chest check (the engine's chestCoverage, test/postprocess.test.ts): a chest CT whose
    lowest or highest slice holds at least CUT_END_FRACTION of its largest lung slice's lung does not show the lungs
    whole and gets no patient class; "not a chest CT" comes first."""
    import numpy as np
    import postprocess as pp
    px = 100 * 100
    assert pp.CUT_END_FRACTION == 0.25

    def shaped(lower, upper):
        return np.array([lower if z == 0 else upper if z == 49 else 200 if z < 5 or z > 44 else 2000 for z in range(50)])

    c = pp.chest_coverage(shaped(0, 0), px, 5.0, 3000.0)
    assert c["is_chest"] and c["lungs_whole"] is True and not pp.no_class_for_cut_lungs(c)
    assert pp.chest_coverage(shaped(499, 499), px, 5.0, 3000.0)["lungs_whole"] is True
    c = pp.chest_coverage(shaped(500, 0), px, 5.0, 3000.0)
    assert c["lungs_whole"] is False and c["lower_end_fraction"] == 0.25 and pp.no_class_for_cut_lungs(c)
    c = pp.chest_coverage(shaped(0, 1620), px, 5.0, 3000.0)
    assert c["lungs_whole"] is False and abs(c["upper_end_fraction"] - 0.81) < 1e-12 and pp.no_class_for_cut_lungs(c)
    c = pp.chest_coverage(np.full(6, 2000), px, 8.0, 600.0)  # a short slab through the chest
    assert c["is_chest"] and pp.no_class_for_cut_lungs(c)
    c = pp.chest_coverage(np.array([2000 if z >= 64 else 0 for z in range(80)]), px, 5.0, 900.0)  # a sliver at one end
    assert not c["is_chest"] and c["lungs_whole"] is False and not pp.no_class_for_cut_lungs(c)
    c = pp.chest_coverage(np.zeros(50), px, 5.0, 0.0)
    assert c["lungs_whole"] is None and c["lower_end_fraction"] is None and not pp.no_class_for_cut_lungs(c)



@test
def final_mask_slices_keep_what_the_postprocessing_kept():
    """postprocess.final_mask_slices (evaluate_real.py --patient-slices final): of stage 1's patient-head slices,
    those of which the post-processing kept at least half of the lung voxels; a slice it emptied leaves."""
    import numpy as np
    import postprocess as pp
    used = np.array([True, True, True, True, False])
    fin = np.array([100, 50, 49, 0, 100])
    raw = np.array([100, 100, 100, 0, 100])
    assert pp.final_mask_slices(used, fin, raw).tolist() == [True, True, False, False, False]


def main():
    t0 = time.time()
    passed = failed = 0
    for fn in TESTS:
        t = time.time()
        try:
            fn()
            passed += 1
            print(f"PASS {fn.__name__} ({time.time() - t:.1f}s)")
        except Exception:
            failed += 1
            print(f"FAIL {fn.__name__} ({time.time() - t:.1f}s)")
            traceback.print_exc()
    shutil.rmtree(TMP, ignore_errors=True)
    print(f"{passed} passed, {failed} failed ({time.time() - t0:.1f}s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
