#!/usr/bin/env python3
"""PyTorch CPU peer of the covidct bench: times the reference model (weights/reference) at the same stages,
sizes and batches as the engine, with make_fixtures' deterministic weights (bench/bench_models.py),
torch.set_num_threads(2), inference mode.

    /usr/bin/python3 bench/torch_bench.py --config tiny --targets stage1,stage2,pipeline --sizes 64x64 \
        --batches 1,2 --repeats 3 --warmup 1

Targets: stage1 (GR-U-Net + sigmoid on a normalised slice), stage2 (classifier + infection map at input
resolution), pipeline (TwoStageModel.forward on windowed slices: normalise, stage 1, mask, stage 2, patient
head), efficientnet_bN (bare torchvision network, 1000 classes).
Every run is timed wall clock around the forward (inputs already in memory: there is no device to upload to).
Prints one JSON object per line: {"peer": "torch", "target", "batch", "height", "width", "setupMs",
"firstRunMs", "samplesMs", "device", "threads", "torch"} or {"peer": "torch", ..., "error": "..."}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import torch  # noqa: E402

from bench_models import normalised, stage_module, two_stage, windowed_slices  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny", choices=["tiny", "default"])
    ap.add_argument("--targets", default="stage1,stage2,pipeline")
    ap.add_argument("--sizes", default="64x64", help="comma-separated HxW")
    ap.add_argument("--batches", default="1")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in a.sizes.split(",")]
    batches = [int(b) for b in a.batches.split(",")]
    base = {"peer": "torch", "device": f"cpu ({a.threads} threads)", "threads": a.threads, "torch": torch.__version__}
    model = None
    model_ms = 0.0
    for target in a.targets.split(","):
        try:
            t0 = time.perf_counter()
            if target in ("stage1", "stage2", "pipeline") and model is None:
                model = two_stage(a.config)
                model_ms = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            module = model if target == "pipeline" else stage_module(a.config, target, model)[0]
            # The two-stage model is built once and shared by its stages: each reports its construction time.
            setup_ms = (time.perf_counter() - t0) * 1e3 + (model_ms if not target.startswith("efficientnet_") else 0.0)
        except Exception as e:  # noqa: BLE001
            for (h, w) in sizes:
                for b in batches:
                    print(json.dumps({**base, "target": target, "batch": b, "height": h, "width": w, "error": f"setup: {e!r}"}), flush=True)
            continue
        for (h, w) in sizes:
            for b in batches:
                rec = {**base, "target": target, "batch": b, "height": h, "width": w, "setupMs": setup_ms}
                try:
                    x = windowed_slices(b, h, w) if target == "pipeline" else normalised(b, h, w, a.config)
                    with torch.inference_mode():
                        t0 = time.perf_counter()
                        module(x)
                        rec["firstRunMs"] = (time.perf_counter() - t0) * 1e3
                        for _ in range(a.warmup):
                            module(x)
                        samples = []
                        for _ in range(a.repeats):
                            t0 = time.perf_counter()
                            module(x)
                            samples.append((time.perf_counter() - t0) * 1e3)
                    rec["samplesMs"] = samples
                except Exception as e:  # noqa: BLE001
                    rec["error"] = f"{e!r}"
                    traceback.print_exc(file=sys.stderr)
                print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
