"""Google-format checkpoint IO: the name table, config reading, checkpoint reading, writing and inspection.

A Google-format BERT folder holds ``bert_config.json``, ``vocab.txt`` and a
TensorFlow checkpoint ``bert_model.ckpt.{index,data-*}`` whose variables are
named as :data:`EMBEDDING_VARIABLES`, :data:`BLOCK_VARIABLES` and
:data:`HEAD_VARIABLES` say (under a ``bert/`` scope, or ``roformer/``). This
module knows nothing of Keras models: it maps names to arrays and back;
:class:`bert4sim.models.Transformer` gives it a ``{checkpoint name: variable}``
mapping. TensorFlow is imported only inside the functions that read or write.

A folder bert4sim saves keeps those paths while each save is a new version
(:mod:`bert4sim.files`): ``bert_model.ckpt`` is then a folder of versions that
TensorFlow reads through its own ``checkpoint`` state file, and
``bert_config.json`` / ``vocab.txt`` at the top are copies of the current
version's. A ``checkpoint`` state file is only ever read as a name inside its
own folder.

Example:
    >>> config = read_config("checkpoints/simbert/bert_config.json")
    >>> path = resolve_checkpoint_path("checkpoints/simbert")   # '.../bert_model.ckpt'
    >>> detect_model_type(path)
    'bert'
"""
import json
import os
import re
from collections.abc import Mapping

import numpy as np

from bert4sim.checks import Field, physical_memory, read_fields
from bert4sim.files import current_version, new_version, read_json, read_marker, write_json_atomic
from bert4sim.tokenizers import save_vocab


REQUIRED_CONFIG_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
)
CONFIG_DEFAULTS = {
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "initializer_range": 0.02,
}
MODELS = ("bert", "roformer")
POOLINGS = ("pooler", "cls", "mean", "max")
# Every config key bert4sim reads, with its type and range: checked before anything is built, so a
# damaged or hostile config is one error naming the file and the key (bert4sim.checks.read_fields).
CONFIG_FIELDS = {
    **{key: Field("int", minimum=1, required=True) for key in REQUIRED_CONFIG_KEYS},
    "vocab_size": Field("int", minimum=1, maximum=1 << 24, required=True),
    "hidden_size": Field("int", minimum=1, maximum=1 << 16, required=True),
    "num_hidden_layers": Field("int", minimum=1, maximum=1024, required=True),
    "intermediate_size": Field("int", minimum=1, maximum=1 << 20, required=True),
    "max_position_embeddings": Field("int", minimum=1, maximum=1 << 20, default=512),
    "type_vocab_size": Field("int", minimum=1, maximum=1 << 16, default=2),
    "hidden_act": Field("str", default="gelu"),
    "hidden_dropout_prob": Field("number", minimum=0, below=1, default=0.1),
    "attention_probs_dropout_prob": Field("number", minimum=0, below=1, default=0.1),
    "initializer_range": Field("number", above=0, maximum=10, default=0.02),
    "model_type": Field("str"),
    "pooling": Field("choice", choices=POOLINGS),  # how the encoder was trained to pool (bert4sim's key)
    "do_lower_case": Field("bool"),  # the tokenizer's, recorded by a conversion ("false" is not False)
}
APPLICATIONS = ("encoder", "unilm", "lm")
HEAD_PREFIXES = ("pooler/", "cls/")

# The one table from Google checkpoint names to our weights. Each entry is
# (checkpoint name under the prefix, Keras layer name, attribute path to the
# variable). "{i}" is the transformer layer index.
EMBEDDING_VARIABLES = (
    ("embeddings/word_embeddings", "Embedding-Token", "embeddings"),
    ("embeddings/token_type_embeddings", "Embedding-Segment", "embeddings"),
    ("embeddings/position_embeddings", "Embedding-Position", "embeddings"),
    ("embeddings/LayerNorm/gamma", "Embedding-Norm", "gamma"),
    ("embeddings/LayerNorm/beta", "Embedding-Norm", "beta"),
    ("encoder/embedding_hidden_mapping_in/kernel", "Embedding-Mapping", "kernel"),  # embedding_size != hidden_size
    ("encoder/embedding_hidden_mapping_in/bias", "Embedding-Mapping", "bias"),
)
BLOCK_VARIABLES = (
    ("encoder/layer_{i}/attention/self/query/kernel", "attention.query_dense.kernel"),
    ("encoder/layer_{i}/attention/self/query/bias", "attention.query_dense.bias"),
    ("encoder/layer_{i}/attention/self/key/kernel", "attention.key_dense.kernel"),
    ("encoder/layer_{i}/attention/self/key/bias", "attention.key_dense.bias"),
    ("encoder/layer_{i}/attention/self/value/kernel", "attention.value_dense.kernel"),
    ("encoder/layer_{i}/attention/self/value/bias", "attention.value_dense.bias"),
    ("encoder/layer_{i}/attention/output/dense/kernel", "attention.output_dense.kernel"),
    ("encoder/layer_{i}/attention/output/dense/bias", "attention.output_dense.bias"),
    ("encoder/layer_{i}/attention/output/LayerNorm/gamma", "attention_norm.gamma"),
    ("encoder/layer_{i}/attention/output/LayerNorm/beta", "attention_norm.beta"),
    ("encoder/layer_{i}/intermediate/dense/kernel", "feed_forward.inner_dense.kernel"),
    ("encoder/layer_{i}/intermediate/dense/bias", "feed_forward.inner_dense.bias"),
    ("encoder/layer_{i}/output/dense/kernel", "feed_forward.output_dense.kernel"),
    ("encoder/layer_{i}/output/dense/bias", "feed_forward.output_dense.bias"),
    ("encoder/layer_{i}/output/LayerNorm/gamma", "output_norm.gamma"),
    ("encoder/layer_{i}/output/LayerNorm/beta", "output_norm.beta"),
)
HEAD_VARIABLES = (
    ("pooler/dense/kernel", "Pooler-Dense", "dense.kernel"),
    ("pooler/dense/bias", "Pooler-Dense", "dense.bias"),
    ("cls/predictions/transform/dense/kernel", "MLM-Transform", "dense.kernel"),
    ("cls/predictions/transform/dense/bias", "MLM-Transform", "dense.bias"),
    ("cls/predictions/transform/LayerNorm/gamma", "MLM-Transform", "norm.gamma"),
    ("cls/predictions/transform/LayerNorm/beta", "MLM-Transform", "norm.beta"),
    ("cls/predictions/output_bias", "MLM-Bias", "bias"),
    ("cls/seq_relationship/output_weights", "NSP-Proba", "output_weights"),
    ("cls/seq_relationship/output_bias", "NSP-Proba", "output_bias"),
)
# Rows of these variables follow the vocabulary, so keep_tokens slices them.
VOCAB_VARIABLES = ("embeddings/word_embeddings", "cls/predictions/output_bias")


class ConfigError(KeyError, ValueError):
    """A model configuration that lacks a key or holds a bad value (a KeyError, as before, and a ValueError)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def read_config(config_path=None, **overrides):
    """Read ``bert_config.json`` and apply keyword overrides and defaults.

    Example:
        >>> config = read_config("checkpoints/simbert/bert_config.json")
        >>> config = read_config(vocab_size=100, hidden_size=64, num_hidden_layers=2,
        ...                      num_attention_heads=2, intermediate_size=128)
    """
    config = {}
    if config_path is not None:
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"config file not found: {config_path}")
        config = read_json(config_path, dict, "config file")
    config.update({k: v for k, v in overrides.items() if v is not None})
    where = f"config file {config_path}" if config_path else "the model configuration"
    return check_config(config, where)


def check_config(config, where="the model configuration"):
    """``config`` with defaults filled in, every key checked (:data:`CONFIG_FIELDS`) before anything is built.

    Besides each key's type and range: ``hidden_size`` must divide into
    ``num_attention_heads``, and the float32 weights must fit in this
    machine's memory (a config saying ``vocab_size: 10**9`` is refused here,
    not by an out-of-memory error after seconds of allocating).

    Example:
        >>> check_config({"vocab_size": 100, "hidden_size": 64, "num_hidden_layers": 2,
        ...               "num_attention_heads": 2, "intermediate_size": 128})["hidden_act"]
        'gelu'
    """
    config = read_fields(config, CONFIG_FIELDS, where, error=ConfigError)
    for key, value in CONFIG_DEFAULTS.items():
        config.setdefault(key, value)
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    if hidden % heads:
        raise ConfigError(f"{where}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
    _check_weights_fit(config, where)
    return config


def _check_weights_fit(config, where):
    """Refuse a config whose float32 weights alone exceed this machine's physical memory."""
    h, layers = config["hidden_size"], config["num_hidden_layers"]
    tables = {key: config[key] * h for key in ("vocab_size", "max_position_embeddings", "type_vocab_size")}
    blocks = layers * (4 * h * h + 2 * h * config["intermediate_size"] + 9 * h + config["intermediate_size"])
    need = 4 * (sum(tables.values()) + blocks + h * h + config["vocab_size"])
    memory = physical_memory()
    if memory is not None and need > memory:
        largest = max(tables, key=tables.get)
        part = (f"{largest} {config[largest]} x hidden_size {h}" if tables[largest] * 4 > need / 2 else
                f"{layers} layers of hidden_size {h}, intermediate_size {config['intermediate_size']}")
        raise ConfigError(f"{where}: the model would need {need / 2**30:.1f} GiB of float32 weights (mostly "
                          f"{part}), more than this machine's {memory / 2**30:.1f} GiB of memory")


def resolve_checkpoint_path(checkpoint_path):
    """Turn a checkpoint prefix or folder into the prefix TF reads.

    Accepts ``.../bert_model.ckpt`` (the prefix, or the folder of versions
    bert4sim saves under that name), one of its files (``.index`` /
    ``.data-*``) or the folder holding it. A folder bert4sim saved gives its
    current version's prefix; reading changes nothing.

    Example:
        >>> resolve_checkpoint_path("checkpoints/simbert/")  # '.../bert_model.ckpt'
    """
    path = str(checkpoint_path)
    for suffix in (".index", ".meta"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    if ".data-" in os.path.basename(path):
        path = path[: path.rindex(".data-")]
    if os.path.isdir(path):
        path = _prefix_in(current_version(path, "checkpoint"))
    if not os.path.isfile(path + ".index"):
        raise FileNotFoundError(
            f"checkpoint not found: {checkpoint_path} (expected {path}.index and its .data files)"
        )
    return path


def _prefix_in(folder):
    """The prefix of the checkpoint in ``folder``: the one its TF ``checkpoint`` state file names, else its only one.

    The state file's path is read as a name in this folder (its last part), so
    an absolute or ``../`` path there never leads elsewhere.
    """
    names = sorted(f[:-6] for f in os.listdir(folder) if f.endswith(".index"))
    state = os.path.join(folder, "checkpoint")
    named = None
    if os.path.isfile(state):
        with open(state, encoding="utf-8", errors="replace") as f:
            found = re.search(r'^model_checkpoint_path:\s*"([^"]*)"', f.read(), re.M)
        named = found and re.split(r"[/\\]", found.group(1))[-1]
    if named in names or len(names) == 1:
        return os.path.join(folder, named if named in names else names[0])
    if not names:
        raise FileNotFoundError(f"no TF checkpoint (*.index) in folder {folder}")
    raise ValueError(f"{folder} holds several checkpoints ({', '.join(names)}) and no state file naming one of "
                     f"them: pass a prefix, e.g. {os.path.join(folder, names[-1])}")


def write_checkpoint(checkpoint_path, arrays):
    """Write ``{variable_name: array}`` as a TF (Google-format) checkpoint.

    The names are written exactly as given (no ``.ATTRIBUTES`` suffixes), so
    the result reads back with ``tf.train.load_checkpoint`` like the released
    BERT checkpoints.

    Example:
        >>> write_checkpoint("/tmp/ckpt/bert_model.ckpt",
        ...                  {"bert/pooler/dense/bias": np.zeros(4, "float32")})
    """
    if not arrays:
        raise ValueError("write_checkpoint: no variables to write")
    directory = os.path.dirname(os.path.abspath(checkpoint_path))
    os.makedirs(directory, exist_ok=True)
    names = sorted(arrays)
    import tensorflow as tf

    tensors = [tf.convert_to_tensor(np.asarray(arrays[name])) for name in names]
    tf.raw_ops.SaveV2(
        prefix=checkpoint_path,
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=tensors,
    )
    # The TF1 "checkpoint" state file lets tf.train.latest_checkpoint find it.
    with open(os.path.join(directory, "checkpoint"), "w", encoding="utf-8") as f:
        f.write(f'model_checkpoint_path: "{os.path.basename(checkpoint_path)}"\n')



def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# Checkpoint variables that are never model weights: optimizer state and step counters.
_NOT_WEIGHTS = ("adam_m", "adam_v", "Adam", "Adam_1", "global_step", "_CHECKPOINTABLE_OBJECT_GRAPH")


def _unused_variables(shapes, prefix, mapping, unused_ok=()):
    used = {f"{prefix}/{name}" if not name.startswith("cls/") else name for name in list(mapping) + list(unused_ok)}
    unused = []
    for name in sorted(shapes):
        if name in used or not name.startswith(prefix + "/") or name.split("/")[-1] in _NOT_WEIGHTS:
            continue
        if name[len(prefix) + 1:].startswith(HEAD_PREFIXES):
            continue  # a head the model was built without (e.g. an encoder from a SimBERT checkpoint)
        unused.append(name)
    return unused


def detect_model_type(checkpoint, config=None):
    """``'bert'`` or ``'roformer'``, read from a checkpoint (path or ``{name: shape}``) and its config.

    A config's ``model_type`` decides when present; otherwise a checkpoint
    whose embeddings have no position table (or whose scope is ``roformer``)
    is a RoFormer.

    Example:
        >>> detect_model_type("checkpoints/chinese_roformer-sim-char_L-12_H-768_A-12")
        'roformer'
    """
    declared = str((config or {}).get("model_type", "")).lower()
    if declared in MODELS:
        return declared
    if declared:
        raise ValueError(f"config model_type {declared!r} is not one of {MODELS}")
    if isinstance(checkpoint, dict):
        shapes, path = checkpoint, "checkpoint"
    else:
        path = resolve_checkpoint_path(checkpoint)
        shapes = checkpoint_shapes(path)
    prefix = _detect_prefix(shapes, path)
    if prefix == "roformer" or f"{prefix}/embeddings/position_embeddings" not in shapes:
        return "roformer"
    return "bert"


def _detect_prefix(shapes, path):
    for prefix in ("bert", "roformer"):
        if f"{prefix}/embeddings/word_embeddings" in shapes:
            return prefix
    roots = sorted({name.split("/")[0] for name in shapes})
    raise ValueError(
        f"checkpoint {path} has no '<prefix>/embeddings/word_embeddings' variable "
        f"(top-level scopes found: {roots}); pass prefix=... if it uses another scope"
    )


def _select_rows(value, keep_tokens, name):
    keep = np.asarray(keep_tokens)
    if keep.ndim != 1 or not np.issubdtype(keep.dtype, np.integer):
        raise ValueError(f"keep_tokens must be a flat list of integer ids, got shape {keep.shape}")
    bad = keep[(keep < 0) | (keep >= value.shape[0])]
    if bad.size:
        raise ValueError(
            f"keep_tokens index {int(bad[0])} is out of range for {name} "
            f"with {value.shape[0]} rows"
        )
    return value[keep]


def compound_rows(value, compound_tokens, name):
    """``value`` with one row appended per compound token: the (weighted) mean of the rows it lists.

    bert4keras's ``compound_tokens``: each item is a list of ids (equal
    weights) or an ``(ids, weights)`` pair; the ids index ``value`` as given
    (after ``keep_tokens``). Applies to the token embedding and the MLM
    output bias.

    Example:
        >>> compound_rows(np.eye(3, dtype="float32"), [[0, 1], ([2], [1.0])], "word_embeddings").shape
        (5, 3)
    """
    rows = []
    for item in compound_tokens:
        if isinstance(item, list):
            ids, weights = item, [1.0] * len(item)
        elif isinstance(item, tuple) and len(item) == 2 and all(isinstance(p, (list, tuple)) for p in item):
            ids, weights = item
        else:
            raise ValueError(f"compound_tokens: each item must be a list of ids or an (ids, weights) pair, "
                             f"got {item!r}")
        ids = np.asarray(ids)
        if ids.ndim != 1 or not ids.size or not np.issubdtype(ids.dtype, np.integer) or len(weights) != len(ids):
            raise ValueError(f"compound_tokens item {item!r}: needs one or more integer ids and one weight each")
        bad = ids[(ids < 0) | (ids >= value.shape[0])]
        if bad.size:
            raise ValueError(f"compound_tokens id {int(bad[0])} is out of range for {name} with {value.shape[0]} rows")
        rows.append(np.average(value[ids].astype("float64"), axis=0, weights=np.asarray(weights, "float64")))
    return np.concatenate([value, np.asarray(rows, value.dtype).reshape((-1,) + value.shape[1:])], axis=0)


def orthogonally_resize(a, new_shape, window=2):
    """Resize an array to ``new_shape`` by repeating windows of ``window`` entries and cropping, keeping its norm.

    bert4keras's resize for ``autoresize_weights``: along each axis that
    grows by a factor ``k``, the axis is cut into windows of ``window``
    entries, each repeated ``k`` times; then every axis is cropped to its
    new size and the result rescaled to the original Frobenius norm.

    Example:
        >>> orthogonally_resize(np.eye(4), (8, 8)).shape
        (8, 8)
    """
    a = np.asarray(a)
    if a.ndim != len(new_shape):
        raise ValueError(f"orthogonally_resize: shape {a.shape} and new shape {tuple(new_shape)} differ in rank")
    norm, slices = np.linalg.norm(a), []
    for i, (old, new) in enumerate(zip(a.shape, new_shape)):
        if old != new:
            k = new // old + int(new % old != 0)
            if k > 1:
                if old % window:
                    raise ValueError(f"orthogonally_resize: axis {i} of size {old} is not a multiple of the "
                                     f"window {window}")
                a = a.reshape(a.shape[:i] + (old // window, window) + a.shape[i + 1:])
                a = np.repeat(a, k, axis=i)
                a = a.reshape(a.shape[:i] + (old * k,) + a.shape[i + 2:])
        slices.append(slice(None, new))
    a = a[tuple(slices)]
    return a / np.linalg.norm(a) * norm


def _autoresize(name, value, shape, hidden_act):
    """A checkpoint array of another shape resized as bert4keras's ``autoresize_weights`` does, rescaled per role."""
    old = value.shape
    value = orthogonally_resize(value, shape)
    if "/attention/self/query/" in name or "/attention/self/key/" in name:
        value = value * (shape[-1] / old[-1]) ** 0.25  # keeps q·k/sqrt(d) on the scale it had
    elif "/intermediate/dense/" in name and hidden_act not in ("relu", "leaky_relu"):
        value = value * np.sqrt(shape[-1] / old[-1])
    elif "/intermediate/dense/" in name or ("/output/dense/" in name and "/attention/" not in name):
        value = value * np.sqrt(old[0] / shape[0])
    return value



def config_file_keys(config_path):
    """The keys of a config file, or an empty set when it cannot be read (:func:`read_config` says why).

    Example:
        >>> "hidden_size" in config_file_keys("checkpoints/simbert/bert_config.json")
        True
    """
    if config_path is None or not os.path.isfile(config_path):
        return set()
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return set()
    return set(config) if isinstance(config, dict) else set()



def checkpoint_shapes(checkpoint_path):
    """``{variable name: shape}`` of a checkpoint (a prefix, one of its files or its folder).

    Example:
        >>> checkpoint_shapes("checkpoints/simbert")["bert/embeddings/word_embeddings"]
        [13685, 768]
    """
    return _reader(resolve_checkpoint_path(checkpoint_path))[1]


def _reader(path):
    """``(reader, {name: shape})`` of the checkpoint at prefix ``path``; a damaged index is one clear error."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(path)
        return reader, reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError, IndexError) as error:
        raise ValueError(f"checkpoint {path}.index is damaged: {_first_line(error)}") from None


def _full_name(prefix, name):
    return name if name.startswith("cls/") else f"{prefix}/{name}"


def _open_weights(checkpoint_path):
    """``(where, {name: shape}, read(name) -> array)`` of a checkpoint path or of in-memory ``{name: array}``.

    In-memory weights (e.g. :class:`bert4sim.transformers_folder.ConvertedWeights`, a transformers
    folder converted in memory) are named in messages by their ``source`` attribute."""
    if isinstance(checkpoint_path, Mapping):
        where = getattr(checkpoint_path, "source", "the in-memory weights")
        return where, {name: tuple(np.shape(value)) for name, value in checkpoint_path.items()}, \
            checkpoint_path.__getitem__
    import tensorflow as tf

    path = resolve_checkpoint_path(checkpoint_path)
    reader, shapes = _reader(path)

    def read(name):
        try:
            return reader.get_tensor(name)
        except (tf.errors.OpError, ValueError, IndexError) as error:
            raise ValueError(f"checkpoint {path}: cannot read {name} ({_first_line(error)}); "
                             "its .data file is missing or truncated") from None

    return path, shapes, read


def load_weights(mapping, checkpoint_path, keep_tokens=None, allow_missing_heads=False, prefix=None,
                 allow_unused=False, ignore_invalid_weights=False, compound_tokens=None, autoresize=False,
                 hidden_act=None, unused_ok=()):
    """Assign a Google-format checkpoint to ``mapping`` (``{name without scope: Keras variable}``).

    ``checkpoint_path``: a checkpoint prefix, one of its files or its folder,
    or in-memory ``{Google variable name: array}`` (a transformers folder
    read by :func:`bert4sim.transformers_folder.read_transformers_folder`).

    ``keep_tokens`` selects vocabulary rows of the embedding and MLM bias;
    ``allow_missing_heads`` tolerates a checkpoint without the pooler or
    MLM head (those weights keep their initial values, with a warning);
    ``ignore_invalid_weights`` (bert4keras's option) keeps the initial value
    of any variable missing from the checkpoint or of another shape, with a
    warning naming each; ``prefix`` is the variable scope (detected:
    ``bert`` or ``roformer``). A checkpoint variable of that scope that no
    weight takes is an error unless ``allow_unused=True``; pooler / MLM heads
    of a model built without them, ``cls/`` training heads and optimizer
    slots are never counted. All problems are reported together, each naming
    the variable and both shapes. ``compound_tokens`` appends rows after
    ``keep_tokens`` (:func:`compound_rows`); ``autoresize`` resizes a
    variable of another shape (:func:`orthogonally_resize`, rescaled as
    bert4keras's ``autoresize_weights``; ``hidden_act`` is the model's FFN
    activation); ``unused_ok`` names variables the model leaves out on
    purpose (the segment table of a model without segments).

    Example:
        >>> load_weights(transformer.variable_mapping(), "checkpoints/simbert/bert_model.ckpt")
    """
    path, shapes, read = _open_weights(checkpoint_path)
    prefix = prefix or _detect_prefix(shapes, path)
    problems, skipped = [], []
    for name, variable in mapping.items():
        full_name = _full_name(prefix, name)
        if full_name not in shapes:
            if ignore_invalid_weights or (allow_missing_heads and name.startswith(HEAD_PREFIXES)):
                skipped.append(full_name)
                continue
            hint = (
                " (pass allow_missing_heads=True to keep a random head)"
                if name.startswith(HEAD_PREFIXES)
                else " (a RoFormer checkpoint? it has no position table: use model='roformer')"
                if name == "embeddings/position_embeddings"
                else ""
            )
            problems.append(f"variable {full_name} is missing from checkpoint {path}{hint}")
            continue
        value = np.asarray(read(full_name))
        if keep_tokens is not None and name in VOCAB_VARIABLES:
            value = _select_rows(value, keep_tokens, full_name)
        if compound_tokens is not None and name in VOCAB_VARIABLES:
            value = compound_rows(value, compound_tokens, full_name)
        if autoresize and tuple(value.shape) != tuple(variable.shape) and value.ndim == len(variable.shape):
            value = _autoresize(full_name, value, tuple(variable.shape), hidden_act)
        if tuple(value.shape) != tuple(variable.shape):
            if ignore_invalid_weights:
                skipped.append(f"{full_name} of shape {tuple(variable.shape)} (checkpoint: {tuple(value.shape)})")
                continue
            problems.append(
                f"shape mismatch for {full_name}: checkpoint has {tuple(value.shape)}, "
                f"model expects {tuple(variable.shape)}"
            )
            continue
        variable.assign(value.astype(variable.dtype))
    if not allow_unused and not ignore_invalid_weights:
        unused = _unused_variables(shapes, prefix, mapping, unused_ok)
        if unused:
            shown = ", ".join(unused[:4]) + (f" and {len(unused) - 4} more" if len(unused) > 4 else "")
            problems.append(f"checkpoint {path} holds variables this model does not use: {shown} (does the "
                            f"config match the checkpoint? pass allow_unused=True to load anyway)")
    if problems:
        raise ValueError("cannot load checkpoint:\n  " + "\n  ".join(problems))
    if skipped:
        import warnings

        warnings.warn(f"checkpoint {path} has no {', '.join(skipped)}; kept random initial values")


def save_weights(mapping, config, checkpoint_path, config_path=None, prefix="bert", vocab=None):
    """Write ``mapping``'s variables as a Google-format checkpoint (+ ``bert_config.json`` [+ ``vocab.txt``]).

    ``checkpoint_path`` is ``FOLDER/NAME`` (``NAME`` usually
    ``bert_model.ckpt``) or a folder (a path ending in a separator, or a
    checkpoint folder bert4sim saved), meaning ``FOLDER/bert_model.ckpt``.
    Each save is a new version of the folder (:mod:`bert4sim.files`): a crash
    leaves the old or the new checkpoint, and only a missing, empty or
    bert4sim checkpoint folder is saved into. ``vocab`` (``{token: id}``) is
    saved with it as ``vocab.txt``; ``config_path``, when given outside the
    folder, gets a copy of the config too. Returns the path to pass to
    bert4keras or TensorFlow (``FOLDER/NAME``).

    Example:
        >>> save_weights(transformer.variable_mapping(), transformer.config, "out/bert_model.ckpt")
        'out/bert_model.ckpt'
    """
    import keras

    arrays = {_full_name(prefix, name): keras.ops.convert_to_numpy(variable).astype("float32")
              for name, variable in mapping.items()}
    path = os.fspath(checkpoint_path)
    ours = os.path.isdir(path) and (read_marker(path) or {}).get("kind") == "checkpoint"
    folder, name = (path, "bert_model.ckpt") if path.endswith(("/", os.sep)) or ours else os.path.split(path)
    if config_path is not None and os.path.dirname(os.path.abspath(config_path)) == os.path.abspath(folder) \
            and os.path.basename(config_path) != "bert_config.json":
        raise ValueError(f"config_path {config_path}: in the checkpoint's folder the config is bert_config.json")
    with new_version(folder or ".", "checkpoint", name) as version:
        write_checkpoint(os.path.join(version, name), arrays)
        with open(os.path.join(version, "bert_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2, ensure_ascii=False)
        if vocab is not None:
            save_vocab(os.path.join(version, "vocab.txt"), vocab)
    if config_path is not None and os.path.dirname(os.path.abspath(config_path)) != os.path.abspath(folder):
        write_json_atomic(config_path, config)
    return os.path.join(folder, name)
