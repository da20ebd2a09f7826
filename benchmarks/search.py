"""Vector search: exact numpy search over 1M random 768-d unit vectors, and faiss HNSW if installed.

Prints ms/query for one query at a time and for batches of 64 queries, the bytes each pass reads
and the fraction of this machine's measured memory bandwidth that makes (reading the float32
matrix once per pass), then recall@10 against the exact result and ms/query of an approximate
faiss HNSW index (skipped without faiss-cpu; building it over 1M vectors takes a while on 2 cores:
--approx-n limits it).

Usage: python benchmarks/search.py [--n 1000000] [--dim 768] [--approx-n 1000000] [--no-approx]
"""
import argparse
import time

import numpy as np

from bert4sim.similarity import VectorIndex


def memory_bandwidth(matrix, repeats=3):
    """Bytes/s moved by copying ``matrix`` (counting its read and its write)."""
    target = np.empty_like(matrix)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, matrix)
        best = min(best, time.perf_counter() - start)
    return 2 * matrix.nbytes / best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--approx-n", type=int, default=None)
    parser.add_argument("--no-approx", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    index = VectorIndex(args.dim)
    index.vectors, index.texts = vectors, [""] * args.n  # skip per-text bookkeeping for the benchmark
    bandwidth = memory_bandwidth(vectors)
    print(f"{args.n} x {args.dim} float32 = {vectors.nbytes / 2**30:.2f} GiB; "
          f"measured read bandwidth {bandwidth / 1e9:.1f} GB/s")
    index.search(queries[:1], topn=10)
    start = time.perf_counter()
    for q in queries[:8]:
        index.search(q[None], topn=10)
    single = (time.perf_counter() - start) / 8
    print(f"exact, one query per pass:   {single * 1e3:8.1f} ms/query, "
          f"{vectors.nbytes / single / bandwidth:5.0%} of bandwidth")
    start = time.perf_counter()
    exact_scores, exact_ids = index.search(queries, topn=10)
    batch = time.perf_counter() - start
    print(f"exact, {args.queries} queries per pass: {batch / args.queries * 1e3:8.2f} ms/query, "
          f"{vectors.nbytes / batch / bandwidth:5.0%} of bandwidth")
    if args.no_approx:
        return
    try:
        import faiss  # noqa: F401
    except ImportError:
        print("faiss: not installed (pip install faiss-cpu): approximate search skipped")
        return
    n = args.approx_n or args.n
    approx = VectorIndex(args.dim, backend="faiss")
    start = time.perf_counter()
    approx.add(vectors[:n], [str(i) for i in range(n)])
    print(f"faiss HNSW (M={approx.hnsw_m}, efSearch=128) built over {n} vectors in {time.perf_counter() - start:.0f} s")
    if n != args.n:
        exact_ids = VectorIndex(args.dim).add(vectors[:n], [str(i) for i in range(n)]).search(queries, topn=10)[1]
    approx.search(queries[:1], topn=10)
    start = time.perf_counter()
    _, approx_ids = approx.search(queries, topn=10)
    per_query = (time.perf_counter() - start) / args.queries
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx_ids, exact_ids)])
    print(f"approximate: recall@10 {recall:.3f} at {per_query * 1e3:.2f} ms/query (targets: >= 0.95, <= 5 ms)")


if __name__ == "__main__":
    main()
