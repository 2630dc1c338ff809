#!/usr/bin/env python3
"""Tests of the lesion synthesis on real lungs (weights/lesions.py) and of the calibration (weights/calibrate.py).

    /usr/bin/python3 weights/test_lesions.py        # prints 'N passed, 0 failed'

The synthesis runs on the committed real chest CT (samples/real/chest-lung-pet-ct-dx.nii.gz, 128 x 128 x 30, with its
reviewed reference lung mask): the infection mask must be what was inserted (nothing changes outside the lung, the
voxels raised a lot lie in the mask, the mask's voxels were raised), the patterns must be the classes' (COVID-19-like:
both lungs, near the lung's border, more posterior than the lung; CAP-like: dense, one lung unless drawn bilateral,
aerated bronchi kept), the involvement must be the mask's share of the lung, and the dataset copies must keep the
masks on the scan's grid and world position.  The calibration: the temperature fit recovers a known temperature, the
OOD score separates shifted features and equals a plain computation, the threshold is the validation quantile, and
the file written round-trips.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import calibrate as cb  # noqa: E402
import dataset as ds  # noqa: E402
import lesions as L  # noqa: E402
from testing import run_tests  # noqa: E402

ROOT = os.path.dirname(_HERE)
SCAN = os.path.join(ROOT, "samples", "real", "chest-lung-pet-ct-dx.nii.gz")
LUNG = os.path.join(ROOT, "samples", "real", "chest-lung-pet-ct-dx.lung.nii.gz")
_cache = {}


def real_chest():
    if "v" not in _cache:
        hu, sp = ds._nifti_zyx(SCAN, True)
        lung, _ = ds._nifti_zyx(LUNG, False)
        _cache["v"] = (hu.astype(np.float32), lung > 0, sp)
    return _cache["v"]


def chest_folder(tmp):
    """A dataset folder in ``tmp`` with the committed real chest CT as study 'chest' (scan and lung mask linked)."""
    src = os.path.join(tmp, "src")
    os.makedirs(os.path.join(src, "chest"))
    for f, name in ((SCAN, "scan.nii.gz"), (LUNG, "lung.nii.gz")):
        os.symlink(f, os.path.join(src, "chest", name))
    return src


def synth(label, seed, **kw):
    hu, lung, sp = real_chest()
    return L.synthesize(hu, lung, sp, label, np.random.default_rng(seed), **kw)


def check_mask_matches_insertion(r, hu, lung):
    new, m, syn = r["hu"], r["infection"], r["synthesis"]
    d = new - hu
    assert m.dtype == bool and m.shape == hu.shape
    assert not (m & ~lung).any(), "infection mask outside the lung mask"
    assert not ((d != 0) & ~lung).any(), "a voxel outside the lung was changed"
    assert (d >= 0).all(), "insertion lowered a voxel"
    assert m.any()
    big = d >= 100
    # the mask is the lesions' half-weight region: the voxels raised a lot lie in it, the faint rim around it does not
    assert (big & m).sum() >= 0.85 * big.sum(), f"only {(big & m).sum()} of {big.sum()} voxels raised by 100 HU lie in the mask"
    assert (big & m).sum() <= 0.99 * big.sum(), "the mask takes in the lesions' faint rim as well"
    assert (d[m] >= 30).mean() >= 0.75, f"only {(d[m] >= 30).mean():.2f} of the mask's voxels were raised by 30 HU"
    outside = (d > 0) & ~m
    if outside.any():  # the soft rim around a lesion is fainter than the lesion
        assert d[outside].mean() < 0.5 * d[m].mean()
    assert abs(syn.involvement_pct - 100.0 * m.sum() / lung.sum()) < 1e-9


def test_covid_masks_match_what_was_inserted():
    hu, lung, sp = real_chest()
    side = L.lung_sides(lung)
    for seed in range(4):
        r = synth("COVID-19", seed)
        check_mask_matches_insertion(r, hu, lung)
        m = r["infection"]
        assert set(np.unique(side[m])) == {1, 2}, "COVID-19-like lesions must be bilateral"
        assert r["synthesis"].sides == [1, 2]


def test_covid_peripheral_and_posterior():
    hu, lung, sp = real_chest()
    dist = L.pleural_distance(lung, sp)
    ys = np.nonzero(lung)[1]
    near_m, near_l, post = [], [], []
    for seed in range(6):
        m = synth("COVID-19", seed)["infection"]
        near_m.append((dist[m] <= 12).mean())
        near_l.append((dist[lung] <= 12).mean())
        post.append(np.nonzero(m)[1].mean() - ys.mean())
    assert np.mean(near_m) > np.mean(near_l) + 0.05, (near_m, near_l)
    assert np.mean(post) > 0, post


def test_cap_dense_one_sided_with_air_bronchograms():
    hu, lung, sp = real_chest()
    side = L.lung_sides(lung)
    one_sided = 0
    for seed in range(6):
        r = synth("CAP", seed)
        check_mask_matches_insertion(r, hu, lung)
        m, syn = r["infection"], r["synthesis"]
        assert np.median(r["hu"][m]) > -200, "CAP-like lesions are consolidation"
        sides = set(np.unique(side[m])) - {0}
        lesion_sides = {les.side for les in syn.lesions}
        assert sides <= lesion_sides, "a CAP region crossed into the other lung"
        one_sided += len(sides) == 1
    assert one_sided >= 3, f"only {one_sided} of 6 CAP-like studies one-sided"
    # air bronchograms: an aerated bronchus (a tube of -1000 HU) through a consolidation keeps its air
    hu2 = hu.copy()
    zs, ys, xs = np.nonzero(lung)
    k = int(np.median(zs))
    sl = lung[k]
    yy, xx = np.nonzero(sl)
    tube = np.zeros_like(lung)
    for half in (xx < np.median(xx), xx >= np.median(xx)):  # one bronchus in each lung
        cy, cx = int(np.median(yy[half])), int(np.median(xx[half]))
        tube[:, cy - 1:cy + 2, cx - 12:cx + 12] = True
    tube &= lung
    hu2[tube] = -1000
    r = L.synthesize(hu2, lung, sp, "CAP", np.random.default_rng(3), target_pct=80.0)
    covered = tube & r["infection"]
    assert covered.sum() > 10
    assert (r["hu"][covered] <= -950).mean() > 0.9, "the bronchus inside the consolidation lost its air"


def test_involvement_target_and_determinism():
    hu, lung, sp = real_chest()
    for label in ("COVID-19", "CAP"):
        r = synth(label, 7, target_pct=8.0)
        assert r["synthesis"].involvement_pct >= 7.5, r["synthesis"].involvement_pct
        r2 = synth(label, 7, target_pct=8.0)
        assert np.array_equal(r["hu"], r2["hu"]) and np.array_equal(r["infection"], r2["infection"])
    a = synth("COVID-19", 1)["hu"]
    b = synth("COVID-19", 2)["hu"]
    assert not np.array_equal(a, b)
    try:
        L.synthesize(hu, np.zeros_like(lung), sp, "CAP", np.random.default_rng(0))
        raise AssertionError("an empty lung mask must be refused")
    except ValueError:
        pass


def test_lookalikes_are_no_infection_and_only_what_was_drawn():
    """mimic(): solid look-alikes raise voxels inside the lung only, where a recorded mass, nodule or plate lies, to
    soft-tissue density; the infection mask stays empty; low-dose noise has the recorded std and leaves the air."""
    hu, lung, sp = real_chest()
    for kinds, n_les in ((["mass"], (1, 1)), (["nodule"], (2, 8)), (["plate"], (1, 3))):
        r = L.mimic(hu, lung, sp, np.random.default_rng(11), kinds)
        syn, d = r["synthesis"], r["hu"] - hu
        assert syn.label == "no infection" and syn.stage == kinds[0]
        assert not r["infection"].any(), "a look-alike has no infection"
        assert n_les[0] <= len(syn.lesions) <= n_les[1], (kinds, len(syn.lesions))
        assert (d >= 0).all() and not ((d != 0) & ~lung).any(), "raise only, inside the lung"
        assert (d > 100).sum() >= 10, f"{kinds}: only {(d > 100).sum()} voxels raised by 100 HU"
        near = np.zeros(hu.shape, dtype=bool)  # every changed voxel within a recorded look-alike's box
        for les in syn.lesions:
            near[L._box(les, hu.shape, sp)] = True
        assert not ((d != 0) & ~near).any(), f"{kinds}: a voxel changed away from every recorded look-alike"
        if kinds != ["plate"]:
            raised = r["hu"][d > 100]
            assert raised.mean() > -150, f"{kinds}: mean {raised.mean():.0f} HU where raised: not solid"
    r = L.mimic(hu, lung, sp, np.random.default_rng(12), ["noise"])
    d = r["hu"] - hu
    air = hu < -990
    assert air.any() and not d[air].any(), "the air around the patient must stay as it is"
    sd = r["synthesis"].target_pct
    assert L.LOW_DOSE_NOISE_HU[0] <= sd <= L.LOW_DOSE_NOISE_HU[1]
    assert abs(float(d[~air].std()) - sd) < 0.1 * sd and abs(float(d[~air].mean())) < 0.1 * sd
    assert not r["infection"].any() and not r["synthesis"].lesions
    a = L.mimic(hu, lung, sp, np.random.default_rng(5))
    b = L.mimic(hu, lung, sp, np.random.default_rng(5))
    assert a["synthesis"].stage == b["synthesis"].stage and np.array_equal(a["hu"], b["hu"])
    for bad in (["cough"], []):
        try:
            L.mimic(hu, lung, sp, np.random.default_rng(0), bad)
            raise AssertionError(f"kinds {bad} must be refused")
        except ValueError:
            pass
    import nibabel as nib
    with tempfile.TemporaryDirectory() as tmp:
        src = chest_folder(tmp)
        out = os.path.join(tmp, "out")
        recs = L.make_copies(src, "chest", out, per_class=0, clean=1, seed=5, mimics=2, log=lambda *_: None)
        assert [r["label"] for r in recs] == ["no infection"] * 3
        assert [r["study"].split("-")[1] for r in recs] == ["none00", "mimic00", "mimic01"]
        for rec in recs[1:]:
            assert rec["synthesis"]["label"] == "no infection" and rec["involvement_pct"] == 0
            st = ds.read_study(out, rec["study"], ds.label_index(rec["label"]))
            assert st.infection.sum() == 0
            assert not np.array_equal(np.asarray(nib.load(os.path.join(out, rec["study"], "scan.nii.gz")).dataobj),
                                      np.asarray(nib.load(SCAN).dataobj)), "a look-alike copy equals the scan"


def test_copies_keep_grid_masks_and_world_position():
    import nibabel as nib
    hu, lung, sp = real_chest()
    with tempfile.TemporaryDirectory() as tmp:
        img = nib.load(SCAN)
        # the copies read ('L','P','S') files, as real_data.py writes them: the sample is stored so
        assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
        src = chest_folder(tmp)
        out = os.path.join(tmp, "out")
        recs = L.make_copies(src, "chest", out, per_class=1, clean=1, seed=5, thick_mm=(16, 16), crop=(0.75, 0.75),
                             log=lambda *_: None)
        assert [r["label"] for r in recs] == ["COVID-19", "CAP", "no infection"]
        rows, _ = ds.read_labels(out)
        assert [r[0] for r in rows] == [r["study"] for r in recs]
        for rec in recs:
            st = ds.read_study(out, rec["study"], ds.label_index(rec["label"]))
            assert st.hu.shape[0] == hu.shape[0] // 2 and st.hu.shape[1] == 96, st.hu.shape
            assert abs(st.spacing[0] - 2 * sp[0]) < 1e-4
            assert not (st.infection.astype(bool) & ~st.lung.astype(bool)).any()
            inv = 100.0 * st.infection.sum() / st.lung.sum()
            assert abs(inv - rec["involvement_pct"]) < 1e-3
            if rec["label"] == "no infection":
                assert st.infection.sum() == 0
            # world position: voxel (i, j, k) of the copy is the mean of voxels (i + x0, j + y0, 2k .. 2k + 1)
            a_copy = nib.load(os.path.join(out, rec["study"], "scan.nii.gz")).affine
            y0, _, x0, _ = rec["crop"]
            want = img.affine @ np.array([x0 + 3, y0 + 4, 2 * 5 + 0.5, 1.0])
            assert np.allclose(a_copy @ np.array([3, 4, 5, 1.0]), want, atol=1e-3)
            if rec["label"] == "no infection":
                mean = hu[10:12, y0 + 4, x0 + 3].mean()
                assert abs(st.hu[5, 4, 3] - np.clip(np.round(mean), -1024, 3071)) <= 0.5


def test_train_mixes_the_copies_into_every_stage():
    """train.py --mix: the lesion-inserted copies join the seg and cls steps and the patient stage's bank."""
    import synth
    import train
    from reference import build_model, tiny_config
    with tempfile.TemporaryDirectory() as tmp:
        src = chest_folder(tmp)
        mix = os.path.join(tmp, "mix")
        L.make_copies(src, "chest", mix, per_class=1, clean=1, seed=1, thick_mm=(16, 16), log=lambda *_: None)
        data = os.path.join(tmp, "data")
        synth.generate_dataset(data, 3, 5, matrix=(64, 64), n_slices=8, verbose=False)
        cfg = tiny_config()
        cfg.input_size = 32
        m = build_model(cfg, seed=0)
        with torch.no_grad():
            m.seg.head.out.bias.fill_(20.0)  # every slice used by the patient stage
        init = os.path.join(tmp, "init.pt")
        torch.save({"model": m.state_dict()}, init)
        out = os.path.join(tmp, "run")
        train.main(["--train", data, "--val", data, mix, "--config", "tiny", "--input-size", "32", "--out", out,
                    "--init-from", init, "--seg-epochs", "1", "--cls-epochs", "1", "--joint-epochs", "0",
                    "--patient-epochs", "1", "--steps-per-epoch", "2", "--slices-per-study", "2",
                    "--studies-per-batch", "1", "--mix", mix, "--mix-studies-per-batch", "2",
                    "--stage2-mask", "predicted", "--threads", "1"])
        log = open(os.path.join(out, "train_log.txt")).read()
        assert "mixed in: 3 labelled real studies {'COVID-19': 1, 'CAP': 1, 'no infection': 1}" in log, log[-2000:]
        assert "3 mixed-in studies in the bank" in log, log[-2000:]
        assert "6 validation" in log, log[-2000:]  # --val takes several folders
        ck = torch.load(os.path.join(out, "last.pt"))
        assert [h["stage"] for h in ck["history"]] == ["seg", "cls", "patient"]


# ----------------------------------------------------------------------------------------------
# Calibration
# ----------------------------------------------------------------------------------------------

def test_temperature_fit_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    n, k, t_true = 4000, 3, 2.5
    z = rng.normal(0, 3, (n, k))                # the "true" calibrated logits are z / t_true
    p = cb.softmax_t(z, t_true)
    y = np.array([rng.choice(k, p=pi) for pi in p])
    t = cb.fit_temperature(z, y)
    assert abs(t - t_true) < 0.25, t
    assert cb.nll(z, y, t) <= cb.nll(z, y, 1.0)
    assert cb.ece(cb.softmax_t(z, t), y) < cb.ece(cb.softmax_t(z, 1.0), y)


def test_ood_score_separates_shifted_features_and_is_the_plain_formula():
    rng = np.random.default_rng(1)
    k, dim = 3, 12
    mus = rng.normal(0, 2, (k, dim))
    y = rng.integers(0, k, 600)
    x = mus[y] + rng.normal(0, 1, (600, dim))
    w, means = cb.fit_ood(x, y, k, dims=8)
    assert w.shape == (8, dim) and means.shape == (k, 8)
    xv = mus[y[:200]] + rng.normal(0, 1, (200, dim))
    xo = mus[y[:200]] + rng.normal(0, 1, (200, dim)) + 6.0 * rng.normal(0, 1, (1, dim))
    sv, so = cb.ood_scores(xv, w, means), cb.ood_scores(xo, w, means)
    thr = cb.quantile_threshold(sv, 0.99)
    assert (sv <= thr).mean() >= 0.985
    assert (so > thr).mean() > 0.9, (so > thr).mean()
    p = xo[0]
    plain = min(float(((w @ p - means[c]) ** 2).sum()) for c in range(k)) / 8
    assert abs(cb.ood_scores(p[None], w, means)[0] - plain) < 1e-9 * max(1.0, plain)
    d = cb.decide(np.array([2.0, 0.0, -1.0]), p, {"temperature": 2.0, "ood": {
        "projection": w.tolist(), "class_means": means.tolist(), "threshold": thr}})
    assert d["supported"] is False and d["label_index"] is None
    assert abs(d["probs"].sum() - 1) < 1e-12 and d["probs"][0] < cb.softmax_t(np.array([[2.0, 0, -1]]), 1)[0, 0]


def test_calibrated_file_round_trips():
    """calibrate() on a tiny model and two synthetic studies per folder: the file keeps every tensor, gains the
    metadata key, and its numbers give back the threshold and the scores it reports."""
    import export
    import safetensors_io
    import synth
    from reference import build_model, tiny_config
    with tempfile.TemporaryDirectory() as tmp:
        cfg = tiny_config()
        cfg.input_size = 32
        m = build_model(cfg, seed=0).eval()
        with torch.no_grad():
            m.seg.head.out.bias.fill_(20.0)  # stage 1 calls every pixel lung: every slice is used
        w = os.path.join(tmp, "w.safetensors")
        export.export_model(m, w, "f32")
        for name, seed in (("fit", 1), ("val", 2)):
            synth.generate_dataset(os.path.join(tmp, name), 6, seed, matrix=(48, 48), dz_range=(20, 24), verbose=False)
        out = os.path.join(tmp, "c.safetensors")
        rep = cb.calibrate(w, [os.path.join(tmp, "fit")], [os.path.join(tmp, "val")], out, dims=4, log=lambda *_: None)
        t0, md0 = safetensors_io.load(w)
        t1, md1 = safetensors_io.load(out)
        assert list(t0) == list(t1) and all(torch.equal(t0[k], t1[k]) for k in t0)
        cal = cb.read_calibration(md1)
        assert cal["ood"]["dims"] == 4 and len(cal["ood"]["projection"][0]) == 2 * cfg.cls.slice_head_widths[-1]
        vs = np.array(list(rep["validation_scores"].values()))
        assert abs(cal["ood"]["threshold"] - float(np.quantile(vs, 0.99))) <= 1e-4 * max(1.0, abs(cal["ood"]["threshold"]))
        assert cal["temperature"] > 0
        export.load_model(out)  # still a model file


def main() -> int:
    torch.set_num_threads(1)
    return run_tests(globals(), sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
