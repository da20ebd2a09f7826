"""Transformer builders (BERT, RoFormer; encoder / unilm / lm) and their heads, bert4keras's API.

:func:`build_transformer_model` keeps bert4keras's signature; the builder
object it returns with ``return_keras_model=False`` (:class:`Transformer`)
exposes the layers for cached decoding and training heads, and reads /
writes Google-format checkpoints through :mod:`bert4sim.checkpoints`.

Example:
    >>> bert = build_transformer_model("simbert/bert_config.json", "simbert/bert_model.ckpt",
    ...                                with_pool="linear", application="unilm", return_keras_model=False)
    >>> encoder = keras.Model(bert.model.inputs, bert.model.outputs[0])
"""
import os

import keras

from bert4sim import checkpoints, layers as L
from bert4sim.checkpoints import (APPLICATIONS, BLOCK_VARIABLES, CONFIG_DEFAULTS, EMBEDDING_VARIABLES,
                                  HEAD_VARIABLES, MODELS, REQUIRED_CONFIG_KEYS, ConfigError, read_config)
from bert4sim.heads import MLMBias, MLMTransform, Pooler
from bert4sim.precision import set_matmul_dtype
from bert4sim.tokenizers import check_token_dict
from bert4sim.transformers_folder import is_transformers_folder, read_transformers_folder

__all__ = ["ConfigError", "Transformer", "build_transformer_model", "save_checkpoint"]


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
            self.pooler = Pooler(c["hidden_size"], activation, init, name="Pooler-Dense")
        if self.with_mlm:
            self.mlm_transform = MLMTransform(c["hidden_act"], init, name="MLM-Transform")
            activation = "linear" if self.with_mlm == "linear" else "softmax"
            self.mlm_bias = MLMBias(c["vocab_size"], activation, name="MLM-Bias")

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

    def mlm_logits(self, hidden, kernels=None, logits_only=True):
        """The MLM head's float32 logits of ``hidden``: transform, tied token embedding, output bias.

        The one place the head is chained, for every caller: symbolic (building
        models) or eager / traced. ``kernels`` (a
        :class:`bert4sim.precision.KernelCopies`) supplies kernels cast once for
        many calls; ``logits_only=False`` gives what the model outputs (the
        softmax of a ``with_mlm='softmax'`` head).

        Example:
            >>> logits = bert.mlm_logits(bert.blocks[-1].output)   # [batch, length, vocab]
        """
        hidden = self.mlm_transform(hidden, kernels=kernels)
        return self.mlm_bias(self.token_embedding(hidden, reverse=True, kernels=kernels), logits_only=logits_only)

    def heads(self, sequence_output):
        """Apply the pooler / MLM heads; returns the outputs in bert4keras order."""
        outputs = []
        if self.pooler is not None:
            outputs.append(self.pooler(sequence_output))
        if self.mlm_transform is not None:
            outputs.append(self.mlm_logits(sequence_output, logits_only=False))
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
        if "Pooling" in names:  # a sentence encoder (build_sentence_encoder): its pooling goes into bert_config.json
            config["pooling"] = names["Pooling"].mode
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
        """Load a Google-format checkpoint into the model (options: :func:`bert4sim.checkpoints.load_weights`).

        Example:
            >>> t.load_weights_from_checkpoint("checkpoints/simbert/bert_model.ckpt")
        """
        checkpoints.load_weights(self.variable_mapping(), checkpoint_path, keep_tokens, allow_missing_heads,
                                 prefix, allow_unused, ignore_invalid_weights)
        return self

    def save_weights_as_checkpoint(self, checkpoint_path, config_path=None, prefix="bert", vocab=None):
        """Save the weights as a Google-format checkpoint (+ ``bert_config.json`` [+ ``vocab.txt``]).

        The result loads with :func:`build_transformer_model` and with
        bert4keras; see :func:`bert4sim.checkpoints.save_weights`.

        Example:
            >>> t.save_weights_as_checkpoint("out/bert_model.ckpt", vocab=tokenizer.token_dict)
        """
        return checkpoints.save_weights(self.variable_mapping(), self.config, checkpoint_path, config_path,
                                        prefix, vocab)


def build_transformer_model(
    config_path=None,
    checkpoint_path=None,
    model=None,
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

    ``model``: ``'bert'`` or ``'roformer'``; by default the config's
    ``model_type``, else ``'bert'`` (bert4keras's default). A transformers or
    sentence-transformers folder (``config.json`` + ``model.safetensors`` or
    ``pytorch_model.bin``, BERT or RoFormer) may stand for ``config_path``
    and/or ``checkpoint_path``: it is converted in memory
    (:func:`bert4sim.transformers_folder.read_transformers_folder`), and given
    as ``config_path`` alone it supplies the weights too.

    Example:
        >>> encoder = build_transformer_model(
        ...     "simbert/bert_config.json", "simbert/bert_model.ckpt",
        ...     with_pool="linear", application="unilm", keep_tokens=keep_tokens)
        >>> roformer = build_transformer_model("models/roformer_chinese_sim_char_base", with_pool="linear")
        >>> tiny = build_transformer_model(vocab_size=100, hidden_size=64,
        ...     num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
    """
    builder_keys = {"dropout_rate", "attention_dropout_rate", "name"}
    builder_args = {k: kwargs.pop(k) for k in list(kwargs) if k in builder_keys}
    matmul_dtype = kwargs.pop("matmul_dtype", None)
    folder_config, config_path, checkpoint_path = _transformers_sources(config_path, checkpoint_path)
    kwargs = {**folder_config, **kwargs}
    known = (set(REQUIRED_CONFIG_KEYS) | set(CONFIG_DEFAULTS) | checkpoints.config_file_keys(config_path)
             | set(folder_config))
    unknown = sorted(k for k in kwargs if k not in known)
    if unknown:
        raise TypeError(f"build_transformer_model got unknown keyword(s) {', '.join(map(repr, unknown))}: neither "
                        f"an option ({', '.join(sorted(builder_keys | {'matmul_dtype', 'ignore_invalid_weights'}))}, "
                        f"...) nor a config key ({', '.join(sorted(known))})")
    config = read_config(config_path, **kwargs)
    if keep_tokens is not None:
        config["vocab_size"] = len(keep_tokens)
    if model is None:
        model = config.get("model_type") if config.get("model_type") in MODELS else "bert"
    transformer = Transformer(
        config,
        model=model,
        application=application,
        with_pool=with_pool,
        with_mlm=with_mlm,
        **builder_args,
    )
    transformer.build()
    set_matmul_dtype(transformer.model, matmul_dtype)
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




def _transformers_sources(config_path, checkpoint_path):
    """Read transformers folders given as config / checkpoint: ``(their config, config_path, checkpoint_path)``."""
    config, read = {}, {}

    def converted(folder):
        key = os.path.abspath(folder)
        if key not in read:
            read[key] = read_transformers_folder(folder)
        return read[key]

    if config_path is not None and is_transformers_folder(config_path):
        config, weights, _ = converted(config_path)
        if checkpoint_path is None:
            checkpoint_path = weights
        config_path = None
    if isinstance(checkpoint_path, (str, os.PathLike)) and is_transformers_folder(checkpoint_path):
        folder_config, checkpoint_path, _ = converted(checkpoint_path)
        if not config and config_path is None:
            config = folder_config
    return config, config_path, checkpoint_path


def save_checkpoint(model, checkpoint_path, config_path=None, prefix="bert", vocab=None):
    """Save a bert4sim Keras model (or builder) as a Google-format checkpoint, atomically.

    ``vocab`` (``{token: id}``) is written as ``vocab.txt`` in the same
    commit. See :meth:`Transformer.save_weights_as_checkpoint`.

    Example:
        >>> save_checkpoint(encoder, "checkpoints/demo/bert_model.ckpt", vocab=tokenizer.token_dict)
    """
    if not isinstance(model, (Transformer, keras.Model)):
        raise TypeError(f"model must be a bert4sim Keras model or builder (build_transformer_model), "
                        f"got {type(model).__name__}")
    if vocab is not None:
        check_token_dict(vocab)  # before anything is written
    transformer = model if isinstance(model, Transformer) else Transformer.from_model(model)
    return transformer.save_weights_as_checkpoint(checkpoint_path, config_path, prefix=prefix, vocab=vocab)


# --- Sentence encoders ---
