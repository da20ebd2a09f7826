"""Evaluation of saved encoders for benchmarks/pretraining.py: frozen [CLS] / mean vectors on three tasks, the curve.

A run folder holds ``initial/`` (the common initial encoder) and ``<variant>/step_NNNNNN/`` encoders (Google
format). :func:`evaluate_run` loads each with ``build_transformer_model`` and measures, against a bag of
characters and the initial (random) encoder:

  sentiment  k-NN (k=10, cosine) and logistic-regression accuracy on the held-out labelled reviews;
  clauses    each Cilin rewrite of a held-out People's Daily clause against all held-out clauses (recall@1, MRR@10);
  passages   inverse cloze (:func:`cloze_task`): a sentence taken out of the first passage of a held-out article,
             against the rest of every such passage (recall@1, MRR@10).

It writes ``curve.json`` (figures, verdict) and ``curve.png`` (matplotlib, optional) into the folder.

Example:
    >>> summary = evaluate_run("runs/pt", "data_cache/real", quick=False)
    >>> summary["curve"]["retromae"][3000]["cls"]["passages_recall@1"]
"""
import glob
import json
import math
import os
import platform
import sys
import time

import numpy as np

PASSAGE_CHARS = 254  # the inverse-cloze passages: first piece of each held-out article, 256 tokens with [CLS]/[SEP]
QUICK = dict(reviews=(1000, 500), clauses=300, passages=200)  # evaluation sizes of --quick


def read_tsv(path, columns):
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != columns:
                raise ValueError(f"{path}:{number}: expected {columns} tab-separated fields, got {len(fields)}")
            rows.append(fields)
    return rows


def require(data, names):
    missing = [n for n in names if not os.path.isfile(os.path.join(data, n))]
    if missing:
        fail(f"{data} lacks {', '.join(missing)}; run python examples/data/real_corpus.py first")


def fail(message):
    """A one-line error on stderr and exit status 2, as bert4sim's commands do."""
    print(f"pretraining.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def cloze_task(articles, rng, passage_chars=PASSAGE_CHARS, min_sentences=3, min_chars=10):
    """The inverse-cloze retrieval task: ``(queries, documents)`` with ``queries = [(sentence, document index)]``.

    Of each article, the first piece of at most ``passage_chars`` characters (whole sentences) with at least
    ``min_sentences`` sentences; one sentence of ``min_chars`` or more taken out is the query, the rest the document.

    Example:
        >>> queries, documents = cloze_task(["甲说今天下雨了。乙说明天会晴。丙说后天还下。"], np.random.default_rng(0), min_chars=5)
        >>> len(queries), documents[queries[0][1]] != queries[0][0]
        (1, True)
    """
    from bert4sim.corpora import inverse_cloze
    from bert4sim.data import pack_sentences, split_sentences

    queries, documents = [], []
    for article in articles:
        sentences = split_sentences(pack_sentences([article], passage_chars)[0])
        pair = inverse_cloze(sentences, rng, min_chars) if len(sentences) >= min_sentences else None
        if pair:
            queries.append((pair[0], len(documents)))
            documents.append(pair[1])
    return queries, documents


def evaluation_data(data, quick):
    """The three tasks: ``{"reviews": (train, test), "clauses": (queries, docs), "passages": (queries, docs)}``."""
    from bert4sim.data import read_passages

    require(data, ["reviews_train.tsv", "reviews_test.tsv", "paraphrase_test.tsv", "heldout_clauses.txt",
                   "heldout_articles.txt"])
    path = lambda name: os.path.join(data, name)  # noqa: E731
    reviews_train = [(t, int(y)) for y, t in read_tsv(path("reviews_train.tsv"), 2)]
    reviews_test = [(t, int(y)) for y, t in read_tsv(path("reviews_test.tsv"), 2)]
    pairs = read_tsv(path("paraphrase_test.tsv"), 2)
    clauses = read_passages(path("heldout_clauses.txt"))
    passages = cloze_task(read_passages(path("heldout_articles.txt")), np.random.default_rng(0))
    if quick:  # fewer queries; of the clauses, the rewritten ones plus 1500 others
        reviews_train, reviews_test = reviews_train[: QUICK["reviews"][0]], reviews_test[: QUICK["reviews"][1]]
        pairs = pairs[:QUICK["clauses"]]
        originals = {a for a, _ in pairs}
        clauses = [c for i, c in enumerate(clauses) if i < 1500 or c in originals]
        passages = (passages[0][:QUICK["passages"]], passages[1])
    position = {text: i for i, text in enumerate(clauses)}
    missing = [a for a, _ in pairs if a not in position]
    if missing:
        fail(f"{len(missing)} paraphrase originals (e.g. {missing[0]!r}) are not in heldout_clauses.txt")
    return {"reviews": (reviews_train, reviews_test), "clauses": ([(b, position[a]) for a, b in pairs], clauses),
            "passages": passages}


# --- frozen vectors ---


def frozen_encoder(bert):
    """``(token_ids, segment_ids) -> sequence output`` traced once for all batch lengths."""
    import tensorflow as tf

    return tf.function(lambda a, b: bert([a, b], training=False), reduce_retracing=True)


def sentence_vectors(run, tokenizer, texts, maxlen, batch_size=64):
    """Unit-length ([CLS], mean) vectors of ``texts`` from a :func:`frozen_encoder`, batched by length."""
    from bert4sim.sequences import sequence_padding

    ids = [tokenizer.encode(t, maxlen=maxlen)[0] for t in texts]
    order = np.argsort([len(i) for i in ids], kind="stable")
    cls = mean = None
    for start in range(0, len(ids), batch_size):
        rows = order[start:start + batch_size]
        token_ids = sequence_padding([ids[i] for i in rows]).astype("int32")
        sequence = run(token_ids, np.zeros_like(token_ids)).numpy()
        if cls is None:
            cls, mean = (np.zeros((len(ids), sequence.shape[-1]), "float32") for _ in range(2))
        mask = (token_ids > 0)[..., None]
        cls[rows] = sequence[:, 0]
        mean[rows] = (sequence * mask).sum(1) / mask.sum(1)
    return {"cls": unit(cls), "mean": unit(mean)}


def unit(vectors):
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def character_bags(texts, vocabulary):
    """Unit-length bag-of-characters vectors (the no-learning baseline)."""
    bags = np.zeros((len(texts), len(vocabulary)), "float32")
    for row, text in enumerate(texts):
        for char in text.lower():
            if char in vocabulary:
                bags[row, vocabulary[char]] += 1
    return {"bag": unit(bags)}


def knn_accuracy(train_x, train_y, test_x, test_y, k=10):
    """Accuracy of a cosine k-NN vote (unit vectors; ties go to the larger similarity sum)."""
    similarity = test_x @ train_x.T
    top = np.argpartition(-similarity, k, axis=1)[:, :k]
    votes = np.zeros((len(test_x), 2))
    for label in (0, 1):
        hits = train_y[top] == label
        votes[:, label] = hits.sum(1) + 1e-6 * (np.take_along_axis(similarity, top, 1) * hits).sum(1)
    return float((votes.argmax(1) == test_y).mean())


def logistic_regression_accuracy(train_x, train_y, test_x, test_y, l2=1e-3, steps=500, lr=0.5):
    """Accuracy of an L2-regularised logistic regression fitted by full-batch gradient descent (features standardised)."""
    mean, scale = train_x.mean(0), train_x.std(0) + 1e-6
    x, z = (((v - mean) / scale).astype("float64") for v in (train_x, test_x))  # float32 @ float64 copies every step
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        w -= lr * (x.T @ (p - train_y) / len(x) + l2 * w)
        b -= lr * float((p - train_y).mean())
    return float((((z @ w + b) > 0).astype(int) == test_y).mean())


def retrieval(query_vectors, document_vectors, gold):
    """recall@1 and MRR@10 of cosine search (unit vectors), one relevant document per query."""
    from bert4sim.evaluation import retrieval_metrics

    top = np.argsort(-(query_vectors @ document_vectors.T), axis=1, kind="stable")[:, :10]
    metrics = retrieval_metrics({i: list(row) for i, row in enumerate(top)}, {i: [g] for i, g in enumerate(gold)})
    return {"recall@1": metrics["recall@1"], "mrr@10": metrics["mrr@10"]}


def evaluate(vectors_of, tasks):
    """Figures of one way of making unit vectors (``vectors_of(texts) -> {pooling: vectors}``), per pooling."""
    train, test = tasks["reviews"]
    train_y, test_y = np.array([y for _, y in train]), np.array([y for _, y in test])
    vectors = {"train": vectors_of([t for t, _ in train]), "test": vectors_of([t for t, _ in test])}
    for task in ("clauses", "passages"):
        queries, documents = tasks[task]
        vectors[task] = vectors_of([q for q, _ in queries]), vectors_of(documents)
    results = {}
    for pooling in vectors["train"]:
        x, z = vectors["train"][pooling], vectors["test"][pooling]
        results[pooling] = {"knn10_accuracy": knn_accuracy(x, train_y, z, test_y),
                            "logreg_accuracy": logistic_regression_accuracy(x, train_y, z, test_y)}
        for task in ("clauses", "passages"):
            queries, docs = vectors[task]
            found = retrieval(queries[pooling], docs[pooling], [g for _, g in tasks[task][0]])
            results[pooling].update({f"{task}_{name}": value for name, value in found.items()})
    return results


def evaluate_folder(folder, tokenizer, tasks, maxlen):
    """Load a saved encoder with ``build_transformer_model`` and evaluate its [CLS] and mean vectors."""
    from bert4sim.models import build_transformer_model

    bert = build_transformer_model(os.path.join(folder, "bert_config.json"), folder)
    run = frozen_encoder(bert)
    return evaluate(lambda texts: sentence_vectors(run, tokenizer, texts, maxlen), tasks)


# --- the curve ---


def overtaking_step(steps, ours, theirs):
    """The first step from which ``ours`` stays above ``theirs`` at every later point; None if not at the end.

    Example:
        >>> overtaking_step([1, 2, 3, 4], [0.1, 0.3, 0.2, 0.5], [0.2, 0.2, 0.3, 0.4])
        4
    """
    first = None
    for step, a, b in zip(steps, ours, theirs):
        first = (first or step) if a > b else None
    return first


def steps_to_reach(steps, values, target):
    """Step count at which a log-linear fit ``value = a + b * ln(step)`` reaches ``target``; None if it never does.

    Example:
        >>> round(steps_to_reach([100, 1000], [0.1, 0.2], 0.4))
        100000
    """
    if len(steps) < 2:
        return None
    slope, intercept = np.polyfit(np.log(steps), values, 1)
    if slope <= 0:
        return None
    return float(math.exp(min((target - intercept) / slope, 700.0)))  # 700: no float overflow


def verdict(curve, baselines):
    """Plain sentences: where RetroMAE's [CLS] overtakes MLM's, and how the vectors stand against the baselines."""
    lines = []
    steps = sorted(set(curve.get("mlm", {})) & set(curve.get("retromae", {})))
    tasks = [("passages_recall@1", "passage retrieval recall@1"), ("clauses_recall@1", "clause retrieval recall@1"),
             ("logreg_accuracy", "sentiment LR accuracy")]
    for metric, name in tasks:
        if steps:
            retro = [curve["retromae"][s]["cls"][metric] for s in steps]
            mlm = [curve["mlm"][s]["cls"][metric] for s in steps]
            first = overtaking_step(steps, retro, mlm)
            shown = ", ".join(f"{s}: {r:.3f} vs {m:.3f}" for s, r, m in zip(steps, retro, mlm))
            where = ("not above MLM's at the last point" if first is None else
                     f"above MLM's from the first point ({first} steps) on" if first == steps[0] else
                     f"overtakes MLM's at {first} steps")
            lines.append(f"{name}: RetroMAE [CLS] {where} ({shown}).")
        learned = [(r[pooling][metric], variant, step, pooling) for variant, points in curve.items()
                   for step, r in points.items() for pooling in r]
        if not learned:
            continue
        best, variant, step, pooling = max(learned)
        bag = baselines["characters"]["bag"][metric]
        random_best = max(baselines["initial"].values(), key=lambda r: r[metric])[metric]
        against = (("the random initial encoder", random_best), ("a bag of characters", bag))
        beats, misses = ([n for n, v in against if (best > v) == wins] for wins in (True, False))
        line = (f"{name}: best learned vector {variant} {pooling} at {step} steps {best:.3f}; random initial encoder "
                f"{random_best:.3f} (best pooling), bag of characters {bag:.3f}: "
                + (f"beats {' and '.join(beats)}" if beats else "beats neither")
                + (f", not {' nor '.join(misses)}" if beats and misses else "") + ".")
        if bag > best and "retromae" in curve:
            points = sorted(curve["retromae"])
            reach = steps_to_reach(points, [curve["retromae"][s]["cls"][metric] for s in points], bag)
            line += (" RetroMAE [CLS] does not rise with steps here, so no extrapolation." if not reach else
                     f" A log-linear fit of RetroMAE [CLS] over {len(points)} points reaches the bag of characters at "
                     + (f"about {reach:,.0f} steps (a rough extrapolation)." if reach < 1e9 else "over a billion steps."))
        lines.append(line)
    return lines


def plot_curve(curve, baselines, path):
    """curve.png: the three tasks against steps (log scale), baselines as horizontal lines; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = [("passages_recall@1", "passages (inverse cloze): recall@1"),
              ("clauses_recall@1", "clause paraphrases: recall@1"), ("logreg_accuracy", "review sentiment: LR accuracy")]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    colours = {"mlm": "tab:blue", "retromae": "tab:red"}
    for axis, (metric, title) in zip(axes, panels):
        for variant, points in curve.items():
            steps = sorted(points)
            for pooling, style in (("cls", "-o"), ("mean", "--s")):
                axis.plot(steps, [points[s][pooling][metric] for s in steps], style, color=colours.get(variant),
                          label=f"{variant} {pooling}", markersize=4)
        axis.axhline(baselines["characters"]["bag"][metric], color="black", linestyle=":", label="bag of characters")
        for pooling, style in (("cls", "-"), ("mean", "--")):
            axis.axhline(baselines["initial"][pooling][metric], color="grey", linestyle=style, linewidth=1,
                         label=f"random init {pooling}")
        axis.set_xscale("log")
        axis.set_xticks(sorted({s for points in curve.values() for s in points}))
        axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_xlabel("pre-training steps")
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def saved_points(folder):
    """``{variant: {step: encoder folder}}`` of the encoders a run saved in ``folder`` (``<variant>/step_NNNNNN/``)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(folder, "*", "step_*"))):
        if os.path.isfile(os.path.join(path, "bert_config.json")):
            variant, step = os.path.basename(os.path.dirname(path)), os.path.basename(path)[len("step_"):]
            found.setdefault(variant, {})[int(step)] = path
    return found


def evaluate_run(folder, data, quick, maxlen=256, run=None):
    """Evaluate every encoder saved in ``folder`` (and the baselines); write curve.json and curve.png.

    ``data``: the output folder of examples/data/real_corpus.py; ``quick``: smaller evaluation sets;
    ``maxlen``: longest input in tokens (the run's, from ``run`` or ``folder/run.json`` when there).
    """
    import keras

    from bert4sim.tokenizers import Tokenizer

    started = time.perf_counter()
    if run is None and os.path.isfile(os.path.join(folder, "run.json")):
        with open(os.path.join(folder, "run.json"), encoding="utf-8") as f:
            run = json.load(f)
    points = saved_points(folder)
    if not os.path.isdir(os.path.join(folder, "initial")) or not points:
        fail(f"{folder} holds no initial/ and <variant>/step_*/ encoders to evaluate")
    with open(os.path.join(folder, "initial", "bert_config.json"), encoding="utf-8") as f:
        positions = json.load(f)["max_position_embeddings"]
    maxlen = min(positions, (run or {}).get("settings", {}).get("maxlen", maxlen))
    tokenizer = Tokenizer(os.path.join(folder, "initial", "vocab.txt"), do_lower_case=True)
    tasks = evaluation_data(data, quick)
    print(f"\nevaluating (maxlen {maxlen}): {len(tasks['reviews'][0])}/{len(tasks['reviews'][1])} reviews train/test, "
          f"{len(tasks['clauses'][0])} clause rewrites against {len(tasks['clauses'][1])} clauses, "
          f"{len(tasks['passages'][0])} sentences against {len(tasks['passages'][1])} passages", flush=True)
    keras.utils.set_random_seed(0)
    baselines = {"characters": evaluate(lambda texts: character_bags(texts, tokenizer.token_dict), tasks),
                 "initial": evaluate_folder(os.path.join(folder, "initial"), tokenizer, tasks, maxlen)}
    curve = {}
    for variant, by_step in points.items():
        for step, path in sorted(by_step.items()):
            print(f"  {variant} at {step} steps ...", flush=True)
            curve.setdefault(variant, {})[step] = evaluate_folder(path, tokenizer, tasks, maxlen)
    summary = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_name(),
               "cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(), "quick_evaluation": quick,
               "evaluation_seconds": time.perf_counter() - started, "maxlen": maxlen,
               "evaluation_sizes": {"reviews_train": len(tasks["reviews"][0]), "reviews_test": len(tasks["reviews"][1]),
                                    "clause_queries": len(tasks["clauses"][0]), "clauses": len(tasks["clauses"][1]),
                                    "passage_queries": len(tasks["passages"][0]), "passages": len(tasks["passages"][1])},
               "baselines": baselines, "curve": curve, "verdict": verdict(curve, baselines)}
    with open(os.path.join(folder, "curve.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
    print_table(summary)
    png = os.path.join(folder, "curve.png")
    print(f"wrote {os.path.abspath(png)}" if plot_curve(curve, baselines, png) else
          "matplotlib is not installed (pip install -e \".[plot]\"): curve.png skipped, the figures are in curve.json")
    return summary


def print_table(summary):
    columns = ["knn10_accuracy", "logreg_accuracy", "clauses_recall@1", "clauses_mrr@10", "passages_recall@1",
               "passages_mrr@10"]
    print(f"\n{'encoder':10s} {'steps':>6s} {'pooling':7s} {'kNN-10':>7s} {'LR acc':>7s} {'clause R@1':>10s} "
          f"{'MRR@10':>7s} {'passage R@1':>11s} {'MRR@10':>7s}")
    rows = [("characters", "", "bag", summary["baselines"]["characters"]["bag"])]
    rows += [("random", 0, p, r) for p, r in summary["baselines"]["initial"].items()]
    rows += [(v, s, p, r) for v, points in summary["curve"].items() for s, by in sorted(points.items())
             for p, r in by.items()]
    for name, step, pooling, r in rows:
        print(f"{name:10s} {step!s:>6s} {pooling:7s} " + " ".join(
            f"{r[c]:{w}.3f}" for c, w in zip(columns, (7, 7, 10, 7, 11, 7))))
    print("\n".join(summary["verdict"]))
