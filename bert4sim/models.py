"""``build_transformer_model`` and bert4keras's model classes (BERT, RoFormer, LM / UniLM masks), for BERT-family models.

:func:`build_transformer_model` keeps bert4keras 0.11.5's signature and
keywords; it builds a :class:`bert4sim.builder.Transformer` (BERT or
RoFormer; encoder, ``unilm`` or ``lm``) and loads a Google-format checkpoint
through :mod:`bert4sim.checkpoints`. :class:`BERT`, :class:`RoFormer`,
:class:`LM_Mask`, :class:`UniLM_Mask` and the ``extend_with_*`` functions are
bert4keras's names for the same builder; other bert4keras models (ALBERT,
NEZHA, GPT, T5, ...) raise :class:`bert4sim.unprovided.NotProvidedError`
naming an alternative.

Example:
    >>> bert = build_transformer_model("simbert/bert_config.json", "simbert/bert_model.ckpt",
    ...                                with_pool="linear", application="unilm", return_keras_model=False)
    >>> encoder = keras.Model(bert.model.inputs, bert.model.outputs[0])
"""
import inspect
import os

import keras

from bert4sim import checkpoints, unprovided
from bert4sim.builder import BUILD_KEYWORDS, Transformer
from bert4sim.checkpoints import CONFIG_DEFAULTS, REQUIRED_CONFIG_KEYS, ConfigError, read_config
from bert4sim.precision import set_matmul_dtype
from bert4sim.tokenizers import check_token_dict
from bert4sim.transformers_folder import is_transformers_folder, read_transformers_folder

__all__ = ["BERT", "ConfigError", "LM_Mask", "RoFormer", "Transformer", "UniLM_Mask", "build_transformer_model",
           "extend_with_language_model", "extend_with_unified_language_model", "save_checkpoint"]


class BERT(Transformer):
    """bert4keras's ``BERT`` builder class: :class:`Transformer` building a BERT (learned positions).

    Example:
        >>> bert = BERT(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        ...             intermediate_size=128, hidden_act="gelu", with_mlm=True)
        >>> bert.build(); bert.model.summary()
    """

    model_type = "bert"


class RoFormer(Transformer):
    """bert4keras's ``RoFormer`` builder class: :class:`Transformer` building a RoFormer (rotary positions).

    Example:
        >>> roformer = RoFormer(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        ...                     intermediate_size=128, hidden_act="gelu")
    """

    model_type = "roformer"


class LM_Mask:  # noqa: N801  (bert4keras's name)
    """bert4keras's mixin for a causal (language-model) attention mask: ``class GPTLike(LM_Mask, BERT)``.

    Example:
        >>> class CausalBERT(LM_Mask, BERT): pass
    """

    application = "lm"


class UniLM_Mask:  # noqa: N801
    """bert4keras's mixin for UniLM's seq2seq attention mask (segment 0 bidirectional, segment 1 causal).

    Example:
        >>> class Seq2SeqBERT(UniLM_Mask, BERT): pass
    """

    application = "unilm"


def _extend(base, mixin, name):
    if not (isinstance(base, type) and issubclass(base, Transformer)):
        raise TypeError(f"{name} extends a bert4sim builder class (BERT, RoFormer or a subclass), got {base!r}")
    return type(f"{mixin.__name__.replace('_Mask', '')}{base.__name__}", (mixin, base), {})


def extend_with_language_model(BaseModel):  # noqa: N803
    """bert4keras's factory: ``BaseModel`` with a causal attention mask and its MLM head (``application='lm'``).

    Example:
        >>> LanguageModel = extend_with_language_model(BERT)
    """
    return _extend(BaseModel, LM_Mask, "extend_with_language_model")


def extend_with_unified_language_model(BaseModel):  # noqa: N803
    """bert4keras's factory: ``BaseModel`` with UniLM's seq2seq mask and its MLM head (``application='unilm'``).

    Example:
        >>> UnifiedLanguageModel = extend_with_unified_language_model(RoFormer)
    """
    return _extend(BaseModel, UniLM_Mask, "extend_with_unified_language_model")


MODEL_CLASSES = {"bert": BERT, "roberta": BERT, "roformer": RoFormer}
_BUILDER_KEYWORDS = set(inspect.signature(Transformer.__init__).parameters) - {"self", "config", "model",
                                                                               "application"}
# config keys bert4sim reads when present: the model type (convert writes it), transformers' LayerNorm epsilon
_OPTIONAL_CONFIG_KEYS = ("model_type", "layer_norm_eps")
# bert4keras's keyword names that stand for config keys: when not given, they come from the config
_ALIASES = {"max_position": "max_position_embeddings", "segment_vocab_size": "type_vocab_size",
            "dropout_rate": "hidden_dropout_prob", "attention_dropout_rate": "attention_probs_dropout_prob"}


def _model_class(model, application):
    if isinstance(model, str):
        key = model.lower()
        if key not in MODEL_CLASSES:
            message = f"model must be one of {sorted(MODEL_CLASSES)} (or a builder class), got {model!r}"
            if key in unprovided.NOT_PROVIDED_MODELS:
                name = unprovided.NOT_PROVIDED_MODELS[key]
                message += (f": bert4sim does not provide bert4keras's {name}; instead: "
                            f"{unprovided.NOT_PROVIDED['models'][name]}")
            raise ValueError(message)
        cls = MODEL_CLASSES[key]
    elif isinstance(model, type) and issubclass(model, Transformer):
        cls = model
    else:
        raise TypeError(f"model must be a name or a bert4sim builder class (BERT, RoFormer, ...), got {model!r}")
    application = str(application).lower()
    if application not in checkpoints.APPLICATIONS:
        raise ValueError(f"application must be one of {checkpoints.APPLICATIONS}, got {application!r}")
    if application == "lm":
        return extend_with_language_model(cls)
    if application == "unilm":
        return extend_with_unified_language_model(cls)
    return cls


def build_transformer_model(
    config_path=None,
    checkpoint_path=None,
    model=None,
    application="encoder",
    return_keras_model=True,
    allow_missing_heads=False,
    checkpoint_prefix=None,
    allow_unused=False,
    matmul_dtype=None,
    **kwargs,
):
    """Build a BERT or RoFormer model and optionally load a Google checkpoint (bert4keras's function).

    Inputs are ``[token_ids, segment_ids]`` (fewer with
    ``segment_vocab_size=0``, one more with ``custom_position_ids``, then
    ``additional_input_layers``); outputs are the sequence output, or the
    pooled vector (``with_pool``; the NSP probabilities with ``with_nsp``),
    or MLM probabilities (``with_mlm``; ``application='unilm'`` and ``'lm'``
    always have it, as in bert4keras), or ``[pooled, mlm]``; sequence and
    MLM outputs carry the padding mask as a Keras mask. Keyword arguments
    override or supply config keys (``vocab_size``, ``num_hidden_layers``,
    ...) and take every option of bert4keras's BERT / RoFormer builders
    (:class:`bert4sim.builder.Transformer`: ``keep_tokens``,
    ``compound_tokens``, ``embedding_size``, ``custom_position_ids``,
    ``hierarchical_position``, ``residual_attention_scores``, ``prefix``,
    ...) and of its ``build`` (``layer_norm_cond``,
    ``layer_norm_cond_hidden_size``, ``layer_norm_cond_hidden_act``,
    ``additional_input_layers``); ``model`` may also be a builder class.
    bert4sim's own: ``matmul_dtype`` (``"bfloat16"``: matrix products in
    bfloat16, see :func:`bert4sim.precision.set_matmul_dtype`),
    ``allow_missing_heads``, ``checkpoint_prefix`` and ``allow_unused`` (a
    checkpoint variable the model does not take is an error without it,
    unless ``num_hidden_layers`` is given as a keyword: then the checkpoint's
    first layers are loaded, as bert4keras does).
    ``ignore_invalid_weights=True`` keeps the initial value of checkpoint
    variables that are missing or of another shape. Any other keyword is an
    error that names it.

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
    build_args = {k: kwargs.pop(k) for k in BUILD_KEYWORDS if k in kwargs}
    folder_config, config_path, checkpoint_path = _transformers_sources(config_path, checkpoint_path)
    kwargs = {**folder_config, **kwargs}
    known = (set(REQUIRED_CONFIG_KEYS) | set(CONFIG_DEFAULTS) | set(_OPTIONAL_CONFIG_KEYS)
             | checkpoints.config_file_keys(config_path) | set(folder_config))
    unknown = sorted(k for k in kwargs if k not in known and k not in _BUILDER_KEYWORDS)
    if unknown:
        raise TypeError(f"build_transformer_model got unknown keyword(s) {', '.join(map(repr, unknown))}: neither "
                        f"an option ({', '.join(sorted(_BUILDER_KEYWORDS | set(BUILD_KEYWORDS)))}, matmul_dtype, "
                        f"...) nor a config key ({', '.join(sorted(known))})")
    options = {k: kwargs.pop(k) for k in list(kwargs) if k in _BUILDER_KEYWORDS and k not in known}
    # fewer layers asked for by keyword: loading the checkpoint's first ones is the point (bert4keras's idiom)
    allow_unused = allow_unused or "num_hidden_layers" in kwargs
    config = read_config(config_path, **kwargs)
    for option, key in _ALIASES.items():
        if options.get(option) is None and key in config:
            options[option] = config[key]
    if model is None:  # the config's model_type (a converted transformers folder has one), else bert4keras's default
        model = config.get("model_type") if config.get("model_type") in MODEL_CLASSES else "bert"
    builder = _model_class(model, application)(**config, **options)
    builder.build(**build_args)
    set_matmul_dtype(builder.model, matmul_dtype)
    if checkpoint_path is not None:
        builder.load_weights_from_checkpoint(checkpoint_path, allow_missing_heads=allow_missing_heads,
                                             prefix=checkpoint_prefix, allow_unused=allow_unused)
    return builder.model if return_keras_model else builder


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


__getattr__ = unprovided.module_getattr("models")
