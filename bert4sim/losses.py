"""Losses: SimBERT's seq2seq + in-batch similarity, RoFormer-Sim's distillation, Sentence-BERT, RetroMAE.

Plain functions of tensors (``keras.ops``); ``SimBERTLoss`` and
``RetroMAELoss``, :class:`bert4sim.layers.Loss` layers that
:func:`simbert_training_model` / :func:`retromae_training_model` put into
a model the bert4keras way; and Trainer models (``SimBERTTrainer``, ...)
whose ``compute_loss`` calls the same functions. Either way training is
ordinary ``model.fit`` under any ``tf.distribute`` strategy.
"""
import keras
import numpy as np
from keras import ops

from bert4sim.layers import Loss

# --- SimBERT ---


def seq2seq_loss(token_ids, segment_ids, predictions, from_logits=True):
    """UniLM generation loss: predict token t+1 from position t, on segment-1 tokens only.

    ``predictions`` are ``[batch, length, vocab]`` logits (or probabilities
    with ``from_logits=False``). Returns ``sum(CE * mask) / sum(mask)`` with
    ``mask = segment_ids[:, 1:]``, as SimBERT's script computes it.

    Example:
        >>> loss = seq2seq_loss(token_ids, segment_ids, mlm_logits)
    """
    return token_crossentropy(token_ids[:, 1:], predictions[:, :-1], segment_ids[:, 1:], from_logits)


def token_crossentropy(targets, predictions, weights=None, from_logits=True):
    """``sum(CE * weights) / sum(weights)`` over token predictions (the mean CE without ``weights``).

    Example:
        >>> token_crossentropy(target_ids, logits_at_predicted_positions)
    """
    predictions = ops.cast(predictions, "float32")
    cross_entropy = keras.losses.sparse_categorical_crossentropy(ops.cast(targets, "int32"), predictions,
                                                                 from_logits=from_logits)
    if weights is None:
        return ops.mean(cross_entropy)
    weights = ops.cast(weights, "float32")
    return ops.sum(cross_entropy * weights) / ops.maximum(ops.sum(weights), 1.0)


def simbert_loss_parts(targets, logits, vectors, weights=None, similarity_scale=30.0, teacher_vectors=None,
                       distillation_weight=100.0):
    """SimBERT's two losses as ``(generation, similarity)``.

    Generation: :func:`token_crossentropy` of ``logits`` (at the predicted
    positions, or at all positions with ``weights``). Similarity:
    :func:`similarity_loss` of ``vectors``, or with ``teacher_vectors``
    RoFormer-Sim's :func:`distillation_loss` (the teacher gets no gradient).

    Example:
        >>> generation, similarity = simbert_loss_parts(target_ids, logits, pooled, similarity_scale=20)
    """
    generation = token_crossentropy(targets, logits, weights)
    if teacher_vectors is not None:
        return generation, distillation_loss(ops.stop_gradient(teacher_vectors), vectors, distillation_weight)
    return generation, similarity_loss(vectors, similarity_scale)


def paired_labels(batch_size):
    """Index of each row's partner: rows (0, 1), (2, 3), ... are the two orders of one pair."""
    rows = ops.arange(batch_size)
    return rows + 1 - (rows % 2) * 2


def similarity_loss(vectors, scale=30.0):
    """SimBERT's in-batch contrastive loss on sentence vectors.

    Vectors are l2-normalised; the cosine matrix has its diagonal removed
    (−1e12) and is multiplied by ``scale``; row i's label is its partner
    (i+1 for even i, i−1 for odd i); softmax cross-entropy, averaged.

    Example:
        >>> loss = similarity_loss(pooled, scale=30)
    """
    vectors = ops.cast(vectors, "float32")
    vectors = vectors / ops.maximum(ops.norm(vectors, axis=1, keepdims=True), 1e-12)
    batch = ops.shape(vectors)[0]
    similarities = ops.matmul(vectors, ops.transpose(vectors))
    similarities = (similarities - ops.eye(batch) * 1e12) * scale
    cross_entropy = keras.losses.sparse_categorical_crossentropy(paired_labels(batch), similarities, from_logits=True)
    return ops.mean(cross_entropy)


def distillation_loss(teacher_vectors, student_vectors, weight=100.0):
    """RoFormer-Sim's retrieval distillation: λ/n² Σᵢⱼ (cos(uᵢ,uⱼ) − cos(vᵢ,vⱼ))².

    ``teacher_vectors`` u come from a frozen teacher (e.g. SimBERT),
    ``student_vectors`` v from the model being trained; λ = ``weight``.

    Example:
        >>> loss = distillation_loss(teacher(batch_teacher_inputs), pooled, weight=100)
    """

    def cosines(x):
        x = ops.cast(x, "float32")
        x = x / ops.maximum(ops.norm(x, axis=1, keepdims=True), 1e-12)
        return ops.matmul(x, ops.transpose(x))

    return weight * ops.mean(ops.square(cosines(teacher_vectors) - cosines(student_vectors)))


class SimBERTTrainer(keras.Model):
    """Trains a SimBERT / RoFormer-Sim model: seq2seq loss + similarity (or distillation) loss.

    Built from the builder of a ``unilm`` model with a pooler
    (``build_transformer_model(..., application='unilm', with_pool='linear',
    return_keras_model=False)``). Inputs are ``(token_ids, segment_ids)``
    batches whose rows come in pairs (both orders of a similar pair); with a
    ``teacher`` encoder, inputs are ``(token_ids, segment_ids,
    teacher_token_ids, teacher_segment_ids)`` and the similarity loss is
    replaced by the distillation loss (RoFormer-Sim stage 2). The MLM head is
    only applied to the positions that are predicted, which is where the
    training time goes with large vocabularies; the loss equals the full
    computation. ``fit`` logs ``seq2seq_loss`` and ``similarity_loss`` (``distillation_loss``
    with a teacher).

    Example:
        >>> bert = build_transformer_model(config, ckpt, application="unilm", with_pool="linear",
        ...                                return_keras_model=False)
        >>> trainer = SimBERTTrainer(bert)
        >>> trainer.compile(optimizer=keras.optimizers.AdamW(1e-5))
        >>> trainer.fit(dataset, epochs=1)
    """

    def __init__(self, transformer, similarity_scale=30.0, teacher=None, distillation_weight=100.0, **kwargs):
        super().__init__(**kwargs)
        if transformer.pooler is None or transformer.mlm_transform is None:
            raise ValueError("SimBERTTrainer needs a unilm model with a pooler and an MLM head "
                             "(application='unilm', with_pool='linear')")
        if transformer.application != "unilm":
            raise ValueError(f"SimBERTTrainer needs application='unilm', got {transformer.application!r}")
        self.transformer = transformer
        # The MLM head is applied in compute_loss, outside the backbone graph: keep its
        # layers as attributes so Keras tracks (and trains) their weights.
        self.mlm_transform, self.mlm_bias = transformer.mlm_transform, transformer.mlm_bias
        inputs = transformer.model.inputs
        pooled = transformer.pooler(transformer.blocks[-1].output)
        self.backbone = keras.Model(inputs, [pooled, transformer.blocks[-1].output], name="backbone")
        self.similarity_scale = similarity_scale
        self.teacher = teacher
        if teacher is not None:
            teacher.trainable = False
        self.distillation_weight = distillation_weight
        self.seq2seq_tracker = keras.metrics.Mean(name="seq2seq_loss")
        # stage 2 replaces the contrastive term by distillation: log it under its own name
        self.similarity_tracker = keras.metrics.Mean(
            name="similarity_loss" if teacher is None else "distillation_loss")
        self.built = True  # every weight already exists (the backbone is built)

    def call(self, inputs, training=None):
        pooled, sequence = self.backbone(list(inputs[:2]), training=training)
        return pooled, sequence

    def _full_logits(self, sequence):
        """MLM logits (float32) of ``sequence`` rows: every position (static shapes, for XLA)."""
        t = self.transformer
        logits = t.token_embedding(t.mlm_transform(sequence), reverse=True)
        return ops.cast(logits, "float32") + ops.cast(t.mlm_bias.bias, "float32")

    def _target_logits(self, token_ids, segment_ids, sequence):
        """Logits at the predicted positions only, with their target ids."""
        targets, hidden = predicted_tokens(token_ids, segment_ids, sequence)
        return self._full_logits(hidden), targets

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        token_ids, segment_ids = x[0], x[1]
        pooled, sequence = y_pred if y_pred is not None else self(x, training=training)
        if self.jit_compile:  # XLA needs static shapes: score every position, mask the loss
            targets, logits, weights = token_ids[:, 1:], self._full_logits(sequence)[:, :-1], segment_ids[:, 1:]
        else:
            (logits, targets), weights = self._target_logits(token_ids, segment_ids, sequence), None
        teacher_vectors = None if self.teacher is None else self.teacher([x[2], x[3]], training=False)
        generation, similarity = simbert_loss_parts(targets, logits, pooled, weights, self.similarity_scale,
                                                    teacher_vectors, self.distillation_weight)
        self.seq2seq_tracker.update_state(generation)
        self.similarity_tracker.update_state(similarity)
        return per_replica_loss(generation + similarity)

    @property
    def metrics(self):
        return [*super().metrics, self.seq2seq_tracker, self.similarity_tracker]


@keras.saving.register_keras_serializable(package="bert4sim")
class SimBERTLoss(Loss):
    """SimBERT / RoFormer-Sim loss layer: generation + similarity (or distillation), bert4keras style.

    Inputs ``[targets, logits, vectors]`` (+ ``teacher_vectors``): the target
    ids and MLM logits of the predicted tokens only (``[N]``, ``[N, vocab]``)
    and the pooled sentence vectors. With ``full_sequence=True`` (static
    shapes, for XLA) the inputs are ``[token_ids, segment_ids, logits, vectors]``
    (+ teacher) with logits at every position. Adds the sum of
    :func:`simbert_loss_parts`, logs ``seq2seq_loss`` and ``similarity_loss``
    (``distillation_loss`` with a teacher) and returns ``inputs[output_axis]``.
    :func:`simbert_training_model` wires it into a model.

    Example:
        >>> pooled = SimBERTLoss(similarity_scale=30, output_axis=2)([targets, logits, pooled])
    """

    def __init__(self, similarity_scale=30.0, distillation_weight=100.0, full_sequence=False, **kwargs):
        super().__init__(**kwargs)
        self.similarity_scale, self.distillation_weight = similarity_scale, distillation_weight
        self.full_sequence = full_sequence

    def compute_loss(self, inputs, mask=None):
        if self.full_sequence:
            token_ids, segment_ids, logits, vectors, *teacher = inputs
            targets, logits, weights = token_ids[:, 1:], logits[:, :-1], segment_ids[:, 1:]
        else:
            (targets, logits, vectors, *teacher), weights = inputs, None
        teacher_vectors = teacher[0] if teacher else None
        generation, similarity = simbert_loss_parts(targets, logits, vectors, weights, self.similarity_scale,
                                                    teacher_vectors, self.distillation_weight)
        self.add_metric(generation, "seq2seq_loss")
        self.add_metric(similarity, "similarity_loss" if teacher_vectors is None else "distillation_loss")
        return generation + similarity

    def get_config(self):
        return {**super().get_config(), "similarity_scale": self.similarity_scale,
                "distillation_weight": self.distillation_weight, "full_sequence": self.full_sequence}


def predicted_tokens(token_ids, segment_ids, sequence):
    """``(target_ids, hidden)`` of the tokens a UniLM model predicts: position t predicts token t+1 of segment 1.

    Example:
        >>> targets, hidden = predicted_tokens(token_ids, segment_ids, sequence_output)
    """
    positions = ops.where(ops.cast(segment_ids[:, 1:], "bool"))  # tuple of index arrays
    return _gather_nd(token_ids[:, 1:], positions), _gather_nd(sequence[:, :-1], positions)


@keras.saving.register_keras_serializable(package="bert4sim")
class PredictedTokens(keras.layers.Layer):
    """``[token_ids, segment_ids, sequence_output]`` -> ``[target_ids, hidden]`` of the predicted tokens only.

    Position t predicts token t+1 where that token is in segment 1 (UniLM),
    so the MLM head runs on those rows only (with a large vocabulary the
    head is most of a SimBERT step otherwise).

    Example:
        >>> targets, hidden = PredictedTokens()([token_ids, segment_ids, sequence_output])
    """

    def call(self, inputs):
        return predicted_tokens(*inputs)

    def compute_output_spec(self, inputs):
        token_ids, _, sequence = inputs
        return (keras.KerasTensor((None,), dtype=token_ids.dtype),
                keras.KerasTensor((None, sequence.shape[-1]), dtype=sequence.dtype))


def simbert_training_model(transformer, similarity_scale=30.0, teacher=None, distillation_weight=100.0,
                           full_sequence=False):
    """The bert4keras-style training model of a SimBERT / RoFormer-Sim builder: the loss is a layer inside.

    ``transformer``: ``build_transformer_model(..., application='unilm',
    with_pool='linear', return_keras_model=False)``. Inputs ``[token_ids,
    segment_ids]`` (+ the teacher's two inputs with a ``teacher`` encoder,
    whose distillation loss replaces the similarity loss); output: the pooled
    vectors. The MLM head scores only the predicted tokens
    (:class:`PredictedTokens`), or every position with ``full_sequence``
    (static shapes, for XLA). Compile it with an optimizer only; ``fit`` logs
    ``loss``, ``seq2seq_loss`` and ``similarity_loss`` / ``distillation_loss``.

    Example:
        >>> bert = build_transformer_model(config, ckpt, application="unilm", with_pool="linear",
        ...                                return_keras_model=False)
        >>> model = simbert_training_model(bert)
        >>> model.compile(optimizer=make_optimizer(1e-5)); model.fit(dataset, steps_per_epoch=100)
    """
    t = transformer
    if t.pooler is None or t.mlm_transform is None or t.application != "unilm":
        raise ValueError("simbert_training_model needs a unilm model with a pooler and an MLM head "
                         "(application='unilm', with_pool='linear', return_keras_model=False)")
    token_ids, segment_ids = t.model.inputs
    sequence, pooled = t.blocks[-1].output, t.model.outputs[0]
    if full_sequence:
        logits = t.mlm_bias(t.token_embedding(t.mlm_transform(sequence), reverse=True), logits_only=True)
        loss_inputs = [token_ids, segment_ids, logits, pooled]
    else:
        targets, hidden = PredictedTokens(name="Predicted-Tokens")([token_ids, segment_ids, sequence])
        logits = t.mlm_bias(t.token_embedding(t.mlm_transform(hidden), reverse=True), logits_only=True)
        loss_inputs = [targets, logits, pooled]
    inputs, output_axis = [token_ids, segment_ids], len(loss_inputs) - 1
    if teacher is not None:
        teacher.trainable = False
        teacher_inputs = [keras.Input((None,), dtype=i.dtype, name=f"Teacher-Input-{n}")
                          for n, i in enumerate(teacher.inputs)]
        loss_inputs.append(teacher(teacher_inputs, training=False))
        inputs += teacher_inputs
    vectors = SimBERTLoss(similarity_scale, distillation_weight, full_sequence, output_axis=output_axis,
                          name="SimBERT-Loss")(loss_inputs)
    return keras.Model(inputs, vectors, name="simbert_training")


def per_replica_loss(loss):
    """Divide a replica's loss by the number of replicas, as Keras does for compiled losses.

    Under ``tf.distribute`` the replicas' gradients are summed, so a
    ``compute_loss`` override must return ``loss / num_replicas`` for the
    update to be the gradient of the mean loss; Keras's loss tracker
    multiplies the number back for display. Unchanged with one replica.

    Example:
        >>> return per_replica_loss(generation + similarity)  # at the end of compute_loss
    """
    import tensorflow as tf  # tf.distribute: the replica count of the strategy in scope

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss / replicas


def _gather_nd(values, positions):
    indices = ops.stack([ops.cast(p, "int32") for p in positions], axis=1)
    import tensorflow as tf  # keras.ops has no gather_nd; tf is the tested backend

    return tf.gather_nd(values, indices)


# --- Sentence-BERT ---


def _unit(x):
    x = ops.cast(x, "float32")
    return x / ops.maximum(ops.norm(x, axis=-1, keepdims=True), 1e-12)


def cosine_regression_loss(u, v, scores):
    """Sentence-BERT regression objective: MSE between cos(u, v) and the gold score (scaled to [0, 1]).

    Example:
        >>> cosine_regression_loss(u, v, gold_scores / 5.0)
    """
    cosine = ops.sum(_unit(u) * _unit(v), axis=-1)
    return ops.mean(ops.square(cosine - ops.cast(scores, "float32")))


def triplet_loss(anchor, positive, negative, margin=1.0):
    """Sentence-BERT triplet objective: max(‖a−p‖ − ‖a−n‖ + margin, 0), Euclidean.

    The margin defaults to 1 as in the paper (sentence-transformers' TripletLoss uses 5).

    Example:
        >>> triplet_loss(anchor_vectors, positive_vectors, negative_vectors, margin=1.0)
    """
    anchor, positive, negative = (ops.cast(t, "float32") for t in (anchor, positive, negative))
    distance_positive = ops.norm(anchor - positive, axis=-1)
    distance_negative = ops.norm(anchor - negative, axis=-1)
    return ops.mean(ops.relu(distance_positive - distance_negative + margin))


def multiple_negatives_ranking_loss(u, v, negatives=None, scale=20.0):
    """In-batch negatives: row i of scale·cos(u, [v; negatives_1; ...; negatives_k]) should pick column i.

    Softmax cross-entropy, anchors to candidates only (not symmetric), as
    sentence-transformers' MultipleNegativesRankingLoss. ``negatives``: None
    (k = 0), one ``[batch, dim]`` tensor (k = 1), or a list of k such tensors
    (k hard negatives per anchor); each adds ``batch`` candidate columns
    after the positives, in order.

    Example:
        >>> multiple_negatives_ranking_loss(question_vectors, answer_vectors)
        >>> multiple_negatives_ranking_loss(q, a, [hard_negative_1, hard_negative_2])
    """
    if negatives is None:
        negatives = []
    elif not isinstance(negatives, (list, tuple)):
        negatives = [negatives]
    candidates = ops.concatenate([_unit(c) for c in [v, *negatives]], axis=0)
    scores = ops.matmul(_unit(u), ops.transpose(candidates)) * scale
    labels = ops.arange(ops.shape(scores)[0])
    return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, scores, from_logits=True))


def cosent_loss(u, v, scores, scale=20.0):
    """CoSENT: log(1 + Σ_{s_i > s_j} exp(scale·(cos_j − cos_i))) over the batch's pairs.

    Example:
        >>> cosent_loss(u, v, gold_scores)
    """
    cosine = ops.sum(_unit(u) * _unit(v), axis=-1) * scale
    scores = ops.cast(scores, "float32")
    differences = cosine[None, :] - cosine[:, None]  # [i, j] = cos_j - cos_i
    ordered = ops.cast(scores[:, None] > scores[None, :], "float32")
    differences = differences - (1.0 - ordered) * 1e12
    flat = ops.concatenate([ops.zeros((1,)), ops.reshape(differences, (-1,))], axis=0)
    return ops.logsumexp(flat)


def softmax_classification_logits(classifier, u, v):
    """Sentence-BERT classification head: ``classifier([u; v; |u − v|])`` (the paper's default concatenation).

    Example:
        >>> logits = softmax_classification_logits(keras.layers.Dense(3), u, v)
    """
    return classifier(ops.concatenate([u, v, ops.abs(u - v)], axis=-1))


class SentenceBERTTrainer(keras.Model):
    """Siamese / triplet training of one shared sentence encoder with a Sentence-BERT objective.

    ``encoder`` maps ``[token_ids, segment_ids]`` to vectors (e.g.
    :func:`bert4sim.models.build_sentence_encoder`); every text goes through
    the same encoder. ``x`` is a tuple of (token_ids, segment_ids) arrays,
    two per text. ``objective``:

    - ``'classification'``: texts (a, b), y = integer label; softmax cross-entropy over
      W·[u; v; |u−v|] (``num_labels`` classes).
    - ``'regression'``: texts (a, b), y = score in [0, 1]; MSE of the cosine.
    - ``'triplet'``: texts (anchor, positive, negative); Euclidean, ``margin`` 1.
    - ``'mnrl'``: texts (a, b) of positive pairs, or (a, b, negative_1, ..., negative_k);
      in-batch negatives plus k hard negatives per pair, ``scale`` 20.
    - ``'cosent'``: texts (a, b), y = score; CoSENT, ``scale`` 20.

    Example:
        >>> trainer = SentenceBERTTrainer(encoder, "cosent")
        >>> trainer.compile(optimizer=make_optimizer(2e-5))
        >>> trainer.fit(dataset, epochs=1)
    """

    OBJECTIVES = ("classification", "regression", "triplet", "mnrl", "cosent")
    TEXTS = {"classification": (2,), "regression": (2,), "triplet": (3,), "mnrl": None, "cosent": (2,)}

    def __init__(self, encoder, objective, num_labels=2, margin=1.0, scale=20.0, **kwargs):
        super().__init__(**kwargs)
        if objective not in self.OBJECTIVES:
            raise ValueError(f"objective must be one of {self.OBJECTIVES}, got {objective!r}")
        self.encoder, self.objective = encoder, objective
        self.margin, self.scale = margin, scale
        self.classifier = None
        if objective == "classification":
            if num_labels < 2:
                raise ValueError(f"num_labels must be at least 2, got {num_labels}")
            dim = encoder.outputs[0].shape[-1]
            self.classifier = keras.layers.Dense(num_labels, name="classifier")
            self.classifier.build((None, 3 * dim))
        self.built = True

    def call(self, inputs, training=None):
        inputs = list(inputs)
        allowed = self.TEXTS[self.objective]
        if allowed is None:  # mnrl: anchor, positive, then any number of hard negatives
            valid, wanted = len(inputs) >= 4 and len(inputs) % 2 == 0, "an even number (at least 4) of"
        else:
            valid, wanted = len(inputs) / 2 in allowed, " or ".join(str(2 * n) for n in allowed)
        if not valid:
            raise ValueError(f"objective {self.objective!r} takes {wanted} input arrays (token_ids, segment_ids per "
                             f"text), got {len(inputs)}")
        return [self.encoder([inputs[i], inputs[i + 1]], training=training) for i in range(0, len(inputs), 2)]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        vectors = y_pred if y_pred is not None else self(x, training=training)
        if self.objective in ("classification", "regression", "cosent") and y is None:
            raise ValueError(f"objective {self.objective!r} needs targets y (labels or scores)")
        if self.objective == "classification":
            logits = softmax_classification_logits(self.classifier, vectors[0], vectors[1])
            return ops.mean(keras.losses.sparse_categorical_crossentropy(y, ops.cast(logits, "float32"),
                                                                         from_logits=True))
        if self.objective == "regression":
            return cosine_regression_loss(vectors[0], vectors[1], y)
        if self.objective == "triplet":
            return triplet_loss(vectors[0], vectors[1], vectors[2], self.margin)
        if self.objective == "mnrl":
            return multiple_negatives_ranking_loss(vectors[0], vectors[1], list(vectors[2:]), self.scale)
        return cosent_loss(vectors[0], vectors[1], y, self.scale)


# --- RoFormer-Sim supervised stage ---


def paired_rows_features(vectors):
    """``[u; v; |u − v|]`` of consecutive rows: rows 2i, 2i+1 hold pair i's sentence vectors.

    Example:
        >>> features = paired_rows_features(encoder([token_ids, segment_ids]))   # [batch / 2, 3 * hidden]
    """
    return ops.concatenate([vectors[::2], vectors[1::2], ops.abs(vectors[::2] - vectors[1::2])], axis=-1)


def task_masked_crossentropy(labels, logits, similarity_classes=2):
    """RoFormer-Sim's supervised loss: softmax cross-entropy over one task's logits only.

    ``logits`` ``[batch, classes]``: columns ``0..similarity_classes-1`` are
    the binary similarity task (labels 0/1), the others NLI (labels 2, 3, 4).
    A row whose label is a similarity label has its NLI logits masked out
    (−1e12), and the other way round, so each row is a softmax over its own
    task's classes. Mean over rows, float32.

    Example:
        >>> task_masked_crossentropy(np.array([1, 3]), logits)   # a similar pair, an entailment pair
    """
    logits = ops.cast(logits, "float32")
    labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
    classes = ops.shape(logits)[-1]
    nli_columns = ops.cast(ops.arange(classes) >= similarity_classes, "float32")[None, :]
    is_similarity = ops.cast(labels < similarity_classes, "float32")[:, None]
    other_task = is_similarity * nli_columns + (1.0 - is_similarity) * (1.0 - nli_columns)
    cross_entropy = keras.losses.sparse_categorical_crossentropy(labels, logits - other_task * 1e12, from_logits=True)
    return ops.mean(cross_entropy)


def task_masked_predictions(labels, logits, similarity_classes=2):
    """The predicted class of each row, chosen among the classes of its own task (as the loss sees them).

    Example:
        >>> accuracy = np.mean(task_masked_predictions(labels, logits) == labels)
    """
    labels = np.asarray(labels).reshape(-1)
    logits = np.array(logits, dtype="float32")
    nli = np.arange(logits.shape[-1]) >= similarity_classes
    logits[np.where((labels < similarity_classes)[:, None], nli[None, :], ~nli[None, :])] = -np.inf
    return logits.argmax(-1)


class SupervisedSimTrainer(keras.Model):
    """RoFormer-Sim's supervised stage: one bias-free linear layer over ``[u; v; |u − v|]``, task-masked CE.

    ``encoder`` maps ``[token_ids, segment_ids]`` to sentence vectors (the
    linear pooler of a RoFormer(-Sim) checkpoint). Batches are
    ``((token_ids, segment_ids), labels)`` from
    :func:`bert4sim.data.labelled_pair_batches`: rows 2i and 2i+1 are pair
    i, ``labels`` has one entry per pair, 0/1 for similarity sets and 2-4 for
    NLI. The classifier (``Dense(num_classes, use_bias=False)``) is only
    needed for training; the encoder is what is kept.

    Example:
        >>> trainer = SupervisedSimTrainer(encoder)
        >>> trainer.compile(optimizer=make_optimizer(2e-5, weight_decay=0.01))
        >>> trainer.fit(dataset, steps_per_epoch=1000)
    """

    def __init__(self, encoder, num_classes=5, similarity_classes=2, **kwargs):
        super().__init__(**kwargs)
        if not 0 < similarity_classes < num_classes:
            raise ValueError(f"need 0 < similarity_classes ({similarity_classes}) < num_classes ({num_classes})")
        self.encoder, self.similarity_classes = encoder, similarity_classes
        self.classifier = keras.layers.Dense(num_classes, use_bias=False, name="classifier")
        self.classifier.build((None, 3 * encoder.outputs[0].shape[-1]))
        self.built = True

    def call(self, inputs, training=None):
        vectors = self.encoder(list(inputs)[:2], training=training)
        return self.classifier(paired_rows_features(vectors))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y is None:
            raise ValueError("SupervisedSimTrainer needs labels y (one per pair: 0/1 similarity, 2-4 NLI)")
        logits = y_pred if y_pred is not None else self(x, training=training)
        return per_replica_loss(task_masked_crossentropy(y, logits, self.similarity_classes))


# --- RetroMAE ---


def masked_lm_loss(labels, logits):
    """Mean token cross-entropy over the positions whose label is not 0 (0 = no target).

    ``labels`` int ``[B, L]``; ``logits`` ``[B, L, V]``. Returns 0 when no
    position has a label.

    Example:
        >>> loss = masked_lm_loss(batch["encoder_labels"], encoder_logits)
    """
    return token_crossentropy(labels, logits, ops.not_equal(labels, 0))


def retromae_loss(encoder_labels, encoder_logits, decoder_labels, decoder_logits,
                  encoder_weight=1.0, decoder_weight=1.0):
    """RetroMAE's objective: encoder MLM loss + decoder reconstruction loss (both weights 1, as the reference).

    Each part is the mean cross-entropy over its labelled positions
    (:func:`masked_lm_loss`). Returns ``(total, encoder_loss, decoder_loss)``.

    Example:
        >>> total, encoder_part, decoder_part = retromae_loss(
        ...     labels[0], encoder_logits, labels[1], decoder_logits)
    """
    encoder_loss = masked_lm_loss(encoder_labels, encoder_logits)
    decoder_loss = masked_lm_loss(decoder_labels, decoder_logits)
    return encoder_weight * encoder_loss + decoder_weight * decoder_loss, encoder_loss, decoder_loss


def labelled_positions(labels, hidden):
    """The labels and hidden states of the labelled positions only: ``[B, L]``, ``[B, L, H]`` -> ``[N]``, ``[N, H]``.

    The MLM head then runs on those rows only; :func:`masked_lm_loss` of the
    head's logits there equals its value over the whole sequence.

    Example:
        >>> targets, hidden = labelled_positions(encoder_labels, encoder_sequence)
        >>> loss = masked_lm_loss(targets, retromae.mlm_logits(hidden))
    """
    positions = ops.where(ops.not_equal(labels, 0))
    return _gather_nd(labels, positions), _gather_nd(hidden, positions)


@keras.saving.register_keras_serializable(package="bert4sim")
class LabelledPositions(keras.layers.Layer):
    """``[labels, hidden]`` -> ``[targets, hidden]`` of the labelled positions (:func:`labelled_positions`).

    Example:
        >>> targets, hidden = LabelledPositions()([encoder_labels, encoder_sequence])
    """

    def call(self, inputs):
        return labelled_positions(*inputs)

    def compute_output_spec(self, inputs):
        labels, hidden = inputs
        return (keras.KerasTensor((None,), dtype=labels.dtype),
                keras.KerasTensor((None, hidden.shape[-1]), dtype=hidden.dtype))


@keras.saving.register_keras_serializable(package="bert4sim")
class RetroMAELoss(Loss):
    """RetroMAE's loss as a layer (bert4keras style): :func:`retromae_loss` of its inputs.

    Inputs ``[encoder_labels, encoder_logits, decoder_labels, decoder_logits]``
    (+ anything to pass through, e.g. the sentence vectors with
    ``output_axis=4``): labels ``[N]`` with logits ``[N, V]`` of the labelled
    positions only (:class:`LabelledPositions`), or ``[B, L]`` with
    ``[B, L, V]`` (0 = no target). Adds the weighted sum, logs
    ``encoder_loss`` and ``decoder_loss``. :func:`retromae_training_model`
    wires it into a model.

    Example:
        >>> vectors = RetroMAELoss(output_axis=4)([enc_targets, enc_logits, dec_targets, dec_logits, vectors])
    """

    def __init__(self, encoder_weight=1.0, decoder_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.encoder_weight, self.decoder_weight = encoder_weight, decoder_weight

    def compute_loss(self, inputs, mask=None):
        encoder_labels, encoder_logits, decoder_labels, decoder_logits = inputs[:4]
        # Loss hands integer inputs over as floats; token_crossentropy casts the ids back
        total, encoder_loss, decoder_loss = retromae_loss(
            encoder_labels, encoder_logits, decoder_labels, decoder_logits, self.encoder_weight, self.decoder_weight)
        self.add_metric(encoder_loss, "encoder_loss")
        self.add_metric(decoder_loss, "decoder_loss")
        return total

    def get_config(self):
        return {**super().get_config(), "encoder_weight": self.encoder_weight,
                "decoder_weight": self.decoder_weight}


def retromae_training_model(retromae, encoder_weight=1.0, decoder_weight=1.0):
    """The bert4keras-style RetroMAE training model: the labels are inputs, the loss is a layer inside.

    ``retromae``: ``build_retromae_model(..., return_keras_model=False)``.
    Inputs: the four of ``retromae.model`` then ``encoder_labels`` and
    ``decoder_labels`` (int ``[B, L]``, 0 = no target), as
    ``retromae_dataset(..., labels_as_inputs=True)`` yields them; output: the
    sentence vectors. The shared MLM head scores only the labelled positions
    (:class:`LabelledPositions`). Compile it with an optimizer only; ``fit``
    logs ``loss``, ``encoder_loss`` and ``decoder_loss``.

    Example:
        >>> retromae = build_retromae_model(config, ckpt, return_keras_model=False)
        >>> model = retromae_training_model(retromae)
        >>> model.compile(optimizer=make_optimizer(1e-4, total_steps=1000))
        >>> model.fit(retromae_dataset(retromae_batches(texts, collator, 32), labels_as_inputs=True),
        ...           steps_per_epoch=100)
    """
    if not all(hasattr(retromae, name) for name in ("backbone", "mlm_logits", "encoder")):
        raise TypeError("retromae_training_model needs the RetroMAE object of "
                        "build_retromae_model(..., return_keras_model=False)")
    inputs = list(retromae.backbone.inputs)
    sentence, encoder_sequence, decoder_hidden = retromae.backbone.outputs
    labels = [keras.Input((None,), dtype="int32", name=f"Input-{part.capitalize()}-Labels")
              for part in ("encoder", "decoder")]
    loss_inputs = []
    for part, part_labels, hidden in zip(("Encoder", "Decoder"), labels, (encoder_sequence, decoder_hidden)):
        targets, hidden = LabelledPositions(name=f"RetroMAE-{part}-Labelled")([part_labels, hidden])
        loss_inputs += [targets, retromae.mlm_logits(hidden)]
    vectors = RetroMAELoss(encoder_weight, decoder_weight, output_axis=4,
                           name="RetroMAE-Loss")(loss_inputs + [sentence])
    return keras.Model(inputs + labels, vectors, name="retromae_training")


class RetroMAETrainer(keras.Model):
    """Trains a :class:`bert4sim.models.RetroMAE` with :func:`retromae_loss` under ``model.fit``.

    Data: ``(inputs, labels)`` from :func:`bert4sim.data.retromae_batches`.
    The shared MLM head is applied only at labelled positions (the loss
    equals the full computation); ``fit`` logs ``encoder_loss`` and
    ``decoder_loss`` beside ``loss``.

    Example:
        >>> retromae = build_retromae_model(config, ckpt, return_keras_model=False)
        >>> trainer = RetroMAETrainer(retromae)
        >>> trainer.compile(optimizer=make_optimizer(1e-4, total_steps=1000))
        >>> trainer.fit(retromae_dataset(retromae_batches(texts, collator, 32)), steps_per_epoch=100)
    """

    def __init__(self, retromae, encoder_weight=1.0, decoder_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        if not all(hasattr(retromae, name) for name in ("backbone", "mlm_logits", "encoder")):
            raise TypeError("RetroMAETrainer needs the RetroMAE object of "
                            "build_retromae_model(..., return_keras_model=False)")
        self.retromae = retromae
        self.backbone = retromae.backbone
        # The MLM head is outside the backbone; listing its layers makes Keras train them.
        self.head_layers = [retromae.encoder.mlm_transform, retromae.encoder.mlm_bias]
        self.encoder_weight, self.decoder_weight = encoder_weight, decoder_weight
        self.encoder_tracker = keras.metrics.Mean(name="encoder_loss")
        self.decoder_tracker = keras.metrics.Mean(name="decoder_loss")
        self.built = True  # every weight already exists (the backbone is built)

    def call(self, inputs, training=None):
        return self.backbone(list(inputs), training=training)

    def _part_loss(self, labels, hidden):
        targets, hidden = labelled_positions(labels, hidden)
        return masked_lm_loss(targets, self.retromae.mlm_logits(hidden))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y is None or len(y) != 2:
            raise ValueError("RetroMAETrainer needs (inputs, (encoder_labels, decoder_labels)) batches, "
                             "as bert4sim.data.retromae_batches yields them")
        _, encoder_sequence, decoder_hidden = y_pred if y_pred is not None else self(x, training=training)
        encoder_loss = self._part_loss(y[0], encoder_sequence)
        decoder_loss = self._part_loss(y[1], decoder_hidden)
        self.encoder_tracker.update_state(encoder_loss)
        self.decoder_tracker.update_state(decoder_loss)
        return self.encoder_weight * encoder_loss + self.decoder_weight * decoder_loss

    @property
    def metrics(self):
        return [*super().metrics, self.encoder_tracker, self.decoder_tracker]
