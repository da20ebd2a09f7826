"""The safetensors format read and written with numpy only (no torch, no safetensors package).

A file is an 8-byte little-endian header length, a JSON header
``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``
and the tensors' raw little-endian bytes. Names are only ever dictionary
keys here: nothing in a header becomes a path.
"""
import json
import os
import struct

import numpy as np

DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
_NAMES = {np.dtype(code).name: tag for tag, code in DTYPES.items()}
MAX_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit


def read_header(path):
    """``(header dict, data start)`` of a ``.safetensors`` file, checked; no tensor data read.

    Example:
        >>> header, start = read_header("model.safetensors")
        >>> header["pooler.dense.bias"]["shape"]
        [768]
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"safetensors file not found: {path}")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path} is not a safetensors file (only {len(head)} bytes)")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            raise ValueError(f"{path}: header length {length} runs past the end of the file")
        if length > MAX_HEADER:
            raise ValueError(f"{path}: header of {length} bytes is larger than safetensors allows")
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: the safetensors header is not valid JSON ({error})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the safetensors header is not a JSON object")
    data_size = size - 8 - length
    for name, info in header.items():
        if name == "__metadata__":
            continue
        where = f"{path}: tensor {name!r}"
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise ValueError(f"{where} lacks dtype / shape / data_offsets")
        shape, offsets = info["shape"], info["data_offsets"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise ValueError(f"{where} has a bad shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise ValueError(f"{where} has bad data_offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise ValueError(f"{where} has offsets {begin}..{end} outside the data ({data_size} bytes)")
        if info["dtype"] != "BF16" and info["dtype"] not in DTYPES:
            raise ValueError(f"{where} has unsupported dtype {info['dtype']}")
        itemsize = 2 if info["dtype"] == "BF16" else np.dtype(DTYPES[info["dtype"]]).itemsize
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * itemsize:
            raise ValueError(f"{where} holds {end - begin} bytes, shape {shape} of {info['dtype']} "
                             f"needs {count * itemsize}")
    return header, 8 + length


def read_safetensors(path, names=None):
    """Read a ``.safetensors`` file into ``{name: numpy array}`` (BF16 becomes float32, exactly).

    ``names``: only these tensors (default: all).

    Example:
        >>> tensors = read_safetensors("model.safetensors")
        >>> tensors["embeddings.word_embeddings.weight"].shape
        (30522, 384)
    """
    header, start = read_header(path)
    wanted = [n for n in header if n != "__metadata__"] if names is None else list(names)
    tensors = {}
    with open(path, "rb") as f:
        for name in wanted:
            if name not in header or name == "__metadata__":
                raise KeyError(f"{path} has no tensor {name!r}")
            info = header[name]
            begin, end = info["data_offsets"]
            raw = np.empty(end - begin, dtype=np.uint8)
            f.seek(start + begin)
            if f.readinto(raw) != end - begin:
                raise ValueError(f"{path}: tensor {name!r} is cut short (truncated file)")
            if info["dtype"] == "BF16":
                array = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                array = raw.view(DTYPES[info["dtype"]])
                array = array.astype(array.dtype.newbyteorder("="), copy=False)
            tensors[name] = array.reshape(info["shape"])
    return tensors


def write_safetensors(path, tensors, metadata=None):
    """Write ``{name: array}`` as a ``.safetensors`` file (``__metadata__`` ``{"format": "pt"}`` by default).

    The header is padded to a multiple of 8 bytes, as the safetensors
    library does, so every tensor starts aligned. bfloat16 arrays
    (``ml_dtypes``) are written as BF16.

    Example:
        >>> write_safetensors("out/model.safetensors", {"pooler.dense.bias": np.zeros(4, "float32")})
    """
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"safetensors tensor names must be non-empty strings, got {name!r}")
        array = np.asarray(tensors[name])
        if array.dtype.name == "bfloat16":
            tag, raw = "BF16", np.ascontiguousarray(array).view("<u2").tobytes()
        elif array.dtype.name in _NAMES:
            tag = _NAMES[array.dtype.name]
            raw = np.ascontiguousarray(array, dtype=DTYPES[tag]).tobytes()
        else:
            raise TypeError(f"tensor {name!r}: dtype {array.dtype} cannot be written to safetensors")
        header[name] = {"dtype": tag, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {str(k): str(v) for k, v in (metadata or {"format": "pt"}).items()}
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        for raw in blobs:
            f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    return path
