"""Configuration of the two-stage COVID-19 / CAP model (specified in docs/model.md).

Every size the engine needs lives here, not in code.  The config is stored in the
weights file (``covidct.config`` = ``ModelConfig.to_dict()`` without ``preprocess``,
``covidct.preprocess`` = ``PreprocessConfig.to_dict()``), so the engine and this
reference never have to agree on constants out of band.

All dataclasses round-trip through plain JSON: ``ModelConfig.from_dict(json.loads(
json.dumps(cfg.to_dict()))) == cfg``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional

# Version of the weights-file layout (tensor names + metadata keys).  Bump when a name
# or the meaning of a config key changes.
FORMAT_VERSION = "1"

EFFICIENTNET_VARIANTS = tuple(f"efficientnet_b{i}" for i in range(8))

# Output channels of torchvision EfficientNet features[0..8] (torchvision 0.14), for
# reference and for sanity checks.  The engine should derive channels from tensor
# shapes; this table is informative.
EFFICIENTNET_FEATURE_CHANNELS: Dict[str, List[int]] = {
    "efficientnet_b0": [32, 16, 24, 40, 80, 112, 192, 320, 1280],
    "efficientnet_b1": [32, 16, 24, 40, 80, 112, 192, 320, 1280],
    "efficientnet_b2": [32, 16, 24, 48, 88, 120, 208, 352, 1408],
    "efficientnet_b3": [40, 24, 32, 48, 96, 136, 232, 384, 1536],
    "efficientnet_b4": [48, 24, 32, 56, 112, 160, 272, 448, 1792],
    "efficientnet_b5": [48, 24, 40, 64, 128, 176, 304, 512, 2048],
    "efficientnet_b6": [56, 32, 40, 72, 144, 200, 344, 576, 2304],
    "efficientnet_b7": [64, 32, 48, 80, 160, 224, 384, 640, 2560],
}


def torchvision_bn_eps(variant: str) -> float:
    """BatchNorm eps torchvision uses inside an EfficientNet backbone.

    NOTE (MODEL.md says "torchvision's is 1e-5"): that holds for B0..B4 only.  torchvision
    builds B5, B6 and B7 with ``BatchNorm2d(eps=1e-3, momentum=0.01)`` (the ImageNet
    weights were trained that way).  We keep torchvision's value so pretrained weights load
    unchanged, and record it explicitly in the config (``backbone_bn_eps``/``encoder_bn_eps``)
    so the engine never has to guess.
    """
    _check_variant(variant)
    return 1e-3 if int(variant[-1]) >= 5 else 1e-5


def _check_variant(variant: str) -> None:
    if variant not in EFFICIENTNET_VARIANTS:
        raise ValueError(f"unknown EfficientNet variant {variant!r}; expected one of {EFFICIENTNET_VARIANTS}")


class _JsonMixin:
    def to_dict(self) -> Dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))  # deep copy, JSON types only

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]):
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown config keys {sorted(unknown)}")
        return cls(**{k: v for k, v in d.items()})

    @classmethod
    def from_json(cls, s: str):
        return cls.from_dict(json.loads(s))


@dataclass
class PreprocessConfig(_JsonMixin):
    """Per-slice preprocessing (MODEL.md "Input and preprocessing")."""

    # HU window: clip to [window_min, window_max], then scale to [0, 1].
    window_min: float = -1150.0
    window_max: float = 350.0
    # DICOM pixel-padding values map to this HU before windowing.
    padding_hu: float = -1024.0
    # In-plane resize to the model size (ModelConfig.input_size): bilinear,
    # align_corners=False, no antialiasing (choice: MODEL.md only says "bilinear").
    resize_mode: str = "bilinear"
    resize_align_corners: bool = False
    resize_antialias: bool = False
    # Replicate the window to 3 channels, then (x - mean) / std per channel.
    mean: List[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: List[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    # Stage 1: lung mask = sigmoid(logit) > lung_threshold.
    lung_threshold: float = 0.5
    # A slice is used by the patient head when mask area / slice area >= this.
    # Area is measured on the stage-1 mask at model input resolution (choice).
    lung_area_threshold: float = 0.01
    # Infected pixel = P > infection_threshold (reporting only).
    infection_threshold: float = 0.5
    # Value (in window units, i.e. before normalisation) written outside the lung mask
    # for the stage-2 input.
    outside_mask_value: float = 0.0


@dataclass
class SegConfig(_JsonMixin):
    """Stage 1: GR-U-Net."""

    encoder: str = "efficientnet_b0"
    # BN eps inside the torchvision encoder; None -> torchvision's value for the variant.
    encoder_bn_eps: Optional[float] = None
    # Dense bottleneck.
    dense_blocks: int = 3
    bottleneck_channels: int = 256
    # Decoder channels for stages k = 3, 2, 1 (strides 8, 4, 2).
    decoder_channels: List[int] = field(default_factory=lambda: [128, 64, 32])
    head_channels: int = 16
    # scSE channel squeeze: hidden = max(C // se_reduction, se_min_channels).
    se_reduction: int = 8
    se_min_channels: int = 4
    # ConvGRU kernel size (padding = kernel // 2).
    gru_kernel: int = 3

    def __post_init__(self) -> None:
        _check_variant(self.encoder)
        if self.encoder_bn_eps is None:
            self.encoder_bn_eps = torchvision_bn_eps(self.encoder)
        if len(self.decoder_channels) != 3:
            raise ValueError("decoder_channels must have 3 entries (stages 3, 2, 1)")
        if self.dense_blocks < 1:
            raise ValueError("dense_blocks must be >= 1")
        self.decoder_channels = list(self.decoder_channels)

    def se_hidden(self, c: int) -> int:
        return max(c // self.se_reduction, self.se_min_channels)


@dataclass
class ClsConfig(_JsonMixin):
    """Stage 2: EfficientNet classifier with MsFF, infection branch and heads."""

    backbone: str = "efficientnet_b7"
    # BN eps inside the torchvision backbone; None -> torchvision's value for the variant
    # (1e-3 for B5..B7, 1e-5 for B0..B4).
    backbone_bn_eps: Optional[float] = None
    # Indices into backbone.features whose outputs are fused (first one sets the grid).
    msff_features: List[int] = field(default_factory=lambda: [3, 5, 8])
    fused_channels: int = 256  # Cf
    infection_classes: int = 2  # softmax over channels; P = channel 1
    slice_head_widths: List[int] = field(default_factory=lambda: [512, 256])
    num_classes: int = 3
    class_names: List[str] = field(default_factory=lambda: ["COVID-19", "CAP", "no infection"])
    patient_hidden: int = 128
    dropout: float = 0.5

    def __post_init__(self) -> None:
        _check_variant(self.backbone)
        if self.backbone_bn_eps is None:
            self.backbone_bn_eps = torchvision_bn_eps(self.backbone)
        if len(self.class_names) != self.num_classes:
            raise ValueError("class_names must have num_classes entries")
        if self.infection_classes != 2:
            raise ValueError("infection branch is defined for 2 channels (background, infection)")
        if not self.msff_features or self.msff_features[-1] != 8:
            # g = GAP(features[8]) is always needed; features must run to 8 anyway.
            raise ValueError("msff_features must end with 8 (the head conv)")
        if sorted(self.msff_features) != list(self.msff_features):
            raise ValueError("msff_features must be increasing")
        if len(self.slice_head_widths) < 1:
            raise ValueError("slice_head_widths needs at least one layer")
        self.msff_features = list(self.msff_features)
        self.slice_head_widths = list(self.slice_head_widths)
        self.class_names = list(self.class_names)

    @property
    def embedding_dim(self) -> int:
        return self.slice_head_widths[-1]


@dataclass
class ModelConfig(_JsonMixin):
    seg: SegConfig = field(default_factory=SegConfig)
    cls: ClsConfig = field(default_factory=ClsConfig)
    # eps of every BatchNorm this project adds (decoder, bottleneck, heads, MsFF, BN1d).
    bn_eps: float = 1e-5
    # Model in-plane size (square); slices are resized to input_size x input_size.
    # The network itself accepts any size (tests run at 64x64 and 64x48).
    input_size: int = 512
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ModelConfig":
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"ModelConfig: unknown config keys {sorted(unknown)}")
        seg = SegConfig.from_dict(d.pop("seg", {}))
        cls_ = ClsConfig.from_dict(d.pop("cls", {}))
        pre = PreprocessConfig.from_dict(d.pop("preprocess", {}))
        return cls(seg=seg, cls=cls_, preprocess=pre, **d)

    # The weights file stores model config and preprocessing separately.
    def model_dict(self) -> Dict[str, Any]:
        d = self.to_dict()
        d.pop("preprocess")
        return d

    @classmethod
    def from_metadata(cls, metadata: Dict[str, str]) -> "ModelConfig":
        d = json.loads(metadata["covidct.config"])
        if "covidct.preprocess" in metadata:
            d["preprocess"] = json.loads(metadata["covidct.preprocess"])
        return cls.from_dict(d)


def default_config() -> ModelConfig:
    """The full-size model of MODEL.md (GR-U-Net on B0, classifier on B7, 512x512)."""
    return ModelConfig()


def tiny_config(classifier_backbone: str = "efficientnet_b0") -> ModelConfig:
    """Small config for fast tests: B0 encoder + B0 (or chosen) classifier, narrow heads."""
    return ModelConfig(
        seg=SegConfig(
            encoder="efficientnet_b0",
            dense_blocks=3,
            bottleneck_channels=32,
            decoder_channels=[16, 12, 8],
            head_channels=8,
            se_reduction=8,
            se_min_channels=4,
        ),
        cls=ClsConfig(
            backbone=classifier_backbone,
            fused_channels=16,
            slice_head_widths=[32, 16],
            patient_hidden=16,
        ),
        input_size=64,
    )


def get_config(name: str, classifier_backbone: Optional[str] = None) -> ModelConfig:
    if name == "default":
        cfg = default_config()
    elif name == "tiny":
        cfg = tiny_config()
    else:
        raise ValueError(f"unknown config {name!r} (expected 'tiny' or 'default')")
    if classifier_backbone is not None:
        d = cfg.to_dict()
        d["cls"]["backbone"] = classifier_backbone
        d["cls"]["backbone_bn_eps"] = None  # re-derive for the new variant
        cfg = ModelConfig.from_dict(d)
    return cfg
