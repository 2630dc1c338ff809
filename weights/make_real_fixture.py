#!/usr/bin/env python3
"""PyTorch's results on the small real chest CT of samples/real, for test/realct.test.ts (the engine must give the
same masks):

    /usr/bin/python3 weights/make_real_fixture.py --weights weights/trained/synthetic-small.safetensors

Writes, next to the scan (samples/real/chest-lung-pet-ct-dx.nii.gz):

* ``chest-lung-pet-ct-dx.pytorch-lung.nii.gz``: the final lung mask (stage 1, brought back to the scan's grid,
  post-processed: weights/postprocess.py) in the scan's own layout and affine, as the engine writes lung_mask.nii.gz;
* ``chest-lung-pet-ct-dx.expected.json``: the weights file's sha256, per-slice lung and infected voxels of the final
  mask, lung volume, involvement, the chest check, the Dice of the final mask against the reference mask, and the
  patient answer as the engine gives it (calibrated probabilities, the out-of-distribution score, "no class" where
  validation does not support it: weights/calibrate.py).

With ``--scan`` another ('L','P','S') scan next to its ``.lung.nii.gz`` (e.g. the lesion-inserted copy
``chest-lung-pet-ct-dx-cap.nii.gz`` that ``--make-cap`` writes: weights/lesions.py on the committed scan, seed 3,
involvement 15 %).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from typing import List, Optional

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import dataset as ds  # noqa: E402
import export  # noqa: E402
import postprocess as pp  # noqa: E402
from evaluate_real import infer_source_grid  # noqa: E402

SCAN = os.path.join(_HERE, "..", "samples", "real", "chest-lung-pet-ct-dx.nii.gz")


def make_cap_copy(scan: str) -> str:
    """The committed real chest CT with CAP-like lesions inserted (weights/lesions.py, seed 3, involvement target
    15 %): ``<scan>-cap.nii.gz`` with its ``.lung.nii.gz`` (the reference mask) and ``.infection.nii.gz``."""
    import nibabel as nib
    import lesions
    hu, sp = ds._nifti_zyx(scan, as_float=True)
    ref, _ = ds._nifti_zyx(scan.replace(".nii.gz", ".lung.nii.gz"), as_float=False)
    r = lesions.synthesize(hu, ref != 0, sp, "CAP", np.random.default_rng(3), target_pct=15.0)
    img = nib.load(scan)
    out = scan.replace(".nii.gz", "-cap.nii.gz")
    for path, zyx, dt in ((out, np.clip(np.round(r["hu"]), -1024, 3071), np.int16),
                          (out.replace(".nii.gz", ".lung.nii.gz"), ref != 0, np.uint8),
                          (out.replace(".nii.gz", ".infection.nii.gz"), r["infection"], np.uint8)):
        mi = nib.Nifti1Image(np.transpose(zyx, (2, 1, 0)).astype(dt), img.affine)
        mi.set_sform(img.affine, 1)
        mi.set_qform(img.affine, 1)
        nib.save(mi, path)
    print(f"{out}: CAP-like, involvement {r['synthesis'].involvement_pct:.2f} %")
    return out


def main(argv: Optional[List[str]] = None) -> int:
    import nibabel as nib
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=os.path.join(_HERE, "trained", "synthetic-small.safetensors"))
    ap.add_argument("--scan", default=SCAN)
    ap.add_argument("--make-cap", action="store_true",
                    help="first write the CAP-like copy of the committed scan (scan, lung and infection masks) and use it")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.make_cap:
        a.scan = make_cap_copy(SCAN)
    model = export.load_model(a.weights).eval()
    cfg = model.config
    hu, sp = ds._nifti_zyx(a.scan, as_float=True)
    ref, _ = ds._nifti_zyx(a.scan.replace(".nii.gz", ".lung.nii.gz"), as_float=False)
    st = ds.Study("chest", ds.NO_INFECTION, hu.astype(np.float32), sp, (ref != 0).astype(np.uint8), None, None)
    o, r = infer_source_grid(model, st)
    import calibrate
    import safetensors_io
    cal = calibrate.read_calibration(safetensors_io.read_header(a.weights)[1])
    dec = calibrate.decide(o["patient_logits"].numpy(), o["patient_pooled"].numpy(), cal)
    names = cfg.cls.class_names
    img = nib.load(a.scan)
    if nib.aff2axcodes(img.affine) != ("L", "P", "S"):
        raise SystemExit(f"{a.scan}: expected the ('L','P','S') layout make_real_samples.py writes")
    m = np.transpose(r["lung"].astype(np.uint8), (2, 1, 0))
    out_mask = a.scan.replace(".nii.gz", ".pytorch-lung.nii.gz")
    mi = nib.Nifti1Image(m, img.affine)
    mi.set_sform(img.affine, 1)
    mi.set_qform(img.affine, 1)
    nib.save(mi, out_mask)
    with open(a.weights, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    c = r["chest"]
    exp = {
        "weights": os.path.basename(a.weights), "weights_sha256": sha,
        "command": "/usr/bin/python3 weights/make_real_fixture.py --weights " + os.path.relpath(a.weights, os.path.join(_HERE, ".."))
        + (" --make-cap" if a.make_cap else ""),
        "lung_voxels_per_slice": [int(v) for v in r["lung_voxels"]],
        "infected_voxels_per_slice": [int(v) for v in r["infected_voxels"]],
        "raw_lung_voxels": int(r["raw"].sum()),
        "lung_ml": r["lung_ml"], "infected_ml": r["infected_ml"], "involvement_pct": r["involvement_pct"],
        "is_chest": c["is_chest"], "slices_used": int(o["slice_used"].sum()),
        "dice_vs_reference": ds.dice(torch.from_numpy(r["lung"]), torch.from_numpy(ref != 0)),
        "removed_outside_body": r["removed_outside_body"], "removed_components": r["removed_components"],
        "patient": {"label": pp.patient_label(dec, c, names),
                    "probabilities": {n: float(dec["probs"][i]) for i, n in enumerate(names)},
                    "logits": [float(v) for v in o["patient_logits"]], "calibrated": cal is not None,
                    "temperature": dec["temperature"], "ood_score": dec["score"], "ood_threshold": dec["threshold"],
                    "supported": dec["supported"]},
    }
    inf_path = a.scan.replace(".nii.gz", ".infection.nii.gz")
    if os.path.exists(inf_path):
        inf, _ = ds._nifti_zyx(inf_path, as_float=False)
        exp["inserted_involvement_pct"] = 100.0 * float((inf != 0).sum()) / float((ref != 0).sum())
    with open(a.scan.replace(".nii.gz", ".expected.json"), "w") as f:
        json.dump(exp, f, indent=1)
    print(json.dumps({k: v for k, v in exp.items() if not k.endswith("per_slice")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
