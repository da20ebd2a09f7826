"""RoFormer-Sim (SimBERT v2): RoFormer + UniLM + contrastive learning + BART-style noise + distillation.

Stage 1 trains a RoFormer unilm model with SimBERT's two losses on sources where, for half of the
examples, 15 % of the jieba words are noised ([MASK] 80 %, random 10 %, kept 10 %). Stage 2 keeps the
generation loss and replaces the contrastive loss by distillation from a frozen SimBERT teacher
(λ/n² Σ (cos(u_i,u_j) − cos(v_i,v_j))², λ = 100), as the RoFormer-Sim scripts do.

Default: a tiny char-level RoFormer-Sim on the shipped demo data, with the tiny SimBERT written by
examples/simbert.py as teacher (trained first if checkpoints/simbert_demo is missing).

    python examples/roformer_sim.py                   # char level
    python examples/roformer_sim.py --word-level      # jieba words + chars vocabulary built from the data
    python examples/roformer_sim.py --general-corpus examples/data/corpus.txt --mine-threshold 0.7
                                                      # mined pairs interleaved 1:1 with the groups
    python examples/roformer_sim.py --micro           # seconds (CI)

Defaults: with --config/--checkpoint (fine-tuning a released RoFormer(-Sim) checkpoint) the
original's: batch 96 rows, constant learning rate 1e-5 (stage 2: the same), no gradient clipping.
The tiny demo: batch 32, lr 1e-3 with 5 % warm-up and linear decay. Both: whole-word noise units
from jieba with its HMM, long sentences cut at punctuation to 1.2 * maxlen characters, as the
original scripts.

The supervised stage that made the released "-ft" checkpoints (labelled similarity pairs + NLI, a
5-way head over [u; v; |u-v|]) is examples/roformer_sim_supervised.py.
"""
import argparse
import os
import sys

from bert4sim.startup import add_restart_flags

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
DATA = os.path.join(HERE, "data")
CHECKPOINTS = os.path.join(HERE, "..", "checkpoints")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="bert_config.json of a RoFormer checkpoint to fine-tune")
    parser.add_argument("--checkpoint", help="its bert_model.ckpt")
    parser.add_argument("--vocab", default=os.path.join(DATA, "vocab.txt"))
    parser.add_argument("--word-level", action="store_true", help="jieba pre-tokenization + word/char vocab")
    parser.add_argument("--teacher", default=os.path.join(CHECKPOINTS, "simbert_demo"),
                        help="SimBERT checkpoint folder used as distillation teacher")
    parser.add_argument("--train", default=os.path.join(DATA, "simbert_train.json"))
    parser.add_argument("--dev", default=os.path.join(DATA, "simbert_dev.json"))
    parser.add_argument("--general-corpus", default=None, help="plain text, one passage a line: mine pairs")
    parser.add_argument("--general-ratio", default="1:1", help="groups : mined general pairs, sampled in turn")
    parser.add_argument("--mine-threshold", type=float, default=0.7)
    parser.add_argument("--output", default=os.path.join(CHECKPOINTS, "roformer_sim_demo"))
    parser.add_argument("--stage1-epochs", type=int, default=150)
    parser.add_argument("--stage2-epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=None, help="rows (96 with --config, else 32)")
    parser.add_argument("--maxlen", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None,
                        help="1e-5 constant with --config, else 1e-3 with warm-up and decay")
    parser.add_argument("--clip-norm", type=float, default=None, help="global gradient norm clip (original: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--micro", action="store_true", help="a seconds-long run (CI)")
    add_restart_flags(parser)  # --fresh / --resume: what to do with an interrupted run's backup
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or (96 if args.config else 32)
    return args


def load_teacher(args):
    """The frozen SimBERT encoder and its tokenizer (training one with examples/simbert.py if needed)."""
    import keras

    from bert4sim.checkpoints import resolve_checkpoint_path
    from bert4sim.models import build_transformer_model
    from bert4sim.tokenizers import Tokenizer

    try:
        resolve_checkpoint_path(args.teacher)
        trained = os.path.isfile(os.path.join(args.teacher, "vocab.txt"))
    except (OSError, ValueError):
        trained = False
    if not trained:
        import simbert

        print(f"no teacher in {args.teacher}: training the tiny SimBERT first")
        # 80 epochs: enough for the teacher's retrieval, which is all distillation uses
        simbert.main((["--micro"] if args.micro else ["--epochs", "80"]) + ["--output", args.teacher])
    teacher = build_transformer_model(os.path.join(args.teacher, "bert_config.json"), args.teacher,
                                      application="unilm", with_pool="linear")
    encoder = keras.Model(teacher.inputs, teacher.outputs[0], name="teacher")
    return encoder, Tokenizer(os.path.join(args.teacher, "vocab.txt"), do_lower_case=True)


def student_tokenizer(args, groups):
    from bert4sim.roformer_sim import jieba_words
    from bert4sim.tokenizers import Tokenizer, build_vocab, load_vocab

    if args.word_level and not args.config:
        vocab = build_vocab([s for g in groups for s in g], pre_tokenize=jieba_words, min_count=2)
        return Tokenizer(vocab, do_lower_case=True, pre_tokenize=jieba_words)
    pre_tokenize = jieba_words if args.word_level else None
    return Tokenizer(load_vocab(args.vocab), do_lower_case=True, pre_tokenize=pre_tokenize)


def teacher_batches(batches, teacher_tokenizer, maxlen):
    """Add the teacher's inputs (the clean source sentences) to each student batch."""
    from bert4sim.sequences import sequence_padding

    for token_ids, segment_ids, sources in batches:
        encoded = [teacher_tokenizer.encode(text, maxlen=maxlen) for text in sources]
        yield (token_ids, segment_ids, sequence_padding([e[0] for e in encoded]),
               sequence_padding([e[1] for e in encoded]))


def main(argv=None):
    args = parse_args(argv)
    from bert4sim.startup import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from bert4sim.data import parse_ratio, read_passages, to_dataset
    from bert4sim.files import claim
    from bert4sim.models import build_transformer_model, save_checkpoint
    from bert4sim.roformer_sim import mine_similar_pairs, noisy_source
    from bert4sim.simbert import read_synonym_groups, simbert_batches, simbert_training_model
    from bert4sim.similarity import SimilarityModel
    from bert4sim.training import ExactResume, make_optimizer, start_run_or_exit, training_callbacks

    claim(args.output, "checkpoint", "bert_model.ckpt")  # refuses others' folders before anything goes in
    start_run_or_exit(args, *(os.path.join(args.output, stage) for stage in ("stage1", "stage2")),
                      prog="roformer_sim.py")
    keras.utils.set_random_seed(args.seed)
    groups, general, ratio = read_synonym_groups(args.train), None, parse_ratio(args.general_ratio)
    if args.general_corpus:
        pairs = mine_similar_pairs(read_passages(args.general_corpus), args.mine_threshold)
        print(f"mined {len(pairs)} general-sentence pairs (threshold {args.mine_threshold}), "
              f"sampled {args.general_ratio} with the groups")
        general = [[a, b] for a, b, _ in pairs] or None
    if args.micro:
        groups, general = groups[:16], general and general[:16]
        args.stage1_epochs, args.stage2_epochs, args.batch_size = 3, 2, 8
        args.lr = args.lr or 3e-3
    tokenizer = student_tokenizer(args, groups + (general or []))
    teacher, teacher_tokenizer = load_teacher(args)
    sizes = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64) if args.micro \
        else dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256)
    if args.config:
        student = build_transformer_model(args.config, args.checkpoint, model="roformer", application="unilm",
                                          with_pool="linear", return_keras_model=False, dropout_rate=0.2)
    else:
        student = build_transformer_model(vocab_size=tokenizer.vocab_size, model="roformer", application="unilm",
                                          with_pool="linear", return_keras_model=False,
                                          max_position_embeddings=512, **sizes)
    lr = args.lr or (1e-5 if args.config else 1e-3)
    steps = max(1, (len(groups) + len(general or [])) // (args.batch_size // 2))
    noise = noisy_source()  # jieba with HMM for the noised words, as the original

    def optimizer(rate, epochs):  # the original's constant rate when fine-tuning a released checkpoint
        total = None if args.config else steps * epochs
        return make_optimizer(rate, total_steps=total, warmup_ratio=0.05, global_clipnorm=args.clip_norm)
    claim(args.output, "checkpoint", "bert_model.ckpt")  # before training puts its logs there; refuses others' folders
    histories = []

    print("stage 1: generation + contrastive loss, noisy sources")
    stage1 = simbert_training_model(student, similarity_scale=20.0)  # the loss is a layer of the model
    stage1.compile(optimizer=optimizer(lr, args.stage1_epochs))
    resume = ExactResume()  # step-indexed batches: a resumed stage reads what the killed one would have read next
    data = to_dataset(lambda step: simbert_batches(groups, tokenizer, args.batch_size, args.maxlen, args.seed, noise,
                                                   general=general, ratio=ratio, start_step=step),
                      start_step=resume.start_step)
    histories.append(stage1.fit(data, epochs=args.stage1_epochs, steps_per_epoch=steps, verbose=2, shuffle=False,
                                callbacks=training_callbacks(os.path.join(args.output, "stage1"), tensorboard=False,
                                                             resume=resume)))

    print("stage 2: generation + distillation from the SimBERT teacher")
    stage2 = simbert_training_model(student, teacher=teacher, distillation_weight=100.0)
    stage2.compile(optimizer=optimizer(lr if args.config else lr / 2, args.stage2_epochs))
    resume = ExactResume()
    batches = lambda step: teacher_batches(  # noqa: E731
        simbert_batches(groups, tokenizer, args.batch_size, args.maxlen, args.seed + 1, noise, with_sources=True,
                        general=general, ratio=ratio, start_step=step), teacher_tokenizer, args.maxlen)
    histories.append(stage2.fit(to_dataset(batches, extra_inputs=2, start_step=resume.start_step),
                                epochs=args.stage2_epochs, steps_per_epoch=steps, verbose=2, shuffle=False,
                                callbacks=training_callbacks(os.path.join(args.output, "stage2"), tensorboard=False,
                                                             resume=resume)))

    save_checkpoint(student, os.path.join(args.output, "bert_model.ckpt"), vocab=tokenizer.token_dict)
    print(f"saved RoFormer-Sim checkpoint (Google format) in {os.path.abspath(args.output)}")
    encoder = keras.Model(student.model.inputs, student.model.outputs[0])
    seq2seq = keras.Model(student.model.inputs, student.model.outputs[1])
    sim = SimilarityModel(tokenizer, encoder, seq2seq, maxlen=args.maxlen)
    sim.build_index([s for g in read_synonym_groups(args.dev) + read_synonym_groups(args.train) for s in g])
    for query in ["信用卡怎么注销", "火车票如何改签"][: 1 if args.micro else None]:
        print(f"\n原句子: {query}")
        print("gen_synonyms:", sim.gen_synonyms(query, n=8 if args.micro else 50, k=5, topk=None, topp=0.95,
                                                seed=args.seed))
        print("most_similar:", [(t, round(s, 3)) for t, s in sim.most_similar(query, topn=5)])
    return student, tokenizer, histories


if __name__ == "__main__":
    main()
