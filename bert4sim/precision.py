"""``precision="auto"``: bfloat16 matrix products only where they are faster on this machine.

bfloat16 products pay off where the CPU multiplies bfloat16 natively and
fast: with AMX (Intel Sapphire Rapids and later) they are 1.3-1.9x faster
than float32; without any bfloat16 instructions oneDNN emulates them. In
between (AVX-512 BF16 without AMX) it depends on the CPU: measured 0.61x
float32's encode speed on an Intel Xeon, 1.8x on an AMD EPYC. So:

- AMX (``amx_bf16`` in the CPU flags): ``"bfloat16"``;
- neither AMX nor ``avx512_bf16``: ``"float32"``;
- otherwise (or with a GPU visible) a one-off calibration: one bert4sim
  transformer block (hidden 384, 64 x 32 tokens) timed at inference in
  both precisions; bfloat16 is chosen if it takes at most 0.9x float32's
  time. The result is cached per machine in ``~/.cache/bert4sim/precision.json``
  (``$BERT4SIM_CACHE_DIR`` or ``$XDG_CACHE_HOME/bert4sim`` if set), keyed by
  CPU model, GPU names and TensorFlow version.

``$BERT4SIM_AUTO_PRECISION`` (``float32`` or ``bfloat16``) pins the answer
without detecting or timing anything (a fleet of identical machines, the
test suite). The choice is printed once per process on stderr.

Example:
    >>> from bert4sim.precision import resolve_precision
    >>> resolve_precision("auto")      # 'bfloat16' or 'float32'
    >>> resolve_precision("float32")   # explicit choices pass through
"""
import json
import os
import platform
import sys
import tempfile
import time

PRECISIONS = ("auto", "float32", "bfloat16")
CACHE_FILE = "precision.json"
# bfloat16 must save at least 10 % to be chosen: timings on a shared machine drift by 5-10 %.
FASTER_BY = 0.9
PIN_VARIABLE = "BERT4SIM_AUTO_PRECISION"

_CHOSEN = {}  # cache key -> (precision, reason): decided (and printed) once per process


def cpu_info(path="/proc/cpuinfo"):
    """``(model name, set of CPU flags)`` of this machine (Linux); elsewhere ``(platform name, empty set)``.

    Example:
        >>> name, flags = cpu_info()
        >>> "amx_bf16" in flags
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return platform.processor() or platform.machine(), set()
    name, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return name or platform.machine(), flags


def choose_precision(flags, calibration=None):
    """The decision rule: ``(precision, reason)``, or ``(None, reason)`` when a calibration is needed.

    ``flags``: the CPU flags (``cpu_info()[1]``); ``calibration``: None or
    ``{"float32": seconds, "bfloat16": seconds}`` for the same work. The
    pseudo-flag ``"gpu"`` (a GPU is visible) leaves the decision to the
    calibration: the CPU flags say nothing about where the products run.

    Example:
        >>> choose_precision({"avx512f", "amx_bf16", "amx_tile"})
        ('bfloat16', 'AMX')
        >>> choose_precision({"avx512f", "avx512_bf16"}, {"float32": 1.0, "bfloat16": 0.55})[0]
        'bfloat16'
    """
    if "gpu" not in flags:
        if "amx_bf16" in flags:
            return "bfloat16", "AMX"
        if "avx512_bf16" not in flags:
            return "float32", "no bfloat16 instructions (neither AMX nor AVX-512 BF16)"
    if calibration is None:
        return None, "needs a calibration"
    for name in ("float32", "bfloat16"):
        seconds = calibration.get(name) if isinstance(calibration, dict) else None
        if not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ValueError(f"calibration must give positive seconds for 'float32' and 'bfloat16', got {calibration!r}")
    ratio = calibration["float32"] / calibration["bfloat16"]
    precision = "bfloat16" if calibration["bfloat16"] <= FASTER_BY * calibration["float32"] else "float32"
    return precision, f"bfloat16 products {ratio:.2f}x float32's speed in a calibration"


def calibrate(repeats=15):
    """Time one transformer block's inference with float32 and with bfloat16 products.

    Returns ``{"float32": seconds, "bfloat16": seconds}`` (the fastest of
    ``repeats`` interleaved runs each). Takes about 2 s.

    Example:
        >>> calibrate()   # e.g. {'float32': 0.0061, 'bfloat16': 0.0034}
    """
    import tensorflow as tf

    from bert4sim.layers import CastKernels, TransformerBlock, set_matmul_dtype

    block = TransformerBlock(num_heads=6, intermediate_size=1536, dropout_rate=0.0, attention_dropout_rate=0.0)
    x = tf.random.stateless_normal((64, 32, 384), seed=(1, 2))
    mask = tf.ones((64, 32, 32), dtype=tf.bool)
    block(x, attention_mask=mask)
    runs = {}
    for precision in ("float32", "bfloat16"):
        set_matmul_dtype(block, precision)
        kernels = CastKernels(block)
        kernels.refresh()

        def run(x, mask, kernels=kernels):
            with kernels.active():
                return block(x, attention_mask=mask, training=False)

        runs[precision] = tf.function(run)
        runs[precision](x, mask).numpy()  # trace
    best = {precision: float("inf") for precision in runs}
    for _ in range(repeats):
        for precision, run in runs.items():
            start = time.perf_counter()
            run(x, mask).numpy()
            best[precision] = min(best[precision], time.perf_counter() - start)
    return best


def cache_dir():
    """Where the calibration is cached: ``$BERT4SIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/bert4sim``,
    else ``~/.cache/bert4sim``."""
    if os.environ.get("BERT4SIM_CACHE_DIR"):
        return os.environ["BERT4SIM_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "bert4sim")


def _read_cache(path):
    try:
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)
        return cached if isinstance(cached, dict) else {}
    except (OSError, ValueError):
        return {}  # absent or unreadable: calibrate again and rewrite it


def _write_cache(path, cached):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=".precision-", dir=os.path.dirname(path))
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            json.dump(cached, f, indent=2)
        os.replace(staging, path)
    except OSError as error:  # a read-only home: decide again next process, say why once
        print(f"bert4sim: could not cache the precision calibration in {path}: {error}", file=sys.stderr)


def _machine():
    """``(cache key, description, flags)`` of the device the products run on."""
    import tensorflow as tf

    name, flags = cpu_info()
    gpus = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")]
    if gpus:
        flags = flags | {"gpu"}
    description = ", ".join(gpus) if gpus else name
    key = f"{name} | {' + '.join(gpus) or 'no GPU'} | TensorFlow {tf.__version__}"
    return key, description, flags


def _decide(key, flags, calibrate, directory):
    """:func:`choose_precision` on ``flags``, with the cached (or a new) calibration when it needs one."""
    precision, reason = choose_precision(flags)
    if precision is not None:
        return precision, reason
    path = os.path.join(directory or cache_dir(), CACHE_FILE)
    cached = _read_cache(path)
    try:
        precision, reason = choose_precision(flags, cached.get(key))
        if precision is not None:
            return precision, f"{reason}, cached in {path}"
    except ValueError:  # a damaged entry: measure again
        pass
    measured = calibrate()
    precision, reason = choose_precision(flags, measured)
    cached[key] = {**measured, "measured": time.strftime("%Y-%m-%d")}
    _write_cache(path, cached)
    return precision, f"{reason} (measured now, cached in {path})"


def auto_precision(machine=None, calibrate=calibrate, directory=None, quiet=False):
    """The precision ``"auto"`` stands for on this machine: ``"bfloat16"`` or ``"float32"``.

    Decided once per process (printed once on stderr unless ``quiet``); a
    calibration, when the CPU flags do not decide, is cached on disk
    (:func:`cache_dir`). ``machine`` (``(key, description, flags)``) and
    ``calibrate`` replace the detection and the timing (tests).

    Example:
        >>> auto_precision()   # bert4sim: precision auto -> bfloat16 on AMD EPYC (...)
        'bfloat16'
    """
    pinned = os.environ.get(PIN_VARIABLE) if machine is None else None
    if pinned:
        if pinned not in ("float32", "bfloat16"):
            raise ValueError(f"${PIN_VARIABLE} must be 'float32' or 'bfloat16', got {pinned!r}")
        key, description, flags = f"${PIN_VARIABLE}={pinned}", "this machine", set()
    else:
        key, description, flags = machine or _machine()
    if key in _CHOSEN:
        return _CHOSEN[key][0]
    if pinned:
        precision, reason = pinned, f"set by ${PIN_VARIABLE}"
    else:
        precision, reason = _decide(key, flags, calibrate, directory)
    _CHOSEN[key] = precision, reason
    if not quiet:
        print(f"bert4sim: precision auto -> {precision} on {description}: {reason}", file=sys.stderr)
    return precision


def resolve_precision(precision):
    """``"auto"`` -> :func:`auto_precision`; ``"float32"`` / ``"bfloat16"`` as given; anything else a ValueError.

    Example:
        >>> resolve_precision("auto")
        'float32'
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return auto_precision() if precision == "auto" else precision
