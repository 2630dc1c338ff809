"""The PyTorch modules the bench's peers run: the reference stages (weights/reference) and bare torchvision
EfficientNets, with the deterministic weights of weights/make_fixtures.py (``fill_weights``: uniform weights
scaled by fan-in, non-trivial BatchNorm statistics; the same generator the TS bench reimplements in
src/models/random-weights.ts), so that every peer computes on the same kind of numbers as the engine.

Used by weights/peers/torch_bench.py (PyTorch peers) and weights/peers/export_onnx.py (ONNX for the ONNX Runtime
Web peer). Runs with Debian's interpreter, /usr/bin/python3 (torch 1.13, torchvision 0.14), and with newer torch.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, List, Tuple

_HERE = os.path.dirname(os.path.abspath(__file__))
_WEIGHTS = os.path.dirname(_HERE)
if _WEIGHTS not in sys.path:
    sys.path.insert(0, _WEIGHTS)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torchvision  # noqa: E402

from make_fixtures import fill_weights  # noqa: E402
from reference import build_model, get_config  # noqa: E402
from reference.model import normalise, resize  # noqa: E402

SEED = 0


class Stage1(nn.Module):
    """GR-U-Net: ``seg.input`` (normalised, B x 3 x H x W) -> lung_logits, lung_prob (as the engine's stage 1)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.seg = model.seg

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        logits = self.seg(x)
        return logits, torch.sigmoid(logits)


class Stage2(nn.Module):
    """Classifier: ``cls.input`` -> the engine's stage-2 outputs (infection maps, slice embedding and logits)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.cls = model.cls

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        c = self.cls(x)
        p = c["infection_prob_s8"]
        return (c["infection_logits_s8"], p, resize(p, (x.shape[-2], x.shape[-1])), c["slice_embedding"], c["slice_logits"])


STAGE1_OUTPUTS = ["lung_logits", "lung_prob"]
STAGE2_OUTPUTS = ["infection_logits_s8", "infection_prob_s8", "infection_prob", "slice_embedding", "slice_logits"]


def two_stage(config: str) -> nn.Module:
    """The reference TwoStageModel for config 'tiny' or 'default' with make_fixtures' deterministic weights."""
    model = build_model(get_config(config), seed=SEED).eval()
    fill_weights(model, SEED)
    return model


def bare_efficientnet(variant: str) -> nn.Module:
    """torchvision ``efficientnet_bN`` (1000 classes) with make_fixtures' deterministic weights."""
    model = getattr(torchvision.models, variant)(weights=None).eval()
    fill_weights(model, SEED)
    return model


def stage_module(config: str, stage: str, model: nn.Module = None) -> Tuple[nn.Module, List[str], List[str]]:
    """(module, input names, output names) for stage1 | stage2 | efficientnet_bN."""
    if stage.startswith("efficientnet_"):
        return bare_efficientnet(stage), ["input"], ["logits"]
    model = model if model is not None else two_stage(config)
    if stage == "stage1":
        return Stage1(model).eval(), ["seg.input"], STAGE1_OUTPUTS
    if stage == "stage2":
        return Stage2(model).eval(), ["cls.input"], STAGE2_OUTPUTS
    raise ValueError(f"unknown stage {stage!r}")


def windowed_slices(batch: int, h: int, w: int) -> torch.Tensor:
    """Deterministic synthetic windowed slices in [0, 1] (B, 1, H, W): a body ellipse with two darker lungs."""
    ys = torch.linspace(-1, 1, h).view(h, 1)
    xs = torch.linspace(-1, 1, w).view(1, w)
    body = ((ys / 0.85) ** 2 + (xs / 0.95) ** 2 <= 1).float()
    lung = (((ys / 0.55) ** 2 + ((xs - 0.42) / 0.33) ** 2 <= 1) | ((ys / 0.55) ** 2 + ((xs + 0.42) / 0.33) ** 2 <= 1)).float()
    base = 0.55 * body - 0.45 * lung
    g = torch.Generator().manual_seed(1)
    out = base.expand(batch, 1, h, w) + 0.02 * torch.randn(batch, 1, h, w, generator=g)
    return out.clamp(0, 1).contiguous()


def normalised(batch: int, h: int, w: int, config: str = "tiny") -> torch.Tensor:
    return normalise(windowed_slices(batch, h, w), get_config(config).preprocess).contiguous()


def describe(stage: str, config: str) -> Dict[str, str]:
    return {"stage": stage, "config": config, "torch": torch.__version__, "torchvision": torchvision.__version__}
