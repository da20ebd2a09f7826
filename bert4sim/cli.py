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
read from it. CORPUS is a UTF-8 text file, one sentence a line. Errors are one line on stderr,
exit status 2.
"""
import argparse
import os
import sys


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


def _serve(args):
    if args.blas_threads:
        if "numpy" in sys.modules:
            raise ValueError("--blas-threads must be applied before numpy is imported")
        # Read by OpenBLAS / MKL when numpy loads them, i.e. by the imports just below.
        os.environ["OPENBLAS_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.blas_threads)
    from bert4sim.serving import Limits, serve
    from bert4sim.index import VectorIndex

    model = _model(args)
    index = VectorIndex.load(args.index) if args.index else model.index  # a model folder's own index
    limits = Limits(max_text_chars=args.max_text_chars, max_texts=args.max_texts, max_topn=args.max_topn,
                    max_n=args.max_n, max_body_bytes=args.max_body_bytes)
    serve(model, index, host=args.host, port=args.port, limits=limits, max_batch=args.max_batch,
          max_wait_ms=args.max_wait_ms, log_level=args.log_level)


def _export(args):
    from bert4sim.export import export_saved_model

    if args.precision == "auto":  # the SavedModel runs elsewhere: this CPU's choice does not carry over
        args.precision = "float32"
    print(f"exported the encoder as a SavedModel into {export_saved_model(_model(args), args.out)}")


def build_parser():
    parser = argparse.ArgumentParser(prog="bert4sim", description="Sentence similarity from the shell.")
    sub = parser.add_subparsers(dest="command", required=True)

    def model_flags(p):
        p.add_argument("--model", required=True, help="SimilarityModel folder or checkpoint folder")
        p.add_argument("--pooling", default=None, choices=["pooler", "cls", "mean", "max"],
                       help="for checkpoint / transformers folders: how to get sentence vectors (default: the "
                            "folder's sentence-transformers pooling, else the pooler)")
        p.add_argument("--model-type", default=None, choices=["bert", "roformer"],
                       help="for checkpoint folders (default: read from the checkpoint)")
        p.add_argument("--maxlen", type=int, default=None,
                       help="tokens per input (default: as saved; 64 or the model's positions for checkpoints)")
        p.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"],
                       help="matrix products in bfloat16 or float32; auto (default): bfloat16 where it is faster "
                            "on this CPU (AMX, or a one-off calibration cached in ~/.cache/bert4sim)")

    synonyms = sub.add_parser("synonyms", help="generate similar sentences (SimBERT / RoFormer-Sim)")
    synonyms.add_argument("text")
    synonyms.add_argument("-n", type=int, default=100, help="samples to draw")
    synonyms.add_argument("-k", type=int, default=20, help="sentences to print")
    synonyms.add_argument("--seed", type=int, default=None)
    model_flags(synonyms)
    synonyms.set_defaults(func=_synonyms)

    similar = sub.add_parser("similar", help="most similar sentences of an index")
    similar.add_argument("text")
    similar.add_argument("--index", default=None, help="index folder (default: the model folder's own index)")
    similar.add_argument("--topn", type=int, default=10)
    model_flags(similar)
    similar.set_defaults(func=_similar)

    index = sub.add_parser("index", help="index commands")
    index_sub = index.add_subparsers(dest="index_command", required=True)
    build = index_sub.add_parser("build", help="encode a corpus file into an index folder")
    build.add_argument("corpus")
    build.add_argument("--out", required=True)
    build.add_argument("--batch-size", type=int, default=64)
    build.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    build.add_argument("--backend", default="numpy", choices=["numpy", "faiss"],
                       help="numpy: exact search; faiss: approximate (pip install faiss-cpu)")
    build.add_argument("--faiss-factory", default="HNSW32", help="faiss index-factory string, e.g. IVF4096,Flat")
    model_flags(build)
    build.set_defaults(func=_build_index)

    serve = sub.add_parser("serve", help="HTTP JSON service: /encode /similar /synonyms /health (serve extra)")
    serve.add_argument("--index", default=None, help="index folder for /similar (default: the model folder's own)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-batch", type=int, default=64, help="texts encoded together at most")
    serve.add_argument("--max-wait-ms", type=float, default=2.0,
                       help="how long the batcher waits for more requests after the first")
    serve.add_argument("--max-text-chars", type=int, default=1000)
    serve.add_argument("--max-texts", type=int, default=64, help="texts in one /encode request")
    serve.add_argument("--max-topn", type=int, default=100)
    serve.add_argument("--max-n", type=int, default=256, help="samples in one /synonyms request")
    serve.add_argument("--max-body-bytes", type=int, default=1 << 20)
    serve.add_argument("--blas-threads", type=int, default=1,
                       help="threads of numpy's BLAS for the index search (default 1: a second thread pool "
                            "next to TensorFlow's made /similar ~16x slower on a busy 2-core machine; 0: BLAS default)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    model_flags(serve)
    serve.set_defaults(func=_serve)

    export = sub.add_parser("export", help="write the encoder as a TensorFlow SavedModel (TF Serving)")
    export.add_argument("--out", required=True, help="new (or empty) folder (products in float32 unless "
                        "--precision bfloat16)")
    model_flags(export)
    export.set_defaults(func=_export)

    convert = sub.add_parser("convert", help="convert BERT / RoFormer between transformers folders and "
                                             "Google-format checkpoint folders (direction read from SRC)")
    convert.add_argument("src", help="transformers folder (config.json + model.safetensors or pytorch_model.bin), "
                                     "sentence-transformers folder (modules.json) or Google-format folder "
                                     "(bert_config.json + bert_model.ckpt.*)")
    convert.add_argument("out", help="output folder (new, empty, or an earlier conversion of the same kind)")
    convert.set_defaults(func=_convert)
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
