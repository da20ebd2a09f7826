"""Sentence-BERT: a siamese encoder with pooling, trained with classification, regression, triplet,
multiple-negatives-ranking or CoSENT objectives.

:func:`build_sentence_encoder` pools a transformer's token vectors into one
vector per sentence; :func:`sbert_training_model` runs every text of a pair /
triplet through that one encoder and adds the objective's loss
(:class:`SentenceBERTLoss`, formulas in :mod:`bert4sim.losses`); targets, where
the objective has them, are the model's last input.

Example:
    >>> encoder = build_sentence_encoder(build_transformer_model(config, ckpt, return_keras_model=False), "mean")
    >>> model = sbert_training_model(encoder, "cosent")    # inputs: ids_a, segs_a, ids_b, segs_b, scores
    >>> model.compile(optimizer=make_optimizer(2e-5))
    >>> model.fit([ids_a, segs_a, ids_b, segs_b, scores], batch_size=32, epochs=1)
"""
import os

import keras
from keras import ops

from bert4sim.heads import Pooling
from bert4sim.loss_layer import Loss
from bert4sim.losses import cosent_loss, cosine_regression_loss, multiple_negatives_ranking_loss, triplet_loss
from bert4sim.models import Transformer, build_transformer_model

OBJECTIVES = ("classification", "regression", "triplet", "mnrl", "cosent")
# How many texts each objective takes (None: mnrl, 2 or more), and whether it has targets.
TEXTS = {"classification": (2,), "regression": (2,), "triplet": (3,), "mnrl": None, "cosent": (2,)}
WITH_TARGETS = ("classification", "regression", "cosent")


def build_sentence_encoder(transformer, pooling="mean", normalize=False, model="bert", name="sentence_encoder"):
    """A Keras model ``[token_ids, segment_ids] -> [batch, hidden]`` pooling a transformer's tokens.

    ``transformer``: a builder (``return_keras_model=False``), a bert4sim
    Keras model, or a checkpoint folder (``bert_config.json`` + a Google
    checkpoint, e.g. a RetroMAE encoder or a released BERT; absent heads are
    fine, ``model`` says bert or roformer). ``pooling``: ``'cls'``, ``'mean'``
    or ``'max'`` (padding excluded, :class:`bert4sim.heads.Pooling`), or
    ``'pooler'`` for the model's own pooler output. The encoder shares its
    weights with ``transformer``, so training it trains the transformer, and
    the builder's config records the pooling: ``save_checkpoint(transformer,
    ...)`` writes it into ``bert_config.json``, where
    ``SimilarityModel.from_checkpoint`` picks it.

    Example:
        >>> bert = build_transformer_model(config, ckpt, return_keras_model=False)
        >>> encoder = build_sentence_encoder(bert, "mean")
        >>> encoder = build_sentence_encoder("checkpoints/retromae_demo/encoder", "cls")
    """
    if pooling not in ("pooler",) + Pooling.MODES:
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
        vectors = Pooling(pooling, normalize=normalize, name="Pooling")([transformer.blocks[-1].output, inputs[0]])
    transformer.config["pooling"] = pooling
    return keras.Model(inputs, vectors, name=name)


# --- RetroMAE ---


def softmax_classification_logits(classifier, u, v):
    """Sentence-BERT classification head: ``classifier([u; v; |u − v|])`` (the paper's default concatenation).

    Example:
        >>> logits = softmax_classification_logits(keras.layers.Dense(3), u, v)
    """
    return classifier(ops.concatenate([u, v, ops.abs(u - v)], axis=-1))


@keras.saving.register_keras_serializable(package="bert4sim")
class SentenceBERTLoss(Loss):
    """A Sentence-BERT objective as a loss layer over sentence vectors (and targets).

    Inputs by objective: ``regression`` / ``cosent``: ``[u, v, targets]``;
    ``triplet``: ``[anchor, positive, negative]``; ``mnrl``: ``[u, v,
    negative_1, ..., negative_k]``; ``classification``: ``[targets, logits]``
    (+ anything to pass through, picked by ``output_axis``).

    Example:
        >>> u = SentenceBERTLoss("cosent", output_axis=0)([u, v, scores])
    """

    def __init__(self, objective, margin=1.0, scale=20.0, **kwargs):
        super().__init__(**kwargs)
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.objective, self.margin, self.scale = objective, margin, scale

    def compute_loss(self, inputs, mask=None):
        if self.objective == "classification":
            targets, logits = inputs[:2]
            return keras.losses.sparse_categorical_crossentropy(ops.cast(targets, "int32"),
                                                                ops.cast(logits, "float32"), from_logits=True)
        if self.objective == "regression":
            return cosine_regression_loss(*inputs)
        if self.objective == "cosent":
            return cosent_loss(*inputs, scale=self.scale)
        if self.objective == "triplet":
            return triplet_loss(*inputs, margin=self.margin)
        return multiple_negatives_ranking_loss(inputs[0], inputs[1], list(inputs[2:]), self.scale)

    def get_config(self):
        return {**super().get_config(), "objective": self.objective, "margin": self.margin, "scale": self.scale}


def sbert_training_model(encoder, objective, texts=None, num_labels=2, margin=1.0, scale=20.0):
    """Siamese / triplet training model of one shared sentence encoder with a Sentence-BERT objective.

    ``encoder`` maps ``[token_ids, segment_ids]`` to vectors (e.g.
    :func:`build_sentence_encoder`); every text goes through it. Inputs:
    ``token_ids, segment_ids`` of each of the ``texts`` texts, then, for the
    objectives with targets, the targets. ``objective``:

    - ``'classification'``: texts (a, b), targets = integer labels; softmax
      cross-entropy over W·[u; v; |u−v|] (``num_labels`` classes, the layer
      ``"SBERT-Classifier"``).
    - ``'regression'``: texts (a, b), targets = scores in [0, 1]; MSE of the cosine.
    - ``'triplet'``: texts (anchor, positive, negative); Euclidean, ``margin`` 1.
    - ``'mnrl'``: texts (a, b) of positive pairs, or (a, b, negative_1, ...,
      negative_k) with ``texts=2+k``; in-batch negatives plus k hard negatives
      per pair, ``scale`` 20.
    - ``'cosent'``: texts (a, b), targets = scores; CoSENT, ``scale`` 20.

    Output: the first text's vectors. Compile with an optimizer only.

    Example:
        >>> model = sbert_training_model(encoder, "mnrl", texts=3)   # a, b, one hard negative
        >>> model.compile(optimizer=make_optimizer(2e-5)); model.fit(dataset, epochs=1)
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    allowed = TEXTS[objective]
    texts = (allowed[0] if allowed else 2) if texts is None else texts
    if allowed is None:
        valid, wanted = isinstance(texts, int) and texts >= 2, "an even number (at least 4) of"
    else:
        valid, wanted = texts in allowed, " or ".join(str(2 * n) for n in allowed)
    if not valid:
        raise ValueError(f"objective {objective!r} takes {wanted} input arrays (token_ids, segment_ids per "
                         f"text), got {2 * texts if isinstance(texts, int) else texts!r}")
    inputs, vectors = [], []
    for text in range(texts):
        pair = [keras.Input((None,), dtype="int32", name=f"Input-Token-{text}"),
                keras.Input((None,), dtype="int32", name=f"Input-Segment-{text}")]
        inputs += pair
        vectors.append(encoder(pair))
    if objective == "classification" and num_labels < 2:
        raise ValueError(f"num_labels must be at least 2, got {num_labels}")
    if objective not in WITH_TARGETS:
        loss_inputs, output_axis = vectors, 0
    else:
        targets = keras.Input((), dtype="int32" if objective == "classification" else "float32",
                              name="Input-Targets")
        inputs.append(targets)
        if objective == "classification":
            classifier = keras.layers.Dense(num_labels, name="SBERT-Classifier")
            logits = softmax_classification_logits(classifier, vectors[0], vectors[1])
            loss_inputs, output_axis = [targets, logits, vectors[0]], 2
        else:
            loss_inputs, output_axis = vectors + [targets], 0
    loss = SentenceBERTLoss(objective, margin, scale, output_axis=output_axis, name="SBERT-Loss")
    return keras.Model(inputs, loss(loss_inputs), name="sbert_training")
