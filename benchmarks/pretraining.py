"""RetroMAE vs BERT masked-LM pre-training on real Chinese passages: a learning curve of frozen sentence vectors.

Pre-trains the same small encoder from scratch twice, with the same tokenizer, initial weights, batches
(the same texts in the same order), learning-rate schedule and gradient clipping:

  mlm       BERT's masked LM only (15 % of the tokens picked, 80/10/10): bert4sim's RetroMAE training model
            with the decoder's loss weight 0 (its labels are left empty, so its output head is not computed);
  retromae  bert4sim's RetroMAE recipe at the reference's rates: encoder 30 % masked, one-layer enhanced
            decoder rebuilding every token from [CLS] at 50 % decoder masking; encoder MLM + decoder loss.

The texts are whole passages (examples/data/real_corpus.py): People's Daily articles and unlabelled reviews, cut
at sentence ends into pieces of at most maxlen - 2 characters (one that fits stays whole); pieces of --min-chars
or more are kept. Optimizer: AdamW (weight decay 0.01) with the gradients clipped to a
global norm of 1.0, as the reference's Hugging Face Trainer does; learning rate warmed up linearly, held, and
decayed linearly to 0 over the last --decay share of the run (WarmupStableDecay), so the checkpoints before the
decay are taken at the full rate. At each step count of --points the encoder is saved, Google format
(OUT/<variant>/step_NNNNNN/: bert_config.json, bert_model.ckpt.*, vocab.txt; OUT/initial/ holds the common
initial weights) and training goes on. Then every saved encoder is evaluated, frozen, [CLS] and mean pooling
(benchmarks/pretraining_curve.py, which --evaluate-only runs alone on a run folder):

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
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pretraining_curve import cpu_name, evaluate_run, fail, require  # noqa: E402 (the evaluation of saved encoders)

VARIANTS = {"mlm": dict(encoder_mask_rate=0.15, decoder_weight=0.0),
            "retromae": dict(encoder_mask_rate=0.3, decoder_weight=1.0)}
DECODER_MASK_RATE = 0.5
QUICK = dict(points="20,60", log_every=10)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="folder for the encoders, run.json, curve.json and curve.png")
    parser.add_argument("--evaluate-only", metavar="DIR", help="evaluate the encoders saved in DIR (no training)")
    parser.add_argument("--data", default=os.path.join(ROOT, "data_cache", "real"),
                        help="output folder of examples/data/real_corpus.py")
    parser.add_argument("--quick", action="store_true", help="a run of a few minutes (smaller evaluation sets too)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="variants to train now; others already in --out (same settings) are kept and evaluated")
    parser.add_argument("--points", default=None,
                        help="step counts at which both encoders are saved and evaluated (default 500,1000,2000,3000)")
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
    args.variants = [v for v in args.variants.split(",") if v]
    if not args.variants or any(v not in VARIANTS for v in args.variants):
        parser.error(f"--variants takes names from {sorted(VARIANTS)}, got {args.variants}")
    args.points = parse_points(args.points or (QUICK["points"] if args.quick else "500,1000,2000,3000"))
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


def pretraining_texts(data, max_chars, min_chars):
    """Articles and unlabelled reviews cut at sentence ends into pieces of at most ``max_chars`` characters;
    pieces shorter than ``min_chars`` are dropped."""
    from bert4sim.data import pack_sentences, read_passages

    require(data, ["articles.txt", "review_passages.txt", "vocab.txt"])
    texts = []
    for name in ("articles.txt", "review_passages.txt"):
        texts += [t for t in pack_sentences(read_passages(os.path.join(data, name)), max_chars) if len(t) >= min_chars]
    return texts


# --- training ---


def encoder_folder(out, variant, step):
    return os.path.join(out, variant, f"step_{step:06d}")


def save_encoder(retromae, tokenizer, folder):
    """The encoder alone, Google format, with its vocabulary (a bert4sim checkpoint folder)."""
    retromae.save_encoder(os.path.join(folder, "bert_model.ckpt"), vocab=tokenizer.token_dict)


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


def earlier_training(out, settings, variants):
    """The training records of ``variants`` from an earlier run in ``out``, which must have used ``settings``."""
    if not variants:
        return {}
    path = os.path.join(out, "run.json")
    try:
        with open(path, encoding="utf-8") as f:
            earlier = json.load(f)
        records = {v: earlier["training"][v] for v in variants}
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"{path}: no earlier training of {', '.join(variants)} to keep ({e})")
    if earlier.get("settings") != settings:
        changed = sorted(k for k in set(settings) | set(earlier.get("settings") or {})
                         if settings.get(k) != (earlier.get("settings") or {}).get(k))
        fail(f"{path} was trained with other settings ({', '.join(changed)})")
    return records


def cpu_seconds():
    """``(busy seconds of all CPUs since boot, this process's CPU seconds)``: their growth apart is what other
    processes took from the run (None on a system without /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(fields[:3]) + sum(fields[5:8])  # user nice system (idle iowait) irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK"), sum(os.times()[:2])


def main(argv=None):
    args = parse_args(argv)
    if args.evaluate_only:
        return evaluate_run(args.evaluate_only, args.data, args.quick, args.maxlen)
    from bert4sim.precision import resolve_precision, set_precision
    from bert4sim.tokenizers import Tokenizer

    require(args.data, ["articles.txt", "review_passages.txt", "vocab.txt"])
    started, cpu_at_start = time.perf_counter(), cpu_seconds()
    tokenizer = Tokenizer(os.path.join(args.data, "vocab.txt"), do_lower_case=True)
    texts = pretraining_texts(args.data, args.maxlen - 2, args.min_chars)
    precision = resolve_precision(args.precision)
    run = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
           "load_average_at_start": os.getloadavg(),
           "settings": {**{k: v for k, v in vars(args).items() if k not in ("out", "evaluate_only", "data", "variants")},
                        "precision": precision, "decoder_mask_rate": DECODER_MASK_RATE, "weight_decay": 0.01},
           "pretraining_texts": len(texts), "pretraining_characters": sum(map(len, texts)),
           "vocab_size": tokenizer.vocab_size, "variants": VARIANTS, "training": {}}
    print(f"{len(texts)} pre-training passages of {args.min_chars}-{args.maxlen - 2} characters (mean "
          f"{run['pretraining_characters'] / len(texts):.0f}), vocab {tokenizer.vocab_size}; matrix products in "
          f"{precision}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    run["training"] = earlier_training(args.out, run["settings"], [v for v in VARIANTS if v not in args.variants])
    matmul_dtype = set_precision(precision)
    for variant in args.variants:
        run["training"][variant] = pretrain(variant, args, texts, tokenizer, matmul_dtype)
        run["training"][variant]["load_average_after"] = os.getloadavg()
        with open(os.path.join(args.out, "run.json"), "w", encoding="utf-8") as f:
            json.dump(run, f, indent=1, ensure_ascii=False)
    set_precision(None)  # evaluation in float32
    summary = evaluate_run(args.out, args.data, args.quick, args.maxlen, run)
    run["wall_seconds"] = time.perf_counter() - started
    run["load_average_at_end"] = os.getloadavg()
    if cpu_at_start and cpu_seconds():
        (all_start, own_start), (all_end, own_end) = cpu_at_start, cpu_seconds()
        others = max(0.0, (all_end - all_start) - (own_end - own_start))
        run["cpu_seconds"] = {"this_run": own_end - own_start, "other_processes": others,
                              "other_processes_share": others / (run["wall_seconds"] * os.cpu_count())}
    with open(os.path.join(args.out, "run.json"), "w", encoding="utf-8") as f:
        json.dump(run, f, indent=1, ensure_ascii=False)
    others = run.get("cpu_seconds", {}).get("other_processes_share")
    print(f"wall {run['wall_seconds'] / 60:.1f} min on {os.cpu_count()} x {run['cpu']}; other processes took "
          + (f"{others:.0%} of the CPU time meanwhile" if others is not None else "an unknown share of the CPU")
          + f"; wrote {os.path.abspath(args.out)}/run.json, curve.json")
    return summary, run


if __name__ == "__main__":
    main()
