"""Keras 3 layers for BERT-style transformers (BERT, RoFormer, UniLM): masks, RoPE, attention, feed-forward, blocks.

Also the path of bert4keras's ``layers`` module: its layer names are here
(the embeddings from :mod:`bert4sim.embeddings`, ``LayerNormalization`` and
``ScaleOffset`` from :mod:`bert4sim.normalization`, the pooling / batch
layers from :mod:`bert4sim.tensor_layers`), and a bert4keras layer bert4sim
does not provide (``ConditionalRandomField``, ``GlobalPointer``, ...) is a
:class:`bert4sim.unprovided.NotProvidedError` that names what to use instead.
Every layer is serializable (``get_config``) and uses ``keras.ops``; which
dtype the matrix products run in (``matmul_dtype``) is
:mod:`bert4sim.precision`'s; the heads are in :mod:`bert4sim.heads`.

Numerics follow bert4keras / Google BERT: LayerNorm epsilon 1e-12 (RoFormer
1e-7, as bert4keras built it), GELU by erf, attention logits scaled by
1/sqrt(key size), masked logits replaced by -1e12 in float32 (finite in
every precision because the softmax runs in float32).

Example:
    >>> block = TransformerBlock(num_heads=2, intermediate_size=128)
    >>> y = block(x, attention_mask=AttentionMask("unilm")([token_ids, segment_ids]))
    >>> o = MultiHeadAttention(heads=2, head_size=32)([x, x, x])          # bert4keras's call
"""
import functools

import keras
from keras import ops

from bert4sim import unprovided
from bert4sim.activations import get_activation, resolve_activation
from bert4sim.attention import (MASKED_LOGIT, NORMALIZATIONS, Attention, MultiHeadAttention,  # noqa: F401
                                apply_rotary_position_embeddings, attention_normalize, rotary_position_embedding)
from bert4sim.embeddings import (Embedding, PositionEmbedding, SinusoidalPositionEmbedding,  # noqa: F401
                                 TokenEmbedding, token_mask)
from bert4sim.loss_layer import Loss  # noqa: F401  (bert4keras kept Loss in layers)
from bert4sim.normalization import LayerNormalization, ScaleOffset
from bert4sim.precision import Dense, MatmulDtype
from bert4sim.tensor_layers import (BatchConcat, BatchSplit, Concatenate1D,  # noqa: F401
                                    GlobalAveragePooling1D, GlobalMaxPooling1D)

LAYER_NORM_EPSILON = 1e-12
ROFORMER_LAYER_NORM_EPSILON = 1e-7  # bert4keras's RoFormer norms use K.epsilon() (its MLM norm 1e-12)

_serializable = keras.saving.register_keras_serializable(package="bert4sim")


# --------------------------------------------------------------------------
# Masks: one function per mask pattern; the layer below is the only user.
# --------------------------------------------------------------------------


def padding_mask(token_ids):
    """Keys that are real tokens: bool ``[batch, 1, length]`` (id 0 is padding, the first position never is).

    Example:
        >>> padding_mask(keras.ops.array([[5, 7, 0]]))  # [[[True, True, False]]]
    """
    return ops.expand_dims(token_mask(token_ids), axis=1)


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


class MaskDropping(keras.layers.Layer):
    """Base of layers whose outputs are not aligned with their inputs' tokens (picked rows, other streams).

    They accept the Keras padding mask a built model's sequence output carries
    and pass none on, without Keras's "this layer destroys the mask" warning.

    Example:
        >>> class PickRows(MaskDropping):
        ...     def call(self, inputs): return inputs[:, :1]
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None


@_serializable
class AttentionMask(keras.layers.Layer):
    """Builds the boolean attention mask ``[batch, length, length]`` from ``[token_ids, segment_ids]``.

    ``mode`` is ``"padding"`` (bidirectional encoder), ``"unilm"`` (seq2seq
    from segment ids) or ``"lm"`` (causal). Padding keys (token id 0, but
    never the first position, as in bert4keras) are always hidden. True
    means "may attend". ``padding`` and ``lm`` also take the token ids alone
    (models without segments). ``segment_keys=True`` also hides keys whose
    segment id is 0 (but the first): bert4keras's key mask when the segment
    ids go through the token embedding (``shared_segment_embeddings``).

    Example:
        >>> mask = AttentionMask("unilm")([token_ids, segment_ids])
    """

    MODES = ("padding", "unilm", "lm")

    def __init__(self, mode="padding", segment_keys=False, **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"AttentionMask mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.segment_keys = bool(segment_keys)

    def call(self, inputs):
        token_ids, segment_ids = (inputs[0], inputs[1] if len(inputs) > 1 else None) \
            if isinstance(inputs, (list, tuple)) else (inputs, None)
        keys = padding_mask(token_ids)
        if self.segment_keys:
            keys = ops.logical_and(keys, padding_mask(segment_ids))
        length = ops.shape(token_ids)[1]
        if self.mode == "unilm":
            if segment_ids is None:
                raise ValueError("AttentionMask('unilm') needs [token_ids, segment_ids]")
            pattern = unilm_mask(segment_ids)
        elif self.mode == "lm":
            pattern = ops.expand_dims(causal_mask(length), 0)
        else:
            pattern = ops.ones((1, length, 1), dtype="bool")
        return ops.logical_and(pattern, keys)

    def compute_output_spec(self, inputs):
        token_ids = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        shape = (token_ids.shape[0], token_ids.shape[1], token_ids.shape[1])
        return keras.KerasTensor(shape, dtype="bool")

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "segment_keys": self.segment_keys}


# --------------------------------------------------------------------------
# Feed-forward and the transformer block
# --------------------------------------------------------------------------


@_serializable
class FeedForward(MatmulDtype, keras.layers.Layer):
    """Position-wise feed-forward ``W2 · act(W1 · x)`` (BERT's intermediate/output), bert4keras's ``FeedForward``.

    ``units`` is the inner width; ``activation`` a name, or a list of names
    for a gated linear unit (the inner projections of each activation are
    multiplied, https://arxiv.org/abs/2002.05202); ``use_bias``.

    Example:
        >>> y = FeedForward(units=128, activation="gelu")(x)
    """

    _matmul_children = ("inner_dense", "output_dense")

    def __init__(self, units, activation="relu", use_bias=True, kernel_initializer="glorot_uniform",
                 matmul_dtype=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        activations = activation if isinstance(activation, (list, tuple)) else [activation]
        if not activations:
            raise ValueError("FeedForward needs at least one activation")
        resolved = [resolve_activation(name) for name in activations]
        self.activation = resolved if isinstance(activation, (list, tuple)) else resolved[0]
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.inner_dense, *self.gate_denses = [
            Dense(self.units, activation=get_activation(name), use_bias=self.use_bias,
                  kernel_initializer=self.kernel_initializer, name="intermediate" if i == 0 else f"gate_{i}",
                  dtype=self.dtype_policy)
            for i, name in enumerate(resolved)
        ]
        self.output_dense = None
        self.matmul_dtype = matmul_dtype
        self.supports_masking = True

    @property
    def intermediate_size(self):
        """The inner width (``units``; bert4sim 0.1's name).

        Example:
            >>> FeedForward(128).intermediate_size
            128
        """
        return self.units

    def build(self, input_shape):
        for dense in [self.inner_dense, *self.gate_denses]:
            dense.build(input_shape)
        self.output_dense = Dense(
            input_shape[-1], kernel_initializer=self.kernel_initializer, use_bias=self.use_bias, name="output",
            dtype=self.dtype_policy, matmul_dtype=self.matmul_dtype,
        )
        self.output_dense.build(tuple(input_shape[:-1]) + (self.units,))
        for dense in self.gate_denses:
            dense.matmul_dtype = self.matmul_dtype
        self.built = True

    def call(self, inputs, training=None):
        if self.gate_denses or training or self.matmul_dtype in (None, self.compute_dtype):
            hidden = self.inner_dense(inputs)
            for dense in self.gate_denses:
                hidden = hidden * dense(inputs)
            return self.output_dense(hidden)
        # Inference with low-precision products: the intermediate stays in that dtype, its bias
        # and GELU fused into the first product's kernel, and feeds the second product as is.
        return self.output_dense.project(self.inner_dense.project(inputs, output_dtype=self.matmul_dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "matmul_dtype": self.matmul_dtype,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "intermediate_size" in config:  # the configuration bert4sim 0.1 saved
            config["units"] = config.pop("intermediate_size")
        return cls(**config)


def layer_norm(conditional=False, epsilon=LAYER_NORM_EPSILON, hidden_units=None, hidden_activation="linear",
               initializer="glorot_uniform", name=None, dtype=None):
    """The LayerNorm a bert4sim builder makes: Keras's, or with ``conditional`` bert4sim's conditional one.

    Call the result with :func:`apply_norm`, which passes the condition
    when there is one.

    Example:
        >>> norm = layer_norm(conditional=True, hidden_units=128, name="Embedding-Norm")
        >>> y = apply_norm(norm, x, condition)
    """
    if not conditional:
        return keras.layers.LayerNormalization(epsilon=epsilon, name=name, dtype=dtype)
    return LayerNormalization(epsilon=epsilon, conditional=True, hidden_units=hidden_units,
                              hidden_activation=hidden_activation, hidden_initializer=initializer, name=name,
                              dtype=dtype)


def apply_norm(norm, x, condition=None):
    """``norm(x)``, or ``norm([x, condition])`` for a conditional LayerNorm.

    Example:
        >>> y = apply_norm(block.attention_norm, x, condition)
    """
    if getattr(norm, "conditional", False):
        if condition is None:
            raise ValueError(f"LayerNorm {norm.name!r} is conditional: it needs the condition (layer_norm_cond)")
        return norm([x, condition])
    return norm(x)


@_serializable
class TransformerBlock(MatmulDtype, keras.layers.Layer):
    """One post-LayerNorm BERT layer: attention + residual + LN, FFN + residual + LN.

    ``call(x, attention_mask=None, cache=None, cache_update_index=None,
    condition=None, attention_bias=None, positions=None)``; with a cache it
    returns ``(x, cache)`` (see :class:`Attention`). ``head_size`` /
    ``key_size`` default to ``hidden // num_heads``. ``conditional=True``
    makes both LayerNorms conditional on ``condition`` (``[batch, c]``,
    optionally through ``condition_hidden_units`` with
    ``condition_hidden_activation``); ``return_attention_scores=True``
    returns ``(x, scores)`` for RealFormer-style residual attention (feed
    them to the next block as ``attention_bias``); ``positions``
    (``[batch, L]``) are the RoPE positions of custom position ids. The
    input's Keras mask passes through.

    Example:
        >>> block = TransformerBlock(num_heads=2, intermediate_size=128)
        >>> y = block(x, attention_mask=mask)
    """

    _matmul_children = ("attention", "feed_forward")

    def __init__(self, num_heads, intermediate_size, hidden_act="gelu", dropout_rate=0.1, attention_dropout_rate=0.1,
                 use_rope=False, kernel_initializer="glorot_uniform", layer_norm_epsilon=LAYER_NORM_EPSILON,
                 matmul_dtype=None, head_size=None, key_size=None, conditional=False, condition_hidden_units=None,
                 condition_hidden_activation="linear", return_attention_scores=False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.intermediate_size = int(intermediate_size)
        self.hidden_act = resolve_activation(hidden_act)
        self.dropout_rate = float(dropout_rate or 0.0)
        self.attention_dropout_rate = float(attention_dropout_rate or 0.0)
        self.use_rope = bool(use_rope)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.head_size = None if head_size is None else int(head_size)
        self.key_size = None if key_size is None else int(key_size)
        self.conditional = bool(conditional)
        self.condition_hidden_units = None if condition_hidden_units is None else int(condition_hidden_units)
        self.condition_hidden_activation = resolve_activation(condition_hidden_activation)
        self.return_attention_scores = bool(return_attention_scores)
        self.attention = None
        self.feed_forward = FeedForward(
            self.intermediate_size, self.hidden_act, kernel_initializer=self.kernel_initializer, name="ffn",
            dtype=self.dtype_policy
        )
        norm = functools.partial(layer_norm, self.conditional, self.layer_norm_epsilon, self.condition_hidden_units,
                                 self.condition_hidden_activation, self.kernel_initializer, dtype=self.dtype_policy)
        self.attention_norm = norm(name="attention_norm")
        self.output_norm = norm(name="output_norm")
        self.dropout = keras.layers.Dropout(self.dropout_rate, dtype=self.dtype_policy)
        self.matmul_dtype = matmul_dtype
        self.supports_masking = True

    def build(self, x_shape, condition_shape=None):
        hidden_size = x_shape[-1]
        if self.head_size is None and hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {hidden_size} is not a multiple of num_attention_heads {self.num_heads}"
            )
        self.attention = Attention(
            self.num_heads,
            self.head_size or hidden_size // self.num_heads,
            output_dim=hidden_size,
            use_rope=self.use_rope,
            dropout_rate=self.attention_dropout_rate,
            kernel_initializer=self.kernel_initializer,
            matmul_dtype=self.matmul_dtype,
            key_size=self.key_size,
            return_attention_scores=self.return_attention_scores,
            name="attention",
            dtype=self.dtype_policy,
        )
        self.attention.build(x_shape)
        self.feed_forward.build(x_shape)
        if self.conditional and condition_shape is None:
            raise ValueError(f"block {self.name!r} has conditional LayerNorms: call it with condition=[batch, c]")
        norm_shape = [x_shape, condition_shape] if self.conditional else x_shape
        self.attention_norm.build(norm_shape)
        self.output_norm.build(norm_shape)
        self.built = True

    def call(self, x, attention_mask=None, cache=None, cache_update_index=None, training=None, condition=None,
             attention_bias=None, positions=None):
        attended = self.attention(x, attention_mask=attention_mask, cache=cache, cache_update_index=cache_update_index,
                                  training=training, attention_bias=attention_bias, positions=positions)
        scores = None
        if cache is not None:
            attended, cache = attended
        elif self.return_attention_scores:
            attended, scores = attended
        x = apply_norm(self.attention_norm, x + self.dropout(attended, training=training), condition)
        x = apply_norm(self.output_norm, x + self.dropout(self.feed_forward(x), training=training), condition)
        if cache is not None:
            return x, cache
        return (x, scores) if scores is not None else x

    def compute_mask(self, x, mask=None):
        return [mask, None] if self.return_attention_scores else mask

    def compute_output_spec(self, x, attention_mask=None, cache=None, **kwargs):
        out = keras.KerasTensor(x.shape, dtype=self.compute_dtype)
        if cache is not None:
            return out, keras.tree.map_structure(lambda c: keras.KerasTensor(c.shape, dtype=c.dtype), cache)
        if self.return_attention_scores:
            return out, keras.KerasTensor((x.shape[0], self.num_heads, x.shape[1], x.shape[1]), dtype="float32")
        return out

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
            "head_size": self.head_size,
            "key_size": self.key_size,
            "conditional": self.conditional,
            "condition_hidden_units": self.condition_hidden_units,
            "condition_hidden_activation": self.condition_hidden_activation,
            "return_attention_scores": self.return_attention_scores,
        }


# --------------------------------------------------------------------------
# bert4keras's remaining layer names
# --------------------------------------------------------------------------


@_serializable
class Layer(keras.layers.Layer):
    """bert4keras's base layer: a Keras layer that passes its input's mask through.

    Example:
        >>> class Double(Layer):
        ...     def call(self, x):
        ...         return x * 2
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True


def integerize_shape(build):
    """bert4keras's decorator for ``build``: shapes as plain ints / None (Keras 3's already are).

    Example:
        >>> class MyLayer(Layer):
        ...     @integerize_shape
        ...     def build(self, input_shape): ...
    """
    @functools.wraps(build)
    def wrapped(self, input_shape):
        def plain(shape):
            if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
                return [plain(s) for s in shape]
            return None if shape is None else tuple(None if d is None else int(d) for d in shape)

        return build(self, plain(input_shape))

    return wrapped


custom_objects = {
    "Embedding": Embedding, "ScaleOffset": ScaleOffset, "Concatenate1D": Concatenate1D, "BatchSplit": BatchSplit,
    "BatchConcat": BatchConcat, "MultiHeadAttention": MultiHeadAttention, "LayerNormalization": LayerNormalization,
    "PositionEmbedding": PositionEmbedding, "SinusoidalPositionEmbedding": SinusoidalPositionEmbedding,
    "FeedForward": FeedForward, "Loss": Loss, "GlobalAveragePooling1D": GlobalAveragePooling1D,
    "GlobalMaxPooling1D": GlobalMaxPooling1D, "Layer": Layer,
}

__getattr__ = unprovided.module_getattr("layers")
