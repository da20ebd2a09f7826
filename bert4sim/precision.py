"""``precision="auto"``: bfloat16 matrix products only where they are faster on this machine.

bfloat16 products pay off where the CPU multiplies bfloat16 natively and
fast: with AMX (Intel Sapphire Rapids and later) they are 1.3-1.9x faster
than float32; without any bfloat16 instructions oneDNN emulates them. In
between (AVX-512 BF16 without AMX) it depends on the CPU: measured 0.61x
float32's encode speed on an Intel Xeon, 1.8x on an AMD EPYC. So:

- AMX (``amx_bf16`` in the CPU flags): ``"bfloat16"``;
- neither AMX nor ``avx512_bf16``: ``"float32"``;
- otherwise (or with a GPU visible) a one-off calibration: the matrix
  products of one transformer block (hidden 384, 64 x 32 tokens) timed
  at inference in both precisions; bfloat16 is chosen if they take at
  most 0.9x float32's time. The result is cached per machine in ``~/.cache/bert4sim/precision.json``
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
import os
import platform
import sys
import time

from bert4sim.files import read_json, write_json_atomic

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
    """Time the matrix products of one transformer block's inference with float32 and bfloat16 products.

    The products of a hidden-384 block on 64 x 32 tokens, as bert4sim's
    layers run them at inference (queries/keys/values/output projections,
    the FFN with its bias and GELU fused into the first product, casts
    included), in plain TensorFlow ops so that no Keras layer is created
    (layer auto-names stay as they were). Returns ``{"float32": seconds,
    "bfloat16": seconds}``, the fastest of ``repeats`` interleaved runs
    each. Takes about a second after TensorFlow is imported.

    Example:
        >>> calibrate()   # e.g. {'float32': 0.0061, 'bfloat16': 0.0034}
    """
    import tensorflow as tf

    from bert4sim.layers import _bias_add, _gelu_erf_fusable

    hidden, inner, rows = 384, 1536, 64 * 32
    normal = lambda shape, seed: tf.random.stateless_normal(shape, seed=(seed, 0), stddev=0.05)  # noqa: E731
    x = normal((rows, hidden), 1)
    square = [(normal((hidden, hidden), 2 + i), normal((hidden,), 10 + i)) for i in range(4)]
    ffn = [(normal((hidden, inner), 20), normal((inner,), 21)), (normal((inner, hidden), 22), normal((hidden,), 23))]
    runs = {}
    for precision in ("float32", "bfloat16"):
        cast = lambda t, p=precision: tf.cast(t, p)  # noqa: E731
        weights = [(cast(w), cast(b)) for w, b in square + ffn]

        def products(x, weights=weights, cast=cast):
            h = cast(x)
            projected = [_bias_add(tf.matmul(h, w), b) for w, b in weights[:4]]
            (w1, b1), (w2, b2) = weights[4:]
            hidden_out = _bias_add(tf.matmul(_gelu_erf_fusable(_bias_add(tf.matmul(h, w1), b1)), w2), b2)
            return tf.add_n([tf.cast(t, tf.float32) for t in projected + [hidden_out]])

        runs[precision] = tf.function(products)
        runs[precision](x).numpy()  # trace
    best = {precision: float("inf") for precision in runs}
    for _ in range(repeats):
        for precision, run in runs.items():
            start = time.perf_counter()
            run(x).numpy()
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
        return read_json(path, dict)
    except (OSError, ValueError):
        return {}  # absent or unreadable: calibrate again and rewrite it


def _write_cache(path, cached):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_json_atomic(path, cached)
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
