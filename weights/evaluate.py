#!/usr/bin/env python3
"""Evaluate exported weights (.safetensors) with the PyTorch reference on a dataset folder.

    /usr/bin/python3 weights/synth.py --out data/test --n 36 --seed 3 --matrix 96,128 --dz 7,12
    /usr/bin/python3 weights/evaluate.py --weights weights/trained/synthetic-small.safetensors \\
        --data data/test --json weights/trained/synthetic-small.eval.json --readme weights/README.md

Inference is what the engine does: every slice through stage 1, the stage-1 mask (lung
probability > 0.5) into stage 2, the patient head over the slices whose mask covers >= 1% of the
slice.  No ground truth is used at inference.  Metrics, on the model grid (input_size x
input_size per slice; ground-truth masks area-resampled to it and thresholded at 0.5):

  lung Dice        per study over the whole volume, mean over studies
  infection Dice   per study (infected = P > 0.5 inside the predicted lung), mean over studies
                   that have infection voxels
  slice accuracy   slice class vs the per-slice label, over slices whose ground-truth lung
                   covers >= 1% of the slice, pooled over studies
  patient accuracy patient class vs the study label; a study where no lung was found counts wrong
  per class        precision / recall / F1 (patients and slices), one-vs-rest AUC (patients)

``--json`` writes the summary and per-study results (class probabilities, prediction, lung
volume, involvement, and with ``--per-slice`` lung area, infected fraction and slice class
probabilities per slice) so the engine's results on the same scans can be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List, Optional

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import dataset as ds  # noqa: E402
import export  # noqa: E402
import safetensors_io  # noqa: E402

BEGIN = "<!-- evaluate.py:begin -->"
END = "<!-- evaluate.py:end -->"


def table(summary: Dict[str, object], weights: str, data: str, command: str, metadata: Dict[str, str]) -> str:
    s = summary
    names = s["class_names"]
    pc, sc, auc = s["patient_per_class"], s["slice_per_class"], s["patient_auc"]
    lines = [
        f"Weights `{weights}` ({metadata.get('covidct.intended_use', 'no covidct.intended_use')}), "
        f"test set `{data}`: {s['studies']} studies, PyTorch reference (float32 from the file's weights).",
        "",
        "```sh",
        command,
        "```",
        "",
        "| metric | value | target |",
        "|---|---|---|",
        f"| lung Dice (mean over studies; min) | {s['lung_dice']:.4f} (min {s['lung_dice_min']:.4f}) | >= 0.95 |",
        f"| infection Dice (mean over infected studies) | {s['infection_dice']:.4f} | |",
        f"| slice accuracy (slices with lung >= 1%) | {100 * s['slice_accuracy']:.1f} % | |",
        f"| patient accuracy | {100 * s['patient_accuracy']:.1f} % | >= 90 % |",
    ] + ([f"| studies without a class (outside what validation supports; counted wrong above) | "
          f"{s['patient_no_class']} | |"] if s.get('patient_no_class') else []) + [
        "",
        "| class | patients | patient precision | patient recall | patient F1 | patient AUC (one-vs-rest) | slice F1 | slices |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, n in enumerate(names):
        lines.append(f"| {n} | {pc[k]['support']} | {pc[k]['precision']:.3f} | {pc[k]['recall']:.3f} | "
                     f"{pc[k]['f1']:.3f} | {auc[k]:.3f} | {sc[k]['f1']:.3f} | {sc[k]['support']} |")
    lines += ["", "Patient confusion matrix (rows: truth, columns: prediction; " + ", ".join(names) + "):", ""]
    for k, row in enumerate(s["confusion"]):
        lines.append(f"    {names[k]:>13s}: {row}")
    return "\n".join(lines)


def write_readme(path: str, text: str) -> None:
    with open(path) as f:
        cur = f.read()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in cur and END in cur:
        a = cur.index(BEGIN)
        b = cur.index(END) + len(END)
        cur = cur[:a] + block + cur[b:]
    else:
        cur = cur.rstrip("\n") + "\n\n## Evaluation of the trained weights\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(cur)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help=".safetensors written by export.py / train.py")
    ap.add_argument("--data", required=True, help="dataset folder (layout: docs/training.md)")
    ap.add_argument("--json", help="write summary + per-study results here")
    ap.add_argument("--per-slice", action="store_true", help="include per-slice arrays in --json")
    ap.add_argument("--readme", help="replace the evaluation block of this markdown file with the table")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-cache", action="store_true")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.time()
    model = export.load_model(a.weights)
    _, metadata = safetensors_io.load(a.weights)
    cfg = model.config
    # float32 images: the per-study results are compared with the engine's (bench/evaluate.ts)
    studies = ds.load_dataset(a.data, cfg, cache=not a.no_cache, half=False)
    import calibrate
    cal = calibrate.read_calibration(metadata)
    res = ds.evaluate_studies(model, studies, cfg.preprocess.infection_threshold, keep_outputs=a.per_slice,
                              calibration=cal)
    s = res["summary"]
    command = "/usr/bin/python3 weights/evaluate.py " + " ".join(
        x if " " not in x else repr(x) for x in (argv if argv is not None else sys.argv[1:]))
    txt = table(s, a.weights, a.data, command, metadata)
    print(txt)
    ok = (s["lung_dice"] >= 0.95 and s["patient_accuracy"] >= 0.90
          and all(c["recall"] > 0 for c in s["patient_per_class"]))
    print(f"\ntargets (lung Dice >= 0.95, patient accuracy >= 90 %, every class recognised): "
          f"{'met' if ok else 'NOT met'}  ({time.time() - t0:.0f} s)")
    if a.json:
        out = {"weights": os.path.basename(a.weights), "data": a.data, "command": command,
               "metadata": {k: v for k, v in metadata.items() if k not in ("covidct.config", "covidct.preprocess")},
               "grid": f"{cfg.input_size}x{cfg.input_size} per slice (model input)", **res}
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    if a.readme:
        write_readme(a.readme, txt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
