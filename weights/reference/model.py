"""PyTorch reference of the two-stage COVID-19 / CAP model (MODEL.md).

This file is the ground truth the WebGPU engine is checked against.  Tensor names of
``TwoStageModel.state_dict()`` are the names in the exported ``.safetensors`` file
(minus BatchNorm ``num_batches_tracked``), see weights/README.md.

Conventions used throughout (the engine must do the same):
  * Tensors are NCHW, float32.
  * Every resize is ``F.interpolate(mode="bilinear", align_corners=False)`` with an
    explicit output *size* (never a scale factor), no antialiasing.  PyTorch then maps
    output pixel d to source coordinate s = (d + 0.5) * in/out - 0.5, clamped below at 0,
    neighbours clamped at in-1.
  * Every conv followed by a BatchNorm has ``bias=False``; so does every Linear that is
    followed by a BatchNorm1d (MODEL.md is silent for Linear; choice made for symmetry and
    because the bias would be cancelled by BN anyway).
  * "same" padding: kernel k uses padding k // 2, stride 1.

Where MODEL.md is silent, the choice is written next to the code as ``CHOICE:``.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from .config import ModelConfig, PreprocessConfig, SegConfig, ClsConfig

Taps = Optional[Dict[str, torch.Tensor]]


def _tap(taps: Taps, name: str, t: torch.Tensor) -> None:
    if taps is not None:
        taps[name] = t


def resize(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear, align_corners=False, to an exact size (identity when size matches)."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x  # bilinear at scale 1 is exactly the identity
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------
# Preprocessing helpers
# --------------------------------------------------------------------------------------

def hu_from_stored(stored: torch.Tensor, slope: float = 1.0, intercept: float = 0.0,
                   padding_value: Optional[float] = None, padding_hu: float = -1024.0) -> torch.Tensor:
    """DICOM: HU = stored * slope + intercept; pixel-padding values map to padding_hu."""
    stored = stored.to(torch.float32)
    hu = stored * slope + intercept
    if padding_value is not None:
        hu = torch.where(stored == padding_value, torch.full_like(hu, padding_hu), hu)
    return hu


def window(hu: torch.Tensor, pre: PreprocessConfig) -> torch.Tensor:
    """Clip HU to [window_min, window_max] and scale to [0, 1]."""
    lo, hi = float(pre.window_min), float(pre.window_max)
    return (hu.clamp(lo, hi) - lo) / (hi - lo)


def preprocess_hu(hu: torch.Tensor, cfg: ModelConfig, size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """HU slices (B, H0, W0) or (B, 1, H0, W0) -> windowed slices (B, 1, S, S) in [0, 1].

    Order (MODEL.md lists it this way): window first, then bilinear resize to the model
    size.  CHOICE: plain bilinear (align_corners=False, antialias=False) also when
    downsampling.
    """
    if hu.dim() == 3:
        hu = hu[:, None]
    if size is None:
        size = (cfg.input_size, cfg.input_size)
    w = window(hu.to(torch.float32), cfg.preprocess)
    if tuple(w.shape[-2:]) != tuple(size):
        w = F.interpolate(w, size=size, mode="bilinear", align_corners=False,
                          antialias=bool(cfg.preprocess.resize_antialias))
    return w


def normalise(windowed: torch.Tensor, pre: PreprocessConfig) -> torch.Tensor:
    """(B, 1, H, W) window in [0, 1] -> (B, 3, H, W): replicate, (x - mean) / std."""
    mean = torch.tensor(pre.mean, dtype=windowed.dtype, device=windowed.device).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, dtype=windowed.dtype, device=windowed.device).view(1, 3, 1, 1)
    return (windowed.expand(-1, 3, -1, -1) - mean) / std


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------

class ConvBNAct(nn.Module):
    """Conv(k, bias=False) -> BN -> activation.  Names: conv.weight, bn.*"""

    def __init__(self, cin: int, cout: int, k: int, eps: float, act: Optional[str] = "relu"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=eps)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        if self.act == "relu":
            x = F.relu(x)
        elif self.act == "silu":
            x = F.silu(x)
        elif self.act is not None:
            raise ValueError(self.act)
        return x


def _efficientnet(variant: str, bn_eps: float) -> nn.Module:
    """torchvision EfficientNet with random init; BN eps forced to the config value."""
    m = getattr(torchvision.models, variant)(weights=None)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.eps = float(bn_eps)
    return m


class EfficientNetFeatures(nn.Module):
    """Keeps ``features[0..last]`` of a torchvision EfficientNet under the attribute
    ``features`` so state-dict names are ``features.<i>.<torchvision name>``."""

    def __init__(self, variant: str, last: int, bn_eps: float):
        super().__init__()
        full = _efficientnet(variant, bn_eps)
        self.features = nn.Sequential(*[full.features[i] for i in range(last + 1)])

    def forward(self, x: torch.Tensor, taps_at: List[int]) -> Dict[int, torch.Tensor]:
        out: Dict[int, torch.Tensor] = {}
        for i, f in enumerate(self.features):
            x = f(x)
            if i in taps_at:
                out[i] = x
        return out


# --------------------------------------------------------------------------------------
# Stage 1: GR-U-Net
# --------------------------------------------------------------------------------------

class DenseBlock(nn.Module):
    def __init__(self, cin: int, c: int, eps: float):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c, eps=eps)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class DenseBottleneck(nn.Module):
    """Block i (1-based) sees concat(E4, x1, ..., x_{i-1}) -> C4 + (i-1)*Cb channels.
    Output x_N.  Concat order along channels: E4 first, then x1, x2, ..."""

    def __init__(self, cin: int, c: int, n: int, eps: float):
        super().__init__()
        self.blocks = nn.ModuleList([DenseBlock(cin + i * c, c, eps) for i in range(n)])

    def forward(self, e4: torch.Tensor, taps: Taps = None) -> torch.Tensor:
        feats = [e4]
        x = e4
        for i, blk in enumerate(self.blocks):
            x = blk(torch.cat(feats, dim=1) if len(feats) > 1 else feats[0])
            _tap(taps, f"seg.dense.x{i + 1}", x)
            feats.append(x)
        return x


class ConvGRUCell(nn.Module):
    """z = sig(Wz*[x,h]+bz), r = sig(Wr*[x,h]+br), n = tanh(Wn*[x, r.h]+bn),
    h' = (1-z).h + z.n.

    Weights: ``conv_zr`` (2C -> 2C, bias) whose output channels [0, C) are z and [C, 2C)
    are r (CHOICE: z first), ``conv_n`` (2C -> C, bias).  Input concat order: [x, h]
    (x channels first)."""

    def __init__(self, cin: int, c: int, k: int):
        super().__init__()
        self.c = c
        self.conv_zr = nn.Conv2d(cin + c, 2 * c, k, padding=k // 2, bias=True)
        self.conv_n = nn.Conv2d(cin + c, c, k, padding=k // 2, bias=True)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        zr = torch.sigmoid(self.conv_zr(torch.cat([x, h], dim=1)))
        z, r = zr[:, : self.c], zr[:, self.c:]
        n = torch.tanh(self.conv_n(torch.cat([x, r * h], dim=1)))
        return (1 - z) * h + z * n


class BConvGRU(nn.Module):
    """Bidirectional ConvGRU over the 2-step sequence (skip, up).

    forward direction: h = cell_f(skip, 0); h_fwd = cell_f(up, h)
    backward direction: h = cell_b(up, 0); h_bwd = cell_b(skip, h)
    out = tanh(Conv1x1(concat(h_fwd, h_bwd)) with bias)
    CHOICE: the two directions have separate weights (``fwd``, ``bwd``), as in any
    bidirectional RNN; MODEL.md does not say.
    """

    def __init__(self, c: int, k: int):
        super().__init__()
        self.fwd = ConvGRUCell(c, c, k)
        self.bwd = ConvGRUCell(c, c, k)
        self.out = nn.Conv2d(2 * c, c, 1, bias=True)

    def forward(self, skip: torch.Tensor, up: torch.Tensor, taps: Taps = None, name: str = "") -> torch.Tensor:
        h0 = torch.zeros_like(skip)
        h_fwd = self.fwd(up, self.fwd(skip, h0))
        h_bwd = self.bwd(skip, self.bwd(up, h0))
        _tap(taps, f"{name}.h_fwd", h_fwd)
        _tap(taps, f"{name}.h_bwd", h_bwd)
        return torch.tanh(self.out(torch.cat([h_fwd, h_bwd], dim=1)))


class SCSE(nn.Module):
    """cSE(x) = x . sig(FC2(ReLU(FC1(GAP(x))))); sSE(x) = x . sig(Conv1x1(x) -> 1);
    concat(cSE, sSE) (cSE channels first) -> Conv1x1 (bias=False) -> BN -> ReLU."""

    def __init__(self, c: int, hidden: int, eps: float):
        super().__init__()
        self.cse_fc1 = nn.Conv2d(c, hidden, 1, bias=True)
        self.cse_fc2 = nn.Conv2d(hidden, c, 1, bias=True)
        self.sse = nn.Conv2d(c, 1, 1, bias=True)
        self.fuse_conv = nn.Conv2d(2 * c, c, 1, bias=False)
        self.fuse_bn = nn.BatchNorm2d(c, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        s = torch.sigmoid(self.cse_fc2(F.relu(self.cse_fc1(s))))
        q = torch.sigmoid(self.sse(x))
        y = torch.cat([x * s, x * q], dim=1)
        return F.relu(self.fuse_bn(self.fuse_conv(y)))


class DecoderStage(nn.Module):
    def __init__(self, cprev: int, cskip: int, c: int, cfg: SegConfig, eps: float):
        super().__init__()
        self.up_conv = nn.Conv2d(cprev, c, 3, padding=1, bias=False)
        self.up_bn = nn.BatchNorm2d(c, eps=eps)  # no activation (MODEL.md)
        self.skip_conv = nn.Conv2d(cskip, c, 1, bias=False)
        self.skip_bn = nn.BatchNorm2d(c, eps=eps)
        self.gru = BConvGRU(c, cfg.gru_kernel)
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c, eps=eps)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c, eps=eps)
        self.scse = SCSE(c, cfg.se_hidden(c), eps)

    def forward(self, prev: torch.Tensor, skip_feat: torch.Tensor, taps: Taps = None, name: str = "") -> torch.Tensor:
        up = self.up_bn(self.up_conv(resize(prev, skip_feat.shape[-2:])))
        skip = F.relu(self.skip_bn(self.skip_conv(skip_feat)))
        _tap(taps, f"{name}.up", up)
        _tap(taps, f"{name}.skip", skip)
        x = self.gru(skip, up, taps, f"{name}")
        _tap(taps, f"{name}.gru", x)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        _tap(taps, f"{name}.conv", x)
        x = self.scse(x)
        _tap(taps, name, x)
        return x


class SegHead(nn.Module):
    """Resize to input size -> Conv3x3-BN-ReLU (head_channels) -> Conv1x1 -> 1 logit (bias)."""

    def __init__(self, cin: int, c: int, eps: float):
        super().__init__()
        self.conv = nn.Conv2d(cin, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c, eps=eps)
        self.out = nn.Conv2d(c, 1, 1, bias=True)

    def forward(self, x: torch.Tensor, size: Tuple[int, int], taps: Taps = None) -> torch.Tensor:
        x = resize(x, size)
        x = F.relu(self.bn(self.conv(x)))
        _tap(taps, "seg.head.hidden", x)
        return self.out(x)


class GRUNet(nn.Module):
    """Stage 1.  Encoder = torchvision EfficientNet features[0..4]; E1..E4 = outputs of
    features[1..4] (strides 2, 4, 8, 16)."""

    def __init__(self, cfg: SegConfig, bn_eps: float):
        super().__init__()
        self.cfg = cfg
        self.encoder = EfficientNetFeatures(cfg.encoder, 4, cfg.encoder_bn_eps)
        ch = _feature_channels(self.encoder.features)
        c1, c2, c3, c4 = ch[1], ch[2], ch[3], ch[4]
        cb = cfg.bottleneck_channels
        d3, d2, d1 = cfg.decoder_channels
        self.bottleneck = DenseBottleneck(c4, cb, cfg.dense_blocks, bn_eps)
        self.dec3 = DecoderStage(cb, c3, d3, cfg, bn_eps)
        self.dec2 = DecoderStage(d3, c2, d2, cfg, bn_eps)
        self.dec1 = DecoderStage(d2, c1, d1, cfg, bn_eps)
        self.head = SegHead(d1, cfg.head_channels, bn_eps)

    def forward(self, x: torch.Tensor, taps: Taps = None) -> torch.Tensor:
        f = self.encoder(x, [0, 1, 2, 3, 4])
        _tap(taps, "seg.e0", f[0])
        for i in range(1, 5):
            _tap(taps, f"seg.e{i}", f[i])
        b = self.bottleneck(f[4], taps)
        _tap(taps, "seg.bottleneck", b)
        d = self.dec3(b, f[3], taps, "seg.dec3")
        d = self.dec2(d, f[2], taps, "seg.dec2")
        d = self.dec1(d, f[1], taps, "seg.dec1")
        return self.head(d, x.shape[-2:], taps)


def _feature_channels(features: nn.Sequential) -> List[int]:
    out = []
    for f in features:
        convs = [m for m in f.modules() if isinstance(m, nn.Conv2d)]
        out.append(convs[-1].out_channels)
    return out


# --------------------------------------------------------------------------------------
# Stage 2: classifier
# --------------------------------------------------------------------------------------

class MsFF(nn.Module):
    """Resize taps to the first tap's grid, concat (in msff_features order),
    Conv1x1 (bias=False) -> Cf, BN, SiLU."""

    def __init__(self, cin: int, c: int, eps: float):
        super().__init__()
        self.conv = nn.Conv2d(cin, c, 1, bias=False)
        self.bn = nn.BatchNorm2d(c, eps=eps)

    def forward(self, feats: List[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[-2:]
        x = torch.cat([resize(f, size) for f in feats], dim=1)
        return F.silu(self.bn(self.conv(x)))


class SliceHeadLayer(nn.Module):
    """Linear (bias=False, CHOICE) -> BN1d -> SiLU -> Dropout."""

    def __init__(self, cin: int, c: int, eps: float, p: float):
        super().__init__()
        self.linear = nn.Linear(cin, c, bias=False)
        self.bn = nn.BatchNorm1d(c, eps=eps)
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(F.silu(self.bn(self.linear(x))))


class Classifier(nn.Module):
    def __init__(self, cfg: ClsConfig, bn_eps: float):
        super().__init__()
        self.cfg = cfg
        self.backbone = EfficientNetFeatures(cfg.backbone, 8, cfg.backbone_bn_eps)
        ch = _feature_channels(self.backbone.features)
        cf = cfg.fused_channels
        self.msff = MsFF(sum(ch[i] for i in cfg.msff_features), cf, bn_eps)
        self.infection = nn.Conv2d(cf, cfg.infection_classes, 1, bias=True)
        widths = [cf + ch[8]] + list(cfg.slice_head_widths)
        self.slice_head = nn.ModuleList(
            [SliceHeadLayer(widths[i], widths[i + 1], bn_eps, cfg.dropout) for i in range(len(widths) - 1)]
        )
        self.slice_out = nn.Linear(widths[-1], cfg.num_classes, bias=True)

    def forward(self, x: torch.Tensor, taps: Taps = None) -> Dict[str, torch.Tensor]:
        wanted = sorted(set(self.cfg.msff_features) | {8})
        f = self.backbone(x, list(range(9)) if taps is not None else wanted)
        for i, t in f.items():
            _tap(taps, f"cls.f{i}", t)
        m = self.msff([f[i] for i in self.cfg.msff_features])
        _tap(taps, "cls.msff", m)
        inf_logits = self.infection(m)
        _tap(taps, "cls.infection_logits", inf_logits)
        p = torch.softmax(inf_logits, dim=1)[:, 1:2]  # (B, 1, h8, w8)
        a = (m * (1 + p)).mean(dim=(2, 3))
        g = f[8].mean(dim=(2, 3))
        v = torch.cat([a, g], dim=1)  # CHOICE: order (a, g) as written in MODEL.md
        _tap(taps, "cls.pool_a", a)
        _tap(taps, "cls.pool_g", g)
        e = v
        for i, layer in enumerate(self.slice_head):
            e = layer(e)
            _tap(taps, f"cls.slice_hidden{i + 1}", e)
        return {
            "infection_logits_s8": inf_logits,
            "infection_prob_s8": p,
            "slice_embedding": e,
            "slice_logits": self.slice_out(e),
        }


class PatientHead(nn.Module):
    """concat(mean(e), max(e)) over qualifying slices (mean first) -> Linear -> ReLU -> Linear."""

    def __init__(self, emb: int, hidden: int, n_classes: int):
        super().__init__()
        self.fc1 = nn.Linear(2 * emb, hidden, bias=True)
        self.fc2 = nn.Linear(hidden, n_classes, bias=True)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(pooled)))


# --------------------------------------------------------------------------------------
# The whole model
# --------------------------------------------------------------------------------------

class TwoStageModel(nn.Module):
    """State-dict prefixes: ``seg.`` (GR-U-Net), ``cls.`` (classifier), ``patient.``
    (patient head).

    ``forward(windowed)`` takes slices already windowed to [0, 1] and resized to the
    model size, shape (B, 1, H, W) (any H, W; the engine uses input_size).  Use
    ``preprocess_hu`` for HU input.  All B slices belong to one patient unless
    ``patient_ids`` (B,) says otherwise.

    Returned dict (stable names):
      lung_logits        (B, 1, H, W)   stage-1 logits
      lung_prob          (B, 1, H, W)   sigmoid(lung_logits)
      lung_mask          (B, 1, H, W)   float 0/1, lung_prob > lung_threshold
                                        (or the given ``lung_mask`` when teacher forcing)
      lung_area          (B,)           fraction of the slice covered by lung_mask
      cls_input          (B, 3, H, W)   normalised stage-2 input
      infection_logits_s8 (B, 2, h8, w8)
      infection_prob_s8  (B, 1, h8, w8) P on the features[3] grid
      infection_prob     (B, 1, H, W)   P resized bilinearly to input resolution
      slice_embedding    (B, E)
      slice_logits       (B, K)
      slice_used         (B,) bool      lung_area >= lung_area_threshold
      patient_ids        (P,)           sorted distinct ids; row order of the next three
      patient_logits     (P, K)         NaN rows where no slice qualified (never a guess)
      patient_no_lung    (P,) bool      True when no slice of that patient qualified
      patient_slices_used (P,) long
      intermediates      dict name -> tensor (only with return_intermediates=True)
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.seg = GRUNet(cfg.seg, cfg.bn_eps)
        self.cls = Classifier(cfg.cls, cfg.bn_eps)
        self.patient = PatientHead(cfg.cls.embedding_dim, cfg.cls.patient_hidden, cfg.cls.num_classes)

    def forward(
        self,
        windowed: torch.Tensor,
        lung_mask: Optional[torch.Tensor] = None,
        patient_ids: Optional[torch.Tensor] = None,
        return_intermediates: bool = False,
    ) -> Dict[str, torch.Tensor]:
        pre = self.config.preprocess
        if windowed.dim() == 3:
            windowed = windowed[:, None]
        taps: Taps = {} if return_intermediates else None
        b, _, h, w = windowed.shape
        out: Dict[str, torch.Tensor] = {}

        # Stage 1.
        x1 = normalise(windowed, pre)
        _tap(taps, "seg.input", x1)
        lung_logits = self.seg(x1, taps)
        lung_prob = torch.sigmoid(lung_logits)
        out["lung_logits"] = lung_logits
        out["lung_prob"] = lung_prob

        # CHOICE (training): a ground-truth lung_mask may be given (teacher forcing); it
        # then replaces the predicted mask for the stage-2 input and for slice selection.
        # The mask is a hard threshold, so no gradient flows from stage 2 into stage 1.
        if lung_mask is None:
            mask = (lung_prob > pre.lung_threshold).to(windowed.dtype)
        else:
            mask = (lung_mask.reshape(b, 1, h, w) > 0.5).to(windowed.dtype)
        out["lung_mask"] = mask
        # CHOICE: lung area measured on the mask at model input resolution.
        area = mask.mean(dim=(1, 2, 3))
        out["lung_area"] = area

        # Stage 2 input: outside the mask -> window value 0, then replicate + normalise.
        masked = torch.where(mask > 0, windowed, torch.full_like(windowed, pre.outside_mask_value))
        x2 = normalise(masked, pre)
        out["cls_input"] = x2
        _tap(taps, "cls.input", x2)
        c = self.cls(x2, taps)
        out.update(c)
        out["infection_prob"] = resize(c["infection_prob_s8"], (h, w))

        # Patient head.
        used = area >= pre.lung_area_threshold
        out["slice_used"] = used
        if patient_ids is None:
            patient_ids = torch.zeros(b, dtype=torch.long, device=windowed.device)
        ids = torch.unique(patient_ids, sorted=True)
        e = c["slice_embedding"]
        logits, no_lung, n_used = [], [], []
        for pid in ids:
            sel = (patient_ids == pid) & used
            k = int(sel.sum())
            n_used.append(k)
            if k == 0:
                no_lung.append(True)
                logits.append(torch.full((self.config.cls.num_classes,), float("nan"),
                                         dtype=e.dtype, device=e.device))
                continue
            no_lung.append(False)
            es = e[sel]
            pooled = torch.cat([es.mean(dim=0), es.max(dim=0).values], dim=0)
            _tap(taps, f"patient.pooled.{int(pid)}", pooled)
            logits.append(self.patient(pooled[None])[0])
        out["patient_ids"] = ids
        out["patient_logits"] = torch.stack(logits, 0)
        out["patient_no_lung"] = torch.tensor(no_lung, dtype=torch.bool, device=windowed.device)
        out["patient_slices_used"] = torch.tensor(n_used, dtype=torch.long, device=windowed.device)
        if taps is not None:
            out["intermediates"] = taps
        return out

    def forward_hu(self, hu: torch.Tensor, **kw) -> Dict[str, torch.Tensor]:
        return self.forward(preprocess_hu(hu, self.config), **kw)


def build_model(cfg: ModelConfig, seed: Optional[int] = 0) -> TwoStageModel:
    """Random-init model; identical parameters for identical (cfg, seed)."""
    if seed is not None:
        torch.manual_seed(seed)
    return TwoStageModel(cfg)


def exported_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """state_dict without BatchNorm ``num_batches_tracked`` (not needed for inference:
    it only matters for BN momentum=None, which nothing here uses)."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def load_exported_state_dict(model: nn.Module, tensors: Dict[str, torch.Tensor]) -> None:
    """Load tensors written by weights/export.py (num_batches_tracked absent)."""
    missing, unexpected = model.load_state_dict(
        {k: v.to(torch.float32) for k, v in tensors.items()}, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise KeyError(f"state dict mismatch: missing={missing[:10]} unexpected={unexpected[:10]}")


@torch.no_grad()
def randomize_batchnorm(model: nn.Module, generator: torch.Generator) -> None:
    """Give every BatchNorm non-trivial running stats and affine params, so that a
    parity test against the engine exercises BN (torchvision init leaves BN at identity:
    weight 1, bias 0, mean 0, var 1).  Ranges keep activations O(1)."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=generator) * 1.0 + 0.5)
            m.weight.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
            m.bias.copy_(torch.randn(n, generator=generator) * 0.1)
