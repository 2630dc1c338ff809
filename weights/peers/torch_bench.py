#!/usr/bin/env python3
"""PyTorch peers of the covidct bench: times the reference model (weights/reference) at the same stages,
sizes and batches as the engine, with make_fixtures' deterministic weights (weights/peers/bench_models.py),
inference mode, in one or more precision modes (``--modes``).

- `--device cpu` (peer `torch`): torch.set_num_threads(--threads), the no-GPU baseline.
- `--device cuda` (peer `torch-cuda`): the same modules on the GPU, cuDNN autotuning on; every timed run copies
  the input to the GPU and the outputs back and synchronises, as the engine's steady runs include its upload
  and readback.

Modes (each on its own copy of the module, built from the same f32 weights):

- ``f32``: strict f32, NCHW, TF32 off (``torch.backends.cuda.matmul.allow_tf32`` and
  ``torch.backends.cudnn.allow_tf32`` False).
- ``tf32-cl``: f32 tensors in channels-last, TF32 on for cuDNN convolutions and matmuls. CUDA only: on the CPU
  TF32 does not exist and the mode would time f32 channels-last under another name, so it is refused.
- ``fp16-cl``: ``module.half()`` in channels-last (weights, BatchNorm statistics and activations in fp16, no
  autocast). The input arrives as f32 (as the engine's does) and is converted to fp16 channels-last on the
  device inside the timed run; floating outputs are converted back to f32 on the device before the copy to the
  host. Debian's torch 1.13 has no CPU kernels for fp16 convolutions: on the CPU the mode fails with torch's
  own message.
- ``bf16-cl``: the same with bfloat16 (runs on the CPU with torch 1.13, and on CUDA from Ampere on).

    /usr/bin/python3 weights/peers/torch_bench.py --config tiny --targets stage1,stage2,pipeline --sizes 64x64 \
        --batches 1,2 --repeats 3 --warmup 1 --modes f32,bf16-cl

Targets: stage1 (GR-U-Net + sigmoid on a normalised slice), stage2 (classifier + infection map at input
resolution), pipeline (TwoStageModel.forward on windowed slices: normalise, stage 1, mask, stage 2, patient
head), efficientnet_bN (bare torchvision network, 1000 classes).
On the CPU every run is timed wall clock around the input conversion (a no-op in f32) and the forward.
Prints one JSON object per line and cell (target, size, batch) and mode: {"peer": "torch" | "torch-cuda",
"mode", "target", "batch", "height", "width", "setupMs", "firstRunMs", "samplesMs", "cpuSamplesMs" (the process's CPU
time, every thread, per timed run), "computeDtype", "outputsFinite",
"device", "threads", "torch"} or the same keys up to "height" with "error": "...". computeDtype is the dtype of the
module's first floating output before any conversion back to f32 (measured, not taken from the mode table);
outputsFinite says whether the first run's outputs were all finite (the pipeline's patient_logits left out: NaN
there means no slice qualified), since random weights in fp16 could overflow where f32 does not.

``--dry-run`` times nothing and runs no forward: per cell and mode it builds the module, converts it and the
input as the timed run would, and reports what the conversion produced (``"dryRun": true``, the parameters'
dtypes, how many 4-D weights are channels-last and how many only NCHW, the input's dtype and memory format,
the TF32 flags as set). It proves the mode plumbing on any machine, not that the mode runs there. With
`--device cuda` and no CUDA it converts on the CPU (device "cuda (none here)").
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import traceback

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

# torch and the models are imported in main() once the arguments are checked (importing torch takes seconds).
torch = None

# mode -> (torch dtype name, channels-last, TF32 allowed, CUDA only)
MODES = {
    "f32": ("float32", False, False, False),
    "tf32-cl": ("float32", True, True, True),
    "fp16-cl": ("float16", True, False, False),
    "bf16-cl": ("bfloat16", True, False, False),
}


def parse_modes(text: str):
    """The comma-separated mode list, or ValueError naming the unknown ones."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"unknown mode(s) {', '.join(bad) or '(none given)'} (known: {', '.join(MODES)})")
    return modes


def set_tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def memory_format(t: torch.Tensor) -> str:
    """'channels_last', 'contiguous' (NCHW), 'both' (e.g. one channel) or 'strided' for a 4-D tensor."""
    cl = t.is_contiguous(memory_format=torch.channels_last)
    nchw = t.is_contiguous()
    return "both" if cl and nchw else "channels_last" if cl else "contiguous" if nchw else "strided"


def convert_module(module: torch.nn.Module, mode: str, device: str) -> torch.nn.Module:
    """A copy of ``module`` on ``device`` in the mode's dtype and memory format (the original is untouched)."""
    dtype, cl, _, _ = MODES[mode]
    m = copy.deepcopy(module).to(device)
    if cl:
        m = m.to(memory_format=torch.channels_last)
    return m.to(getattr(torch, dtype)).eval()


def prepare_input(x: torch.Tensor, mode: str, device: str) -> torch.Tensor:
    """The f32 host input on the device in the mode's dtype and memory format (a no-op for f32 on the CPU)."""
    dtype, cl, _, _ = MODES[mode]
    x = x.to(device)
    return x.to(dtype=getattr(torch, dtype), memory_format=torch.channels_last if cl else torch.contiguous_format)


def to_host(out):
    """Floating outputs to f32 on their device, then everything to the host (synchronises)."""
    if isinstance(out, torch.Tensor):
        return (out.float() if out.is_floating_point() else out).cpu()
    if isinstance(out, dict):
        return {k: to_host(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return [to_host(v) for v in out]
    return out


def first_float_dtype(out):
    """The dtype of the first floating tensor in a module's outputs, as a string."""
    if isinstance(out, torch.Tensor):
        return str(out.dtype).replace("torch.", "") if out.is_floating_point() else None
    values = out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else []
    for v in values:
        d = first_float_dtype(v)
        if d:
            return d
    return None


def all_finite(out, skip=("patient_logits",)) -> bool:
    """Every floating host output finite (the pipeline's patient_logits are NaN by design where no slice qualified)."""
    if isinstance(out, torch.Tensor):
        return bool(torch.isfinite(out).all()) if out.is_floating_point() else True
    if isinstance(out, dict):
        return all(all_finite(v) for k, v in out.items() if k not in skip)
    if isinstance(out, (list, tuple)):
        return all(all_finite(v) for v in out)
    return True


def describe_conversion(module: torch.nn.Module, x: torch.Tensor) -> dict:
    """What a conversion produced: parameter dtypes, 4-D weights by memory format, the input's dtype and format."""
    dtypes = sorted({str(p.dtype).replace("torch.", "") for p in module.parameters()} | {str(b.dtype).replace("torch.", "") for b in module.buffers() if b.is_floating_point()})
    four_d = [p for p in module.parameters() if p.dim() == 4]
    fmts = [memory_format(p) for p in four_d]
    return {
        "paramDtypes": dtypes,
        "weights4d": len(four_d),
        "channelsLastWeights": sum(f in ("channels_last", "both") for f in fmts),
        "nchwOnlyWeights": sum(f == "contiguous" for f in fmts),
        "inputDtype": str(x.dtype).replace("torch.", ""),
        "inputMemoryFormat": memory_format(x) if x.dim() == 4 else "n/a",
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
    }


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
    ap.add_argument("--modes", default="f32", help=f"comma-separated: {', '.join(MODES)} (default f32)")
    ap.add_argument("--dry-run", action="store_true", help="build and convert per mode, report, time nothing")
    a = ap.parse_args()
    try:
        modes = parse_modes(a.modes)
    except ValueError as e:
        ap.error(f"--modes: {e}")
    global torch
    import torch as _torch

    torch = _torch
    from bench_models import normalised, stage_module, two_stage, windowed_slices
    torch.set_num_threads(a.threads)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in a.sizes.split(",")]
    batches = [int(b) for b in a.batches.split(",")]
    cuda = a.device == "cuda"
    if cuda:
        if not torch.cuda.is_available() and not a.dry_run:
            print(json.dumps({"peer": "torch-cuda", "error": "torch.cuda.is_available() is False"}), flush=True)
            return 0
        torch.backends.cudnn.benchmark = True
        dev_name = f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cuda (none here)"
        base = {"peer": "torch-cuda", "device": dev_name, "threads": a.threads, "torch": torch.__version__}
    else:
        base = {"peer": "torch", "device": f"cpu ({a.threads} threads)", "threads": a.threads, "torch": torch.__version__}
    device = "cuda" if cuda and torch.cuda.is_available() else "cpu"
    model = None
    model_ms = 0.0
    for target in a.targets.split(","):
        try:
            t0 = time.perf_counter()
            if target in ("stage1", "stage2", "pipeline") and model is None:
                model = two_stage(a.config)
                model_ms = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            f32_module = model if target == "pipeline" else stage_module(a.config, target, model)[0]
            # The two-stage model is built once and shared by its stages: each reports its construction time.
            build_ms = (time.perf_counter() - t0) * 1e3 + (model_ms if not target.startswith("efficientnet_") else 0.0)
        except Exception as e:  # noqa: BLE001
            for mode in modes:
                for (h, w) in sizes:
                    for b in batches:
                        print(json.dumps({**base, "mode": mode, "target": target, "batch": b, "height": h, "width": w, "error": f"setup: {type(e).__name__}: {e}"}), flush=True)
            continue
        for mode in modes:
            _, _, tf32, cuda_only = MODES[mode]
            set_tf32(tf32)
            cells = [(h, w, b) for (h, w) in sizes for b in batches]
            if cuda_only and not cuda and not a.dry_run:
                for (h, w, b) in cells:
                    print(json.dumps({**base, "mode": mode, "target": target, "batch": b, "height": h, "width": w,
                                      "error": f"{mode} needs CUDA: TF32 is a CUDA setting, on the CPU this would time f32 channels-last under another name"}), flush=True)
                continue
            module = None
            try:
                t0 = time.perf_counter()
                module = convert_module(f32_module, mode, device)
                if device == "cuda":
                    torch.cuda.synchronize()
                setup_ms = build_ms + (time.perf_counter() - t0) * 1e3
            except Exception as e:  # noqa: BLE001
                for (h, w, b) in cells:
                    print(json.dumps({**base, "mode": mode, "target": target, "batch": b, "height": h, "width": w, "error": f"conversion to {mode}: {type(e).__name__}: {e}"}), flush=True)
                continue
            for (h, w, b) in cells:
                rec = {**base, "mode": mode, "target": target, "batch": b, "height": h, "width": w, "setupMs": setup_ms}
                try:
                    x = windowed_slices(b, h, w) if target == "pipeline" else normalised(b, h, w, a.config)
                    if a.dry_run:
                        rec.update({"dryRun": True, **describe_conversion(module, prepare_input(x, mode, device))})
                        print(json.dumps(rec), flush=True)
                        continue
                    with torch.inference_mode():
                        t0 = time.perf_counter()
                        raw = module(prepare_input(x, mode, device))
                        host = to_host(raw)
                        rec["firstRunMs"] = (time.perf_counter() - t0) * 1e3
                        rec["computeDtype"] = first_float_dtype(raw)
                        rec["outputsFinite"] = all_finite(host)
                        del host
                        del raw
                        for _ in range(a.warmup):
                            to_host(module(prepare_input(x, mode, device)))
                        samples = []
                        cpu_samples = []
                        for _ in range(a.repeats):
                            c0 = time.process_time()
                            t0 = time.perf_counter()
                            to_host(module(prepare_input(x, mode, device)))
                            samples.append((time.perf_counter() - t0) * 1e3)
                            cpu_samples.append((time.process_time() - c0) * 1e3)
                    rec["samplesMs"] = samples
                    rec["cpuSamplesMs"] = cpu_samples
                except Exception as e:  # noqa: BLE001
                    rec["error"] = f"{type(e).__name__}: {e}"
                    traceback.print_exc(file=sys.stderr)
                print(json.dumps(rec), flush=True)
            del module
            if device == "cuda":
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
