#!/usr/bin/env python3
"""Where the infection map paints, on real scans (a measurement for weights/README.md, "Where the infection map
paints on clean real lungs"): per study, the involvement as the engine reports it (the final lung mask, the
infection map above its threshold, on the source grid: evaluate_real.py's path), the share of the painted voxels
inside the folder's reference lung mask (lung.nii.gz: weights/lung_reference.py's classical mask, or a lesion copy's
mask), their HU distribution, stage 1's lung probability at them, and for lesion copies (infection.nii.gz) recall
and precision against the inserted lesions.

    /usr/bin/python3 weights/where_painted.py --weights W.safetensors DATASET_FOLDER/STUDY [...] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import dataset as ds  # noqa: E402
import export  # noqa: E402
import postprocess as pp  # noqa: E402
from evaluate_real import infer_source_grid  # noqa: E402

BINS = [-np.inf, -750, -300, -150, -50, 100, np.inf]
NAMES = ["<-750", "-750..-300", "-300..-150", "-150..-50", "-50..100", ">100"]


def hist(v: np.ndarray) -> str:
    h, _ = np.histogram(v, BINS)
    return " ".join(f"{n}:{c / max(1, len(v)):.2f}" for n, c in zip(NAMES, h))


def quartiles(v: np.ndarray) -> str:
    return " ".join(f"{x:.2f}" for x in np.quantile(v, [0.1, 0.25, 0.5])) if len(v) else "-"


@torch.no_grad()
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("studies", nargs="+", help="study folders (<dataset folder>/<study>)")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    model = export.load_model(a.weights).eval()
    for path in a.studies:
        root, name = os.path.dirname(os.path.abspath(path)), os.path.basename(os.path.abspath(path))
        st = ds.read_study(root, name, ds.NO_INFECTION)
        o, r = infer_source_grid(model, st)
        inf, hu = r["infected"], st.hu
        lp = pp.resize_back(o["lung_prob"], *hu.shape[1:]).numpy()
        inv = r["involvement_pct"]
        print(f"== {name}: involvement {inv if inv is None else round(inv, 2)} %, painted voxels {int(inf.sum())}")
        print(f"   painted HU: {hist(hu[inf])}")
        if st.lung is not None:
            ref = st.lung.astype(bool)
            inside = float(ref[inf].mean()) if inf.any() else float("nan")
            print(f"   painted inside the reference lung {inside:.2f} (involvement counted there only "
                  f"{100.0 * float((inf & ref).sum()) / max(1, int(r['lung'].sum())):.2f} %); final lung inside the "
                  f"reference {float(ref[r['lung']].mean()):.3f}")
            print(f"   stage 1 lung probability q10/q25/q50: painted inside the reference {quartiles(lp[inf & ref])}; "
                  f"outside {quartiles(lp[inf & ~ref])}")
        if st.infection is not None:
            t = st.infection.astype(bool)
            if t.any():
                print(f"   inserted HU: {hist(hu[t])}; recall {float(inf[t].mean()):.2f}, precision "
                      f"{float(t[inf].mean()) if inf.any() else float('nan'):.2f}")
                print(f"   stage 1 lung probability q10/q25/q50: painted and inserted {quartiles(lp[inf & t])}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
