#!/usr/bin/env python3
"""Small real CT volumes for the test suite (samples/real/), made from the prepared real data (real_data.py prepare):

    /usr/bin/python3 weights/make_real_samples.py --data data/real --out samples/real

* ``chest-lung-pet-ct-dx.nii.gz``: dashvtk-ct-lung (TCIA Lung-PET-CT-Dx, CC BY 4.0), in-plane 4 x 4 area average
  (512 -> 128, 2.6 mm pixels), all 30 slices of 8 mm; with its reference lung mask at the same size
  (``.lung.nii.gz``, area average > 0.5).  No model file was trained on this volume (weights/README.md).
* ``abdomen-pelvis.nii.gz``: totalseg-abdomen-pelvis (TotalSegmentator test data, Apache 2.0) as int16, pairs of
  3 mm slices averaged (6 mm, 56 slices), in-plane unchanged (3 mm).
* ``head.nii.gz``: dcmqa-head (dcm_qa_ct, BSD 2-Clause; the GE scan courtesy of Aliza Medical Imaging), gantry
  tilt corrected by dcm2niix, in-plane 4 x 4 area average.

Each keeps its own affine (scaled for the averaging) in the orientation real_data.py wrote ('L','P','S').
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

import numpy as np


def _down(xyz: np.ndarray, f: int) -> np.ndarray:
    x, y, z = xyz.shape
    x2, y2 = x // f, y // f
    a = xyz[:x2 * f, :y2 * f].astype(np.float64).reshape(x2, f, y2, f, z)
    return a.mean(axis=(1, 3))


def _aff(aff: np.ndarray, f: int) -> np.ndarray:
    a = aff.copy()
    a[:3, 0] *= f
    a[:3, 1] *= f
    # the centre of the first averaged block
    a[:3, 3] = aff[:3, 3] + aff[:3, 0] * (f - 1) / 2 + aff[:3, 1] * (f - 1) / 2
    return a


def _save(path: str, data: np.ndarray, aff: np.ndarray, dtype) -> None:
    import nibabel as nib
    img = nib.Nifti1Image(data.astype(dtype), aff)
    img.set_sform(aff, 1)
    img.set_qform(aff, 1)
    img.header.set_slope_inter(1, 0)
    nib.save(img, path)
    print(f"{path}: {data.shape} ({os.path.getsize(path)} bytes)")


def main(argv: Optional[List[str]] = None) -> int:
    import nibabel as nib
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    ch = os.path.join(a.data, "chest", "dashvtk-ct-lung")
    img = nib.load(os.path.join(ch, "scan.nii.gz"))
    hu = np.asarray(img.dataobj).astype(np.float64)
    _save(os.path.join(a.out, "chest-lung-pet-ct-dx.nii.gz"), np.rint(_down(hu, 4)), _aff(img.affine, 4), np.int16)
    lung = np.asarray(nib.load(os.path.join(ch, "lung.nii.gz")).dataobj).astype(np.float64)
    _save(os.path.join(a.out, "chest-lung-pet-ct-dx.lung.nii.gz"), _down(lung, 4) > 0.5, _aff(img.affine, 4), np.uint8)
    ab = nib.load(os.path.join(a.data, "other", "totalseg-abdomen-pelvis", "scan.nii.gz"))
    av = np.asarray(ab.dataobj).astype(np.float64)
    nz2 = av.shape[2] // 2
    av = av[:, :, :nz2 * 2].reshape(av.shape[0], av.shape[1], nz2, 2).mean(3)
    aa = ab.affine.copy()
    aa[:3, 2] *= 2
    aa[:3, 3] = ab.affine[:3, 3] + ab.affine[:3, 2] * 0.5
    _save(os.path.join(a.out, "abdomen-pelvis.nii.gz"), np.rint(av), aa, np.int16)
    hd = nib.load(os.path.join(a.data, "other", "dcmqa-head", "scan.nii.gz"))
    _save(os.path.join(a.out, "head.nii.gz"), np.rint(_down(np.asarray(hd.dataobj).astype(np.float64), 4)),
          _aff(hd.affine, 4), np.int16)
    return 0


if __name__ == "__main__":
    sys.exit(main())
