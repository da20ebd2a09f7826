"""TensorFlow checkpoints (the V2 "tensor bundle" format) read and written with numpy only.

A checkpoint ``PREFIX`` is two or more files:

- ``PREFIX.index``: a LevelDB-format table (sorted keys; data blocks with
  prefix-compressed keys and restart points, each followed by a compression
  byte and a masked CRC-32C; a metaindex block; an index block; a 48-byte
  footer ending in a magic number). Key ``""`` holds a ``BundleHeaderProto``,
  every other key is a tensor name whose value is a ``BundleEntryProto``
  (dtype, shape, shard, offset, size, masked CRC-32C of the bytes).
- ``PREFIX.data-00000-of-00001`` (one file per shard): the tensors' raw
  little-endian bytes.

:func:`read_index` lists names, dtypes and shapes without touching the data;
:func:`read_bundle` reads (and checks the CRC of) the tensors;
:func:`write_bundle` writes a checkpoint that ``tf.train.load_checkpoint``
reads. The protobuf messages are encoded by hand (their fields are a few
integers). String tensors (e.g. ``_CHECKPOINTABLE_OBJECT_GRAPH``) are listed
but not read; sliced (partitioned) variables are refused.
"""
import os
import struct
from collections import namedtuple

import numpy as np

from bert4sim.crc32c import crc32c, mask, unmask

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5
# TensorFlow DataType enum values -> numpy dtype (None: listed, never read).
TF_DTYPES = {
    1: ("float32", "<f4"), 2: ("float64", "<f8"), 3: ("int32", "<i4"), 4: ("uint8", "u1"),
    5: ("int16", "<i2"), 6: ("int8", "i1"), 7: ("string", None), 8: ("complex64", "<c8"),
    9: ("int64", "<i8"), 10: ("bool", "?"), 14: ("bfloat16", "<u2"), 17: ("uint16", "<u2"),
    18: ("complex128", "<c16"), 19: ("float16", "<f2"), 20: ("resource", None), 21: ("variant", None),
    22: ("uint32", "<u4"), 23: ("uint64", "<u8"),
}
_DTYPE_ENUM = {name: number for number, (name, code) in TF_DTYPES.items() if code is not None}

Entry = namedtuple("Entry", "dtype shape shard offset size crc")
Entry.__doc__ = """One tensor of a checkpoint index: dtype name, shape tuple, shard, byte offset, size, CRC-32C."""


class CheckpointFormatError(ValueError):
    """A checkpoint file that is damaged, truncated or not in the tensor-bundle format."""


# --- protobuf wire format (varints, length-delimited fields) ---------------------------


def _varint(value):
    if value < 0:
        value += 1 << 64  # int32/int64 negatives are ten-byte varints
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data, pos, where):
    result = shift = 0
    while True:
        if pos >= len(data):
            raise CheckpointFormatError(f"{where}: varint runs past the end")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointFormatError(f"{where}: varint longer than 10 bytes")


def _fields(data, where):
    """Yield (field number, wire type, value) of a protobuf message; bytes for length-delimited fields."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos, where)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos, where)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _read_varint(data, pos, where)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise CheckpointFormatError(f"{where}: unsupported protobuf wire type {wire}")
        if pos > len(data):
            raise CheckpointFormatError(f"{where}: protobuf field {number} runs past the end")
        yield number, wire, value


def _signed(value):
    return value - (1 << 64) if value >= 1 << 63 else value


def _field(number, wire, payload):
    key = _varint(number << 3 | wire)
    if wire == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


def _encode_entry(dtype_enum, shape, offset, size, crc):
    dims = b"".join(_field(2, 2, _field(1, 0, _varint(d)) if d else b"") for d in shape)
    out = _field(1, 0, _varint(dtype_enum)) + _field(2, 2, dims)
    if offset:
        out += _field(4, 0, _varint(offset))
    if size:
        out += _field(5, 0, _varint(size))
    return out + _field(6, 5, struct.pack("<I", mask(crc)))


def _decode_entry(value, where):
    dtype, shape, shard, offset, size, crc, sliced = 0, [], 0, 0, 0, None, False
    for number, wire, field in _fields(value, where):
        if number == 1 and wire == 0:
            dtype = field
        elif number == 2 and wire == 2:
            for dim_number, dim_wire, dim in _fields(field, where):
                if dim_number == 2 and dim_wire == 2:
                    size_of_dim = 0
                    for n, w, v in _fields(dim, where):
                        if n == 1 and w == 0:
                            size_of_dim = _signed(v)
                    shape.append(size_of_dim)
        elif number == 3 and wire == 0:
            shard = field
        elif number == 4 and wire == 0:
            offset = field
        elif number == 5 and wire == 0:
            size = field
        elif number == 6 and wire == 5:
            crc = unmask(struct.unpack("<I", field)[0])
        elif number == 7:
            sliced = True
    if dtype not in TF_DTYPES:
        raise CheckpointFormatError(f"{where}: unknown TensorFlow dtype number {dtype}")
    if sliced:
        raise CheckpointFormatError(f"{where}: a sliced (partitioned) variable; not supported")
    if any(d < 0 for d in shape):
        raise CheckpointFormatError(f"{where}: negative dimension in shape {shape}")
    return Entry(TF_DTYPES[dtype][0], tuple(shape), shard, offset, size, crc)


def _encode_header(num_shards):
    version = _field(1, 0, _varint(1))  # VersionDef.producer = 1 (min_consumer 0 is the default)
    return _field(1, 0, _varint(num_shards)) + _field(3, 2, version)  # endianness LITTLE = 0: omitted


def _decode_header(value, where):
    num_shards, endianness = 1, 0
    for number, wire, field in _fields(value, where):
        if number == 1 and wire == 0:
            num_shards = field
        elif number == 2 and wire == 0:
            endianness = field
    if endianness != 0:
        raise CheckpointFormatError(f"{where}: a big-endian checkpoint; only little-endian is supported")
    if num_shards < 1:
        raise CheckpointFormatError(f"{where}: header says {num_shards} shards")
    return num_shards


# --- LevelDB table --------------------------------------------------------------------


def _read_block(data, offset, size, path):
    end = offset + size
    if end + BLOCK_TRAILER_SIZE > len(data):
        raise CheckpointFormatError(f"{path}: block at {offset} (+{size} bytes) runs past the end of the file "
                                    "(truncated?)")
    block = data[offset:end]
    kind = data[end]
    stored = unmask(struct.unpack_from("<I", data, end + 1)[0])
    if crc32c(data[offset:end + 1]) != stored:
        raise CheckpointFormatError(f"{path}: block at byte {offset} fails its CRC-32C check (damaged file)")
    if kind != 0:
        raise CheckpointFormatError(f"{path}: block at byte {offset} is compressed (type {kind}); "
                                    "TensorFlow bundles are uncompressed")
    return block


def _block_entries(block, path):
    if len(block) < 4:
        raise CheckpointFormatError(f"{path}: block of {len(block)} bytes is too short")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise CheckpointFormatError(f"{path}: block claims {restarts} restart points, more than fit")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _read_varint(block, pos, path)
        unshared, pos = _read_varint(block, pos, path)
        length, pos = _read_varint(block, pos, path)
        if shared > len(key) or pos + unshared + length > limit:
            raise CheckpointFormatError(f"{path}: corrupt block entry at byte {pos}")
        key = key[:shared] + bytes(block[pos:pos + unshared])
        pos += unshared
        yield key, bytes(block[pos:pos + length])
        pos += length


def _read_table(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint index not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < FOOTER_SIZE:
        raise CheckpointFormatError(f"{path}: {len(data)} bytes, too short for a checkpoint index")
    footer = data[-FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != TABLE_MAGIC:
        raise CheckpointFormatError(f"{path}: not a TensorFlow checkpoint index (bad magic number)")
    _, pos = _read_varint(footer, 0, path)  # metaindex handle: not needed
    _, pos = _read_varint(footer, pos, path)
    index_offset, pos = _read_varint(footer, pos, path)
    index_size, _ = _read_varint(footer, pos, path)
    entries = []
    for _, handle in _block_entries(_read_block(data, index_offset, index_size, path), path):
        offset, pos = _read_varint(handle, 0, path)
        size, _ = _read_varint(handle, pos, path)
        entries.extend(_block_entries(_read_block(data, offset, size, path), path))
    return entries


def _block_bytes(entries, restart_interval):
    out, restarts, previous = bytearray(), [], b""
    for count, (key, value) in enumerate(entries):
        shared = 0
        if count % restart_interval:
            limit = min(len(key), len(previous))
            while shared < limit and key[shared] == previous[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        previous = key
    restarts = restarts or [0]
    out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def _write_table(f, items, block_size):
    """Write sorted ``(key, value)`` pairs as a LevelDB table to the open binary file ``f``."""
    position = 0

    def emit(block):
        nonlocal position
        trailer = b"\0" + struct.pack("<I", mask(crc32c(block + b"\0")))
        f.write(block + trailer)
        handle = _varint(position) + _varint(len(block))
        position += len(block) + BLOCK_TRAILER_SIZE
        return handle

    index, pending, pending_size = [], [], 0
    for key, value in items:
        pending.append((key, value))
        pending_size += len(key) + len(value) + 8
        if pending_size >= block_size:
            index.append((key, emit(_block_bytes(pending, 16))))  # the block's last key separates it
            pending, pending_size = [], 0
    if pending:
        index.append((pending[-1][0], emit(_block_bytes(pending, 16))))
    metaindex = emit(_block_bytes([], 1))
    index_handle = emit(_block_bytes(index, 1))
    footer = (metaindex + index_handle).ljust(40, b"\0") + struct.pack("<Q", TABLE_MAGIC)
    f.write(footer)


# --- bundles ----------------------------------------------------------------------------


def data_file(prefix, shard, num_shards):
    """Name of a data shard: ``PREFIX.data-00000-of-00001``.

    Example:
        >>> data_file("ckpt/bert_model.ckpt", 0, 1)
        'ckpt/bert_model.ckpt.data-00000-of-00001'
    """
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def read_index(prefix):
    """``{name: Entry}`` of a checkpoint, read from ``PREFIX.index`` alone.

    Example:
        >>> {n: e.shape for n, e in read_index("ckpt/bert_model.ckpt").items()}["bert/pooler/dense/bias"]
        (768,)
    """
    path = f"{prefix}.index"
    items = _read_table(path)
    if not items or items[0][0] != b"":
        raise CheckpointFormatError(f"{path}: no bundle header (empty key) in the index")
    num_shards = _decode_header(items[0][1], f"{path} header")
    entries = {}
    for key, value in items[1:]:
        try:
            name = key.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointFormatError(f"{path}: a tensor name is not UTF-8: {key[:60]!r}") from None
        entry = _decode_entry(value, f"{path} entry {name!r}")
        if entry.shard >= num_shards:
            raise CheckpointFormatError(f"{path}: {name} is in shard {entry.shard} of {num_shards}")
        entries[name] = entry._replace(shard=(entry.shard, num_shards))
    return entries


def variable_shapes(prefix):
    """``{name: shape}`` of a checkpoint's tensors (string tensors included), without reading data.

    Example:
        >>> variable_shapes("ckpt/bert_model.ckpt")["bert/embeddings/word_embeddings"]
        (21128, 768)
    """
    return {name: entry.shape for name, entry in read_index(prefix).items()}


def read_bundle(prefix, names=None, bfloat16="float32", verify=True):
    """Read a checkpoint's tensors into ``{name: numpy array}``.

    ``names``: the tensors to read (default: every numeric one; string,
    resource and variant tensors such as ``_CHECKPOINTABLE_OBJECT_GRAPH`` are
    skipped, and naming one is an error). ``bfloat16``: ``"float32"`` (exact
    widening, default) or ``"bfloat16"`` (ml_dtypes arrays). ``verify``
    checks each tensor's CRC-32C (about 100 MB/s here; a mismatch names the
    tensor and the file).

    Example:
        >>> arrays = read_bundle("checkpoints/simbert/bert_model.ckpt")
        >>> arrays["bert/pooler/dense/kernel"].dtype
        dtype('float32')
    """
    if bfloat16 not in ("float32", "bfloat16"):
        raise ValueError(f"bfloat16 must be 'float32' or 'bfloat16', got {bfloat16!r}")
    entries = read_index(prefix)
    if names is None:
        names = [n for n, e in entries.items() if e.dtype in _DTYPE_ENUM]
    else:
        missing = [n for n in names if n not in entries]
        if missing:
            raise KeyError(f"checkpoint {prefix} has no tensor {missing[0]!r}")
    arrays, handles = {}, {}
    try:
        for name in names:
            entry = entries[name]
            if entry.dtype not in _DTYPE_ENUM:
                raise ValueError(f"checkpoint {prefix}: {name} is a {entry.dtype} tensor, which is not read")
            path = data_file(prefix, *entry.shard)
            if path not in handles:
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"checkpoint data file not found: {path}")
                handles[path] = open(path, "rb")
            f = handles[path]
            f.seek(entry.offset)
            raw = np.empty(entry.size, dtype=np.uint8)  # read in place: one copy of the bytes
            if f.readinto(raw) != entry.size:
                raise CheckpointFormatError(f"{path}: {name} needs bytes {entry.offset}..{entry.offset + entry.size}, "
                                            f"the file ends first (truncated)")
            if verify and entry.crc is not None and crc32c(raw) != entry.crc:
                raise CheckpointFormatError(f"{path}: {name} fails its CRC-32C check (damaged file)")
            arrays[name] = _to_array(raw, entry, bfloat16, f"{path}: {name}")
    finally:
        for f in handles.values():
            f.close()
    return arrays


def _to_array(raw, entry, bfloat16, where):
    code = TF_DTYPES[_DTYPE_ENUM[entry.dtype]][1]
    count = int(np.prod(entry.shape, dtype=np.int64))
    itemsize = np.dtype(code).itemsize
    if len(raw) != count * itemsize:
        raise CheckpointFormatError(f"{where}: {len(raw)} bytes for shape {entry.shape} of {entry.dtype}")
    array = raw.view(code).reshape(entry.shape)
    if entry.dtype == "bfloat16":
        if bfloat16 == "bfloat16":
            import ml_dtypes

            return array.view(ml_dtypes.bfloat16)
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _dtype_name(array):
    name = array.dtype.name
    if name not in _DTYPE_ENUM:
        raise TypeError(f"dtype {name} cannot be written to a checkpoint (numeric dtypes only)")
    return name


def write_bundle(prefix, arrays, block_size=4096):
    """Write ``{name: array}`` as a one-shard TensorFlow checkpoint at ``PREFIX``.

    Names are written exactly as given (no ``.ATTRIBUTES`` suffix), as the
    released Google BERT checkpoints have them; ``tf.train.load_checkpoint``
    reads the result. Existing files of the same prefix are overwritten: call
    it inside a staging folder (:func:`bert4sim.files.atomic_folder`) for a
    crash-safe save.

    Example:
        >>> write_bundle("/tmp/out/bert_model.ckpt", {"bert/pooler/dense/bias": np.zeros(4, "float32")})
    """
    if not arrays:
        raise ValueError("write_bundle: no tensors to write")
    items, offset = [], 0
    data_path = data_file(prefix, 0, 1)
    keys = {}
    for name in arrays:
        if not isinstance(name, str) or not name:
            raise ValueError(f"write_bundle: tensor names must be non-empty strings, got {name!r}")
        keys[name.encode("utf-8")] = name
    with open(data_path, "wb") as data:
        for key in sorted(keys):
            name = keys[key]
            array = np.asarray(arrays[name])
            dtype = _dtype_name(array)
            code = TF_DTYPES[_DTYPE_ENUM[dtype]][1]
            if dtype == "bfloat16":
                raw = np.ascontiguousarray(array).view("<u2").tobytes()
            else:
                raw = np.ascontiguousarray(array, dtype=code).tobytes()
            data.write(raw)
            items.append((key, _encode_entry(_DTYPE_ENUM[dtype], array.shape, offset, len(raw), crc32c(raw))))
            offset += len(raw)
        data.flush()
        os.fsync(data.fileno())
    with open(f"{prefix}.index", "wb") as index:
        _write_table(index, [(b"", _encode_header(1))] + items, block_size)
        index.flush()
        os.fsync(index.fileno())
    return prefix
