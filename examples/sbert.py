"""Sentence-BERT: train a siamese sentence encoder on the shipped Chinese pair data.

Objectives (--objective): classification (softmax over [u; v; |u-v|], on labelled pairs),
regression (MSE of cosine vs score/5, on graded pairs), triplet (Euclidean, margin 1, triplets from
the paraphrase groups), mnrl (multiple negatives ranking, scale 20, positive pairs), cosent (graded
pairs). Pooling: mean (default), cls, max. Starts from a checkpoint (--config/--checkpoint, e.g. the
RetroMAE encoder or a released BERT) or a tiny random BERT. Prints held-apart Spearman (sts_test)
before and after training, saves the encoder in Google format and a SimilarityModel folder.

    python examples/sbert.py --objective cosent --pooling mean
    python examples/sbert.py --micro
"""
import argparse
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objective", default="cosent",
                        choices=["classification", "regression", "triplet", "mnrl", "cosent"])
    parser.add_argument("--pooling", default="mean", choices=["mean", "cls", "max"])
    parser.add_argument("--config")
    parser.add_argument("--checkpoint")
    parser.add_argument("--model", default="bert", choices=["bert", "roformer"])
    parser.add_argument("--vocab", default=os.path.join(DATA, "vocab.txt"))
    parser.add_argument("--output", default=os.path.join(HERE, "..", "checkpoints", "sbert_demo"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--micro", action="store_true")
    return parser.parse_args(argv)


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def training_rows(args, rng):
    """(texts per example, target) for the objective, from the shipped data."""
    from bert4sim.data import read_synonym_groups

    if args.objective == "classification":
        return [((a, b), int(label)) for a, b, label in read_tsv(os.path.join(DATA, "pairs_train.tsv"))]
    if args.objective in ("regression", "cosent"):
        return [((a, b), float(score) / 5.0) for a, b, score in read_tsv(os.path.join(DATA, "sts_train.tsv"))]
    groups = read_synonym_groups(os.path.join(DATA, "simbert_train.json"))
    rows = []
    for i, group in enumerate(groups):
        anchor, positive = rng.choice(len(group), size=2, replace=False)
        if args.objective == "mnrl":
            rows.append(((group[anchor], group[positive]), 0))
        else:
            other = groups[(i + 1 + rng.integers(len(groups) - 1)) % len(groups)]
            rows.append(((group[anchor], group[positive], other[rng.integers(len(other))]), 0))
    return rows


def batches(rows, tokenizer, batch_size, maxlen, rng):
    from bert4sim.snippets import sequence_padding

    while True:
        order = rng.permutation(len(rows))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            chosen = [rows[i] for i in order[start : start + batch_size]]
            arrays = []
            for column in range(len(chosen[0][0])):
                encoded = [tokenizer.encode(texts[column], maxlen=maxlen) for texts, _ in chosen]
                arrays += [sequence_padding([e[0] for e in encoded]), sequence_padding([e[1] for e in encoded])]
            yield tuple(arrays), np.array([target for _, target in chosen])


def to_dataset(generator, count, target_dtype):
    import tensorflow as tf

    spec = tuple(tf.TensorSpec((None, None), tf.int32) for _ in range(count))
    return tf.data.Dataset.from_generator(
        lambda: ((tuple(a.astype("int32") for a in x), y.astype(target_dtype)) for x, y in generator),
        output_signature=(spec, tf.TensorSpec((None,), tf.dtypes.as_dtype(target_dtype)))).prefetch(2)


def main(argv=None):
    import keras

    from bert4sim.evaluation import evaluate_sts, read_scored_pairs
    from bert4sim.losses import SentenceBERTTrainer
    from bert4sim.models import build_sentence_encoder, build_transformer_model, save_checkpoint
    from bert4sim.similarity import SimilarityModel
    from bert4sim.tokenizers import Tokenizer
    from bert4sim.training import make_optimizer

    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    tokenizer = Tokenizer(args.vocab, do_lower_case=True)
    if args.config:
        bert = build_transformer_model(args.config, args.checkpoint, model=args.model, return_keras_model=False,
                                       allow_missing_heads=True)
    else:
        sizes = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64) if args.micro \
            else dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256)
        bert = build_transformer_model(vocab_size=tokenizer.vocab_size, model=args.model, return_keras_model=False,
                                       max_position_embeddings=128, **sizes)
    encoder = build_sentence_encoder(bert, args.pooling)
    sim = SimilarityModel(tokenizer, encoder, maxlen=args.maxlen)
    test = read_scored_pairs(os.path.join(DATA, "sts_test.tsv"))
    before = evaluate_sts(sim.encode, *test)
    print(f"held-apart sts_test before training: spearman {before['spearman']:.4f} pearson {before['pearson']:.4f}")

    rows = training_rows(args, rng)
    if args.micro:
        rows, args.epochs, args.batch_size = rows[:400], 3, 16
    steps = max(1, len(rows) // args.batch_size)
    trainer = SentenceBERTTrainer(encoder, args.objective)
    # The softmax head needs a gentler rate than the cosine objectives to improve the cosine ranking.
    default_lr = 5e-4 if args.objective == "classification" else (2e-3 if args.micro else 1e-3)
    lr = args.lr or (2e-5 if args.config else default_lr)
    trainer.compile(optimizer=make_optimizer(lr, total_steps=steps * args.epochs, warmup_ratio=0.1))
    target_dtype = "int32" if args.objective == "classification" else "float32"
    count = 6 if args.objective == "triplet" else 4
    history = trainer.fit(to_dataset(batches(rows, tokenizer, args.batch_size, args.maxlen, rng), count, target_dtype),
                          epochs=args.epochs, steps_per_epoch=steps, verbose=2, shuffle=False)
    after = evaluate_sts(sim.encode, *test)
    print(f"held-apart sts_test after training:  spearman {after['spearman']:.4f} pearson {after['pearson']:.4f}")

    os.makedirs(args.output, exist_ok=True)
    save_checkpoint(bert, os.path.join(args.output, "encoder", "bert_model.ckpt"))
    sim.save(os.path.join(args.output, "similarity_model"))
    print(f"saved the encoder (Google format) and a SimilarityModel folder under {os.path.abspath(args.output)}")
    return history, before, after


if __name__ == "__main__":
    main()
