"""Losses: SimBERT's seq2seq + in-batch similarity, RoFormer-Sim's distillation.

Plain functions of tensors (``keras.ops``), plus ``SimBERTTrainer``, a Keras
model whose ``compute_loss`` adds them up and logs each part as a metric,
so training is ordinary ``model.fit`` under any ``tf.distribute`` strategy.
"""
import keras
from keras import ops

# --- SimBERT ---


def seq2seq_loss(token_ids, segment_ids, predictions, from_logits=True):
    """UniLM generation loss: predict token t+1 from position t, on segment-1 tokens only.

    ``predictions`` are ``[batch, length, vocab]`` logits (or probabilities
    with ``from_logits=False``). Returns ``sum(CE * mask) / sum(mask)`` with
    ``mask = segment_ids[:, 1:]``, as SimBERT's script computes it.

    Example:
        >>> loss = seq2seq_loss(token_ids, segment_ids, mlm_logits)
    """
    targets = token_ids[:, 1:]
    mask = ops.cast(segment_ids[:, 1:], "float32")
    predictions = ops.cast(predictions[:, :-1], "float32")
    cross_entropy = keras.losses.sparse_categorical_crossentropy(targets, predictions, from_logits=from_logits)
    return ops.sum(cross_entropy * mask) / ops.maximum(ops.sum(mask), 1.0)


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
    computation. ``fit`` logs ``seq2seq_loss`` and ``similarity_loss``.

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
        inputs = transformer.model.inputs
        pooled = transformer.pooler(transformer.blocks[-1].output)
        self.backbone = keras.Model(inputs, [pooled, transformer.blocks[-1].output], name="backbone")
        self.similarity_scale = similarity_scale
        self.teacher = teacher
        if teacher is not None:
            teacher.trainable = False
        self.distillation_weight = distillation_weight
        self.seq2seq_tracker = keras.metrics.Mean(name="seq2seq_loss")
        self.similarity_tracker = keras.metrics.Mean(name="similarity_loss")
        self.built = True  # every weight already exists (the backbone is built)

    def call(self, inputs, training=None):
        pooled, sequence = self.backbone(list(inputs[:2]), training=training)
        return pooled, sequence

    def _target_logits(self, token_ids, segment_ids, sequence):
        """Logits at the predicted positions only, with their target ids."""
        mask = ops.cast(segment_ids[:, 1:], "bool")
        hidden = sequence[:, :-1]
        positions = ops.where(mask)  # tuple of index arrays
        gathered = _gather_nd(hidden, positions)
        targets = _gather_nd(token_ids[:, 1:], positions)
        t = self.transformer
        logits = t.token_embedding(t.mlm_transform(gathered), reverse=True)
        logits = ops.cast(logits, "float32") + ops.cast(t.mlm_bias.bias, "float32")
        return logits, targets

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        token_ids, segment_ids = x[0], x[1]
        pooled, sequence = y_pred if y_pred is not None else self(x, training=training)
        logits, targets = self._target_logits(token_ids, segment_ids, sequence)
        generation = ops.mean(keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True))
        if self.teacher is not None:
            teacher_vectors = ops.stop_gradient(self.teacher([x[2], x[3]], training=False))
            similarity = distillation_loss(teacher_vectors, pooled, self.distillation_weight)
        else:
            similarity = similarity_loss(pooled, self.similarity_scale)
        self.seq2seq_tracker.update_state(generation)
        self.similarity_tracker.update_state(similarity)
        return generation + similarity

    @property
    def metrics(self):
        return [*super().metrics, self.seq2seq_tracker, self.similarity_tracker]


def _gather_nd(values, positions):
    indices = ops.stack([ops.cast(p, "int32") for p in positions], axis=1)
    import tensorflow as tf  # keras.ops has no gather_nd; tf is the tested backend

    return tf.gather_nd(values, indices)
