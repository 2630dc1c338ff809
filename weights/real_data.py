#!/usr/bin/env python3
"""The real CT volumes: fetch step, conversion to the dataset layout, reference lung masks, contact sheets.

Nothing here is downloaded by the script: it reads plain clones of public repositories, each at a stated commit,
from one folder (``--clones``), so that a run is reproducible from the commits alone:

    mkdir clones && cd clones
    git clone https://github.com/InsightSoftwareConsortium/ITKElastix && git -C ITKElastix checkout 787db6d
    git clone https://github.com/plotly/dash-vtk && git -C dash-vtk checkout 3219591
    git clone https://github.com/wasserth/TotalSegmentator && git -C TotalSegmentator checkout 0e65a44
    git clone https://github.com/neurolabusc/dcm_qa_ct && git -C dcm_qa_ct checkout d03e30e

(dash-vtk and TotalSegmentator: any later commit that still holds the files works as well.)  Then

    /usr/bin/python3 weights/real_data.py prepare --clones clones --out data/real
    /usr/bin/python3 weights/real_data.py sheets --data data/real --out docs/img/real-ct

``prepare`` converts each DICOM series with dcm2niix (Debian's; it decodes JPEG 2000 and corrects gantry tilt),
brings every volume to the orientation ('L', 'P', 'S') of weights/synth.py (its own affine kept, reoriented), and
writes the dataset layout of docs/training.md:

    <out>/chest/labels.csv                  study,label ('no infection': the scans' findings are not infection;
                                            stage 1 uses only the lung masks)
    <out>/chest/<study>/scan.nii.gz         int16 HU
    <out>/chest/<study>/lung.nii.gz         uint8 reference lung mask (weights/lung_reference.py)
    <out>/chest/<study>/body.nii.gz         uint8 body mask of the same pipeline (step 1)
    <out>/other/<study>/scan.nii.gz         CT that is not a chest (abdomen-pelvis, upper abdomen, head)
    <out>/SOURCES.md                        where each volume comes from, its licence and citation

The reference masks are reviewed on the contact sheets that ``sheets`` draws (axial slices from apex to base with
the mask's outline, and a coronal reformat); ``--pred DIR`` adds a model's masks (``DIR/<study>.lung.nii.gz``, on
the scan's grid) in a second colour.
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402

# (study, kind, clone folder, path inside it, description, licence and citation)
SOURCES: List[Tuple[str, str, str, str, str, str]] = [
    ("itkelastix-00", "chest", "ITKElastix", "examples/data/00",
     "thorax, 141 axial DICOM slices of 512 x 512, 0.98 mm pixels, 2 mm apart (ITKElastix commit 787db6d)",
     "ITKElastix example data, Apache License 2.0 (InsightSoftwareConsortium/ITKElastix)"),
    ("dashvtk-ct-lung", "chest", "dash-vtk", "demos/data/ct_lung",
     "thorax, 30 axial DICOM slices of 512 x 512, 0.65 mm pixels, 8 mm apart",
     "TCIA Lung-PET-CT-Dx (CC BY 4.0): Li, P., Wang, S., Li, T., Lu, J., HuangFu, Y., & Wang, D. (2020). A Large-Scale "
     "CT and PET/CT Dataset for Lung Cancer Diagnosis. The Cancer Imaging Archive. "
     "https://doi.org/10.7937/TCIA.2020.NNC2-0461; via plotly/dash-vtk (MIT)"),
    ("totalseg-abdomen-pelvis", "other", "TotalSegmentator", "tests/reference_files/example_ct.nii.gz",
     "abdomen and pelvis, 122 x 101 x 112 at 3 mm (NIfTI)",
     "TotalSegmentator test data, Apache License 2.0 (wasserth/TotalSegmentator)"),
    ("totalseg-upper-abdomen", "other", "TotalSegmentator", "tests/reference_files/example_ct_dicom",
     "upper abdomen, 20 axial DICOM slices of 512 x 512 (JPEG 2000), 2 mm apart",
     "TotalSegmentator test data, Apache License 2.0 (wasserth/TotalSegmentator)"),
    ("dcmqa-head", "other", "dcm_qa_ct", "In/GE",
     "head, 28 axial DICOM slices of 512 x 512 with 18.5 degree gantry tilt and uneven spacing (dcm2niix resamples "
     "it to 2.6 mm, tilt corrected)",
     "dcm_qa_ct (BSD 2-Clause, Chris Rorden); the GE scan courtesy of Aliza Medical Imaging"),
]


def to_lps(path: str):
    """A NIfTI file reoriented to axcodes ('L','P','S'): (data (X, Y, Z) as stored there, affine)."""
    import nibabel as nib
    from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform
    img = nib.load(path)
    data = np.asarray(img.dataobj)
    if img.dataobj.slope not in (1, None) or img.dataobj.inter not in (0, None):
        data = img.get_fdata(dtype=np.float32)
    tr = ornt_transform(io_orientation(img.affine), axcodes2ornt(("L", "P", "S")))
    out = apply_orientation(data, tr)
    aff = img.affine @ inv_ornt_aff(tr, img.shape[:3])
    return np.ascontiguousarray(out), aff


def save(path: str, xyz: np.ndarray, affine: np.ndarray, dtype) -> None:
    import nibabel as nib
    img = nib.Nifti1Image(xyz.astype(dtype), affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_slope_inter(1, 0)
    nib.save(img, path)


def dicom_to_nifti(folder: str, tmp: str) -> str:
    r = subprocess.run(["dcm2niix", "-z", "y", "-b", "n", "-f", "vol", "-o", tmp, folder],
                       capture_output=True, text=True)
    outs = sorted(glob.glob(os.path.join(tmp, "vol*.nii.gz")))
    if r.returncode != 0 or not outs:
        raise SystemExit(f"dcm2niix failed on {folder}: {r.stdout[-400:]} {r.stderr[-400:]}")
    # a tilted series gives vol.nii.gz and the corrected vol_Tilt_Eq_1.nii.gz: take the corrected one
    tilt = [o for o in outs if "Tilt" in o or "_Eq" in o]
    return (tilt or outs)[-1]


def prepare(clones: str, out: str, only: Optional[List[str]] = None) -> None:
    import lung_reference as lr
    os.makedirs(out, exist_ok=True)
    rows: Dict[str, List[Tuple[str, str]]] = {"chest": [], "other": []}
    for study, kind, repo, sub, desc, lic in SOURCES:
        if only and study not in only:
            continue
        src = os.path.join(clones, repo, sub)
        if not os.path.exists(src):
            raise SystemExit(f"{src}: not found; clone {repo} at the commit named in weights/real_data.py")
        folder = os.path.join(out, kind, study)
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            nii = src if src.endswith((".nii", ".nii.gz")) else dicom_to_nifti(src, tmp)
            xyz, aff = to_lps(nii)
        xyz = np.clip(np.rint(xyz), -32768, 32767)
        save(os.path.join(folder, "scan.nii.gz"), xyz, aff, np.int16)
        if kind == "chest":
            zyx = np.transpose(xyz, (2, 1, 0)).astype(np.float32)
            sp = tuple(float(np.linalg.norm(aff[:3, i])) for i in (2, 1, 0))
            mask, parts = lr.reference_lung_mask(zyx, sp, return_parts=True)
            save(os.path.join(folder, "lung.nii.gz"), np.transpose(mask, (2, 1, 0)), aff, np.uint8)
            save(os.path.join(folder, "body.nii.gz"), np.transpose(parts["body"], (2, 1, 0)), aff, np.uint8)
            s = lr.summary(mask, sp)
            print(f"{study}: {xyz.shape} spacing {tuple(round(v, 3) for v in sp)} lung {s['lung_ml']:.0f} mL, "
                  f"slices {s['first_slice']}..{s['last_slice']}, airway {int(parts['airway'].sum())} voxels")
        else:
            print(f"{study}: {xyz.shape}")
        rows[kind].append((study, "no infection"))
    for kind, rs in rows.items():
        if not rs:
            continue
        path = os.path.join(out, kind, "labels.csv")
        old = []
        if os.path.exists(path):
            with open(path, newline="") as f:
                old = [(r["study"], r["label"]) for r in csv.DictReader(f) if r["study"] not in {s for s, _ in rs}]
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["study", "label"])
            w.writerows(sorted(old + rs))
    with open(os.path.join(out, "SOURCES.md"), "w") as f:
        f.write("# Real CT volumes (weights/real_data.py prepare)\n\n| study | kind | from | what | licence, citation |\n"
                "|---|---|---|---|---|\n")
        for study, kind, repo, sub, desc, lic in SOURCES:
            f.write(f"| {study} | {kind} | {repo}/{sub} | {desc} | {lic} |\n")


# ----------------------------------------------------------------------------------------------
# Contact sheets
# ----------------------------------------------------------------------------------------------

def _window(a: np.ndarray, lo: float = -1150.0, hi: float = 350.0) -> np.ndarray:
    return (np.clip((a - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def _outline(m: np.ndarray) -> np.ndarray:
    m = m.astype(bool)
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    return m & ~inner


def _tile(img: np.ndarray, masks: List[Tuple[np.ndarray, Tuple[int, int, int]]], size: Tuple[int, int]):
    from PIL import Image
    g = np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR))
    rgb = np.repeat(g[..., None], 3, axis=2)
    for m, col in masks:
        mm = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 127
        rgb[_outline(mm)] = col
    return Image.fromarray(rgb)


def contact_sheet(scan: str, lung: str, out_png: str, title: str, pred: Optional[str] = None,
                  n_axial: int = 12, tile: int = 300, pred_label: str = "model") -> None:
    """Axial slices from the top of the lungs to below their base (lung window, reference outline in green, a
    model's in magenta) and a coronal reformat through the lung centre, in one PNG."""
    from PIL import Image, ImageDraw
    import nibabel as nib
    hu = np.transpose(np.asarray(nib.load(scan).dataobj), (2, 1, 0)).astype(np.float32)
    ref = np.transpose(np.asarray(nib.load(lung).dataobj), (2, 1, 0)) > 0
    prd = np.transpose(np.asarray(nib.load(pred).dataobj), (2, 1, 0)) > 0 if pred else None
    aff = nib.load(scan).affine
    dz, dy, dx = (float(np.linalg.norm(aff[:3, i])) for i in (2, 1, 0))
    zs = np.flatnonzero(ref.reshape(ref.shape[0], -1).any(1))
    lo, hi = (int(zs[0]), int(zs[-1])) if len(zs) else (0, ref.shape[0] - 1)
    lo = max(0, lo - max(1, int(round(15 / dz))))  # a little below the base: liver, bowel must stay out
    ks = np.unique(np.linspace(hi, lo, n_axial).round().astype(int))[::-1]
    green, magenta = (40, 230, 60), (255, 40, 220)
    tiles = []
    for k in ks:
        ms = [(ref[k], green)] + ([(prd[k], magenta)] if prd is not None else [])
        t = _tile(_window(hu[k]), ms, (tile, int(round(tile * hu.shape[1] * dy / (hu.shape[2] * dx)))))
        ImageDraw.Draw(t).text((4, 2), f"k={k}", fill=(255, 255, 0))
        tiles.append(t)
    yc = int(np.round(np.mean(np.nonzero(ref)[1]))) if ref.any() else hu.shape[1] // 2
    cor = _window(hu[::-1, yc, :])
    ms = [(ref[::-1, yc, :], green)] + ([(prd[::-1, yc, :], magenta)] if prd is not None else [])
    ch = int(round(tile * 2 * hu.shape[0] * dz / (hu.shape[2] * dx)))
    ctile = _tile(cor, ms, (tile * 2, max(ch, 40)))
    cols = 4
    th = max(t.size[1] for t in tiles)
    rows = (len(tiles) + cols - 1) // cols
    W = cols * tile + tile * 2 + 10
    H = max(rows * th, ctile.size[1]) + 24
    sheet = Image.new("RGB", (W, H), (0, 0, 0))
    d = ImageDraw.Draw(sheet)
    legend = title + "   green: reference mask" + (f"   magenta: {pred_label}" if prd is not None else "")
    d.text((4, 4), legend, fill=(255, 255, 255))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * tile, 24 + (i // cols) * th))
    sheet.paste(ctile, (cols * tile + 10, 24))
    d.text((cols * tile + 14, 26), f"coronal j={yc}", fill=(255, 255, 0))
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    sheet.convert("P", palette=Image.ADAPTIVE, colors=96).save(out_png, optimize=True)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--clones", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--only", nargs="*")
    s = sub.add_parser("sheets")
    s.add_argument("--data", required=True, help="the --out of prepare")
    s.add_argument("--out", required=True, help="folder for <study>.png")
    s.add_argument("--pred", help="folder with <study>.lung.nii.gz of a model, drawn in magenta")
    s.add_argument("--suffix", default="", help="added to the PNG names")
    s.add_argument("--pred-label", default="model", help="the legend's name for --pred")
    a = ap.parse_args(argv)
    if a.cmd == "prepare":
        prepare(a.clones, a.out, a.only)
    else:
        root = os.path.join(a.data, "chest")
        with open(os.path.join(root, "labels.csv"), newline="") as f:
            studies = [r["study"] for r in csv.DictReader(f)]
        for st in studies:
            pred = os.path.join(a.pred, f"{st}.lung.nii.gz") if a.pred else None
            out = os.path.join(a.out, f"{st}{a.suffix}.png")
            if pred and not os.path.exists(pred):
                pred = None
            contact_sheet(os.path.join(root, st, "scan.nii.gz"), os.path.join(root, st, "lung.nii.gz"), out, st, pred,
                          pred_label=a.pred_label)
            print(f"{out} ({os.path.getsize(out)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
