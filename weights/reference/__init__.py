"""PyTorch reference of the covidct two-stage model (GR-U-Net + EfficientNet classifier).

Spec: docs/model.md (the team's model specification, summarised).  Weights layout: weights/README.md.
"""

from .config import (
    FORMAT_VERSION,
    ClsConfig,
    ModelConfig,
    PreprocessConfig,
    SegConfig,
    default_config,
    get_config,
    tiny_config,
    torchvision_bn_eps,
)
from .model import (
    TwoStageModel,
    build_model,
    exported_state_dict,
    hu_from_stored,
    load_exported_state_dict,
    normalise,
    preprocess_hu,
    randomize_batchnorm,
    resize,
    window,
)
from .losses import LossWeights, compute_losses, dice_loss, make_optimizer, random_batch, train_step

__all__ = [
    "FORMAT_VERSION", "ClsConfig", "ModelConfig", "PreprocessConfig", "SegConfig",
    "default_config", "get_config", "tiny_config", "torchvision_bn_eps",
    "TwoStageModel", "build_model", "exported_state_dict", "hu_from_stored",
    "load_exported_state_dict", "normalise", "preprocess_hu", "randomize_batchnorm",
    "resize", "window",
    "LossWeights", "compute_losses", "dice_loss", "make_optimizer", "random_batch", "train_step",
]
