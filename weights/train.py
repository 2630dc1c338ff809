#!/usr/bin/env python3
"""Train the two-stage COVID-19 / CAP model (weights/reference) on a dataset folder.

The recipe of the paper (docs/training.md): dice loss for the lung mask and the infection map,
cross-entropy for the slice and patient classes, Adam, and a staged schedule:

  1. ``seg``   stage 1 (GR-U-Net) alone, lung dice;
  2. ``cls``   stage 2 (classifier) fed the ground-truth lung mask: infection dice + slice CE;
  3. ``joint`` everything together (teacher-forced lung mask for stage 2) + the patient head's CE;
  4. ``patient`` (an addition to the paper) both stages fixed: the patient head alone on whole studies, pooling
     every slice the inference path uses (eval mode, predicted lung mask), as it does at inference.

Each step takes ``--studies-per-batch`` studies and ``--slices-per-study`` slices of each (the
patient head pools the slices of one study), with CT augmentation (left-right flip, small
rotations, scales and shifts, HU noise and offset).  Validation every epoch on whole studies with
the predicted lung mask: lung Dice, infection Dice, slice and patient accuracy, per-class F1, AUC.
Checkpoints ``last.pt`` (every epoch, for ``--resume``) and ``best.pt``; at the end the best
weights are exported through weights/export.py with metadata saying what they were trained on.

Example (the committed small model, weights/README.md):
    /usr/bin/python3 weights/synth.py --out data/train --n 210 --seed 1
    /usr/bin/python3 weights/synth.py --out data/val --n 30 --seed 2
    /usr/bin/python3 weights/train.py --train data/train --val data/val --config tiny --input-size 64 \\
        --out runs/small --export weights/trained/synthetic-small.safetensors --dtype f16 --seed 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Dict, List, Optional, Tuple

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import dataset as ds  # noqa: E402
import export  # noqa: E402
from reference import ModelConfig, build_model, get_config, normalise  # noqa: E402
from reference.losses import dice_loss  # noqa: E402

INTENDED_USE_SYNTHETIC = "trained on synthetic data, not for diagnosis"


# ----------------------------------------------------------------------------------------------
# Batches and augmentation
# ----------------------------------------------------------------------------------------------

def sample_batch(studies: List[ds.Prepared], rng: np.random.Generator, n_studies: int, n_slices: int,
                 lung_only: float, infected: float = 0.0) -> Dict[str, torch.Tensor]:
    """``n_studies`` random studies, ``n_slices`` slices each.  In a study with infected slices (slice label not
    ``no infection``) a fraction ``infected`` of its slices is drawn among those; of the rest, a fraction
    ``lung_only`` among slices whose ground-truth lung covers >= 1% of the slice, the others among all slices."""
    pick = rng.choice(len(studies), size=n_studies, replace=len(studies) < n_studies)
    img, lung, inf, sl, pid, plab = [], [], [], [], [], []
    for j, si in enumerate(pick):
        st = studies[int(si)]
        z = st.image.shape[0]
        with_inf = np.flatnonzero(st.slice_labels.numpy() != ds.NO_INFECTION)
        n_i = int(round(n_slices * infected)) if len(with_inf) else 0
        ks = list(rng.choice(with_inf, size=n_i, replace=len(with_inf) < n_i)) if n_i else []
        with_lung = np.flatnonzero(st.lung_area.numpy() >= 0.01)
        n_l = int(round((n_slices - n_i) * lung_only)) if len(with_lung) else 0
        ks += list(rng.choice(with_lung, size=n_l, replace=len(with_lung) < n_l)) if n_l else []
        n_r = n_slices - n_i - n_l
        ks += list(rng.choice(z, size=n_r, replace=z < n_r))
        ks = torch.as_tensor(np.array(ks, dtype=np.int64))
        img.append(st.image[ks].float())
        lung.append(st.lung[ks].float() if st.lung is not None else torch.zeros_like(st.image[ks]).float())
        inf.append(st.infection[ks].float() if st.infection is not None else torch.zeros_like(st.image[ks]).float())
        sl.append(st.slice_labels[ks])
        pid.append(torch.full((len(ks),), j, dtype=torch.long))
        plab.append(st.label)
    return {
        "image": torch.cat(img)[:, None],
        "lung_mask": torch.cat(lung)[:, None],
        "infection_mask": torch.cat(inf)[:, None],
        "slice_label": torch.cat(sl),
        "patient_ids": torch.cat(pid),
        "patient_label": torch.tensor(plab, dtype=torch.long),
    }


def augment(b: Dict[str, torch.Tensor], gen: torch.Generator, window_span: float,
            rot_deg: float = 10.0, scale: float = 0.1, shift: float = 0.05, flip_p: float = 0.5,
            noise_hu: float = 20.0, offset_hu: float = 15.0) -> Dict[str, torch.Tensor]:
    """Random affine (rotation, isotropic scale, shift, left-right flip) applied to the image (bilinear, outside =
    window 0 = air) and masks (bilinear then > 0.5), then HU noise and offset in window units (clamped to [0, 1]).
    Rotation, scale, shift and noise are drawn per slice; the flip and the HU offset per study (``b["patient_ids"]``):
    all slices of a study are flipped together, so a one-sided (CAP-like) study stays one-sided across the slices the
    patient head pools, and a study keeps one calibration."""
    x = b["image"]
    n = x.shape[0]
    u = lambda: torch.rand(n, generator=gen) * 2 - 1  # noqa: E731
    ang = u() * math.radians(rot_deg)
    sc = 1 + u() * scale
    ids, group = torch.unique(b["patient_ids"], sorted=True, return_inverse=True)
    n_groups = len(ids)
    flip = torch.where(torch.rand(n_groups, generator=gen) < flip_p, -1.0, 1.0)[group]
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * flip
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * flip
    theta[:, 1, 1] = cos
    theta[:, 0, 2] = u() * shift * 2
    theta[:, 1, 2] = u() * shift * 2
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = dict(b)
    out["image"] = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    for k in ("lung_mask", "infection_mask"):
        out[k] = (F.grid_sample(b[k], grid, mode="bilinear", padding_mode="zeros", align_corners=False) > 0.5).float()
    sig = torch.rand(n, 1, 1, 1, generator=gen) * noise_hu / window_span
    off = ((torch.rand(n_groups, generator=gen) * 2 - 1) * offset_hu / window_span)[group].view(n, 1, 1, 1)
    body = out["image"] > 0
    noisy = out["image"] + off + sig * torch.randn(out["image"].shape, generator=gen)
    out["image"] = torch.where(body, noisy, out["image"]).clamp(0, 1)
    return out


def load_real(folders: List[str], cfg, exclude: List[str], log=print) -> List[ds.Prepared]:
    """Real CT studies with reference lung masks (weights/real_data.py) for stage 1, on the model grid; each gets
    ``dz`` (slice spacing, mm) for the thick-slice augmentation.  ``exclude``: study names left out (the held-out
    volume of a leave-one-volume-out fold)."""
    import nibabel as nib
    out = []
    for root in folders:
        for st in ds.load_dataset(root, cfg, log=log):
            if st.name in exclude:
                continue
            if st.lung is None:
                raise SystemExit(f"{root}/{st.name}: a real study for stage 1 needs lung.nii.gz")
            zooms = nib.load(os.path.join(root, st.name, "scan.nii.gz")).header.get_zooms()
            st.dz = float(zooms[2])  # real_data.py writes ('L','P','S'): the third axis is the body axis
            out.append(st)
    missing = [e for e in exclude if e not in {s.name for s in out} and not any(
        os.path.isdir(os.path.join(r, e)) for r in folders)]
    if missing:
        raise SystemExit(f"--real-exclude {missing}: no such study in {folders}")
    return out


def sample_real_batch(studies: List[ds.Prepared], rng: np.random.Generator, n_studies: int, n_slices: int,
                      lung_only: float, thick_mm: float = 10.0) -> Dict[str, torch.Tensor]:
    """Slices of real studies for stage 1 (lung masks only; the other targets are empty).  Each slice is, with
    probability 1/2, a thicker slice: the mean of w adjacent slices (w drawn so that w x dz <= ``thick_mm``), with the
    centre slice's mask, as a scanner reconstructing thicker slices would average them."""
    pick = rng.choice(len(studies), size=n_studies, replace=len(studies) < n_studies)
    img, lung = [], []
    for si in pick:
        st = studies[int(si)]
        z = st.image.shape[0]
        with_lung = np.flatnonzero(st.lung_area.numpy() >= 0.01)
        n_l = int(round(n_slices * lung_only)) if len(with_lung) else 0
        ks = list(rng.choice(with_lung, size=n_l, replace=len(with_lung) < n_l)) if n_l else []
        ks += list(rng.choice(z, size=n_slices - n_l, replace=z < n_slices - n_l))
        wmax = max(1, int(thick_mm // max(getattr(st, "dz", thick_mm), 1e-3)))
        for k in ks:
            w = int(rng.integers(2, wmax + 1)) if wmax > 1 and rng.random() < 0.5 else 1
            a = max(0, int(k) - (w - 1) // 2)
            b = min(z, a + w)
            img.append(st.image[a:b].float().mean(0))
            lung.append(st.lung[int(k)].float())
    n = len(img)
    zeros = torch.zeros(n, 1, *img[0].shape)
    return {"image": torch.stack(img)[:, None], "lung_mask": torch.stack(lung)[:, None], "infection_mask": zeros,
            "slice_label": torch.full((n,), ds.NO_INFECTION, dtype=torch.long),
            "patient_ids": torch.arange(n_studies).repeat_interleave(n_slices),
            "patient_label": torch.full((n_studies,), ds.NO_INFECTION, dtype=torch.long)}


def concat_batches(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Two batches as one (the second's patient ids shifted past the first's)."""
    out = {k: torch.cat([a[k], b[k]]) for k in ("image", "lung_mask", "infection_mask", "slice_label")}
    out["patient_ids"] = torch.cat([a["patient_ids"], b["patient_ids"] + int(a["patient_ids"].max()) + 1])
    out["patient_label"] = torch.cat([a["patient_label"], b["patient_label"]])
    return out


NOT_COVID = -1  # the slice label of a real 2-D slice known only to be "not COVID-19" (a partial label)


def load_slices2d(path: str, sets: List[str]) -> Tuple[torch.Tensor, torch.Tensor]:
    """The real 2-D slices of ``sets`` in a file of ``slices2d.py prepare``: windowed images (N, 1, S, S) and their
    labels (1 COVID-19, 0 not)."""
    import slices2d
    x, info = slices2d.load(path)
    keep = [i for i, s_ in enumerate(info["sets"]) if s_ in sets]
    if not keep:
        raise SystemExit(f"{path}: no slices of the sets {sets} (it holds {sorted(set(info['sets']))})")
    return x[keep], torch.tensor([int(info["labels"][i]) for i in keep], dtype=torch.long)


def sample_slices2d(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator, n: int) -> Dict[str, torch.Tensor]:
    """``n`` random real 2-D slices as a batch, each its own patient: slice label COVID-19 for a COVID slice and
    ``NOT_COVID`` for the others (their source knows only "not COVID-19": other lung diseases, pneumonia among them,
    or none); no masks (zeros, which ``step_losses`` leaves out for these rows: ``n2d``)."""
    idx = torch.as_tensor(rng.choice(len(x), size=n, replace=len(x) < n))
    img = x[idx]
    zeros = torch.zeros_like(img)
    lab = torch.where(y[idx] == 1, ds.CLASS_NAMES.index("COVID-19"), NOT_COVID)
    return {"image": img, "lung_mask": zeros, "infection_mask": zeros.clone(), "slice_label": lab,
            "patient_ids": torch.arange(n), "patient_label": torch.full((n,), ds.NO_INFECTION, dtype=torch.long)}


def scanner_augment(x: torch.Tensor, gen: torch.Generator, p_kernel: float = 0.5, p_res: float = 0.3) -> torch.Tensor:
    """Reconstruction kernels and pixel sizes (per slice, on windowed slices (N, 1, H, W) in [0, 1]): with
    probability ``p_kernel`` a smooth kernel (Gaussian blur, sigma 0.4-1.2 px) or a sharp one (unsharp mask,
    amount 0.3-1.5), half each; with probability ``p_res`` a coarser pixel (bilinear down to 50-85 % of the size and
    back up).  Outside air (0) stays 0."""
    n, _, h, w = x.shape
    out = x.clone()
    r = torch.rand(n, 3, generator=gen)
    for i in range(n):
        xi = out[i:i + 1]
        if r[i, 0] < p_kernel:
            sig = 0.4 + 0.8 * float(torch.rand(1, generator=gen))
            rad = max(1, int(math.ceil(2.5 * sig)))
            t = torch.arange(-rad, rad + 1, dtype=torch.float32)
            k1 = torch.exp(-0.5 * (t / sig) ** 2)
            k1 = k1 / k1.sum()
            pad = F.pad(xi, (rad, rad, rad, rad), mode="replicate")
            bl = F.conv2d(F.conv2d(pad, k1.view(1, 1, 1, -1)), k1.view(1, 1, -1, 1))
            if r[i, 1] < 0.5:
                xi = bl
            else:
                amt = 0.3 + 1.2 * float(torch.rand(1, generator=gen))
                xi = xi + amt * (xi - bl)
        if r[i, 2] < p_res:
            f = 0.5 + 0.35 * float(torch.rand(1, generator=gen))
            small = F.interpolate(xi, size=(max(8, int(h * f)), max(8, int(w * f))), mode="bilinear", align_corners=False)
            xi = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        out[i:i + 1] = torch.where(x[i:i + 1] > 0, xi.clamp(0, 1), x[i:i + 1])
    return out


# ----------------------------------------------------------------------------------------------
# Losses per stage
# ----------------------------------------------------------------------------------------------

def stage2_forward(model, windowed: torch.Tensor, lung_mask: torch.Tensor, patient_ids: torch.Tensor,
                   with_patient: bool) -> Dict[str, torch.Tensor]:
    """Stage 2 + patient head fed the ground-truth mask, without running stage 1 (same arithmetic
    as TwoStageModel.forward with ``lung_mask=``)."""
    pre = model.config.preprocess
    mask = (lung_mask > 0.5).to(windowed.dtype)
    masked = torch.where(mask > 0, windowed, torch.full_like(windowed, pre.outside_mask_value))
    c = model.cls(normalise(masked, pre))
    h, w = windowed.shape[-2:]
    out = dict(c)
    out["infection_prob"] = F.interpolate(c["infection_prob_s8"], size=(h, w), mode="bilinear", align_corners=False)
    if with_patient:
        used = mask.mean(dim=(1, 2, 3)) >= pre.lung_area_threshold
        logits, ok = [], []
        for pid in torch.unique(patient_ids, sorted=True):
            sel = (patient_ids == pid) & used
            if int(sel.sum()) == 0:
                ok.append(False)
                logits.append(torch.zeros(model.config.cls.num_classes))
                continue
            e = c["slice_embedding"][sel]
            ok.append(True)
            logits.append(model.patient(torch.cat([e.mean(0), e.max(0).values])[None])[0])
        out["patient_logits"] = torch.stack(logits)
        out["patient_ok"] = torch.tensor(ok)
    return out


def batch_dice_loss(prob: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft dice with one ratio over the whole batch ("batch dice", as nnU-Net): unlike the per-slice mean of
    ``dice_loss``, slices without lesion do not score a perfect 0 for an empty map, so an all-empty infection map is
    not a minimum the loss can settle in (docs/training.md, "The recipe")."""
    g = target.to(prob.dtype)
    return 1.0 - (2.0 * (prob * g).sum() + smooth) / (prob.sum() + g.sum() + smooth)


def infection_cell_ce(logits_s8: torch.Tensor, mask: torch.Tensor, lesion_weight: float = 9.0) -> torch.Tensor:
    """Cross-entropy of the infection logits on their own grid (B, 2, h8, w8) against the fraction of each cell the
    lesion mask covers (area pooling; soft two-class target), cells weighted 1 + lesion_weight x fraction: a
    per-pixel signal for the lesion map that the dice term alone gives only weakly at the start."""
    t = F.adaptive_avg_pool2d(mask.to(logits_s8.dtype), logits_s8.shape[-2:])
    target = torch.cat([1 - t, t], dim=1)
    ce = -(target * torch.log_softmax(logits_s8, dim=1)).sum(dim=1, keepdim=True)
    return (ce * (1 + lesion_weight * t)).mean()


def step_losses(model, b: Dict[str, torch.Tensor], stage: str, seg_bce: float,
                with_seg: bool = True, inf_dice: str = "slice", inf_ce: float = 0.0,
                slice_weights: Optional[torch.Tensor] = None, patient_weight: float = 1.0,
                stage2_mask: str = "truth", n2d: int = 0, slices2d_weight: float = 1.0) -> Dict[str, torch.Tensor]:
    """The losses of one step.  ``inf_dice``: 'slice' (per-slice soft dice, the reference's dice_loss) or 'batch'
    (batch_dice_loss); ``inf_ce`` > 0 adds that weight x infection_cell_ce; ``slice_weights`` (3,) weights the slice
    cross-entropy per class; ``patient_weight`` scales the joint stage's patient cross-entropy; ``stage2_mask``: the
    lung mask stage 2 gets, 'truth' (teacher forcing) or 'predicted' (stage 1's mask of the same augmented slices,
    computed without gradient, as at inference).  ``n2d``: the batch's last ``n2d`` rows are real 2-D slices
    (``sample_slices2d``): left out of the infection losses and of ``slice_ce``; their own term
    ``slices2d_ce`` (times ``slices2d_weight``) is -log P(COVID-19) for a COVID slice and -log (1 - P(COVID-19)) for a
    ``NOT_COVID`` one (cls stage only)."""
    if n2d and (stage != "cls" or stage2_mask != "predicted"):
        raise ValueError("real 2-D slices (n2d) train only in the cls stage with stage2_mask='predicted' (they have "
                         "no lung mask)")
    losses: Dict[str, torch.Tensor] = {}
    pre = model.config.preprocess
    logits = None
    if stage in ("seg", "joint") and with_seg:
        logits = model.seg(normalise(b["image"], pre))
        prob = torch.sigmoid(logits)
        losses["lung_dice"] = dice_loss(prob, b["lung_mask"])
        if seg_bce > 0:
            losses["lung_bce"] = seg_bce * F.binary_cross_entropy_with_logits(logits, b["lung_mask"])
    if stage in ("cls", "joint"):
        mask = b["lung_mask"]
        if stage2_mask == "predicted":
            if logits is None:
                with torch.no_grad():
                    logits = model.seg(normalise(b["image"], pre))
            mask = (torch.sigmoid(logits.detach()) > pre.lung_threshold).to(b["image"].dtype)
        o = stage2_forward(model, b["image"], mask, b["patient_ids"], with_patient=(stage == "joint"))
        dl = batch_dice_loss if inf_dice == "batch" else dice_loss
        r = slice(0, b["image"].shape[0] - n2d)  # the rows with masks and a class label
        losses["infection_dice"] = dl(o["infection_prob"][r], b["infection_mask"][r])
        if inf_ce > 0:
            losses["infection_ce"] = inf_ce * infection_cell_ce(o["infection_logits_s8"][r], b["infection_mask"][r])
        losses["slice_ce"] = F.cross_entropy(o["slice_logits"][r], b["slice_label"][r], weight=slice_weights)
        if n2d:
            logp = torch.log_softmax(o["slice_logits"][-n2d:], 1)
            covid = ds.CLASS_NAMES.index("COVID-19")
            rest = [c for c in range(logp.shape[1]) if c != covid]
            per = torch.where(b["slice_label"][-n2d:] == covid, -logp[:, covid], -torch.logsumexp(logp[:, rest], 1))
            losses["slices2d_ce"] = slices2d_weight * per.mean()
        if stage == "joint" and bool(o["patient_ok"].any()):
            ok = o["patient_ok"]
            losses["patient_ce"] = patient_weight * F.cross_entropy(o["patient_logits"][ok], b["patient_label"][ok])
    losses["total"] = sum(losses.values())
    return losses


@torch.no_grad()
def embedding_bank(model, studies: List[ds.Prepared], device: str) -> List[tuple]:
    """(slice embeddings of the slices the inference path uses, patient label) per training study: eval-mode forward
    with the predicted lung mask (dataset.infer_study, exactly what the patient head sees at inference); studies where
    no slice is used are left out."""
    model.eval()
    bank = []
    for st in studies:
        o = ds.infer_study(model, st)
        if bool(o["slice_used"].any()):
            bank.append((o["slice_embedding"][o["slice_used"]].to(device), int(st.label)))
    return bank


def patient_step_loss(model, bank: List[tuple], rng: np.random.Generator, n_studies: int,
                      keep: tuple = (0.5, 1.0)) -> torch.Tensor:
    """Patient cross-entropy on ``n_studies`` studies of the bank, each pooled (mean, max) over a random subset of its
    used slices (each slice kept with a probability drawn from ``keep``, at least one): the head learns from whole
    studies, not from the few slices a joint-stage batch holds."""
    pooled, labels = [], []
    for i in rng.choice(len(bank), size=n_studies, replace=len(bank) < n_studies):
        e, lab = bank[int(i)]
        sel = torch.from_numpy(rng.random(len(e)) < rng.uniform(*keep))
        if not bool(sel.any()):
            sel[int(rng.integers(len(e)))] = True
        e = e[sel.to(e.device)]
        pooled.append(torch.cat([e.mean(0), e.max(0).values]))
        labels.append(lab)
    logits = model.patient(torch.stack(pooled))
    return F.cross_entropy(logits, torch.tensor(labels, device=logits.device))


# ----------------------------------------------------------------------------------------------
# Pretrained backbones
# ----------------------------------------------------------------------------------------------

def load_pretrained(model, paths: List[str], log=print) -> None:
    """Loads torchvision EfficientNet ImageNet state dicts (keys ``features.<i>...``; the
    classifier keys are ignored) into the stage-1 encoder (features 0..4) and/or the stage-2
    backbone, wherever every tensor's shape matches.  A file matching neither is an error."""
    for path in paths:
        sd = torch.load(path, map_location="cpu")
        if isinstance(sd, dict) and "state_dict" in sd:
            sd = sd["state_dict"]
        feats = {k: v for k, v in sd.items() if k.startswith("features.")}
        if not feats:
            raise SystemExit(f"{path}: no 'features.*' tensors; expected a torchvision EfficientNet state dict")
        used = False
        for name, mod in (("seg.encoder", model.seg.encoder), ("cls.backbone", model.cls.backbone)):
            own = mod.state_dict()
            sub = {k: v for k, v in feats.items() if k in own}
            wanted = [k for k in own if not k.endswith("num_batches_tracked")]
            if all(k in sub and sub[k].shape == own[k].shape for k in wanted):
                mod.load_state_dict({**own, **sub})
                log(f"pretrained {os.path.basename(path)} -> {name} ({len(wanted)} tensors)")
                used = True
        if not used:
            raise SystemExit(f"{path}: shapes match neither the stage-1 encoder ({model.config.seg.encoder}) "
                             f"nor the classifier backbone ({model.config.cls.backbone})")


# ----------------------------------------------------------------------------------------------
# Main loop
# ----------------------------------------------------------------------------------------------

def checkpoint_state(path: str):
    """The model state dict in ``path`` (a train.py checkpoint: best.pt / last.pt, ``{'state_dict': sd}``, a plain
    state dict, or an exported .safetensors file), how to name it in the log (the path, with the checkpoint's epoch
    when it records one) and the ModelConfig dict it records (None for a plain state dict), the file read once."""
    if path.endswith(".safetensors"):
        model = export.load_model(path)
        return model.state_dict(), path, model.config.to_dict()
    ck = torch.load(path, map_location="cpu")
    sd = ck.get("model", ck.get("state_dict", ck)) if isinstance(ck, dict) else ck
    epoch = f" (epoch {int(ck['epoch']) + 1})" if isinstance(ck, dict) and "epoch" in ck else ""
    cfg = ck.get("config") if isinstance(ck, dict) else None
    return sd, path + epoch, cfg


def checkpoint_weights(path: str):
    """``checkpoint_state`` without the config: the state dict and its name for the log."""
    sd, name, _ = checkpoint_state(path)
    return sd, name


def stage_of(epoch: int, a) -> str:
    if epoch < a.seg_epochs:
        return "seg"
    if epoch < a.seg_epochs + a.cls_epochs:
        return "cls"
    if epoch < a.seg_epochs + a.cls_epochs + a.joint_epochs:
        return "joint"
    return "patient"


def lr_at(epoch: int, step: int, steps: int, a) -> float:
    """Cosine decay from --lr to --lr * 0.05 within each stage."""
    bounds = [0, a.seg_epochs, a.seg_epochs + a.cls_epochs, a.seg_epochs + a.cls_epochs + a.joint_epochs]
    bounds.append(bounds[-1] + a.patient_epochs)
    for i in range(4):
        if bounds[i] <= epoch < bounds[i + 1]:
            n = (bounds[i + 1] - bounds[i]) * steps
            t = ((epoch - bounds[i]) * steps + step) / max(n, 1)
            return a.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))
    return a.lr * 0.05


def score_of(summary: Dict[str, object], stage: str) -> float:
    s = summary
    if stage == "seg":
        return float(s["lung_dice"])
    v = float(s["patient_accuracy"]) + float(s["lung_dice"]) + 0.5 * float(np.nan_to_num(s["infection_dice"]))
    return v + 0.5 * float(s["slice_accuracy"])


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="training dataset folder (layout: docs/training.md)")
    ap.add_argument("--val", nargs="*", default=[],
                    help="validation dataset folder(s), joined (default: --val-fraction of --train)")
    ap.add_argument("--val-fraction", type=float, default=0.15)
    ap.add_argument("--config", choices=["tiny", "default"], default="default")
    ap.add_argument("--config-json", help="full ModelConfig JSON (overrides --config)")
    ap.add_argument("--classifier-backbone", help="efficientnet_b0..b7 (overrides the config's)")
    ap.add_argument("--input-size", type=int, help="model input size (overrides the config's)")
    ap.add_argument("--pretrained", nargs="*", default=[], help="torchvision EfficientNet ImageNet state dict file(s)")
    ap.add_argument("--out", required=True, help="run folder (checkpoints, history.json)")
    ap.add_argument("--resume", help="checkpoint to resume from (e.g. <out>/last.pt)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seg-epochs", type=int, default=20)
    ap.add_argument("--cls-epochs", type=int, default=30)
    ap.add_argument("--joint-epochs", type=int, default=20)
    ap.add_argument("--patient-epochs", type=int, default=0,
                    help="epochs of the patient stage after joint: both stages fixed, the patient head alone on whole "
                         "training studies (slice embeddings computed once, eval mode, predicted lung mask)")
    ap.add_argument("--patient-batch", type=int, default=16, help="studies per step of the patient stage")
    ap.add_argument("--steps-per-epoch", type=int, default=0, help="0: one pass over the training studies")
    ap.add_argument("--studies-per-batch", type=int, default=2)
    ap.add_argument("--slices-per-study", type=int, default=8)
    ap.add_argument("--lung-slices", type=float, default=0.75, help="fraction of sampled slices drawn among lung slices")
    ap.add_argument("--infected-slices", type=float, default=0.0,
                    help="fraction of an infected study's sampled slices drawn among its infected slices (0: no "
                         "oversampling; the lung-slice fraction applies to the rest)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seg-bce", type=float, default=0.0, help="extra BCE weight on the lung logits (paper: 0)")
    ap.add_argument("--inf-dice", choices=["batch", "slice"], default="batch",
                    help="infection dice over the whole batch (default) or per slice (the reference's dice_loss; an "
                         "empty map scores 0 on every lesion-free slice, so training settles on empty maps)")
    ap.add_argument("--inf-ce", type=float, default=1.0,
                    help="weight of the cell-wise cross-entropy on the infection logits (train.infection_cell_ce; "
                         "0: dice alone, as the paper)")
    ap.add_argument("--slice-class-weights", choices=["none", "sqrt"], default="sqrt",
                    help="weight the slice cross-entropy per class by 1/sqrt(frequency) of the training slices' "
                         "labels (normalised to mean 1), or not")
    ap.add_argument("--patient-weight", type=float, default=1.0,
                    help="weight of the patient cross-entropy in the joint stage (the paper: 1)")
    ap.add_argument("--stage2-mask", choices=["truth", "predicted"], default="truth",
                    help="lung mask fed to stage 2 in the cls and joint stages: the ground truth (teacher forcing, the "
                         "paper's) or stage 1's own prediction, as at inference")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--real", nargs="*", default=[],
                    help="dataset folders of real CT with reference lung masks (weights/real_data.py): mixed into the "
                         "stage-1 (seg) batches, with thick-slice, kernel and pixel-size augmentation")
    ap.add_argument("--real-exclude", nargs="*", default=[], help="real studies left out (leave-one-volume-out)")
    ap.add_argument("--mix", nargs="*", default=[],
                    help="dataset folders of labelled real studies with lung and infection masks (weights/lesions.py: "
                         "real lungs with inserted lesions, and without): --mix-studies-per-batch of them join every "
                         "seg, cls and joint step (with the kernel and pixel-size augmentation), and the patient "
                         "stage's bank (--mix-patient-share)")
    ap.add_argument("--mix-studies-per-batch", type=int, default=2)
    ap.add_argument("--slices2d", help="real 2-D slices (a file of slices2d.py prepare at --input-size): "
                    "--slices2d-per-batch of them join every cls step, with a partial label (COVID-19, or not "
                    "COVID-19) and no mask losses (step_losses, n2d); needs --stage2-mask predicted")
    ap.add_argument("--slices2d-sets", nargs="*", default=["sarscov2"],
                    help="the sets of --slices2d to train on (the others stay for evaluation)")
    ap.add_argument("--slices2d-per-batch", type=int, default=4)
    ap.add_argument("--slices2d-weight", type=float, default=1.0)
    ap.add_argument("--mix-patient-share", type=float, default=0.33,
                    help="share of the patient stage's draws that are --mix studies (their bank entries repeated)")
    ap.add_argument("--real-studies-per-batch", type=int, default=2,
                    help="real studies per seg step (each --slices-per-study slices), besides --studies-per-batch "
                         "synthetic ones")
    ap.add_argument("--scale-aug", type=float, default=0.1, help="isotropic scale range of the affine augmentation")
    ap.add_argument("--dropout", type=float, help="slice-head dropout (config cls.dropout; training only, default 0.5)")
    ap.add_argument("--stochastic-depth", type=float,
                    help="override torchvision's stochastic-depth probability in both backbones (training only; "
                         "torchvision: 0.2 at the last block of B0)")
    ap.add_argument("--init-from", help="start from this checkpoint's model weights (best.pt / last.pt / a state dict / "
                    "an exported .safetensors); "
                    "fresh optimizer, epoch 0 of the given schedule (unlike --resume)")
    ap.add_argument("--init-matching", action="store_true",
                    help="with --init-from: take only the tensors whose name and shape match this config, keep the "
                         "rest as built (e.g. wider classifier heads on a trained backbone); the log lists the rest")
    ap.add_argument("--init-seg-from",
                    help="take stage 1 (the seg.* tensors) from this checkpoint or state dict, the rest as built "
                         "(e.g. a stage 1 trained at another input size: it is fully convolutional)")
    ap.add_argument("--freeze-bn", action="store_true",
                    help="keep every BatchNorm in eval mode while training (running statistics frozen, "
                         "affine weights still trained); use with --init-from")
    ap.add_argument("--freeze-seg", action="store_true",
                    help="keep stage 1 fixed after the seg stage: the joint stage computes no lung losses and "
                         "trains stage 2 and the patient head only (stage 1 is trained in the seg stage, if any)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--val-every", type=int, default=1)
    ap.add_argument("--val-final-stage-only", action="store_true",
                    help="validate only in the schedule's last stage (the only one that can give best.pt)")
    ap.add_argument("--val-max-studies", type=int, default=0,
                    help="validate each epoch on at most this many studies (every k-th; 0: all)")
    ap.add_argument("--time-limit", type=float, default=0, help="stop after this many minutes (then export)")
    ap.add_argument("--export", help="write the best weights here (.safetensors) at the end")
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--trained-on", default="", help="text for covidct.trained_on (default: the dataset folders)")
    ap.add_argument("--intended-use", default="", help="text for covidct.intended_use")
    ap.add_argument("--synthetic", action="store_true",
                    help=f"the data are synthetic: covidct.intended_use = '{INTENDED_USE_SYNTHETIC}'")
    a = ap.parse_args(argv)
    if a.init_matching and not a.init_from:
        raise SystemExit("--init-matching needs --init-from")

    if a.threads:
        torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    logf = open(os.path.join(a.out, "train_log.txt"), "a")

    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    if a.config_json:
        with open(a.config_json) as f:
            cfg = ModelConfig.from_dict(json.load(f))
    else:
        cfg = get_config(a.config, a.classifier_backbone)
    if a.input_size:
        cfg.input_size = int(a.input_size)
    if a.dropout is not None:
        cfg.cls.dropout = float(a.dropout)

    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    gen = torch.Generator().manual_seed(a.seed + 1)

    log(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    t0 = time.time()
    train = ds.load_dataset(a.train, cfg, log=log)
    if a.val:
        val = [st for root in a.val for st in ds.load_dataset(root, cfg, log=log)]
    else:
        order = np.random.default_rng(a.seed + 7).permutation(len(train))
        nv = max(1, int(round(len(train) * a.val_fraction)))
        val = [train[i] for i in order[:nv]]
        train = [train[i] for i in order[nv:]]
    if a.val_max_studies and len(val) > a.val_max_studies:
        step_v = len(val) / a.val_max_studies
        val = [val[int(i * step_v)] for i in range(a.val_max_studies)]
    real = load_real(a.real, cfg, a.real_exclude, log=log) if a.real else []
    mix = [st for root in a.mix for st in ds.load_dataset(root, cfg, log=log)]
    if mix:
        mc = np.bincount([s_.label for s_ in mix], minlength=3)
        log(f"mixed in: {len(mix)} labelled real studies {dict(zip(ds.CLASS_NAMES, mc.tolist()))} from {a.mix}, "
            f"{a.mix_studies_per_batch} a step")
    s2d = load_slices2d(a.slices2d, a.slices2d_sets) if a.slices2d else None
    if s2d is not None:
        if a.stage2_mask != "predicted":
            raise SystemExit("--slices2d needs --stage2-mask predicted (the 2-D slices have no lung mask)")
        if s2d[0].shape[-1] != cfg.input_size:
            raise SystemExit(f"{a.slices2d}: slices of {s2d[0].shape[-1]} px, --input-size is {cfg.input_size}")
        log(f"real 2-D slices: {len(s2d[1])} of {a.slices2d_sets} ({int(s2d[1].sum())} COVID-19), "
            f"{a.slices2d_per_batch} a cls step, weight {a.slices2d_weight}")
    if a.real:
        log(f"real CT for stage 1: {[s_.name for s_ in real]} ({sum(s_.image.shape[0] for s_ in real)} slices; "
            f"left out: {a.real_exclude or 'none'})")
    counts = np.bincount([s.label for s in train], minlength=3)
    log(f"data: {len(train)} training studies {dict(zip(ds.CLASS_NAMES, counts.tolist()))}, "
        f"{len(val)} validation, {sum(s.image.shape[0] for s in train)} training slices, "
        f"input {cfg.input_size}x{cfg.input_size} ({time.time() - t0:.0f} s)")

    model = build_model(cfg, seed=a.seed).to(a.device)
    if a.stochastic_depth is not None:
        from torchvision.ops import StochasticDepth
        sds = [m for m in model.modules() if isinstance(m, StochasticDepth)]
        for m in sds:
            m.p = float(a.stochastic_depth)
        log(f"stochastic depth p = {a.stochastic_depth} in {len(sds)} blocks")
    if a.pretrained:
        load_pretrained(model, a.pretrained, log)
    if a.init_from:
        sd0, from0 = checkpoint_weights(a.init_from)
        if a.init_matching:
            own = model.state_dict()
            take = {k: v for k, v in sd0.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
            fresh = [k for k in own if k not in take and not k.endswith("num_batches_tracked")]
            if not take:
                raise SystemExit(f"{a.init_from}: no tensor matches this config in name and shape")
            model.load_state_dict(take, strict=False)
            log(f"initialised from {from0}: {len(take)} tensors; as built (no match in name and shape): "
                f"{len(fresh)} tensors under {sorted({'.'.join(k.split('.')[:2]) for k in fresh})}")
        else:
            model.load_state_dict(sd0)
            log(f"initialised from {from0}")
    if a.init_seg_from:
        sd1, from1 = checkpoint_weights(a.init_seg_from)
        seg_sd = {k[len("seg."):]: v for k, v in sd1.items() if k.startswith("seg.")}
        if not seg_sd:
            raise SystemExit(f"{a.init_seg_from}: no seg.* tensors (expected a checkpoint of this model)")
        try:
            model.seg.load_state_dict(seg_sd)
        except RuntimeError as e:
            raise SystemExit(f"{a.init_seg_from}: stage 1 does not match this config: {e}")
        log(f"stage 1 initialised from {from1}")
    # Stage 1's parameters stay in the optimizer under --freeze-seg (Adam leaves parameters without a gradient
    # untouched), so a run's checkpoints resume the same way with or without it.
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    epochs = a.seg_epochs + a.cls_epochs + a.joint_epochs + a.patient_epochs
    steps = a.steps_per_epoch or max(1, len(train) // a.studies_per_batch)
    start_epoch, best, history = 0, -1.0, []
    if a.resume:
        ck = torch.load(a.resume, map_location="cpu")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, best, history = ck["epoch"] + 1, ck["best"], ck["history"]
        rng.bit_generator.state = ck["np_rng"]
        gen.set_state(ck["torch_gen"])
        torch.set_rng_state(ck["torch_rng"])
        log(f"resumed from {a.resume} at epoch {start_epoch}")
    log(f"model: {sum(p.numel() for p in model.parameters())} parameters; {epochs} epochs "
        f"(seg {a.seg_epochs}, cls {a.cls_epochs}, joint {a.joint_epochs}, patient {a.patient_epochs}) x {steps} steps, "
        f"batch {a.studies_per_batch}x{a.slices_per_study}, lr {a.lr}, seed {a.seed}, device {a.device}")

    slice_weights = None
    if a.slice_class_weights == "sqrt":
        freq = np.bincount(torch.cat([s_.slice_labels for s_ in train]).numpy(), minlength=3).astype(np.float64)
        w = 1.0 / np.sqrt(np.maximum(freq, 1.0))
        slice_weights = torch.tensor(w / w.mean(), dtype=torch.float32, device=a.device)
        log(f"slice CE class weights {[round(float(v), 3) for v in slice_weights]} (slice labels {freq.astype(int).tolist()})")
    span = cfg.preprocess.window_max - cfg.preprocess.window_min
    stopped = False
    bank: Optional[List[tuple]] = None
    final = stage_of(epochs - 1, a)
    for epoch in range(start_epoch, epochs):
        stage = stage_of(epoch, a)
        frozen_seg = stage == "cls" or (stage == "joint" and a.freeze_seg)
        if stage == "patient":
            model.requires_grad_(False)
            model.patient.requires_grad_(True)
            if bank is None:
                tb = time.time()
                bank = embedding_bank(model, train, a.device)
                if not bank:
                    raise SystemExit("patient stage: stage 1 finds no lung (>= 1% of a slice) in any training study, "
                                     "so the patient head has nothing to pool; train stage 1 first (--seg-epochs)")
                log(f"patient stage: slice embeddings of {len(bank)} of {len(train)} training studies "
                    f"({sum(len(e) for e, _ in bank)} slices used; {time.time() - tb:.0f} s)")
                if mix:
                    mb = embedding_bank(model, mix, a.device)
                    # repeat the mixed studies' entries so that they make --mix-patient-share of the draws
                    rep_ = max(1, int(round(a.mix_patient_share * len(bank) / max(1e-9, 1 - a.mix_patient_share)
                                           / max(1, len(mb)))))
                    log(f"patient stage: {len(mb)} mixed-in studies in the bank, each {rep_} times")
                    bank = bank + mb * rep_
            model.eval()  # the patient head has no dropout or BatchNorm; everything else is fixed
        else:
            model.train()
            model.seg.requires_grad_(not frozen_seg)
            if frozen_seg:
                model.seg.eval()
        if a.freeze_bn:
            for m_ in model.modules():
                if isinstance(m_, torch.nn.modules.batchnorm._BatchNorm):
                    m_.eval()
        te = time.time()
        sums: Dict[str, float] = {}
        for step in range(steps):
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch, step, steps, a)
            opt.zero_grad(set_to_none=True)
            if stage == "patient":
                assert bank is not None
                pce = patient_step_loss(model, bank, rng, a.patient_batch)
                losses = {"patient_ce": pce, "total": pce}
            else:
                b = sample_batch(train, rng, a.studies_per_batch, a.slices_per_study, a.lung_slices, a.infected_slices)
                if real and stage == "seg":
                    b = concat_batches(b, sample_real_batch(real, rng, a.real_studies_per_batch, a.slices_per_study,
                                                            a.lung_slices))
                if mix:
                    b = concat_batches(b, sample_batch(mix, rng, a.mix_studies_per_batch, a.slices_per_study,
                                                       a.lung_slices, a.infected_slices))
                n2d = 0
                if s2d is not None and stage == "cls":  # last in the batch: step_losses takes the last n2d rows
                    b = concat_batches(b, sample_slices2d(s2d[0], s2d[1], rng, a.slices2d_per_batch))
                    n2d = a.slices2d_per_batch
                if not a.no_augment:
                    b = augment(b, gen, span, scale=a.scale_aug)
                    if (real and stage == "seg") or mix or n2d:
                        b["image"] = scanner_augment(b["image"], gen)
                b = {k: v.to(a.device) for k, v in b.items()}
                losses = step_losses(model, b, stage, a.seg_bce, with_seg=not frozen_seg, inf_dice=a.inf_dice,
                                     inf_ce=a.inf_ce, slice_weights=slice_weights, patient_weight=a.patient_weight,
                                     stage2_mask=a.stage2_mask, n2d=n2d, slices2d_weight=a.slices2d_weight)
            losses["total"].backward()
            opt.step()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        msg = " ".join(f"{k} {v / steps:.4f}" for k, v in sums.items())
        rec: Dict[str, object] = {"epoch": epoch, "stage": stage, "train": {k: v / steps for k, v in sums.items()},
                                  "seconds": time.time() - te}
        due = (epoch + 1) % a.val_every == 0 or epoch == epochs - 1
        if due and (stage == final or not a.val_final_stage_only):
            model.eval()
            res = ds.evaluate_studies(model.cpu() if a.device != "cpu" else model, val)
            model.to(a.device)
            s = res["summary"]
            rec["val"] = s
            f1 = "/".join(f"{c['f1']:.2f}" for c in s["patient_per_class"])
            auc = "/".join(f"{v:.2f}" for v in s["patient_auc"])
            msg += (f" | val lung {s['lung_dice']:.4f} inf {s['infection_dice']:.3f} slice {s['slice_accuracy']:.3f} "
                    f"patient {s['patient_accuracy']:.3f} F1 {f1} AUC {auc}")
            sc = score_of(s, stage)
            # best is tracked in the last stage of the schedule only (earlier stages leave heads untrained)
            if stage == final and sc > best:
                best = sc
                torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "epoch": epoch, "val": s},
                           os.path.join(a.out, "best.pt"))
                msg += " *"
        history.append(rec)
        log(f"epoch {epoch + 1}/{epochs} [{stage}] {rec['seconds']:.0f}s {msg}")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "best": best,
                    "history": history, "config": cfg.to_dict(), "args": vars(a), "np_rng": rng.bit_generator.state,
                    "torch_gen": gen.get_state(), "torch_rng": torch.get_rng_state()},
                   os.path.join(a.out, "last.pt"))
        with open(os.path.join(a.out, "history.json"), "w") as f:
            json.dump(history, f, indent=1)
        if a.time_limit and time.time() - t0 > a.time_limit * 60:
            log(f"time limit {a.time_limit} min reached after epoch {epoch + 1}")
            stopped = True
            break

    if a.export:
        src = os.path.join(a.out, "best.pt")
        if not os.path.exists(src):
            src = os.path.join(a.out, "last.pt")
        ck = torch.load(src, map_location="cpu")
        model = build_model(cfg, seed=None)
        model.load_state_dict(ck["model"])
        model.eval()
        trained_on = a.trained_on or f"dataset folders {os.path.basename(os.path.abspath(a.train))}" + (
            f" and {', '.join(os.path.basename(os.path.abspath(v)) for v in a.val)}" if a.val else "")
        intended = a.intended_use or (INTENDED_USE_SYNTHETIC if a.synthetic else "research use only, not for diagnosis")
        vs = ck.get("val", {})
        training = {"recipe": "weights/train.py", "seed": a.seed, "epochs_run": int(ck["epoch"]) + 1,
                    "schedule": {"seg": a.seg_epochs, "cls": a.cls_epochs, "joint": a.joint_epochs,
                                 "patient": a.patient_epochs},
                    "steps_per_epoch": steps, "batch": [a.studies_per_batch, a.slices_per_study], "lr": a.lr,
                    "input_size": cfg.input_size, "stopped_early": stopped,
                    "losses": {"infection_dice": a.inf_dice, "infection_ce": a.inf_ce, "seg_bce": a.seg_bce,
                               "slice_class_weights": a.slice_class_weights, "patient_weight": a.patient_weight},
                    "sampling": {"lung_slices": a.lung_slices, "infected_slices": a.infected_slices},
                    "stage2_mask": a.stage2_mask,
                    "mix": {"folders": [os.path.basename(os.path.abspath(m_)) for m_ in a.mix],
                            "studies_per_batch": a.mix_studies_per_batch,
                            "patient_share": a.mix_patient_share} if a.mix else None,
                    "slices2d": {"file": os.path.basename(a.slices2d), "sets": a.slices2d_sets,
                                 "per_batch": a.slices2d_per_batch, "weight": a.slices2d_weight} if a.slices2d else None,
                    "augment": not a.no_augment, "freeze_seg": a.freeze_seg,
                    "init_from": export.short_path(a.init_from) if a.init_from else None,
                    "init_seg_from": export.short_path(a.init_seg_from) if a.init_seg_from else None,
                    "validation": {k: vs.get(k) for k in ("studies", "lung_dice", "infection_dice",
                                                          "slice_accuracy", "patient_accuracy")}}
        extra = {"covidct.trained_on": trained_on, "covidct.intended_use": intended,
                 "covidct.training": json.dumps(training)}
        export.export_model(model, a.export, a.dtype, source=f"trained with weights/train.py, seed {a.seed} "
                            f"({os.path.basename(src)}, epoch {int(ck['epoch']) + 1})", extra_metadata=extra)
        log(f"exported {src} -> {a.export} ({a.dtype}, {os.path.getsize(a.export)} bytes); "
            f"covidct.intended_use = {intended!r}")
    log(f"done in {(time.time() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
