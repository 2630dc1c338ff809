#!/usr/bin/env python3
"""Make the committed sample study and PyTorch's expected outputs for it.

    /usr/bin/python3 weights/make_sample.py --weights weights/trained/synthetic-small.safetensors \\
        --class covid --seed 11 --matrix 128 --out samples/synthetic-covid

writes
    <out>.nii.gz            the scan (int16 HU, affine axcodes L,P,S; see weights/synth.py)
    <out>.lung.nii.gz       ground-truth lung mask (uint8)
    <out>.infection.nii.gz  ground-truth infection mask (uint8)
    <out>.expected.json     what the PyTorch reference computes from <out>.nii.gz with the weights:
                            patient class probabilities, label, slices used, and per slice (NIfTI k
                            order, inferior -> superior) the lung area, the infected fraction and the
                            slice class probabilities; plus the generator's ground truth.

The scan is read back from the written file (nibabel, reoriented to the axial view, windowed,
resized) so the expected values come from exactly the bytes the engine reads.
"""

from __future__ import annotations

import argparse
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
import postprocess  # noqa: E402
import safetensors_io  # noqa: E402
import synth  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--class", dest="cls", default="covid", help="covid | cap | none")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--slices", type=int, default=0,
                    help="number of slices spread over the chest (0: the whole chest at a spacing drawn from --dz, as "
                         "the training and test sets are made)")
    ap.add_argument("--dz", default="7,12", help="slice spacing range in mm when --slices is 0 (as the data sets)")
    ap.add_argument("--matrix", type=int, default=128)
    ap.add_argument("--out", required=True, help="path prefix, e.g. samples/synthetic-covid")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    label = synth.parse_classes(a.cls)[0]
    st = synth.generate_study(synth.study_rng(a.seed, a.index), label, (a.matrix, a.matrix),
                              tuple(float(v) for v in a.dz.split(",")), a.slices or None)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmpdir"
    synth.write_study(st, tmp)
    for src, dst in (("scan", ""), ("lung", ".lung"), ("infection", ".infection")):
        os.replace(os.path.join(tmp, f"{src}.nii.gz"), f"{a.out}{dst}.nii.gz")
    os.rmdir(tmp)

    model = export.load_model(a.weights)
    _, md = safetensors_io.load(a.weights)
    cfg = model.config
    # read back exactly what was written
    import nibabel as nib  # noqa: F401
    hu, sp = ds._nifti_zyx(a.out + ".nii.gz", as_float=True)
    lung, _ = ds._nifti_zyx(a.out + ".lung.nii.gz", as_float=False)
    inf, _ = ds._nifti_zyx(a.out + ".infection.nii.gz", as_float=False)
    study = ds.Study(os.path.basename(a.out), ds.label_index(label), hu, sp, lung.astype(np.uint8),
                     inf.astype(np.uint8), None)
    p = ds.prepare(study, cfg, half=False)  # float32, as the engine reads the file (float16 moved probabilities by 4e-3)
    o = ds.infer_study(model, p)
    names = cfg.cls.class_names
    mask = o["lung_mask"][:, 0].bool()
    infected = (o["infection_prob"][:, 0] > cfg.preprocess.infection_threshold) & mask
    import calibrate
    cal = calibrate.read_calibration(md)
    dec = None
    if bool(o["patient_no_lung"]):
        probs = None
        pred = "no lung found"
    else:
        # calibrated probabilities and the out-of-distribution check (weights/calibrate.py, src/analysis/calibration.ts)
        dec = calibrate.decide(o["patient_logits"].numpy(), o["patient_pooled"].numpy(), cal)
        probs = dec["probs"]
    # what the engine reports: the masks on the source grid after the post-processing (weights/postprocess.py)
    fin = postprocess.final_masks(hu, o["lung_prob"], o["infection_prob"], cfg.preprocess, sp)
    if dec is not None:  # the patient answer as the engine gives it: "no class" unsupported or with cut lungs
        pred = postprocess.patient_label(dec, fin["chest"], names)
    s = cfg.input_size
    vox = p.voxel_ml
    g = st["geometry"]
    out = {
        "scan": os.path.basename(a.out) + ".nii.gz",
        "weights": os.path.basename(a.weights),
        "intended_use": md.get("covidct.intended_use", ""),
        "generator": {"command": "/usr/bin/python3 weights/make_sample.py " + " ".join(
            argv if argv is not None else sys.argv[1:]), "class": label, "stage": st["stage"],
            "matrix": g.n, "slices": g.nz, "pixel_spacing_mm": g.ps, "slice_spacing_mm": g.dz,
            "nifti_axcodes": "LPS (i: right->left, j: anterior->posterior, k: inferior->superior)"},
        "model_grid": f"{s}x{s}",
        "slice_order": "NIfTI k index, inferior -> superior",
        "patient": {
            "label": pred,
            "probabilities": {n: float(probs[i]) for i, n in enumerate(names)} if probs is not None else None,
            "logits": [float(v) for v in o["patient_logits"]],
            "calibrated": cal is not None,
            "temperature": dec["temperature"] if dec else None,
            "ood_score": dec["score"] if dec else None,
            "ood_threshold": dec["threshold"] if dec else None,
            "supported": dec["supported"] if dec else None,
            "slices_used": int(o["slice_used"].sum()),
            "lung_volume_ml": float(mask.sum()) * vox,
            "involvement_pct": 100.0 * float(infected.sum()) / max(float(mask.sum()), 1.0),
        },
        "per_slice": {
            "lung_area_fraction": [float(v) for v in o["lung_area"]],
            "lung_pixels": [int(v) for v in mask.sum(dim=(1, 2))],
            "used": [bool(v) for v in o["slice_used"]],
            "infected_fraction": [float(infected[k].sum()) / max(float(mask[k].sum()), 1.0) for k in range(mask.shape[0])],
            "slice_probabilities": [[float(x) for x in row] for row in torch.softmax(o["slice_logits"], 1)],
            "final_lung_voxels": [int(v) for v in fin["lung_voxels"]],
            "final_infected_voxels": [int(v) for v in fin["infected_voxels"]],
        },
        "final": {"grid": "source (the scan's), after the post-processing, as the engine reports",
                  "lung_volume_ml": fin["lung_ml"], "infected_volume_ml": fin["infected_ml"],
                  "involvement_pct": fin["involvement_pct"], "is_chest": fin["chest"]["is_chest"],
                  "removed_outside_body": fin["removed_outside_body"],
                  "removed_components": fin["removed_components"]},
        "truth": {
            "label": label,
            "lung_area_fraction": [float(v) for v in p.lung_area],
            "lung_dice_model_grid": ds.dice(mask, p.lung),
            "involvement_pct": 100.0 * float(p.infection.sum()) / max(float(p.lung.sum()), 1.0),
        },
        "notes": "voxel volume on the model grid = slice spacing x (FOV/size)^2; lung volume is for the slices "
                 "present (the sample has few, thick slices), not a whole-lung volume.",
    }
    with open(a.out + ".expected.json", "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps({"patient": out["patient"], "truth_label": label,
                      "lung_dice": out["truth"]["lung_dice_model_grid"],
                      "sizes": {x: os.path.getsize(a.out + x) for x in (".nii.gz", ".lung.nii.gz", ".infection.nii.gz")}},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
