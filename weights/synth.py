#!/usr/bin/env python3
"""Seeded synthetic chest CT with ground-truth lung and infection masks.

Writes a dataset in the layout ``weights/train.py`` reads (docs/training.md):

    <out>/labels.csv            study,label            (label: COVID-19 | CAP | no infection)
    <out>/slice_labels.csv      study,slice,label      (slice = NIfTI k index)
    <out>/<study>/scan.nii.gz       int16 HU
    <out>/<study>/lung.nii.gz       uint8 0/1, both lungs (intrapulmonary vessels included,
                                    trachea and main bronchi excluded)
    <out>/<study>/infection.nii.gz  uint8 0/1, lesions inside the lung (all zero for 'no infection')

Orientation (explicit in every file's affine; nibabel ``aff2axcodes`` gives ('L', 'P', 'S')):
voxel index i (NIfTI x, fastest) runs from the patient's right to left, j from anterior to
posterior, k from inferior to superior.  ``data[:, :, k].T`` is therefore the standard axial DICOM
view: rows anterior -> posterior, columns patient right -> left (patient right on the image's
left).  The affine is RAS+ (NIfTI): column i = (-dx, 0, 0), column j = (0, -dy, 0), column k =
(0, 0, dz); sform and qform codes 1 (scanner).

Classes:
  * ``no infection``: normal lungs (dependent density gradient, vessels, airways).
  * ``COVID-19``: bilateral, multifocal, peripheral/subpleural lesions, lower and posterior
    predominance; ground glass (-750..-300 HU) early, crazy paving and consolidation later.
  * ``CAP``: unilateral, segmental/lobar consolidation (-100..+60 HU) following a bronchovascular
    subtree near the hilum, with air bronchograms and a thin ground-glass rim.

Usage:
    /usr/bin/python3 weights/synth.py --out data/train --n 240 --seed 1
    /usr/bin/python3 weights/synth.py --out samples --n 1 --seed 7 --classes covid --slices 12 ...

Everything is a function of (seed, study index): ``study_rng(seed, i)``.  What the generator does
not model is listed in docs/training.md.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

CLASS_NAMES = ["COVID-19", "CAP", "no infection"]
CLASS_ALIASES = {"covid": "COVID-19", "covid-19": "COVID-19", "cap": "CAP",
                 "none": "no infection", "normal": "no infection", "no infection": "no infection"}

# A slice is labelled with its study's class when its infected area is at least this fraction of
# its lung area and at least MIN_INFECTED_VOXELS voxels; otherwise 'no infection'.
SLICE_INFECTED_FRACTION = 0.01
MIN_INFECTED_VOXELS = 10


def slice_labels_from_masks(study_label: str, lung: np.ndarray, infection: np.ndarray) -> List[str]:
    """Per-slice labels from (Z, Y, X) masks: study class on slices with infection, else 'no infection'."""
    out = []
    for k in range(lung.shape[0]):
        la = int(lung[k].sum())
        ia = int(infection[k].sum())
        if study_label != "no infection" and ia >= MIN_INFECTED_VOXELS and ia >= SLICE_INFECTED_FRACTION * max(la, 1):
            out.append(study_label)
        else:
            out.append("no infection")
    return out


# ----------------------------------------------------------------------------------------------
# Small image helpers (torch on CPU; no scipy)
# ----------------------------------------------------------------------------------------------

def _gauss_kernel(sigma: float) -> torch.Tensor:
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def blur2d(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of the last two axes of a (Z, Y, X) or (Y, X) array (reflect padding)."""
    if sigma <= 0:
        return a
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    shape = t.shape
    t = t.reshape(-1, 1, shape[-2], shape[-1])
    k = _gauss_kernel(sigma)
    r = (k.numel() - 1) // 2
    mode = "reflect" if min(shape[-2:]) > r else "replicate"
    t = F.conv2d(F.pad(t, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1))
    t = F.conv2d(F.pad(t, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1))
    return t.reshape(shape).numpy()


def blur3d(a: np.ndarray, sigma_xy: float, sigma_z: float) -> np.ndarray:
    a = blur2d(a, sigma_xy)
    if sigma_z > 0 and a.shape[0] > 1:
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        z, y, x = t.shape
        k = _gauss_kernel(sigma_z)
        r = (k.numel() - 1) // 2
        t = t.permute(1, 2, 0).reshape(-1, 1, z)
        t = F.conv1d(F.pad(t, (r, r), mode="replicate"), k.view(1, 1, -1))
        a = t.reshape(y, x, z).permute(2, 0, 1).contiguous().numpy()
    return a


def erode2d(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """In-plane binary erosion of a (Z, Y, X) mask with a square of half-size radius_px."""
    if radius_px <= 0:
        return mask.astype(bool)
    t = torch.from_numpy(mask.astype(np.float32))[:, None]
    k = 2 * radius_px + 1
    er = -F.max_pool2d(-t, k, stride=1, padding=radius_px)
    return er[:, 0].numpy() > 0.5


def smooth_noise(rng: np.random.Generator, shape: Tuple[int, ...], sigma_px: float) -> np.ndarray:
    """Zero-mean, unit-std smooth random field (made at reduced resolution for wide fields)."""
    if len(shape) == 3 and sigma_px >= 4 and min(shape[1:]) >= 16:
        f = int(sigma_px // 2)
        small = (shape[0], max(2, -(-shape[1] // f)), max(2, -(-shape[2] // f)))
        n = smooth_noise(rng, small, sigma_px / f)
        t = F.interpolate(torch.from_numpy(n)[None], size=shape[1:], mode="bilinear", align_corners=False)[0]
        t = (t - t.mean()) / (t.std() + 1e-6)
        return t.numpy()
    n = rng.standard_normal(shape).astype(np.float32)
    n = blur3d(n, sigma_px, sigma_px * 0.5) if len(shape) == 3 else blur2d(n, sigma_px)
    s = float(n.std()) or 1.0
    return (n - n.mean()) / s


# ----------------------------------------------------------------------------------------------
# Study parameters
# ----------------------------------------------------------------------------------------------

@dataclass
class Geometry:
    n: int                 # in-plane matrix (square)
    ps: float              # pixel spacing, mm
    dz: float              # slice spacing = thickness, mm
    nz: int
    z0: float              # z of slice 0, mm (lung base dome ~ 0)
    body_a: float          # body half-width (lateral), mm
    body_b: float          # body half-depth (AP), mm
    cx: float
    cy: float
    fat: float             # subcutaneous fat thickness, mm
    muscle: float
    lung_h: float          # lung height base -> apex, mm

    @property
    def fov(self) -> float:
        return self.n * self.ps


@dataclass
class Lesion:
    center: np.ndarray     # (x, y, z) mm
    radii: np.ndarray      # (rx, ry, rz) mm
    angle: float           # in-plane rotation, rad
    kind: str              # 'ggo' | 'paving' | 'consolidation'
    hu: float
    rim_hu: float = -550.0


def study_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 0xC0FFEE]))


def sample_geometry(rng: np.random.Generator, matrix: Sequence[int], dz_range: Sequence[float],
                    n_slices: Optional[int] = None) -> Geometry:
    body_a = rng.uniform(130, 185)
    body_b = body_a * rng.uniform(0.62, 0.78)
    fat = rng.uniform(5, 28) * (body_a / 160)
    muscle = rng.uniform(8, 15)
    fov = float(np.clip(2 * body_a * rng.uniform(1.04, 1.35), 280, 480))
    n = int(rng.choice(np.arange(matrix[0], matrix[1] + 1, 16))) if matrix[0] != matrix[1] else int(matrix[0])
    ps = fov / n
    lung_h = rng.uniform(190, 270) * (body_a / 160) ** 0.3
    lo = -rng.uniform(25, 55)
    hi = lung_h + rng.uniform(5, 30)
    if n_slices:
        dz = (hi - lo) / n_slices
        nz = n_slices
    else:
        dz = float(rng.uniform(*dz_range))
        nz = int(math.ceil((hi - lo) / dz))
    z0 = lo + dz / 2
    return Geometry(n=n, ps=ps, dz=dz, nz=nz, z0=z0, body_a=body_a, body_b=body_b,
                    cx=rng.uniform(-10, 10), cy=rng.uniform(-15, 5), fat=fat, muscle=muscle, lung_h=lung_h)


# ----------------------------------------------------------------------------------------------
# Trees (vessels and airways) as 3-D point clouds
# ----------------------------------------------------------------------------------------------

def _grow(rng, p, d, r, depth, max_depth, step, out_pts, out_rad, out_depth, seg_len, branches=None, tag=0):
    length = seg_len * rng.uniform(0.7, 1.3) * (0.85 ** depth)
    n = max(2, int(length / step))
    for s in range(n):
        q = p + d * (s * step)
        out_pts.append(q)
        out_rad.append(r)
        out_depth.append(depth)
        if branches is not None:
            branches.append(tag)
    end = p + d * length
    if depth >= max_depth or r < 0.6:
        return
    for c in range(2):
        nd = d + rng.normal(0, 0.55, 3)
        nd /= np.linalg.norm(nd) + 1e-9
        child_tag = tag * 2 + c + 1 if branches is not None else 0
        _grow(rng, end, nd, r * rng.uniform(0.68, 0.82), depth + 1, max_depth, step, out_pts, out_rad,
              out_depth, seg_len, branches, child_tag)


def make_tree(rng: np.random.Generator, hilum: np.ndarray, side: float, max_depth: int, r0: float,
              seg_len: float) -> Dict[str, np.ndarray]:
    """Branching tree from the hilum; roots point laterally, up, down, anterior and posterior."""
    pts, rad, dep, br = [], [], [], []
    roots = [(side, 0.0, 0.9), (side, 0.0, -1.0), (side * 0.8, -0.7, -0.2), (side * 0.8, 0.7, -0.3),
             (side, 0.2, 0.2), (side * 0.6, -0.6, 0.7), (side * 0.6, 0.8, 0.5), (side * 0.5, 0.6, -0.9),
             (side * 0.5, -0.6, -0.8)]
    for i, d in enumerate(roots):
        d = np.array(d, dtype=np.float64) + rng.normal(0, 0.2, 3)
        d /= np.linalg.norm(d)
        _grow(rng, hilum.copy(), d, r0 * rng.uniform(0.8, 1.1), 0, max_depth, 1.0, pts, rad, dep, seg_len, br,
              (i + 1) * 1000)
    return {"p": np.array(pts, dtype=np.float32), "r": np.array(rad, dtype=np.float32),
            "depth": np.array(dep, dtype=np.int32), "branch": np.array(br, dtype=np.int64)}


def render_tubes(pts: np.ndarray, rad: np.ndarray, g: Geometry, zs: np.ndarray, grow: float = 0.0) -> np.ndarray:
    """Partial-volume occupancy (Z, Y, X) in [0, 1] of tubes sampled as points with radii (mm)."""
    occ = np.zeros((g.nz, g.n, g.n), dtype=np.float32)
    if len(pts) == 0:
        return occ
    col = (pts[:, 0] + g.fov / 2) / g.ps - 0.5   # x mm (patient left +) -> i
    row = (pts[:, 1] + g.fov / 2) / g.ps - 0.5   # y mm (posterior +) -> j
    r_mm = rad + grow
    for k, z in enumerate(zs):
        dzp = np.abs(pts[:, 2] - z)
        sel = dzp < (g.dz / 2 + r_mm)
        if not np.any(sel):
            continue
        c, rr, rmm, dd = col[sel], row[sel], r_mm[sel], dzp[sel]
        # in-plane radius of the cross-section at this slice (sphere sweep), at least a fraction of a pixel
        rin = np.sqrt(np.maximum(rmm ** 2 - np.maximum(dd - g.dz / 2, 0) ** 2, 0)) / g.ps
        w = np.clip(2 * rmm / g.dz, 0.25, 1.0)  # slab partial volume for thin tubes
        rpx = np.clip(np.round(rin), 0, 6).astype(np.int32)
        ci = np.round(c).astype(np.int32)
        ri = np.round(rr).astype(np.int32)
        sl = occ[k]
        for R in np.unique(rpx):
            m = rpx == R
            oy, ox = np.mgrid[-R:R + 1, -R:R + 1]
            disk = (ox ** 2 + oy ** 2) <= R * R + 0.5
            oy, ox = oy[disk], ox[disk]
            yy = (ri[m][:, None] + oy[None]).ravel()
            xx = (ci[m][:, None] + ox[None]).ravel()
            ww = np.repeat(w[m] * (1.0 if R > 0 else 0.6), len(oy))
            ok = (yy >= 0) & (yy < g.n) & (xx >= 0) & (xx < g.n)
            np.maximum.at(sl, (yy[ok], xx[ok]), ww[ok])
    return occ


# ----------------------------------------------------------------------------------------------
# The phantom
# ----------------------------------------------------------------------------------------------

def _superellipse(u: np.ndarray, v: np.ndarray, p_ant: float, p_post: float) -> np.ndarray:
    p = np.where(v > 0, p_post, p_ant)
    return (np.abs(u) ** p + np.abs(v) ** p) ** (1.0 / p)


def generate_study(rng: np.random.Generator, label: str, matrix: Sequence[int] = (128, 192),
                   dz_range: Sequence[float] = (5.0, 10.0), n_slices: Optional[int] = None) -> Dict[str, object]:
    """One study: returns dict with 'hu' (Z, Y, X) int16, 'lung', 'infection' (Z, Y, X) uint8,
    'geometry', 'label', 'stage', 'slice_labels'.  Axis order: Z inferior->superior, Y anterior->
    posterior, X patient right->left."""
    if label not in CLASS_NAMES:
        raise ValueError(f"unknown label {label!r}")
    g = sample_geometry(rng, matrix, dz_range, n_slices)
    n, nz = g.n, g.nz
    coords = (np.arange(n, dtype=np.float32) + 0.5) * g.ps - g.fov / 2
    X = coords[None, None, :]            # mm, + toward patient left
    Y = coords[None, :, None]            # mm, + toward posterior
    zs = g.z0 + g.dz * np.arange(nz, dtype=np.float32)
    Z = zs[:, None, None]
    t = Z / g.lung_h                      # 0 = dome, 1 = apex

    # --- body outline and wall ---
    taper = 1 - 0.10 * np.clip((t - 0.6) / 0.5, 0, 1)
    A = g.body_a * taper * (1 + 0.03 * np.sin(2.1 * t + rng.uniform(0, 6)))
    B = g.body_b * (1 - 0.05 * np.clip((t - 0.5) / 0.6, 0, 1))
    u = (X - g.cx) / A
    v = (Y - g.cy) / B
    rb = _superellipse(u, v, 2.2, 3.0)
    body = rb < 1
    thick = g.fat + g.muscle
    Ac, Bc = A - thick, B - thick
    uc = (X - g.cx) / Ac
    vc = (Y - g.cy) / Bc
    rc = _superellipse(uc, vc, 2.1, 2.6)
    cavity = rc < 1
    Am, Bm = A - g.fat, B - g.fat
    rm = _superellipse((X - g.cx) / Am, (Y - g.cy) / Bm, 2.2, 3.0)
    muscle = (rm < 1) & ~cavity

    hu = np.full((nz, n, n), -1000.0, dtype=np.float32)
    hu[body] = -105 + 10 * rng.standard_normal()
    hu[muscle] = 45 + 5 * rng.standard_normal()
    hu[cavity] = 30.0  # mediastinal soft tissue; lungs carved out below

    # --- spine, aorta, sternum, heart, trachea positions ---
    Ac0, Bc0 = g.body_a - thick, g.body_b - thick  # scalar cavity half-axes at mid-chest
    spine_x = g.cx
    spine_y = g.cy + Bc0 * 0.80
    vb_r = rng.uniform(14, 19)
    # --- lungs ---
    lung = np.zeros((nz, n, n), dtype=bool)
    dome = np.zeros((nz, n, n), dtype=np.float32)
    lung_shape_noise = smooth_noise(rng, (nz, n, n), 6.0 / g.ps * 3)
    hilum = {}
    for side in (-1.0, 1.0):  # -1 patient right, +1 patient left
        cu = side * rng.uniform(0.46, 0.54)
        cv = rng.uniform(0.0, 0.1)
        au = rng.uniform(0.42, 0.5)
        bv = rng.uniform(0.9, 1.05)
        apex_prof = np.clip(1 - t, 0, 1) ** 0.35
        apex_prof = np.where(t < 0, 1.0, apex_prof)
        du = (uc - cu) / (au * np.maximum(apex_prof, 1e-3))
        dv = (vc - cv) / (bv * np.maximum(apex_prof, 1e-3) ** 0.6)
        rl = np.sqrt(du ** 2 + dv ** 2) + 0.06 * lung_shape_noise
        # diaphragm dome: lung bottom highest near the centre of each hemithorax; right dome higher (liver)
        d0 = rng.uniform(0.10, 0.16) + (0.04 if side < 0 else 0.0)
        floor = d0 * (1 - np.clip(rl, 0, 1) ** 2) - rng.uniform(0.08, 0.14) * np.clip(vc + 0.3, 0, 1.3)
        this = (rl < 1) & (t > floor) & (rc < 0.93)
        lung |= this
        dome = np.where((rl < 1) & (t <= floor), 1.0 if side < 0 else 2.0, dome)
        hx = g.cx + side * Ac0 * rng.uniform(0.16, 0.22)
        hy = g.cy + Bc0 * rng.uniform(-0.05, 0.1)
        hilum[side] = np.array([hx, hy, g.lung_h * rng.uniform(0.52, 0.6)])
    # mediastinum (wider anteriorly) and heart
    med_w = (rng.uniform(0.10, 0.15) + 0.10 * np.clip(-vc, 0, 1)) * Ac
    mediast = np.abs(X - g.cx) < med_w
    heart_prof = np.sqrt(np.clip(1 - ((t - 0.22) / 0.32) ** 2, 0, 1))
    hcx = g.cx + Ac0 * rng.uniform(0.08, 0.2)
    hcy = g.cy - Bc0 * rng.uniform(0.15, 0.3)
    ha = Ac * rng.uniform(0.34, 0.42) * heart_prof
    hb = Bc * rng.uniform(0.38, 0.48) * heart_prof
    hr = np.sqrt(((X - hcx) / np.maximum(ha, 1e-3)) ** 2 + ((Y - hcy) / np.maximum(hb, 1e-3)) ** 2)
    heart = (hr < 1) & (heart_prof > 0)
    peri = (hr < 1.1) & (heart_prof > 0) & ~heart
    paraspine = (np.abs(X - spine_x) < vb_r * 1.6) & (Y > spine_y - vb_r * 1.5)
    lung &= ~mediast & ~heart & ~peri & ~paraspine & cavity

    # abdomen under the domes: liver right, spleen/stomach left
    hu[(dome == 1) & cavity] = 58 + 4 * rng.standard_normal()
    left_abd = (dome == 2) & cavity
    hu[left_abd] = 40.0
    if rng.random() < 0.6:
        gas = left_abd & (((X - (g.cx + Ac * 0.45)) / 30) ** 2 + ((Y - (g.cy - Bc * 0.2)) / 22) ** 2 < 1) & (t > -0.2)
        hu[gas] = -990.0

    # lung parenchyma: base density + dependent (posterior) gradient + texture
    base = rng.uniform(-885, -830)
    grad = rng.uniform(30, 90)
    tex = smooth_noise(rng, (nz, n, n), 2.5 / g.ps * 2)
    lung_hu = base + grad * np.clip((vc + 1) / 2, 0, 1) ** 2 + 12 * tex

    # heart, pericardial fat, aorta
    hu[peri & cavity] = -95.0
    hu[heart & cavity] = 42.0 + 4 * rng.standard_normal()
    ao_r = rng.uniform(11, 15)
    desc = (((X - (spine_x + vb_r * 1.1)) ** 2 + (Y - (spine_y - vb_r * 1.2)) ** 2) < ao_r ** 2) & (t < 0.8)
    asc = (((X - (g.cx + 5)) ** 2 + (Y - (g.cy - Bc * 0.25)) ** 2) < (ao_r * 1.15) ** 2) & (t > 0.5) & (t < 0.78)
    arch_c = (X - (g.cx + vb_r * 0.5)) ** 2 / (ao_r * 1.2) ** 2 + ((Y - (g.cy + Bc * 0.2)) / (Bc * 0.45 + ao_r)) ** 2 < 1
    arch = arch_c & (np.abs(t - 0.8) < 0.03)
    hu[(desc | asc | arch) & cavity] = 45.0

    # vessels and airways (3-D trees from each hilum)
    vessel_pts, vessel_r, air_pts, air_r, trees = [], [], [], [], {}
    for side in (-1.0, 1.0):
        tr = make_tree(rng, hilum[side], side, max_depth=5, r0=rng.uniform(4.0, 5.5), seg_len=rng.uniform(30, 42))
        trees[side] = tr
        vessel_pts.append(tr["p"])
        vessel_r.append(tr["r"])
        # airways accompany the vessels up to depth 4, offset by vessel radius + lumen
        sel = tr["depth"] <= 4
        off = np.array([0.0, 1.0, 0.0], dtype=np.float32)
        air_pts.append(tr["p"][sel] + off * (tr["r"][sel, None] * 1.6 + 1.0))
        air_r.append(tr["r"][sel] * 0.75)
    vpts, vrad = np.concatenate(vessel_pts), np.concatenate(vessel_r)
    apts, arad = np.concatenate(air_pts), np.concatenate(air_r)
    # trachea and main bronchi
    carina = np.array([g.cx, spine_y - vb_r - rng.uniform(12, 20), g.lung_h * rng.uniform(0.62, 0.68)])
    tr_r = rng.uniform(8, 11)
    zt = np.arange(carina[2], zs[-1] + g.dz + 20, 1.0)
    trachea = np.stack([np.full_like(zt, carina[0]), np.full_like(zt, carina[1]), zt], 1)
    mains = []
    for side in (-1.0, 1.0):
        s = np.linspace(0, 1, 60)[:, None]
        mains.append(carina[None] * (1 - s) + hilum[side][None] * s)
    big_air = np.concatenate([trachea] + mains).astype(np.float32)
    big_r = np.concatenate([np.full(len(trachea), tr_r), np.full(120, tr_r * 0.75)]).astype(np.float32)

    # lesions
    infection_w = np.zeros((nz, n, n), dtype=np.float32)
    lesion_hu = np.zeros((nz, n, n), dtype=np.float32)
    stage = "none"
    lung_f = lung.astype(np.float32)
    if label != "no infection":
        # a CAP draw whose every candidate lay in the other lung (a subtree crossing the midline: seed 30, study 97)
        # leaves no lesion once the side mask erases them: draw again among this side's points only. Only studies
        # that used to fail take the second pass, so every study that generated before is unchanged.
        for same_side in (False, True):
            infection_w[:] = 0.0
            lesion_hu[:] = 0.0
            lesions, stage = sample_lesions(rng, label, g, lung, trees, hilum, zs, coords, same_side=same_side)
            for les in lesions:
                paint_lesion(rng, les, g, X, Y, Z, infection_w, lesion_hu)
            infection_w *= lung_f
            if label != "CAP" or (infection_w > 0.5).any():
                break

    # compose lung interior
    inside = lung
    lung_val = lung_hu
    w = infection_w
    lung_val = lung_val * (1 - w) + lesion_hu * w
    hu = np.where(inside, lung_val, hu)
    # vessels (inside lungs and hila): soft tissue
    vocc = render_tubes(vpts, vrad, g, zs)
    vmask = (lung | (cavity & ~heart & ~mediast)) & (vocc > 0)
    hu = np.where(vmask, hu * (1 - vocc) + 40.0 * vocc, hu)
    # airway walls, then lumina (lumen air survives inside consolidation: air bronchograms)
    wall = render_tubes(np.concatenate([apts, big_air]), np.concatenate([arad, big_r]), g, zs, grow=1.2)
    lumen = render_tubes(np.concatenate([apts, big_air]), np.concatenate([arad, big_r]), g, zs)
    in_body = cavity
    hu = np.where(in_body & (wall > 0), hu * (1 - 0.6 * wall) + 30.0 * 0.6 * wall, hu)
    hu = np.where(in_body & (lumen > 0), hu * (1 - lumen) + (-1000.0) * lumen, hu)

    # bones: vertebral body (cortex + cancellous), canal, posterior elements, ribs, sternum
    dvb = np.sqrt((X - spine_x) ** 2 + (Y - spine_y) ** 2)
    vb = dvb < vb_r
    hu = np.where(vb, np.where(dvb > vb_r - 2.5, 650.0, 230.0), hu)
    canal_y = spine_y + vb_r + 8
    canal = np.sqrt((X - spine_x) ** 2 + (Y - canal_y) ** 2) < 8
    lam = (np.abs(X - spine_x) < 22) & (np.abs(Y - (canal_y + 10)) < 3.5) & body
    spinous = (np.abs(X - spine_x) < 4) & (Y > canal_y + 8) & (Y < canal_y + 32) & body
    hu = np.where(lam | spinous, 500.0, hu)
    hu = np.where(canal, 15.0, hu)
    # ribs: periodic in (z + slope * angle-dependent height); present in a band of the wall
    ang = np.arctan2(Y - g.cy, X - g.cx)  # 0 = patient left, +pi/2 = posterior
    rib_band = (rc >= 1.0) & (rc < 1.0 + 11.0 / max(float(np.mean(Ac)), 1.0)) & body
    spacing = rng.uniform(22, 28)
    slope = rng.uniform(28, 40)
    height = slope * np.sin(ang)  # posterior parts sit higher than anterior ends
    phase = ((Z + height) / spacing) % 1.0
    ribs = rib_band & (phase < 9.0 / spacing) & (t > -0.15) & (t < 1.1) & (np.abs(np.cos(ang)) > 0.18)
    rib_core = ribs & (phase > 2.0 / spacing) & (phase < 7.0 / spacing)
    hu = np.where(ribs, 620.0, hu)
    hu = np.where(rib_core, 260.0, hu)
    sternum = (np.abs(X - g.cx) < 14) & (Y < g.cy - Bc + 4) & (Y > g.cy - Bc - 10) & (t > 0.25) & (t < 0.95)
    hu = np.where(sternum & body, 350.0, hu)
    # scapulae above mid-chest, posterolateral in the muscle layer
    if True:
        scap = body & ~cavity & (t > 0.55) & (np.abs(np.abs(X - g.cx) - Ac * 0.62) < Ac * 0.2) & \
            (np.abs(Y - (g.cy + B * 0.78)) < 3.5)
        hu = np.where(scap, 480.0, hu)

    # table (couch) below the patient
    ty = g.cy + g.body_b + rng.uniform(6, 20)
    table = (np.abs(Y - ty - 6 * (X / (g.fov / 2)) ** 2) < 2.5) & (np.abs(X) < g.fov * 0.45)
    hu = np.where(table, 150.0, hu)

    # scanner: PSF blur, correlated noise (kernel), reconstruction circle
    psf = rng.uniform(0.35, 0.8) * 0.7 / max(g.ps, 0.4)
    hu = blur3d(hu, psf, 0.0)
    sigma = rng.uniform(8, 35) * (0.8 + 0.004 * (g.body_a - 130))
    kernel = rng.choice(["soft", "standard", "sharp"])
    noise = rng.standard_normal(hu.shape).astype(np.float32)
    if kernel == "soft":
        noise = blur2d(noise, 0.9)
    elif kernel == "standard":
        noise = blur2d(noise, 0.55)
    else:
        noise = noise - 0.5 * blur2d(noise, 1.0)
    noise /= max(float(noise.std()), 1e-6)
    hu = hu + sigma * noise
    rr = np.sqrt(X ** 2 + Y ** 2)
    hu = np.where(np.broadcast_to(rr > g.fov / 2, hu.shape), -1024.0, hu)
    hu = np.clip(np.round(hu), -1024, 3071).astype(np.int16)

    infection = (infection_w > 0.5) & lung
    lung_u8 = lung.astype(np.uint8)
    inf_u8 = infection.astype(np.uint8)
    if label != "no infection" and not inf_u8.any():
        # never write a study whose label its masks contradict
        raise RuntimeError(f"synth: a {label} study came out without any lesion voxel inside the lung")
    return {"hu": hu, "lung": lung_u8, "infection": inf_u8, "geometry": g, "label": label, "stage": stage,
            "kernel": str(kernel), "noise_sigma": float(sigma),
            "slice_labels": slice_labels_from_masks(label, lung_u8, inf_u8)}


def _pick_voxels(rng, mask: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return np.zeros((0,), dtype=np.int64)
    w = weights.ravel()[idx].astype(np.float64)
    w = w / w.sum()
    return rng.choice(idx, size=k, replace=True, p=w)


def sample_lesions(rng, label, g: Geometry, lung: np.ndarray, trees, hilum, zs, coords, same_side: bool = False):
    """Lesions of one study and its stage. CAP: ``same_side`` keeps only airway points on the chosen side of the
    midline (the retry when the first draw put every lesion in the other lung)."""
    nz, n = lung.shape[0], lung.shape[1]
    lesions: List[Lesion] = []
    Zi, Yi, Xi = np.meshgrid(np.arange(nz), np.arange(n), np.arange(n), indexing="ij")
    if label == "COVID-19":
        stage = str(rng.choice(["early", "progressive", "peak"], p=[0.35, 0.4, 0.25]))
        # subpleural band: lung minus lung eroded by ~12 mm in-plane
        band = lung & ~erode2d(lung, max(1, int(round(12 / g.ps))))
        # lower and posterior predominance
        wz = np.exp(-np.clip(zs[:, None, None] / g.lung_h, 0, 1) * 1.2)
        wy = 1 + 1.5 * (Yi / n)
        wts = (wz * wy).astype(np.float64)
        n_les = int(rng.integers(3, 11 if stage != "early" else 6))
        right = Xi < n / 2  # patient right = low i
        picks = []
        # guarantee both lungs
        for half in (right, ~right):
            p = _pick_voxels(rng, band & half, wts, 1)
            picks.extend(p.tolist())
        picks.extend(_pick_voxels(rng, band, wts, max(0, n_les - 2)).tolist())
        for pi in picks:
            kz, jy, ix = np.unravel_index(pi, lung.shape)
            c = np.array([coords[ix], coords[jy], zs[kz]], dtype=np.float64)
            rxy = rng.uniform(12, 38)
            radii = np.array([rxy, rxy * rng.uniform(0.5, 1.0), rng.uniform(10, 35)])
            if stage == "early":
                kind = "ggo"
            elif stage == "progressive":
                kind = str(rng.choice(["ggo", "paving"], p=[0.5, 0.5]))
            else:
                kind = str(rng.choice(["ggo", "paving", "consolidation"], p=[0.3, 0.3, 0.4]))
            if kind == "consolidation":
                h = rng.uniform(-100, 40)
            else:
                h = rng.uniform(-750, -300)
            lesions.append(Lesion(c, radii, rng.uniform(0, math.pi), kind, h, rim_hu=rng.uniform(-700, -450)))
        return lesions, stage
    # CAP: one lung, a bronchovascular subtree near the hilum
    stage = "consolidation"
    side = float(rng.choice([-1.0, 1.0]))
    tr = trees[side]
    roots = np.unique(tr["branch"][tr["depth"] == 1])
    root = int(rng.choice(roots))
    # all points of that depth-1 branch and its descendants up to depth 3
    br = tr["branch"]
    sub = np.zeros(len(br), dtype=bool)
    frontier = {root}
    for _ in range(3):
        sub |= np.isin(br, list(frontier))
        frontier = {2 * b + 1 for b in frontier} | {2 * b + 2 for b in frontier}
    cand = tr["p"][sub]

    def in_lung(pts: np.ndarray) -> np.ndarray:
        """Which points lie inside the lung mask and more than 15 mm from this side's hilum."""
        ii = np.clip(((pts[:, 0] + g.fov / 2) / g.ps).astype(int), 0, n - 1)
        jj = np.clip(((pts[:, 1] + g.fov / 2) / g.ps).astype(int), 0, n - 1)
        kk = np.clip(np.round((pts[:, 2] - g.z0) / g.dz).astype(int), 0, nz - 1)
        dist = np.linalg.norm(pts - hilum[side][None].astype(np.float32), axis=1)
        return lung[kk, jj, ii] & (dist > 15)

    inl = in_lung(cand)
    if same_side:
        inl &= np.sign(cand[:, 0]) == np.sign(side)
    if inl.sum() >= 3:
        cand = cand[inl]
    else:
        # the chosen subtree runs medially out of the lung (it happens): then any point of this side's tree inside
        # this side's lung; painting keeps only this side's half, so candidates elsewhere would leave a CAP-labelled
        # study without a lesion (seed 3, study 19 did, before this)
        allp = tr["p"]
        cand = allp[in_lung(allp) & (np.sign(allp[:, 0]) == np.sign(side))]
    k = int(rng.integers(4, 9))
    hu_c = rng.uniform(-100, 60)
    for idx in rng.choice(len(cand), size=min(k, len(cand)), replace=False):
        r = rng.uniform(16, 32)
        radii = np.array([r, r * rng.uniform(0.7, 1.0), r * rng.uniform(0.8, 1.4)])
        lesions.append(Lesion(cand[idx].astype(np.float64), radii, rng.uniform(0, math.pi), "consolidation",
                              hu_c + rng.uniform(-15, 15), rim_hu=rng.uniform(-600, -400)))
    # make sure the lesions stay on one side (clip to that lung happens via the lung mask + side mask)
    for les in lesions:
        les.side = side  # type: ignore[attr-defined]
    return lesions, stage


def paint_lesion(rng, les: Lesion, g: Geometry, X, Y, Z, wmap: np.ndarray, humap: np.ndarray) -> None:
    """Adds one lesion to the weight map (max) and the lesion HU map (where it dominates)."""
    nz, n = wmap.shape[0], wmap.shape[1]
    cx, cy, cz = les.center
    rmax = float(les.radii.max()) * 1.4
    i0 = max(0, int((cx - rmax + g.fov / 2) / g.ps)); i1 = min(n, int((cx + rmax + g.fov / 2) / g.ps) + 2)
    j0 = max(0, int((cy - rmax + g.fov / 2) / g.ps)); j1 = min(n, int((cy + rmax + g.fov / 2) / g.ps) + 2)
    k0 = max(0, int((cz - rmax - g.z0) / g.dz)); k1 = min(nz, int((cz + rmax - g.z0) / g.dz) + 2)
    if i1 <= i0 or j1 <= j0 or k1 <= k0:
        return
    x = X[0, 0, i0:i1][None, None, :] - cx
    y = Y[0, j0:j1, 0][None, :, None] - cy
    z = Z[k0:k1, 0, 0][:, None, None] - cz
    ca, sa = math.cos(les.angle), math.sin(les.angle)
    xr = ca * x + sa * y
    yr = -sa * x + ca * y
    d = np.sqrt((xr / les.radii[0]) ** 2 + (yr / les.radii[1]) ** 2 + (z / les.radii[2]) ** 2)
    shape = (k1 - k0, j1 - j0, i1 - i0)
    rough = smooth_noise(rng, shape, max(1.0, 4.0 / g.ps)) if min(shape) > 1 else np.zeros(shape, np.float32)
    d = d + 0.22 * rough
    w = np.clip((1.15 - d) / 0.3, 0, 1).astype(np.float32)  # soft edge: w = 0.5 at d ~ 1.0
    if hasattr(les, "side"):
        side_ok = (np.sign(X[0, 0, i0:i1]) == np.sign(les.side))[None, None, :]  # type: ignore[attr-defined]
        w = w * side_ok
    tex = smooth_noise(rng, shape, max(0.8, 1.5 / g.ps)) if min(shape) > 1 else np.zeros(shape, np.float32)
    if les.kind == "ggo":
        h = les.hu + 40 * tex
    elif les.kind == "paving":
        # reticulation: thickened interlobular septa as bright lines on ground glass
        cells = smooth_noise(rng, shape, max(1.0, 3.5 / g.ps))
        lines = np.abs(cells) < 0.25
        h = les.hu + 30 * tex + np.where(lines, 220.0, 0.0)
    else:
        # consolidation core, ground-glass rim
        core = np.clip((0.85 - d) / 0.25, 0, 1)
        h = les.rim_hu * (1 - core) + les.hu * core + 15 * tex
    sl = (slice(k0, k1), slice(j0, j1), slice(i0, i1))
    cur = wmap[sl]
    take = w > cur
    humap[sl] = np.where(take, h, humap[sl]).astype(np.float32)
    wmap[sl] = np.maximum(cur, w)


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------

def affine_for(g: Geometry) -> np.ndarray:
    """RAS+ affine for data indexed (i: right->left, j: anterior->posterior, k: inferior->superior).

    World position of voxel centre (i, j, k): x_RAS = -(i+0.5)*ps + fov/2 ... i.e. patient left is
    -x in RAS; y_RAS = -(j+0.5)*ps + fov/2 (posterior is -y in RAS); z = z0 + k*dz.
    """
    a = np.eye(4)
    a[0, 0] = -g.ps
    a[1, 1] = -g.ps
    a[2, 2] = g.dz
    a[0, 3] = g.fov / 2 - 0.5 * g.ps
    a[1, 3] = g.fov / 2 - 0.5 * g.ps
    a[2, 3] = g.z0
    return a


def to_nifti_array(zyx: np.ndarray) -> np.ndarray:
    """(Z, Y, X) -> NIfTI data (i, j, k) = (X, Y, Z)."""
    return np.ascontiguousarray(np.transpose(zyx, (2, 1, 0)))


def write_study(study: Dict[str, object], folder: str) -> None:
    import nibabel as nib
    os.makedirs(folder, exist_ok=True)
    g: Geometry = study["geometry"]  # type: ignore[assignment]
    aff = affine_for(g)
    for name, key, dtype in (("scan", "hu", np.int16), ("lung", "lung", np.uint8), ("infection", "infection", np.uint8)):
        img = nib.Nifti1Image(to_nifti_array(study[key]).astype(dtype), aff)  # type: ignore[arg-type]
        img.header.set_xyzt_units("mm", "sec")
        img.set_sform(aff, code=1)
        img.set_qform(aff, code=1)
        if name == "scan":
            img.header["scl_slope"] = 1.0
            img.header["scl_inter"] = 0.0
            img.header["descrip"] = b"covidct synthetic chest CT"
        nib.save(img, os.path.join(folder, f"{name}.nii.gz"))


def parse_classes(s: str) -> List[str]:
    out = []
    for part in s.split(","):
        p = part.strip().lower()
        if p not in CLASS_ALIASES:
            raise SystemExit(f"unknown class {part!r}; use covid, cap, none")
        out.append(CLASS_ALIASES[p])
    return out


def generate_dataset(out: str, n: int, seed: int, classes: Sequence[str] = tuple(CLASS_NAMES),
                     matrix: Sequence[int] = (128, 192), dz_range: Sequence[float] = (5.0, 10.0),
                     n_slices: Optional[int] = None, prefix: str = "syn", start: int = 0,
                     verbose: bool = True) -> List[Tuple[str, str]]:
    """Generates studies start..start+n-1 (class = classes[i % len(classes)]) into ``out``."""
    os.makedirs(out, exist_ok=True)
    rows, slice_rows = [], []
    for i in range(start, start + n):
        label = classes[i % len(classes)]
        rng = study_rng(seed, i)
        st = generate_study(rng, label, matrix, dz_range, n_slices)
        name = f"{prefix}{seed:03d}_{i:04d}"
        write_study(st, os.path.join(out, name))
        rows.append((name, label))
        for k, sl in enumerate(st["slice_labels"]):  # type: ignore[union-attr]
            slice_rows.append((name, k, sl))
        if verbose:
            g = st["geometry"]
            print(f"{name}: {label:13s} {st['stage']:13s} {g.n}x{g.n}x{g.nz} ps {g.ps:.2f} dz {g.dz:.1f} "
                  f"lung {int(st['lung'].sum())} inf {int(st['infection'].sum())}", flush=True)
    mode = "a" if start > 0 and os.path.exists(os.path.join(out, "labels.csv")) else "w"
    with open(os.path.join(out, "labels.csv"), mode, newline="") as f:
        w = csv.writer(f)
        if mode == "w":
            w.writerow(["study", "label"])
        w.writerows(rows)
    with open(os.path.join(out, "slice_labels.csv"), mode, newline="") as f:
        w = csv.writer(f)
        if mode == "w":
            w.writerow(["study", "slice", "label"])
        w.writerows(slice_rows)
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="dataset folder")
    ap.add_argument("--n", type=int, default=30, help="number of studies")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0, help="first study index (append to a dataset)")
    ap.add_argument("--classes", default="covid,cap,none", help="comma list; study i gets classes[i % len]")
    ap.add_argument("--matrix", default="128,192", help="in-plane matrix range min,max (multiples of 16)")
    ap.add_argument("--dz", default="5,10", help="slice spacing range in mm")
    ap.add_argument("--slices", type=int, default=0, help="fixed slice count covering the chest (0: from --dz)")
    ap.add_argument("--prefix", default="syn")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    matrix = [int(v) for v in args.matrix.split(",")]
    if len(matrix) == 1:
        matrix = matrix * 2
    dz = [float(v) for v in args.dz.split(",")]
    if len(dz) == 1:
        dz = dz * 2
    generate_dataset(args.out, args.n, args.seed, parse_classes(args.classes), matrix, dz,
                     args.slices or None, args.prefix, args.start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
