#!/usr/bin/env python3
"""No answer the model cannot back: temperature scaling of the patient head and an out-of-distribution (OOD) score on
the patient head's pooled features, both fitted on data the weights were not trained on for that purpose, stored in
the weights file so that PyTorch and the engine compute the same thing (src/analysis/calibration.ts).

    /usr/bin/python3 weights/calibrate.py --weights W.safetensors --fit data/train ... --val data/val ... \\
        --out W-calibrated.safetensors [--json calibration.json] [--dims 32] [--quantile 0.99]

What it computes (the rules are fixed here, before any figure; weights/README.md "The classifier on real CT"):

* The **pooled feature** of a study is what the patient head reads: p = concat(mean(e), max(e)) over the slice
  embeddings e of the slices the inference path uses (lung >= 1 % of the slice), D = 2 E values
  (dataset.infer_study, the engine's path).
* **OOD score** (a Mahalanobis distance with a shared covariance, Lee et al., NeurIPS 2018): on the ``--fit`` studies
  (training data), the class means mu_c of p and the within-class covariance S (pooled over the classes), shrunk
  towards a multiple of the identity, S' = (1 - SHRINK) S + SHRINK tr(S)/D I; W = diag(lambda^-1/2) V^T over the
  ``--dims`` largest eigenpairs (lambda, V) of S'.  score(p) = min over classes c of |W p - W mu_c|^2 / d.
* **Threshold**: the ``--quantile`` (0.99) quantile (linear interpolation) of the scores of the ``--val`` studies
  (validation: never trained on).  A study is *supported* when its score is at most the threshold; otherwise the
  patient result is "no class" (the reason says so), in report.json, the CLI and the page.
* **Temperature** T: minimises the negative log-likelihood of the ``--val`` studies' patient labels under
  softmax(logits / T) (a golden-section search on log T in [1/20, 20]); the probabilities every output shows are
  softmax(logits / T), the uncertainty their normalised entropy.  The label (argmax) does not change.

Stored in the metadata key ``covidct.calibration`` (JSON; the tensors are untouched):
``{"version": 1, "temperature": T, "ood": {"feature": ..., "dims": d, "projection": [[D values] x d],
"class_means": [[d values] x K], "threshold": t, "quantile": q, "shrinkage": s}, "fit": {...}, "validation": {...}}``.
Numbers are written with 9 significant digits and every figure below (scores, threshold) is computed from the
numbers as written, in float64, as the engine computes them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

METADATA_KEY = "covidct.calibration"
SHRINK = 0.1
DEFAULT_DIMS = 32
DEFAULT_QUANTILE = 0.99
FEATURE = "patient pooled vector: concat(mean, max) of the used slices' embeddings (the patient head's input)"


def _r9(x: float) -> float:
    return float(f"{float(x):.9g}")


# ----------------------------------------------------------------------------------------------
# Fitting
# ----------------------------------------------------------------------------------------------

def fit_temperature(logits: np.ndarray, labels: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The T in [lo, hi] minimising the mean NLL of ``labels`` under softmax(logits / T) (golden section on log T;
    the NLL is unimodal in T)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        raise ValueError("fit_temperature: no studies")

    def f(lt: float) -> float:
        return nll(logits, labels, math.exp(lt))

    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return math.exp((a + b) / 2)


def softmax_t(logits: np.ndarray, t: float) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / t
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    p = softmax_t(logits, t)
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(labels)), labels], 1e-300))))


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the top class (equal-width confidence bins)."""
    conf = probs.max(1)
    ok = (probs.argmax(1) == labels).astype(np.float64)
    e = 0.0
    for i in range(bins):
        m = (conf > i / bins) & (conf <= (i + 1) / bins)
        if m.any():
            e += m.mean() * abs(ok[m].mean() - conf[m].mean())
    return float(e)


def fit_ood(features: np.ndarray, labels: np.ndarray, k: int, dims: int = DEFAULT_DIMS,
            shrink: float = SHRINK) -> Tuple[np.ndarray, np.ndarray]:
    """(projection W [d, D], projected class means [K, d]) of the shared-covariance Mahalanobis score, rounded to
    the 9 digits they are stored with."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    n, dim = x.shape
    mus = np.zeros((k, dim))
    resid = []
    for c in range(k):
        xc = x[y == c]
        if len(xc) < 2:
            raise ValueError(f"fit_ood: class {c} has {len(xc)} fit studies (2 or more needed)")
        mus[c] = xc.mean(0)
        resid.append(xc - mus[c])
    r = np.concatenate(resid)
    cov = r.T @ r / max(1, n - k)
    cov = (1 - shrink) * cov + shrink * (np.trace(cov) / dim) * np.eye(dim)
    ev, vec = np.linalg.eigh(cov)
    order = np.argsort(ev)[::-1][:min(dims, dim)]
    w = (vec[:, order] / np.sqrt(ev[order])).T
    w = np.vectorize(_r9)(w)
    means = np.vectorize(_r9)(mus @ w.T)
    return w, means


def ood_scores(features: np.ndarray, projection: np.ndarray, class_means: np.ndarray) -> np.ndarray:
    """min over classes of |W p - m_c|^2 / d, float64 (the engine's arithmetic)."""
    z = np.asarray(features, dtype=np.float64) @ np.asarray(projection, dtype=np.float64).T
    d2 = ((z[:, None, :] - np.asarray(class_means, dtype=np.float64)[None]) ** 2).sum(-1)
    return d2.min(1) / projection.shape[0]


def quantile_threshold(scores: np.ndarray, q: float) -> float:
    return _r9(float(np.quantile(np.asarray(scores, dtype=np.float64), q)))


# ----------------------------------------------------------------------------------------------
# Applying (what every evaluation and the fixtures use; src/analysis/calibration.ts is the engine's)
# ----------------------------------------------------------------------------------------------

def read_calibration(metadata: Dict[str, str]) -> Optional[Dict[str, object]]:
    raw = metadata.get(METADATA_KEY)
    if not raw:
        return None
    cal = json.loads(raw)
    if cal.get("version") != 1:
        raise ValueError(f"{METADATA_KEY}: version {cal.get('version')!r}, expected 1")
    return cal


def decide(logits: np.ndarray, pooled: Optional[np.ndarray], cal: Optional[Dict[str, object]]) -> Dict[str, object]:
    """The patient answer from the head's logits and pooled feature: probabilities (calibrated when ``cal``), the OOD
    score, whether it is supported, and the label (None when not supported)."""
    logits = np.asarray(logits, dtype=np.float64)
    if cal is None:
        p = softmax_t(logits[None], 1.0)[0]
        return {"probs": p, "label_index": int(p.argmax()), "temperature": None, "score": None, "threshold": None,
                "supported": None}
    t = float(cal["temperature"])
    p = softmax_t(logits[None], t)[0]
    ood = cal["ood"]
    score = float(ood_scores(np.asarray(pooled, dtype=np.float64)[None], np.array(ood["projection"]),
                             np.array(ood["class_means"]))[0])
    ok = score <= float(ood["threshold"])
    return {"probs": p, "label_index": int(p.argmax()) if ok else None, "temperature": t, "score": score,
            "threshold": float(ood["threshold"]), "supported": bool(ok)}


@torch.no_grad()
def study_outputs(model, studies) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[str]]:
    """(pooled features [N, D] f32, patient logits [N, K], labels [N], names) of the studies where a lung was found."""
    import dataset as ds
    feats, logits, labels, names = [], [], [], []
    for st in studies:
        o = ds.infer_study(model, st)
        if bool(o["patient_no_lung"]):
            continue
        feats.append(o["patient_pooled"].numpy())
        logits.append(o["patient_logits"].numpy())
        labels.append(int(st.label))
        names.append(st.name)
    return (np.array(feats, dtype=np.float32), np.array(logits, dtype=np.float64), np.array(labels, dtype=np.int64),
            names)


def calibrate(weights: str, fit: Sequence[str], val: Sequence[str], out: str, dims: int = DEFAULT_DIMS,
              quantile: float = DEFAULT_QUANTILE, log=print) -> Dict[str, object]:
    import dataset as ds
    import export
    import safetensors_io
    t0 = time.time()
    model = export.load_model(weights).eval()
    cfg = model.config
    k = cfg.cls.num_classes

    def load(roots):
        return [st for r in roots for st in ds.load_dataset(r, cfg, half=False, log=log)]

    fx, _, fy, fnames = study_outputs(model, load(fit))
    log(f"fit: {len(fy)} studies {np.bincount(fy, minlength=k).tolist()} ({time.time() - t0:.0f} s)")
    vx, vl, vy, vnames = study_outputs(model, load(val))
    log(f"validation: {len(vy)} studies {np.bincount(vy, minlength=k).tolist()} ({time.time() - t0:.0f} s)")
    w, means = fit_ood(fx, fy, k, dims)
    fs = ood_scores(fx, w, means)
    vs = ood_scores(vx, w, means)
    thr = quantile_threshold(vs, quantile)
    t = _r9(fit_temperature(vl, vy))
    p1, pt = softmax_t(vl, 1.0), softmax_t(vl, t)
    sup = vs <= thr
    cal = {
        "version": 1,
        "temperature": t,
        "ood": {"feature": FEATURE, "score": "min over classes of |W p - m_c|^2 / d (shared-covariance Mahalanobis)",
                "dims": int(w.shape[0]), "projection": w.tolist(), "class_means": means.tolist(), "threshold": thr,
                "quantile": quantile, "shrinkage": SHRINK},
        "fit": {"studies": int(len(fy)), "per_class": np.bincount(fy, minlength=k).tolist(),
                "folders": [os.path.basename(os.path.abspath(f)) for f in fit]},
        "validation": {"studies": int(len(vy)), "per_class": np.bincount(vy, minlength=k).tolist(),
                       "folders": [os.path.basename(os.path.abspath(v)) for v in val],
                       "nll_before": round(nll(vl, vy, 1.0), 5), "nll_after": round(nll(vl, vy, t), 5),
                       "ece_before": round(ece(p1, vy), 5), "ece_after": round(ece(pt, vy), 5),
                       "accuracy": round(float((vl.argmax(1) == vy).mean()), 5),
                       "supported": int(sup.sum()),
                       "accuracy_supported": round(float((vl.argmax(1) == vy)[sup].mean()), 5) if sup.any() else None},
    }
    tensors, metadata = safetensors_io.load(weights)
    metadata = dict(metadata)
    metadata[METADATA_KEY] = json.dumps(cal, separators=(",", ":"))
    tmp = out + ".tmp"
    safetensors_io.save(tensors, metadata, tmp)
    os.replace(tmp, out)
    # what a reader of ``out`` computes: the same numbers
    back = read_calibration(safetensors_io.read_header(out)[1])
    assert back is not None and back["ood"]["threshold"] == thr and back["temperature"] == t
    report = {"weights": os.path.basename(out), "calibration": {k_: v for k_, v in cal.items() if k_ != "ood"},
              "ood": {k_: v for k_, v in cal["ood"].items() if k_ not in ("projection", "class_means")},
              "fit_scores": {n: round(float(s), 5) for n, s in zip(fnames, fs)},
              "validation_scores": {n: round(float(s), 5) for n, s in zip(vnames, vs)},
              "validation_answers": {n: {"label": int(y), "argmax": int(l.argmax()), "supported": bool(s_ok)}
                                     for n, y, l, s_ok in zip(vnames, vy, vl, sup)},
              "seconds": round(time.time() - t0, 1)}
    log(f"temperature {t:.4f} (validation NLL {cal['validation']['nll_before']} -> {cal['validation']['nll_after']}, "
        f"ECE {cal['validation']['ece_before']} -> {cal['validation']['ece_after']}); OOD: {w.shape[0]} dims, "
        f"threshold {thr:.4f} (the {quantile} quantile of {len(vs)} validation scores; fit scores: median "
        f"{np.median(fs):.3f}, max {fs.max():.3f}); {int(sup.sum())} of {len(vs)} validation studies supported")
    return report


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--fit", nargs="+", required=True, help="dataset folders the OOD statistics are fitted on")
    ap.add_argument("--val", nargs="+", required=True, help="validation dataset folders (temperature, threshold)")
    ap.add_argument("--out", required=True, help="the weights file with covidct.calibration (may be --weights)")
    ap.add_argument("--dims", type=int, default=DEFAULT_DIMS)
    ap.add_argument("--quantile", type=float, default=DEFAULT_QUANTILE)
    ap.add_argument("--json", help="write the fit and validation scores here")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    rep = calibrate(a.weights, a.fit, a.val, a.out, a.dims, a.quantile)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rep, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
