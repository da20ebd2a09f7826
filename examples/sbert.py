"""Sentence-BERT: train a siamese sentence encoder on the shipped Chinese pair data.

Objectives (--objective):
  cosent          CoSENT, scale 20, on graded pairs (sts_train.tsv)          [default]
  regression      MSE of cos(u, v) against score / 5, on graded pairs
  classification  softmax over W.[u; v; |u-v|], on labelled pairs (pairs_train.tsv)
  triplet         Euclidean, margin 1, (anchor, paraphrase, other intent) from simbert_train.json
  mnrl            multiple negatives ranking, scale 20, paraphrase pairs from simbert_train.json
Pooling (--pooling): mean (default, as in the paper), cls, max; padding never counts.

Starts from a tiny random BERT, or from a checkpoint folder (--init: bert_config.json + a Google
checkpoint + vocab.txt, e.g. the RetroMAE demo encoder or a released BERT). Prints the held-apart
evaluation (sts_test Spearman/Pearson, retrieval_dev recall@k / MRR@10) before and after training and
the sts_dev Spearman after each epoch; saves the encoder in Google format (OUTPUT/encoder/) and a
SimilarityModel folder with a retrieval index (OUTPUT/similarity_model/, usable by most_similar).

    python examples/sbert.py                                   # cosent, mean pooling, tiny BERT
    python examples/sbert.py --objective triplet --pooling cls
    python examples/sbert.py --init checkpoints/retromae_demo/encoder --lr 5e-5
    python examples/sbert.py --micro                           # seconds; what the tests run
"""
import argparse
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
OBJECTIVES = ("cosent", "regression", "classification", "triplet", "mnrl")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objective", default="cosent", choices=OBJECTIVES)
    parser.add_argument("--pooling", default="mean", choices=["mean", "cls", "max"])
    parser.add_argument("--init", help="checkpoint folder to start from (bert_config.json, checkpoint, vocab.txt)")
    parser.add_argument("--model", default="bert", choices=["bert", "roformer"])
    parser.add_argument("--vocab", help="vocab file (default: the --init folder's, else examples/data/vocab.txt)")
    parser.add_argument("--data", default=DATA, help="folder with the demo data")
    parser.add_argument("--output", default=os.path.join(HERE, "..", "checkpoints", "sbert_demo"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None, help="default 2e-5 with --init, 2e-3 with --micro, else 1e-3")
    parser.add_argument("--clip-norm", type=float, default=1.0,
                        help="global gradient norm clip (sentence-transformers' fit: 1.0); 0 for none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--micro", action="store_true", help="1-layer hidden-32 model, 480 rows, 6 epochs of batch 16, lr 2e-3")
    return parser.parse_args(argv)


def read_tsv(path, fields=3):
    """Rows of a tab-separated file; errors name the file and line."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                row = line.rstrip("\n").split("\t")
                if len(row) != fields:
                    raise ValueError(f"{path}:{number}: expected {fields} tab-separated fields, got {len(row)}")
                rows.append(row)
    return rows


def training_rows(objective, data, rng):
    """``[(texts, target), ...]`` for the objective, from the shipped training files."""
    from bert4sim.simbert import read_synonym_groups

    if objective == "classification":
        return [((a, b), int(label)) for a, b, label in read_tsv(os.path.join(data, "pairs_train.tsv"))]
    if objective in ("regression", "cosent"):
        return [((a, b), float(score) / 5.0) for a, b, score in read_tsv(os.path.join(data, "sts_train.tsv"))]
    groups = read_synonym_groups(os.path.join(data, "simbert_train.json"))
    rows = []
    for i, group in enumerate(groups):
        anchor, positive = rng.choice(len(group), size=2, replace=False)
        if objective == "mnrl":
            rows.append(((group[anchor], group[positive]), 0))
        else:
            other = groups[(i + 1 + rng.integers(len(groups) - 1)) % len(groups)]
            rows.append(((group[anchor], group[positive], other[rng.integers(len(other))]), 0))
    return rows


def batches(rows, tokenizer, batch_size, maxlen, rng):
    """Endless shuffled batches: ((token_ids, segment_ids) per text, targets)."""
    from bert4sim.sequences import sequence_padding

    while True:
        order = rng.permutation(len(rows))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            chosen = [rows[i] for i in order[start : start + batch_size]]
            arrays = []
            for column in range(len(chosen[0][0])):
                encoded = [tokenizer.encode(texts[column], maxlen=maxlen) for texts, _ in chosen]
                arrays += [sequence_padding([e[0] for e in encoded]), sequence_padding([e[1] for e in encoded])]
            yield tuple(a.astype("int32") for a in arrays), np.array([target for _, target in chosen])


def to_dataset(generator, arrays, target_dtype=None):
    """The training model's inputs as a dataset: the texts' arrays, then the targets (``target_dtype``) if any."""
    import tensorflow as tf

    spec = tuple(tf.TensorSpec((None, None), tf.int32) for _ in range(arrays))
    if target_dtype is None:
        return tf.data.Dataset.from_generator(lambda: ((x,) for x, _ in generator), output_signature=(spec,))
    spec += (tf.TensorSpec((None,), tf.dtypes.as_dtype(target_dtype)),)
    return tf.data.Dataset.from_generator(lambda: ((x + (y.astype(target_dtype),),) for x, y in generator),
                                          output_signature=(spec,)).prefetch(2)


def evaluate(sim, sts, retrieval):
    from bert4sim.evaluation import evaluate_retrieval, evaluate_sts

    return {**evaluate_sts(sim.encode, *sts), **evaluate_retrieval(sim.encode, *retrieval)}


def report(when, metrics):
    print(f"held-apart {when:<15} sts_test spearman {metrics['spearman']:.4f} pearson {metrics['pearson']:.4f}"
          f" | retrieval_dev recall@1 {metrics['recall@1']:.4f} recall@10 {metrics['recall@10']:.4f}"
          f" mrr@10 {metrics['mrr@10']:.4f}")


def main(argv=None):
    args = parse_args(argv)
    from bert4sim.startup import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from bert4sim.evaluation import EvaluationCallback, evaluate_sts, load_retrieval_set, read_scored_pairs
    from bert4sim.models import build_transformer_model, save_checkpoint
    from bert4sim.sbert import WITH_TARGETS, build_sentence_encoder, sbert_training_model
    from bert4sim.similarity import SimilarityModel
    from bert4sim.tokenizers import Tokenizer
    from bert4sim.training import make_optimizer

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    vocab = args.vocab or os.path.join(args.init or args.data, "vocab.txt")
    tokenizer = Tokenizer(vocab, do_lower_case=True)
    if args.init:
        bert = build_transformer_model(os.path.join(args.init, "bert_config.json"), args.init, model=args.model,
                                       allow_missing_heads=True, return_keras_model=False)
    else:
        sizes = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64) if args.micro \
            else dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256)
        bert = build_transformer_model(vocab_size=tokenizer.vocab_size, model=args.model, return_keras_model=False,
                                       max_position_embeddings=128, **sizes)
    encoder = build_sentence_encoder(bert, args.pooling)
    sim = SimilarityModel(tokenizer, encoder, maxlen=args.maxlen)
    test = read_scored_pairs(os.path.join(args.data, "sts_test.tsv"))
    dev = read_scored_pairs(os.path.join(args.data, "sts_dev.tsv"))
    retrieval = load_retrieval_set(os.path.join(args.data, "retrieval_dev.json"))
    before = evaluate(sim, test, retrieval)
    report("before training", before)

    rows = training_rows(args.objective, args.data, rng)
    if args.micro:
        rows = [rows[i] for i in rng.permutation(len(rows))[:480]]
        args.epochs, args.batch_size = 6, 16
    steps = max(1, len(rows) // args.batch_size)
    trainer = sbert_training_model(encoder, args.objective, texts=len(rows[0][0]))
    lr = args.lr or (2e-5 if args.init else 2e-3 if args.micro else 1e-3)
    # XLA would recompile for every new padded length; plain graph mode is faster here on CPU.
    trainer.compile(optimizer=make_optimizer(lr, total_steps=steps * args.epochs, warmup_ratio=0.1,
                                             global_clipnorm=args.clip_norm or None), jit_compile=False)
    target_dtype = None if args.objective not in WITH_TARGETS else "int32" if args.objective == "classification" \
        else "float32"
    dataset = to_dataset(batches(rows, tokenizer, args.batch_size, args.maxlen, rng),
                         len(rows[0][0]) * 2, target_dtype)
    dev_callback = EvaluationCallback(lambda: evaluate_sts(sim.encode, *dev), prefix="sts_dev_")
    history = trainer.fit(dataset, epochs=args.epochs, steps_per_epoch=steps, verbose=2, shuffle=False,
                          callbacks=[dev_callback])
    after = evaluate(sim, test, retrieval)
    report("after training", after)

    os.makedirs(args.output, exist_ok=True)
    save_checkpoint(bert, os.path.join(args.output, "encoder", "bert_model.ckpt"), vocab=tokenizer.token_dict)
    queries, corpus, _ = retrieval
    sim.build_index(list(corpus.values()))
    sim.save(os.path.join(args.output, "similarity_model"))
    query = next(iter(queries.values()))
    print(f"most_similar({query!r}): {sim.most_similar(query, topn=3)}")
    print(f"saved the encoder (Google format, {args.output}/encoder) and a SimilarityModel folder "
          f"({args.output}/similarity_model)")
    return history, before, after


if __name__ == "__main__":
    main()
