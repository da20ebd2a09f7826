"""Transformer builders (BERT, RoFormer) and Google-format checkpoint IO."""
import json
import os

import numpy as np
import tensorflow as tf


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


import keras  # noqa: E402

from bert4sim import layers as L  # noqa: E402
from bert4sim.files import atomic_folder, read_json, recover  # noqa: E402

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
        recover(os.path.dirname(os.path.abspath(config_path)))
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"config file not found: {config_path}")
        config = read_json(config_path, dict, "config file")
    config.update({k: v for k, v in overrides.items() if v is not None})
    where = f"config file {config_path}" if config_path else "the model configuration"
    missing = [key for key in REQUIRED_CONFIG_KEYS if key not in config]
    if missing:
        raise ConfigError(f"{where} lacks required key(s): {', '.join(missing)}")
    for key in REQUIRED_CONFIG_KEYS + ("max_position_embeddings", "type_vocab_size"):
        value = config.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: {key} must be a positive integer, got {value!r}")
    for key, value in CONFIG_DEFAULTS.items():
        config.setdefault(key, value)
    return config


def resolve_checkpoint_path(checkpoint_path):
    """Turn a checkpoint prefix or folder into the prefix TF reads.

    Accepts ``.../bert_model.ckpt`` (the prefix), one of its files
    (``.index`` / ``.data-*``) or the folder holding it.

    Example:
        >>> resolve_checkpoint_path("checkpoints/simbert/")  # '.../bert_model.ckpt'
    """
    path = str(checkpoint_path)
    for suffix in (".index", ".meta"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    if ".data-" in os.path.basename(path):
        path = path[: path.rindex(".data-")]
    recover(path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path)))
    if os.path.isdir(path):
        found = tf.train.latest_checkpoint(path)
        if found is None:
            candidates = sorted(f[:-6] for f in os.listdir(path) if f.endswith(".index"))
            if not candidates:
                raise FileNotFoundError(f"no TF checkpoint (*.index) in folder {path}")
            found = os.path.join(path, candidates[0])
        path = found
    if not os.path.isfile(path + ".index"):
        raise FileNotFoundError(
            f"checkpoint not found: {checkpoint_path} (expected {path}.index and its .data files)"
        )
    return path


def _get_attribute(obj, dotted):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


class Transformer:
    """Builder for BERT / RoFormer Keras models (bert4keras's builder object).

    Normally reached through :func:`build_transformer_model`; with
    ``return_keras_model=False`` that function returns this object, whose
    ``.model`` is the Keras model and whose attributes expose the layers
    (``token_embedding``, ``blocks``, ``pooler``, ...) for cached decoding
    and for pre-training heads.

    Example:
        >>> t = build_transformer_model(config_path, checkpoint_path, return_keras_model=False)
        >>> t.model.summary(); t.save_weights_as_checkpoint("/tmp/out/bert_model.ckpt")
    """

    def __init__(
        self,
        config,
        model="bert",
        application="encoder",
        with_pool=False,
        with_mlm=False,
        dropout_rate=None,
        attention_dropout_rate=None,
        name=None,
    ):
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        if application not in APPLICATIONS:
            raise ValueError(f"application must be one of {APPLICATIONS}, got {application!r}")
        if with_pool not in (False, True, "tanh", "linear", None):
            raise ValueError(f"with_pool must be False, True, 'tanh' or 'linear', got {with_pool!r}")
        if with_mlm not in (False, True, "softmax", "linear", None):
            raise ValueError(f"with_mlm must be False, True, 'softmax' or 'linear', got {with_mlm!r}")
        self.config = dict(config)
        self.model_type = model
        self.application = application
        self.with_pool = with_pool or False
        self.with_mlm = with_mlm or (application == "unilm")
        self.dropout_rate = (
            config["hidden_dropout_prob"] if dropout_rate is None else dropout_rate
        )
        self.attention_dropout_rate = (
            config["attention_probs_dropout_prob"]
            if attention_dropout_rate is None
            else attention_dropout_rate
        )
        self.name = name or model
        self.model = None
        self.token_embedding = self.segment_embedding = self.position_embedding = None
        self.embedding_norm = self.attention_mask = self.pooler = None
        self.mlm_transform = self.mlm_bias = None
        self.blocks = []

    # -- building -----------------------------------------------------------

    @property
    def initializer(self):
        """A new truncated-normal initializer with the config's ``initializer_range`` (for heads added by scripts).

        Example:
            >>> head = keras.layers.Dense(2, kernel_initializer=bert.initializer)(bert.model.output)
        """
        return keras.initializers.TruncatedNormal(stddev=self.config["initializer_range"])

    def _make_layers(self):
        c, init = self.config, self.initializer
        self.token_embedding = L.TokenEmbedding(
            c["vocab_size"], c["hidden_size"], init, name="Embedding-Token"
        )
        self.segment_embedding = keras.layers.Embedding(
            c["type_vocab_size"], c["hidden_size"], embeddings_initializer=init, name="Embedding-Segment"
        )
        if self.model_type == "bert":
            self.position_embedding = L.PositionEmbedding(
                c["max_position_embeddings"], init, name="Embedding-Position"
            )
        self.embedding_norm = keras.layers.LayerNormalization(
            epsilon=L.LAYER_NORM_EPSILON, name="Embedding-Norm"
        )
        self.embedding_dropout = keras.layers.Dropout(self.dropout_rate, name="Embedding-Dropout")
        mode = {"encoder": "padding", "unilm": "unilm", "lm": "lm"}[self.application]
        self.attention_mask = L.AttentionMask(mode, name="Attention-Mask")
        self.blocks = [
            L.TransformerBlock(
                c["num_attention_heads"],
                c["intermediate_size"],
                hidden_act=c["hidden_act"],
                dropout_rate=self.dropout_rate,
                attention_dropout_rate=self.attention_dropout_rate,
                use_rope=self.model_type == "roformer",
                kernel_initializer=init,
                name=f"Transformer-{i}",
            )
            for i in range(c["num_hidden_layers"])
        ]
        if self.with_pool:
            activation = "linear" if self.with_pool == "linear" else "tanh"
            self.pooler = L.Pooler(c["hidden_size"], activation, init, name="Pooler-Dense")
        if self.with_mlm:
            self.mlm_transform = L.MLMTransform(c["hidden_act"], init, name="MLM-Transform")
            activation = "linear" if self.with_mlm == "linear" else "softmax"
            self.mlm_bias = L.MLMBias(c["vocab_size"], activation, name="MLM-Bias")

    def embed(self, token_ids, segment_ids, start_index=0, training=None):
        """Embedding output (token + segment [+ position], LayerNorm, dropout).

        Example:
            >>> h = transformer.embed(token_ids, segment_ids, start_index=5)
        """
        x = self.token_embedding(token_ids)
        x = x + self.segment_embedding(segment_ids)
        if self.position_embedding is not None:
            x = self.position_embedding(x, start_index=start_index)
        x = self.embedding_norm(x)
        return self.embedding_dropout(x, training=training)

    def heads(self, sequence_output):
        """Apply the pooler / MLM heads; returns the outputs in bert4keras order."""
        outputs = []
        if self.pooler is not None:
            outputs.append(self.pooler(sequence_output))
        if self.mlm_transform is not None:
            logits = self.token_embedding(self.mlm_transform(sequence_output), reverse=True)
            outputs.append(self.mlm_bias(logits))
        if not outputs:
            return sequence_output
        return outputs[0] if len(outputs) == 1 else outputs

    def build(self):
        """Create the layers and the functional Keras model (``self.model``)."""
        self._make_layers()
        token_ids = keras.Input(shape=(None,), dtype="int32", name="Input-Token")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="Input-Segment")
        mask = self.attention_mask([token_ids, segment_ids])
        x = self.embed(token_ids, segment_ids)
        for block in self.blocks:
            x = block(x, attention_mask=mask)
        self.model = keras.Model([token_ids, segment_ids], self.heads(x), name=self.name)
        return self.model

    @classmethod
    def from_model(cls, model):
        """Recover the builder view of a Keras model built (or reloaded) by bert4sim.

        Example:
            >>> t = Transformer.from_model(keras.models.load_model("m.keras"))
        """
        names = {layer.name: layer for layer in model.layers}
        if "Embedding-Token" not in names or "Transformer-0" not in names:
            raise ValueError(
                f"model {model.name!r} was not built by bert4sim.build_transformer_model "
                "(no 'Embedding-Token' / 'Transformer-0' layers)"
            )
        blocks = []
        while f"Transformer-{len(blocks)}" in names:
            blocks.append(names[f"Transformer-{len(blocks)}"])
        first, token = blocks[0], names["Embedding-Token"]
        position = names.get("Embedding-Position")
        config = {
            "vocab_size": token.input_dim,
            "hidden_size": token.output_dim,
            "num_hidden_layers": len(blocks),
            "num_attention_heads": first.num_heads,
            "intermediate_size": first.intermediate_size,
            "hidden_act": first.hidden_act,
            "max_position_embeddings": position.max_length if position else 512,
            "type_vocab_size": names["Embedding-Segment"].input_dim,
            "hidden_dropout_prob": first.dropout_rate,
            "attention_probs_dropout_prob": first.attention_dropout_rate,
            "initializer_range": CONFIG_DEFAULTS["initializer_range"],
        }
        mode = names["Attention-Mask"].mode
        pooler, mlm_bias = names.get("Pooler-Dense"), names.get("MLM-Bias")
        self = cls(
            config,
            model="bert" if position is not None else "roformer",
            application={"padding": "encoder", "unilm": "unilm", "lm": "lm"}[mode],
            with_pool=False if pooler is None else pooler.activation,
            with_mlm=False if mlm_bias is None else mlm_bias.activation,
            name=model.name,
        )
        self.model = model
        self.token_embedding, self.position_embedding = token, position
        self.segment_embedding = names["Embedding-Segment"]
        self.embedding_norm = names["Embedding-Norm"]
        self.embedding_dropout = names["Embedding-Dropout"]
        self.attention_mask, self.blocks, self.pooler = names["Attention-Mask"], blocks, pooler
        self.mlm_transform, self.mlm_bias = names.get("MLM-Transform"), mlm_bias
        return self

    # -- checkpoint IO --------------------------------------------------------

    def variable_mapping(self):
        """``{checkpoint name (without prefix): Keras variable}`` for this model.

        Example:
            >>> sorted(t.variable_mapping())[:2]
            ['cls/predictions/output_bias', 'cls/predictions/transform/LayerNorm/beta']
        """
        layers = {layer.name: layer for layer in self.model.layers}
        mapping = {}
        for name, layer_name, attribute in EMBEDDING_VARIABLES + HEAD_VARIABLES:
            if layer_name in layers:
                mapping[name] = _get_attribute(layers[layer_name], attribute)
        for i, block in enumerate(self.blocks):
            for name, attribute in BLOCK_VARIABLES:
                mapping[name.format(i=i)] = _get_attribute(block, attribute)
        return mapping

    def load_weights_from_checkpoint(
        self, checkpoint_path, keep_tokens=None, allow_missing_heads=False, prefix=None, allow_unused=False,
        ignore_invalid_weights=False,
    ):
        """Load a Google-format checkpoint into the model.

        ``keep_tokens`` selects vocabulary rows of the embedding and MLM bias;
        ``allow_missing_heads`` tolerates a checkpoint without the pooler or
        MLM head (those weights keep their random initialisation, with a
        warning); ``ignore_invalid_weights`` (bert4keras's option) keeps the
        initial value of any variable missing from the checkpoint or of another
        shape, with a warning naming each; ``prefix`` is the variable scope (``"bert"`` by default,
        detected automatically when the checkpoint uses e.g. ``"roformer"``).
        A checkpoint variable of the model's scope that no weight takes (e.g.
        ``encoder/layer_3`` when the config says 2 layers) is an error unless
        ``allow_unused=True``; the pooler / MLM heads of a model built without
        them, the ``cls/`` training heads and optimizer slots are never counted.

        Example:
            >>> t.load_weights_from_checkpoint("checkpoints/simbert/bert_model.ckpt")
        """
        path = resolve_checkpoint_path(checkpoint_path)
        try:
            reader = tf.train.load_checkpoint(path)
            shapes = reader.get_variable_to_shape_map()
        except (tf.errors.OpError, ValueError, IndexError) as error:
            raise ValueError(f"checkpoint {path}.index is damaged: {_first_line(error)}") from None
        prefix = prefix or _detect_prefix(shapes, path)
        problems, skipped = [], []
        mapping = self.variable_mapping()
        for name, variable in mapping.items():
            full_name = f"{prefix}/{name}" if not name.startswith("cls/") else name
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
            try:
                value = reader.get_tensor(full_name)
            except (tf.errors.OpError, ValueError, IndexError) as error:
                raise ValueError(f"checkpoint {path}: cannot read {full_name} ({_first_line(error)}); "
                                 "its .data file is missing or truncated") from None
            if keep_tokens is not None and name in VOCAB_VARIABLES:
                value = _select_rows(value, keep_tokens, full_name)
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
            unused = _unused_variables(shapes, prefix, mapping)
            if unused:
                shown = ", ".join(unused[:4]) + (f" and {len(unused) - 4} more" if len(unused) > 4 else "")
                problems.append(f"checkpoint {path} holds variables this model does not use: {shown} (does the "
                                f"config match the checkpoint? pass allow_unused=True to load anyway)")
        if problems:
            raise ValueError("cannot load checkpoint:\n  " + "\n  ".join(problems))
        if skipped:
            import warnings

            warnings.warn(f"checkpoint {path} has no {', '.join(skipped)}; kept random initial values")
        return self

    def save_weights_as_checkpoint(self, checkpoint_path, config_path=None, prefix="bert", vocab=None):
        """Save the weights as a Google-format checkpoint (+ ``bert_config.json`` [+ ``vocab.txt``]).

        The result loads with :func:`build_transformer_model` and with
        bert4keras. ``config_path`` defaults to ``bert_config.json`` beside
        the checkpoint; ``vocab`` (a ``{token: id}`` dict) is written as
        ``vocab.txt`` beside it. The files are replaced atomically
        (:mod:`bert4sim.files`); other files of the folder are left alone.

        Example:
            >>> t.save_weights_as_checkpoint("out/bert_model.ckpt", vocab=tokenizer.token_dict)
        """
        from bert4sim.tokenizers import save_vocab

        arrays = {}
        for name, variable in self.variable_mapping().items():
            full_name = f"{prefix}/{name}" if not name.startswith("cls/") else name
            arrays[full_name] = keras.ops.convert_to_numpy(variable).astype("float32")
        folder = os.path.dirname(os.path.abspath(checkpoint_path))
        beside = config_path is None or os.path.dirname(os.path.abspath(config_path)) == folder
        with atomic_folder(folder, "checkpoint") as staging:
            write_checkpoint(os.path.join(staging, os.path.basename(checkpoint_path)), arrays)
            if beside:
                name = os.path.basename(config_path) if config_path else "bert_config.json"
                with open(os.path.join(staging, name), "w", encoding="utf-8") as f:
                    json.dump(self.config, f, indent=2, ensure_ascii=False)
            if vocab is not None:
                save_vocab(os.path.join(staging, "vocab.txt"), vocab)
        if not beside:
            from bert4sim.files import write_json_atomic

            write_json_atomic(config_path, self.config)
        return checkpoint_path


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# Checkpoint variables that are never model weights: optimizer state and step counters.
_NOT_WEIGHTS = ("adam_m", "adam_v", "Adam", "Adam_1", "global_step", "_CHECKPOINTABLE_OBJECT_GRAPH")


def _unused_variables(shapes, prefix, mapping):
    used = {f"{prefix}/{name}" if not name.startswith("cls/") else name for name in mapping}
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
        shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
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


def build_transformer_model(
    config_path=None,
    checkpoint_path=None,
    model="bert",
    application="encoder",
    with_pool=False,
    with_mlm=False,
    keep_tokens=None,
    return_keras_model=True,
    allow_missing_heads=False,
    checkpoint_prefix=None,
    allow_unused=False,
    ignore_invalid_weights=False,
    **kwargs,
):
    """Build a BERT or RoFormer model and optionally load a Google checkpoint.

    The bert4keras signature: inputs are ``[token_ids, segment_ids]``;
    outputs are the sequence output, or the pooled vector (``with_pool``),
    or MLM probabilities (``with_mlm``; ``application='unilm'`` implies it),
    or ``[pooled, mlm]``. Keyword arguments override or supply config keys
    (``vocab_size``, ``hidden_size``, ...), plus ``dropout_rate``,
    ``attention_dropout_rate``, ``name`` and ``matmul_dtype``
    (``"bfloat16"``: matrix products in bfloat16, everything else float32,
    see :func:`bert4sim.layers.set_matmul_dtype`). A checkpoint variable
    the model does not take (a layer beyond ``num_hidden_layers``) is an
    error unless ``allow_unused=True``; any other keyword is an error that
    names it. ``ignore_invalid_weights=True`` keeps the initial value of
    checkpoint variables that are missing or of another shape.

    Example:
        >>> encoder = build_transformer_model(
        ...     "simbert/bert_config.json", "simbert/bert_model.ckpt",
        ...     with_pool="linear", application="unilm", keep_tokens=keep_tokens)
        >>> tiny = build_transformer_model(vocab_size=100, hidden_size=64,
        ...     num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
    """
    builder_keys = {"dropout_rate", "attention_dropout_rate", "name"}
    builder_args = {k: kwargs.pop(k) for k in list(kwargs) if k in builder_keys}
    matmul_dtype = kwargs.pop("matmul_dtype", None)
    known = set(REQUIRED_CONFIG_KEYS) | set(CONFIG_DEFAULTS) | _config_file_keys(config_path)
    unknown = sorted(k for k in kwargs if k not in known)
    if unknown:
        raise TypeError(f"build_transformer_model got unknown keyword(s) {', '.join(map(repr, unknown))}: neither "
                        f"an option ({', '.join(sorted(builder_keys | {'matmul_dtype', 'ignore_invalid_weights'}))}, "
                        f"...) nor a config key ({', '.join(sorted(known))})")
    config = read_config(config_path, **kwargs)
    if keep_tokens is not None:
        config["vocab_size"] = len(keep_tokens)
    transformer = Transformer(
        config,
        model=model,
        application=application,
        with_pool=with_pool,
        with_mlm=with_mlm,
        **builder_args,
    )
    transformer.build()
    L.set_matmul_dtype(transformer.model, matmul_dtype)
    if checkpoint_path is not None:
        transformer.load_weights_from_checkpoint(
            checkpoint_path,
            keep_tokens=keep_tokens,
            allow_missing_heads=allow_missing_heads,
            prefix=checkpoint_prefix,
            allow_unused=allow_unused,
            ignore_invalid_weights=ignore_invalid_weights,
        )
    return transformer.model if return_keras_model else transformer


def _config_file_keys(config_path):
    if config_path is None or not os.path.isfile(config_path):
        return set()  # read_config reports the missing file
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return set()  # read_config reports the problem
    return set(config) if isinstance(config, dict) else set()


def save_checkpoint(model, checkpoint_path, config_path=None, prefix="bert", vocab=None):
    """Save a bert4sim Keras model (or builder) as a Google-format checkpoint, atomically.

    ``vocab`` (``{token: id}``) is written as ``vocab.txt`` in the same
    commit. See :meth:`Transformer.save_weights_as_checkpoint`.

    Example:
        >>> save_checkpoint(encoder, "checkpoints/demo/bert_model.ckpt", vocab=tokenizer.token_dict)
    """
    transformer = model if isinstance(model, Transformer) else Transformer.from_model(model)
    return transformer.save_weights_as_checkpoint(checkpoint_path, config_path, prefix=prefix, vocab=vocab)


# --- Sentence encoders ---


def build_sentence_encoder(transformer, pooling="mean", normalize=False, model="bert", name="sentence_encoder"):
    """A Keras model ``[token_ids, segment_ids] -> [batch, hidden]`` pooling a transformer's tokens.

    ``transformer``: a builder (``return_keras_model=False``), a bert4sim
    Keras model, or a checkpoint folder (``bert_config.json`` + a Google
    checkpoint, e.g. a RetroMAE encoder or a released BERT; absent heads are
    fine, ``model`` says bert or roformer). ``pooling``: ``'cls'``, ``'mean'``
    or ``'max'`` (padding excluded, :class:`bert4sim.layers.Pooling`), or
    ``'pooler'`` for the model's own pooler output. The encoder shares its
    weights with ``transformer``, so training it trains the transformer.

    Example:
        >>> bert = build_transformer_model(config, ckpt, return_keras_model=False)
        >>> encoder = build_sentence_encoder(bert, "mean")
        >>> encoder = build_sentence_encoder("checkpoints/retromae_demo/encoder", "cls")
    """
    if pooling not in ("pooler",) + L.Pooling.MODES:
        raise ValueError(f"pooling must be 'cls', 'mean', 'max' or 'pooler', got {pooling!r}")
    if isinstance(transformer, (str, os.PathLike)):
        folder = os.fspath(transformer)
        config_path = os.path.join(folder, "bert_config.json")
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"{config_path} not found: a checkpoint folder needs bert_config.json")
        transformer = build_transformer_model(config_path, folder, model=model, with_pool=pooling == "pooler",
                                              allow_missing_heads=True, return_keras_model=False)
    elif isinstance(transformer, keras.Model):
        transformer = Transformer.from_model(transformer)
    elif not isinstance(transformer, Transformer):
        raise TypeError(f"transformer must be a Transformer, a Keras model or a checkpoint folder, "
                        f"got {type(transformer).__name__}")
    inputs = transformer.model.inputs
    if pooling == "pooler":
        if transformer.pooler is None:
            raise ValueError("pooling='pooler' needs a model built with with_pool=True or 'linear'")
        if normalize:
            raise ValueError("normalize=True works with cls/mean/max pooling; normalise pooler vectors downstream")
        vectors = transformer.pooler.output
    else:
        vectors = L.Pooling(pooling, normalize=normalize, name="Pooling")([transformer.blocks[-1].output, inputs[0]])
    return keras.Model(inputs, vectors, name=name)


# --- RetroMAE ---


class RetroMAE:
    """RetroMAE pre-training model: a BERT/RoFormer encoder plus a one-layer enhanced decoder.

    Made by :func:`build_retromae_model`. Attributes:

    - ``encoder``: the encoder's :class:`Transformer` (with an MLM head giving
      logits); save it alone with :meth:`save_encoder`.
    - ``decoder``: the :class:`bert4sim.layers.EnhancedDecoderBlock`.
    - ``model``: Keras model, inputs ``[encoder_token_ids, segment_ids,
      decoder_token_ids, decoder_attention_mask]`` (the first three int32
      ``[B, L]``, the mask bool ``[B, L, L]``, as
      :class:`bert4sim.data.RetroMAECollator` makes them), outputs
      ``[sentence_vectors [B, H], encoder_logits [B, L, V], decoder_logits [B, L, V]]``.
    - ``backbone``: same inputs, outputs ``[sentence_vectors,
      encoder_sequence, decoder_hidden]`` before the shared MLM head (the
      trainer applies the head only where there are labels).

    Example:
        >>> retromae = build_retromae_model(vocab_size=100, hidden_size=64, num_hidden_layers=2,
        ...                                 num_attention_heads=2, intermediate_size=128,
        ...                                 return_keras_model=False)
        >>> vectors, encoder_logits, decoder_logits = retromae.model(batch_inputs)
        >>> retromae.save_encoder("out/bert_model.ckpt")
    """

    def __init__(self, encoder, decoder, model, backbone):
        self.encoder, self.decoder, self.model, self.backbone = encoder, decoder, model, backbone

    def mlm_logits(self, hidden):
        """Logits of the encoder's MLM head (shared by the decoder): transform, tied embedding, bias."""
        e = self.encoder
        return e.mlm_bias(e.token_embedding(e.mlm_transform(hidden), reverse=True))

    def save_encoder(self, checkpoint_path, config_path=None):
        """Save the encoder alone (with its MLM head) as a Google-format checkpoint.

        Example:
            >>> retromae.save_encoder("checkpoints/retromae/bert_model.ckpt")
        """
        return self.encoder.save_weights_as_checkpoint(checkpoint_path, config_path)


def build_retromae_model(
    config_path=None,
    checkpoint_path=None,
    model="bert",
    with_pool=False,
    keep_tokens=None,
    allow_missing_heads=False,
    return_keras_model=True,
    **kwargs,
):
    """Build a RetroMAE pre-training model (encoder + enhanced decoder), optionally from a checkpoint.

    The encoder comes from :func:`build_transformer_model` (same arguments,
    ``with_mlm='linear'``); its [CLS] state is the sentence vector ``h``.
    The decoder is one :class:`~bert4sim.layers.EnhancedDecoderBlock`: the
    query stream is ``h`` plus the encoder's position embeddings (RoFormer:
    ``h`` alone, the decoder's attention adds rotary positions), the content
    stream is ``h`` followed by the encoder's embedding output of the
    original tokens; the decoder's predictions go through the encoder's
    MLM head (tied to the token embedding). ``with_pool`` keeps a pooler in
    the encoder (e.g. to carry a released checkpoint's pooler through to the
    saved encoder); RetroMAE does not train it. ``allow_missing_heads=True``
    accepts a checkpoint without an MLM head (or pooler), whose weights then
    start random. Returns the Keras model, or the :class:`RetroMAE` object
    with ``return_keras_model=False``.

    Example:
        >>> retromae = build_retromae_model("bert_config.json", "bert_model.ckpt",
        ...                                 keep_tokens=keep_tokens, return_keras_model=False)
    """
    encoder = build_transformer_model(
        config_path,
        checkpoint_path,
        model=model,
        with_pool=with_pool,
        with_mlm="linear",
        keep_tokens=keep_tokens,
        allow_missing_heads=allow_missing_heads,
        return_keras_model=False,
        **kwargs,
    )
    c = encoder.config
    decoder = L.EnhancedDecoderBlock(
        c["num_attention_heads"],
        c["intermediate_size"],
        hidden_act=c["hidden_act"],
        dropout_rate=encoder.dropout_rate,
        attention_dropout_rate=encoder.attention_dropout_rate,
        use_rope=model == "roformer",
        kernel_initializer=encoder.initializer,
        name="RetroMAE-Decoder",
    )
    token_ids, segment_ids = encoder.model.inputs
    decoder_token_ids = keras.Input(shape=(None,), dtype="int32", name="Input-Decoder-Token")
    decoder_mask = keras.Input(shape=(None, None), dtype="bool", name="Input-Decoder-Mask")
    sequence = encoder.blocks[-1].output
    sentence = L.Pooling("cls", name="RetroMAE-Sentence")([sequence, token_ids])
    embeddings = encoder.embed(decoder_token_ids, segment_ids)
    query, content = L.RetroMAEStreams(name="RetroMAE-Streams")([sequence, embeddings])
    if encoder.position_embedding is not None:
        query = encoder.position_embedding(query)
    hidden = decoder([query, content], attention_mask=decoder_mask)
    inputs = [token_ids, segment_ids, decoder_token_ids, decoder_mask]
    backbone = keras.Model(inputs, [sentence, sequence, hidden], name="retromae_backbone")
    retromae = RetroMAE(encoder, decoder, None, backbone)
    encoder_logits = encoder.model.outputs[-1]
    retromae.model = keras.Model(
        inputs, [sentence, encoder_logits, retromae.mlm_logits(hidden)], name="retromae"
    )
    return retromae.model if return_keras_model else retromae
