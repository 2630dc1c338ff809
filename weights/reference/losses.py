"""Losses and a minimal training step (MODEL.md "Training-side facts").

Dice for the lung mask and the infection map, cross-entropy for slice and patient
classes, Adam.  This is a reference/smoke-test trainer, not a full training pipeline.

CHOICES where MODEL.md is silent:
  * Dice is soft dice per slice, 1 - (2*sum(p*g) + s) / (sum(p) + sum(g) + s) with s = 1,
    averaged over the batch (smoothing makes empty-vs-empty ~0 loss).
  * Lung dice on sigmoid(lung_logits) at input resolution.
  * Infection dice on P upsampled to input resolution (``infection_prob``) against the
    input-resolution infection mask (avoids having to downsample ground truth).
  * During training, stage 2 is fed with the ground-truth lung mask when the batch has
    one (teacher forcing; see TwoStageModel.forward), and the same mask decides which
    slices enter the patient head.
  * The patient head is trained jointly on the same batch: slices are grouped by
    ``patient_ids``; its gradient flows into the slice head and the backbone.  Slice
    embeddings are taken after dropout, as produced in train mode.  Patients with no
    qualifying slice are left out of the patient loss.
  * Total loss = sum of the four terms with weights from LossWeights (default 1 each).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn.functional as F


@dataclass
class LossWeights:
    lung_dice: float = 1.0
    infection_dice: float = 1.0
    slice_ce: float = 1.0
    patient_ce: float = 1.0


def dice_loss(prob: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft dice loss, per sample over all non-batch dims, mean over the batch."""
    b = prob.shape[0]
    p = prob.reshape(b, -1)
    g = target.reshape(b, -1).to(p.dtype)
    inter = (p * g).sum(dim=1)
    denom = p.sum(dim=1) + g.sum(dim=1)
    return (1.0 - (2.0 * inter + smooth) / (denom + smooth)).mean()


def compute_losses(out: Dict[str, torch.Tensor], batch: Dict[str, torch.Tensor],
                   weights: Optional[LossWeights] = None) -> Dict[str, torch.Tensor]:
    """``batch`` keys: image (B,1,H,W windowed), lung_mask (B,1,H,W), infection_mask
    (B,1,H,W), slice_label (B,) long, patient_label (P,) long in the order of sorted
    distinct patient_ids (optional), patient_ids (B,) long (optional; default one patient)."""
    w = weights or LossWeights()
    losses: Dict[str, torch.Tensor] = {}
    losses["lung_dice"] = dice_loss(out["lung_prob"], batch["lung_mask"])
    losses["infection_dice"] = dice_loss(out["infection_prob"], batch["infection_mask"])
    losses["slice_ce"] = F.cross_entropy(out["slice_logits"], batch["slice_label"])
    total = (w.lung_dice * losses["lung_dice"] + w.infection_dice * losses["infection_dice"]
             + w.slice_ce * losses["slice_ce"])
    if "patient_label" in batch:
        ok = ~out["patient_no_lung"]
        if bool(ok.any()):
            losses["patient_ce"] = F.cross_entropy(out["patient_logits"][ok], batch["patient_label"][ok])
            total = total + w.patient_ce * losses["patient_ce"]
    losses["total"] = total
    return losses


def make_optimizer(model: torch.nn.Module, lr: float = 1e-4) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=lr)


def train_step(model, optimizer: torch.optim.Optimizer, batch: Dict[str, torch.Tensor],
               weights: Optional[LossWeights] = None) -> Dict[str, float]:
    """One Adam step.  Needs B >= 2 (BatchNorm1d in train mode)."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    out = model(batch["image"], lung_mask=batch.get("lung_mask"), patient_ids=batch.get("patient_ids"))
    losses = compute_losses(out, batch, weights)
    losses["total"].backward()
    optimizer.step()
    return {k: float(v.detach()) for k, v in losses.items()}


def random_batch(b: int, h: int, w: int, num_classes: int = 3, n_patients: int = 1,
                 generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
    """Random training batch with plausible masks (an ellipse 'lung', a blob 'infection')."""
    g = generator
    image = torch.rand(b, 1, h, w, generator=g)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    lung = ((xx / 0.8) ** 2 + (yy / 0.6) ** 2 <= 1).float()[None, None].expand(b, 1, h, w).contiguous()
    cx = torch.rand(b, generator=g) - 0.5
    inf = (((xx[None] - cx[:, None, None]) ** 2 + yy[None] ** 2) <= 0.1).float()[:, None] * lung
    pids = torch.arange(b) % n_patients
    return {
        "image": image,
        "lung_mask": lung,
        "infection_mask": inf,
        "slice_label": torch.randint(0, num_classes, (b,), generator=g),
        "patient_ids": pids,
        "patient_label": torch.randint(0, num_classes, (n_patients,), generator=g),
    }
