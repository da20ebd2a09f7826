"""What this machine can do, for the benchmarks' "share of peak" lines: CPU, matmul peak, memory bandwidth.

The benchmarks count the FLOPs of their matrix products from the model's shape
(:func:`block_product_flops`, :func:`head_product_flops`) and the bytes a step
must at least move, then compare both with what this machine measurably does:
:func:`matmul_peak` (one large TensorFlow matmul per dtype) and
:func:`memory_bandwidth` (one large TensorFlow reduction, which reads every
byte once). :func:`bound_lines` prints the two bounds and which one binds.

Example:
    >>> from _machine import matmul_peak, memory_bandwidth, bound_lines
    >>> peak, bandwidth = matmul_peak("float32"), memory_bandwidth()
    >>> print("\\n".join(bound_lines(19e9, 0.4e9, 0.17, peak, bandwidth, "float32")))
"""
import os
import time

from bert4sim.precision import cpu_info

WIDTH = {"float32": 4, "bfloat16": 2, "float16": 2}  # bytes per element


def best_rate(fn, count, repeats=3):
    """``count`` / the fastest of ``repeats`` timed calls of ``fn``.

    Example:
        >>> best_rate(lambda: model.encode(texts), len(texts), repeats=5)   # texts per second
    """
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return count / best


def matmul_peak(dtype, size=2048, repeats=10):
    """FLOP/s of one large TensorFlow matmul in ``dtype`` (best of ``repeats``).

    Example:
        >>> matmul_peak("bfloat16") / 1e9   # GFLOP/s
    """
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_normal((size, size), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_normal((size, size), seed=(3, 4)), dtype)
    product = tf.function(lambda a, b: tf.reduce_sum(tf.cast(tf.matmul(a, b)[:1, :1], "float32")))
    product(a, b).numpy()
    return 2 * size**3 * best_rate(lambda: product(a, b).numpy(), 1, repeats)


def memory_bandwidth(megabytes=512, repeats=5):
    """Bytes/s read from memory: a TensorFlow sum over ``megabytes`` of float32 (all threads), best of ``repeats``.

    Far larger than the caches, so every byte comes from memory once; this is
    the rate at which a step can at best read its weights.

    Example:
        >>> memory_bandwidth() / 1e9   # GB/s
    """
    import tensorflow as tf

    count = megabytes * 2**20 // 4
    data = tf.random.stateless_uniform((count // 1024, 1024), seed=(5, 6))
    total = tf.function(lambda x: tf.reduce_sum(x))
    total(data).numpy()
    return count * 4 * best_rate(lambda: total(data).numpy(), 1, repeats)


def cpu_kind():
    """One line: CPU model, its bfloat16 instructions (AMX or not), logical CPU count.

    Example:
        >>> cpu_kind()   # 'AMD EPYC 9R14 (AVX-512 BF16, no AMX), 2 logical CPUs'
    """
    name, flags = cpu_info()
    features = ", ".join(f for f, present in (("AMX", "amx_bf16" in flags), ("AVX-512 BF16", "avx512_bf16" in flags))
                         if present) or "no bfloat16 instructions"
    return f"{name} ({features}{'' if 'amx_bf16' in flags else ', no AMX'}), {os.cpu_count()} logical CPUs"


def machine_lines(precisions):
    """Measure and describe this machine: ``(peaks by dtype, bandwidth, printable lines)``.

    Example:
        >>> peaks, bandwidth, lines = machine_lines(["float32", "bfloat16"])
    """
    import tensorflow as tf

    peaks = {dtype: matmul_peak(dtype) for dtype in precisions}
    bandwidth = memory_bandwidth()
    return peaks, bandwidth, [
        f"CPU: {cpu_kind()}; TensorFlow {tf.__version__}",
        "measured matmul peak (TensorFlow, 2048x2048x2048): "
        + ", ".join(f"{dtype} {peak / 1e9:.0f} GFLOP/s" for dtype, peak in peaks.items()),
        f"measured memory bandwidth (TensorFlow sum over 512 MiB, reads): {bandwidth / 1e9:.1f} GB/s",
    ]


def block_product_flops(tokens, key_length, hidden, inner):
    """FLOPs of one transformer block's matrix products for ``tokens`` query tokens.

    Queries/keys/values/output projections (4 h x h), the FFN (h x inner and
    back) and both attention products (scores and context, each over
    ``key_length`` keys per query token), 2 FLOPs per multiply-add.

    Example:
        >>> block_product_flops(tokens=64 * 32, key_length=32, hidden=384, inner=1536)
    """
    return 2 * tokens * (4 * hidden * hidden + 2 * hidden * inner) + 2 * 2 * tokens * key_length * hidden


def head_product_flops(rows, hidden, vocab=0, pooled_rows=0):
    """FLOPs of the MLM head on ``rows`` (transform h x h + tied vocabulary product) and a pooler on ``pooled_rows``.

    Example:
        >>> head_product_flops(rows=100, hidden=768, vocab=13584)   # one decoding step's head
    """
    return 2 * rows * (hidden * hidden + hidden * vocab) + 2 * pooled_rows * hidden * hidden


def product_weights(layers, hidden, inner, vocab=0, pooler=False):
    """Elements of the kernels the products read: blocks, MLM transform and tied embedding (if ``vocab``), pooler.

    Example:
        >>> product_weights(12, 768, 3072, vocab=13584) * 2   # bytes of the bfloat16 kernels
    """
    return layers * (4 * hidden * hidden + 2 * hidden * inner) + (hidden * hidden + vocab * hidden if vocab else 0) \
        + (hidden * hidden if pooler else 0)


def bound_lines(flops, moved, seconds, peak, bandwidth, precision, unit="step"):
    """Two lines: the time the products need at the matmul peak and the bytes at the bandwidth, each as a share.

    ``flops`` and ``moved`` (bytes) are per ``unit`` of ``seconds``. The
    binding bound is the larger of the two times; its share of the measured
    time says how close to that bound the ``unit`` runs.

    Example:
        >>> print("\\n".join(bound_lines(19.2e9, 0.39e9, 0.169, 170e9, 20e9, "float32")))
    """
    compute, memory = flops / peak, moved / bandwidth
    binding = "products" if compute >= memory else "memory"
    mark = lambda name: "  <- binding" if name == binding else ""  # noqa: E731
    return [
        f"    products: {flops / 1e9:7.2f} GFLOP per {unit} at {flops / seconds / 1e9:5.0f} GFLOP/s = "
        f"{compute / seconds:4.0%} of the {precision} matmul peak ({compute * 1e3:.1f} ms at peak){mark('products')}",
        f"    memory:   {moved / 1e9:7.2f} GB per {unit} at {moved / seconds / 1e9:5.1f} GB/s = "
        f"{memory / seconds:4.0%} of the measured bandwidth ({memory * 1e3:.1f} ms at bandwidth){mark('memory')}",
    ]
