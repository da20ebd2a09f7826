"""RetroMAE vs BERT masked-LM pre-training on real Chinese passages: a learning curve of frozen sentence vectors.

Pre-trains the same small encoder from scratch twice, with the same tokenizer, initial weights, batches
(the same texts in the same order), learning-rate schedule and gradient clipping:

  mlm       BERT's masked LM only (15 % of the tokens picked, 80/10/10): bert4sim's RetroMAE training model
            with the decoder's loss weight 0 (its labels are left empty, so its output head is not computed);
  retromae  bert4sim's RetroMAE recipe at the reference's rates: encoder 30 % masked, one-layer enhanced
            decoder rebuilding every token from [CLS] at 50 % decoder masking; encoder MLM + decoder loss.

The texts are whole passages (examples/data/real_corpus.py): People's Daily articles and unlabelled reviews, cut
at sentence ends into pieces of at most maxlen - 2 characters, those of --min-chars or more kept (an article or
review that short or shorter stays whole). Optimizer: AdamW (weight decay 0.01) with the gradients clipped to a
global norm of 1.0, as the reference's Hugging Face Trainer does; learning rate warmed up linearly, held, and
decayed linearly to 0 over the last --decay share of the run (WarmupStableDecay), so the checkpoints before the
decay are taken at the full rate. At each step count of --points the encoder is saved, Google format
(OUT/<variant>/step_NNNNNN/: bert_config.json, bert_model.ckpt.*, vocab.txt; OUT/initial/ holds the common
initial weights) and training goes on. Then every saved encoder is evaluated, frozen, [CLS] and mean pooling:

  sentiment  k-NN (k=10, cosine) and logistic-regression accuracy on the held-out labelled reviews;
  clauses    paraphrase retrieval: each Cilin rewrite of a held-out People's Daily clause against all held-out
             clauses (recall@1, MRR@10);
  passages   inverse cloze: one sentence (10+ characters) taken out of the first passage (<= 254 characters, 3+
             sentences) of each held-out article, against the rest of every such passage (recall@1, MRR@10);
             the query shares no text with its passage any more, only the story.

Baselines: the initial encoder (random weights) and a bag of characters (no learning). Writes OUT/run.json
(settings, losses, times), OUT/curve.json (all figures, the verdict) and OUT/curve.png (needs matplotlib:
pip install -e ".[plot]"; without it the PNG is skipped and said so).

    python examples/data/real_corpus.py                          # once: fetch and prepare the data
    python benchmarks/pretraining.py --out runs/pt               # default run (see README for its wall time)
    python benchmarks/pretraining.py --out runs/pt_quick --quick # a few minutes
    python benchmarks/pretraining.py --evaluate-only runs/pt     # evaluate the encoders saved in runs/pt again
"""
import argparse
import glob
import json
import math
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
VARIANTS = {"mlm": dict(encoder_mask_rate=0.15, decoder_weight=0.0),
            "retromae": dict(encoder_mask_rate=0.3, decoder_weight=1.0)}
DECODER_MASK_RATE = 0.5
PASSAGE_CHARS = 254  # the inverse-cloze passages: first piece of each held-out article, 256 tokens with [CLS]/[SEP]
QUICK = dict(points="20,60", log_every=10, reviews=(1000, 500), clauses=300, passages=200)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="folder for the encoders, run.json, curve.json and curve.png")
    parser.add_argument("--evaluate-only", metavar="DIR", help="evaluate the encoders saved in DIR (no training)")
    parser.add_argument("--data", default=os.path.join(ROOT, "data_cache", "real"),
                        help="output folder of examples/data/real_corpus.py")
    parser.add_argument("--quick", action="store_true", help="a run of a few minutes (smaller evaluation sets too)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--points", default=None,
                        help="step counts at which both encoders are saved and evaluated (default 300,750,1500,3000)")
    parser.add_argument("--log-every", type=int, default=None, help="steps per logged loss (default 50, quick 10)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--maxlen", type=int, default=256)
    parser.add_argument("--min-chars", type=int, default=64, help="shortest pre-training text (characters)")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup", type=float, default=0.1, help="warm-up share of the last point's steps")
    parser.add_argument("--decay", type=float, default=0.2, help="share of the last point's steps spent decaying")
    parser.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clip (0: none)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--intermediate", type=int, default=512)
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"],
                        help="matrix products in training (evaluation is float32)")
    args = parser.parse_args(argv)
    if bool(args.out) == bool(args.evaluate_only):
        parser.error("give --out (train and evaluate) or --evaluate-only DIR")
    args.points = parse_points(args.points or (QUICK["points"] if args.quick else "300,750,1500,3000"))
    args.log_every = args.log_every or (QUICK["log_every"] if args.quick else 50)
    if any(p % args.log_every for p in args.points):
        parser.error(f"every point must be a multiple of --log-every ({args.log_every}), got {args.points}")
    return args


def parse_points(text):
    """``"300,750,1500"`` -> ``[300, 750, 1500]`` (positive, increasing).

    Example:
        >>> parse_points("20,60")
        [20, 60]
    """
    try:
        points = [int(p) for p in str(text).split(",")]
    except ValueError:
        points = []
    if not points or points[0] < 1 or any(b <= a for a, b in zip(points, points[1:])):
        raise ValueError(f"points must be increasing positive step counts like 300,750,1500, got {text!r}")
    return points


def make_schedule(learning_rate, total_steps, warmup_steps, decay_steps):
    """Warm-up, stable, decay: linear from 0 to ``learning_rate`` over ``warmup_steps``, held, then linear to 0
    over the last ``decay_steps`` of ``total_steps`` (a Keras ``LearningRateSchedule``).

    Example:
        >>> schedule = make_schedule(1e-3, 1000, 100, 200)
        >>> [round(float(schedule(s)), 6) for s in (49, 500, 800, 949, 999)]
        [0.0005, 0.001, 0.001, 0.000255, 5e-06]
    """
    import keras

    class WarmupStableDecay(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):  # step = updates already made, so the first update uses (0 + 1) / warmup
            step = keras.ops.cast(step, "float32") + 1.0
            up = step / warmup_steps if warmup_steps else 1.0
            down = (total_steps - step + 1.0) / decay_steps if decay_steps else 1.0
            return learning_rate * keras.ops.clip(keras.ops.minimum(up, down), 0.0, 1.0)

        def get_config(self):
            return dict(learning_rate=learning_rate, total_steps=total_steps, warmup_steps=warmup_steps,
                        decay_steps=decay_steps)

    if not (0 <= warmup_steps and 0 <= decay_steps and warmup_steps + decay_steps <= total_steps):
        raise ValueError(f"need warm-up ({warmup_steps}) + decay ({decay_steps}) <= total steps ({total_steps})")
    return WarmupStableDecay()


# --- data ---


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
        sys.exit(f"pretraining.py: {data} lacks {', '.join(missing)}; run python examples/data/real_corpus.py first")


def pretraining_texts(data, max_chars, min_chars):
    """Articles and unlabelled reviews cut at sentence ends into pieces of at most ``max_chars`` characters;
    pieces shorter than ``min_chars`` are dropped."""
    from bert4sim.data import pack_sentences, read_passages

    require(data, ["articles.txt", "review_passages.txt", "vocab.txt"])
    texts = []
    for name in ("articles.txt", "review_passages.txt"):
        texts += [t for t in pack_sentences(read_passages(os.path.join(data, name)), max_chars) if len(t) >= min_chars]
    return texts


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
        reviews_train, reviews_test = reviews_train[:QUICK["reviews"][0]], reviews_test[:QUICK["reviews"][1]]
        pairs = pairs[:QUICK["clauses"]]
        originals = {a for a, _ in pairs}
        clauses = [c for i, c in enumerate(clauses) if i < 1500 or c in originals]
        passages = (passages[0][:QUICK["passages"]], passages[1])
    position = {text: i for i, text in enumerate(clauses)}
    missing = [a for a, _ in pairs if a not in position]
    if missing:
        sys.exit(f"pretraining.py: {len(missing)} paraphrase originals (e.g. {missing[0]!r}) are not in heldout_clauses.txt")
    return {"reviews": (reviews_train, reviews_test), "clauses": ([(b, position[a]) for a, b in pairs], clauses),
            "passages": passages}


# --- training ---


def encoder_folder(out, variant, step):
    return os.path.join(out, variant, f"step_{step:06d}")


def save_encoder(retromae, tokenizer, folder):
    """The encoder alone, Google format, with its vocabulary."""
    from bert4sim.tokenizers import save_vocab

    os.makedirs(folder, exist_ok=True)
    retromae.save_encoder(os.path.join(folder, "bert_model.ckpt"))
    save_vocab(os.path.join(folder, "vocab.txt"), tokenizer.token_dict)


def pretrain(variant, args, texts, tokenizer, matmul_dtype):
    """Train one variant from the seed's initial weights to the last point, saving the encoder at each point.

    Returns ``{"seconds", "points": {step: seconds so far}, "losses": [{"step", "loss", ...} per log_every]}``.
    """
    import keras

    from bert4sim.retromae import (RetroMAECollator, build_retromae_model, retromae_batches, retromae_dataset,
                                   retromae_training_model)
    from bert4sim.training import make_optimizer

    rates = VARIANTS[variant]
    keras.utils.set_random_seed(args.seed)  # the same initial encoder (and decoder) for both variants
    retromae = build_retromae_model(
        vocab_size=tokenizer.vocab_size, hidden_size=args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, intermediate_size=args.intermediate, max_position_embeddings=args.maxlen,
        with_pool=True, return_keras_model=False, matmul_dtype=matmul_dtype)
    if not os.path.isdir(os.path.join(args.out, "initial")):
        save_encoder(retromae, tokenizer, os.path.join(args.out, "initial"))
    trainer = retromae_training_model(retromae, decoder_weight=rates["decoder_weight"])
    total = args.points[-1]
    schedule = make_schedule(args.lr, total, int(round(args.warmup * total)), int(round(args.decay * total)))
    trainer.compile(optimizer=make_optimizer(schedule, global_clipnorm=args.clip or None))
    collator = RetroMAECollator(tokenizer, args.maxlen, rates["encoder_mask_rate"], DECODER_MASK_RATE, seed=args.seed)

    def batches(start_step):
        for inputs, labels in retromae_batches(texts, collator, args.batch_size, seed=args.seed, start_step=start_step):
            if not rates["decoder_weight"]:  # weight 0: no decoder labels, so its head is not computed
                labels = (labels[0], np.zeros_like(labels[1]))
            yield inputs, labels

    record = {"points": {}, "losses": []}
    started = time.perf_counter()

    class AtPoints(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            step = (epoch + 1) * args.log_every
            record["losses"].append({"step": step, **{k: round(float(v), 4) for k, v in (logs or {}).items()}})
            if step in args.points:
                record["points"][step] = time.perf_counter() - started
                save_encoder(retromae, tokenizer, encoder_folder(args.out, variant, step))

    print(f"\n[{variant}] {total} steps x batch {args.batch_size}, lr {args.lr} (warm-up {args.warmup:.0%}, decay over "
          f"the last {args.decay:.0%}), clip {args.clip}, encoder mask rate {rates['encoder_mask_rate']}, decoder "
          f"loss weight {rates['decoder_weight']}; encoders saved at steps {args.points}", flush=True)
    trainer.fit(retromae_dataset(batches), epochs=total // args.log_every, steps_per_epoch=args.log_every,
                verbose=2, shuffle=False, callbacks=[AtPoints()])
    record["seconds"] = time.perf_counter() - started
    return record


# --- evaluation ---


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
        beats = [n for n, v in (("the random initial encoder", random_best), ("a bag of characters", bag)) if best > v]
        misses = [n for n, v in (("the random initial encoder", random_best), ("a bag of characters", bag)) if best <= v]
        line = (f"{name}: best learned vector {variant} {pooling} at {step} steps {best:.3f}; random initial encoder "
                f"{random_best:.3f} (best pooling), bag of characters {bag:.3f}: "
                + (f"beats {' and '.join(beats)}" if beats else "beats neither")
                + (f", not {' nor '.join(misses)}" if beats and misses else "") + ".")
        if bag > best and "retromae" in curve:
            points = sorted(curve["retromae"])
            values = [curve["retromae"][s]["cls"][metric] for s in points]
            reach = steps_to_reach(points, values, bag)
            line += (f" A log-linear fit of RetroMAE [CLS] over {len(points)} points reaches the bag of characters at about "
                     f"{reach:,.0f} steps (a rough extrapolation)." if reach and reach < 1e9 else
                     " A log-linear fit of RetroMAE [CLS] rises too slowly to reach it within a billion steps."
                     if reach else
                     " RetroMAE [CLS] does not rise with steps here, so no extrapolation.")
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
    """``{variant: {step: encoder folder}}`` of the encoders a run saved in ``folder``."""
    found = {}
    for variant in VARIANTS:
        for path in sorted(glob.glob(os.path.join(folder, variant, "step_*"))):
            if os.path.isfile(os.path.join(path, "bert_config.json")):
                found.setdefault(variant, {})[int(os.path.basename(path)[len("step_"):])] = path
    return found


def evaluate_run(folder, args, run=None):
    """Evaluate every encoder saved in ``folder`` (and the baselines); write curve.json and curve.png."""
    import keras

    from bert4sim.tokenizers import Tokenizer

    started = time.perf_counter()
    if run is None and os.path.isfile(os.path.join(folder, "run.json")):
        with open(os.path.join(folder, "run.json"), encoding="utf-8") as f:
            run = json.load(f)
    points = saved_points(folder)
    if not os.path.isdir(os.path.join(folder, "initial")) or not points:
        sys.exit(f"pretraining.py: {folder} holds no initial/ and <variant>/step_*/ encoders to evaluate")
    with open(os.path.join(folder, "initial", "bert_config.json"), encoding="utf-8") as f:
        positions = json.load(f)["max_position_embeddings"]
    maxlen = min(positions, (run or {}).get("settings", {}).get("maxlen", args.maxlen))
    tokenizer = Tokenizer(os.path.join(folder, "initial", "vocab.txt"), do_lower_case=True)
    tasks = evaluation_data(args.data, args.quick)
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
               "cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(), "quick_evaluation": args.quick,
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


def main(argv=None):
    args = parse_args(argv)
    if args.evaluate_only:
        return evaluate_run(args.evaluate_only, args)
    from bert4sim.precision import resolve_precision, set_precision
    from bert4sim.tokenizers import Tokenizer

    started = time.perf_counter()
    tokenizer = Tokenizer(os.path.join(args.data, "vocab.txt"), do_lower_case=True)
    texts = pretraining_texts(args.data, args.maxlen - 2, args.min_chars)
    precision = resolve_precision(args.precision)
    run = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
           "load_average_at_start": os.getloadavg(),
           "settings": {**{k: v for k, v in vars(args).items() if k not in ("out", "evaluate_only", "data")},
                        "precision": precision, "decoder_mask_rate": DECODER_MASK_RATE, "weight_decay": 0.01},
           "pretraining_texts": len(texts), "pretraining_characters": sum(map(len, texts)),
           "vocab_size": tokenizer.vocab_size, "variants": VARIANTS, "training": {}}
    print(f"{len(texts)} pre-training passages of {args.min_chars}-{args.maxlen - 2} characters (mean "
          f"{run['pretraining_characters'] / len(texts):.0f}), vocab {tokenizer.vocab_size}; matrix products in "
          f"{precision}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    matmul_dtype = set_precision(precision)
    for variant in VARIANTS:
        run["training"][variant] = pretrain(variant, args, texts, tokenizer, matmul_dtype)
        run["training"][variant]["load_average_after"] = os.getloadavg()
        with open(os.path.join(args.out, "run.json"), "w", encoding="utf-8") as f:
            json.dump(run, f, indent=1, ensure_ascii=False)
    set_precision(None)  # evaluation in float32
    summary = evaluate_run(args.out, args, run)
    run["wall_seconds"] = time.perf_counter() - started
    run["load_average_at_end"] = os.getloadavg()
    with open(os.path.join(args.out, "run.json"), "w", encoding="utf-8") as f:
        json.dump(run, f, indent=1, ensure_ascii=False)
    print(f"wall {run['wall_seconds'] / 60:.1f} min on {os.cpu_count()} x {run['cpu']} (load average at the end "
          f"{run['load_average_at_end'][0]:.2f}); wrote {os.path.abspath(args.out)}/run.json, curve.json")
    return summary, run


if __name__ == "__main__":
    main()
