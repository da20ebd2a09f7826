"""RoFormer-Sim's supervised stage: fine-tune a RoFormer(-Sim) encoder on labelled similarity and NLI pairs.

The step that made the released "-ft" RoFormer-Sim checkpoints (the authors' train/supervised.py),
built from bert4sim's parts: encoder = RoFormer + linear pooler (dropout 0.2); the two sentences'
vectors u, v are merged as [u; v; |u-v|] into one 5-way linear layer without bias; labels 0/1 come
from binary similarity sets (LCQMC, ATEC, BQ, PAWSX, STS-B scores > 2.5, ...) and 2-4 from NLI
(contradiction, entailment, neutral); the two sources are sampled 1:1 and the cross-entropy of a
row only sees its own task's logits. AdamW, weight decay 0.01, constant learning rate. Prints the
held-apart accuracy (similarity pairs, NLI) and STS Spearman of the vectors before and after, and
saves the encoder as a Google-format checkpoint that SimilarityModel.from_checkpoint(OUTPUT,
model="roformer") loads.

Defaults:
  with --init DIR (a released RoFormer-Sim checkpoint folder: bert_config.json, bert_model.ckpt.*,
  vocab.txt): the original's recipe: batch 192 rows (96 pairs), lr 2e-5 constant, maxlen 64.
  without (the demo): a tiny random RoFormer (2 layers, hidden 128) on the shipped data
  (pairs_train.tsv + nli_train.jsonl), batch 64, lr 1e-3 constant, maxlen 32: a minute or two on a CPU.

    python examples/roformer_sim_supervised.py                       # the demo
    python examples/roformer_sim_supervised.py --micro               # seconds (CI)
    python examples/roformer_sim_supervised.py --init .../chinese_roformer-sim-char_L-12_H-768_A-12 \\
        --pairs LCQMC.train.data --pairs STS-B.train.data:2.5 --nli cnsd-snli/train.jsonl \\
        --eval-pairs LCQMC.test.data --eval-nli cnsd-snli/test.jsonl --eval-sts STS-B.test.data

--pairs FILE[:THRESHOLD] (repeatable): text_a<TAB>text_b<TAB>label, similar when label > THRESHOLD
(default 0.5; 2.5 for 0-5 scored sets). --nli FILE (repeatable): JSON lines with sentence1,
sentence2, gold_label; rows labelled "-" are skipped.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
TINY = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256)
MICRO = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", action="append", metavar="FILE[:THRESHOLD]",
                        help="labelled pairs (default: examples/data/pairs_train.tsv when no --pairs/--nli)")
    parser.add_argument("--nli", action="append", metavar="FILE",
                        help="NLI JSON lines (default: examples/data/nli_train.jsonl when no --pairs/--nli)")
    parser.add_argument("--ratio", default="1:1", help="pairs:NLI sampling ratio (the original: 1:1)")
    parser.add_argument("--init", help="checkpoint folder to fine-tune (bert_config.json, bert_model.ckpt, vocab.txt)")
    parser.add_argument("--eval-pairs", default=os.path.join(DATA, "pairs_test.tsv"), metavar="FILE[:THRESHOLD]")
    parser.add_argument("--eval-nli", default=os.path.join(DATA, "nli_dev.jsonl"))
    parser.add_argument("--eval-sts", default=os.path.join(DATA, "sts_test.tsv"),
                        help="sentence1<TAB>sentence2<TAB>score: Spearman of the vectors' cosine")
    parser.add_argument("--output", default=os.path.join(HERE, "..", "checkpoints", "roformer_sim_supervised_demo"))
    parser.add_argument("--batch-size", type=int, default=None, help="rows, two per pair (192 with --init, else 64)")
    parser.add_argument("--lr", type=float, default=None, help="constant (2e-5 with --init, else 1e-3)")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--clip-norm", type=float, default=None,
                        help="clip gradients to this global norm (the original: none)")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--maxlen", type=int, default=None, help="tokens per sentence (64 with --init, else 32)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="default: one pass over the pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--micro", action="store_true", help="1-layer hidden-32 model, a few steps (CI)")
    args = parser.parse_args(argv)
    released = bool(args.init)
    args.batch_size = args.batch_size or (192 if released else 16 if args.micro else 64)
    args.lr = args.lr or (2e-5 if released else 3e-3 if args.micro else 1e-3)
    args.maxlen = args.maxlen or (64 if released else 32)
    if not args.pairs and not args.nli:
        args.pairs, args.nli = [os.path.join(DATA, "pairs_train.tsv")], [os.path.join(DATA, "nli_train.jsonl")]
    return args


def split_threshold(spec):
    """``'F.tsv:2.5'`` → ``('F.tsv', 2.5)``; ``'F.tsv'`` → ``('F.tsv', 0.5)``."""
    path, _, tail = spec.rpartition(":")
    try:
        return (path, float(tail)) if path else (spec, 0.5)
    except ValueError:
        return spec, 0.5


def read_sources(args):
    """(similarity pairs, NLI pairs) of the training files."""
    from bert4sim.roformer_sim import read_labelled_pairs, read_nli_pairs

    pairs = [p for spec in args.pairs or [] for p in read_labelled_pairs(*split_threshold(spec))]
    nli = [p for path in args.nli or [] for p in read_nli_pairs(path)]
    return pairs, nli


def build_encoder(args, tokenizer):
    """The builder and its pooler encoder: a checkpoint's (``--init``) or a tiny random RoFormer."""
    from bert4sim.models import build_transformer_model
    from bert4sim.sbert import build_sentence_encoder

    if args.init:
        bert = build_transformer_model(os.path.join(args.init, "bert_config.json"), args.init, model="roformer",
                                       with_pool="linear", dropout_rate=args.dropout, allow_missing_heads=True,
                                       return_keras_model=False)
    else:
        bert = build_transformer_model(vocab_size=tokenizer.vocab_size, model="roformer", with_pool="linear",
                                       dropout_rate=args.dropout, return_keras_model=False,
                                       max_position_embeddings=512, **(MICRO if args.micro else TINY))
    return bert, build_sentence_encoder(bert, "pooler")


def evaluate(trainer, sim, tokenizer, args, held_apart):
    """Accuracy of the 5-way head on the held-apart pairs and NLI rows; STS Spearman of the vectors."""
    import numpy as np

    from bert4sim.evaluation import evaluate_sts
    from bert4sim.roformer_sim import labelled_pair_batches, task_masked_predictions

    results = {}
    for name, examples in (("pairs_accuracy", held_apart["pairs"]), ("nli_accuracy", held_apart["nli"])):
        if not examples:
            continue
        correct = 0
        for (token_ids, segment_ids), labels in labelled_pair_batches(iter(examples), tokenizer, 64, args.maxlen):
            logits = trainer.predict_on_batch([token_ids, segment_ids, labels])  # the logits; labels feed the loss
            correct += int(np.sum(task_masked_predictions(labels, logits) == labels))
        results[name] = correct / len(examples)
    if held_apart["sts"]:
        results["sts_spearman"] = evaluate_sts(lambda t: sim.encode(t, show_progress=False), *held_apart["sts"])["spearman"]
    return results


def report(when, results):
    print(f"held-apart {when:<7} " + "  ".join(f"{name} {value:.4f}" for name, value in results.items()))


def main(argv=None):
    args = parse_args(argv)
    from bert4sim.startup import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from bert4sim.data import interleave, parse_ratio
    from bert4sim.evaluation import read_scored_pairs
    from bert4sim.models import save_checkpoint
    from bert4sim.roformer_sim import read_labelled_pairs, read_nli_pairs, supervised_dataset, supervised_training_model
    from bert4sim.similarity import SimilarityModel
    from bert4sim.tokenizers import Tokenizer, build_vocab
    from bert4sim.training import make_optimizer

    keras.utils.set_random_seed(args.seed)
    ratio = parse_ratio(args.ratio)
    pairs, nli = read_sources(args)
    held_apart = {"pairs": read_labelled_pairs(*split_threshold(args.eval_pairs)) if args.eval_pairs else [],
                  "nli": read_nli_pairs(args.eval_nli) if args.eval_nli else [],
                  "sts": read_scored_pairs(args.eval_sts) if args.eval_sts else None}
    if args.micro:
        pairs, nli, args.epochs = pairs[:96], nli[:96], min(args.epochs, 2)
    if args.init:
        tokenizer = Tokenizer(os.path.join(args.init, "vocab.txt"), do_lower_case=True)
    else:  # the demo's character vocabulary: every character of its data
        texts = [t for a, b, _ in pairs + nli + held_apart["pairs"] + held_apart["nli"] for t in (a, b)]
        texts += [t for side in (held_apart["sts"] or ())[:2] for t in side]
        tokenizer = Tokenizer(build_vocab(texts), do_lower_case=True)
    bert, encoder = build_encoder(args, tokenizer)
    trainer = supervised_training_model(encoder)
    trainer.compile(optimizer=make_optimizer(args.lr, weight_decay=args.weight_decay, global_clipnorm=args.clip_norm))
    sim = SimilarityModel(tokenizer, encoder, maxlen=args.maxlen)
    before = evaluate(trainer, sim, tokenizer, args, held_apart)
    report("before", before)

    sources = [source for source, r in zip((pairs, nli), ratio) if r and source]
    weights = [r for source, r in zip((pairs, nli), ratio) if r and source]
    if not sources:
        sys.exit("no training pairs: give --pairs and/or --nli (with a non-zero --ratio share)")
    stream = (example for _, example in interleave(sources, weights, seed=args.seed))
    steps = args.steps_per_epoch or max(1, (len(pairs) + len(nli)) * 2 // args.batch_size)
    print(f"{len(pairs)} similarity pairs, {len(nli)} NLI pairs, sampled {':'.join(map(str, weights))}; "
          f"{steps} steps x {args.epochs} epochs of {args.batch_size} rows, lr {args.lr} constant")
    dataset = supervised_dataset(stream, tokenizer, args.batch_size, args.maxlen)
    history = trainer.fit(dataset, epochs=args.epochs, steps_per_epoch=steps, verbose=2, shuffle=False)
    after = evaluate(trainer, sim, tokenizer, args, held_apart)
    report("after", after)

    save_checkpoint(bert, os.path.join(args.output, "bert_model.ckpt"), vocab=tokenizer.token_dict)
    print(f"saved the encoder (Google format, bert_config.json, vocab.txt) in {os.path.abspath(args.output)}; "
          f"load it with SimilarityModel.from_checkpoint(..., model='roformer')")
    return history, before, after, sim


if __name__ == "__main__":
    main()
