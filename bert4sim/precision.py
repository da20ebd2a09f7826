"""Precision in one place: which dtype matrix products run in, and ``precision="auto"``.

Matrix products. The layers whose work is matrix products (:class:`Dense`,
``TokenEmbedding`` and the composite layers of :mod:`bert4sim.layers`) take
``matmul_dtype`` (``None``/``"float32"``, ``"bfloat16"``, ``"float16"``),
kept in their config and so saved with the model: the product runs in that
dtype, everything else (weights, LayerNorm, softmax, residuals, losses) in the
layer's compute dtype. :func:`set_matmul_dtype` switches a built model.
:class:`KernelCopies` holds kernels cast once for many calls; code that
wants them passes them explicitly (``kernels=``), there is no ambient state.
:func:`set_precision` is the training entry point (``matmul_dtype`` for the
builder, or a Keras mixed-precision policy for GPUs).

``precision="auto"``: bfloat16 matrix products only where they are faster on this machine.

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

import keras
from keras import ops

from bert4sim.activations import bias_add, gelu_erf, gelu_erf_fusable
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
            projected = [bias_add(tf.matmul(h, w), b) for w, b in weights[:4]]
            (w1, b1), (w2, b2) = weights[4:]
            hidden_out = bias_add(tf.matmul(gelu_erf_fusable(bias_add(tf.matmul(h, w1), b1)), w2), b2)
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


def set_precision(policy=None):
    """Set the training precision; returns the ``matmul_dtype`` to build the model with.

    ``None``/``'float32'``; ``'bfloat16'``: matrix products in bfloat16,
    everything else (weights, activations, LayerNorm, softmax, losses) in
    float32 — the fast choice on CPUs with AMX, where Keras's mixed
    policies lose time to bfloat16 elementwise work; ``'auto'``: bfloat16
    products where they are faster on this machine, else float32
    (:func:`auto_precision`); ``'mixed_bfloat16'`` / ``'mixed_float16'``:
    Keras's global mixed-precision policy (GPUs). Call before building the
    model. Losses are computed in float32.

    Example:
        >>> matmul_dtype = set_precision("bfloat16")   # 'bfloat16'; the Keras policy stays float32
        >>> bert = build_transformer_model(..., matmul_dtype=matmul_dtype)
    """
    allowed = (None, "auto", "float32", "bfloat16", "mixed_bfloat16", "mixed_float16")
    if policy not in allowed:
        raise ValueError(f"precision policy must be one of {allowed}, got {policy!r}")
    if policy == "auto":
        policy = auto_precision()
    keras.mixed_precision.set_global_policy("float32" if policy in (None, "bfloat16") else policy)
    return "bfloat16" if policy == "bfloat16" else None


# --- Matrix products in another dtype -------------------------------------------------------------

MATMUL_DTYPES = (None, "float32", "bfloat16", "float16")


def check_matmul_dtype(dtype):
    """``dtype`` as layers store it (``"float32"`` becomes None), or a ValueError naming the choices.

    Example:
        >>> check_matmul_dtype("float32") is None
        True
    """
    if dtype not in MATMUL_DTYPES:
        raise ValueError(f"matmul_dtype must be one of {MATMUL_DTYPES}, got {dtype!r}")
    return None if dtype == "float32" else dtype


def matmul_in(dtype, x, y, equation=None):
    """``x @ y`` (or ``einsum(equation, x, y)``) with both operands cast to ``dtype`` (None: as they are).

    The result keeps ``dtype``; callers cast it back. Used for the
    ``matmul_dtype`` option of bert4sim's layers.

    Example:
        >>> matmul_in("bfloat16", x, kernel)  # bfloat16 product of float32 tensors
    """
    if dtype is not None:
        x, y = ops.cast(x, dtype), ops.cast(y, dtype)
    return ops.matmul(x, y) if equation is None else ops.einsum(equation, x, y)


def product_dtype(layer):
    """The dtype ``layer``'s matrix product runs in (its ``matmul_dtype``, else its compute dtype).

    Example:
        >>> product_dtype(Dense(4, matmul_dtype="bfloat16"))
        'bfloat16'
    """
    return getattr(layer, "matmul_dtype", None) or layer.compute_dtype


class MatmulDtype:
    """Mixin: a ``matmul_dtype`` attribute that also sets itself on the sublayers named in ``_matmul_children``.

    A layer whose own weight is multiplied names it in ``_product_kernel``
    (``"kernel"``, ``"embeddings"``), so :class:`KernelCopies` finds it.

    Example:
        >>> class Head(MatmulDtype, keras.layers.Layer):
        ...     _matmul_children = ("dense",)
    """

    _matmul_children = ()
    _product_kernel = None

    @property
    def matmul_dtype(self):
        return getattr(self, "_matmul_dtype", None)

    @matmul_dtype.setter
    def matmul_dtype(self, dtype):
        self._matmul_dtype = check_matmul_dtype(dtype)
        for name in self._matmul_children:
            child = getattr(self, name, None)
            if child is not None:
                child.matmul_dtype = self._matmul_dtype


@keras.saving.register_keras_serializable(package="bert4sim")
class Dense(MatmulDtype, keras.layers.Dense):
    """``keras.layers.Dense`` whose matrix product may run in another dtype.

    With ``matmul_dtype="bfloat16"`` the input and the kernel are cast to
    bfloat16 for the product only (several times faster on CPUs with AMX);
    the bias, the activation and the output stay in the layer's compute
    dtype (float32 unless a Keras mixed-precision policy is set), where
    elementwise work is fast. ``matmul_dtype=None`` is ``keras.layers.Dense``.

    Example:
        >>> dense = Dense(64, activation="gelu", matmul_dtype="bfloat16")
        >>> dense(keras.ops.ones((2, 32))).dtype  # float32
    """

    _product_kernel = "kernel"

    def __init__(self, units, matmul_dtype=None, **kwargs):
        super().__init__(units, **kwargs)
        self.matmul_dtype = matmul_dtype

    def call(self, inputs, training=None, kernels=None):
        keras_path = training and self.matmul_dtype in (None, self.compute_dtype)
        if keras_path or self.lora_enabled or self.quantization_mode:
            return super().call(inputs, training=training)
        return self.project(inputs, kernel=None if kernels is None else kernels.kernel_for(self))

    def project(self, inputs, kernel=None, output_dtype=None):
        """Product (in ``matmul_dtype``), bias and activation; the result in ``output_dtype``.

        ``kernel`` replaces the layer's kernel, e.g. one already cast to
        ``matmul_dtype`` once for many calls (:class:`KernelCopies`).
        ``output_dtype`` defaults to the compute dtype; asking for the
        product dtype (``"bfloat16"`` when feeding another bfloat16 product)
        keeps bias and activation in that dtype, where TensorFlow fuses
        them into the product's kernel at inference.

        Example:
            >>> y = dense.project(x, kernel=copies.kernel_for(dense))
            >>> h = dense.project(x, output_dtype="bfloat16")  # input of the next bfloat16 product
        """
        kernel = self.kernel if kernel is None else kernel
        dtype = product_dtype(self)
        output_dtype = output_dtype or self.compute_dtype
        # 2-D, so that the product is a MatMul that TensorFlow can fuse with what follows.
        x = ops.reshape(inputs, (-1, ops.shape(inputs)[-1]))
        x = matmul_in(dtype, x, kernel)
        if output_dtype == dtype:
            if self.bias is not None:
                x = bias_add(x, ops.cast(self.bias, dtype))
            activation = gelu_erf_fusable if self.activation is gelu_erf else self.activation
        else:
            x = ops.cast(x, output_dtype)
            if self.bias is not None:
                x = ops.add(x, ops.cast(self.bias, output_dtype))
            activation = self.activation
        if activation is not None:
            x = activation(x)
        return ops.reshape(x, tuple(ops.shape(inputs)[:-1]) + (self.units,))

    def get_config(self):
        return {**super().get_config(), "matmul_dtype": self.matmul_dtype}


def set_matmul_dtype(model, dtype):
    """Run the matrix products of a bert4sim model's layers in ``dtype`` (None / "float32": as computed).

    Switches, in place, every layer of ``model`` (nested models included)
    that has a ``matmul_dtype`` option: dense projections, attention
    products, the tied MLM output projection. The choice is in each layer's
    config, so it is saved with the model. Weights are unchanged; call it
    before the model is traced (functions traced earlier keep the old
    setting). Returns the number of layers switched.

    Example:
        >>> set_matmul_dtype(encoder, "bfloat16")   # CPU with AMX: ~2x encode and training speed
    """
    dtype = check_matmul_dtype(dtype)
    switched = 0
    for layer in model.layers if isinstance(model, keras.Model) else [model]:
        if isinstance(layer, keras.Model):
            switched += set_matmul_dtype(layer, dtype)
        elif hasattr(layer, "matmul_dtype"):
            layer.matmul_dtype = dtype
            switched += 1
    return switched


def _product_layers(layer):
    """The layers of a model or bert4sim layer that multiply by a weight of their own, nested ones included."""
    if getattr(layer, "_product_kernel", None):
        yield layer
    children = layer.layers if isinstance(layer, keras.Model) else (
        getattr(layer, name, None) for name in getattr(layer, "_matmul_children", ()))
    for child in children:
        if child is not None:
            yield from _product_layers(child)


class KernelCopies:
    """Copies of a model's kernels in their product dtype, cast once for many calls.

    A layer whose product runs in another dtype than its kernel
    (``matmul_dtype="bfloat16"``, a mixed-precision policy) casts the kernel
    at every call: per step when decoding. Here each such kernel (Dense
    kernels, the tied embedding matrix) gets a copy, made by
    :meth:`refresh`. Callers pass them explicitly: ``kernels=copies`` to a
    layer call that takes it, or ``kernel=copies.kernel_for(layer)`` to
    ``Dense.project``. Call ``refresh()`` at the start of each decoding call,
    so a model trained in between runs with its new weights. Kernels already
    in their product dtype get no copy.

    Example:
        >>> copies = KernelCopies(seq2seq)
        >>> copies.refresh()
        >>> y = dense.project(x, kernel=copies.kernel_for(dense))
    """

    def __init__(self, model):
        self.copies = {}  # id(layer) -> (kernel, copy)
        for layer in _product_layers(model):
            kernel, dtype = getattr(layer, layer._product_kernel), product_dtype(layer)
            if id(layer) not in self.copies and kernel.dtype != dtype:
                copy = keras.Variable(ops.zeros(kernel.shape, dtype), dtype=dtype, trainable=False,
                                      name=f"{layer.name}_{dtype}_copy")
                self.copies[id(layer)] = (kernel, copy)
        self._refresh = None

    def refresh(self):
        """Cast every kernel into its copy (one compiled call)."""
        if not self.copies:
            return
        if self._refresh is None:
            def cast_all():
                for kernel, copy in self.copies.values():
                    copy.assign(ops.cast(kernel, copy.dtype))
                return 0

            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                cast_all = tf.function(cast_all)
            self._refresh = cast_all
        self._refresh()

    def kernel_for(self, layer):
        """``layer``'s copy, or its own kernel (no copy, or one made before its matmul_dtype was switched).

        Example:
            >>> logits = embedding.logits(hidden, embeddings=copies.kernel_for(embedding))
        """
        _, copy = self.copies.get(id(layer), (None, None))
        if copy is not None and copy.dtype == product_dtype(layer):
            return copy
        return getattr(layer, layer._product_kernel)
