"""The ``bert4sim`` command: similar sentences, retrieval and index building from the shell.

    bert4sim synonyms TEXT --model DIR [-n 100 -k 20] [--maxlen 32]
    bert4sim similar TEXT --model DIR [--index DIR] [--topn 10]
    bert4sim index build CORPUS --model DIR --out DIR [--batch-size 64] [--backend faiss]
    bert4sim serve --model DIR [--index DIR] [--host 127.0.0.1 --port 8000]   (pip install "bert4sim[serve]")
    bert4sim export --model DIR --out DIR        (the encoder as a TensorFlow SavedModel)
    bert4sim convert SRC OUT                     (transformers <-> Google format, numpy only)

DIR is a SimilarityModel folder (SimilarityModel.save), a Google-format checkpoint folder
(bert_config.json, vocab.txt, bert_model.ckpt.*) or a transformers / sentence-transformers folder
(config.json + model.safetensors or pytorch_model.bin; converted in memory); BERT or RoFormer is
read from it. CORPUS is a UTF-8 text file, one sentence a line. Results go to stdout, progress and
errors to stderr; errors are one line, exit status 2. TensorFlow's start-up lines are off unless
TF_CPP_MIN_LOG_LEVEL is set.
"""
import argparse
import math
import os
import sys

EXAMPLES = {
    "synonyms": 'bert4sim synonyms "信用卡怎么注销" --model checkpoints/simbert_demo -n 100 -k 5',
    "similar": 'bert4sim similar "怎么注销信用卡" --model checkpoints/simbert_demo --index indexes/faq --topn 3',
    "build": "bert4sim index build examples/data/sentences.txt --model checkpoints/simbert_demo --out indexes/faq",
    "serve": "bert4sim serve --model checkpoints/simbert_demo --index indexes/faq --port 8000",
    "export": "bert4sim export --model checkpoints/simbert_demo --out exported/simbert_demo",
    "convert": "bert4sim convert models/text2vec-base-chinese checkpoints/text2vec-base-chinese",
}


class _Parser(argparse.ArgumentParser):
    """argparse with bert4sim's error form: one line on stderr, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help shows the options)\n")


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option list (those that are not None: their help says what happens), examples as written."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _number(kind, minimum=None, maximum=None):
    """An argparse type: an int or a finite float within [minimum, maximum]."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be between {minimum} and {maximum}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _model(args):
    from bert4sim.precision import resolve_precision
    from bert4sim.similarity import SimilarityModel
    from bert4sim.transformers_folder import is_transformers_folder

    if not os.path.isdir(args.model):
        raise FileNotFoundError(f"model folder not found: {args.model}")
    if os.path.isfile(os.path.join(args.model, "bert_config.json")) or is_transformers_folder(args.model):
        return SimilarityModel.from_checkpoint(args.model, pooling=args.pooling, model=args.model_type,
                                               precision=args.precision, maxlen=args.maxlen)
    model = SimilarityModel.load(args.model)
    maxlen = model.maxlen if args.maxlen is None else args.maxlen
    if resolve_precision(args.precision) != model.precision or maxlen != model.maxlen:
        index, model = model.index, SimilarityModel(model.tokenizer, model.encoder, model.seq2seq, maxlen,
                                                    model.model_id, precision=args.precision)
        model.index = index
    return model


def _synonyms(args):
    for sentence in _model(args).gen_synonyms(args.text, n=args.n, k=args.k, seed=args.seed):
        print(sentence)


def _similar(args):
    from bert4sim.index import VectorIndex

    model = _model(args)
    if args.index is not None:
        model.use_index(VectorIndex.load(args.index))
    elif model.index is None:
        raise ValueError(f"{args.model} holds no index: pass --index DIR (made by `bert4sim index build`)")
    for text, score in model.most_similar(args.text, topn=args.topn):
        print(f"{score:.4f}\t{text}")


def _build_index(args):
    from bert4sim.files import check_writable, read_lines
    from bert4sim.tokenizers import has_content

    corpus = [line.strip() for line in read_lines(args.corpus, "corpus file") if has_content(line)]
    if not corpus:
        raise ValueError(f"corpus file {args.corpus} has no non-empty lines")
    check_writable(args.out, "vector-index")  # before the encoding, not after
    model = _model(args)
    index = model.build_index(corpus, batch_size=args.batch_size, dtype=args.dtype, show_progress=True,
                              backend=args.backend, faiss_factory=args.faiss_factory)
    index.save(args.out)
    print(f"indexed {len(index)} sentences ({index.dim}-d) into {args.out}")


def _serve_first(args):
    """Before TensorFlow and the model load: BLAS threads (read when numpy loads BLAS), then the port."""
    if args.blas_threads:
        if "numpy" in sys.modules:
            raise ValueError("--blas-threads must be applied before numpy is imported")
        os.environ["OPENBLAS_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.blas_threads)
    from bert4sim.serving import listen

    args.sock = listen(args.host, args.port)  # a busy port is one line, before seconds of loading


def _serve(args):
    from bert4sim.serving import Limits, serve
    from bert4sim.index import VectorIndex

    model = _model(args)
    index = VectorIndex.load(args.index) if args.index else model.index  # a model folder's own index
    limits = Limits(max_text_chars=args.max_text_chars, max_texts=args.max_texts, max_topn=args.max_topn,
                    max_n=args.max_n, max_body_bytes=args.max_body_bytes)
    serve(model, index, limits=limits, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
          log_level=args.log_level, request_timeout=args.request_timeout, keep_alive_timeout=args.keep_alive_timeout,
          sock=args.sock)


def _export(args):
    from bert4sim.export import export_saved_model

    if args.precision == "auto":  # the SavedModel runs elsewhere: this CPU's choice does not carry over
        args.precision = "float32"
    print(f"exported the encoder as a SavedModel into {export_saved_model(_model(args), args.out)}")


def build_parser():
    """The ``bert4sim`` argument parser (each subcommand's ``--help`` shows its defaults and an example).

    Example:
        >>> build_parser().parse_args(["similar", "你好", "--model", "models/faq"]).topn
        10
    """
    parser = _Parser(prog="bert4sim", description="Sentence similarity from the shell.",
                     epilog="examples:\n  " + "\n  ".join(EXAMPLES.values()), formatter_class=_Help)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(where, name, help):
        return where.add_parser(name, help=help, description=help, formatter_class=_Help,
                                epilog=f"example:\n  {EXAMPLES[name]}")

    def model_flags(p):
        p.add_argument("--model", required=True, help="SimilarityModel folder or checkpoint folder")
        p.add_argument("--pooling", default=None, choices=["pooler", "cls", "mean", "max"],
                       help="for checkpoint / transformers folders: how to get sentence vectors (default: as "
                            "the folder records it in bert_config.json or its sentence-transformers pooling, else "
                            "the pooler)")
        p.add_argument("--model-type", default=None, choices=["bert", "roformer"],
                       help="for checkpoint folders (default: read from the checkpoint)")
        p.add_argument("--maxlen", type=int, default=None,
                       help="tokens per input (default: as saved; 64 or the model's positions for checkpoints)")
        p.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"],
                       help="matrix products in bfloat16 or float32; auto: bfloat16 where it is faster "
                            "on this CPU (AMX, or a one-off calibration cached in ~/.cache/bert4sim)")

    synonyms = command(sub, "synonyms", "generate similar sentences (SimBERT / RoFormer-Sim)")
    synonyms.add_argument("text")
    synonyms.add_argument("-n", type=int, default=100, help="samples to draw")
    synonyms.add_argument("-k", type=int, default=20, help="sentences to print")
    synonyms.add_argument("--seed", type=int, default=None, help="random seed (default: unseeded)")
    model_flags(synonyms)
    synonyms.set_defaults(func=_synonyms)

    similar = command(sub, "similar", "most similar sentences of an index")
    similar.add_argument("text")
    similar.add_argument("--index", default=None, help="index folder (default: the model folder's own index)")
    similar.add_argument("--topn", type=int, default=10, help="results to print")
    model_flags(similar)
    similar.set_defaults(func=_similar)

    index = sub.add_parser("index", help="index commands", description="index commands",
                           epilog=f"example:\n  {EXAMPLES['build']}", formatter_class=_Help)
    index_sub = index.add_subparsers(dest="index_command", required=True)
    build = command(index_sub, "build", "encode a corpus file (one sentence a line) into an index folder")
    build.add_argument("corpus")
    build.add_argument("--out", required=True, help="new index folder (or one bert4sim wrote)")
    build.add_argument("--batch-size", type=int, default=64, help="texts encoded together")
    build.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="stored vectors")
    build.add_argument("--backend", default="numpy", choices=["numpy", "faiss"],
                       help="numpy: exact search; faiss: approximate (pip install faiss-cpu)")
    build.add_argument("--faiss-factory", default="HNSW32", help="faiss index-factory string, e.g. IVF4096,Flat")
    model_flags(build)
    build.set_defaults(func=_build_index)

    serve = command(sub, "serve", "HTTP JSON service: /encode /similar /synonyms /health (serve extra)")
    serve.add_argument("--index", default=None, help="index folder for /similar (default: the model folder's own)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=_number(int, 1, 65535), default=8000, help="port to listen on")
    serve.add_argument("--max-batch", type=_number(int, 1, 1 << 16), default=64, help="texts encoded together at most")
    serve.add_argument("--max-wait-ms", type=_number(float, 0, 60_000), default=2.0,
                       help="how long the batcher waits for more requests after the first")
    serve.add_argument("--max-text-chars", type=_number(int, 1, 10 ** 7), default=1000, help="characters per text")
    serve.add_argument("--max-texts", type=_number(int, 1, 1 << 16), default=64, help="texts in one /encode request")
    serve.add_argument("--max-topn", type=_number(int, 1, 1 << 20), default=100, help="/similar topn")
    serve.add_argument("--max-n", type=_number(int, 1, 1 << 14), default=256, help="samples in one /synonyms request")
    serve.add_argument("--max-body-bytes", type=_number(int, 1, 1 << 30), default=1 << 20, help="request body size")
    serve.add_argument("--request-timeout", type=_number(float, 0.001, 3600), default=10.0,
                       help="seconds a client has to send a whole request (headers and body); slower ones are "
                            "disconnected")
    serve.add_argument("--keep-alive-timeout", type=_number(float, 0.001, 3600), default=5.0,
                       help="seconds an idle keep-alive connection stays open")
    serve.add_argument("--blas-threads", type=_number(int, 0, 1024), default=1,
                       help="threads of numpy's BLAS for the index search (1: a second thread pool next to "
                            "TensorFlow's made /similar ~16x slower on a busy 2-core machine; 0: BLAS default)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                       help="uvicorn's log level")
    model_flags(serve)
    serve.set_defaults(func=_serve, first=_serve_first)

    export = command(sub, "export", "write the encoder as a TensorFlow SavedModel (TF Serving)")
    export.add_argument("--out", required=True, help="new (or empty) folder (products in float32 unless "
                        "--precision bfloat16)")
    model_flags(export)
    export.set_defaults(func=_export)

    convert = command(sub, "convert", "convert BERT / RoFormer between transformers folders and "
                                      "Google-format checkpoint folders (direction read from SRC)")
    convert.add_argument("src", help="transformers folder (config.json + model.safetensors or pytorch_model.bin), "
                                     "sentence-transformers folder (modules.json) or Google-format folder "
                                     "(bert_config.json + bert_model.ckpt.*)")
    convert.add_argument("out", help="output folder (new, empty, or an earlier conversion of the same kind)")
    convert.set_defaults(func=_convert, tensorflow=False)  # numpy only: no TensorFlow import
    return parser


def _convert(args):
    from bert4sim.convert import run

    print(run(args))


def main(argv=None):
    """Entry point of the ``bert4sim`` console command: errors are one line on stderr and exit 2.

    Example:
        >>> main(["similar", "怎么注销信用卡", "--model", "models/faq"])
    """
    args = build_parser().parse_args(argv)
    try:
        from bert4sim.startup import quiet_tensorflow

        if getattr(args, "first", None):
            args.first(args)
        if getattr(args, "tensorflow", True):
            quiet_tensorflow()
        args.func(args)
    except KeyboardInterrupt:
        print("bert4sim: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001  (the command never shows a traceback)
        if os.environ.get("BERT4SIM_TRACEBACK"):
            raise
        text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        text = " ".join(str(text).split()) or "no details"
        known = (ValueError, OSError, TypeError, ImportError, KeyError, IndexError, MemoryError)
        prefix = "" if isinstance(error, known) else f"unexpected {type(error).__name__} (BERT4SIM_TRACEBACK=1 shows where): "
        print(f"bert4sim: {prefix}{text}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
