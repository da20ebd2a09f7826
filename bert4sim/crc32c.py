"""CRC-32C (Castagnoli), as TensorFlow checkpoints and LevelDB tables use it, in numpy only.

Short inputs go through a byte table in Python; long ones are cut into equal
chunks whose CRCs are computed side by side with numpy (four bytes a step)
and then joined pairwise (a CRC is linear in its input, so appending ``n``
bytes is a fixed linear map of the register). A 400 MB BERT-base data file
verifies in seconds, not minutes.

``mask`` / ``unmask`` are LevelDB's rotation + constant that TensorFlow stores.
"""
import functools

import numpy as np

POLYNOMIAL = 0x82F63B78  # reflected Castagnoli polynomial
_MASK_DELTA = 0xA282EAD8
_SHORT = 4096  # bytes below which the plain table loop is faster


def _byte_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (POLYNOMIAL if crc & 1 else 0)
        table.append(crc)
    return table


_TABLE = _byte_table()
# Slicing-by-4 tables: _T4[k][b] is the register after byte b followed by k zero bytes.
_T4 = [np.array(_TABLE, dtype=np.uint32)]
for _ in range(3):
    previous = _T4[-1]
    _T4.append(_T4[0][previous & 0xFF] ^ (previous >> 8))
_T4 = [t.astype(np.uint32) for t in _T4]


def _update_bytes(register, data):
    table = _TABLE
    for byte in data:
        register = table[(register ^ byte) & 0xFF] ^ (register >> 8)
    return register


@functools.lru_cache(maxsize=256)
def _zeros_operator(count):
    """The 32 columns of the linear map "feed ``count`` zero bytes" on a raw register."""
    if count == 1:
        return tuple(_update_bytes(1 << bit, b"\0") for bit in range(32))
    half = _zeros_operator(count // 2)
    result = _compose(half, half)
    return _compose(_zeros_operator(1), result) if count % 2 else result


def _compose(outer, inner):
    return tuple(_apply_columns(outer, column) for column in inner)


def _apply_columns(columns, value):
    out = 0
    bit = 0
    while value:
        if value & 1:
            out ^= columns[bit]
        value >>= 1
        bit += 1
    return out


@functools.lru_cache(maxsize=64)
def _byte_tables(columns):
    """Four 256-entry tables applying a linear map to a uint32 array byte by byte."""
    values = np.arange(256, dtype=np.uint32)
    tables = []
    for k in range(4):
        table = np.zeros(256, dtype=np.uint32)
        for bit in range(8):
            table ^= np.where((values >> bit) & 1, np.uint32(columns[8 * k + bit]), np.uint32(0))
        tables.append(table)
    return tables


def _apply_tables(tables, x):
    return (tables[0][x & 0xFF] ^ tables[1][(x >> 8) & 0xFF] ^ tables[2][(x >> 16) & 0xFF]
            ^ tables[3][x >> 24])


def _raw_crc_numpy(data):
    """Raw (zero initial register, no final inversion) CRC of a long byte buffer."""
    length = len(data)
    chunks = 1 << max(4, min(16, (length // 2048).bit_length()))  # a power of two, 16 .. 65536
    words = -(-length // (4 * chunks))  # uint32 words per chunk
    padded = np.zeros(chunks * words * 4, dtype=np.uint8)
    padded[len(padded) - length:] = np.frombuffer(data, dtype=np.uint8)  # leading zeros leave a raw CRC as is
    # Row j holds word j of every chunk, so each step reads one contiguous row.
    grid = np.ascontiguousarray(padded.view("<u4").reshape(chunks, words).T)
    t0, t1, t2, t3 = _T4
    register = np.zeros(chunks, dtype=np.uint32)
    for row in grid:
        register ^= row
        register = t3[register & 0xFF] ^ t2[(register >> 8) & 0xFF] ^ t1[(register >> 16) & 0xFF] ^ t0[register >> 24]
    span = words * 4
    while len(register) > 1:  # crc(A + B) = shift(crc(A), len(B)) ^ crc(B)
        register = _apply_tables(_byte_tables(_zeros_operator(span)), register[0::2]) ^ register[1::2]
        span *= 2
    return int(register[0])


def crc32c(data, value=0):
    """CRC-32C of ``data`` (bytes-like), continuing from ``value`` (a previous result).

    Example:
        >>> hex(crc32c(b"123456789"))
        '0xe3069283'
    """
    data = memoryview(data).cast("B")
    register = value ^ 0xFFFFFFFF
    if len(data) < _SHORT:
        return _update_bytes(register, data) ^ 0xFFFFFFFF
    shifted = _apply_columns(_zeros_operator(len(data)), register)
    return (shifted ^ _raw_crc_numpy(data)) ^ 0xFFFFFFFF


def mask(crc):
    """LevelDB / TensorFlow masked form of a CRC (what files store).

    Example:
        >>> unmask(mask(0x12345678)) == 0x12345678
        True
    """
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def unmask(masked):
    """Inverse of :func:`mask`.

    Example:
        >>> unmask(mask(1))
        1
    """
    rotated = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rotated >> 17) | (rotated << 15)) & 0xFFFFFFFF
