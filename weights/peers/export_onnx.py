#!/usr/bin/env python3
"""Export the reference stages (or a bare torchvision EfficientNet) to ONNX for the ONNX Runtime Web peer of the
bench (bench/peers.ts). torch.onnx.export, opset 17, batch as a dynamic axis, fixed H x W; weights are
make_fixtures' deterministic ones (weights/peers/bench_models.py). Debian's torch 1.13 exports without the onnx package.

    /usr/bin/python3 weights/peers/export_onnx.py --config tiny --stage stage1 --size 64x64 --out /tmp/s1.onnx

Prints one JSON line: {"path", "inputs", "outputs", "bytes", "seconds"}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import inspect
import time
import warnings

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import torch  # noqa: E402

from bench_models import stage_module  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny", choices=["tiny", "default"])
    ap.add_argument("--stage", required=True, help="stage1 | stage2 | efficientnet_bN")
    ap.add_argument("--size", default="64x64", help="HxW")
    ap.add_argument("--out", required=True)
    ap.add_argument("--opset", type=int, default=17)
    a = ap.parse_args()
    h, w = (int(v) for v in a.size.lower().split("x"))
    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.time()
    module, inputs, outputs = stage_module(a.config, a.stage)
    x = torch.zeros(1, 3, h, w)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".part"
    # torch >= 2.9 defaults to the dynamo exporter; the TorchScript one (torch 1.13's only exporter) gives the
    # same graph on every version we run, so ask for it where the choice exists.
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (x,), tmp, opset_version=a.opset, input_names=inputs, output_names=outputs,
            dynamic_axes={n: {0: "batch"} for n in inputs + outputs}, do_constant_folding=True, **legacy,
        )
    os.replace(tmp, a.out)
    print(json.dumps({"path": a.out, "inputs": inputs, "outputs": outputs, "bytes": os.path.getsize(a.out),
                      "seconds": round(time.time() - t0, 2), "opset": a.opset, "torch": torch.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
