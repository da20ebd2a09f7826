"""SimBERT: train a model that both generates and retrieves similar sentences.

Default: a tiny BERT trained from scratch on the shipped Chinese demo corpus (a few minutes on a
CPU). With --config/--checkpoint/--vocab it fine-tunes a released SimBERT (or any BERT) checkpoint.
At the end it saves a Google-format checkpoint + bert_config.json + vocab.txt under --output, a
SimilarityModel folder with the corpus index in --output/similarity_model, and prints gen_synonyms /
most_similar for a few queries.

    python examples/simbert.py                         # tiny model, demo data
    python examples/simbert.py --micro                 # seconds: CI smoke run
    python examples/simbert.py --precision mixed_float16 --xla   # GPU(s): MirroredStrategy when several
    python examples/simbert.py --config .../bert_config.json --checkpoint .../bert_model.ckpt \
        --vocab .../vocab.txt --epochs 1

Defaults: with --config (fine-tuning a released checkpoint) the original script's: batch 128 rows,
constant learning rate 2e-6, no gradient clipping. The tiny demo: batch 32, lr 1e-3 with 5 % warm-up
and linear decay.
"""
import argparse
import os
import sys

from bert4sim.startup import add_restart_flags

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
TINY = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
            max_position_embeddings=128)
MICRO = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
             max_position_embeddings=64)
DEMO_QUERIES = ["信用卡怎么注销", "怎么修改收货地址", "火车票如何改签", "手机充电慢怎么解决"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="bert_config.json of a checkpoint to fine-tune")
    parser.add_argument("--checkpoint", help="bert_model.ckpt prefix or folder")
    parser.add_argument("--vocab", default=os.path.join(DATA, "vocab.txt"))
    parser.add_argument("--model", default="bert", choices=["bert", "roformer"])
    parser.add_argument("--train", default=os.path.join(DATA, "simbert_train.json"))
    parser.add_argument("--dev", default=os.path.join(DATA, "simbert_dev.json"))
    parser.add_argument("--output", default=os.path.join(HERE, "..", "checkpoints", "simbert_demo"))
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="default: one pass over the groups")
    parser.add_argument("--batch-size", type=int, default=None, help="rows (128 with --config, else 32)")
    parser.add_argument("--maxlen", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None,
                        help="2e-6 constant with --config, else 1e-3 with warm-up and decay")
    parser.add_argument("--clip-norm", type=float, default=None, help="global gradient norm clip (original: none)")
    parser.add_argument("--precision", default="auto",
                        choices=["auto", "float32", "bfloat16", "mixed_bfloat16", "mixed_float16"],
                        help="bfloat16: matrix products in bfloat16; auto (default): bfloat16 where it is faster on "
                             "this CPU, else float32; mixed_*: Keras policies (GPUs)")
    parser.add_argument("--xla", action="store_true", help="compile the training step with XLA (jit_compile)")
    parser.add_argument("--backup-every", type=int, default=None,
                        help="back up every N steps (default: every epoch); a killed run resumes from the backup")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--micro", action="store_true", help="a seconds-long run (CI)")
    add_restart_flags(parser)  # --fresh / --resume: what to do with an interrupted run's backup
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or (128 if args.config else 32)
    return args


def build(args, tokenizer, keep_tokens=None, matmul_dtype=None):
    """The builder of a unilm + linear-pooler model (SimBERT's layout)."""
    from bert4sim.models import build_transformer_model

    if args.config:
        return build_transformer_model(args.config, args.checkpoint, model=args.model, application="unilm",
                                       with_pool="linear", keep_tokens=keep_tokens, return_keras_model=False,
                                       matmul_dtype=matmul_dtype)
    sizes = MICRO if args.micro else TINY
    return build_transformer_model(vocab_size=tokenizer.vocab_size, model=args.model, application="unilm",
                                   with_pool="linear", return_keras_model=False, matmul_dtype=matmul_dtype, **sizes)


def train(args):
    import keras

    from bert4sim.data import to_dataset
    from bert4sim.files import claim
    from bert4sim.precision import set_precision
    from bert4sim.simbert import read_synonym_groups, simbert_batches, simbert_training_model
    from bert4sim.tokenizers import Tokenizer, load_vocab
    from bert4sim.training import ExactResume, get_strategy, make_optimizer, replica_batch_size, training_callbacks

    strategy = get_strategy()  # first: a multi-worker strategy must start before any TensorFlow op
    keras.utils.set_random_seed(args.seed)
    matmul_dtype = set_precision(args.precision)
    keep_tokens = None
    if args.config:  # a released vocab: keep only the tokens the tokenizer can produce
        token_dict, keep_tokens = load_vocab(args.vocab, simplified=True,
                                             startswith=["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    else:
        token_dict = load_vocab(args.vocab)
    tokenizer = Tokenizer(token_dict, do_lower_case=True)
    groups = read_synonym_groups(args.train)
    if args.micro:
        groups = groups[:16]
        args.epochs, args.batch_size = min(args.epochs, 3), min(args.batch_size, 8)
        args.lr = args.lr or 3e-3
    steps = args.steps_per_epoch or max(1, len(groups) // (args.batch_size // 2))
    replica_batch_size(args.batch_size, strategy)  # pairs must not straddle two replicas
    print(f"strategy: {type(strategy).__name__} ({strategy.num_replicas_in_sync} replica(s)), "
          f"precision: {matmul_dtype or keras.mixed_precision.global_policy().name}, XLA: {args.xla}")
    with strategy.scope():
        bert = build(args, tokenizer, keep_tokens, matmul_dtype)
        # bert4keras style: the loss is a layer inside the training model (MLM head on predicted tokens only)
        trainer = simbert_training_model(bert, full_sequence=args.xla)
        lr = args.lr or (2e-6 if args.config else 1e-3)
        schedule = None if args.config else steps * args.epochs  # the original's rate is constant
        trainer.compile(optimizer=make_optimizer(lr, total_steps=schedule, warmup_ratio=0.05,
                                                 global_clipnorm=args.clip_norm),
                        jit_compile=args.xla)
    length = 2 * args.maxlen if args.xla else None  # XLA compiles once per shape: pad to one length
    resume = ExactResume()  # a resumed run restarts the step-indexed batches where the killed one stopped
    dataset = to_dataset(lambda step: simbert_batches(groups, tokenizer, args.batch_size, args.maxlen,
                                                      seed=args.seed, length=length, start_step=step),
                         start_step=resume.start_step)
    claim(args.output, "checkpoint", "bert_model.ckpt")  # before training puts its logs there; refuses others' folders
    callbacks = training_callbacks(os.path.join(args.output, "run"), tensorboard=not args.micro,
                                   backup_every=args.backup_every, resume=resume)
    history = trainer.fit(dataset, epochs=args.epochs, steps_per_epoch=steps, verbose=2, shuffle=False,
                          callbacks=callbacks)
    return bert, tokenizer, history


def save_and_demo(args, bert, tokenizer):
    import keras

    from bert4sim.simbert import read_synonym_groups
    from bert4sim.models import save_checkpoint
    from bert4sim.similarity import SimilarityModel
    save_checkpoint(bert, os.path.join(args.output, "bert_model.ckpt"), vocab=tokenizer.token_dict)
    print(f"saved Google-format checkpoint, bert_config.json and vocab.txt in {os.path.abspath(args.output)}")
    encoder = keras.Model(bert.model.inputs, bert.model.outputs[0])
    seq2seq = keras.Model(bert.model.inputs, bert.model.outputs[1])
    sim = SimilarityModel(tokenizer, encoder, seq2seq, maxlen=args.maxlen,
                          precision=args.precision if args.precision in ("auto", "bfloat16") else "float32")
    corpus = [s for g in read_synonym_groups(args.dev) + read_synonym_groups(args.train) for s in g]
    sim.build_index(corpus)
    sim.save(os.path.join(args.output, "similarity_model"))  # with its index: most_similar works after loading
    print(f"saved SimilarityModel folder with the corpus index in {os.path.abspath(args.output)}/similarity_model")
    for query in DEMO_QUERIES[: 1 if args.micro else None]:
        print(f"\n原句子: {query}")
        print("gen_synonyms:", sim.gen_synonyms(query, n=8 if args.micro else 50, k=5, seed=args.seed))
        print("most_similar:", [(text, round(score, 3)) for text, score in sim.most_similar(query, topn=5)])
    return sim


def main(argv=None):
    args = parse_args(argv)
    if bool(args.config) != bool(args.checkpoint):
        sys.exit("--config and --checkpoint go together")
    from bert4sim.startup import quiet_tensorflow

    quiet_tensorflow()
    from bert4sim.files import claim
    from bert4sim.training import start_run_or_exit

    claim(args.output, "checkpoint", "bert_model.ckpt")  # refuses others' folders before anything goes in
    start_run_or_exit(args, os.path.join(args.output, "run"), prog="simbert.py")  # says so first when it resumes
    bert, tokenizer, history = train(args)
    save_and_demo(args, bert, tokenizer)
    return history


if __name__ == "__main__":
    main()
