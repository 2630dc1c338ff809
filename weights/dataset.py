"""Dataset layout, readers, preprocessing and metrics shared by train.py and evaluate.py.

Layout (docs/training.md):

    <root>/labels.csv             header 'study,label'; label = COVID-19 | CAP | no infection
                                  (aliases: covid, cap, none, normal)
    <root>/slice_labels.csv       optional, header 'study,slice,label'; slice = k index of the scan
                                  after reorientation (below)
    <root>/<study>/scan.nii.gz    the CT in HU (scl_slope/scl_inter applied), any orientation
         or <root>/<study>/scan/  a DICOM series folder (read with pydicom)
    <root>/<study>/lung.nii.gz        optional lung mask (non-zero = lung), same grid as the scan
    <root>/<study>/infection.nii.gz   optional infection mask (non-zero = lesion)

Every volume is brought to the axial view of a standard DICOM slice: array (Z, Y, X) with
Y = rows anterior -> posterior, X = columns patient right -> left, Z inferior -> superior
(NIfTI axcodes ('L', 'P', 'S') read as (X, Y, Z)).  Masks are reoriented the same way.

Preprocessing follows the reference model (reference.preprocess_hu): window [-1150, 350] HU to
[0, 1], then a bilinear resize (align_corners=False, no antialias) of each slice to input_size.
Ground-truth masks are resized by area averaging and thresholded at 0.5.
"""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

CLASS_NAMES = ["COVID-19", "CAP", "no infection"]
NO_INFECTION = CLASS_NAMES.index("no infection")
_ALIASES = {"covid-19": 0, "covid": 0, "cap": 1, "no infection": 2, "none": 2, "normal": 2}


def label_index(s: str) -> int:
    k = s.strip().lower()
    if k not in _ALIASES:
        raise ValueError(f"unknown label {s!r} (expected one of {CLASS_NAMES} or covid/cap/none)")
    return _ALIASES[k]


# ----------------------------------------------------------------------------------------------
# Readers
# ----------------------------------------------------------------------------------------------

def _nifti_zyx(path: str, as_float: bool) -> Tuple[np.ndarray, Tuple[float, float, float]]:
    """Reads a NIfTI file, reorients it to ('L','P','S') and returns (Z, Y, X) data and (dz, dy, dx)."""
    import nibabel as nib
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform, apply_orientation, inv_ornt_aff
    img = nib.load(path)
    if len(img.shape) < 3:
        raise ValueError(f"{path}: expected a 3-D volume, got shape {img.shape}")
    data = img.get_fdata(dtype=np.float32) if as_float else np.asarray(img.dataobj)
    if data.ndim > 3:
        if any(s != 1 for s in data.shape[3:]):
            raise ValueError(f"{path}: 4-D volume with shape {data.shape}; expected 3-D")
        data = data.reshape(data.shape[:3])
    ornt = io_orientation(img.affine)
    tr = ornt_transform(ornt, axcodes2ornt(("L", "P", "S")))
    data = apply_orientation(data, tr)
    zooms = img.header.get_zooms()[:3]
    perm = [int(a) for a in tr[:, 0]]
    # after the transform, output axis perm[i] holds input axis i
    sp = [0.0, 0.0, 0.0]
    for i in range(3):
        sp[perm[i]] = float(zooms[i])
    return np.ascontiguousarray(np.transpose(data, (2, 1, 0))), (sp[2], sp[1], sp[0])


def _dicom_zyx(folder: str) -> Tuple[np.ndarray, Tuple[float, float, float]]:
    """A DICOM series folder -> HU (Z, Y, X) ordered inferior->superior, rows/cols as stored
    (standard axial: rows anterior->posterior, columns right->left).  Minimal: one series, axial."""
    import pydicom
    files = [f for f in sorted(glob.glob(os.path.join(folder, "**", "*"), recursive=True)) if os.path.isfile(f)]
    slices = []
    for f in files:
        try:
            ds = pydicom.dcmread(f)
        except Exception:
            continue
        if "PixelData" not in ds:
            continue
        slices.append(ds)
    if not slices:
        raise ValueError(f"{folder}: no DICOM images found")
    iop = np.array(slices[0].ImageOrientationPatient, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:])
    if abs(abs(normal[2]) - 1) > 0.05 or iop[0] < 0.9 or iop[4] < 0.9:
        raise ValueError(f"{folder}: only standard axial series (ImageOrientationPatient 1,0,0,0,1,0) are supported here")
    slices.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, dtype=np.float64))))
    vol = []
    for d in slices:
        a = d.pixel_array.astype(np.float32) * float(getattr(d, "RescaleSlope", 1)) + float(getattr(d, "RescaleIntercept", 0))
        pad = getattr(d, "PixelPaddingValue", None)
        if pad is not None:
            a[d.pixel_array == pad] = -1024.0
        vol.append(a)
    zs = [float(np.dot(normal, np.array(d.ImagePositionPatient, dtype=np.float64))) for d in slices]
    dz = float(np.median(np.diff(zs))) if len(zs) > 1 else float(getattr(slices[0], "SliceThickness", 1.0))
    ps = [float(v) for v in slices[0].PixelSpacing]
    return np.stack(vol), (abs(dz), ps[0], ps[1])


@dataclass
class Study:
    name: str
    label: int                     # patient class index
    hu: np.ndarray                 # (Z, Y, X) float32
    spacing: Tuple[float, float, float]
    lung: Optional[np.ndarray]     # (Z, Y, X) uint8
    infection: Optional[np.ndarray]
    slice_labels: Optional[np.ndarray]  # (Z,) int64


def read_study(root: str, name: str, label: int, slice_labels: Optional[Dict[int, int]] = None) -> Study:
    folder = os.path.join(root, name)
    scan = None
    for cand in ("scan.nii.gz", "scan.nii"):
        if os.path.exists(os.path.join(folder, cand)):
            scan = os.path.join(folder, cand)
    if scan is not None:
        hu, sp = _nifti_zyx(scan, as_float=True)
    elif os.path.isdir(os.path.join(folder, "scan")):
        hu, sp = _dicom_zyx(os.path.join(folder, "scan"))
    else:
        raise FileNotFoundError(f"{folder}: no scan.nii.gz, scan.nii or scan/ DICOM folder")
    masks = {}
    for key in ("lung", "infection"):
        m = None
        for ext in (".nii.gz", ".nii"):
            p = os.path.join(folder, key + ext)
            if os.path.exists(p):
                m, _ = _nifti_zyx(p, as_float=False)
                if m.shape != hu.shape:
                    raise ValueError(f"{p}: mask shape {m.shape} (Z,Y,X) differs from the scan's {hu.shape}")
                m = (m != 0).astype(np.uint8)
        masks[key] = m
    sl = None
    if slice_labels:
        sl = np.full(hu.shape[0], 2, dtype=np.int64)
        for k, v in slice_labels.items():
            if 0 <= k < len(sl):
                sl[k] = v
    return Study(name, label, hu.astype(np.float32), sp, masks["lung"], masks["infection"], sl)


def read_labels(root: str) -> Tuple[List[Tuple[str, int]], Dict[str, Dict[int, int]]]:
    path = os.path.join(root, "labels.csv")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{root}: no labels.csv (header 'study,label')")
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows.append((r["study"], label_index(r["label"])))
    per_slice: Dict[str, Dict[int, int]] = {}
    sp = os.path.join(root, "slice_labels.csv")
    if os.path.exists(sp):
        with open(sp, newline="") as f:
            for r in csv.DictReader(f):
                per_slice.setdefault(r["study"], {})[int(r["slice"])] = label_index(r["label"])
    return rows, per_slice


# ----------------------------------------------------------------------------------------------
# Preprocessing to the model grid
# ----------------------------------------------------------------------------------------------

@dataclass
class Prepared:
    """A study on the model grid: image (Z, S, S) windowed float16, masks uint8 (or None)."""
    name: str
    label: int
    image: torch.Tensor
    lung: Optional[torch.Tensor]
    infection: Optional[torch.Tensor]
    slice_labels: torch.Tensor       # (Z,) long
    lung_area: torch.Tensor          # (Z,) fraction of GT lung on the model grid (zeros without mask)
    voxel_ml: float                  # volume of one model-grid voxel in mL


def window_resize(hu: np.ndarray, cfg, size: int) -> torch.Tensor:
    """(Z, Y, X) HU -> (Z, 1, S, S) windowed float32, exactly as reference.preprocess_hu."""
    from reference import preprocess_hu
    return preprocess_hu(torch.from_numpy(np.ascontiguousarray(hu, dtype=np.float32)), cfg, (size, size))


def mask_resize(m: np.ndarray, size: int) -> torch.Tensor:
    t = torch.from_numpy(m.astype(np.float32))[:, None]
    return (F.interpolate(t, size=(size, size), mode="area") > 0.5)[:, 0].to(torch.uint8)


def prepare(st: Study, cfg, size: Optional[int] = None, half: bool = True) -> Prepared:
    """``half``: keep the windowed image as float16 (training: half the memory; its rounding, up to 2^-11 relative,
    is below the HU noise) or float32 (evaluation, where the results are compared with the engine's)."""
    from synth import SLICE_INFECTED_FRACTION, MIN_INFECTED_VOXELS
    s = size or cfg.input_size
    img = window_resize(st.hu, cfg, s)[:, 0]
    if half:
        img = img.to(torch.float16)
    lung = mask_resize(st.lung, s) if st.lung is not None else None
    inf = mask_resize(st.infection, s) if st.infection is not None else None
    if st.slice_labels is not None:
        sl = torch.from_numpy(st.slice_labels)
    elif st.infection is not None and st.lung is not None:
        # same rule as the generator: infected slices carry the study class
        la = st.lung.reshape(st.lung.shape[0], -1).sum(1)
        ia = st.infection.reshape(st.infection.shape[0], -1).sum(1)
        inf_sl = (ia >= MIN_INFECTED_VOXELS) & (ia >= SLICE_INFECTED_FRACTION * np.maximum(la, 1))
        sl = torch.from_numpy(np.where(inf_sl & (st.label != NO_INFECTION), st.label, NO_INFECTION).astype(np.int64))
    else:
        sl = torch.full((st.hu.shape[0],), st.label, dtype=torch.long)
    area = lung.float().mean(dim=(1, 2)) if lung is not None else torch.zeros(st.hu.shape[0])
    dz, dy, dx = st.spacing
    vox = dz * (dy * st.hu.shape[1] / s) * (dx * st.hu.shape[2] / s) / 1000.0
    return Prepared(st.name, st.label, img, lung, inf, sl.long(), area, vox)


def load_dataset(root: str, cfg, size: Optional[int] = None, cache: bool = True, log=print,
                 half: bool = True) -> List[Prepared]:
    """All studies of ``root`` on the model grid (images float16 when ``half``, see ``prepare``); cached in
    <root>/.cache_<S>.pt (float32: .cache_<S>_f32.pt) when ``cache``."""
    s = size or cfg.input_size
    cpath = os.path.join(root, f".cache_{s}{'' if half else '_f32'}.pt")
    rows, per_slice = read_labels(root)
    if cache and os.path.exists(cpath):
        data = torch.load(cpath)
        if [d.name for d in data] == [r[0] for r in rows]:
            return data
    out = []
    for i, (name, lab) in enumerate(rows):
        out.append(prepare(read_study(root, name, lab, per_slice.get(name)), cfg, s, half))
        if (i + 1) % 50 == 0:
            log(f"  prepared {i + 1}/{len(rows)} studies of {root}")
    if cache:
        try:
            torch.save(out, cpath)
        except OSError:
            pass
    return out


# ----------------------------------------------------------------------------------------------
# Inference over a study and metrics
# ----------------------------------------------------------------------------------------------

@torch.no_grad()
def infer_study(model, p: Prepared, batch: int = 32) -> Dict[str, torch.Tensor]:
    """Eval-mode forward of every slice (predicted lung mask, no teacher forcing), then the
    patient head over all used slices, exactly as TwoStageModel.forward does for one patient."""
    model.eval()
    x = p.image.float()[:, None]
    outs = []
    for i in range(0, x.shape[0], batch):
        o = model(x[i:i + batch])
        outs.append({k: o[k] for k in ("lung_prob", "lung_mask", "lung_area", "infection_prob",
                                         "slice_logits", "slice_embedding", "slice_used")})
    cat = {k: torch.cat([o[k] for o in outs]) for k in outs[0]}
    cat.update(patient_over(model, cat["slice_embedding"], cat["slice_used"]))
    return cat


@torch.no_grad()
def patient_over(model, embedding: torch.Tensor, used: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The patient head over the ``used`` slices' embeddings (mean and max pooled): ``patient_pooled``,
    ``patient_logits`` (NaN and ``patient_no_lung`` True when no slice is used) and ``slice_used`` itself."""
    used = torch.as_tensor(used, dtype=torch.bool)
    if bool(used.any()):
        e = embedding[used]
        pooled = torch.cat([e.mean(0), e.max(0).values])
        return {"slice_used": used, "patient_pooled": pooled, "patient_logits": model.patient(pooled[None])[0],
                "patient_no_lung": torch.tensor(False)}
    return {"slice_used": used, "patient_pooled": torch.full((2 * embedding.shape[1],), float("nan")),
            "patient_logits": torch.full((len(CLASS_NAMES),), float("nan")), "patient_no_lung": torch.tensor(True)}


def dice(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """Volume Dice of two binary tensors; 1.0 when both are empty."""
    pred = pred.bool()
    gt = gt.bool()
    s = int(pred.sum()) + int(gt.sum())
    if s == 0:
        return 1.0
    return 2.0 * int((pred & gt).sum()) / s


def auc_ovr(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """One-vs-rest AUC of class k (Mann-Whitney, ties count half); NaN if a side is empty."""
    pos = scores[labels == k, k]
    neg = scores[labels != k, k]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    cmp = (pos[:, None] > neg[None, :]).astype(np.float64) + 0.5 * (pos[:, None] == neg[None, :])
    return float(cmp.mean())


def f1_per_class(pred: np.ndarray, labels: np.ndarray, n: int) -> List[Dict[str, float]]:
    res = []
    for k in range(n):
        tp = int(((pred == k) & (labels == k)).sum())
        fp = int(((pred == k) & (labels != k)).sum())
        fn = int(((pred != k) & (labels == k)).sum())
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        res.append({"precision": prec, "recall": rec, "f1": f1, "support": int((labels == k).sum())})
    return res


def evaluate_studies(model, studies: Sequence[Prepared], infection_threshold: float = 0.5,
                     keep_outputs: bool = False, calibration: Optional[Dict[str, object]] = None) -> Dict[str, object]:
    """Lung Dice, infection Dice, slice and patient accuracy, per-class F1 and AUC (see docs/training.md).  With
    ``calibration`` (weights/calibrate.py, the weights file's ``covidct.calibration``) the patient probabilities are
    the calibrated ones and a study whose OOD score validation does not support gets no class (counted wrong)."""
    from calibrate import decide
    per_study = []
    p_probs, p_labels, p_pred = [], [], []
    sl_pred_all, sl_lab_all = [], []
    lung_d, inf_d = [], []
    for st in studies:
        o = infer_study(model, st)
        mask = o["lung_mask"][:, 0].bool()
        infected = (o["infection_prob"][:, 0] > infection_threshold) & mask
        rec: Dict[str, object] = {"study": st.name, "label": CLASS_NAMES[st.label]}
        if st.lung is not None:
            rec["lung_dice"] = dice(mask, st.lung)
            lung_d.append(rec["lung_dice"])
        if st.infection is not None:
            rec["infection_dice"] = dice(infected, st.infection)
            if int(st.infection.sum()) > 0:
                inf_d.append(rec["infection_dice"])
        gt_used = st.lung_area >= 0.01 if st.lung is not None else o["slice_used"]
        sl_pred = o["slice_logits"].argmax(1)
        sl_pred_all.append(sl_pred[gt_used].numpy())
        sl_lab_all.append(st.slice_labels[gt_used].numpy())
        rec["slice_accuracy"] = float((sl_pred[gt_used] == st.slice_labels[gt_used]).float().mean()) if bool(gt_used.any()) else float("nan")
        no_class = False
        if bool(o["patient_no_lung"]):
            probs = np.full(len(CLASS_NAMES), 1.0 / len(CLASS_NAMES))
            pred = -1
        else:
            d = decide(o["patient_logits"].numpy(), o["patient_pooled"].numpy(), calibration)
            probs = d["probs"]
            pred = int(np.argmax(probs))
            if calibration is not None:
                rec["ood_score"] = d["score"]
                rec["supported"] = d["supported"]
                if not d["supported"]:
                    pred, no_class = -1, True
        rec["patient_probs"] = [float(v) for v in probs]
        rec["patient_pred"] = CLASS_NAMES[pred] if pred >= 0 else ("no class" if no_class else "no lung found")
        rec["slices"] = int(st.image.shape[0])
        rec["slices_used"] = int(o["slice_used"].sum())
        vox = st.voxel_ml
        rec["lung_volume_ml"] = float(mask.sum()) * vox
        rec["involvement_pct"] = 100.0 * float(infected.sum()) / max(float(mask.sum()), 1.0)
        if st.lung is not None:
            rec["gt_lung_volume_ml"] = float(st.lung.sum()) * vox
        if st.infection is not None and st.lung is not None:
            rec["gt_involvement_pct"] = 100.0 * float(st.infection.sum()) / max(float(st.lung.sum()), 1.0)
        if keep_outputs:
            rec["lung_area_per_slice"] = [float(v) for v in o["lung_area"]]
            rec["slice_probs"] = torch.softmax(o["slice_logits"], 1).tolist()
            rec["infected_fraction_per_slice"] = [
                float(infected[k].sum()) / max(float(mask[k].sum()), 1.0) for k in range(mask.shape[0])]
        per_study.append(rec)
        p_probs.append(probs)
        p_labels.append(st.label)
        p_pred.append(pred)
    P = np.array(p_probs)
    L = np.array(p_labels)
    Pr = np.array(p_pred)
    sp = np.concatenate(sl_pred_all) if sl_pred_all else np.zeros(0)
    sla = np.concatenate(sl_lab_all) if sl_lab_all else np.zeros(0)
    n = len(CLASS_NAMES)
    summary = {
        "studies": len(studies),
        "lung_dice": float(np.mean(lung_d)) if lung_d else float("nan"),
        "lung_dice_min": float(np.min(lung_d)) if lung_d else float("nan"),
        "infection_dice": float(np.mean(inf_d)) if inf_d else float("nan"),
        "slice_accuracy": float((sp == sla).mean()) if len(sp) else float("nan"),
        "patient_accuracy": float((Pr == L).mean()) if len(L) else float("nan"),
        "patient_no_class": int(sum(1 for r in per_study if r["patient_pred"] == "no class")),
        "patient_per_class": f1_per_class(Pr, L, n),
        "slice_per_class": f1_per_class(sp, sla, n),
        "patient_auc": [auc_ovr(P, L, k) for k in range(n)],
        "confusion": [[int(((L == a) & (Pr == b)).sum()) for b in range(n)] for a in range(n)],
        "class_names": CLASS_NAMES,
    }
    return {"summary": summary, "studies": per_study}
