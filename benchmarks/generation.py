"""Generation speed: cached incremental decoding vs full recompute (the bert4keras way).

SimBERT-base shape by default (12 layers, hidden 768, 12 heads, vocab 13584 as SimBERT's
simplified vocab), random weights made here; `random_sample` with n=100, topk=5 for 32 forced
steps (the end id never occurs), source of 20 tokens. For each precision both of our paths run in
this process on the same model: `CachedDecoder` and `RecomputeDecoder` (the whole sequence through
the model at every step, as bert4keras's AutoRegressiveDecoder does). bfloat16 = matrix products
in bfloat16, the rest float32 (`set_matmul_dtype`), for CPUs with AMX. In float32 the cached path
also runs compiled with XLA (`CachedDecoder(..., jit_compile=True)`): the first call compiles.

bert4keras 0.11.5 itself (float32) is measured in the same run when its old-TensorFlow virtualenv
is given (--bert4keras-python or BERT4KERAS_PYTHON; see benchmarks/bert4keras_reference.py).

Under each of our figures, the two bounds of that call (benchmarks/_machine.py): the FLOPs of its
matrix products (counted from the model's shape: per block the query/key/value/output projections,
the FFN and both attention products over the source and the tokens so far; the MLM head's
transform and vocabulary product; the source's prefill; for the cached path only the rows it
really feeds, i.e. the distinct histories of the returned samples, every row with XLA) against the
matmul peak of that precision measured here, and the bytes a call must at least read (every product
kernel once per step at the precision's width, plus the cached keys/values each step attends to)
against the measured memory bandwidth. The binding bound is marked; its share is how close the
call runs to it.

Usage: python benchmarks/generation.py [--model bert|roformer] [--precision float32 bfloat16]
       [--layers 12 --hidden 768] [--n 100 --steps 32] [--skip-recompute]
       [--bert4keras-python ~/b4k-ref/bin/python]
"""
import argparse
import os
import time

import numpy as np
from _machine import WIDTH, block_product_flops, bound_lines, head_product_flops, machine_lines, product_weights
from bert4keras_reference import measure

from bert4sim.generation import CachedDecoder, RecomputeDecoder
from bert4sim.precision import set_matmul_dtype
from bert4sim.models import build_transformer_model


def timed(decoder, inputs, n, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = decoder.random_sample(inputs, n, topk=5, seed=0)
        best = min(best, time.perf_counter() - start)
    return best, outputs


def cached_bounds(samples, shape, source_length, precision, cache_width, every_row):
    """``(FLOPs, bytes)`` of one cached ``random_sample`` call that returned ``samples``.

    Column ``c`` of the outputs is fed for the distinct prefixes ``samples[:, :c + 1]`` (rows with
    the same history share a cache row; ``every_row``: XLA feeds all rows); the last column is not fed.

    Example:
        >>> cached_bounds(samples, (12, 768, 3072, 13584), 20, "bfloat16", cache_width=4, every_row=False)
    """
    layers, hidden, inner, vocab = shape
    outputs = np.array(samples)
    flops = layers * block_product_flops(source_length, source_length, hidden, inner)
    flops += head_product_flops(1, hidden, vocab)  # the prefill's logits at the last source position
    moved = 0
    weights = product_weights(layers, hidden, inner, vocab) * WIDTH[precision]
    for column in range(outputs.shape[1] - 1):
        rows = len(outputs) if every_row else len(np.unique(outputs[:, : column + 1], axis=0))
        keys = source_length + column + 1
        flops += layers * block_product_flops(rows, keys, hidden, inner) + head_product_flops(rows, hidden, vocab)
        moved += weights + layers * 2 * rows * (column + 1) * hidden * cache_width
    return flops, moved


def recompute_bounds(n, steps, shape, source_length, precision):
    """``(FLOPs, bytes)`` of one full-recompute call: step s runs the model (MLM head at every position) on
    source + s tokens, one row at the first step and ``n`` after.

    Example:
        >>> recompute_bounds(100, 32, (12, 768, 3072, 13584), 20, "float32")
    """
    layers, hidden, inner, vocab = shape
    flops = moved = 0
    for step in range(steps):
        rows, length = (1 if step == 0 else n), source_length + step
        flops += layers * block_product_flops(rows * length, length, hidden, inner)
        flops += head_product_flops(rows * length, hidden, vocab, pooled_rows=rows)
        moved += product_weights(layers, hidden, inner, vocab, pooler=True) * WIDTH[precision]
    return flops, moved


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="bert", choices=["bert", "roformer"])
    parser.add_argument("--precision", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=13584)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--source-length", type=int, default=20)
    parser.add_argument("--skip-recompute", action="store_true")
    parser.add_argument("--bert4keras-python", default=os.environ.get("BERT4KERAS_PYTHON"),
                        help="python of a virtualenv with bert4keras 0.11.5 + TF 2.12 (see bert4keras_reference.py)")
    args = parser.parse_args()
    model = build_transformer_model(
        vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=max(1, args.hidden // 64), intermediate_size=4 * args.hidden,
        model=args.model, application="unilm", with_pool="linear",
    )
    rng = np.random.default_rng(0)
    source = [2] + list(rng.integers(5, args.vocab, args.source_length - 2)) + [3]
    inputs = [source, [0] * len(source)]
    never = -1  # an end id that is never sampled: every row runs all steps
    shape = (args.layers, args.hidden, 4 * args.hidden, args.vocab)
    peaks, bandwidth, lines = machine_lines(args.precision)
    print("\n".join(lines))
    print(f"{args.model}: {args.layers} layers, hidden {args.hidden}, vocab {args.vocab}; "
          f"random_sample n={args.n}, topk=5, {args.steps} steps, source {len(source)} tokens")
    reference = None
    if args.bert4keras_python:
        reference = measure(args.bert4keras_python, "generate", model=args.model, layers=args.layers,
                            hidden=args.hidden, heads=max(1, args.hidden // 64), vocab=args.vocab, n=args.n,
                            steps=args.steps, source_length=args.source_length)["seconds_per_call"]
        print(f"bert4keras 0.11.5 AutoRegressiveDecoder, float32: {reference:8.2f} s per call", flush=True)
    for precision in args.precision:
        set_matmul_dtype(model, precision)
        # XLA fuses the step's small operations; its CPU matrix products do not use AMX, so
        # bfloat16 products run without it.
        cached_times = {}
        for jit_compile in (False, True) if precision == "float32" else (False,):
            cached = CachedDecoder(model, end_id=never, maxlen=args.steps, jit_compile=jit_compile)
            start = time.perf_counter()
            cached.random_sample(inputs, args.n, topk=5, seed=0)  # trace (and compile) the step once
            first = time.perf_counter() - start
            cached_times[jit_compile], cached_out = timed(cached, inputs, args.n, repeats=2)
            name = f"bert4sim cached decoding{', XLA' if jit_compile else ''}, {precision}:"
            versus = f"   {reference / cached_times[jit_compile]:.1f}x faster than bert4keras" if reference else ""
            print(f"{name:42s} {cached_times[jit_compile]:8.2f} s per call (first call {first:.1f} s){versus}")
            # bytes per cached key/value element, as the step keeps them
            cache_width = cached._start([[i] for i in inputs], 1)["prefix"][0][0].dtype.size
            flops, moved = cached_bounds(cached_out, shape, len(source), precision, cache_width, jit_compile)
            print("\n".join(bound_lines(flops, moved, cached_times[jit_compile], peaks[precision], bandwidth,
                                        precision, unit="call")), flush=True)
        if args.skip_recompute:
            continue
        slow = RecomputeDecoder(model, end_id=never, maxlen=args.steps)
        slow_time, slow_out = timed(slow, inputs, args.n, repeats=1)
        same = sum(np.array_equal(a, b) for a, b in zip(cached_out, slow_out))
        speedups = ", ".join(f"{'XLA ' if jit else ''}cached {slow_time / t:.1f}x faster" for jit, t in cached_times.items())
        print(f"{'bert4sim full recompute, ' + precision + ':':42s} {slow_time:8.2f} s per call   {speedups} "
              f"(target >= 20x); same samples {same}/{len(cached_out)} (random weights: near-uniform "
              f"probabilities, round-off flips some draws)")
        flops, moved = recompute_bounds(args.n, args.steps, shape, len(source), precision)
        print("\n".join(bound_lines(flops, moved, slow_time, peaks[precision], bandwidth, precision, unit="call")),
              flush=True)
    if not args.bert4keras_python:
        print("bert4keras: not measured (pass --bert4keras-python, see benchmarks/bert4keras_reference.py)")


if __name__ == "__main__":
    main()
