"""Generation speed: cached incremental decoding vs full recompute (the bert4keras way).

SimBERT-base shape by default (12 layers, hidden 768, 12 heads, vocab 13584 as SimBERT's
simplified vocab), random weights made here; `random_sample` with n=100 for 32 forced steps
(the end id never occurs). Both paths run in this process on the same model.
Reference: bert4keras 0.11.5 takes about 63 s for this call on a 2-core CPU machine.

Usage: python benchmarks/generation.py [--model bert|roformer] [--layers 12 --hidden 768]
       [--n 100 --steps 32] [--skip-recompute]
"""
import argparse
import time

import numpy as np

from bert4sim.generation import CachedDecoder, RecomputeDecoder
from bert4sim.models import build_transformer_model


def timed(decoder, inputs, n, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = decoder.random_sample(inputs, n, topk=5, seed=0)
        best = min(best, time.perf_counter() - start)
    return best, outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="bert", choices=["bert", "roformer"])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=13584)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--source-length", type=int, default=20)
    parser.add_argument("--skip-recompute", action="store_true")
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
    print(f"{args.model}: {args.layers} layers, hidden {args.hidden}, vocab {args.vocab}; "
          f"random_sample n={args.n}, {args.steps} steps, source {len(source)} tokens")
    cached = CachedDecoder(model, end_id=never, maxlen=args.steps)
    cached.random_sample(inputs, args.n, topk=5, seed=0)  # trace the compiled step once
    cached_time, cached_out = timed(cached, inputs, args.n, repeats=2)
    print(f"bert4sim cached decoding:   {cached_time:8.2f} s per call")
    if args.skip_recompute:
        return
    slow = RecomputeDecoder(model, end_id=never, maxlen=args.steps)
    slow_time, slow_out = timed(slow, inputs, args.n, repeats=1)
    same = sum(np.array_equal(a, b) for a, b in zip(cached_out, slow_out))
    print(f"full recompute (bert4keras way, same model): {slow_time:8.2f} s per call")
    print(f"speed-up: {slow_time / cached_time:.1f}x; identical samples: {same}/{len(cached_out)}")
    print("reference: bert4keras 0.11.5, ~63 s per call on a 2-core CPU machine (from the issue)")


if __name__ == "__main__":
    main()
