"""Vector search: exact numpy search over 1M random 768-d unit vectors, and an approximate faiss index.

Exact part: ms/query for one query at a time and for batches of 64 queries, and the fraction of
this machine's measured memory bandwidth that makes (each pass reads the float32 matrix once).

Approximate part (needs faiss-cpu): recall@10 against exact search and ms/query of a faiss index
(default "HNSW32", efSearch 128, VectorIndex's default; building it over 1M 768-d vectors takes
10-20 minutes on 2 shared cores; IVF factories such as "IVF1024,Flat" train and add faster but
reached lower recall at the same speed here). It runs on embedding-like synthetic data by default:
unit vectors around 20k cluster centres in a 128-d subspace plus isotropic noise, queries drawn
the same way. On i.i.d. random 768-d vectors (--approx-data random) nearest neighbours are hardly
closer than any other point, so no approximate index reaches high recall short of a full scan
(HNSW32 over 50k random vectors: recall@10 0.30 at efSearch 128).

Usage: python benchmarks/search.py [--n 1000000] [--dim 768] [--no-approx]
       [--approx-n N] [--approx-data clustered|random] [--approx-factory HNSW32] [--breadth 128]
"""
import argparse
import time

import numpy as np

from bert4sim.index import VectorIndex


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
    parser.add_argument("--approx-data", default="clustered", choices=["clustered", "random"])
    parser.add_argument("--approx-factory", default="HNSW32", help="faiss index-factory string")
    parser.add_argument("--breadth", type=int, default=128, help="efSearch (HNSW) / nprobe (IVF)")
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
    index.search(queries, topn=10)
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
    del index, vectors
    approximate(args, rng)


def embedding_like(n, dim, rng, clusters=20000, rank=128, chunk=100_000):
    """Unit vectors around random cluster centres in a ``rank``-d subspace, plus isotropic noise."""
    basis = np.linalg.qr(rng.standard_normal((dim, rank)).astype(np.float32))[0].T
    centres = rng.standard_normal((clusters, rank), dtype=np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        points = centres[rng.integers(0, clusters, m)] + 0.6 * rng.standard_normal((m, rank), dtype=np.float32)
        block = points @ basis + 0.05 * rng.standard_normal((m, dim), dtype=np.float32)
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def approximate(args, rng):
    n = args.approx_n or args.n
    if args.approx_data == "random":
        data = rng.standard_normal((n + args.queries, args.dim), dtype=np.float32)
        data /= np.linalg.norm(data, axis=1, keepdims=True)
    else:
        data = embedding_like(n + args.queries, args.dim, rng)
    vectors, queries = data[:n], data[n:]
    texts = [str(i) for i in range(n)]
    exact = VectorIndex(args.dim)
    exact.vectors, exact.texts = vectors, texts
    _, exact_ids = exact.search(queries, topn=10)
    approx = VectorIndex(args.dim, backend="faiss", faiss_factory=args.approx_factory, search_breadth=args.breadth)
    start = time.perf_counter()
    approx.add(vectors, texts)
    print(f"faiss {args.approx_factory} over {n} {args.approx_data} vectors: built in "
          f"{time.perf_counter() - start:.0f} s")
    approx.search(queries[:1], topn=10)
    start = time.perf_counter()
    for q in queries[:16]:
        approx.search(q[None], topn=10)
    single = (time.perf_counter() - start) / 16
    start = time.perf_counter()
    _, approx_ids = approx.search(queries, topn=10)
    batch = (time.perf_counter() - start) / args.queries
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx_ids, exact_ids)])
    print(f"approximate (breadth {approx.search_breadth or 'default'}): recall@10 {recall:.3f}; "
          f"{single * 1e3:.2f} ms/query one at a time, {batch * 1e3:.2f} ms/query in a batch of {args.queries} "
          f"(targets: recall >= 0.95 at <= 5 ms/query)")


if __name__ == "__main__":
    main()
