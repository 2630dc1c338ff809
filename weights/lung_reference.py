#!/usr/bin/env python3
"""Reference lung masks for real chest CT from a classical pipeline (no learning), to be reviewed by eye.

Input: a CT volume in HU as (Z, Y, X) in the axial view of dataset.py (Z inferior -> superior, Y anterior ->
posterior, X patient right -> left) and its spacing (dz, dy, dx) in mm.  Steps (``reference_lung_mask``):

  1. Body.  Voxels above -500 HU, opened in-plane with a 3 mm disc (detaches the table and blankets), the largest
     3-D component; then, slice by slice, its holes filled.  Everything outside it (outside air, the table, air
     between the arms and the chest) can never be lung.
  2. Low density inside the body: HU < -400 (lung parenchyma is about -900 to -700 HU; aerated lung stays below
     -400 even with moderate ground glass).
  3. Trachea and main bronchi.  From the most superior slice down, the airway is the air region inside the body
     that is small (< 8 cm^2 in the slice) and near the midline while no lung is present, then tracked slice by
     slice down through the 2-D regions that overlap it on the slice above, as long as such a region stays small
     (< 8 cm^2, so it is still a tube and not the lung it enters).  Below the carina both main bronchi are followed
     the same way until each merges with its lung in the slice.  These voxels are removed.
  4. Lungs: the 3-D components (6-connected) of what is left that hold at least 2 % of the largest one's volume
     and reach at least 20 mm along the body axis (bowel gas under the diaphragm, oesophageal air and small
     pockets are dropped when they are smaller; a large gastric bubble touching a lung base is the known limit).
  5. Vessels, airway walls and dense lung.  Slice by slice and lung by lung (each 2-D component separately, so
     the two lungs are never bridged across the mediastinum), a closing with a disc of 10 mm radius, then holes
     filled: vessels, bronchial walls, nodules and consolidation that lie inside the lung or in a pleural
     concavity narrower than about 20 mm are kept in.  Added voxels must lie inside the body and below +200 HU
     (no rib or calcified structure), and outside the airway of step 3.
     Limits: dense lung (consolidation, atelectasis, tumour, effusion-adjacent collapse) wider than about 20 mm
     along the pleura, or a whole dense lobe, is NOT recovered: it is above -400 HU and not enclosed.  None of
     the reviewed volumes has such a finding (docs/img/real-ct/*.png); for a COVID-19 data set with large
     consolidations the masks would have to be edited by hand.
  6. Per slice, a 2-D component of the result under 30 mm^2 that is not part of a large 3-D lung is dropped
     (partial-volume specks).

The result is uint8 0/1 on the input grid.  ``python3-scipy`` (Debian) is needed here; nothing else in weights/
imports this file at training time except real_data.py.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

try:
    from scipy import ndimage as ndi
except ImportError as e:  # pragma: no cover
    raise SystemExit("weights/lung_reference.py needs scipy (Debian: apt-get install python3-scipy)") from e

BODY_HU = -500.0
AIR_HU = -400.0
DENSE_MAX_HU = 200.0
AIRWAY_MAX_AREA_MM2 = 800.0
CLOSE_RADIUS_MM = 10.0
MIN_COMPONENT_FRACTION = 0.02
MIN_COMPONENT_EXTENT_MM = 20.0
SPECK_MM2 = 30.0


def _disc(radius_px: float) -> np.ndarray:
    r = max(1, int(round(radius_px)))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return (x * x + y * y) <= radius_px * radius_px + 1e-6


def body_mask(hu: np.ndarray, spacing: Tuple[float, float, float]) -> np.ndarray:
    """Step 1: the patient's body (table, blankets and outside air excluded), holes filled slice by slice."""
    _, dy, dx = spacing
    dense = hu > BODY_HU
    disc = _disc(3.0 / min(dy, dx))
    opened = np.stack([ndi.binary_opening(s, structure=disc) for s in dense])
    lab, n = ndi.label(opened)
    if n == 0:
        return np.zeros_like(dense)
    sizes = ndi.sum_labels(np.ones_like(lab, dtype=np.int32), lab, index=np.arange(1, n + 1))
    body = lab == (1 + int(np.argmax(sizes)))
    # undo the opening's loss at the skin: dense voxels touching the kept body
    body = np.stack([ndi.binary_dilation(b, structure=disc) & d | b for b, d in zip(body, dense)])
    return np.stack([ndi.binary_fill_holes(s) for s in body])


def airway_mask(low: np.ndarray, spacing: Tuple[float, float, float]) -> np.ndarray:
    """Step 3: trachea and main bronchi, tracked from the top slice down while they stay small tubes."""
    z_n, y_n, x_n = low.shape
    _, dy, dx = spacing
    max_px = AIRWAY_MAX_AREA_MM2 / (dy * dx)
    out = np.zeros_like(low)
    prev = None
    started = False
    for z in range(z_n - 1, -1, -1):
        lab, n = ndi.label(low[z], structure=np.ones((3, 3)))
        if n == 0:
            if started:
                break
            continue
        areas = np.bincount(lab.ravel(), minlength=n + 1)
        if not started:
            # the first slice (from the top) with air inside the body: the trachea must be the only sizeable region
            big = [i for i in range(1, n + 1) if areas[i] * dy * dx >= 20.0]
            if not big:
                continue
            if any(areas[i] > max_px for i in big):
                break  # lungs already present at the top slice: no trachea above them to follow
            cx = x_n / 2
            cand = [i for i in big if abs(ndi.center_of_mass(lab == i)[1] - cx) < 0.15 * x_n]
            if not cand:
                continue
            keep = max(cand, key=lambda i: areas[i])
            prev = lab == keep
            out[z] = prev
            started = True
            continue
        over = np.unique(lab[prev & (lab > 0)])
        sel = [i for i in over if areas[i] <= max_px]
        if not sel:
            break
        prev = np.isin(lab, sel)
        out[z] = prev
    return out


def reference_lung_mask(hu: np.ndarray, spacing: Tuple[float, float, float],
                        return_parts: bool = False):
    """The reference lung mask of a (Z, Y, X) HU volume (see the module docstring); uint8 0/1.  With
    ``return_parts`` also a dict of the intermediate masks (body, airway) for the contact sheets."""
    hu = np.asarray(hu, dtype=np.float32)
    dz, dy, dx = spacing
    body = body_mask(hu, spacing)
    low = (hu < AIR_HU) & body
    airway = airway_mask(low, spacing)
    cand = low & ~airway
    lab, n = ndi.label(cand)
    lung = np.zeros_like(cand)
    if n:
        idx = np.arange(1, n + 1)
        sizes = ndi.sum_labels(np.ones_like(lab, dtype=np.int32), lab, index=idx)
        zext = np.array([(s[0].stop - s[0].start) * dz for s in ndi.find_objects(lab)])
        keep = idx[(sizes >= MIN_COMPONENT_FRACTION * sizes.max()) & (zext >= MIN_COMPONENT_EXTENT_MM)]
        lung = np.isin(lab, keep)
    disc = _disc(CLOSE_RADIUS_MM / min(dy, dx))
    pad = disc.shape[0]
    allowed = body & (hu < DENSE_MAX_HU) & ~airway
    filled = np.zeros_like(lung)
    speck = SPECK_MM2 / (dy * dx)
    for z in range(lung.shape[0]):
        sl = lung[z]
        if not sl.any():
            continue
        l2, n2 = ndi.label(sl, structure=np.ones((3, 3)))
        acc = np.zeros_like(sl)
        for i, obj in enumerate(ndi.find_objects(l2), start=1):
            comp = l2[obj] == i
            if comp.sum() < speck:
                continue
            c = np.pad(comp, pad)
            c = ndi.binary_fill_holes(ndi.binary_closing(c, structure=disc))[pad:-pad, pad:-pad]
            acc[obj] |= c
        filled[z] = acc & (allowed[z] | sl)
    mask = filled.astype(np.uint8)
    if return_parts:
        return mask, {"body": body.astype(np.uint8), "airway": airway.astype(np.uint8)}
    return mask


def summary(mask: np.ndarray, spacing: Tuple[float, float, float]) -> Dict[str, float]:
    dz, dy, dx = spacing
    zs = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(1))
    return {"lung_ml": float(mask.sum()) * dz * dy * dx / 1000.0,
            "first_slice": int(zs[0]) if len(zs) else -1, "last_slice": int(zs[-1]) if len(zs) else -1}
