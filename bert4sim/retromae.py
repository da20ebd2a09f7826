"""RetroMAE: retrieval-oriented pre-training, a masked encoder and a one-layer enhanced decoder.

The model (:func:`build_retromae_model`): the encoder's [CLS] state is the
sentence vector; the decoder rebuilds the whole text from it and a sampled,
position-specific view of the text (:class:`EnhancedDecoderBlock`). The data
(:class:`RetroMAECollator`, :func:`retromae_batches`): whole-word masks as the
reference samples them. Training (:func:`retromae_training_model`): encoder MLM
loss + decoder loss in a ``Loss`` layer, labels as inputs.

Example:
    >>> retromae = build_retromae_model(config, ckpt, return_keras_model=False)
    >>> model = retromae_training_model(retromae)
    >>> model.compile(optimizer=make_optimizer(1e-4, total_steps=1000))
    >>> collator = RetroMAECollator(tokenizer, maxlen=256)
    >>> model.fit(retromae_dataset(retromae_batches(texts, collator, 32)), steps_per_epoch=100)
    >>> retromae.save_encoder("checkpoints/retromae/bert_model.ckpt")
"""
import keras
import numpy as np
from keras import ops

from bert4sim.checks import check_seed
from bert4sim.data import batch_stream, shard_by_data, step_slices
from bert4sim.heads import Pooling
from bert4sim.layers import MaskDropping, TransformerBlock
from bert4sim.loss_layer import Loss
from bert4sim.losses import gather_positions, retromae_loss
from bert4sim.models import build_transformer_model
from bert4sim.sequences import sequence_padding

RETROMAE_INPUTS = ("encoder_token_ids", "segment_ids", "decoder_token_ids", "decoder_attention_mask")
RETROMAE_LABELS = ("encoder_labels", "decoder_labels")

# --- Model ---


@keras.saving.register_keras_serializable(package="bert4sim")
class RetroMAEStreams(MaskDropping):
    """The two input streams of RetroMAE's enhanced decoder, before positions are added.

    Inputs ``[encoder_sequence, decoder_embeddings]`` (both ``[B, L, H]``).
    With ``h`` the encoder's first ([CLS]) state, returns
    ``[query_base, content]``: ``query_base`` is ``h`` repeated at every
    position (the builder adds position embeddings to make H1) and
    ``content`` is H2 = ``[h, e_1, ..., e_{L-1}]``, the decoder embeddings
    with position 0 replaced by ``h``.

    Example:
        >>> query_base, content = RetroMAEStreams()([sequence_output, token_embeddings])
    """

    def call(self, inputs):
        sequence, embeddings = inputs
        sentence = ops.cast(sequence[:, :1], embeddings.dtype)
        query_base = ops.broadcast_to(sentence, ops.shape(embeddings))
        content = ops.concatenate([sentence, embeddings[:, 1:]], axis=1)
        return [query_base, content]

    def compute_output_spec(self, inputs):
        spec = keras.KerasTensor(inputs[1].shape, dtype=inputs[1].dtype)
        return [spec, keras.KerasTensor(inputs[1].shape, dtype=inputs[1].dtype)]


@keras.saving.register_keras_serializable(package="bert4sim")
class EnhancedDecoderBlock(TransformerBlock):
    """RetroMAE's one-layer decoder with enhanced decoding (query stream over content stream).

    ``call([query_stream, content_stream], attention_mask)``: queries come
    from H1 (the sentence vector plus position embeddings), keys and values
    from H2 (the sentence vector at position 0, then the embeddings of the
    original tokens); ``attention_mask`` is bool ``[B, L, L]``, sampled per
    example so that row i never sees position i and always sees position 0.
    Otherwise a post-LayerNorm BERT layer whose residual runs on the query
    stream; the weights have the same layout as :class:`TransformerBlock`.

    Example:
        >>> decoder = EnhancedDecoderBlock(num_heads=2, intermediate_size=128)
        >>> hidden = decoder([query_stream, content_stream], attention_mask=mask)  # [B, L, H]
    """

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or not isinstance(
            input_shape[0], (list, tuple)
        ):
            raise ValueError(
                f"EnhancedDecoderBlock takes [query_stream, content_stream], got input shape {input_shape}"
            )
        query_shape, content_shape = input_shape
        if query_shape[-1] != content_shape[-1]:
            raise ValueError(
                f"query stream {tuple(query_shape)} and content stream {tuple(content_shape)} "
                "must have the same hidden size"
            )
        super().build(tuple(query_shape))

    def call(self, inputs, attention_mask=None, training=None):
        query, content = inputs
        attended = self.attention(query, content, attention_mask=attention_mask, training=training)
        x = self.attention_norm(query + self.dropout(attended, training=training))
        return self.output_norm(x + self.dropout(self.feed_forward(x), training=training))

    def compute_output_spec(self, inputs, attention_mask=None, **kwargs):
        return keras.KerasTensor(inputs[0].shape, dtype=self.compute_dtype)


class RetroMAE:
    """RetroMAE pre-training model: a BERT/RoFormer encoder plus a one-layer enhanced decoder.

    Made by :func:`build_retromae_model`. Attributes:

    - ``encoder``: the encoder's :class:`Transformer` (with an MLM head giving
      logits); save it alone with :meth:`save_encoder`.
    - ``decoder``: the :class:`EnhancedDecoderBlock`.
    - ``model``: Keras model, inputs ``[encoder_token_ids, segment_ids,
      decoder_token_ids, decoder_attention_mask]`` (the first three int32
      ``[B, L]``, the mask bool ``[B, L, L]``, as
      :class:`RetroMAECollator` makes them), outputs
      ``[sentence_vectors [B, H], encoder_logits [B, L, V], decoder_logits [B, L, V]]``.
    - ``backbone``: same inputs, outputs ``[sentence_vectors,
      encoder_sequence, decoder_hidden]`` before the shared MLM head (the
      training model applies the head only where there are labels).

    Example:
        >>> retromae = build_retromae_model(vocab_size=100, hidden_size=64, num_hidden_layers=2,
        ...                                 num_attention_heads=2, intermediate_size=128,
        ...                                 return_keras_model=False)
        >>> vectors, encoder_logits, decoder_logits = retromae.model(batch_inputs)
        >>> retromae.save_encoder("out/bert_model.ckpt")
    """

    def __init__(self, encoder, decoder, model, backbone):
        self.encoder, self.decoder, self.model, self.backbone = encoder, decoder, model, backbone

    def save_encoder(self, checkpoint_path, config_path=None, vocab=None):
        """Save the encoder alone (with its MLM head) as a Google-format checkpoint [+ ``vocab.txt``].

        Example:
            >>> retromae.save_encoder("checkpoints/retromae/bert_model.ckpt", vocab=tokenizer.token_dict)
        """
        return self.encoder.save_weights_as_checkpoint(checkpoint_path, config_path, vocab=vocab)


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
    The decoder is one :class:`EnhancedDecoderBlock`: the
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
    encoder.config["pooling"] = "cls"  # the sentence vector RetroMAE trains; a pooler it carries stays untrained
    c = encoder.config
    decoder = EnhancedDecoderBlock(
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
    sentence = Pooling("cls", name="RetroMAE-Sentence")([sequence, token_ids])
    embeddings = encoder.embed(decoder_token_ids, segment_ids)
    query, content = RetroMAEStreams(name="RetroMAE-Streams")([sequence, embeddings])
    if encoder.position_embedding is not None:
        query = encoder.position_embedding(query)
    hidden = decoder([query, content], attention_mask=decoder_mask)
    inputs = [token_ids, segment_ids, decoder_token_ids, decoder_mask]
    backbone = keras.Model(inputs, [sentence, sequence, hidden], name="retromae_backbone")
    retromae = RetroMAE(encoder, decoder, None, backbone)
    encoder_logits = encoder.model.outputs[-1]
    retromae.model = keras.Model(
        inputs, [sentence, encoder_logits, encoder.mlm_logits(hidden)], name="retromae"
    )
    return retromae.model if return_keras_model else retromae


# --- Masks and batches ---


def whole_words(tokens):
    """Positions of the words of ``[CLS] ... [SEP]`` tokens: ``##`` pieces join the word before them.

    ``[CLS]``, ``[SEP]`` (and ``[PAD]``) are no word. These are the units the
    RetroMAE reference masks (Hugging Face's whole-word-mask collator).

    Example:
        >>> whole_words(["[CLS]", "信", "用", "card", "##s", "[SEP]"])
        [[1], [2], [3, 4]]
    """
    words = []
    for position, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]", "[PAD]"):
            continue
        if words and token.startswith("##"):
            words[-1].append(position)
        else:
            words.append([position])
    return words


def sample_whole_word_mask(words, length, rate, rng):
    """Bool ``[length]``: whole words hidden until ``round(rate * length)`` positions are (at least 1).

    The reference's rule: the count is taken over all ``length`` positions,
    ``[CLS]``/``[SEP]`` included (Python's ``round``, halves to even), words
    are tried in random order and one that would overshoot the count is
    skipped. So a text of n characters gets ``round(rate * (n + 2))`` hidden
    (40 % at n = 10 and rate 0.3), and ``[CLS]``/``[SEP]`` never are.

    Example:
        >>> sample_whole_word_mask([[1], [2], [3]], 5, 0.5, np.random.default_rng(0)).sum()
        2
    """
    return _draw_words(_word_table(words, length), max(1, round(length * rate)), rng)


def _word_table(words, length):
    """``(lengths, word_of)``: each word's token count, and the word of each position (``len(words)`` = none)."""
    lengths = np.array([len(word) for word in words], dtype=int)
    word_of = np.full(length, len(words), dtype=int)
    for index, word in enumerate(words):
        word_of[word] = index
    if np.count_nonzero(word_of < len(words)) != lengths.sum():
        raise ValueError("whole words must not share positions")
    return lengths, word_of


def _draw_words(table, target, rng):
    """:func:`sample_whole_word_mask` on a :func:`_word_table`: the same draws and result as trying the words
    one by one, but the leading words that fit without a skip (all of them, for Chinese characters) at once."""
    lengths, word_of = table
    order = rng.permutation(len(lengths))
    ends = np.cumsum(lengths[order])
    taken = int(np.searchsorted(ends, target, side="right"))  # words[order[:taken]] fit one after another
    chosen = np.zeros(len(lengths) + 1, dtype=bool)
    chosen[order[:taken]] = True
    count = int(ends[taken - 1]) if taken else 0
    for index in order[taken:]:
        if count >= target:
            break
        if count + lengths[index] <= target:
            chosen[index] = True
            count += int(lengths[index])
    return chosen[word_of]


def sample_decoder_mask(length, rate, rng, padded_length=None, words=None, pool_size=256):
    """RetroMAE's position-specific decoder attention mask, as the reference samples it: bool ``[P, P]``.

    For a text of ``length`` tokens (``[CLS]`` at 0, ``[SEP]`` last), the
    reference draws ``min(length, pool_size)`` whole-word masks at ``rate``
    (:func:`sample_whole_word_mask`); row ``i`` takes one of them at random
    and also hides its own position ``i``. True = visible. So every row sees
    the ``[CLS]`` column (the sentence vector) and the final ``[SEP]``
    column except on the diagonal, and of the other text tokens about
    ``1 - rate * (n + 2) / n`` stay visible (40 % at n = 10, rate 0.5).
    ``words`` (default: one word per text token) are position groups from
    :func:`whole_words`. Padding columns are hidden; padding rows see column
    0 only (so their softmax stays finite; they carry no label).

    Example:
        >>> mask = sample_decoder_mask(6, 0.5, np.random.default_rng(0), padded_length=8)
        >>> mask[1:, 0].all(), mask[3, 3], mask[:5, 5].all()
        (True, False, True)
    """
    padded_length = length if padded_length is None else padded_length
    if length < 1 or padded_length < length:
        raise ValueError(f"need 1 <= length <= padded_length, got length={length}, padded_length={padded_length}")
    words = [[i] for i in range(1, length - 1)] if words is None else words
    table, target = _word_table(words, length), max(1, round(length * rate))
    pool = np.stack([_draw_words(table, target, rng) for _ in range(min(length, pool_size))])
    mask = np.zeros((padded_length, padded_length), dtype=bool)
    mask[length:, 0] = True
    mask[:length, :length] = ~pool[rng.integers(0, len(pool), size=length)]
    mask[np.arange(length), np.arange(length)] = False
    return mask


class RetroMAECollator:
    """Turns texts into RetroMAE batches: masked encoder input, decoder input, sampled masks, labels.

    For each text (``[CLS] ... [SEP]``, cut to ``maxlen`` tokens):

    - encoder: whole words (``##`` pieces stay with their word) are picked
      until ``round(encoder_mask_rate * (n + 2))`` of the ``n`` text tokens
      are (at least one; [CLS]/[SEP] count in the total but are never
      picked), by :func:`sample_whole_word_mask`, as the reference's
      whole-word collator does; a pick becomes ``[MASK]`` (80 %), a random
      token (10 %) or stays (10 %); ``encoder_labels`` holds the original id
      at picks, 0 elsewhere. One difference from the reference: our random
      token is never a special one (``[PAD]``, ``[CLS]``, ...).
    - decoder: ``decoder_token_ids`` are the original (unmasked) ids;
      ``decoder_attention_mask`` comes from :func:`sample_decoder_mask` at
      ``decoder_mask_rate``; ``decoder_labels`` hold every original text
      token (``[CLS]`` and the final ``[SEP]`` excluded), 0 elsewhere.

    Label 0 means "no loss here" (id 0 is ``[PAD]``, never a target).
    Defaults follow the RetroMAE code (encoder 0.3, decoder 0.5). Draws
    come from ``numpy.random.default_rng(seed)``, so a collator with the same
    seed given the same texts returns the same batches; ``collator(texts,
    rng=...)`` draws from the given generator instead (what the step-indexed
    :func:`retromae_batches` does). ``texts`` may also be lists of token ids
    (already with ``[CLS]``/``[SEP]``).

    Example:
        >>> collator = RetroMAECollator(tokenizer, maxlen=64, seed=0)
        >>> batch = collator(["信用卡怎么注销", "怎么修改收货地址"])
        >>> batch["decoder_attention_mask"].shape    # (2, L, L)
    """

    def __init__(self, tokenizer, maxlen=512, encoder_mask_rate=0.3, decoder_mask_rate=0.5, seed=0):
        for name, rate in (("encoder_mask_rate", encoder_mask_rate), ("decoder_mask_rate", decoder_mask_rate)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {rate}")
        if maxlen < 3:
            raise ValueError(f"maxlen must be at least 3 ([CLS], one token, [SEP]), got {maxlen}")
        if tokenizer._token_mask_id is None:
            raise ValueError("the vocabulary has no [MASK] token, which the RetroMAE encoder input needs")
        self.tokenizer, self.maxlen = tokenizer, maxlen
        self.encoder_mask_rate, self.decoder_mask_rate = encoder_mask_rate, decoder_mask_rate
        self.rng = np.random.default_rng(seed)
        special = {tokenizer._token_dict.get(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")}
        self.ordinary_ids = np.array([i for i in range(tokenizer.vocab_size) if i not in special])

    def _token_ids(self, text, index):
        if isinstance(text, str):
            return self.tokenizer.encode(text, maxlen=self.maxlen)[0]
        try:
            ids = [int(i) for i in text]
        except (TypeError, ValueError):
            raise TypeError(f"text {index} must be a string or a list of token ids, got {text!r}") from None
        if not 2 <= len(ids) <= self.maxlen:
            raise ValueError(f"text {index} has {len(ids)} token ids; need 2..maxlen={self.maxlen} "
                             "including [CLS] and [SEP]")
        return ids

    def _words(self, token_ids):
        return whole_words([self.tokenizer.id_to_token(i) for i in token_ids])

    def mask_encoder_input(self, token_ids, words=None, rng=None):
        """``(masked_ids, labels)`` for one text's ids, by the encoder rule above (draws from ``rng`` if given)."""
        rng = self.rng if rng is None else rng
        masked, labels = list(token_ids), [0] * len(token_ids)
        if self.encoder_mask_rate == 0:
            return masked, labels
        words = self._words(token_ids) if words is None else words
        picks = np.flatnonzero(sample_whole_word_mask(words, len(token_ids), self.encoder_mask_rate, rng))
        for position in picks:
            labels[position] = token_ids[position]
            draw = rng.random()
            if draw < 0.8:
                masked[position] = self.tokenizer._token_mask_id
            elif draw < 0.9 and len(self.ordinary_ids):
                masked[position] = int(rng.choice(self.ordinary_ids))
        return masked, labels

    def __call__(self, texts, rng=None):
        if isinstance(texts, str) or not len(texts):
            raise ValueError("RetroMAECollator takes a non-empty list of texts")
        rng = self.rng if rng is None else rng
        originals = [self._token_ids(text, i) for i, text in enumerate(texts)]
        length = max(len(ids) for ids in originals)
        encoder_ids, encoder_labels, decoder_labels, masks = [], [], [], []
        for ids in originals:
            words = self._words(ids)
            masked, labels = self.mask_encoder_input(ids, words, rng)
            encoder_ids.append(masked)
            encoder_labels.append(labels)
            decoder_labels.append([0] + list(ids[1:-1]) + [0])
            masks.append(sample_decoder_mask(len(ids), self.decoder_mask_rate, rng, length, words))
        decoder_ids = sequence_padding(originals, length)
        return {
            "encoder_token_ids": sequence_padding(encoder_ids, length).astype("int32"),
            "segment_ids": np.zeros_like(decoder_ids, dtype="int32"),
            "encoder_labels": sequence_padding(encoder_labels, length).astype("int32"),
            "decoder_token_ids": decoder_ids.astype("int32"),
            "decoder_attention_mask": np.stack(masks),
            "decoder_labels": sequence_padding(decoder_labels, length).astype("int32"),
        }


def retromae_batches(texts, collator, batch_size, seed=0, start_step=0):
    """Endless RetroMAE batches ``(inputs, labels)`` for ``model.fit``, reshuffled every pass, from ``start_step`` on.

    ``inputs`` = ``(encoder_token_ids, segment_ids, decoder_token_ids,
    decoder_attention_mask)``, ``labels`` = ``(encoder_labels, decoder_labels)``
    (the order of :data:`RETROMAE_INPUTS` / :data:`RETROMAE_LABELS`). The last
    incomplete batch of a pass is dropped. Step-indexed like
    :func:`simbert_batches`: batch ``s`` (its texts and the collator's masks,
    drawn from a generator seeded by ``(seed, s)``) depends on ``s`` only.

    Example:
        >>> batches = retromae_batches(texts, RetroMAECollator(tokenizer, 64), batch_size=32)
        >>> inputs, labels = next(batches)
    """
    if not 1 <= batch_size <= len(texts):
        raise ValueError(f"batch_size must be between 1 and the number of texts ({len(texts)}), got {batch_size}")
    check_seed("seed", seed)
    check_seed("start_step", start_step)
    for step, chosen in step_slices(len(texts), batch_size, seed, start_step):
        batch = collator([texts[i] for i in chosen], rng=np.random.default_rng([seed, 1, step]))
        yield tuple(batch[k] for k in RETROMAE_INPUTS), tuple(batch[k] for k in RETROMAE_LABELS)


def retromae_dataset(batches, start_step=0):
    """Wrap :func:`retromae_batches` as a ``tf.data.Dataset`` for :func:`retromae_training_model`.

    ``batches`` and ``start_step`` as in :func:`bert4sim.data.to_dataset` (an
    iterator, or a function of the start step for an exact resume). Each
    element holds the six tensors as the model's inputs, ``(inputs +
    labels,)`` (int32 ids and labels, a bool mask).

    Example:
        >>> model.fit(retromae_dataset(retromae_batches(texts, collator, 32)), steps_per_epoch=100)
        >>> dataset = retromae_dataset(lambda step: retromae_batches(texts, collator, 32, start_step=step),
        ...                            start_step=resume.start_step)
    """
    import tensorflow as tf

    ids = tf.TensorSpec((None, None), tf.int32)
    spec = ((ids, ids, ids, tf.TensorSpec((None, None, None), tf.bool)), (ids, ids))
    dataset = tf.data.Dataset.from_generator(batch_stream(batches, start_step), output_signature=spec)
    return shard_by_data(dataset.map(lambda inputs, labels: (inputs + labels,))).prefetch(2)


# --- Training model ---


def labelled_positions(labels, hidden):
    """The labels and hidden states of the labelled positions only: ``[B, L]``, ``[B, L, H]`` -> ``[N]``, ``[N, H]``.

    The MLM head then runs on those rows only; :func:`bert4sim.losses.masked_lm_loss` of the
    head's logits there equals its value over the whole sequence.

    Example:
        >>> targets, hidden = labelled_positions(encoder_labels, encoder_sequence)
        >>> loss = masked_lm_loss(targets, retromae.encoder.mlm_logits(hidden))
    """
    positions = ops.where(ops.not_equal(labels, 0))
    return gather_positions(labels, positions), gather_positions(hidden, positions)


@keras.saving.register_keras_serializable(package="bert4sim")
class LabelledPositions(MaskDropping):
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
    :func:`retromae_dataset` yields them; output: the
    sentence vectors. The shared MLM head scores only the labelled positions
    (:class:`LabelledPositions`). Compile it with an optimizer only; ``fit``
    logs ``loss``, ``encoder_loss`` and ``decoder_loss``.

    Example:
        >>> retromae = build_retromae_model(config, ckpt, return_keras_model=False)
        >>> model = retromae_training_model(retromae)
        >>> model.compile(optimizer=make_optimizer(1e-4, total_steps=1000))
        >>> model.fit(retromae_dataset(retromae_batches(texts, collator, 32)), steps_per_epoch=100)
    """
    if not isinstance(retromae, RetroMAE):
        raise TypeError("retromae_training_model needs the RetroMAE object of "
                        "build_retromae_model(..., return_keras_model=False)")
    inputs = list(retromae.backbone.inputs)
    sentence, encoder_sequence, decoder_hidden = retromae.backbone.outputs
    labels = [keras.Input((None,), dtype="int32", name=f"Input-{part.capitalize()}-Labels")
              for part in ("encoder", "decoder")]
    loss_inputs = []
    for part, part_labels, hidden in zip(("Encoder", "Decoder"), labels, (encoder_sequence, decoder_hidden)):
        targets, hidden = LabelledPositions(name=f"RetroMAE-{part}-Labelled")([part_labels, hidden])
        loss_inputs += [targets, retromae.encoder.mlm_logits(hidden)]
    vectors = RetroMAELoss(encoder_weight, decoder_weight, output_axis=4,
                           name="RetroMAE-Loss")(loss_inputs + [sentence])
    return keras.Model(inputs + labels, vectors, name="retromae_training")
