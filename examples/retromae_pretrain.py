"""RetroMAE: pre-train a sentence encoder by masked auto-encoding with enhanced decoding.

Input: a plain-text corpus, one passage per line (passages are cut into texts of whole sentences that
fit --maxlen). Default: a tiny BERT pre-trained from scratch on the shipped Chinese passages (a few
minutes on a CPU). With --config/--checkpoint/--vocab it continues from a released BERT (or RoFormer)
checkpoint. At the end it saves the ENCODER ALONE (Google-format checkpoint + bert_config.json +
vocab.txt) in OUTPUT/encoder/; its [CLS] state is the sentence vector. build_transformer_model loads
it, and so do the other examples:

    python examples/sbert.py --init checkpoints/retromae_demo/encoder --pooling cls
    python examples/simbert.py --config checkpoints/retromae_demo/encoder/bert_config.json \
        --checkpoint checkpoints/retromae_demo/encoder --vocab checkpoints/retromae_demo/encoder/vocab.txt

    python examples/retromae_pretrain.py                    # tiny model, shipped corpus
    python examples/retromae_pretrain.py --micro            # seconds: CI smoke run
    python examples/retromae_pretrain.py --compare          # + brief CoSENT fine-tuning of the
                                                            #   pre-trained and a random encoder,
                                                            #   Spearman on the held-apart STS test
    python examples/retromae_pretrain.py --corpus my.txt --config .../bert_config.json \
        --checkpoint .../bert_model.ckpt --vocab .../vocab.txt --maxlen 256 --lr 1e-4 --epochs 1

Defaults: with --config (continuing from a released checkpoint) a global batch of 256 as in the
reference's runs, lr 1e-4 with 10 % warm-up and linear decay; the tiny demo: batch 32, lr 1e-3. Both
clip gradients to a global norm of 1.0 (the reference's Hugging Face Trainer). Masks are sampled as
the reference samples them: whole words, round(rate * (n + 2)) of a text's n tokens (encoder 0.3,
decoder 0.5), one of min(L, 256) decoder masks per row plus the diagonal.
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=os.path.join(DATA, "corpus.txt"), help="one passage per line")
    parser.add_argument("--config", help="bert_config.json of a checkpoint to start from")
    parser.add_argument("--checkpoint", help="bert_model.ckpt prefix or folder")
    parser.add_argument("--vocab", default=os.path.join(DATA, "vocab.txt"))
    parser.add_argument("--model", default="bert", choices=["bert", "roformer"])
    parser.add_argument("--output", default=os.path.join(HERE, "..", "checkpoints", "retromae_demo"))
    parser.add_argument("--maxlen", type=int, default=32, help="tokens per text, [CLS]/[SEP] included")
    parser.add_argument("--encoder-mask-rate", type=float, default=0.3)
    parser.add_argument("--decoder-mask-rate", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="default: one pass over the texts")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="global batch (256 with --config, as the reference's runs; else 32)")
    parser.add_argument("--lr", type=float, default=None, help="default 1e-3 from scratch, 1e-4 from a checkpoint")
    parser.add_argument("--clip-norm", type=float, default=1.0,
                        help="global gradient norm clip (the reference's HF Trainer: 1.0; also used by the "
                             "--compare fine-tuning, as sentence-transformers' fit); 0 for none")
    parser.add_argument("--precision", default=None, choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--micro", action="store_true", help="a seconds-long run (CI)")
    add_restart_flags(parser)  # --fresh / --resume: what to do with an interrupted run's backup
    parser.add_argument("--compare", action="store_true",
                        help="after pre-training, fine-tune it and a randomly initialised twin briefly on "
                             "sts_train.tsv (CoSENT, [CLS] vectors) and print Spearman on sts_test.tsv")
    parser.add_argument("--finetune-epochs", type=int, default=2)
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or (256 if args.config else 32)
    return args


def load_tokenizer(args):
    """Tokenizer, plus keep_tokens when a released vocab is simplified to the tokens it can produce."""
    from bert4sim.tokenizers import Tokenizer, load_vocab

    if args.config:
        token_dict, keep_tokens = load_vocab(args.vocab, simplified=True,
                                             startswith=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        return Tokenizer(token_dict, do_lower_case=True), keep_tokens
    return Tokenizer(args.vocab, do_lower_case=True), None


def pretrain(args):
    """Pre-train; returns ``(retromae, tokenizer, history)``."""
    import keras

    from bert4sim.data import pack_sentences, read_passages
    from bert4sim.precision import set_precision
    from bert4sim.retromae import (RetroMAECollator, build_retromae_model, retromae_batches, retromae_dataset,
                                   retromae_training_model)
    from bert4sim.training import ExactResume, get_strategy, make_optimizer, training_callbacks

    strategy = get_strategy()  # first: a multi-worker strategy must start before any TensorFlow op
    keras.utils.set_random_seed(args.seed)
    set_precision(args.precision)
    tokenizer, keep_tokens = load_tokenizer(args)
    texts = pack_sentences(read_passages(args.corpus), args.maxlen - 2)
    if args.micro:
        texts = texts[:64]
        args.epochs, args.batch_size = min(args.epochs, 3), min(args.batch_size, 16)
        args.lr = args.lr or 3e-3
    collator = RetroMAECollator(tokenizer, args.maxlen, args.encoder_mask_rate, args.decoder_mask_rate,
                                seed=args.seed)
    steps = args.steps_per_epoch or max(1, len(texts) // args.batch_size)
    with strategy.scope():
        # The encoder carries a pooler (a released checkpoint's, or a random one) that RetroMAE does not
        # train, so that scripts building with_pool (SimBERT) can load the saved encoder as it is.
        if args.config:
            retromae = build_retromae_model(args.config, args.checkpoint, model=args.model, with_pool=True,
                                            keep_tokens=keep_tokens, allow_missing_heads=True,
                                            return_keras_model=False)
        else:
            retromae = build_retromae_model(vocab_size=tokenizer.vocab_size, model=args.model, with_pool=True,
                                            return_keras_model=False, **(MICRO if args.micro else TINY))
        model = retromae_training_model(retromae)  # the loss is a layer; the labels are inputs
        lr = args.lr or (1e-4 if args.config else 1e-3)
        model.compile(optimizer=make_optimizer(lr, total_steps=steps * args.epochs, warmup_ratio=0.1,
                                               global_clipnorm=args.clip_norm or None))
    print(f"{len(texts)} texts of at most {args.maxlen} tokens; {steps} steps x {args.epochs} epochs")
    resume = ExactResume()  # step-indexed batches: a resumed run reads what the killed one would have read next
    dataset = retromae_dataset(lambda step: retromae_batches(texts, collator, args.batch_size, seed=args.seed,
                                                             start_step=step), start_step=resume.start_step)
    os.makedirs(args.output, exist_ok=True)
    history = model.fit(dataset, epochs=args.epochs, steps_per_epoch=steps, verbose=2, shuffle=False,
                        callbacks=training_callbacks(os.path.join(args.output, "run"), tensorboard=not args.micro,
                                                     resume=resume))
    return retromae, tokenizer, history


def save_encoder(args, retromae, tokenizer):
    """Save the encoder alone and check that the reloaded checkpoint gives the same [CLS] vectors."""
    import numpy as np

    from bert4sim.models import build_transformer_model
    from bert4sim.sequences import sequence_padding

    folder = os.path.join(args.output, "encoder")
    retromae.save_encoder(os.path.join(folder, "bert_model.ckpt"), vocab=tokenizer.token_dict)
    print(f"saved the encoder alone (Google format), bert_config.json and vocab.txt in {os.path.abspath(folder)}")
    token_ids = sequence_padding([tokenizer.encode(t, maxlen=args.maxlen)[0] for t in ["信用卡怎么注销", "怎么修改收货地址"]])
    segment_ids = np.zeros_like(token_ids)
    inside = retromae.model.predict([token_ids, segment_ids, token_ids, np.ones(token_ids.shape + token_ids.shape[1:], bool)],
                                    verbose=0)[0]
    reloaded = build_transformer_model(os.path.join(folder, "bert_config.json"), folder, model=args.model)
    outside = reloaded.predict([token_ids, segment_ids], verbose=0)[:, 0]
    print(f"reloaded encoder: max |[CLS] difference| = {np.abs(inside - outside).max():.2e}")
    return reloaded


def sts_pairs(tokenizer, path, maxlen):
    """Token ids of both sides of a ``s1<TAB>s2<TAB>score`` file, and the scores scaled to [0, 1]."""
    from bert4sim.evaluation import read_scored_pairs

    firsts, seconds, scores = read_scored_pairs(path)
    encode = lambda texts: [tokenizer.encode(t, maxlen=maxlen)[0] for t in texts]  # noqa: E731
    return encode(firsts), encode(seconds), scores / max(scores.max(), 1e-12), (firsts, seconds, scores)


def finetune_and_evaluate(args, tokenizer, checkpoint_dir=None):
    """Brief CoSENT fine-tuning of a [CLS] encoder (from ``checkpoint_dir`` or random); STS test Spearman."""
    import keras
    import numpy as np

    from bert4sim.evaluation import evaluate_sts
    from bert4sim.models import build_transformer_model
    from bert4sim.sbert import build_sentence_encoder, sbert_training_model
    from bert4sim.sequences import sequence_padding
    from bert4sim.similarity import SimilarityModel
    from bert4sim.training import make_optimizer

    keras.utils.set_random_seed(args.seed)
    config = os.path.join(args.output, "encoder", "bert_config.json")
    if checkpoint_dir:
        bert = build_transformer_model(config, checkpoint_dir, model=args.model, return_keras_model=False)
    else:  # the same architecture, randomly initialised
        bert = build_transformer_model(config, model=args.model, return_keras_model=False)
    encoder = build_sentence_encoder(bert, "cls")
    first, second, scores, _ = sts_pairs(tokenizer, os.path.join(DATA, "sts_train.tsv"), args.maxlen)
    _, _, _, test = sts_pairs(tokenizer, os.path.join(DATA, "sts_test.tsv"), args.maxlen)
    sim = SimilarityModel(tokenizer, encoder, maxlen=args.maxlen)
    before = evaluate_sts(lambda t: sim.encode(t, show_progress=False), *test)["spearman"]
    batch_size, rng = 32, np.random.default_rng(args.seed)
    steps = len(scores) // batch_size

    def batches():
        while True:
            order = rng.permutation(len(scores))
            for start in range(0, steps * batch_size, batch_size):
                rows = order[start:start + batch_size]
                a = sequence_padding([first[i] for i in rows]).astype("int32")
                b = sequence_padding([second[i] for i in rows]).astype("int32")
                yield (a, np.zeros_like(a), b, np.zeros_like(b), scores[rows].astype("float32")),

    import tensorflow as tf

    ids = tf.TensorSpec((None, None), tf.int32)
    dataset = tf.data.Dataset.from_generator(batches, output_signature=((ids,) * 4 + (tf.TensorSpec((None,), tf.float32),),))
    trainer = sbert_training_model(encoder, "cosent")  # inputs: the two texts' arrays, then the scores
    trainer.compile(optimizer=make_optimizer(1e-3, total_steps=steps * args.finetune_epochs, warmup_ratio=0.1,
                                             global_clipnorm=args.clip_norm or None))
    trainer.fit(dataset, epochs=args.finetune_epochs, steps_per_epoch=steps, verbose=0, shuffle=False)
    after = evaluate_sts(lambda t: sim.encode(t, show_progress=False), *test)["spearman"]
    return before, after


def main(argv=None):
    args = parse_args(argv)
    if bool(args.config) != bool(args.checkpoint):
        sys.exit("--config and --checkpoint go together")
    from bert4sim.startup import quiet_tensorflow

    quiet_tensorflow()
    from bert4sim.training import start_run_or_exit

    start_run_or_exit(args, os.path.join(args.output, "run"), prog="retromae_pretrain.py")
    retromae, tokenizer, history = pretrain(args)
    save_encoder(args, retromae, tokenizer)
    if args.compare:
        results = {name: finetune_and_evaluate(args, tokenizer, source)
                   for name, source in (("RetroMAE pre-trained", os.path.join(args.output, "encoder")),
                                        ("random init", None))}
        print(f"\nSTS test Spearman ([CLS] cosine), before -> after {args.finetune_epochs} epoch(s) of CoSENT "
              "fine-tuning on sts_train.tsv:")
        for name, (before, after) in results.items():
            print(f"  {name:22s} {before:.4f} -> {after:.4f}")
    return history


if __name__ == "__main__":
    main()
