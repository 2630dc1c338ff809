#!/usr/bin/env python3
"""Tests of the synthetic generator and the training recipe (seconds on 2 cores).

    /usr/bin/python3 weights/test_train.py        # prints 'N passed, 0 failed'

* the generator's masks agree with its labels: no infection in 'no infection' studies, lesions in
  both lungs for COVID-19-like, in one lung only for CAP-like, infection inside the lung, lesion HU
  in the stated ranges, per-slice labels consistent with the masks;
* the written NIfTI files say what docs/training.md says (axcodes L,P,S; the axial view has the
  spine posterior and the heart on the patient's left) and read back unchanged through dataset.py;
* a few training steps of each stage lower the loss on generated data;
* train.py end to end (one step per stage; the patient stage changes the patient head only) exports a
  file whose metadata says what it was trained on;
* average.py averages checkpoints tensor by tensor and refuses checkpoints of different shapes.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

import dataset as ds  # noqa: E402
import export  # noqa: E402
import safetensors_io  # noqa: E402
import synth  # noqa: E402
import train  # noqa: E402
from reference import build_model, tiny_config  # noqa: E402
from testing import run_tests  # noqa: E402

MATRIX = (64, 64)
SLICES = 14
_cache = {}


def study(label: str, index: int, seed: int = 4242):
    key = (label, index, seed)
    if key not in _cache:
        _cache[key] = synth.generate_study(synth.study_rng(seed, index), label, MATRIX, (5.0, 10.0), SLICES)
    return _cache[key]


def _sides(st):
    """Infection voxel counts in the patient's right and left halves (split at the body centre)."""
    g = st["geometry"]
    coords = (np.arange(g.n) + 0.5) * g.ps - g.fov / 2
    right = (coords < g.cx)[None, None, :]  # x (column) increases toward the patient's left
    inf = st["infection"].astype(bool)
    return int((inf & right).sum()), int((inf & ~right).sum())


def test_none_has_no_infection():
    for i in range(3):
        st = study("no infection", i)
        assert st["lung"].sum() > 1000, "lungs present"
        assert st["infection"].sum() == 0, "no infection voxels in a 'no infection' study"
        assert all(s == "no infection" for s in st["slice_labels"])


def test_covid_bilateral_and_inside_lung():
    for i in range(3):
        st = study("COVID-19", i)
        r, l = _sides(st)
        assert r > 0 and l > 0, f"COVID-like study {i} must be bilateral (right {r}, left {l})"
        inf = st["infection"].astype(bool)
        assert not (inf & ~st["lung"].astype(bool)).any(), "infection outside the lung"
        assert "COVID-19" in st["slice_labels"]


def test_cap_unilateral_and_inside_lung():
    for i in range(3):
        st = study("CAP", i)
        r, l = _sides(st)
        assert (r > 0) != (l > 0), f"CAP-like study {i} must be unilateral (right {r}, left {l})"
        inf = st["infection"].astype(bool)
        assert not (inf & ~st["lung"].astype(bool)).any(), "infection outside the lung"
        assert "CAP" in st["slice_labels"]


def test_cap_lesions_when_the_subtree_leaves_the_lung():
    """Seed 3, study 19 (the test set's, 96-128 matrix, 7-12 mm): the chosen airway subtree runs medially out of the
    lung; the generator once wrote it as a CAP study with an empty infection mask."""
    st = synth.generate_study(synth.study_rng(3, 19), "CAP", (96, 128), (7.0, 12.0), None)
    r, l = _sides(st)
    assert (r > 0) != (l > 0), f"unilateral lesions expected (right {r}, left {l})"
    assert "CAP" in st["slice_labels"]


def test_cap_lesions_when_every_candidate_lies_in_the_other_lung():
    """Seed 30, study 97 (96-128 matrix, 7-12 mm): the chosen subtree crosses the midline and every candidate point lies
    in the other lung, where the side mask erased the lesions; the generator raised instead of writing the study, which
    stopped `synth.py --seed 30` at that study. The retry draws among this side's points."""
    draws = []
    sample = synth.sample_lesions

    def recording(rng, *args, **kw):
        state = copy.deepcopy(rng.bit_generator.state)
        out = sample(rng, *args, **kw)
        draws.append((kw.get("same_side", False), out[0], state, args))
        return out

    synth.sample_lesions = recording
    try:
        st = synth.generate_study(synth.study_rng(30, 97), "CAP", (96, 128), (7.0, 12.0), None)
    finally:
        synth.sample_lesions = sample
    assert [d[0] for d in draws] == [False, True], "the first draw fails, the retry draws on one side"
    assert all(np.sign(les.center[0]) == np.sign(les.side) for les in draws[1][1]), "retry lesions in the other lung"
    # the failing draw itself, repeated with same_side: the same side and subtree, its lesions now on that side
    _, first, state, args = draws[0]
    assert all(np.sign(les.center[0]) != np.sign(les.side) for les in first), "the first draw crossed the midline"
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    again, _ = sample(rng, *args, same_side=True)
    assert again and all(np.sign(les.center[0]) == np.sign(les.side) for les in again), "same_side keeps one side"
    r, l = _sides(st)
    assert (r > 0) != (l > 0), f"unilateral lesions expected (right {r}, left {l})"
    assert not (st["infection"].astype(bool) & ~st["lung"].astype(bool)).any(), "infection outside the lung"
    assert "CAP" in st["slice_labels"]


def test_lesion_density():
    """COVID-like lesions are ground glass (mean well below soft tissue), CAP-like ones consolidation."""
    cov = study("COVID-19", 0)
    cap = study("CAP", 0)
    normal = study("no infection", 0)
    lung_mean = float(normal["hu"][normal["lung"].astype(bool)].mean())
    mc = float(cov["hu"][cov["infection"].astype(bool)].mean())
    mp = float(cap["hu"][cap["infection"].astype(bool)].mean())
    assert lung_mean < -700, f"normal lung mean {lung_mean:.0f} HU"
    assert -800 < mc < -150, f"COVID-like lesion mean {mc:.0f} HU (ground glass, some consolidation)"
    assert -450 < mp < 80, f"CAP-like lesion mean {mp:.0f} HU (consolidation, air bronchograms, GGO rim)"
    assert mp > mc, "CAP-like lesions denser than COVID-like ones"


def test_slice_labels_follow_masks():
    st = study("COVID-19", 1)
    for k, lab in enumerate(st["slice_labels"]):
        ia = int(st["infection"][k].sum())
        la = int(st["lung"][k].sum())
        infected = ia >= synth.MIN_INFECTED_VOXELS and ia >= synth.SLICE_INFECTED_FRACTION * max(la, 1)
        assert (lab == "COVID-19") == infected, f"slice {k}: label {lab}, infected voxels {ia}"


def test_deterministic():
    a = synth.generate_study(synth.study_rng(7, 3), "CAP", MATRIX, (5.0, 10.0), 8)
    b = synth.generate_study(synth.study_rng(7, 3), "CAP", MATRIX, (5.0, 10.0), 8)
    c = synth.generate_study(synth.study_rng(8, 3), "CAP", MATRIX, (5.0, 10.0), 8)
    assert np.array_equal(a["hu"], b["hu"]) and np.array_equal(a["infection"], b["infection"])
    assert not np.array_equal(a["hu"], c["hu"])


def test_nifti_orientation_and_roundtrip():
    import nibabel as nib
    st = study("COVID-19", 2)
    with tempfile.TemporaryDirectory() as d:
        synth.write_study(st, os.path.join(d, "s0"))
        with open(os.path.join(d, "labels.csv"), "w") as f:
            f.write("study,label\ns0,COVID-19\n")
        img = nib.load(os.path.join(d, "s0", "scan.nii.gz"))
        assert nib.aff2axcodes(img.affine) == ("L", "P", "S"), nib.aff2axcodes(img.affine)
        assert img.get_data_dtype() == np.int16
        back = ds.read_study(d, "s0", 0)
        assert np.array_equal(back.hu, st["hu"].astype(np.float32)), "scan round trip"
        assert np.array_equal(back.lung, st["lung"]) and np.array_equal(back.infection, st["infection"])
        g = st["geometry"]
        assert np.allclose(back.spacing, (g.dz, g.ps, g.ps), rtol=1e-5)
        # a flipped copy (RAS voxel order) reads back as the same axial view
        flipped = nib.Nifti1Image(np.asarray(img.dataobj)[::-1, ::-1, :].copy(),
                                  img.affine @ np.array([[-1, 0, 0, g.n - 1], [0, -1, 0, g.n - 1], [0, 0, 1, 0], [0, 0, 0, 1]]))
        os.makedirs(os.path.join(d, "s1"))
        nib.save(flipped, os.path.join(d, "s1", "scan.nii.gz"))
        assert nib.aff2axcodes(flipped.affine) == ("R", "A", "S")
        back2 = ds.read_study(d, "s1", 0)
        assert np.array_equal(back2.hu, back.hu), "reorientation to the axial view"
    # anatomy in the axial view: rows anterior -> posterior, columns patient right -> left
    hu = st["hu"].astype(np.float32)
    k = int(np.argmax(st["lung"].sum(axis=(1, 2))))
    sl = hu[k]
    rows = np.nonzero(sl > 500)[0]
    assert rows.mean() > g.n / 2, "bone (spine) should sit posterior: in the lower half of the rows"
    zt = np.arange(st["hu"].shape[0]) * g.dz + g.z0
    heart_k = int(np.argmin(np.abs(zt / g.lung_h - 0.2)))
    lung_k = st["lung"][heart_k]
    cols = np.arange(g.n)
    mid = int(np.round((g.cx + g.fov / 2) / g.ps))
    right_area = int(lung_k[:, cols < mid].sum())
    left_area = int(lung_k[:, cols >= mid].sum())
    assert right_area > left_area, f"the heart takes room from the left lung (right {right_area}, left {left_area})"


def _cfg32():
    """The tiny config at 32 x 32 (the tests' grid)."""
    cfg = tiny_config()
    cfg.input_size = 32
    return cfg


def _prepared(labels):
    """Generated studies of these labels on a 32 x 32 tiny-config grid: (cfg, prepared studies)."""
    cfg = _cfg32()
    studies = [ds.prepare(ds.Study(f"s{i}", ds.label_index(st["label"]), st["hu"].astype(np.float32),
                                   (st["geometry"].dz, st["geometry"].ps, st["geometry"].ps), st["lung"],
                                   st["infection"], None), cfg)
               for i, st in enumerate([study(lab, 0) for lab in labels])]
    return cfg, studies


def _batch():
    cfg, studies = _prepared(["COVID-19", "CAP", "no infection"])
    rng = np.random.default_rng(0)
    b = train.sample_batch(studies, rng, 2, 3, 1.0)
    return cfg, b


def test_training_steps_lower_the_loss():
    """Six Adam steps on one batch of generated slices lower each stage's loss (BatchNorm in batch
    mode, dropout off so the before/after losses are comparable)."""
    cfg, b = _batch()
    for stage in ("seg", "cls", "joint"):
        model = build_model(cfg, seed=0)
        model.train()
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.eval()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        losses = []
        for _ in range(7):
            opt.zero_grad()
            loss = train.step_losses(model, b, stage, seg_bce=0.0, inf_dice="batch", inf_ce=1.0)
            losses.append(float(loss["total"]))
            loss["total"].backward()
            opt.step()
        assert losses[-1] < losses[0] - 0.02, f"{stage}: loss {losses[0]:.4f} -> {losses[-1]:.4f} after 6 Adam steps"


def test_infected_slice_oversampling():
    """--infected-slices: at least that fraction of an infected study's slices comes from its infected slices; a study
    without infected slices still gets slices (all 'no infection'); without the option the share follows the study."""
    _, studies = _prepared(["COVID-19", "no infection"])
    n_inf = [int((s_.slice_labels != ds.NO_INFECTION).sum()) for s_ in studies]
    assert n_inf[0] and not n_inf[1], "the COVID-19 study needs infected slices, the healthy one none"
    share = n_inf[0] / studies[0].image.shape[0]
    rng = np.random.default_rng(1)
    got = {0: [], 1: []}
    for _ in range(40):
        b = train.sample_batch(studies, rng, 1, 8, 1.0, infected=0.75)
        lab = int(b["patient_label"][0])
        got[0 if lab != ds.NO_INFECTION else 1].append(b["slice_label"])
    frac = float((torch.cat(got[0]) != ds.NO_INFECTION).float().mean())
    assert frac >= 0.75, f"infected share {frac:.2f} of the COVID-19 study's sampled slices (want >= 0.75; {share:.2f} of its slices)"
    assert got[1] and all(bool((s_ == ds.NO_INFECTION).all()) for s_ in got[1])
    # without oversampling the share follows the study (lung slices only here): well below 0.75
    rng = np.random.default_rng(1)
    plain = [train.sample_batch(studies[:1], rng, 1, 8, 1.0)["slice_label"] for _ in range(40)]
    frac0 = float((torch.cat(plain) != ds.NO_INFECTION).float().mean())
    assert frac0 < 0.75, f"share {frac0:.2f} without oversampling"


def test_real_batch_thick_slices_and_masks():
    """sample_real_batch (stage 1 on real CT): slices of the real studies with their own lung masks, empty infection
    targets, 'no infection' labels; a thick slice is the mean of adjacent thin slices with the centre slice's mask,
    never wider than thick_mm allows, and a study of thick slices (dz = thick_mm) is never averaged."""
    _, studies = _prepared(["no infection"])
    st = copy.copy(studies[0])
    z = st.image.shape[0]
    # slice k holds the value k / z everywhere: the mean of a window is the mean of its indices
    st.image = (torch.arange(z, dtype=torch.float32)[:, None, None] / z).expand(z, *st.image.shape[1:]).to(torch.float16)
    st.dz = 2.0
    rng = np.random.default_rng(3)
    widths = set()
    for _ in range(30):
        b = train.sample_real_batch([st], rng, 2, 4, 0.75, thick_mm=6.0)
        assert b["image"].shape == (8, 1, *st.image.shape[1:]) and b["lung_mask"].shape == b["image"].shape
        assert float(b["infection_mask"].abs().sum()) == 0 and bool((b["slice_label"] == ds.NO_INFECTION).all())
        for x, m in zip(b["image"][:, 0], b["lung_mask"][:, 0]):
            v = float(x[0, 0]) * z
            # the mask is one of the study's slice masks
            assert any(torch.equal(m, st.lung[k].float()) for k in range(z))
            # a window of w adjacent indices has a mean that is a multiple of 1/2 and inside [0, z-1]
            assert abs(v * 2 - round(v * 2)) < 0.02 and -0.01 <= v <= z - 0.99
            widths.add(round((v % 1) * 2) % 2)
    assert widths == {0, 1}, "both odd (or single) and even window widths should occur"
    st.dz = 6.0
    b = train.sample_real_batch([st], rng, 4, 4, 0.75, thick_mm=6.0)
    vals = b["image"][:, 0, 0, 0] * z
    assert torch.allclose(vals, vals.round(), atol=0.02), "dz = thick_mm: single slices only"


def test_scanner_augment_keeps_air_and_range():
    """scanner_augment: kernels and coarser pixels change the body's voxels only; outside air (0) stays 0, values stay
    in [0, 1], shapes unchanged, and a blur or sharpening actually happens."""
    _, studies = _prepared(["COVID-19"])
    x = studies[0].image[4:10].float()[:, None].clone()
    x[:, :, :4, :] = 0  # a band of outside air
    g = torch.Generator().manual_seed(5)
    y = train.scanner_augment(x, g, p_kernel=1.0, p_res=1.0)
    assert y.shape == x.shape
    assert float(y[:, :, :4, :].abs().max()) == 0.0
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert float((y - x).abs().mean()) > 1e-3


def test_patient_weight_scales_the_joint_patient_loss():
    """--patient-weight multiplies the joint stage's patient cross-entropy and nothing else."""
    cfg, b = _batch()
    model = build_model(cfg, seed=0)
    model.eval()  # deterministic: the same forward twice
    with torch.no_grad():
        one = train.step_losses(model, b, "joint", seg_bce=0.0, inf_dice="batch", inf_ce=1.0)
        two = train.step_losses(model, b, "joint", seg_bce=0.0, inf_dice="batch", inf_ce=1.0, patient_weight=2.5)
    assert float(one["patient_ce"]) > 0.01
    assert abs(float(two["patient_ce"]) - 2.5 * float(one["patient_ce"])) < 1e-5
    for k in one:
        if k not in ("patient_ce", "total"):
            assert float(two[k]) == float(one[k]), k
    assert abs(float(two["total"]) - float(one["total"]) - 1.5 * float(one["patient_ce"])) < 1e-5


def test_stage2_mask_predicted_feeds_stage_one_mask():
    """--stage2-mask predicted: stage 2 gets stage 1's thresholded mask of the batch (here forced to cover every pixel,
    then none), not the ground truth; 'truth' keeps the ground truth; stage 1 gets no gradient from it in the cls stage."""
    cfg, b = _batch()
    model = build_model(cfg, seed=0).eval()
    seen = []
    real = train.stage2_forward
    train.stage2_forward = lambda m, x, mask, pid, with_patient: (seen.append(mask.clone()), real(m, x, mask, pid, with_patient))[1]
    try:
        with torch.no_grad():
            train.step_losses(model, b, "cls", seg_bce=0.0, stage2_mask="truth")
            model.seg.head.out.bias.fill_(20.0)
            train.step_losses(model, b, "cls", seg_bce=0.0, stage2_mask="predicted")
            model.seg.head.out.bias.fill_(-20.0)
            train.step_losses(model, b, "cls", seg_bce=0.0, stage2_mask="predicted")
        model.seg.head.out.bias.data.fill_(0.0)
        model.zero_grad()
        train.step_losses(model, b, "cls", seg_bce=0.0, stage2_mask="predicted")["total"].backward()
    finally:
        train.stage2_forward = real
    gt = b["lung_mask"]
    assert 0 < float(gt.mean()) < 1
    assert torch.equal(seen[0], gt)
    assert bool((seen[1] == 1).all()) and bool((seen[2] == 0).all())
    assert all(p.grad is None for p in model.seg.parameters())
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.cls.parameters())


def _slices2d_file(tmp, size=32):
    """A slices2d.py-style file: 6 windowed slices of generated studies, sets 'a' (COVID, not, COVID, not) and 'b'."""
    _, studies = _prepared(["COVID-19", "no infection"])
    x = torch.cat([studies[0].image[3:6].float(), studies[1].image[3:6].float()])[:, None]  # (N, 1, S, S) as prepare
    meta = {"covidct.slices2d": json.dumps({"sets": ["a", "a", "a", "a", "b", "b"], "names": [str(i) for i in range(6)],
                                            "labels": [1, 0, 1, 0, 1, 0], "hu_mapping": "test", "size": size})}
    path = os.path.join(tmp, "s2d.safetensors")
    safetensors_io.save({"windowed": x}, meta, path)
    return path, x


def test_slices2d_load_and_sample():
    """--slices2d: only the chosen sets are loaded; a sampled batch holds their images, COVID-19 (0) for a COVID slice
    and NOT_COVID (-1) for the others, empty masks, one patient per slice."""
    with tempfile.TemporaryDirectory() as tmp:
        path, x = _slices2d_file(tmp)
        xa, ya = train.load_slices2d(path, ["a"])
        assert torch.equal(xa, x[:4]) and ya.tolist() == [1, 0, 1, 0]
        try:
            train.load_slices2d(path, ["c"])
            raise AssertionError("a set the file does not hold must be refused")
        except SystemExit as e:
            assert "no slices of the sets" in str(e)
        flat = os.path.join(tmp, "flat.safetensors")  # (N, S, S): not what prepare writes
        safetensors_io.save({"windowed": x[:, 0]}, safetensors_io.load(path)[1], flat)
        try:
            train.load_slices2d(flat, ["a"])
            raise AssertionError("slices not shaped (N, 1, S, S) must be refused")
        except SystemExit as e:
            assert "expected (N, 1, S, S)" in str(e)
    b = train.sample_slices2d(xa, ya, np.random.default_rng(1), 8)
    assert b["image"].shape == (8, 1, 32, 32) and b["patient_ids"].tolist() == list(range(8))
    for img, lab in zip(b["image"], b["slice_label"].tolist()):
        k = [i for i in range(4) if torch.equal(xa[i], img)][0]
        assert lab == (0 if int(ya[k]) == 1 else train.NOT_COVID)
    assert float(b["lung_mask"].abs().sum()) == 0 and float(b["infection_mask"].abs().sum()) == 0


def test_slices2d_rows_leave_the_mask_losses_and_take_a_partial_label():
    """The last n2d rows (real 2-D slices) change none of the other losses (infection Dice and cross-entropy, slice
    CE), and their own term is -log P(COVID-19) for a COVID slice and -log(1 - P(COVID-19)) for a not-COVID one;
    they are refused outside the cls stage."""
    cfg, b = _batch()
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = _slices2d_file(tmp)
        xa, ya = train.load_slices2d(path, ["a", "b"])
    s2 = train.sample_slices2d(xa, ya, np.random.default_rng(2), 4)
    assert set(s2["slice_label"].tolist()) == {0, train.NOT_COVID}
    both = train.concat_batches(b, s2)
    model = build_model(cfg, seed=0).eval()  # eval: a row's outputs do not depend on the other rows
    with torch.no_grad():
        alone = train.step_losses(model, b, "cls", seg_bce=0.0, inf_dice="batch", inf_ce=1.0, stage2_mask="predicted")
        mixed = train.step_losses(model, both, "cls", seg_bce=0.0, inf_dice="batch", inf_ce=1.0,
                                  stage2_mask="predicted", n2d=4, slices2d_weight=0.5)
        for k in ("infection_dice", "infection_ce", "slice_ce"):
            assert abs(float(mixed[k]) - float(alone[k])) < 1e-6, (k, float(mixed[k]), float(alone[k]))
        mask = (torch.sigmoid(model.seg(train.normalise(s2["image"], model.config.preprocess))) >
                model.config.preprocess.lung_threshold).float()
        p = torch.softmax(train.stage2_forward(model, s2["image"], mask, s2["patient_ids"], False)["slice_logits"], 1)
        want = torch.where(s2["slice_label"] == 0, -torch.log(p[:, 0]), -torch.log(1 - p[:, 0])).mean()
        assert abs(float(mixed["slices2d_ce"]) - 0.5 * float(want)) < 1e-5, (float(mixed["slices2d_ce"]), float(want))
        assert abs(float(mixed["total"]) - float(alone["total"]) - float(mixed["slices2d_ce"])) < 1e-5
    for stage, s2m in (("joint", "predicted"), ("cls", "truth")):
        try:
            train.step_losses(model, both, stage, seg_bce=0.0, stage2_mask=s2m, n2d=4)
            raise AssertionError(f"n2d must be refused in {stage} with {s2m}")
        except ValueError:
            pass


def test_infection_losses_do_not_reward_empty_maps():
    """The per-slice dice scores an all-empty map at the fraction of slices holding lesion (so training can settle
    there); the batch dice scores it near 1, and the cell-wise CE prefers the true map to an empty one."""
    g = torch.zeros(4, 1, 16, 16)
    g[0, 0, 4:8, 4:8] = 1  # one slice of four holds a lesion
    empty = torch.zeros_like(g)
    per_slice = float(train.dice_loss(empty, g))
    assert abs(per_slice - 0.25) < 0.02, per_slice
    assert float(train.batch_dice_loss(empty, g)) > 0.9
    assert float(train.batch_dice_loss(g, g)) < 0.05
    t = torch.nn.functional.adaptive_avg_pool2d(g, (4, 4)).clamp(1e-4, 1 - 1e-4)  # cell fractions: the minimiser
    logits_true = torch.cat([torch.zeros_like(t), torch.log(t / (1 - t))], dim=1)
    logits_empty = torch.cat([torch.zeros_like(t), torch.full_like(t, -9.0)], dim=1)
    ce_true, ce_empty = float(train.infection_cell_ce(logits_true, g)), float(train.infection_cell_ce(logits_empty, g))
    assert ce_true < ce_empty - 0.5, (ce_true, ce_empty)


def test_augment_keeps_masks_binary_and_aligned():
    cfg, b = _batch()
    g = torch.Generator().manual_seed(0)
    out = train.augment(b, g, 1500.0)
    for k in ("lung_mask", "infection_mask"):
        assert set(torch.unique(out[k]).tolist()) <= {0.0, 1.0}
    assert out["image"].min() >= 0 and out["image"].max() <= 1
    # identity parameters leave everything unchanged
    same = train.augment(b, g, 1500.0, rot_deg=0, scale=0, shift=0, flip_p=0, noise_hu=0, offset_hu=0)
    assert torch.allclose(same["image"], b["image"], atol=1e-5)
    assert torch.equal(same["lung_mask"], b["lung_mask"])


def test_augment_flips_a_study_as_a_whole():
    """The left-right flip is drawn per study: every slice of a study is flipped or none is (a per-slice flip would make
    a one-sided study look two-sided across the slices the patient head pools), and the HU offset is per study."""
    g = torch.Generator().manual_seed(0)
    groups, per = 8, 3
    img = torch.rand(groups * per, 1, 16, 16, generator=g) * 0.8 + 0.1
    img[..., :5] = 0.95  # bright on one side: a flip moves it
    zeros = torch.zeros_like(img)
    b = {"image": img, "lung_mask": zeros, "infection_mask": zeros, "slice_label": torch.zeros(groups * per).long(),
         "patient_ids": torch.arange(groups).repeat_interleave(per), "patient_label": torch.zeros(groups).long()}
    out = train.augment(b, g, 1500.0, rot_deg=0, scale=0, shift=0, noise_hu=0, offset_hu=0)
    flipped = [bool(torch.allclose(out["image"][i], img[i].flip(-1), atol=1e-5)) for i in range(groups * per)]
    kept = [bool(torch.allclose(out["image"][i], img[i], atol=1e-5)) for i in range(groups * per)]
    assert all(f != k for f, k in zip(flipped, kept)), "every slice is either flipped or kept"
    per_study = [flipped[i * per:(i + 1) * per] for i in range(groups)]
    assert all(len(set(f)) == 1 for f in per_study), per_study
    assert {f[0] for f in per_study} == {True, False}, per_study
    out = train.augment(b, g, 1500.0, rot_deg=0, scale=0, shift=0, flip_p=0, noise_hu=0, offset_hu=30)
    off = (out["image"] - img).mean(dim=(1, 2, 3)).view(groups, per)
    assert torch.allclose(off, off[:, :1].expand_as(off), atol=1e-6), off
    assert float(off.std()) > 1e-4, off


def test_train_cli_exports_metadata():
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "data")
        synth.generate_dataset(data, 3, 5, matrix=(64, 64), n_slices=8, verbose=False)
        out = os.path.join(d, "run")
        w = os.path.join(d, "w.safetensors")
        train.main(["--train", data, "--val", data, "--config", "tiny", "--input-size", "32", "--out", out,
                    "--seg-epochs", "1", "--cls-epochs", "1", "--joint-epochs", "1", "--steps-per-epoch", "1",
                    "--slices-per-study", "2", "--threads", "1", "--export", w, "--dtype", "f16", "--synthetic"])
        tensors, md = safetensors_io.load(w)
        assert md["covidct.intended_use"] == "trained on synthetic data, not for diagnosis", md
        assert md["covidct.trained_on"]
        assert '"recipe": "weights/train.py"' in md["covidct.training"]
        assert md["covidct.dtype"] == "f16"
        # resume continues after the last finished epoch
        train.main(["--train", data, "--val", data, "--config", "tiny", "--input-size", "32", "--out", out,
                    "--seg-epochs", "1", "--cls-epochs", "1", "--joint-epochs", "2", "--steps-per-epoch", "1",
                    "--slices-per-study", "2", "--threads", "1", "--resume", os.path.join(out, "last.pt")])
        ck = torch.load(os.path.join(out, "last.pt"))
        assert ck["epoch"] == 3 and len(ck["history"]) == 4, (ck["epoch"], len(ck["history"]))
        # fine-tuning from that checkpoint: --freeze-seg leaves stage 1 untouched, --freeze-bn every BatchNorm's
        # running statistics, while stage 2's weights do change
        out2 = os.path.join(d, "run2")
        train.main(["--train", data, "--val", data, "--config", "tiny", "--input-size", "32", "--out", out2,
                    "--seg-epochs", "0", "--cls-epochs", "0", "--joint-epochs", "1", "--steps-per-epoch", "2",
                    "--slices-per-study", "2", "--threads", "1", "--init-from", os.path.join(out, "last.pt"),
                    "--freeze-seg", "--freeze-bn"])
        after = torch.load(os.path.join(out2, "last.pt"))["model"]
        before = ck["model"]
        seg = [k for k in before if k.startswith("seg.")]
        assert seg and all(torch.equal(before[k], after[k]) for k in seg), "stage 1 changed under --freeze-seg"
        stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
        assert stats and all(torch.equal(before[k], after[k]) for k in stats), "BN statistics changed under --freeze-bn"
        cls_w = [k for k in before if k.startswith("cls.") and k.endswith("weight")]
        assert any(not torch.equal(before[k], after[k]) for k in cls_w), "stage 2 did not train"
        # the patient stage trains the patient head and nothing else; it needs a stage 1 that finds lungs (this one,
        # 2 steps old, finds none: a clear error), here one whose lung logit is forced high (every slice used)
        out3 = os.path.join(d, "run3")
        args3 = ["--train", data, "--val", data, "--config", "tiny", "--input-size", "32", "--out", out3,
                 "--seg-epochs", "0", "--cls-epochs", "0", "--joint-epochs", "0", "--patient-epochs", "1",
                 "--steps-per-epoch", "3", "--patient-batch", "2", "--threads", "1"]
        try:
            train.main(args3 + ["--init-from", os.path.join(out, "last.pt")])
            raise AssertionError("patient stage ran without any lung found")
        except SystemExit as e:
            assert "finds no lung" in str(e), e
        before = {k: v.clone() for k, v in before.items()}
        before["seg.head.out.bias"].fill_(20.0)
        torch.save({"model": before}, os.path.join(d, "all_lung.pt"))
        train.main(args3 + ["--init-from", os.path.join(d, "all_lung.pt")])
        ck3 = torch.load(os.path.join(out3, "last.pt"))
        assert ck3["history"][-1]["stage"] == "patient", ck3["history"][-1]
        after3 = ck3["model"]
        changed = {k for k in before if not torch.equal(before[k], after3[k])}
        assert changed and all(k.startswith("patient.") for k in changed), sorted(changed)[:5]


def test_init_matching_keeps_matching_tensors():
    """--init-from an exported file with --init-matching: tensors that match the new config in name and shape come
    from the file, the wider heads stay as built; without --init-matching the mismatch is an error."""
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "data")
        synth.generate_dataset(data, 3, 5, matrix=(64, 64), n_slices=8, verbose=False)
        src = build_model(_cfg32(), seed=3)
        w = os.path.join(d, "src.safetensors")
        export.export_model(src, w, "f32")
        wide = _cfg32()
        wide.cls.fused_channels, wide.cls.slice_head_widths, wide.cls.patient_hidden = 24, [40, 20], 12
        cj = os.path.join(d, "wide.json")
        with open(cj, "w") as f:
            json.dump(wide.to_dict(), f)
        out = os.path.join(d, "run")
        args = ["--train", data, "--val", data, "--config-json", cj, "--out", out, "--seg-epochs", "0",
                "--cls-epochs", "1", "--joint-epochs", "0", "--steps-per-epoch", "1", "--slices-per-study", "2",
                "--threads", "1", "--freeze-seg", "--init-from", w]
        try:
            train.main(args)
            raise AssertionError("a strict --init-from accepted tensors of another shape")
        except RuntimeError as e:
            assert "size mismatch" in str(e), e
        train.main(args + ["--init-matching"])
        got = torch.load(os.path.join(out, "last.pt"))["model"]
        ref = src.state_dict()
        seg = [k for k in ref if k.startswith("seg.") and not k.endswith("num_batches_tracked")]
        assert seg and all(torch.equal(ref[k], got[k]) for k in seg), "stage 1 not taken from the file"
        assert tuple(got["cls.msff.conv.weight"].shape)[0] == 24 and tuple(got["patient.fc1.weight"].shape) == (12, 40)
        # the backbone came from the file (a step of training moves it only a little; a fresh init is far away)
        k = "cls.backbone.features.0.0.weight"
        rel = float((got[k] - ref[k]).norm() / ref[k].norm())
        fresh = build_model(wide, seed=0).state_dict()[k]
        assert rel < 0.2 < float((fresh - ref[k]).norm() / ref[k].norm()), rel


def test_average_checkpoints():
    """average.py: the element-wise mean of floating-point tensors, integer tensors from the first checkpoint, an
    output that --init-from reads; checkpoints of different shapes are an error naming the file and the tensor."""
    import average
    with tempfile.TemporaryDirectory() as d:
        sds = [build_model(_cfg32(), seed=s).state_dict() for s in (1, 2, 3)]
        for i in (1, 2):  # the other checkpoints' counters differ: the output must carry the first's
            for k, v in sds[i].items():
                if not v.dtype.is_floating_point:
                    sds[i][k] = v + 7 * i
        paths = []
        for i, sd in enumerate(sds):
            paths.append(os.path.join(d, f"c{i}.pt"))
            torch.save({"model": sd, "epoch": i, "config": _cfg32().to_dict()}, paths[i])
        out = os.path.join(d, "soup.pt")
        average.main(["--out", out] + paths)
        got, _ = train.checkpoint_weights(out)
        assert torch.load(out)["config"] == _cfg32().to_dict()  # export.py reads the input size from it
        floats = [k for k, v in sds[0].items() if v.dtype.is_floating_point]
        ints = [k for k, v in sds[0].items() if not v.dtype.is_floating_point]
        assert floats and ints and set(got) == set(sds[0])
        for k in floats:
            want = (sds[0][k].double() + sds[1][k].double() + sds[2][k].double()) / 3
            assert got[k].dtype == sds[0][k].dtype and torch.allclose(got[k].double(), want, atol=1e-6), k
        assert all(torch.equal(got[k], sds[0][k]) for k in ints)
        k = "cls.backbone.features.0.0.weight"
        assert not torch.allclose(got[k], sds[0][k]) and not torch.allclose(got[k], sds[1][k])
        m = build_model(_cfg32(), seed=0)
        m.load_state_dict(got)  # strict: the output is a complete state dict of the config
        other = tiny_config().to_dict()  # another input size
        assert other != _cfg32().to_dict()
        torch.save({"model": sds[1], "config": other}, paths[1])
        try:
            average.main(["--out", out] + paths)
            raise AssertionError("checkpoints of different configs were averaged")
        except SystemExit as e:
            assert "c1.pt" in str(e) and "config" in str(e), e
        torch.save({"model": sds[1]}, paths[1])  # no config recorded: fine
        with open(paths[0], "rb") as f:
            head = f.read(1000)
        trunc = os.path.join(d, "truncated.pt")
        with open(trunc, "wb") as f:
            f.write(head)
        torch.save({"epoch": 3, "note": "no tensors"}, os.path.join(d, "foreign.pt"))
        for bad_file in ("truncated.pt", "foreign.pt"):
            try:
                average.main(["--out", out, os.path.join(d, bad_file), paths[1]])
                raise AssertionError(f"{bad_file} was averaged")
            except SystemExit as e:
                assert bad_file in str(e) and ("cannot read" in str(e) or "not a model state dict" in str(e)), e
        bad = dict(sds[2])
        bad["patient.fc1.weight"] = bad["patient.fc1.weight"][:, :-1].clone()
        torch.save(bad, paths[2])
        try:
            average.main(["--out", out] + paths)
            raise AssertionError("checkpoints of different shapes were averaged")
        except SystemExit as e:
            assert "c2.pt" in str(e) and "patient.fc1.weight" in str(e), e


def main() -> int:
    return run_tests(globals(), sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
