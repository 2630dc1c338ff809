#!/usr/bin/env python3
"""Real CT with the PyTorch reference: lung Dice against the reviewed reference masks, on the source grid, after the
post-processing the engine applies (weights/postprocess.py), the chest check, and the patient answer as the engine
gives it (calibrated probabilities, the out-of-distribution score, "no class" where validation does not support it:
weights/calibrate.py) with the involvement against the inserted lesions' (weights/lesions.py copies).

    /usr/bin/python3 weights/evaluate_real.py --weights W.safetensors --data data/real/chest data/real/other \\
        --json out.json [--masks DIR] [--only STUDY ...]

Each study folder is read as dataset.py reads it (scan.nii.gz and, for the chest studies, lung.nii.gz); the model
runs every slice (dataset.infer_study: the engine's inference), its lung probability and infection map are
brought back to each slice's source size, thresholded and post-processed exactly as the engine does.  Reported per
study: lung Dice of stage 1's raw mask and of the final mask against the reference, lung volumes, what the
post-processing removed, the infection map's involvement inside the final mask, and the chest check (is it a chest
CT, and if not, why).  ``--masks DIR`` writes DIR/<study>.lung.nii.gz (the final mask on the scan's own grid and
affine) for the contact sheets (real_data.py sheets --pred DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List, Optional, Tuple

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import dataset as ds  # noqa: E402
import export  # noqa: E402
import postprocess as pp  # noqa: E402


def infer_source_grid(model, st: ds.Study) -> Tuple[Dict[str, torch.Tensor], Dict[str, object]]:
    """What the engine computes for a study: the model on every slice (``dataset.infer_study``, float32 input) and
    the final masks on the source grid (``postprocess.final_masks``)."""
    o = ds.infer_study(model, ds.prepare(st, model.config, half=False))
    return o, pp.final_masks(st.hu, o["lung_prob"], o["infection_prob"], model.config.preprocess, st.spacing)


def run_study(model, root: str, name: str, masks_dir: Optional[str] = None, label: int = ds.NO_INFECTION,
              calibration: Optional[dict] = None, patient_slices: str = "stage1") -> dict:
    import calibrate
    st = ds.read_study(root, name, label)
    o, r = infer_source_grid(model, st)
    stage1_used = int(o["slice_used"].sum())
    if patient_slices == "final":  # an evaluation option, not the engine's path (postprocess.final_mask_slices)
        pp.pool_final_mask_slices(model, o, r)
    rec = {"study": name, "root": os.path.basename(os.path.abspath(root)), "shape_zyx": list(st.hu.shape),
           "spacing_zyx_mm": [round(v, 4) for v in st.spacing],
           "lung_ml": round(r["lung_ml"], 2), "raw_lung_ml": round(float(r["raw"].sum()) * np.prod(st.spacing) / 1000, 2),
           "removed_outside_body": r["removed_outside_body"], "removed_components": r["removed_components"],
           "involvement_pct": None if r["involvement_pct"] is None else round(r["involvement_pct"], 4),
           "chest": r["chest"], "slices_used": int(o["slice_used"].sum()), "stage1_slices_used": stage1_used,
           "lung_voxels_per_slice": [int(v) for v in r["lung_voxels"]],
           "infected_voxels_per_slice": [int(v) for v in r["infected_voxels"]], "label": ds.CLASS_NAMES[label]}
    # the patient answer, as src/analysis/analyze.ts gives it: not a chest CT > no lung > no class (lungs not whole, or
    # outside what validation supports) > the class
    if not r["chest"]["is_chest"]:
        rec.update(patient_pred="not a chest CT", patient_probs=None, ood_score=None, supported=None)
    elif bool(o["patient_no_lung"]):
        rec.update(patient_pred="no lung found", patient_probs=None, ood_score=None, supported=None)
    else:
        d = calibrate.decide(o["patient_logits"].numpy(), o["patient_pooled"].numpy(), calibration)
        rec.update(patient_probs=[float(v) for v in d["probs"]], ood_score=d["score"], supported=d["supported"],
                   patient_pred=pp.patient_label(d, r["chest"], ds.CLASS_NAMES),
                   patient_logits=[float(v) for v in o["patient_logits"]])
    if rec["patient_pred"] in ("not a chest CT", "no class"):
        rec["involvement_pct"] = None
    if st.infection is not None and st.lung is not None:
        rec["inserted_involvement_pct"] = round(100.0 * float(st.infection.sum()) / max(1.0, float(st.lung.sum())), 4)
    if st.lung is not None:
        ref = st.lung.astype(bool)
        rec["ref_lung_ml"] = round(float(ref.sum()) * np.prod(st.spacing) / 1000, 2)
        rec["dice_raw"] = round(ds.dice(torch.from_numpy(r["raw"]), torch.from_numpy(ref)), 5)
        rec["dice"] = round(ds.dice(torch.from_numpy(r["lung"]), torch.from_numpy(ref)), 5)
    if masks_dir:
        import nibabel as nib
        from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform
        img = nib.load(os.path.join(root, name, "scan.nii.gz"))
        # (Z, Y, X) in ('L','P','S') back to the file's own orientation
        tr = ornt_transform(axcodes2ornt(("L", "P", "S")), io_orientation(img.affine))
        m = apply_orientation(np.transpose(r["lung"].astype(np.uint8), (2, 1, 0)), tr)
        os.makedirs(masks_dir, exist_ok=True)
        out = nib.Nifti1Image(m.astype(np.uint8), img.affine)
        out.set_sform(img.affine, 1)
        out.set_qform(img.affine, 1)
        nib.save(out, os.path.join(masks_dir, f"{name}.lung.nii.gz"))
    return rec


def within_tolerance(measured: Optional[float], inserted: float) -> bool:
    """weights/README.md "The classifier on real CT": within +-50 % of the inserted involvement or 2 points."""
    return measured is not None and abs(measured - inserted) <= max(2.0, 0.5 * inserted)


def summarise(res: List[dict]) -> dict:
    """Per true class: studies, right class, no class, involvement within tolerance (lesion copies) or under 1 %
    (studies without lesions)."""
    out = {}
    for lab in ds.CLASS_NAMES:
        rs = [r for r in res if r.get("label") == lab and r["chest"]["is_chest"]]
        if not rs:
            continue
        e = {"studies": len(rs), "right_class": sum(r["patient_pred"] == lab for r in rs),
             "no_class": sum(r["patient_pred"] == "no class" for r in rs),
             "covid_or_cap_call": sum(r["patient_pred"] in ("COVID-19", "CAP") for r in rs)}
        if lab == "no infection":
            e["involvement_under_1pct"] = sum(r["involvement_pct"] is not None and r["involvement_pct"] < 1.0 for r in rs)
        else:
            e["involvement_within_tolerance"] = sum(within_tolerance(r["involvement_pct"], r["inserted_involvement_pct"])
                                                    for r in rs if "inserted_involvement_pct" in r)
        e["involvement_pct"] = [r["involvement_pct"] for r in rs]
        if lab != "no infection":
            e["inserted_involvement_pct"] = [r.get("inserted_involvement_pct") for r in rs]
        out[lab] = e
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", nargs="+", required=True, help="dataset folders (labels.csv + <study>/scan.nii.gz)")
    ap.add_argument("--only", nargs="*", help="these studies only")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--masks", help="write <study>.lung.nii.gz (final masks) here")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--patient-slices", choices=("stage1", "final"), default="stage1",
                    help="the slices the patient head pools: stage 1's (the engine's path, MODEL.md), or those of which "
                         "the post-processing kept at least half of the lung (an evaluation option)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.time()
    import calibrate
    import safetensors_io
    model = export.load_model(a.weights).eval()
    cal = calibrate.read_calibration(safetensors_io.read_header(a.weights)[1])
    res = []
    for root in a.data:
        rows, _ = ds.read_labels(root)
        for name, lab in rows:
            if a.only and name not in a.only:
                continue
            r = run_study(model, root, name, a.masks, label=lab, calibration=cal, patient_slices=a.patient_slices)
            res.append(r)
            c = r["chest"]
            print(f"{name:28s} lung {r['lung_ml']:8.1f} mL" + (f" (reference {r['ref_lung_ml']:.1f})  Dice {r['dice']:.4f} "
                  f"(stage 1 alone {r['dice_raw']:.4f})" if "dice" in r else "") +
                  f"  removed {r['removed_outside_body']} outside body, {r['removed_components']} in small components;"
                  f" chest: {'yes' if c['is_chest'] else 'NO (' + str(c['reason']) + ')'}, lung over "
                  f"{c['lung_extent_mm']:.0f} of {c['scan_extent_mm']:.0f} mm"
                  + (f", lungs {'whole' if c['lungs_whole'] else 'NOT whole'} (lowest slice {c['lower_end_fraction']:.2f},"
                     f" highest {c['upper_end_fraction']:.2f} of the largest)" if c['lungs_whole'] is not None else "")
                  + f"; involvement {r['involvement_pct']}"
                  + (f" (inserted {r['inserted_involvement_pct']})" if 'inserted_involvement_pct' in r else "")
                  + f"; {r['label']} -> {r['patient_pred']}"
                  + (f" {[round(v, 3) for v in r['patient_probs']]}" if r.get('patient_probs') else "")
                  + (f", OOD score {r['ood_score']:.3f}" if r.get('ood_score') is not None else ""), flush=True)
    summary = summarise(res)
    print(json.dumps(summary, indent=1))
    if a.json:
        cmd = "/usr/bin/python3 weights/evaluate_real.py " + " ".join(argv if argv is not None else sys.argv[1:])
        with open(a.json, "w") as f:
            json.dump({"weights": os.path.basename(a.weights), "command": cmd, "summary": summary, "studies": res}, f,
                      indent=1)
    print(f"({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
