#!/usr/bin/env python3
"""Average the weights of several checkpoints of one model (a "uniform model soup", Wortsman et al. 2022).

    /usr/bin/python3 weights/average.py --out runs/soup.pt runs/a/best.pt runs/b/best.pt runs/c/best.pt

Meant for runs fine-tuned from one parent checkpoint (same config, same starting weights, other seeds or data):
their average often generalises better than each of them. Every floating-point tensor, batch-norm running
statistics included, becomes the element-wise mean (computed in float64, stored in the first checkpoint's dtype);
integer tensors (batch-norm ``num_batches_tracked``) are taken from the first checkpoint. The checkpoints must hold
the same tensor names and shapes; anything else is an error that names the file and the tensor.

The output is ``{'model': state_dict, 'averaged_from': [paths], 'config': the inputs' ModelConfig dict}`` (config
when they record one; they must agree), which ``train.py --init-from`` and
``export.py --from-checkpoint`` read. The average's patient head is an average too: refit it with
``train.py --init-from SOUP --seg-epochs 0 --cls-epochs 0 --joint-epochs 0 --patient-epochs N`` (docs/training.md).
Inputs may be train.py checkpoints, plain state dicts or exported .safetensors files.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import torch  # noqa: E402

from train import checkpoint_state  # noqa: E402


def average_state_dicts(sds: List[Dict[str, torch.Tensor]], names: List[str]) -> Dict[str, torch.Tensor]:
    """Element-wise mean of the floating-point tensors of ``sds`` (the first's integer tensors kept as they are);
    ``names`` name the state dicts in errors."""
    if len(sds) < 2:
        raise ValueError("averaging needs at least two checkpoints")
    for sd, name in zip(sds, names):
        if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise ValueError(f"{name}: not a model state dict (a mapping of tensor names to tensors)")
    ref, ref_name = sds[0], names[0]
    for sd, name in zip(sds[1:], names[1:]):
        missing = [k for k in ref if k not in sd]
        extra = [k for k in sd if k not in ref]
        if missing or extra:
            raise ValueError(f"{name}: tensors differ from {ref_name}: missing {missing[:4]}, unexpected {extra[:4]}")
        for k, v in ref.items():
            if tuple(sd[k].shape) != tuple(v.shape):
                raise ValueError(f"{name}: tensor {k} has shape {tuple(sd[k].shape)}, {ref_name} has {tuple(v.shape)}")
    out = {}
    for k, v in ref.items():
        if v.dtype.is_floating_point:
            acc = torch.zeros(v.shape, dtype=torch.float64)
            for sd in sds:
                acc += sd[k].detach().to(torch.float64)
            out[k] = (acc / len(sds)).to(v.dtype)
        else:
            out[k] = v.clone()
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+", help="two or more checkpoints of the same model config")
    ap.add_argument("--out", required=True, help="where to write the averaged checkpoint (.pt)")
    a = ap.parse_args(argv)
    if len(a.checkpoints) < 2:
        ap.error("give at least two checkpoints")
    sds, names, cfg = [], [], None
    for p in a.checkpoints:
        if not os.path.isfile(p):
            raise SystemExit(f"{p}: no such file")
        try:
            sd, name, c = checkpoint_state(p)
        except Exception as e:  # a truncated or foreign file: name it instead of a traceback
            raise SystemExit(f"{p}: cannot read it as a checkpoint ({type(e).__name__}: {e})")
        sds.append(sd)
        names.append(name)
        if c is not None and cfg is not None and c != cfg:
            raise SystemExit(f"{name}: its model config differs from the checkpoints before it")
        cfg = cfg if c is None else c
    try:
        avg = average_state_dicts(sds, names)
    except ValueError as e:
        raise SystemExit(str(e))
    tmp = a.out + ".partial"
    out = {"model": avg, "averaged_from": names}
    if cfg is not None:
        out["config"] = cfg  # export.py takes the input size and widths from here
    torch.save(out, tmp)
    os.replace(tmp, a.out)
    print(f"{a.out}: mean of {len(names)} checkpoints ({', '.join(names)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
