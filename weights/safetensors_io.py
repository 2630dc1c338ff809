"""Hand-written .safetensors reader/writer (no `safetensors` package needed).

Format (https://github.com/huggingface/safetensors):
  bytes [0, 8)        N = header length, unsigned 64-bit little-endian
  bytes [8, 8+N)      UTF-8 JSON object:
                        {"__metadata__": {str: str, ...},            (optional)
                         "<tensor name>": {"dtype": "F32",
                                           "shape": [d0, d1, ...],
                                           "data_offsets": [begin, end]}, ...}
                      padded at the end with spaces (0x20) so 8+N is a multiple of 8
  bytes [8+N, ...)    the data buffer; data_offsets are relative to its start.
Tensors are little-endian, C-contiguous (row-major).  This writer stores tensors
back-to-back in header (insertion) order with no gaps, the first at offset 0, so the
buffer length equals the last end offset.  The reader accepts any valid file (any
order), but refuses overlaps, gaps and out-of-range offsets.

Usage:
    save({"a": torch.zeros(2, 3)}, {"key": "value"}, "x.safetensors")
    tensors, metadata = load("x.safetensors")
"""

from __future__ import annotations

import json
import struct
import sys
from collections import OrderedDict
from typing import Dict, Mapping, Tuple

import torch

if sys.byteorder != "little":  # pragma: no cover
    raise RuntimeError("safetensors_io assumes a little-endian host")

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)  # numpy has no bfloat16; same bits
    return t.numpy().tobytes()


def save(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None, path: str) -> None:
    """Write ``tensors`` (name -> torch.Tensor or numpy array) in the given order.
    ``metadata`` values must be strings (the format requires it)."""
    header: "OrderedDict[str, object]" = OrderedDict()
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"metadata must map str -> str, got {k!r}: {type(v).__name__}")
        header["__metadata__"] = dict(metadata)
    blobs = []
    offset = 0
    for name, t in tensors.items():
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved")
        if not isinstance(t, torch.Tensor):
            t = torch.from_numpy(t)
        if t.dtype not in _NAMES:
            raise TypeError(f"{name}: unsupported dtype {t.dtype}")
        b = _tensor_bytes(t)
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    hjson = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hjson += b" " * ((8 - (8 + len(hjson)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def read_header(path: str) -> Tuple[Dict[str, dict], Dict[str, str], int]:
    """(tensor entries in file order, metadata, byte offset of the data buffer)."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError("file too short for a safetensors header")
        (n,) = struct.unpack("<Q", raw)
        if n > _MAX_HEADER:
            raise ValueError(f"header length {n} too large")
        hbytes = f.read(n)
    if len(hbytes) != n:
        raise ValueError("truncated header")
    header = json.loads(hbytes.decode("utf-8"), object_pairs_hook=OrderedDict)
    metadata = dict(header.pop("__metadata__", {}) or {})
    return header, metadata, 8 + n


def load(path: str) -> Tuple["OrderedDict[str, torch.Tensor]", Dict[str, str]]:
    """Returns (tensors in file order, metadata).  Tensors keep their stored dtype."""
    header, metadata, start = read_header(path)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    spans = []
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for name, info in header.items():
        dt = info["dtype"]
        if dt not in _DTYPES:
            raise ValueError(f"{name}: unsupported dtype {dt}")
        dtype = _DTYPES[dt]
        shape = [int(s) for s in info["shape"]]
        a, b = (int(x) for x in info["data_offsets"])
        numel = 1
        for s in shape:
            numel *= s
        itemsize = torch.empty((), dtype=dtype).element_size()
        if not (0 <= a <= b <= len(data)) or b - a != numel * itemsize:
            raise ValueError(f"{name}: bad data_offsets {[a, b]} for shape {shape} {dt}")
        spans.append((a, b, name))
        if numel == 0:
            t = torch.empty(shape, dtype=dtype)
        elif dtype == torch.bfloat16:
            t = torch.frombuffer(bytearray(data[a:b]), dtype=torch.int16).view(torch.bfloat16).reshape(shape)
        else:
            t = torch.frombuffer(bytearray(data[a:b]), dtype=dtype).reshape(shape)
        out[name] = t
    spans.sort()
    pos = 0
    for a, b, name in spans:
        if a != pos:
            raise ValueError(f"{name}: data not contiguous (gap or overlap at {a}, expected {pos})")
        pos = b
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} trailing bytes after the last tensor")
    return out, metadata
