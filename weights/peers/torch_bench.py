#!/usr/bin/env python3
"""PyTorch peers of the covidct bench: times the reference model (weights/reference) at the same stages,
sizes and batches as the engine, with make_fixtures' deterministic weights (weights/peers/bench_models.py),
inference mode, f32.

- `--device cpu` (peer `torch`): torch.set_num_threads(--threads), the no-GPU baseline.
- `--device cuda` (peer `torch-cuda`): the same modules on the GPU, strict f32 (TF32 off), cuDNN autotuning on;
  every timed run copies the input to the GPU and the outputs back and synchronises, as the engine's steady
  runs include its upload and readback.

    /usr/bin/python3 weights/peers/torch_bench.py --config tiny --targets stage1,stage2,pipeline --sizes 64x64 \
        --batches 1,2 --repeats 3 --warmup 1

Targets: stage1 (GR-U-Net + sigmoid on a normalised slice), stage2 (classifier + infection map at input
resolution), pipeline (TwoStageModel.forward on windowed slices: normalise, stage 1, mask, stage 2, patient
head), efficientnet_bN (bare torchvision network, 1000 classes).
On the CPU every run is timed wall clock around the forward (inputs already in memory: no device to upload to).
Prints one JSON object per line: {"peer": "torch" | "torch-cuda", "target", "batch", "height", "width", "setupMs",
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


def to_cpu(out):
    """Copies a module's outputs (tensors, possibly in tuples, lists or dicts) to the host; synchronises."""
    if isinstance(out, torch.Tensor):
        return out.cpu()
    if isinstance(out, dict):
        return {k: to_cpu(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return [to_cpu(v) for v in out]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny", choices=["tiny", "default"])
    ap.add_argument("--targets", default="stage1,stage2,pipeline")
    ap.add_argument("--sizes", default="64x64", help="comma-separated HxW")
    ap.add_argument("--batches", default="1")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in a.sizes.split(",")]
    batches = [int(b) for b in a.batches.split(",")]
    cuda = a.device == "cuda"
    if cuda:
        if not torch.cuda.is_available():
            print(json.dumps({"peer": "torch-cuda", "error": "torch.cuda.is_available() is False"}), flush=True)
            return 0
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        dev_name = f"cuda: {torch.cuda.get_device_name(0)} (f32, TF32 off)"
        base = {"peer": "torch-cuda", "device": dev_name, "threads": a.threads, "torch": torch.__version__}
    else:
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
            if cuda:
                module = module.to("cuda")
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
                    run = (lambda: to_cpu(module(x.to("cuda")))) if cuda else (lambda: module(x))
                    with torch.inference_mode():
                        t0 = time.perf_counter()
                        run()
                        rec["firstRunMs"] = (time.perf_counter() - t0) * 1e3
                        for _ in range(a.warmup):
                            run()
                        samples = []
                        for _ in range(a.repeats):
                            t0 = time.perf_counter()
                            run()
                            samples.append((time.perf_counter() - t0) * 1e3)
                    rec["samplesMs"] = samples
                except Exception as e:  # noqa: BLE001
                    rec["error"] = f"{e!r}"
                    traceback.print_exc(file=sys.stderr)
                print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
