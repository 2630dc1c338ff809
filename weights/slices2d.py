#!/usr/bin/env python3
"""Real 2-D CT slices with COVID / non-COVID labels: a real-domain check of the slice classifier (COVID-19 vs not).

The images are display images (PNG / JPEG grey levels, no HU), from plain clones at stated commits (nothing here is
downloaded; the images are not in this repository: their licences do not allow it or do not say):

    git clone https://github.com/Coronavirus-Visualization-Team/CVT_COVID-CT-CNN && git -C CVT_COVID-CT-CNN checkout 24d2b48
    git clone https://github.com/GKasperek/data_c19_cropped && git -C data_c19_cropped checkout 2f7fa6d

Sets (``SETS``; provenance read from the file names and the repositories' notes):

* ``sarscov2``: the SARS-CoV-2 CT-scan dataset (Soares et al., 2020, medRxiv 10.1101/2020.04.24.20078584; patients of
  hospitals in Sao Paulo; CC BY-NC-SA 4.0), the files ``Covid (N).png`` (1252) and ``Non-Covid (N).png`` (1229) of
  CVT's ``Data/master-data``.
* ``ucsd``: the UCSD-AI4H COVID-CT images (Zhao et al., 2020, arXiv 2003.13865: 349 COVID-19 slices from figures of
  medRxiv / bioRxiv preprints, 397 non-COVID slices from PubMed Central, MedPix, LUNA and Radiopaedia), cropped, as
  GKasperek/data_c19_cropped holds them (``CT_COVID``, ``CT_NonCOVID``).  CVT's master data holds the same images
  uncropped; they are not used a second time.
* ``ricord``: short DICOM slabs of chest CT from TCIA's MIDRC-RICORD (CC BY-NC 4.0), in HU: a slice's label is its
  patient's (RICORD-1A, COVID-19 positive: 1; RICORD-1B, COVID-19 negative, which may still show other opacities:
  0), read from each series' PatientID.  ``--ricord-slabs DIR`` takes every DICOM series folder under DIR (one
  series each); the slices are read as dataset.py reads a DICOM series (rescale to HU, padding to -1024) and are not
  mapped from grey.  The only ones found (weights/README.md): Jules-be/CSC621_821-Team_Sky @ dcb93cc,
  ``data/covid_{positive,negative}_data/patient_N``, ten 3 mm slices each of three 1A and five 1B patients.
* Not used: the rest of CVT's master data (``img<N>.jpg``: 684 COVID and 254 non-COVID, ``nor_<a>_img_<b>``: 286
  non-COVID, ``ct<N>``, ``r<N>``: 20 COVID) carries no provenance that could be checked, so it cannot be shown not to
  hold the project's held-out acceptance data; ``mosmed_img<N>`` (126 COVID slices of MosMedData) has no non-COVID
  counterpart from the same source, which would turn the AUC into a test of the source.

Grey levels to HU: every image is read as 8-bit grey (PIL's ITU-R 601 luma for RGB; transparent pixels of RGBA are
air), and grey g is taken as the lung window most figures of chest CT use, width 1500 HU, level -600 HU:
``HU = -1350 + g * 1500 / 255`` (g = 0 is -1350 HU, 255 is +150 HU).  The images' own windows are unknown and vary
(figures from papers); this mapping is the one fixed choice, made before any result.  Each image is padded to a
square with g = 0 (air) around its centre, so that the model's resize to its input size keeps the aspect ratio,
then windowed and resized exactly as ``reference.preprocess_hu`` (the engine's preprocessing).

    /usr/bin/python3 weights/slices2d.py prepare --cvt clones/CVT_COVID-CT-CNN --ucsd clones/data_c19_cropped \\
        --out data/slices2d-128.safetensors --size 128
    /usr/bin/python3 weights/slices2d.py evaluate --weights W.safetensors --slices data/slices2d-128.safetensors \\
        --json out.json

``evaluate`` runs what the engine runs on each slice (stage 1's mask, stage 2 on the masked slice) and scores the
slice head's COVID-19 probability against the label: accuracy of "COVID-19 is the most probable class", and the AUC
of the probability (Mann-Whitney), per set and pooled; and how many slices stage 1 found lung in (>= 1 % of the
slice).  None of these images was used to train, tune or choose anything (the whole collection is the test split).
The engine's side: ``npm run evaluate-slices`` (bench/evaluate-slices.ts).
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

WINDOW_LEVEL = -600.0
WINDOW_WIDTH = 1500.0


def grey_to_hu(g: np.ndarray) -> np.ndarray:
    """8-bit display grey -> HU under the lung window (level -600, width 1500)."""
    return (WINDOW_LEVEL - WINDOW_WIDTH / 2 + g.astype(np.float32) * (WINDOW_WIDTH / 255.0)).astype(np.float32)


def read_grey(path: str) -> np.ndarray:
    from PIL import Image
    im = Image.open(path)
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (0, 0, 0, 255))
        im = Image.alpha_composite(bg, im)
    if im.mode != "L":
        im = im.convert("L")
    return np.asarray(im, dtype=np.uint8)


def pad_square(g: np.ndarray, fill: float = 0) -> np.ndarray:
    """``g`` centred in a square of ``fill`` (grey 0 for a display image, air for HU)."""
    h, w = g.shape
    n = max(h, w)
    out = np.full((n, n), fill, dtype=g.dtype)
    y0, x0 = (n - h) // 2, (n - w) // 2
    out[y0:y0 + h, x0:x0 + w] = g
    return out


def list_sets(cvt: str, ucsd: str) -> List[Tuple[str, str, int, str]]:
    """(set, name, label 1 = COVID-19 / 0 = not, path), sorted by set and name."""
    rows = []
    md = os.path.join(cvt, "Data", "master-data")
    for sub, lab, prefix in (("COVID", 1, "Covid ("), ("NonCOVID", 0, "Non-Covid (")):
        for f in sorted(os.listdir(os.path.join(md, sub))):
            if f.startswith(prefix):
                rows.append(("sarscov2", f, lab, os.path.join(md, sub, f)))
    for sub, lab in (("CT_COVID", 1), ("CT_NonCOVID", 0)):
        for f in sorted(os.listdir(os.path.join(ucsd, sub))):
            if not f.startswith("."):
                rows.append(("ucsd", f, lab, os.path.join(ucsd, sub, f)))
    return rows


def list_slabs(root: str) -> List[Tuple[str, str, int, np.ndarray]]:
    """(set 'ricord', '<PatientID>/<k>', label, HU slice (Y, X)) for every slice of every DICOM series folder under
    ``root`` (a folder holding files directly; sorted by path), k counting inferior -> superior."""
    import pydicom
    from dataset import _dicom_zyx
    rows = []
    for d, _, files in sorted(os.walk(root)):
        first = None
        for f in sorted(f for f in files if not f.startswith(".")):
            try:
                first = pydicom.dcmread(os.path.join(d, f), stop_before_pixels=True)
                break
            except pydicom.errors.InvalidDicomError:
                continue   # a README or a picture beside the series
        if first is None:
            continue
        pid = str(first.get("PatientID", ""))
        if "RICORD-1A" in pid:
            lab = 1
        elif "RICORD-1B" in pid:
            lab = 0
        else:
            raise SystemExit(f"{d}: PatientID {pid!r} is neither MIDRC-RICORD-1A nor -1B: no label")
        hu, _ = _dicom_zyx(d)
        if any(r[1].startswith(pid + "/") for r in rows):
            raise SystemExit(f"{d}: patient {pid} a second time (one series a patient)")
        rows += [("ricord", f"{pid}/{k}", lab, hu[k]) for k in range(hu.shape[0])]
    if not rows:
        raise SystemExit(f"{root}: no DICOM series found")
    return rows


def prepare(cvt: Optional[str], ucsd: Optional[str], out: str, size: int, ricord: Optional[str] = None) -> None:
    import safetensors_io
    from reference import default_config, preprocess_hu
    cfg = default_config()
    if bool(cvt) != bool(ucsd) or not (cvt or ricord):
        raise SystemExit("prepare needs --cvt and --ucsd (both), --ricord-slabs, or all three")
    rows = list_sets(cvt, ucsd) if cvt and ucsd else []
    imgs = []
    for i, (_, _, _, path) in enumerate(rows):
        hu = grey_to_hu(pad_square(read_grey(path)))
        imgs.append(preprocess_hu(torch.from_numpy(hu)[None], cfg, (size, size))[0])
        if (i + 1) % 500 == 0:
            print(f"  {i + 1}/{len(rows)}", flush=True)
    if ricord:
        slabs = list_slabs(ricord)
        for _, _, _, hu in slabs:
            imgs.append(preprocess_hu(torch.from_numpy(pad_square(hu, -1024.0))[None], cfg, (size, size))[0])
        rows += [(s, n, lab, "") for s, n, lab, _ in slabs]
    x = torch.stack(imgs)
    meta = {"covidct.slices2d": json.dumps({
        "sets": [r[0] for r in rows], "names": [r[1] for r in rows], "labels": [r[2] for r in rows],
        "hu_mapping": f"HU = {WINDOW_LEVEL - WINDOW_WIDTH / 2:g} + g * {WINDOW_WIDTH:g} / 255 (8-bit grey g)"
                      + ("; set ricord: HU from DICOM" if ricord else ""),
        "size": size})}
    safetensors_io.save({"windowed": x}, meta, out)
    counts: Dict[str, List[int]] = {}
    for s, _, lab, _ in rows:
        counts.setdefault(s, [0, 0])[lab] += 1
    print(f"{out}: {len(rows)} slices at {size} x {size}; per set [not COVID, COVID]: {counts}")


def auc(score: np.ndarray, y: np.ndarray) -> float:
    pos, neg = score[y == 1], score[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(allv))
    i = 0
    while i < len(allv):  # average ranks of ties
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(allv))
    r[order] = ranks
    rp = r[:len(pos)].sum()
    return float((rp - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def metrics(p_covid: np.ndarray, pred_covid: np.ndarray, y: np.ndarray) -> Dict[str, float]:
    return {"slices": int(len(y)), "covid": int(y.sum()), "accuracy": float((pred_covid == y).mean()),
            "auc": auc(p_covid, y), "sensitivity": float(pred_covid[y == 1].mean()) if (y == 1).any() else float("nan"),
            "specificity": float(1 - pred_covid[y == 0].mean()) if (y == 0).any() else float("nan")}


def summarise(sets: List[str], y: np.ndarray, probs: np.ndarray, used: np.ndarray) -> Dict[str, object]:
    p_covid = probs[:, 0]
    pred_covid = (probs.argmax(1) == 0).astype(np.int64)
    out: Dict[str, object] = {"pooled": {**metrics(p_covid, pred_covid, y), "lung_found": float(used.mean())}}
    for s in sorted(set(sets)):
        m = np.array([v == s for v in sets])
        out[s] = {**metrics(p_covid[m], pred_covid[m], y[m]), "lung_found": float(used[m].mean())}
    return out


def engine_subset(sets: List[str], every: int = 4) -> List[int]:
    """The slices the engine evaluation runs (bench/evaluate-slices.ts): every ``every``-th slice of each set in the
    file's order (sorted by set, class folder and name), so each set keeps its class balance."""
    idx, count = [], {}
    for i, s in enumerate(sets):
        c = count.get(s, 0)
        if c % every == 0:
            idx.append(i)
        count[s] = c + 1
    return idx


def patients(sets: List[str], names: List[str], y: np.ndarray, probs: np.ndarray) -> Dict[str, object]:
    """For the sets whose slice names are '<patient>/<k>' (``ricord``): per patient the label, the slices, the mean
    slice P(COVID-19) and how many slices the slice head calls each class (COVID-19, CAP, no infection); and per
    set the AUC of that mean over the patients."""
    out: Dict[str, object] = {}
    for s in sorted(set(sets)):
        idx = [i for i, v in enumerate(sets) if v == s and "/" in names[i]]
        if not idx:
            continue
        per: Dict[str, List[int]] = {}
        for i in idx:
            per.setdefault(names[i].rsplit("/", 1)[0], []).append(i)
        rows = {p: {"label": int(y[ix[0]]), "slices": len(ix), "mean_p_covid": float(probs[ix, 0].mean()),
                    "slices_called": [int((probs[ix].argmax(1) == c).sum()) for c in range(probs.shape[1])]}
                for p, ix in per.items()}
        out[s] = {"patients": rows, "patient_auc": auc(np.array([r["mean_p_covid"] for r in rows.values()]),
                                                       np.array([r["label"] for r in rows.values()]))}
    return out


def load(path: str) -> Tuple[torch.Tensor, Dict[str, object]]:
    """A file of ``prepare``: the windowed slices (N, 1, S, S) float32, as the model takes them, and its metadata
    (``sets``, ``names``, ``labels`` (1 COVID-19, 0 not), ``hu_mapping``, ``size``)."""
    import safetensors_io
    tensors, meta = safetensors_io.load(path)
    x = tensors["windowed"].float()
    if x.dim() != 4 or x.shape[1] != 1:
        raise SystemExit(f"{path}: windowed slices of shape {tuple(x.shape)}, expected (N, 1, S, S)")
    return x, json.loads(meta["covidct.slices2d"])


@torch.no_grad()
def evaluate(weights: str, slices: str, out: Optional[str], batch: int = 64) -> Dict[str, object]:
    import export
    t0 = time.time()
    model = export.load_model(weights).eval()
    x, info = load(slices)
    if x.shape[-1] != model.config.input_size:
        raise SystemExit(f"{slices}: slices of {x.shape[-1]} px, the model takes {model.config.input_size}")
    probs, used = [], []
    for i in range(0, x.shape[0], batch):
        o = model(x[i:i + batch])
        probs.append(torch.softmax(o["slice_logits"], 1))
        used.append(o["slice_used"])
    P = torch.cat(probs).numpy().astype(np.float64)
    U = torch.cat(used).numpy()
    y = np.array(info["labels"], dtype=np.int64)
    sets = info["sets"]
    res = {"weights": os.path.basename(weights), "slices": os.path.basename(slices), "hu_mapping": info["hu_mapping"],
           "summary": summarise(sets, y, P, U)}
    sub = engine_subset(sets)
    res["engine_subset"] = {"every": 4, "indices": sub,
                            "summary": summarise([sets[i] for i in sub], y[sub], P[sub], U[sub])}
    pat = patients(sets, info["names"], y, P)
    if pat:
        res["per_patient"] = pat
    res["per_slice"] = [{"set": s, "name": n, "label": int(l), "probs": [round(float(v), 7) for v in p], "used": bool(u)}
                        for s, n, l, p, u in zip(sets, info["names"], info["labels"], P, U)]
    if out:
        with open(out, "w") as f:
            json.dump(res, f, indent=1)
    print(json.dumps(res["summary"], indent=1))
    print(f"({time.time() - t0:.0f} s)")
    return res


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--cvt")
    p.add_argument("--ucsd")
    p.add_argument("--ricord-slabs", help="a folder of MIDRC-RICORD DICOM series (set 'ricord', HU)")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=128)
    e = sub.add_parser("evaluate")
    e.add_argument("--weights", required=True)
    e.add_argument("--slices", required=True)
    e.add_argument("--json")
    e.add_argument("--threads", type=int, default=0)
    a = ap.parse_args(argv)
    if getattr(a, "threads", 0):
        torch.set_num_threads(a.threads)
    if a.cmd == "prepare":
        prepare(a.cvt, a.ucsd, a.out, a.size, a.ricord_slabs)
    else:
        evaluate(a.weights, a.slices, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
