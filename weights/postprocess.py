"""The lung mask's post-processing and the chest check, the PyTorch side of src/analysis/postprocess.ts (the same
rules and constants; test/realct.test.ts checks the engine's masks against this file's on a real volume).

On the source grid in the axial view of dataset.py ((Z, Y, X); the rules do not depend on the in-plane
orientation):

1. Nothing outside the body: per slice, the largest 8-connected region above BODY_HU, holes filled (background
   4-connected to the slice border); lung voxels outside it are dropped.
2. 3-D components (in-plane 8 neighbours, the voxel above and below): components under MIN_COMPONENT_FRACTION of
   the largest are dropped, and so are those with less than half of their voxels in the slices within
   NEAR_ANCHORS_MM of the large components' (those with at least ANCHOR_FRACTION of the largest one's voxels: the
   lungs), such as bowel gas far below the lungs on a scan that runs on into the abdomen (a whole-body CT's colon
   took in 1.6 L of "lung" and its infection map before this rule).
3. The infection map counts only inside the final mask.

The chest check (``chest_coverage``) also says whether the scan shows the lungs whole: not when its lowest or highest
slice holds at least CUT_END_FRACTION of its largest lung slice's lung; such a chest CT gets no patient class.

``final_masks`` also brings the model-grid probabilities back to the source grid exactly as the engine does
(bilinear, align_corners=False, each slice to its own size, then ``> threshold``).
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

BODY_HU = -500.0
MIN_COMPONENT_FRACTION = 0.05
NEAR_ANCHORS_MM = 30.0
ANCHOR_FRACTION = 0.7
MIN_LUNG_ML = 150.0
MIN_LUNG_EXTENT_MM = 60.0
SLIVER_EXTENT_MM = 100.0
SLIVER_FRACTION = 0.35
EXTENT_SLICE_FRACTION = 0.01
CUT_END_FRACTION = 0.25  # a chest CT whose lowest or highest slice holds this much of its largest lung slice's lung: no class


def _ndi():
    from scipy import ndimage  # Debian python3-scipy; only the offline evaluation needs this file
    return ndimage


def body_mask_slice(hu: np.ndarray) -> np.ndarray:
    ndi = _ndi()
    lab, n = ndi.label(hu > BODY_HU, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros(hu.shape, dtype=bool)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    best = 1 + int(np.argmax(sizes))  # ties: the first in raster order, as the engine
    return ndi.binary_fill_holes(lab == best)


def postprocess(lung: np.ndarray, hu: np.ndarray, dz: float) -> Dict[str, object]:
    """``lung`` (Z, Y, X) bool (stage 1's mask on the source grid), ``hu`` the same shape, ``dz`` the slice spacing
    (mm): the final mask and what was removed."""
    ndi = _ndi()
    lung = lung.astype(bool).copy()
    removed_body = 0
    for z in range(lung.shape[0]):
        if lung[z].any():
            b = body_mask_slice(hu[z])
            removed_body += int((lung[z] & ~b).sum())
            lung[z] &= b
    st = np.zeros((3, 3, 3), dtype=bool)
    st[1] = True
    st[0, 1, 1] = st[2, 1, 1] = True
    lab, n = ndi.label(lung, structure=st)
    removed_comp = 0
    kept = 0
    if n:
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        sizes[0] = 0
        anchor = sizes >= ANCHOR_FRACTION * sizes.max()
        anchor[0] = False
        zs = np.nonzero(anchor[lab].reshape(lab.shape[0], -1).any(1))[0]
        m = int(np.floor(NEAR_ANCHORS_MM / dz + 1e-4))  # as the engine (a float32 spacing such as 0.6 mm)
        lo, hi = max(0, int(zs[0]) - m), min(lab.shape[0] - 1, int(zs[-1]) + m)
        near = np.bincount(lab[lo:hi + 1].ravel(), minlength=n + 1)
        keep = (sizes >= MIN_COMPONENT_FRACTION * sizes.max()) & (2 * near >= sizes)
        keep[0] = False
        final = keep[lab]
        removed_comp = int((lung & ~final).sum())
        kept = int(keep.sum())
        lung = final
    return {"lung": lung, "removed_outside_body": removed_body, "removed_components": removed_comp,
            "components": int(n), "kept": kept}


def chest_coverage(lung_voxels: np.ndarray, slice_pixels: int, dz: float, lung_ml: float) -> Dict[str, object]:
    lv = np.asarray(lung_voxels, dtype=np.float64)
    zs = np.flatnonzero(lv >= EXTENT_SLICE_FRACTION * slice_pixels)
    nz = len(lv)
    scan = nz * dz
    first, last = (int(zs[0]), int(zs[-1])) if len(zs) else (None, None)
    extent = len(zs) * dz  # slices holding lung x spacing (not first..last: scattered gas must not lengthen a sliver)
    reason: Optional[str] = None
    if lung_ml < MIN_LUNG_ML or first is None:
        reason = "no lungs found"
    elif extent < MIN_LUNG_EXTENT_MM and extent < 0.5 * scan:
        reason = "lung slices under the minimum extent"
    elif (first == 0 or last == nz - 1) and extent < SLIVER_EXTENT_MM and extent < SLIVER_FRACTION * scan:
        reason = "lung only at one end of the scan"
    largest = float(lv.max()) if nz else 0.0
    lower = float(lv[0]) / largest if largest > 0 else None
    upper = float(lv[-1]) / largest if largest > 0 else None
    whole = None if lower is None else bool(lower < CUT_END_FRACTION and upper < CUT_END_FRACTION)
    return {"is_chest": reason is None, "reason": reason, "lung_slices": int(len(zs)), "first": first, "last": last,
            "lung_extent_mm": extent, "scan_extent_mm": scan, "lower_end_fraction": lower, "upper_end_fraction": upper,
            "lungs_whole": whole}


def final_mask_slices(used, final_lung_voxels, raw_lung_voxels) -> np.ndarray:
    """An evaluation option, not the engine's path (``evaluate_real.py --patient-slices final``; weights/README.md
    "The patient head and the slices without lung"): of stage 1's patient-head slices (``used``: lung on at least 1 %
    of the slice at model size, MODEL.md, what the engine pools) those of which the post-processing kept at least half
    of the lung voxels on the source grid.  A slice whose "lung" was mostly gas in the bowel or air outside the body
    leaves the patient head."""
    fin = np.asarray(final_lung_voxels, dtype=np.int64)
    raw = np.asarray(raw_lung_voxels, dtype=np.int64)
    return np.asarray(used, dtype=bool) & (fin > 0) & (2 * fin >= raw)


def pool_final_mask_slices(model, o: Dict[str, torch.Tensor], fin: Dict[str, object]) -> Dict[str, torch.Tensor]:
    """``o`` (dataset.infer_study's outputs) with the patient head run again over ``final_mask_slices`` of the final
    masks ``fin`` (``final_masks``): ``slice_used``, ``patient_pooled``, ``patient_logits`` and ``patient_no_lung``.
    Changes ``o`` in place and returns it."""
    import dataset as ds
    used = final_mask_slices(o["slice_used"].numpy(), fin["lung_voxels"], fin["raw_lung_voxels"])
    o.update(ds.patient_over(model, o["slice_embedding"], torch.from_numpy(used)))
    return o


def no_class_for_cut_lungs(chest: Dict[str, object]) -> bool:
    """A chest CT whose lungs continue beyond the scan (``lungs_whole`` False) gets no patient class, whatever its
    out-of-distribution score (src/analysis/analyze.ts): the classifier was trained and validated on whole lungs."""
    return bool(chest["is_chest"]) and chest["lungs_whole"] is False


def patient_label(dec: Dict[str, object], chest: Dict[str, object], names) -> str:
    """The patient answer of a chest CT whose patient head ran, as src/analysis/analyze.ts gives it: "no class" when
    validation does not support it (``dec``: calibrate.decide) or the lungs are not whole, else the most probable class."""
    if dec["supported"] is False or no_class_for_cut_lungs(chest):
        return "no class"
    return names[int(np.argmax(dec["probs"]))]


def resize_back(prob: torch.Tensor, ny: int, nx: int) -> torch.Tensor:
    """(Z, 1, H, W) model-grid probabilities -> (Z, ny, nx) on the source grid (bilinear, align_corners=False)."""
    if prob.shape[-2:] == (ny, nx):
        return prob[:, 0]
    return F.interpolate(prob.float(), size=(ny, nx), mode="bilinear", align_corners=False)[:, 0]


def final_masks(hu: np.ndarray, lung_prob: torch.Tensor, infection_prob: torch.Tensor, pre,
                spacing) -> Dict[str, object]:
    """Source-grid results as the engine computes them: stage 1's mask, post-processing, the gated infection,
    per-slice counts, volumes, involvement and the chest check.  ``hu`` (Z, Y, X) HU; probabilities (Z, 1, H, W)."""
    z, ny, nx = hu.shape
    lp = resize_back(lung_prob, ny, nx).numpy()
    ip = resize_back(infection_prob, ny, nx).numpy()
    raw = lp > pre.lung_threshold
    dz, dy, dx = spacing
    pp = postprocess(raw, hu, dz)
    lung = pp["lung"]
    infected = lung & (ip > pre.infection_threshold)
    vox = dz * dy * dx / 1000.0
    lv = lung.reshape(z, -1).sum(1)
    lung_ml = float(lung.sum()) * vox
    cov = chest_coverage(lv, ny * nx, dz, lung_ml)
    return {"raw": raw, "lung": lung, "infected": infected, "lung_voxels": lv, "raw_lung_voxels": raw.reshape(z, -1).sum(1),
            "infected_voxels": infected.reshape(z, -1).sum(1), "lung_ml": lung_ml,
            "infected_ml": float(infected.sum()) * vox,
            "involvement_pct": (100.0 * float(infected.sum()) / float(lung.sum())) if lung.any() else None,
            "chest": cov, "removed_outside_body": pp["removed_outside_body"],
            "removed_components": pp["removed_components"]}
