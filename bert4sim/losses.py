"""The loss formulas of the four methods: plain functions of tensors (``keras.ops``), float32 inside.

The method modules (:mod:`bert4sim.simbert`, :mod:`bert4sim.roformer_sim`,
:mod:`bert4sim.retromae`, :mod:`bert4sim.sbert`) wrap them in ``Loss`` layers
inside their training models; nothing here knows about models or data.

Example:
    >>> from bert4sim.losses import similarity_loss
    >>> loss = similarity_loss(pooled_vectors, scale=30)
"""
import keras
from keras import ops


# --- SimBERT / RoFormer-Sim ---


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




def gather_positions(values, positions):
    """The entries of ``values`` at ``positions`` (a tuple of index arrays, as ``ops.where`` returns).

    Example:
        >>> gather_positions(token_ids, ops.where(ops.cast(segment_ids, "bool")))   # [N]
    """
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



# --- RoFormer-Sim supervised stage ---


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

