#!/usr/bin/env python3
"""Label-free lesion synthesis on real lungs: COVID-19-like and CAP-like patterns inserted into real chest CT, with
the mask of what was inserted.

After Yao, Xiao, Liu and Zhou, "Label-Free Segmentation of COVID-19 Lesions in Lung CT", IEEE Transactions on Medical
Imaging 40(10), 2021: lesion shapes from simple operations (ellipsoids roughened by smoothed random fields, soft
edges), intensities drawn from the ranges lesions take, inserted into normal lungs in such a way that what is brighter
than the lesion (vessels, airway walls) stays.  A real lung left as it is is a "no infection" study; the same lung
with inserted lesions is a COVID-19-like or CAP-like one, so a classifier trained on both learns the lesions, not
"real versus synthetic".

Patterns (docs/training.md, "Lesions on real lungs"):

* ``COVID-19``: bilateral (at least one lesion in each lung), multifocal, peripheral (centres within
  ``SUBPLEURAL_MM`` of the lung's border, and each lesion fading out between ``COVID_DEPTH_MM`` from it) with lower
  and posterior predominance; by stage: ``early`` ground glass
  (-750 to -350 HU), ``progressive`` ground glass and crazy paving (ground glass crossed by thickened septa, +220 HU
  lines), ``peak`` ground glass, crazy paving and consolidation (-100 to +40 HU, with air bronchograms).
* ``CAP``: lobar or segmental consolidation (-80 to +50 HU, a thin ground-glass rim, sharp borders), large regions
  anywhere in one lung (lower and posterior lobes more often), with air bronchograms; one-sided, and in
  ``CAP_BILATERAL_P`` of the studies a smaller second region in the other lung.

Air bronchograms are the lung's own airways: inside a consolidation, voxels whose lightly smoothed HU is below
``AIR_BRONCHOGRAM_HU`` keep their value (an aerated bronchus inside dense lung).  Insertion never lowers a voxel:
``new = max(old, old + w * (target - old))`` with ``w`` the lesion's soft weight (0..1), and only inside the lung
mask.  The infection mask is ``w > 0.5`` inside the lung mask (what a reader would outline: vessels and aerated
bronchi inside a lesion belong to it); the involvement is its share of the lung mask's voxels.  The number of lesions
is drawn to reach an involvement target drawn per study (``COVID_INVOLVEMENT``, ``CAP_INVOLVEMENT``), or the one
given.

Arrays are (Z, Y, X) in the axial view of dataset.py: Z inferior -> superior, Y anterior -> posterior, X patient
right -> left; spacing (dz, dy, dx) in mm.

``mimic`` makes "no infection" look-alikes of a real scan (a solid mass, nodules, plate atelectasis, low-dose
noise; an empty infection mask): hard negatives, ``--mimics N`` on the command line.

The command line writes lesion-inserted copies of a real study in the dataset layout (docs/training.md):

    /usr/bin/python3 weights/lesions.py --data data/real/chest --study itkelastix-00 --out data/real-lesions/train \\
        --per-class 24 --clean 8 --seed 1 [--mimics 8] [--thick 2,10] [--crop 0.6,1] [--involvement 2,30]

Each copy: ``scan.nii.gz`` (int16 HU), ``lung.nii.gz`` (the study's reference mask, lesions lie inside it),
``infection.nii.gz`` (the inserted lesions), and a line in ``lesions.json`` (class, stage, lesions, involvement),
optionally on thicker slices (adjacent slices averaged, masks by majority, as a scanner reconstructing thicker slices
would) and cropped in-plane (a smaller field of view).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SUBPLEURAL_MM = 15.0
COVID_DEPTH_MM = (15.0, 30.0)  # COVID-19-like lesions fade from full weight at 15 mm from the lung's border to 0 at 30
AIR_BRONCHOGRAM_HU = -950.0
CAP_BILATERAL_P = 0.15
COVID_INVOLVEMENT = (2.0, 30.0)
CAP_INVOLVEMENT = (3.0, 25.0)
COVID_MAX_LESIONS = 24
CAP_MAX_REGIONS = 4
EDGE = 0.2          # soft-edge width of a lesion's weight in units of its radius (w = 0.5 at d = 1)
CAP_EDGE = 0.12     # CAP consolidation: sharper borders (fissures, segment boundaries)


def _ndi():
    from scipy import ndimage  # Debian python3-scipy
    return ndimage


@dataclass
class Lesion:
    kind: str                    # 'ggo' | 'paving' | 'consolidation'
    center_vox: List[float]      # (z, y, x) voxel index
    radii_mm: List[float]        # (rz, ry, rx) before rotation
    angle: float                 # in-plane rotation, rad
    hu: float                    # target HU of the lesion (core for consolidation)
    rim_hu: float = -500.0       # consolidation: the ground-glass rim
    side: int = 0                # 1 right lung, 2 left lung
    edge: float = EDGE
    core: Tuple[float, float] = (0.85, 0.25)  # consolidation: full density for d < core[0] - core[1], rim beyond


@dataclass
class Synthesis:
    label: str
    stage: str
    lesions: List[Lesion] = field(default_factory=list)
    involvement_pct: float = 0.0
    target_pct: float = 0.0
    sides: List[int] = field(default_factory=list)

    def to_dict(self) -> Dict[str, object]:
        d = asdict(self)
        d["lesions"] = [{k: (round(v, 3) if isinstance(v, float) else [round(x, 3) for x in v] if isinstance(v, (list, tuple)) else v)
                         for k, v in les.items()} for les in d["lesions"]]
        d["involvement_pct"] = round(self.involvement_pct, 4)
        d["target_pct"] = round(self.target_pct, 4)
        return d


def smooth_field(rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float], sigma_mm: float) -> np.ndarray:
    """Zero-mean, unit-std random field of correlation length ``sigma_mm`` on a (Z, Y, X) box: Gaussian noise on a
    grid of sigma/2 mm, smoothed there (sigma 2 cells) and trilinearly interpolated to the box."""
    ndi = _ndi()
    step = max(sigma_mm / 2.0, 1e-3)
    coarse = [max(2, int(math.ceil(n * s / step)) + 1) for n, s in zip(shape, spacing)]
    g = ndi.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), 2.0, mode="wrap")
    t = F.interpolate(torch.from_numpy(g)[None, None], size=tuple(int(n) for n in shape), mode="trilinear",
                      align_corners=False)[0, 0].numpy()
    s = float(t.std()) or 1.0
    return ((t - t.mean()) / s).astype(np.float32)


def lung_sides(lung: np.ndarray) -> np.ndarray:
    """1 for the right lung (low X), 2 for the left one, 0 outside: split at the lung voxels' mean X (the lungs lie
    either side of the mediastinum)."""
    xs = np.nonzero(lung)[2]
    mid = float(xs.mean()) if len(xs) else lung.shape[2] / 2
    side = np.zeros(lung.shape, dtype=np.uint8)
    xx = np.arange(lung.shape[2])[None, None, :]
    side[lung & (xx < mid)] = 1
    side[lung & (xx >= mid)] = 2
    return side


def pleural_distance(lung: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance (mm) from each lung voxel to the nearest voxel outside the lung (0 outside)."""
    ndi = _ndi()
    zs, ys, xs = np.nonzero(lung)
    out = np.zeros(lung.shape, dtype=np.float32)
    if len(zs) == 0:
        return out
    sl = tuple(slice(max(0, int(a.min()) - 1), int(a.max()) + 2) for a in (zs, ys, xs))
    box = np.pad(lung[sl], 1)  # the box's border counts as outside
    d = ndi.distance_transform_edt(box, sampling=spacing)[1:-1, 1:-1, 1:-1]
    out[sl] = d.astype(np.float32)
    return out


def _pick(rng: np.random.Generator, cand: np.ndarray, weights: np.ndarray) -> Tuple[int, int, int]:
    idx = np.flatnonzero(cand)
    w = weights.ravel()[idx].astype(np.float64)
    w = w / w.sum()
    return tuple(int(v) for v in np.unravel_index(int(rng.choice(idx, p=w)), cand.shape))  # type: ignore[return-value]


def _box(les: Lesion, shape: Sequence[int], spacing: Sequence[float]) -> Tuple[slice, slice, slice]:
    r = max(les.radii_mm) * (1.0 + 2 * les.edge) + 3.0
    return tuple(slice(max(0, int(math.floor(c - r / s))), min(n, int(math.ceil(c + r / s)) + 1))
                 for c, s, n in zip(les.center_vox, spacing, shape))  # type: ignore[return-value]


def paint(rng: np.random.Generator, les: Lesion, spacing: Sequence[float], shape: Sequence[int],
          weight: np.ndarray, target: np.ndarray, bronch: np.ndarray, allowed: Optional[np.ndarray] = None) -> None:
    """One lesion into the weight map (max), the target-HU map and the air-bronchogram flag (where it dominates);
    ``allowed`` (the volume's shape, bool or a weight in [0, 1]) limits it: a CAP region stays in its lung, a
    COVID-19-like lesion near the lung's border."""
    sl = _box(les, shape, spacing)
    bs = tuple(s.stop - s.start for s in sl)
    if min(bs) <= 0:
        return
    grids = [(np.arange(s.start, s.stop, dtype=np.float32) - c) * sp for s, c, sp in zip(sl, les.center_vox, spacing)]
    z = grids[0][:, None, None]
    y = grids[1][None, :, None]
    x = grids[2][None, None, :]
    ca, sa = math.cos(les.angle), math.sin(les.angle)
    yr = ca * y + sa * x
    xr = -sa * y + ca * x
    d = np.sqrt((z / les.radii_mm[0]) ** 2 + (yr / les.radii_mm[1]) ** 2 + (xr / les.radii_mm[2]) ** 2)
    d = d + 0.25 * smooth_field(rng, bs, spacing, max(4.0, 0.35 * min(les.radii_mm)))
    w = np.clip((1.0 + les.edge / 2 - d) / les.edge, 0.0, 1.0).astype(np.float32)
    if allowed is not None:
        w = w * allowed[sl]
    tex = smooth_field(rng, bs, spacing, 1.5)
    if les.kind == "ggo":
        t = les.hu + 35.0 * tex
    elif les.kind == "paving":
        cells = smooth_field(rng, bs, spacing, 3.0)
        t = les.hu + 30.0 * tex + np.where(np.abs(cells) < 0.22, 220.0, 0.0)
    else:
        core = np.clip((les.core[0] - d) / les.core[1], 0.0, 1.0)
        t = les.rim_hu * (1 - core) + les.hu * core + 15.0 * tex
    cur = weight[sl]
    take = w > cur
    target[sl] = np.where(take, t, target[sl]).astype(np.float32)
    bronch[sl] = np.where(take, les.kind == "consolidation", bronch[sl])
    weight[sl] = np.maximum(cur, w)


def compose(hu: np.ndarray, lung: np.ndarray, weight: np.ndarray, target: np.ndarray, bronch: np.ndarray,
            spacing: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """The lesions into the scan: (new HU, infection mask).  Raises voxels only, inside the lung; aerated bronchi
    inside consolidation keep their value (air bronchograms)."""
    ndi = _ndi()
    w = np.where(lung, weight, 0.0).astype(np.float32)
    new = hu.astype(np.float32).copy()
    act = w > 0
    if act.any():
        zs, ys, xs = np.nonzero(act)
        sl = tuple(slice(int(a.min()), int(a.max()) + 1) for a in (zs, ys, xs))
        h = hu[sl].astype(np.float32)
        sm = ndi.gaussian_filter(h, sigma=[0.0] + [1.0 / s for s in spacing[1:]])  # 1 mm in-plane
        keep_air = bronch[sl] & (sm < AIR_BRONCHOGRAM_HU)
        blended = np.maximum(h, h + w[sl] * (target[sl] - h))
        new[sl] = np.where(act[sl] & ~keep_air, blended, h)
    infection = (w > 0.5) & lung
    return new, infection


def _involvement(weight: np.ndarray, lung: np.ndarray, n_lung: int) -> float:
    return 100.0 * float(((weight > 0.5) & lung).sum()) / max(n_lung, 1)


def _lung_box(hu: np.ndarray, lung: np.ndarray, who: str) -> Tuple[np.ndarray, Tuple[slice, slice, slice]]:
    """Checks ``hu`` and ``lung`` agree and the lung is there; the lung mask as bool and its bounding box with a margin of
    2 voxels (where the work is done; the rest of the volume is copied)."""
    if hu.shape != lung.shape:
        raise ValueError(f"{who}: scan {hu.shape} and lung mask {lung.shape} differ")
    lung = lung.astype(bool)
    if not lung.any():
        raise ValueError(f"{who}: the lung mask is empty")
    idx = np.nonzero(lung)
    box = tuple(slice(max(0, int(a.min()) - 2), min(n, int(a.max()) + 3)) for a, n in zip(idx, lung.shape))
    return lung, box  # type: ignore[return-value]


def _axis_fractions(lung: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per slice and per row of ``lung``'s grid: (zfrac 0 at the lung's base .. 1 at its apex, yfrac 0 anterior .. 1
    posterior), broadcastable to the grid."""
    zz = np.arange(lung.shape[0], dtype=np.float32)[:, None, None]
    yy = np.arange(lung.shape[1], dtype=np.float32)[None, :, None]
    zs, ys, _ = np.nonzero(lung)
    zfrac = (zz - zs.min()) / max(1.0, float(zs.max() - zs.min()))
    yfrac = (yy - ys.min()) / max(1.0, float(ys.max() - ys.min()))
    return zfrac, yfrac


def _lesions_to_volume(syn: "Synthesis", box: Sequence[slice]) -> None:
    """Moves the lesions' centres from the box's voxel indices to the volume's."""
    off = [b.start for b in box]
    for les in syn.lesions:
        les.center_vox = [c + o for c, o in zip(les.center_vox, off)]


def synthesize(hu: np.ndarray, lung: np.ndarray, spacing: Sequence[float], label: str, rng: np.random.Generator,
               target_pct: Optional[float] = None, stage: Optional[str] = None) -> Dict[str, object]:
    """Inserts ``label`` ('COVID-19' or 'CAP') lesions into ``hu`` (Z, Y, X) inside ``lung`` (bool, same shape).
    Returns {'hu': float32 HU, 'infection': bool mask, 'synthesis': Synthesis}.  ``target_pct``: the involvement
    to reach (default drawn from the class's range); lesions are added until it is reached or the class's maximum
    number of lesions is.  Works on the lung's bounding box (the rest is copied)."""
    if label not in ("COVID-19", "CAP"):
        raise ValueError(f"synthesize: label must be 'COVID-19' or 'CAP', got {label!r}")
    lung, box = _lung_box(hu, lung, "synthesize")
    r = _synthesize_box(hu[box], lung[box], spacing, label, rng, target_pct, stage)
    new = hu.astype(np.float32).copy()
    new[box] = r["hu"]
    infection = np.zeros(lung.shape, dtype=bool)
    infection[box] = r["infection"]
    syn: Synthesis = r["synthesis"]  # type: ignore[assignment]
    _lesions_to_volume(syn, box)
    return {"hu": new, "infection": infection, "synthesis": syn}


def _synthesize_box(hu: np.ndarray, lung: np.ndarray, spacing: Sequence[float], label: str, rng: np.random.Generator,
                    target_pct: Optional[float], stage: Optional[str]) -> Dict[str, object]:
    n_lung = int(lung.sum())
    spacing = tuple(float(s) for s in spacing)
    shape = hu.shape
    side = lung_sides(lung)
    dist = pleural_distance(lung, spacing)
    zfrac, yfrac = _axis_fractions(lung)
    weight = np.zeros(shape, dtype=np.float32)
    target = np.zeros(shape, dtype=np.float32)
    bronch = np.zeros(shape, dtype=bool)
    syn = Synthesis(label=label, stage="")

    if label == "COVID-19":
        syn.stage = stage or str(rng.choice(["early", "progressive", "peak"], p=[0.35, 0.4, 0.25]))
        lo, hi = COVID_INVOLVEMENT
        if syn.stage == "early":
            hi = min(hi, 12.0)
        syn.target_pct = float(target_pct if target_pct is not None else rng.uniform(lo, hi))
        wts = np.exp(-1.2 * zfrac) * (1.0 + 1.5 * yfrac)
        band = lung & (dist <= SUBPLEURAL_MM)
        a, b = COVID_DEPTH_MM
        falloff = np.clip((b - dist) / (b - a), 0.0, 1.0).astype(np.float32)
        sides_needed = [1, 2]
        for i in range(COVID_MAX_LESIONS):
            s_req = sides_needed.pop(0) if sides_needed else 0
            cand = band & (side == s_req) if s_req else band
            if not cand.any():
                cand = lung & (side == s_req) if s_req else lung
                if not cand.any():
                    continue
            c = _pick(rng, cand, np.broadcast_to(wts, shape))
            rxy = float(rng.uniform(12, 40))
            radii = [float(rng.uniform(10, 35)), rxy, rxy * float(rng.uniform(0.5, 1.0))]
            if syn.stage == "early":
                kind = "ggo"
            elif syn.stage == "progressive":
                kind = str(rng.choice(["ggo", "paving"]))
            else:
                kind = str(rng.choice(["ggo", "paving", "consolidation"], p=[0.3, 0.3, 0.4]))
            h = float(rng.uniform(-100, 40)) if kind == "consolidation" else float(rng.uniform(-750, -350))
            les = Lesion(kind, [float(v) for v in c], radii, float(rng.uniform(0, math.pi)), h,
                         rim_hu=float(rng.uniform(-700, -450)), side=int(side[c]))
            paint(rng, les, spacing, shape, weight, target, bronch, allowed=falloff)
            syn.lesions.append(les)
            if not sides_needed and _involvement(weight, lung, n_lung) >= syn.target_pct:
                break
    else:
        syn.stage = "consolidation"
        lo, hi = CAP_INVOLVEMENT
        syn.target_pct = float(target_pct if target_pct is not None else rng.uniform(lo, hi))
        main = int(rng.choice([1, 2]))
        bilateral = bool(rng.random() < CAP_BILATERAL_P)
        wts = np.exp(-1.0 * zfrac) * (1.0 + 1.0 * yfrac)
        hu_c = float(rng.uniform(-80, 50))
        for i in range(CAP_MAX_REGIONS):
            s = (3 - main) if (bilateral and i == 1) else main
            cand = lung & (side == s) & (dist >= 5.0)
            if not cand.any():
                cand = lung & (side == s)
            c = _pick(rng, cand, np.broadcast_to(wts, shape))
            r = float(rng.uniform(25, 60)) * (0.6 if (bilateral and i == 1) else 1.0)
            radii = [r * float(rng.uniform(0.8, 1.4)), r, r * float(rng.uniform(0.7, 1.0))]
            les = Lesion("consolidation", [float(v) for v in c], radii, float(rng.uniform(0, math.pi)),
                         hu_c + float(rng.uniform(-15, 15)), rim_hu=float(rng.uniform(-550, -400)), side=s,
                         edge=CAP_EDGE, core=(0.97, 0.1))
            # one lung: the region stops at the midline of the lungs (consolidation does not cross the mediastinum)
            paint(rng, les, spacing, shape, weight, target, bronch, allowed=side == s)
            syn.lesions.append(les)
            if (not bilateral or i >= 1) and _involvement(weight, lung, n_lung) >= syn.target_pct:
                break
    new, infection = compose(hu, lung, weight, target, bronch, spacing)
    syn.involvement_pct = 100.0 * float(infection.sum()) / n_lung
    syn.sides = sorted({int(v) for v in np.unique(side[infection]) if v})
    return {"hu": new, "infection": infection, "synthesis": syn}


# ----------------------------------------------------------------------------------------------
# Look-alikes that are not infection: the "no infection" class's hard negatives
# ----------------------------------------------------------------------------------------------

MIMIC_KINDS = ("mass", "nodule", "plate", "noise")
MASS_RADIUS_MM = (12.0, 30.0)      # a lung mass (> 3 cm across): a tumour
NODULE_RADIUS_MM = (2.5, 8.0)      # nodules (< 3 cm; most under 1.5 cm)
SOLID_HU = (0.0, 60.0)             # soft tissue, not ground glass
PLATE_MM = (1.5, 4.0)              # linear (plate-like) atelectasis: a few mm thick, long, a line on axial slices
LOW_DOSE_NOISE_HU = (15.0, 45.0)   # extra noise std of a low-dose acquisition


def mimic(hu: np.ndarray, lung: np.ndarray, spacing: Sequence[float], rng: np.random.Generator,
          kinds: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """A "no infection" look-alike of a real scan: what a classifier could take for infection and is not.  ``kinds``
    (default: drawn) among ``MIMIC_KINDS``: ``mass`` a solid lobulated, spiculated mass anywhere in a lung, hilar
    (near the mediastinum) half the time; ``nodule`` 2 to 8 solid nodules; ``plate`` 1 to 3 thin bands of linear
    atelectasis at the bases; ``noise`` the extra noise of a low-dose acquisition over the whole scan (smoothed over
    about 0.7 mm).  The solid ones are painted like lesions (raise only, inside the lung mask); nothing of it is
    infection.  Returns {'hu': float32 HU, 'infection': an empty mask, 'synthesis': Synthesis with label
    'no infection' and the stage the kinds joined by '+'}."""
    lung, box = _lung_box(hu, lung, "mimic")
    if kinds is None:
        solid = str(rng.choice(["mass", "nodule", "plate", "mass+nodule"], p=[0.4, 0.25, 0.15, 0.2]))
        kinds = solid.split("+") + (["noise"] if rng.random() < 0.4 else [])
    bad = [k for k in kinds if k not in MIMIC_KINDS]
    if bad or not kinds:
        raise ValueError(f"mimic: kinds must be among {MIMIC_KINDS}, got {list(kinds)}")
    spacing = tuple(float(s) for s in spacing)
    lb = lung[box]
    shape = lb.shape
    inside = lb.astype(np.float32)  # what a look-alike may cover
    side = lung_sides(lb)
    dist = pleural_distance(lb, spacing)
    zfrac, yfrac = _axis_fractions(lb)
    # medial: near the lungs' midline (the mediastinum, the hila)
    xx = np.arange(shape[2], dtype=np.float32)[None, None, :]
    xs = np.nonzero(lb)[2]
    medial = 1.0 - np.abs(xx - float(xs.mean())) / max(1.0, float(np.abs(xs - xs.mean()).max()))
    weight = np.zeros(shape, dtype=np.float32)
    target = np.zeros(shape, dtype=np.float32)
    bronch = np.zeros(shape, dtype=bool)
    syn = Synthesis(label="no infection", stage="+".join(kinds))
    for kind in kinds:
        if kind in ("mass", "nodule"):
            count = 1 if kind == "mass" else int(rng.integers(2, 9))
            lo, hi = MASS_RADIUS_MM if kind == "mass" else NODULE_RADIUS_MM
            for _ in range(count):
                r = float(rng.uniform(lo, hi))
                cand = lb & (dist >= min(r * 0.6, 10.0))
                if not cand.any():
                    cand = lb
                hilar = kind == "mass" and rng.random() < 0.5
                wts = np.broadcast_to((medial ** 4 if hilar else 1.0) * (1.0 + 0.5 * (1 - zfrac)), shape)
                c = _pick(rng, cand, wts)
                radii = [r * float(rng.uniform(0.8, 1.2)), r, r * float(rng.uniform(0.75, 1.0))]
                # solid, sharp-edged and roughened (spiculation: a rougher border than the lesions above)
                les = Lesion("consolidation", [float(v) for v in c], radii, float(rng.uniform(0, math.pi)),
                             float(rng.uniform(*SOLID_HU)), rim_hu=float(rng.uniform(-150, 0)), side=int(side[c]),
                             edge=0.1, core=(0.97, 0.05))
                paint(rng, les, spacing, shape, weight, target, bronch, allowed=inside)
                syn.lesions.append(les)
        elif kind == "plate":
            for _ in range(int(rng.integers(1, 4))):
                cand = lb & (zfrac < 0.35) & (dist >= 3.0)
                if not cand.any():
                    cand = lb
                c = _pick(rng, cand, np.broadcast_to(1.0 + yfrac, shape))
                t = float(rng.uniform(*PLATE_MM))
                # a thin plate standing across the lung (thin along the rotated in-plane axis): a line on axial slices
                radii = [float(rng.uniform(6, 15)), float(rng.uniform(15, 35)), t]
                les = Lesion("consolidation", [float(v) for v in c], radii, float(rng.uniform(0, math.pi)),
                             float(rng.uniform(-200, 20)), rim_hu=-600.0, side=int(side[c]), edge=0.15,
                             core=(0.9, 0.2))
                paint(rng, les, spacing, shape, weight, target, bronch, allowed=inside)
                syn.lesions.append(les)
    new_box, _ = compose(hu[box].astype(np.float32), lb, weight, target, np.zeros(shape, dtype=bool), spacing)
    new = hu.astype(np.float32).copy()
    new[box] = new_box
    if "noise" in kinds:
        sd = float(rng.uniform(*LOW_DOSE_NOISE_HU))
        ndi = _ndi()
        n = ndi.gaussian_filter(rng.standard_normal(hu.shape).astype(np.float32),
                                sigma=[0.0] + [0.35 / s for s in spacing[1:]])
        n *= sd / max(float(n.std()), 1e-6)
        air = hu < -990  # the air around the patient stays air
        new = np.where(air, new, new + n).astype(np.float32)
        syn.target_pct = sd  # for 'noise': the noise's std (HU) is kept here
    _lesions_to_volume(syn, box)
    return {"hu": new, "infection": np.zeros(lung.shape, dtype=bool), "synthesis": syn}


# ----------------------------------------------------------------------------------------------
# Scanner-like variants: thicker slices, smaller field of view
# ----------------------------------------------------------------------------------------------

def thicken(hu: np.ndarray, masks: Sequence[np.ndarray], factor: int) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Averages groups of ``factor`` adjacent slices (the last incomplete group dropped); masks by majority."""
    if factor <= 1:
        return hu, list(masks)
    nz = (hu.shape[0] // factor) * factor
    h = hu[:nz].reshape(nz // factor, factor, *hu.shape[1:]).mean(1)
    ms = [(m[:nz].reshape(nz // factor, factor, *m.shape[1:]).astype(np.float32).mean(1) > 0.5) for m in masks]
    return h.astype(np.float32), ms


def crop_box(body_or_lung: np.ndarray, frac: float) -> Tuple[slice, slice]:
    """A square in-plane crop of ``frac`` of the matrix, centred on the mask's bounding box (kept inside the image)."""
    ny, nx = body_or_lung.shape[1:]
    n = max(16, int(round(min(ny, nx) * frac)))
    ys, xs = np.nonzero(body_or_lung.any(0))
    cy = (int(ys.min()) + int(ys.max())) // 2 if len(ys) else ny // 2
    cx = (int(xs.min()) + int(xs.max())) // 2 if len(xs) else nx // 2
    y0 = min(max(0, cy - n // 2), ny - n)
    x0 = min(max(0, cx - n // 2), nx - n)
    return slice(y0, y0 + n), slice(x0, x0 + n)


# ----------------------------------------------------------------------------------------------
# Command line: lesion-inserted copies of a real study
# ----------------------------------------------------------------------------------------------

def _load(root: str, study: str):
    import nibabel as nib
    path = os.path.join(root, study, "scan.nii.gz")
    img = nib.load(path)
    from nibabel.orientations import aff2axcodes
    if aff2axcodes(img.affine) != ("L", "P", "S"):
        raise SystemExit(f"{path}: expected axcodes ('L','P','S') as weights/real_data.py writes, got {aff2axcodes(img.affine)}")
    hu = np.transpose(np.asarray(img.dataobj, dtype=np.float32), (2, 1, 0))
    lung = np.transpose(np.asarray(nib.load(os.path.join(root, study, "lung.nii.gz")).dataobj) > 0, (2, 1, 0))
    zooms = img.header.get_zooms()[:3]
    return hu, lung, (float(zooms[2]), float(zooms[1]), float(zooms[0])), img.affine


def _save(path: str, zyx: np.ndarray, affine: np.ndarray, dtype) -> None:
    import nibabel as nib
    img = nib.Nifti1Image(np.ascontiguousarray(np.transpose(zyx, (2, 1, 0))).astype(dtype), affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, path)


def make_copies(data: str, study: str, out: str, per_class: int, clean: int, seed: int,
                thick_mm: Tuple[float, float] = (0.0, 0.0), crop: Tuple[float, float] = (1.0, 1.0),
                involvement: Optional[Tuple[float, float]] = None, log=print, mimics: int = 0) -> List[Dict[str, object]]:
    """Writes ``per_class`` COVID-19-like and CAP-like copies, ``clean`` unchanged ones and ``mimics`` look-alikes
    ("no infection" with a mass, nodules, atelectasis or low-dose noise: ``mimic``), each with its own slice thickness
    and crop, of ``data/study`` into the dataset folder ``out``."""
    hu0, lung0, spacing, affine = _load(data, study)
    os.makedirs(out, exist_ok=True)
    rows, recs = [], []
    plan = [("COVID-19", i) for i in range(per_class)] + [("CAP", i) for i in range(per_class)] + \
        [("no infection", i) for i in range(clean)] + [("mimic", i) for i in range(mimics)]
    for n, (label, i) in enumerate(plan):
        rng = np.random.default_rng(np.random.SeedSequence([seed, n, 0x1E5]))
        name = f"{study}-{ {'COVID-19': 'covid', 'CAP': 'cap', 'no infection': 'none', 'mimic': 'mimic'}[label]}{i:02d}-s{seed}"
        if label == "no infection":
            hu, inf, syn = hu0, np.zeros_like(lung0), None
        elif label == "mimic":
            r = mimic(hu0, lung0, spacing, rng)
            hu, inf, syn = r["hu"], r["infection"], r["synthesis"]
            label = syn.label
        else:
            tp = float(rng.uniform(*involvement)) if involvement else None
            r = synthesize(hu0, lung0, spacing, label, rng, target_pct=tp)
            hu, inf, syn = r["hu"], r["infection"], r["synthesis"]
        factor = 1
        if thick_mm[1] > 0:
            want = float(rng.uniform(*thick_mm))
            factor = max(1, int(round(want / spacing[0])))
        h, (lg, im) = thicken(hu, [lung0, inf], factor)
        cf = float(rng.uniform(*crop)) if crop[0] < 1.0 else 1.0
        ys, xs = crop_box(hu0 > -500, cf)
        h, lg, im = h[:, ys, xs], lg[:, ys, xs], im[:, ys, xs]
        # voxel (i', j', k') of the copy = voxel (i' + x0, j' + y0, factor k' + (factor - 1) / 2) of the study
        m = np.eye(4)
        m[0, 3], m[1, 3] = xs.start, ys.start
        m[2, 2], m[2, 3] = factor, (factor - 1) / 2.0
        aff = affine @ m
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        _save(os.path.join(folder, "scan.nii.gz"), np.clip(np.round(h), -1024, 3071), aff, np.int16)
        _save(os.path.join(folder, "lung.nii.gz"), lg, aff, np.uint8)
        _save(os.path.join(folder, "infection.nii.gz"), im, aff, np.uint8)
        inv = 100.0 * float(im.sum()) / max(1.0, float(lg.sum()))
        rec = {"study": name, "source": study, "label": label, "seed": seed, "slice_mm": spacing[0] * factor,
               "crop": [ys.start, ys.stop, xs.start, xs.stop], "involvement_pct": round(inv, 4),
               "synthesis": syn.to_dict() if syn else None}
        recs.append(rec)
        rows.append((name, label))
        log(f"{name}: {label:12s} {h.shape[0]} slices of {spacing[0] * factor:.0f} mm, {h.shape[1]} px, "
            f"involvement {inv:.2f} %" + (f" ({syn.stage}, {len(syn.lesions)} lesions, sides {syn.sides})" if syn else ""))
    new_labels = not os.path.exists(os.path.join(out, "labels.csv"))
    with open(os.path.join(out, "labels.csv"), "a", newline="") as f:
        w = csv.writer(f)
        if new_labels:
            w.writerow(["study", "label"])
        w.writerows(rows)
    with open(os.path.join(out, "lesions.json"), "a") as f:
        for rec in recs:
            f.write(json.dumps(rec) + "\n")
    return recs


def contact_sheet(folder: str, out_png: str, max_studies: int = 12, tile: int = 256) -> None:
    """Per copy of a dataset folder written by ``make_copies``: the axial slice with the most inserted lesion, in the
    lung window, the infection mask's outline in red, with its label and involvement; four tiles a row."""
    from PIL import Image, ImageDraw
    import dataset as ds
    import real_data as rd
    recs = [json.loads(line) for line in open(os.path.join(folder, "lesions.json"))][:max_studies]
    tiles = []
    for rec in recs:
        st = ds.read_study(folder, rec["study"], ds.label_index(rec["label"]))
        inf = st.infection.astype(bool)
        area = inf.reshape(inf.shape[0], -1).sum(1)
        k = int(area.argmax()) if area.any() else int(st.lung.reshape(st.lung.shape[0], -1).sum(1).argmax())
        h = int(round(tile * st.hu.shape[1] * st.spacing[1] / (st.hu.shape[2] * st.spacing[2])))
        t = rd._tile(rd._window(st.hu[k], -1350.0, 150.0), [(inf[k], (255, 40, 40))], (tile, h))
        ImageDraw.Draw(t).text((4, 2), f"{rec['label']} {rec['involvement_pct']:.1f}% k={k}", fill=(255, 255, 0))
        tiles.append(t)
    cols = 4
    th = max(t.size[1] for t in tiles)
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * tile, rows * th + 20), (0, 0, 0))
    ImageDraw.Draw(sheet).text((4, 4), f"{os.path.basename(os.path.abspath(folder))}: inserted lesions (red outline: "
                               f"the infection mask), lung window", fill=(255, 255, 255))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * tile, 20 + (i // cols) * th))
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    sheet.convert("P", palette=Image.ADAPTIVE, colors=96).save(out_png, optimize=True)


def _pair(s: str) -> Tuple[float, float]:
    v = [float(x) for x in s.split(",")]
    return (v[0], v[-1])


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="dataset folder of real chest CT with lung.nii.gz (real_data.py)")
    ap.add_argument("--study")
    ap.add_argument("--out", required=True, help="the copies' dataset folder (with --sheet: the copies to draw)")
    ap.add_argument("--sheet", help="draw a contact sheet of the copies in --out to this PNG instead")
    ap.add_argument("--per-class", type=int, default=4, help="COVID-19-like and CAP-like copies each")
    ap.add_argument("--clean", type=int, default=0, help="copies without lesions ('no infection')")
    ap.add_argument("--mimics", type=int, default=0,
                    help="'no infection' look-alikes: a mass, nodules, atelectasis or low-dose noise (mimic())")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--thick", default="0,0", help="slice thickness range, mm (0,0: the study's own)")
    ap.add_argument("--crop", default="1,1", help="in-plane crop range, fraction of the matrix (1,1: none)")
    ap.add_argument("--involvement", help="involvement target range, %% (default the class's own)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.sheet:
        contact_sheet(a.out, a.sheet)
        return 0
    if not a.data or not a.study:
        ap.error("--data and --study are needed to make copies")
    make_copies(a.data, a.study, a.out, a.per_class, a.clean, a.seed, _pair(a.thick), _pair(a.crop),
                _pair(a.involvement) if a.involvement else None, mimics=a.mimics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
