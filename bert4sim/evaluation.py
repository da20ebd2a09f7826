"""Evaluation: STS correlation (Spearman / Pearson of cosine vs gold) and retrieval metrics.

The metrics need numpy only (no scipy); ``EvaluationCallback`` (Keras, imported on first use)
runs either after every epoch of ``fit``.
"""
import json
import os

import numpy as np


def rankdata(values):
    """Ranks starting at 1, ties sharing their average rank (scipy's 'average' method).

    Example:
        >>> rankdata([10, 20, 20, 30])
        array([1. , 2.5, 2.5, 4. ])
    """
    values = np.asarray(values, dtype="float64")
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return ranks


def pearson(x, y):
    """Pearson correlation; raises on constant input, where it is undefined."""
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need two sequences of the same length >= 2, got {len(x)} and {len(y)}")
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    if denominator == 0:
        raise ValueError("correlation is undefined for a constant sequence")
    return float((x * y).sum() / denominator)


def spearman(x, y):
    """Spearman rank correlation with average ranks for ties.

    Example:
        >>> spearman([1, 2, 3, 4], [10, 20, 30, 40])
        1.0
    """
    return pearson(rankdata(x), rankdata(y))


def read_scored_pairs(path):
    """Read ``sentence1<TAB>sentence2<TAB>score`` lines; errors name the file and line."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pair file not found: {path}")
    firsts, seconds, scores = [], [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3:
                raise ValueError(f"{path}:{number}: expected 3 tab-separated fields, got {len(fields)}")
            try:
                score = float(fields[2])
            except ValueError:
                raise ValueError(f"{path}:{number}: score {fields[2]!r} is not a number") from None
            firsts.append(fields[0])
            seconds.append(fields[1])
            scores.append(score)
    if not scores:
        raise ValueError(f"{path} has no pairs")
    return firsts, seconds, np.array(scores)


def evaluate_sts(encode, firsts, seconds, scores):
    """``{"spearman", "pearson"}`` of cosine(encode(first), encode(second)) against gold scores.

    ``encode`` maps a list of texts to vectors (e.g. ``SimilarityModel.encode``).

    Example:
        >>> evaluate_sts(sim.encode, *read_scored_pairs("examples/data/sts_dev.tsv"))
        {'spearman': 0.81, 'pearson': 0.79}
    """
    a, b = np.asarray(encode(list(firsts)), "float64"), np.asarray(encode(list(seconds)), "float64")
    a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    cosines = (a * b).sum(1)
    return {"spearman": spearman(cosines, scores), "pearson": pearson(cosines, scores)}


def retrieval_metrics(ranked, relevant, ks=(1, 5, 10)):
    """Recall@k (fraction of a query's relevant docs in its top k, averaged) and MRR@10.

    ``ranked``: ``{query_id: [doc ids, best first]}``; ``relevant``:
    ``{query_id: [relevant doc ids]}``.

    Example:
        >>> retrieval_metrics({"q": ["a", "b"]}, {"q": ["b"]})
        {'recall@1': 0.0, 'recall@5': 1.0, 'recall@10': 1.0, 'mrr@10': 0.5}
    """
    if not relevant:
        raise ValueError("no queries with relevant documents")
    results = {f"recall@{k}": [] for k in ks}
    reciprocal = []
    for query, docs in relevant.items():
        docs = set(docs)
        if not docs:
            raise ValueError(f"query {query!r} has no relevant documents")
        ranking = list(ranked.get(query, []))
        for k in ks:
            results[f"recall@{k}"].append(len(docs & set(ranking[:k])) / len(docs))
        rank = next((i + 1 for i, doc in enumerate(ranking[:10]) if doc in docs), None)
        reciprocal.append(1.0 / rank if rank else 0.0)
    metrics = {name: float(np.mean(values)) for name, values in results.items()}
    metrics["mrr@10"] = float(np.mean(reciprocal))
    return metrics


def evaluate_retrieval(encode, queries, corpus, qrels, ks=(1, 5, 10)):
    """Retrieval metrics of an encoder on ``{"queries", "corpus", "qrels"}`` dicts (exact cosine search).

    Example:
        >>> data = json.load(open("examples/data/retrieval_dev.json"))
        >>> evaluate_retrieval(sim.encode, data["queries"], data["corpus"], data["qrels"])
    """
    query_ids, doc_ids = list(queries), list(corpus)
    q = np.asarray(encode([queries[i] for i in query_ids]), "float32")
    d = np.asarray(encode([corpus[i] for i in doc_ids]), "float32")
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    top = np.argsort(-(q @ d.T), axis=1, kind="stable")[:, : max(max(ks), 10)]
    ranked = {qid: [doc_ids[j] for j in row] for qid, row in zip(query_ids, top)}
    return retrieval_metrics(ranked, {qid: qrels[qid] for qid in query_ids if qid in qrels}, ks)


def load_retrieval_set(path):
    """Read a ``{"queries", "corpus", "qrels"}`` JSON file (the shipped ``retrieval_dev.json`` format)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    for key in ("queries", "corpus", "qrels"):
        if key not in data:
            raise KeyError(f"{path} lacks {key!r}")
    return data["queries"], data["corpus"], data["qrels"]


def _make_callback_class():
    import keras

    class EvaluationCallback(keras.callbacks.Callback):
        """Runs ``evaluate()`` (returning a dict of metrics) after each epoch and adds them to the logs.

        Example:
            >>> sts = read_scored_pairs("examples/data/sts_dev.tsv")
            >>> callback = EvaluationCallback(lambda: evaluate_sts(sim.encode, *sts), prefix="dev_")
            >>> model.fit(..., callbacks=[callback])
        """

        def __init__(self, evaluate, prefix="val_"):
            super().__init__()
            self.evaluate, self.prefix, self.history = evaluate, prefix, []

        def on_epoch_end(self, epoch, logs=None):
            metrics = self.evaluate()
            self.history.append(metrics)
            if logs is not None:
                logs.update({self.prefix + name: value for name, value in metrics.items()})
            print(" - ".join(f"{self.prefix}{name}: {value:.4f}" for name, value in metrics.items()))

    EvaluationCallback.__module__, EvaluationCallback.__qualname__ = __name__, "EvaluationCallback"
    return EvaluationCallback


def __getattr__(name):
    # The Keras callback is made on first use, so the metric functions import numpy only.
    if name == "EvaluationCallback":
        globals()[name] = _make_callback_class()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
