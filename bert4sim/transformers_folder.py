"""A transformers or sentence-transformers folder, read as a Google-format model in memory (numpy only).

:func:`detect` says what a model folder is (Google-format checkpoint folder,
transformers folder, sentence-transformers folder); :func:`read_transformers_folder`
reads a transformers / sentence-transformers BERT or RoFormer folder into a
``bert_config.json`` dict, ``{Google variable name: array}`` and the token list,
which :func:`bert4sim.models.build_transformer_model`, ``SimilarityModel.from_checkpoint``
and :mod:`bert4sim.convert` use. Weights come from ``model.safetensors`` (or its
shards) without torch; ``pytorch_model.bin`` needs torch (``weights_only`` loading).
Nothing read from a file steers a path outside the folder, and nothing is written.

Example:
    >>> config, arrays, vocab = read_transformers_folder("models/text2vec-base-chinese")
    >>> config["model_type"], config["pooling"]
    ('bert', 'mean')
"""
import os

from bert4sim import transformers_format as hf
from bert4sim.files import read_json, read_marker
from bert4sim.safetensors_io import read_safetensors
from bert4sim.tokenizers import load_vocab

POOLING_MODES = {"cls": "cls", "mean": "mean", "max": "max", "pooling_mode_cls_token": "cls",
                 "pooling_mode_mean_tokens": "mean", "pooling_mode_max_tokens": "max"}


class ConvertedWeights(dict):
    """``{Google variable name: array}`` converted in memory; ``source`` names where it came from (for messages).

    Example:
        >>> weights = ConvertedWeights({"bert/pooler/dense/bias": bias}, source="transformers folder hf/bert")
    """

    def __init__(self, arrays, source):
        super().__init__(arrays)
        self.source = source


# --- what a folder is --------------------------------------------------------------------


def detect(folder):
    """What kind of model folder ``folder`` is: ``{"kind": "google" | "transformers" | "sentence-transformers", ...}``.

    For transformers folders, ``"model_folder"`` is where config.json and the
    weights are (a sentence-transformers folder's Transformer module) and
    ``"pooling"`` / ``"normalize"`` / ``"max_seq_length"`` what its modules say.

    Example:
        >>> detect("models/text2vec-base-chinese")["kind"]
        'sentence-transformers'
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"model folder not found: {folder}")
    files = set(os.listdir(folder))
    saved = (read_marker(folder) or {}).get("kind") == "checkpoint"  # bert4sim's versioned checkpoint folder
    if "bert_config.json" in files and (saved or any(f.endswith(".index") for f in files)):
        return {"kind": "google", "folder": folder}
    if "modules.json" in files:
        return _sentence_transformers(folder)
    if "config.json" in files:
        if not files & set(hf.WEIGHT_FILES):
            read_weights(folder)  # raises, naming what the folder has instead
        return {"kind": "transformers", "folder": folder, "model_folder": folder}
    if "bert_config.json" in files:
        raise FileNotFoundError(f"{folder} has bert_config.json but no checkpoint (*.index)")
    raise FileNotFoundError(f"{folder} is not a model folder: no config.json (transformers), modules.json "
                            "(sentence-transformers) or bert_config.json + checkpoint (Google format)")


def is_transformers_folder(path):
    """True when ``path`` is a folder holding a transformers model (config.json + weights) or a
    sentence-transformers one (modules.json), and not a Google-format checkpoint folder.

    Example:
        >>> is_transformers_folder("models/bert-base-chinese"), is_transformers_folder("checkpoints/simbert")
        (True, False)
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        return False
    files = set(os.listdir(path))
    if "bert_config.json" in files:
        return False
    return "modules.json" in files or ("config.json" in files and bool(files & set(hf.WEIGHT_FILES)))


def _relative_folder(folder, path, where):
    if not isinstance(path, str):
        raise ValueError(f"{where}: module path {path!r} is not a string")
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if os.path.isabs(path) or any(p == ".." for p in parts):
        raise ValueError(f"{where}: module path {path!r} leaves the model folder")
    return os.path.join(folder, *parts)


def _sentence_transformers(folder):
    where = os.path.join(folder, "modules.json")
    modules = read_json(where, list, "sentence-transformers modules file")
    info = {"kind": "sentence-transformers", "folder": folder, "model_folder": None, "pooling": None,
            "normalize": False}
    for module in modules:
        kind = str(module.get("type", "")) if isinstance(module, dict) else ""
        short = kind.rsplit(".", 1)[-1]
        path = _relative_folder(folder, module.get("path", ""), where) if isinstance(module, dict) else folder
        if short == "Transformer" and info["model_folder"] is None:
            info["model_folder"] = path
        elif short == "Pooling" and info["pooling"] is None:
            info["pooling"] = _pooling_mode(os.path.join(path, "config.json"))
        elif short == "Normalize":
            info["normalize"] = True
        else:
            raise ValueError(f"{where}: module {kind or module!r} has no bert4sim equivalent "
                             "(bert4sim takes one Transformer, one Pooling and an optional Normalize)")
    if info["model_folder"] is None:
        raise ValueError(f"{where} lists no Transformer module")
    # sentence-transformers 2-5 keep max_seq_length in sentence_bert_config.json, 6 as the tokenizer's model_max_length
    for name, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")):
        path = os.path.join(info["model_folder"], name)
        length = read_json(path, dict, "sentence-transformers config").get(key) if os.path.isfile(path) else None
        if isinstance(length, int) and not isinstance(length, bool) and 0 < length <= 1_000_000:
            info["max_seq_length"] = length
            break
    return info


def _pooling_mode(path):
    config = read_json(path, dict, "sentence-transformers pooling config")
    if "pooling_mode" in config:
        modes = config["pooling_mode"]
        modes = [modes] if isinstance(modes, str) else list(modes) if isinstance(modes, list) else [repr(modes)]
    else:
        modes = [key for key, value in config.items() if key.startswith("pooling_mode_") and value is True]
    if len(modes) != 1 or modes[0] not in POOLING_MODES:
        raise ValueError(f"{path}: pooling {', '.join(map(str, modes)) or 'none'} is not supported "
                         "(bert4sim pools with one of cls, mean, max)")
    return POOLING_MODES[modes[0]]


# --- reading ------------------------------------------------------------------------------


def read_transformers_folder(folder):
    """Read a transformers or sentence-transformers folder as Google format, in memory.

    Returns ``(config, arrays, vocab)``: a ``bert_config.json`` dict (with
    ``model_type`` and, for sentence-transformers, ``pooling``), ``{Google
    variable name: float32 array}`` under ``bert/`` (a :class:`ConvertedWeights`), and the token list.

    Example:
        >>> config, arrays, vocab = read_transformers_folder("models/roformer_chinese_sim_char_base")
        >>> config["model_type"], arrays["bert/embeddings/word_embeddings"].shape
        ('roformer', (12000, 768))
    """
    info = detect(folder)
    if info["kind"] == "google":
        raise ValueError(f"{folder} is a Google-format checkpoint folder, not a transformers folder")
    source = info["model_folder"]
    config_path = os.path.join(source, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{config_path} not found: a transformers folder needs config.json")
    config = hf.google_config(read_json(config_path, dict, "config file"), config_path)
    for key in ("pooling", "normalize", "max_seq_length"):
        if info.get(key) is not None and (key != "normalize" or info[key]):
            config[key] = info[key]
    lower = read_do_lower_case(source)
    if lower is not None:
        config["do_lower_case"] = lower
    state = read_weights(source)
    model_type = config["model_type"]
    arrays = ConvertedWeights(hf.to_google(state, model_type, config, where=f"weights of {source}"),
                              source=f"transformers folder {folder} (converted in memory)")
    _check_shapes(arrays, config, config_path)
    vocab = read_vocab(source)
    rows = arrays["bert/embeddings/word_embeddings"].shape[0]
    if len(vocab) != rows:
        raise ValueError(f"{source}: the vocabulary has {len(vocab)} tokens, word_embeddings has {rows} rows")
    return config, arrays, vocab


def _check_shapes(arrays, config, where):
    word = arrays["bert/embeddings/word_embeddings"].shape
    expected = (config["vocab_size"], config["hidden_size"])
    if word != expected:
        raise ValueError(f"word_embeddings has shape {word}, config says {expected} ({where})")
    layers = {int(name.split("/")[2][len("layer_"):]) for name in arrays if name.startswith("bert/encoder/layer_")}
    if layers != set(range(config["num_hidden_layers"])):
        raise ValueError(f"{where}: num_hidden_layers is {config['num_hidden_layers']}, the weights have layers "
                         f"{sorted(layers)}")


# --- the files of a transformers folder -------------------------------------------------


def _plain_name(name, where):
    """A file name read from a file: it must name a file inside the folder, nothing else."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name \
            or "\0" in name or os.path.isabs(name):
        raise ValueError(f"{where}: {name!r} is not a plain file name in the folder")
    return name


def read_weights(folder):
    """The state dict of a transformers folder: model.safetensors (or its shards), else pytorch_model.bin.

    ``pytorch_model.bin`` is read with ``torch.load(..., weights_only=True)``
    when torch is installed; without torch it is refused with the way out.

    Example:
        >>> state = read_weights("models/bert-base-chinese")
        >>> state["bert.pooler.dense.weight"].shape
        (768, 768)
    """
    single = os.path.join(folder, "model.safetensors")
    if os.path.isfile(single):
        return read_safetensors(single)
    for index_name, reader in (("model.safetensors.index.json", read_safetensors),
                               ("pytorch_model.bin.index.json", _read_torch)):
        index_path = os.path.join(folder, index_name)
        if os.path.isfile(index_path):
            weight_map = read_json(index_path, dict, "shard index").get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise ValueError(f"shard index {index_path} has no weight_map")
            state = {}
            for shard in sorted({_plain_name(f, index_path) for f in weight_map.values()}):
                state.update(reader(os.path.join(folder, shard)))
            absent = sorted(set(weight_map) - set(state))
            if absent:
                raise ValueError(f"shard index {index_path} lists {absent[0]!r}, which no shard holds")
            return state
    binary = os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(binary):
        return _read_torch(binary)
    present = sorted(f for f in os.listdir(folder) if f.endswith((".h5", ".msgpack", ".ckpt.index", ".onnx")))
    hint = f" (it has {', '.join(present)}, which bert4sim does not read)" if present else ""
    raise FileNotFoundError(f"{folder} has no model.safetensors or pytorch_model.bin{hint}")


def _read_torch(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        import torch
    except ImportError:
        raise ImportError(f"{path} is a PyTorch pickle and torch is not installed: pip install torch, or save the "
                          "model as model.safetensors (transformers' save_pretrained does) and convert that") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (torch raises many types for a bad file)
        raise ValueError(f"{path}: torch cannot read it safely ({str(error).splitlines()[0][:200]})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return {name: value.float().numpy() if value.is_floating_point() else value.numpy()
            for name, value in state.items() if hasattr(value, "numpy")}


def read_vocab(folder):
    """The vocabulary of a transformers folder as a token list: vocab.txt, else tokenizer.json's WordPiece vocab.

    Example:
        >>> read_vocab("models/bert-base-chinese")[:3]
        ['[PAD]', '[unused1]', '[unused2]']
    """
    path = os.path.join(folder, "vocab.txt")
    if os.path.isfile(path):
        token_dict = load_vocab(path)  # bert4sim's reading: empty or duplicate lines are refused with file:line
        return sorted(token_dict, key=token_dict.get)
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder} has neither vocab.txt nor tokenizer.json: no vocabulary to convert")
    model = read_json(path, dict, "tokenizer file").get("model")
    if not isinstance(model, dict) or model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        kind = model.get("type") if isinstance(model, dict) else None
        raise ValueError(f"{path}: tokenizer model {kind!r} is not WordPiece; bert4sim's tokenizer is WordPiece")
    vocab = model["vocab"]
    ids = sorted(vocab.values()) if all(isinstance(i, int) for i in vocab.values()) else None
    if ids != list(range(len(vocab))):
        raise ValueError(f"{path}: WordPiece ids are not 0..{len(vocab) - 1} without gaps")
    return [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]


def read_do_lower_case(folder):
    """``do_lower_case`` of a folder's tokenizer_config.json (None when it does not say).

    Example:
        >>> read_do_lower_case("models/bert-base-chinese")
        True
    """
    path = os.path.join(folder, "tokenizer_config.json")
    if not os.path.isfile(path):
        return None
    value = read_json(path, dict, "tokenizer config").get("do_lower_case")
    return value if isinstance(value, bool) else None
