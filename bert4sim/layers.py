"""Keras 3 layers for BERT-style transformers (BERT, RoFormer, UniLM): masks, RoPE, embeddings, attention, blocks.

Every layer here is serializable (``get_config``) and uses ``keras.ops``, so
it runs on any Keras backend; bert4sim tests it on TensorFlow. The heads
(pooler, MLM head, pooling) are in :mod:`bert4sim.heads`; which dtype the
matrix products run in (``matmul_dtype``) is :mod:`bert4sim.precision`'s.

Numerics follow bert4keras / Google BERT: LayerNorm epsilon 1e-12, GELU by
erf, attention logits scaled by 1/sqrt(head size), masked logits replaced by
-1e12 in float32 (finite in every precision because the softmax runs in
float32).

Example:
    >>> block = TransformerBlock(num_heads=2, intermediate_size=128)
    >>> y = block(x, attention_mask=AttentionMask("unilm")([token_ids, segment_ids]))
"""
import math

import keras
from keras import ops

from bert4sim.activations import get_activation, resolve_activation
from bert4sim.loss_layer import Loss  # noqa: F401  (bert4keras kept Loss in layers)
from bert4sim.precision import Dense, MatmulDtype, matmul_in

LAYER_NORM_EPSILON = 1e-12
MASKED_LOGIT = -1e12

_serializable = keras.saving.register_keras_serializable(package="bert4sim")


# --------------------------------------------------------------------------
# Masks: one function per mask pattern; the layer below is the only user.
# --------------------------------------------------------------------------


def padding_mask(token_ids):
    """Keys that are real tokens: bool ``[batch, 1, length]`` (id 0 is padding).

    Example:
        >>> padding_mask(keras.ops.array([[5, 7, 0]]))  # [[[True, True, False]]]
    """
    return ops.expand_dims(ops.not_equal(token_ids, 0), axis=1)


def unilm_mask(segment_ids):
    """UniLM seq2seq pattern: bool ``[batch, length, length]``.

    With ``c = cumsum(segment_ids)``, query ``i`` may see key ``j`` iff
    ``c[j] <= c[i]``: segment 0 is bidirectional, each segment-1 token sees
    all of segment 0 and the segment-1 tokens up to itself.

    Example:
        >>> unilm_mask(keras.ops.array([[0, 0, 1, 1]]))[0]
        # [[1,1,0,0], [1,1,0,0], [1,1,1,0], [1,1,1,1]] as booleans
    """
    order = ops.cumsum(ops.cast(segment_ids, "int32"), axis=1)
    return ops.less_equal(ops.expand_dims(order, 1), ops.expand_dims(order, 2))


def causal_mask(query_length, key_length=None, query_offset=0):
    """Causal (language-model) pattern: bool ``[query_length, key_length]``.

    Query ``i`` (at absolute position ``query_offset + i``) sees key ``j`` iff
    ``j <= query_offset + i``.

    Example:
        >>> causal_mask(3)  # lower-triangular 3x3 of True
    """
    key_length = query_length if key_length is None else key_length
    rows = ops.expand_dims(ops.arange(query_length, dtype="int32") + query_offset, 1)
    cols = ops.expand_dims(ops.arange(key_length, dtype="int32"), 0)
    return ops.less_equal(cols, rows)


@_serializable
class AttentionMask(keras.layers.Layer):
    """Builds the boolean attention mask ``[batch, length, length]``.

    ``mode`` is ``"padding"`` (bidirectional encoder), ``"unilm"`` (seq2seq
    from segment ids) or ``"lm"`` (causal). Padding keys (token id 0) are
    always hidden. True means "may attend".

    Example:
        >>> mask = AttentionMask("unilm")([token_ids, segment_ids])
    """

    MODES = ("padding", "unilm", "lm")

    def __init__(self, mode="padding", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"AttentionMask mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode

    def call(self, inputs):
        token_ids, segment_ids = inputs
        keys = padding_mask(token_ids)
        length = ops.shape(token_ids)[1]
        if self.mode == "unilm":
            pattern = unilm_mask(segment_ids)
        elif self.mode == "lm":
            pattern = ops.expand_dims(causal_mask(length), 0)
        else:
            pattern = ops.ones((1, length, 1), dtype="bool")
        return ops.logical_and(pattern, keys)

    def compute_output_spec(self, inputs):
        token_ids = inputs[0]
        shape = (token_ids.shape[0], token_ids.shape[1], token_ids.shape[1])
        return keras.KerasTensor(shape, dtype="bool")

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


# --------------------------------------------------------------------------
# Rotary position embedding (RoFormer, bert4keras convention)
# --------------------------------------------------------------------------


def rotary_position_embedding(x, positions, base=10000.0):
    """Rotate adjacent feature pairs of ``x`` by position-dependent angles.

    ``x`` is ``[batch, length, heads, head_size]`` and ``positions`` a float
    vector ``[length]``. Pair ``(x[2i], x[2i+1])`` at position ``m`` is rotated
    by ``m * base**(-2i/head_size)``, as bert4keras's RoFormer does; so a
    query/key dot product depends only on the relative position.

    Example:
        >>> q = rotary_position_embedding(q, keras.ops.arange(8, dtype="float32"))
    """
    head_size = x.shape[-1]
    if head_size is None or head_size % 2:
        raise ValueError(f"RoPE needs an even, known head size; got {head_size}")
    pair_index = ops.arange(head_size // 2, dtype="float32")
    inverse_frequency = ops.power(10000.0 if base is None else base, -2.0 * pair_index / head_size)
    angles = ops.expand_dims(ops.cast(positions, "float32"), -1) * inverse_frequency
    sin, cos = ops.sin(angles), ops.cos(angles)
    # (even, odd) -> (even*cos - odd*sin, odd*cos + even*sin), as pair * cos + swapped pair * (-sin, sin):
    # the same values as the two-line form, in fewer passes over x.
    cos = ops.cast(cos, x.dtype)[None, :, None, :, None]
    signed_sin = ops.cast(ops.stack([-sin, sin], axis=-1), x.dtype)[None, :, None]
    pairs = ops.reshape(x, tuple(ops.shape(x)[:-1]) + (head_size // 2, 2))
    rotated = pairs * cos + ops.flip(pairs, axis=-1) * signed_sin
    return ops.reshape(rotated, ops.shape(x))


# --------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------


@_serializable
class TokenEmbedding(MatmulDtype, keras.layers.Layer):
    """Token embedding whose matrix also serves as the tied output projection.

    ``layer(ids)`` looks rows up; ``layer(hidden, reverse=True)`` returns
    ``hidden @ embeddings.T`` (logits over the vocabulary).

    Example:
        >>> emb = TokenEmbedding(100, 64)
        >>> logits = emb(emb(keras.ops.array([[3, 4]])), reverse=True)  # [1, 2, 100]
    """

    _product_kernel = "embeddings"

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", matmul_dtype=None, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.matmul_dtype = matmul_dtype

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
            name="embeddings",
        )
        self.built = True

    def call(self, inputs, reverse=False, kernels=None):
        if reverse:
            return self.logits(inputs, None if kernels is None else kernels.kernel_for(self))
        return ops.take(self.embeddings, ops.cast(inputs, "int32"), axis=0)

    def logits(self, inputs, embeddings=None):
        """``inputs @ embeddings.T`` (in ``matmul_dtype`` if set), in ``inputs``' dtype.

        ``embeddings`` replaces the layer's matrix, e.g. one already cast
        once for many calls (:class:`bert4sim.precision.KernelCopies`).

        Example:
            >>> logits = emb.logits(hidden)   # what emb(hidden, reverse=True) returns
        """
        embeddings = self.embeddings if embeddings is None else embeddings
        # [N, H] x [V, H] -> [N, V] contracts the matrix as stored: no transposed copy of
        # it in the forward pass, and its gradient comes out in its own [V, H] layout.
        flat = ops.reshape(inputs, (-1, self.output_dim))
        logits = ops.cast(matmul_in(self.matmul_dtype or inputs.dtype, flat, embeddings, "nh,vh->nv"), inputs.dtype)
        return ops.reshape(logits, tuple(ops.shape(inputs)[:-1]) + (self.input_dim,))

    def compute_output_spec(self, inputs, reverse=False, kernels=None):
        if reverse:
            return keras.KerasTensor(inputs.shape[:-1] + (self.input_dim,), dtype=self.compute_dtype)
        return keras.KerasTensor(inputs.shape + (self.output_dim,), dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "matmul_dtype": self.matmul_dtype,
        }


@_serializable
class PositionEmbedding(keras.layers.Layer):
    """Learned absolute position embedding added to its input.

    ``start_index`` shifts the positions (used by cached decoding, where the
    new tokens start after the cached ones).

    Example:
        >>> x = PositionEmbedding(512)(x)          # adds rows 0..L-1
        >>> x = PositionEmbedding(512)(x, start_index=7)
    """

    def __init__(self, max_length, embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        self.max_length = int(max_length)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.max_length, input_shape[-1]),
            initializer=self.embeddings_initializer,
            name="embeddings",
        )
        self.built = True

    def call(self, inputs, start_index=0):
        length = inputs.shape[1]
        if isinstance(length, int) and isinstance(start_index, int):
            if start_index + length > self.max_length:
                raise ValueError(
                    f"sequence of length {start_index + length} is longer than "
                    f"max_position_embeddings={self.max_length}"
                )
        # A gather rather than a slice: XLA then compiles once for any (traced) start index.
        rows = ops.take(self.embeddings, ops.arange(ops.shape(inputs)[1]) + start_index, axis=0)
        return inputs + ops.cast(rows, inputs.dtype)[None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_length": self.max_length,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }


# --------------------------------------------------------------------------
# Attention and the transformer block
# --------------------------------------------------------------------------


@_serializable
class MultiHeadAttention(MatmulDtype, keras.layers.Layer):
    """Multi-head attention with a boolean mask, optional RoPE and a KV cache.

    ``call(query, value=None, attention_mask=None, cache=None,
    cache_update_index=None)``: ``attention_mask`` is bool ``[batch, Lq, Lk]``
    (True = may attend). With ``cache`` (``[batch, 2, max_len, heads,
    head_size]``) the new keys/values are written at ``cache_update_index``,
    attention runs over the whole buffer and ``(output, cache)`` is returned.
    ``matmul_dtype`` (e.g. ``"bfloat16"``) runs the projections and both
    attention products in that dtype; the softmax stays float32.

    Example:
        >>> mha = MultiHeadAttention(num_heads=2, head_size=32, use_rope=True)
        >>> out = mha(x, attention_mask=mask)
    """

    _matmul_children = ("query_dense", "key_dense", "value_dense", "output_dense")

    def __init__(
        self,
        num_heads,
        head_size,
        output_dim=None,
        use_rope=False,
        dropout_rate=0.0,
        kernel_initializer="glorot_uniform",
        matmul_dtype=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.head_size = int(head_size)
        self.output_dim = output_dim
        self.use_rope = bool(use_rope)
        self.dropout_rate = float(dropout_rate)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        inner = self.num_heads * self.head_size
        self.query_dense = self._dense(inner, "query")
        self.key_dense = self._dense(inner, "key")
        self.value_dense = self._dense(inner, "value")
        self.output_dense = None
        self.matmul_dtype = matmul_dtype
        self.dropout = keras.layers.Dropout(self.dropout_rate, dtype=self.dtype_policy)

    def build(self, query_shape, value_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        self.query_dense.build(query_shape)
        self.key_dense.build(value_shape)
        self.value_dense.build(value_shape)
        self.output_dense = self._dense(self.output_dim or query_shape[-1], "output")
        self.output_dense.build(tuple(query_shape[:-1]) + (self.num_heads * self.head_size,))
        self.built = True

    def _dense(self, units, name):
        return Dense(
            units, kernel_initializer=self.kernel_initializer, name=name, dtype=self.dtype_policy,
            matmul_dtype=self.matmul_dtype,
        )

    def _split_heads(self, x):
        return ops.reshape(x, (ops.shape(x)[0], -1, self.num_heads, self.head_size))

    def call(
        self,
        query,
        value=None,
        attention_mask=None,
        cache=None,
        cache_update_index=None,
        training=None,
    ):
        value = query if value is None else value
        # Inference with low-precision products: what only feeds a product stays in that
        # dtype (no round trip through float32); RoPE'd queries/keys are rotated in float32.
        low = self.matmul_dtype not in (None, self.compute_dtype) and not training
        feed_dtype = self.matmul_dtype if low else self.compute_dtype

        def project(dense, x, keep_low):
            return dense.project(x, output_dtype=feed_dtype) if keep_low else dense(x)

        q = self._split_heads(project(self.query_dense, query, low and not self.use_rope))
        k = self._split_heads(project(self.key_dense, value, low and not self.use_rope))
        v = self._split_heads(project(self.value_dense, value, low))
        start = 0 if cache_update_index is None else cache_update_index
        if self.use_rope:
            q = rotary_position_embedding(q, ops.arange(ops.shape(q)[1]) + start)
            k = rotary_position_embedding(k, ops.arange(ops.shape(k)[1]) + start)
        # Heads first ([batch, heads, length, head_size]): both attention products are
        # then plain batched matmuls, and cached keys/values need no transposing per step.
        q, k, v = (ops.transpose(t, (0, 2, 1, 3)) for t in (q, k, v))
        if cache is not None:
            if cache_update_index is None:
                raise ValueError("cache_update_index is required when a cache is given")
            # A (keys, values) pair avoids the copies of slicing/stacking one buffer.
            split = isinstance(cache, (tuple, list))
            key_cache, value_cache = cache if split else (cache[:, 0], cache[:, 1])
            index = [0, 0, cache_update_index, 0]
            k = ops.slice_update(key_cache, index, ops.cast(k, key_cache.dtype))
            v = ops.slice_update(value_cache, index, ops.cast(v, value_cache.dtype))
            cache = (k, v) if split else ops.stack([k, v], axis=1)
        if self.matmul_dtype in (None, self.compute_dtype):
            logits = ops.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(self.head_size)
        else:
            logits = ops.cast(matmul_in(self.matmul_dtype, q, k, "bhqd,bhkd->bhqk"), "float32")
            logits = logits / math.sqrt(self.head_size)
        logits = ops.cast(logits, "float32")
        if attention_mask is not None:
            logits = ops.where(ops.expand_dims(attention_mask, 1), logits, MASKED_LOGIT)
        probs = ops.cast(ops.softmax(logits, axis=-1), feed_dtype)
        probs = self.dropout(probs, training=training)
        v = ops.cast(v, feed_dtype)
        context = ops.cast(matmul_in(self.matmul_dtype, probs, v, "bhqk,bhkd->bhqd"), feed_dtype)
        context = ops.transpose(context, (0, 2, 1, 3))
        context = ops.reshape(context, (ops.shape(context)[0], -1, self.num_heads * self.head_size))
        output = self.output_dense(context)
        return output if cache is None else (output, cache)

    def compute_output_spec(self, query, value=None, attention_mask=None, cache=None, **kwargs):
        dim = self.output_dim or query.shape[-1]
        out = keras.KerasTensor(query.shape[:-1] + (dim,), dtype=self.compute_dtype)
        if cache is None:
            return out
        return out, keras.tree.map_structure(lambda c: keras.KerasTensor(c.shape, dtype=c.dtype), cache)

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "head_size": self.head_size,
            "output_dim": self.output_dim,
            "use_rope": self.use_rope,
            "dropout_rate": self.dropout_rate,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "matmul_dtype": self.matmul_dtype,
        }


@_serializable
class FeedForward(MatmulDtype, keras.layers.Layer):
    """Position-wise feed-forward: ``W2 · act(W1 · x)`` (BERT's intermediate/output).

    Example:
        >>> y = FeedForward(intermediate_size=128, activation="gelu")(x)
    """

    _matmul_children = ("inner_dense", "output_dense")

    def __init__(self, intermediate_size, activation="gelu", kernel_initializer="glorot_uniform",
                 matmul_dtype=None, **kwargs):
        super().__init__(**kwargs)
        self.intermediate_size = int(intermediate_size)
        self.activation = resolve_activation(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.inner_dense = Dense(
            self.intermediate_size,
            activation=get_activation(self.activation),
            kernel_initializer=self.kernel_initializer,
            name="intermediate",
            dtype=self.dtype_policy,
        )
        self.output_dense = None
        self.matmul_dtype = matmul_dtype

    def build(self, input_shape):
        self.inner_dense.build(input_shape)
        self.output_dense = Dense(
            input_shape[-1], kernel_initializer=self.kernel_initializer, name="output", dtype=self.dtype_policy,
            matmul_dtype=self.matmul_dtype,
        )
        self.output_dense.build(tuple(input_shape[:-1]) + (self.intermediate_size,))
        self.built = True

    def call(self, inputs, training=None):
        if training or self.matmul_dtype in (None, self.compute_dtype):
            return self.output_dense(self.inner_dense(inputs))
        # Inference with low-precision products: the intermediate stays in that dtype, its bias
        # and GELU fused into the first product's kernel, and feeds the second product as is.
        return self.output_dense.project(self.inner_dense.project(inputs, output_dtype=self.matmul_dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "intermediate_size": self.intermediate_size,
            "activation": self.activation,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "matmul_dtype": self.matmul_dtype,
        }


@_serializable
class TransformerBlock(MatmulDtype, keras.layers.Layer):
    """One post-LayerNorm BERT layer: attention + residual + LN, FFN + residual + LN.

    ``call(x, attention_mask=None, cache=None, cache_update_index=None)``;
    with a cache it returns ``(x, cache)`` (see :class:`MultiHeadAttention`).

    Example:
        >>> block = TransformerBlock(num_heads=2, intermediate_size=128)
        >>> y = block(x, attention_mask=mask)
    """

    _matmul_children = ("attention", "feed_forward")

    def __init__(
        self,
        num_heads,
        intermediate_size,
        hidden_act="gelu",
        dropout_rate=0.1,
        attention_dropout_rate=0.1,
        use_rope=False,
        kernel_initializer="glorot_uniform",
        layer_norm_epsilon=LAYER_NORM_EPSILON,
        matmul_dtype=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.intermediate_size = int(intermediate_size)
        self.hidden_act = resolve_activation(hidden_act)
        self.dropout_rate = float(dropout_rate)
        self.attention_dropout_rate = float(attention_dropout_rate)
        self.use_rope = bool(use_rope)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.attention = None
        self.feed_forward = FeedForward(
            self.intermediate_size, self.hidden_act, self.kernel_initializer, name="ffn", dtype=self.dtype_policy
        )
        norm = lambda name: keras.layers.LayerNormalization(  # noqa: E731
            epsilon=self.layer_norm_epsilon, name=name, dtype=self.dtype_policy
        )
        self.attention_norm = norm("attention_norm")
        self.output_norm = norm("output_norm")
        self.dropout = keras.layers.Dropout(self.dropout_rate, dtype=self.dtype_policy)
        self.matmul_dtype = matmul_dtype

    def build(self, input_shape):
        hidden_size = input_shape[-1]
        if hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {hidden_size} is not a multiple of num_attention_heads {self.num_heads}"
            )
        self.attention = MultiHeadAttention(
            self.num_heads,
            hidden_size // self.num_heads,
            use_rope=self.use_rope,
            dropout_rate=self.attention_dropout_rate,
            kernel_initializer=self.kernel_initializer,
            matmul_dtype=self.matmul_dtype,
            name="attention",
            dtype=self.dtype_policy,
        )
        self.attention.build(input_shape)
        self.attention_norm.build(input_shape)
        self.feed_forward.build(input_shape)
        self.output_norm.build(input_shape)
        self.built = True

    def call(self, x, attention_mask=None, cache=None, cache_update_index=None, training=None):
        attended = self.attention(
            x,
            attention_mask=attention_mask,
            cache=cache,
            cache_update_index=cache_update_index,
            training=training,
        )
        if cache is not None:
            attended, cache = attended
        x = self.attention_norm(x + self.dropout(attended, training=training))
        x = self.output_norm(x + self.dropout(self.feed_forward(x), training=training))
        return x if cache is None else (x, cache)

    def compute_output_spec(self, x, attention_mask=None, cache=None, **kwargs):
        out = keras.KerasTensor(x.shape, dtype=self.compute_dtype)
        if cache is None:
            return out
        return out, keras.tree.map_structure(lambda c: keras.KerasTensor(c.shape, dtype=c.dtype), cache)

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_act": self.hidden_act,
            "dropout_rate": self.dropout_rate,
            "attention_dropout_rate": self.attention_dropout_rate,
            "use_rope": self.use_rope,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "matmul_dtype": self.matmul_dtype,
        }


