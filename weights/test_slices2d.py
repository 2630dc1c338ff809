#!/usr/bin/env python3
"""Tests of the real 2-D slice sets (weights/slices2d.py) that need no clone:

    /usr/bin/python3 weights/test_slices2d.py      # prints 'N passed, 0 failed'

The RICORD slabs (``prepare --ricord-slabs``): DICOM series written here with pydicom stand for the slabs; each slice
must come out in HU (rescale applied, not a grey mapping), labelled from its series' PatientID (RICORD-1A 1, 1B 0),
named '<PatientID>/<k>' inferior -> superior, windowed as the model's preprocessing does; files that are not DICOM
are passed over; a series of another PatientID, a second series of one patient and only one of the two display
sets are refused; the per-patient summary averages each patient's slices.
"""

from __future__ import annotations

import os
import sys
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import make_dicom_fixtures as mdf  # noqa: E402
import slices2d  # noqa: E402
from testing import run_tests  # noqa: E402


def _series(folder: str, pid: str, hu: np.ndarray, intercept: float = -1024.0, slope: float = 1.0) -> None:
    def set_pid(ds, k, raw):
        ds.PatientID = pid
    mdf.ct_series(folder, np.random.default_rng(0), n=hu.shape[0], hu=hu, intercept=intercept, slope=slope,
                  extra=set_pid, step=(0.0, 0.0, 3.0))


def _hu(rng: np.random.Generator, n: int, rows: int = 24, cols: int = 20) -> np.ndarray:
    return rng.integers(-1000, 400, size=(n, rows, cols)).astype(np.int64)


def test_slabs_are_read_in_hu_with_their_patients_label() -> None:
    rng = np.random.default_rng(3)
    a, b = _hu(rng, 3), _hu(rng, 2)
    with tempfile.TemporaryDirectory() as tmp:
        _series(os.path.join(tmp, "pos", "p1"), "MIDRC-RICORD-1A-440808-000001", a)
        _series(os.path.join(tmp, "neg", "p2"), "MIDRC-RICORD-1B-440808-000002", b, intercept=-1000.0, slope=2.0)
        with open(os.path.join(tmp, "README.md"), "w") as f:   # not DICOM: its folder holds no series
            f.write("slabs\n")
        with open(os.path.join(tmp, "neg", "p2", "notes.txt"), "w") as f:   # beside a series: skipped
            f.write("n\n")
        rows = slices2d.list_slabs(tmp)
        # os.walk sorted: 'neg' before 'pos'
        assert [r[1] for r in rows] == [f"MIDRC-RICORD-1B-440808-000002/{k}" for k in range(2)] + \
            [f"MIDRC-RICORD-1A-440808-000001/{k}" for k in range(3)], [r[1] for r in rows]
        assert [r[2] for r in rows] == [0, 0, 1, 1, 1] and {r[0] for r in rows} == {"ricord"}
        # HU as written (slope 2 rounds the stored value: HU within 1), k inferior -> superior = the order written
        for k in range(2):
            assert np.abs(rows[k][3] - b[k]).max() <= 1.0
        for k in range(3):
            assert np.array_equal(rows[2 + k][3], a[k].astype(np.float32))
        out = os.path.join(tmp, "s.safetensors")
        slices2d.prepare(None, None, out, 16, ricord=tmp)
        x, info = slices2d.load(out)
        assert tuple(x.shape) == (5, 1, 16, 16) and info["labels"] == [0, 0, 1, 1, 1]
        from reference import default_config, preprocess_hu
        want = preprocess_hu(torch.from_numpy(slices2d.pad_square(a[1].astype(np.float32), -1024.0))[None],
                             default_config(), (16, 16))[0]
        assert torch.allclose(x[3], want, atol=1e-6)


def test_slabs_refuse_an_unlabelled_or_repeated_patient() -> None:
    rng = np.random.default_rng(4)
    for pids in (["covidct-fixture"], ["MIDRC-RICORD-1A-440808-000001", "MIDRC-RICORD-1A-440808-000001"]):
        with tempfile.TemporaryDirectory() as tmp:
            for i, pid in enumerate(pids):
                _series(os.path.join(tmp, f"s{i}"), pid, _hu(rng, 2))
            try:
                slices2d.list_slabs(tmp)
            except SystemExit as e:
                assert "s" in str(e) and ("no label" in str(e) or "second time" in str(e)), e
            else:
                raise AssertionError(f"{pids}: accepted")


def test_prepare_needs_both_display_sets_or_the_slabs() -> None:
    for args in ((None, None, None), ("cvt", None, None), (None, "ucsd", "slabs")):
        try:
            slices2d.prepare(args[0], args[1], "unused.safetensors", 16, ricord=args[2])
        except SystemExit as e:
            assert "--cvt and --ucsd" in str(e), e
        else:
            raise AssertionError(f"{args}: accepted")


def test_pad_square_fills_with_the_value_given() -> None:
    g = np.ones((2, 4), dtype=np.float32)
    p = slices2d.pad_square(g, -1024.0)
    assert p.shape == (4, 4) and (p[1:3] == 1).all() and (p[0] == -1024).all() and (p[3] == -1024).all()
    assert (slices2d.pad_square(np.ones((3, 1), dtype=np.uint8))[:, [0, 2]] == 0).all()


def test_patients_average_each_patients_slices() -> None:
    sets = ["ricord"] * 5 + ["ucsd"]
    names = ["A/0", "A/1", "B/0", "C/0", "C/1", "x.png"]
    y = np.array([1, 1, 0, 0, 0, 1])
    p = np.array([[0.9, 0.05, 0.05], [0.5, 0.4, 0.1], [0.2, 0.7, 0.1], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8], [1, 0, 0]])
    out = slices2d.patients(sets, names, y, p)
    assert list(out) == ["ricord"]
    pat = out["ricord"]["patients"]
    assert abs(pat["A"]["mean_p_covid"] - 0.7) < 1e-12 and pat["A"]["slices_called"] == [2, 0, 0]
    assert pat["B"]["slices_called"] == [0, 1, 0] and pat["C"]["slices"] == 2 and pat["C"]["slices_called"] == [1, 0, 1]
    assert out["ricord"]["patient_auc"] == 1.0   # A 0.7 above B 0.2 and C 0.35


def main() -> int:
    return run_tests(globals(), sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
