#!/usr/bin/env python3
"""Export the two-stage model to a .safetensors file the covidct engine loads.

Random init (for parity fixtures):
    /usr/bin/python3 weights/export.py --config tiny --seed 0 --out tiny.safetensors --randomize-bn
Trained weights:
    /usr/bin/python3 weights/export.py --config default --from-checkpoint model.pt --out model.safetensors

Layout: see weights/README.md.  Tensors are written in ``state_dict()`` order, named
exactly as in ``TwoStageModel.state_dict()``; BatchNorm ``num_batches_tracked`` is
skipped (inference never needs it).  Metadata (all values are strings):
    covidct.format      FORMAT_VERSION ("1")
    covidct.config      JSON of ModelConfig without "preprocess"
    covidct.preprocess  JSON of PreprocessConfig
    covidct.dtype       "f32" | "f16" | "bf16"
    covidct.source      how the weights were made (seed / checkpoint)
    covidct.torch       torch version / torchvision version used
  optional (train.py writes them; --meta KEY=VALUE adds any):
    covidct.trained_on    what the weights were trained on (free text)
    covidct.intended_use  e.g. "trained on synthetic data, not for diagnosis"; shown with every output
    covidct.training      JSON: recipe, seed, schedule, validation figures
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, Optional

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import torch  # noqa: E402
import torchvision  # noqa: E402

import safetensors_io  # noqa: E402
from reference import (  # noqa: E402
    FORMAT_VERSION,
    ModelConfig,
    TwoStageModel,
    build_model,
    exported_state_dict,
    get_config,
    load_exported_state_dict,
    randomize_batchnorm,
)

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def metadata_for(cfg: ModelConfig, dtype: str, source: str,
                 extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The ``__metadata__`` of a weights file.  ``extra`` adds keys (all strings) such as
    ``covidct.trained_on``, ``covidct.intended_use`` and ``covidct.training`` (weights/README.md);
    it may not override the format keys."""
    md = {
        "covidct.format": FORMAT_VERSION,
        "covidct.config": json.dumps(cfg.model_dict()),
        "covidct.preprocess": json.dumps(cfg.preprocess.to_dict()),
        "covidct.dtype": dtype,
        "covidct.source": source,
        "covidct.torch": f"torch {torch.__version__}; torchvision {torchvision.__version__}",
    }
    for k, v in (extra or {}).items():
        if k in md:
            raise ValueError(f"metadata key {k} is reserved")
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"metadata must be str -> str, got {k!r}: {type(v).__name__}")
        md[k] = v
    return md


def export_model(model: TwoStageModel, path: str, dtype: str = "f32", source: str = "",
                 extra_metadata: Optional[Dict[str, str]] = None) -> Dict[str, torch.Tensor]:
    """Write ``model`` to ``path``; returns the tensors as written (in the file dtype).
    ``extra_metadata``: more ``__metadata__`` keys (see metadata_for)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}")
    tensors = {}
    for k, v in exported_state_dict(model).items():
        if not v.is_floating_point():
            raise TypeError(f"{k}: unexpected non-float tensor {v.dtype}")
        tensors[k] = v.detach().to(DTYPES[dtype]).contiguous()
    safetensors_io.save(tensors, metadata_for(model.config, dtype, source, extra_metadata), path)
    return tensors


def load_model(path: str) -> TwoStageModel:
    """Rebuild a TwoStageModel (float32, eval mode) from an exported file."""
    tensors, metadata = safetensors_io.load(path)
    fmt = metadata.get("covidct.format")
    if fmt != FORMAT_VERSION:
        raise ValueError(f"{path}: covidct.format {fmt!r}, expected {FORMAT_VERSION!r}")
    cfg = ModelConfig.from_metadata(metadata)
    model = build_model(cfg, seed=None)
    load_exported_state_dict(model, tensors)
    return model.eval()


def _checkpoint_state(path: str):
    ckpt = torch.load(path, map_location="cpu")
    cfg_dict = None
    if isinstance(ckpt, dict) and ("state_dict" in ckpt or "model" in ckpt):
        cfg_dict = ckpt.get("config")
        sd = ckpt.get("state_dict", ckpt.get("model"))
    else:
        sd = ckpt
    if hasattr(sd, "state_dict"):
        sd = sd.state_dict()
    if sd and all(k.startswith("module.") for k in sd):  # DataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd, cfg_dict


def short_path(path: str) -> str:
    """``folder/file`` of a path: names a checkpoint in metadata without the machine's absolute path."""
    return os.path.join(os.path.basename(os.path.dirname(os.path.abspath(path))), os.path.basename(path))


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=["tiny", "default"], default="default")
    ap.add_argument("--config-json", help="JSON file with a full ModelConfig dict (overrides --config)")
    ap.add_argument("--classifier-backbone", help="efficientnet_b0..b7 (overrides the config's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--randomize-bn", action="store_true",
                    help="random BN running stats and affine params (parity fixtures)")
    ap.add_argument("--from-checkpoint", help="torch .pt with a TwoStageModel state dict "
                    "(or {'state_dict'|'model': ..., 'config': ModelConfig dict})")
    ap.add_argument("--stage1-from", help="with --from-checkpoint: take stage 1 (the GR-U-Net, 'seg.*') from this "
                    "checkpoint of the same config instead (stage 2 and the patient head stay the first one's)")
    ap.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                    help="extra metadata, e.g. covidct.intended_use='trained on synthetic data, not for diagnosis'")
    args = ap.parse_args(argv)
    extra = {}
    for kv in args.meta:
        if "=" not in kv:
            raise SystemExit(f"--meta {kv!r}: expected KEY=VALUE")
        k, v = kv.split("=", 1)
        extra[k] = v

    if args.config_json:
        with open(args.config_json) as f:
            cfg = ModelConfig.from_dict(json.load(f))
    else:
        cfg = get_config(args.config, args.classifier_backbone)

    if args.stage1_from and not args.from_checkpoint:
        raise SystemExit("--stage1-from needs --from-checkpoint")
    if args.from_checkpoint:
        sd, cfg_dict = _checkpoint_state(args.from_checkpoint)
        if cfg_dict is not None:
            cfg = ModelConfig.from_dict(cfg_dict)
        model = build_model(cfg, seed=args.seed)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise SystemExit(f"checkpoint does not match config: missing={missing[:8]} unexpected={unexpected[:8]}")
        source = f"trained checkpoint {short_path(args.from_checkpoint)}"
        if args.stage1_from:
            sd1, _ = _checkpoint_state(args.stage1_from)
            seg = {k: v for k, v in sd1.items() if k.startswith("seg.")}
            own = {k: v for k, v in model.state_dict().items() if k.startswith("seg.")}
            if set(seg) != set(own) or any(seg[k].shape != own[k].shape for k in seg):
                raise SystemExit(f"{args.stage1_from}: its stage 1 does not match the config")
            model.load_state_dict(seg, strict=False)
            source += f", stage 1 from {short_path(args.stage1_from)}"
        if args.randomize_bn:
            raise SystemExit("--randomize-bn only makes sense for random init")
    else:
        model = build_model(cfg, seed=args.seed)
        source = f"random init, seed {args.seed}"
        if args.randomize_bn:
            randomize_batchnorm(model, torch.Generator().manual_seed(args.seed))
            source += ", randomized BN"
    model.eval()
    tensors = export_model(model, args.out, args.dtype, source, extra)
    n = sum(t.numel() for t in tensors.values())
    print(f"wrote {args.out}: {len(tensors)} tensors, {n} values, dtype {args.dtype}, "
          f"{os.path.getsize(args.out)} bytes ({source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
