"""The bert4keras 0.11.5 names bert4sim does not provide, and what to use instead.

bert4sim covers bert4keras's BERT / RoFormer family with its training and
decoding utilities. Asking one of the six bert4keras-path modules
(``bert4sim.backend``, ``layers``, ``models``, ``optimizers``, ``snippets``,
``tokenizers``) for another bert4keras name raises :class:`NotProvidedError`
(an ``ImportError``, so ``from bert4sim.models import T5`` shows it) whose
message says so and names the alternative; a name bert4keras never had is a
plain ``AttributeError``. Pure Python: no TensorFlow at import.

Example:
    >>> from bert4sim.models import T5
    NotProvidedError: bert4sim does not provide bert4keras's models.T5 (...): use keras_hub ... instead
"""

_KERAS_HUB = "keras_hub.models.{0}Backbone (KerasHub) or transformers' {0} classes"
_SEQUENCE_LABELLING = ("sequence labelling is outside bert4sim: put a softmax token classifier "
                       "(keras.layers.Dense(num_labels, activation='softmax')) on the sequence output, or use "
                       "bert4keras 0.11.5 itself under TensorFlow <= 2.10")
_SPANS = ("span extraction is outside bert4sim: score spans with your own layer on the sequence output, or use "
          "bert4keras 0.11.5 itself under TensorFlow <= 2.10")

NOT_PROVIDED = {
    "backend": {
        "graph_mode_decorator": "TensorFlow 1 graph-mode plumbing with no Keras 3 counterpart: use tf.custom_gradient "
                                "or tf.recompute_grad directly",
    },
    "layers": {
        "ConditionalRandomField": _SEQUENCE_LABELLING,
        "MaximumEntropyMarkovModel": _SEQUENCE_LABELLING,
        "GlobalPointer": _SPANS,
        "EfficientGlobalPointer": _SPANS,
        "GatedAttentionUnit": "GAU-alpha is another model family: not provided (bert4keras 0.11.5 under "
                              "TensorFlow <= 2.10)",
        "RelativePositionEmbedding": "NEZHA's relative positions are not provided: RoFormer's rotary positions are "
                                     "(build_transformer_model(..., model='roformer'))",
        "RelativePositionEmbeddingT5": "T5 is not provided: " + _KERAS_HUB.format("T5"),
        "MultiHeadAttention(p_bias='typical_relative')": "NEZHA's relative positions are not provided: use "
                                                         "p_bias='rotary' (RoFormer)",
        "MultiHeadAttention(p_bias='t5_relative')": "T5's relative position bias is not provided: use "
                                                    "p_bias='rotary' (RoFormer)",
    },
    "models": {
        "ALBERT": _KERAS_HUB.format("Albert"),
        "ALBERT_Unshared": _KERAS_HUB.format("Albert"),
        "ELECTRA": _KERAS_HUB.format("Electra"),
        "GPT": "a BERT-shaped causal language model is build_transformer_model(..., application='lm'); GPT "
               "checkpoints: " + _KERAS_HUB.format("GPT2"),
        "GPT2": _KERAS_HUB.format("GPT2"),
        "GPT2_ML": "transformers' GPT-2 classes (convert the weights), or bert4keras 0.11.5 under TensorFlow <= 2.10",
        "NEZHA": "transformers' NezhaModel; for relative positions in bert4sim use model='roformer' (rotary)",
        "RoFormerV2": "RoFormer-V2 (no biases, RMS norm) is not provided: model='roformer' builds RoFormer v1; "
                      "or bert4keras 0.11.5 under TensorFlow <= 2.10",
        "T5": _KERAS_HUB.format("T5"),
        "T5_Base": _KERAS_HUB.format("T5"),
        "T5_Encoder": _KERAS_HUB.format("T5"),
        "T5_Decoder": _KERAS_HUB.format("T5"),
        "data_parallel": "tf.distribute.MirroredStrategy (build and compile the model in strategy.scope(), as "
                         "bert4keras's task_seq2seq_autotitle_multigpu.py does) or keras.distribution; "
                         "bert4sim.layers.BatchSplit / BatchConcat are provided for hand-made splits",
    },
    "optimizers": {
        "AdaFactorBase": "AdaFactor (bert4sim.optimizers.AdaFactor, on Keras 3's Adafactor)",
        "AdaFactorV1": "AdaFactor (bert4sim.optimizers.AdaFactor; bert4keras's V1 was for standalone Keras 2)",
    },
    "snippets": {
        "WebServing": "`bert4sim serve` / bert4sim.serving (FastAPI); WebServing needs TensorFlow 1's default "
                      "graph and session",
    },
    "tokenizers": {
        "SpTokenizer": "sentencepiece.SentencePieceProcessor, or keras_hub.tokenizers.SentencePieceTokenizer "
                       "(SentencePiece vocabularies belong to T5 / mT5 / CPM, which bert4sim does not build)",
    },
}

# build_transformer_model(model=...) strings of bert4keras 0.11.5 that build another family.
NOT_PROVIDED_MODELS = {
    "albert": "ALBERT", "albert_unshared": "ALBERT_Unshared", "nezha": "NEZHA", "roformer_v2": "RoFormerV2",
    "electra": "ELECTRA", "gpt": "GPT", "gpt2": "GPT2", "gpt2_ml": "GPT2_ML", "t5": "T5", "t5_encoder": "T5_Encoder",
    "t5_decoder": "T5_Decoder", "t5.1.0": "T5", "t5.1.0_encoder": "T5_Encoder", "t5.1.0_decoder": "T5_Decoder",
    "t5.1.1": "T5", "t5.1.1_encoder": "T5_Encoder", "t5.1.1_decoder": "T5_Decoder", "mt5.1.1": "T5",
    "mt5.1.1_encoder": "T5_Encoder", "mt5.1.1_decoder": "T5_Decoder",
}


class NotProvidedError(ImportError):
    """A bert4keras name that bert4sim does not provide; the message names what to use instead.

    An ``ImportError`` so that ``from bert4sim.models import T5`` shows this
    message (Python replaces an ``AttributeError`` there by its own
    "cannot import name").

    Example:
        >>> try:
        ...     from bert4sim.layers import ConditionalRandomField
        ... except NotProvidedError as error:
        ...     print(error)
    """


def refuse(module, name):
    """Raise :class:`NotProvidedError` for bert4keras's ``module.name`` (it must be in :data:`NOT_PROVIDED`).

    Example:
        >>> refuse("models", "T5")
        Traceback (most recent call last):
        NotProvidedError: bert4sim does not provide bert4keras's models.T5 ...
    """
    alternative = NOT_PROVIDED[module][name]
    raise NotProvidedError(f"bert4sim does not provide bert4keras's {module}.{name} (bert4sim covers the BERT / "
                           f"RoFormer family); instead: {alternative}", name=name)


def module_getattr(module):
    """A module ``__getattr__`` that refuses bert4keras's unprovided ``module`` names and knows no others.

    Example:
        >>> __getattr__ = module_getattr("models")    # at the end of bert4sim/models.py
    """
    table = NOT_PROVIDED[module]

    def __getattr__(name):
        if name in table:
            refuse(module, name)
        raise AttributeError(f"module 'bert4sim.{module}' has no attribute {name!r}")

    return __getattr__
