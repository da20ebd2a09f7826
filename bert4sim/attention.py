"""Multi-head attention: RoPE (two forms), attention normalizations, bert4sim's ``Attention`` and bert4keras's ``MultiHeadAttention``.

:class:`Attention` is the attention of bert4sim's transformer blocks (a
boolean mask, an additive bias, RoPE, a key/value cache, products in
``matmul_dtype``); :class:`MultiHeadAttention` is the same layer with
bert4keras's arguments and call convention (``[q, k, v, a_bias, p_bias]``).
Both are re-exported by :mod:`bert4sim.layers`.

Example:
    >>> out = Attention(num_heads=2, head_size=32, use_rope=True)(x, attention_mask=mask)
    >>> o = MultiHeadAttention(heads=2, head_size=32)([x, x, x])
"""
import math

import keras
from keras import ops

from bert4sim import unprovided
from bert4sim.precision import Dense, MatmulDtype, matmul_in

MASKED_LOGIT = -1e12
NORMALIZATIONS = ("softmax", "squared_relu", "softmax_plus")

_serializable = keras.saving.register_keras_serializable(package="bert4sim")


# --------------------------------------------------------------------------
# Rotary position embedding (RoFormer, bert4keras convention)
# --------------------------------------------------------------------------


def rotary_position_embedding(x, positions, base=10000.0):
    """Rotate adjacent feature pairs of ``x`` by position-dependent angles.

    ``x`` is ``[batch, length, heads, head_size]`` and ``positions`` float
    positions ``[length]`` or ``[batch, length]``. Pair ``(x[2i], x[2i+1])``
    at position ``m`` is rotated by ``m * base**(-2i/head_size)``, as
    bert4keras's RoFormer does; so a query/key dot product depends only on
    the relative position.

    Example:
        >>> q = rotary_position_embedding(q, keras.ops.arange(8, dtype="float32"))
    """
    head_size = x.shape[-1]
    if head_size is None or head_size % 2:
        raise ValueError(f"RoPE needs an even, known head size; got {head_size}")
    pair_index = ops.arange(head_size // 2, dtype="float32")
    inverse_frequency = ops.power(10000.0 if base is None else base, -2.0 * pair_index / head_size)
    angles = ops.expand_dims(ops.cast(positions, "float32"), -1) * inverse_frequency
    if len(angles.shape) == 2:
        angles = angles[None]
    sin, cos = ops.sin(angles), ops.cos(angles)
    # (even, odd) -> (even*cos - odd*sin, odd*cos + even*sin), as pair * cos + swapped pair * (-sin, sin):
    # the same values as the two-line form, in fewer passes over x.
    cos = ops.cast(cos, x.dtype)[:, :, None, :, None]
    signed_sin = ops.cast(ops.stack([-sin, sin], axis=-1), x.dtype)[:, :, None]
    pairs = ops.reshape(x, tuple(ops.shape(x)[:-1]) + (head_size // 2, 2))
    rotated = pairs * cos + ops.flip(pairs, axis=-1) * signed_sin
    return ops.reshape(rotated, ops.shape(x))


def apply_rotary_position_embeddings(sinusoidal, *tensors):
    """bert4keras's form of RoPE: rotate each tensor by a sinusoidal table (``[batch|1, length, dim]``).

    The table is :func:`bert4sim.embeddings.sinusoidal_embeddings` of the
    positions (``[sin, cos, ...]`` interleaved); the tensors are
    ``[batch, length, dim]`` or ``[batch, length, heads, dim]``. Returns the
    rotated tensor, or a list of them.

    Example:
        >>> q, k = apply_rotary_position_embeddings(SinusoidalPositionEmbedding(64, "zero")(x), q, k)
    """
    rotated = []
    for x in tensors:
        table = ops.cast(sinusoidal, x.dtype)
        if len(x.shape) == 4:
            table = ops.expand_dims(table, 2)
        cos = ops.repeat(table[..., 1::2], 2, axis=-1)
        sin = ops.repeat(table[..., ::2], 2, axis=-1)
        swapped = ops.reshape(ops.stack([-x[..., 1::2], x[..., ::2]], axis=-1), ops.shape(x))
        rotated.append(x * cos + swapped * sin)
    return rotated[0] if len(rotated) == 1 else rotated


def attention_normalize(logits, keep=None, method="softmax", axis=-1):
    """Attention weights from (scaled) logits: ``softmax``, ``squared_relu`` or ``softmax_plus``.

    ``keep`` (bool, broadcastable to ``logits``) hides the keys where it is
    False. ``squared_relu`` is ``relu(a)² / n`` (https://arxiv.org/abs/2202.10447),
    ``softmax_plus`` scales the logits by ``log(max(n, 16)) / log(512)``
    before the softmax (https://kexue.fm/archives/8823); ``n`` is the number
    of visible keys.

    Example:
        >>> probs = attention_normalize(scores, keep=mask[:, None], method="softmax")
    """
    if method not in NORMALIZATIONS:
        raise ValueError(f"attention normalization must be one of {NORMALIZATIONS}, got {method!r}")
    if keep is not None:
        logits = ops.where(keep, logits, ops.cast(MASKED_LOGIT, logits.dtype))
    if method == "softmax":
        return ops.softmax(logits, axis=axis)
    if keep is None:
        count = ops.cast(ops.shape(logits)[axis], logits.dtype)
    else:
        count = ops.sum(ops.cast(ops.broadcast_to(keep, ops.shape(logits)), logits.dtype), axis=axis, keepdims=True)
    if method == "squared_relu":
        return ops.square(ops.relu(logits)) / count
    return ops.softmax(logits * ops.log(ops.maximum(count, 16.0)) / math.log(512.0), axis=axis)


# --------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------


@_serializable
class Attention(MatmulDtype, keras.layers.Layer):
    """Multi-head attention with a boolean mask, an additive bias, RoPE and a KV cache.

    ``call(query, value=None, attention_mask=None, cache=None,
    cache_update_index=None, key=None, attention_bias=None, positions=None,
    rotary=None)``: ``attention_mask`` is bool ``[batch, Lq, Lk]`` (True =
    may attend); ``attention_bias`` a float ``[batch, (heads,) Lq, Lk]``
    added to the scaled logits; ``key`` defaults to ``value``. With
    ``use_rope`` queries and keys are rotated by their positions (``0..L-1``
    from ``cache_update_index``, or ``positions`` ``[batch, L]``); ``rotary``
    (a sinusoidal table) rotates them as bert4keras's ``p_bias='rotary'``.
    With ``cache`` (``[batch, 2, heads, max_len, head_size]`` or a pair)
    the new keys/values are written at ``cache_update_index``, attention
    runs over the whole buffer and ``(output, cache)`` is returned.
    ``key_size`` (query/key width per head, default ``head_size``),
    ``use_bias``, ``attention_scale`` (divide by sqrt(key_size)),
    ``normalization`` (:func:`attention_normalize`) and
    ``return_attention_scores`` (also return the scaled logits, before bias
    and mask) are bert4keras's options. ``matmul_dtype`` (e.g.
    ``"bfloat16"``) runs the projections and both attention products in
    that dtype; the softmax stays float32.

    Example:
        >>> attention = Attention(num_heads=2, head_size=32, use_rope=True)
        >>> out = attention(x, attention_mask=mask)
    """

    _matmul_children = ("query_dense", "key_dense", "value_dense", "output_dense")

    def __init__(self, num_heads, head_size, output_dim=None, use_rope=False, dropout_rate=0.0,
                 kernel_initializer="glorot_uniform", matmul_dtype=None, key_size=None, use_bias=True,
                 attention_scale=True, normalization="softmax", return_attention_scores=False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.head_size = int(head_size)
        self.key_size = int(key_size or head_size)
        self.output_dim = output_dim
        self.use_rope = bool(use_rope)
        self.dropout_rate = float(dropout_rate or 0.0)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.use_bias = bool(use_bias)
        self.attention_scale = bool(attention_scale)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.normalization = normalization
        self.return_attention_scores = bool(return_attention_scores)
        self.query_dense = self._dense(self.num_heads * self.key_size, "query")
        self.key_dense = self._dense(self.num_heads * self.key_size, "key")
        self.value_dense = self._dense(self.num_heads * self.head_size, "value")
        self.output_dense = None
        self.matmul_dtype = matmul_dtype
        self.dropout = keras.layers.Dropout(self.dropout_rate, dtype=self.dtype_policy)
        self.supports_masking = True

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        self.query_dense.build(query_shape)
        self.key_dense.build(value_shape if key_shape is None else key_shape)
        self.value_dense.build(value_shape)
        self.output_dense = self._dense(self.output_dim or query_shape[-1], "output")
        self.output_dense.build(tuple(query_shape[:-1]) + (self.num_heads * self.head_size,))
        self.built = True

    def _dense(self, units, name):
        return Dense(units, kernel_initializer=self.kernel_initializer, use_bias=self.use_bias, name=name,
                     dtype=self.dtype_policy, matmul_dtype=self.matmul_dtype)

    def _split_heads(self, x, size):
        return ops.reshape(x, (ops.shape(x)[0], -1, self.num_heads, size))

    def call(self, query, value=None, attention_mask=None, cache=None, cache_update_index=None, training=None,
             key=None, attention_bias=None, positions=None, rotary=None):
        value = query if value is None else value
        key = value if key is None else key
        # Inference with low-precision products: what only feeds a product stays in that
        # dtype (no round trip through float32); RoPE'd queries/keys are rotated in float32.
        rotated = self.use_rope or rotary is not None
        low = self.matmul_dtype not in (None, self.compute_dtype) and not training
        feed_dtype = self.matmul_dtype if low else self.compute_dtype

        def project(dense, x, keep_low):
            return dense.project(x, output_dtype=feed_dtype) if keep_low else dense(x)

        q = self._split_heads(project(self.query_dense, query, low and not rotated), self.key_size)
        k = self._split_heads(project(self.key_dense, key, low and not rotated), self.key_size)
        v = self._split_heads(project(self.value_dense, value, low), self.head_size)
        start = 0 if cache_update_index is None else cache_update_index
        if rotary is not None:
            q, k = apply_rotary_position_embeddings(rotary, q, k)
        elif self.use_rope:
            q_positions = ops.arange(ops.shape(q)[1]) + start if positions is None else positions
            k_positions = ops.arange(ops.shape(k)[1]) + start if positions is None else positions
            q = rotary_position_embedding(q, q_positions)
            k = rotary_position_embedding(k, k_positions)
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
        scale = math.sqrt(self.key_size) if self.attention_scale else 1.0
        if self.matmul_dtype in (None, self.compute_dtype):
            logits = ops.einsum("bhqd,bhkd->bhqk", q, k) / scale
        else:
            logits = ops.cast(matmul_in(self.matmul_dtype, q, k, "bhqd,bhkd->bhqk"), "float32") / scale
        scores = logits = ops.cast(logits, "float32")
        if attention_bias is not None:
            bias = ops.cast(attention_bias, "float32")
            logits = logits + (ops.expand_dims(bias, 1) if len(bias.shape) == 3 else bias)
        keep = None if attention_mask is None else ops.expand_dims(attention_mask, 1)
        probs = ops.cast(attention_normalize(logits, keep, self.normalization), feed_dtype)
        probs = self.dropout(probs, training=training)
        v = ops.cast(v, feed_dtype)
        context = ops.cast(matmul_in(self.matmul_dtype, probs, v, "bhqk,bhkd->bhqd"), feed_dtype)
        context = ops.transpose(context, (0, 2, 1, 3))
        context = ops.reshape(context, (ops.shape(context)[0], -1, self.num_heads * self.head_size))
        output = self.output_dense(context)
        if cache is not None:
            return output, cache
        return (output, scores) if self.return_attention_scores else output

    def compute_mask(self, query, mask=None):
        if self.return_attention_scores:
            return [mask, None]
        return mask

    def compute_output_spec(self, query, value=None, attention_mask=None, cache=None, **kwargs):
        dim = self.output_dim or query.shape[-1]
        out = keras.KerasTensor(query.shape[:-1] + (dim,), dtype=self.compute_dtype)
        if cache is not None:
            return out, keras.tree.map_structure(lambda c: keras.KerasTensor(c.shape, dtype=c.dtype), cache)
        if self.return_attention_scores:
            keys = (kwargs.get("key") if kwargs.get("key") is not None else query if value is None else value)
            scores = (query.shape[0], self.num_heads, query.shape[1], keys.shape[1])
            return out, keras.KerasTensor(scores, dtype="float32")
        return out

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
            "key_size": self.key_size,
            "use_bias": self.use_bias,
            "attention_scale": self.attention_scale,
            "normalization": self.normalization,
            "return_attention_scores": self.return_attention_scores,
        }


@_serializable
class MultiHeadAttention(Attention):
    """bert4keras's ``MultiHeadAttention``: :class:`Attention` with bert4keras's arguments and call.

    ``MultiHeadAttention(heads, head_size, out_dim=None, key_size=None,
    use_bias=True, normalization='softmax', attention_scale=True,
    attention_dropout=None, return_attention_scores=False,
    kernel_initializer='glorot_uniform')``, called on ``[q, k, v]`` plus,
    with ``a_bias=True``, an attention bias (bool: a mask, float: added to
    the logits) and, with ``p_bias='rotary'``, a sinusoidal table
    (RoFormer). Keys are masked by the Keras mask of ``v``. :class:`Attention`'s
    own keywords and call (``use_rope``, ``matmul_dtype``,
    ``attention_mask=`` ...) work too.

    Example:
        >>> o = MultiHeadAttention(heads=2, head_size=32)([x, x, x, lm_mask], a_bias=True)
    """

    def __init__(self, heads=None, head_size=None, out_dim=None, key_size=None, use_bias=True,
                 normalization="softmax", attention_scale=True, attention_dropout=None,
                 return_attention_scores=False, kernel_initializer="glorot_uniform", **kwargs):
        heads = kwargs.pop("num_heads", heads)
        out_dim = kwargs.pop("output_dim", out_dim)
        dropout = kwargs.pop("dropout_rate", attention_dropout)
        if heads is None or head_size is None:
            raise TypeError("MultiHeadAttention needs heads and head_size")
        super().__init__(heads, head_size, output_dim=out_dim, dropout_rate=dropout, key_size=key_size,
                         use_bias=use_bias, normalization=normalization, attention_scale=attention_scale,
                         return_attention_scores=return_attention_scores, kernel_initializer=kernel_initializer,
                         **kwargs)

    def build(self, inputs_shape, value_shape=None):
        if isinstance(inputs_shape, (list, tuple)) and isinstance(inputs_shape[0], (list, tuple)):
            q, k, v = inputs_shape[:3]
            return super().build(q, v, k)
        return super().build(inputs_shape, value_shape)

    def call(self, inputs, value=None, mask=None, a_bias=None, p_bias=None, training=None, **kwargs):
        if not isinstance(inputs, (list, tuple)):
            return super().call(inputs, value, training=training, **kwargs)
        q, k, v = inputs[:3]
        extra = list(inputs[3:])
        keep = bias = rotary = None
        if mask is not None and mask[2] is not None:
            keep = ops.expand_dims(ops.cast(mask[2], "bool"), 1)
        if a_bias:
            given = extra.pop(0)
            if keras.backend.standardize_dtype(given.dtype) == "bool":
                given = given if len(given.shape) == 3 else ops.expand_dims(given, 0)
                keep = given if keep is None else ops.logical_and(keep, given)
            else:
                bias = given
        if p_bias == "rotary":
            rotary = extra.pop(0)
        elif p_bias is not None:
            unprovided.refuse("layers", f"MultiHeadAttention(p_bias={p_bias!r})")
        if keep is not None:
            keep = ops.broadcast_to(keep, (ops.shape(q)[0], ops.shape(q)[1], ops.shape(k)[1]))
        return super().call(q, v, key=k, attention_mask=keep, attention_bias=bias, rotary=rotary, training=training)

    def compute_mask(self, inputs, mask=None):
        if isinstance(inputs, (list, tuple)):
            mask = mask[0] if isinstance(mask, (list, tuple)) else mask
        return super().compute_mask(inputs, mask)

    def compute_output_spec(self, inputs, value=None, mask=None, a_bias=None, p_bias=None, **kwargs):
        if isinstance(inputs, (list, tuple)):
            return super().compute_output_spec(inputs[0], inputs[2], key=inputs[1])
        return super().compute_output_spec(inputs, value, **kwargs)

    def get_config(self):
        config = super().get_config()
        renamed = {"num_heads": "heads", "output_dim": "out_dim", "dropout_rate": "attention_dropout"}
        return {renamed.get(key, key): value for key, value in config.items()}
