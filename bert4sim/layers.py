"""Keras 3 layers for BERT-style transformers (BERT, RoFormer, UniLM).

Every layer here is serializable (``get_config``) and uses ``keras.ops``
(one exception, :func:`_bias_add`, for speed on TensorFlow), so it runs on
any Keras backend; bert4sim tests it on TensorFlow.

Numerics follow bert4keras / Google BERT: LayerNorm epsilon 1e-12, GELU by
erf, attention logits scaled by 1/sqrt(head size), masked logits replaced by
-1e12 in float32 (finite in every precision because the softmax runs in
float32).
"""
import contextlib
import math
import threading

import keras
from keras import ops

LAYER_NORM_EPSILON = 1e-12
MASKED_LOGIT = -1e12

_serializable = keras.saving.register_keras_serializable(package="bert4sim")

MATMUL_DTYPES = (None, "float32", "bfloat16", "float16")


def _check_matmul_dtype(dtype):
    if dtype not in MATMUL_DTYPES:
        raise ValueError(f"matmul_dtype must be one of {MATMUL_DTYPES}, got {dtype!r}")
    return None if dtype == "float32" else dtype


def matmul_in(dtype, x, y, equation=None):
    """``x @ y`` (or ``einsum(equation, x, y)``) with both operands cast to ``dtype`` (None: as they are).

    The result keeps ``dtype``; callers cast it back. Used for the
    ``matmul_dtype`` option of the layers below.

    Example:
        >>> matmul_in("bfloat16", x, kernel)  # bfloat16 product of float32 tensors
    """
    if dtype is not None:
        x, y = ops.cast(x, dtype), ops.cast(y, dtype)
    return ops.matmul(x, y) if equation is None else ops.einsum(equation, x, y)


class _MatmulDtype:
    """A ``matmul_dtype`` attribute that also sets itself on the sublayers named in ``_matmul_children``."""

    _matmul_children = ()

    @property
    def matmul_dtype(self):
        return getattr(self, "_matmul_dtype", None)

    @matmul_dtype.setter
    def matmul_dtype(self, dtype):
        self._matmul_dtype = _check_matmul_dtype(dtype)
        for name in self._matmul_children:
            child = getattr(self, name, None)
            if child is not None:
                child.matmul_dtype = self._matmul_dtype


@_serializable
class Dense(_MatmulDtype, keras.layers.Dense):
    """``keras.layers.Dense`` whose matrix product may run in another dtype.

    With ``matmul_dtype="bfloat16"`` the input and the kernel are cast to
    bfloat16 for the product only (several times faster on CPUs with AMX);
    the bias, the activation and the output stay in the layer's compute
    dtype (float32 unless a Keras mixed-precision policy is set), where
    elementwise work is fast. ``matmul_dtype=None`` is ``keras.layers.Dense``.

    Example:
        >>> dense = Dense(64, activation="gelu", matmul_dtype="bfloat16")
        >>> dense(keras.ops.ones((2, 32))).dtype  # float32
    """

    def __init__(self, units, matmul_dtype=None, **kwargs):
        super().__init__(units, **kwargs)
        self.matmul_dtype = matmul_dtype

    def call(self, inputs, training=None):
        keras_path = training and self.matmul_dtype in (None, self.compute_dtype)
        if keras_path or self.lora_enabled or self.quantization_mode:
            return super().call(inputs, training=training)
        return self.project(inputs)

    def project(self, inputs, kernel=None, output_dtype=None):
        """Product (in ``matmul_dtype``), bias and activation; the result in ``output_dtype``.

        ``kernel`` replaces the layer's kernel, e.g. one already cast to
        ``matmul_dtype`` once for many calls (cached decoding).
        ``output_dtype`` defaults to the compute dtype; asking for the
        product dtype (``"bfloat16"`` when feeding another bfloat16 product)
        keeps bias and activation in that dtype, where TensorFlow fuses
        them into the product's kernel at inference.

        Example:
            >>> y = dense.project(x, kernel=bfloat16_kernel)
            >>> h = dense.project(x, output_dtype="bfloat16")  # input of the next bfloat16 product
        """
        kernel = _active_copy(self, self.kernel) if kernel is None else kernel
        product_dtype = _product_dtype(self)
        output_dtype = output_dtype or self.compute_dtype
        # 2-D, so that the product is a MatMul that TensorFlow can fuse with what follows.
        x = ops.reshape(inputs, (-1, ops.shape(inputs)[-1]))
        x = matmul_in(product_dtype, x, kernel)
        if output_dtype == product_dtype:
            if self.bias is not None:
                x = _bias_add(x, ops.cast(self.bias, product_dtype))
            activation = _gelu_erf_fusable if self.activation is gelu_erf else self.activation
        else:
            x = ops.cast(x, output_dtype)
            if self.bias is not None:
                x = ops.add(x, ops.cast(self.bias, output_dtype))
            activation = self.activation
        if activation is not None:
            x = activation(x)
        return ops.reshape(x, tuple(ops.shape(inputs)[:-1]) + (self.units,))

    def get_config(self):
        return {**super().get_config(), "matmul_dtype": self.matmul_dtype}


def set_matmul_dtype(model, dtype):
    """Run the matrix products of a bert4sim model's layers in ``dtype`` (None / "float32": as computed).

    Switches, in place, every layer of ``model`` (nested models included)
    that has a ``matmul_dtype`` option: dense projections, attention
    products, the tied MLM output projection. Weights are unchanged; call
    it before the model is traced (functions traced earlier keep the old
    setting). Returns the number of layers switched.

    Example:
        >>> set_matmul_dtype(encoder, "bfloat16")   # CPU with AMX: ~2x encode and training speed
    """
    dtype = _check_matmul_dtype(dtype)
    switched = 0
    for layer in model.layers if isinstance(model, keras.Model) else [model]:
        if isinstance(layer, keras.Model):
            switched += set_matmul_dtype(layer, dtype)
        elif hasattr(layer, "matmul_dtype"):
            layer.matmul_dtype = dtype
            switched += 1
    return switched


_ACTIVE_COPIES = threading.local()


def _product_dtype(layer):
    """The dtype ``layer``'s matrix product runs in."""
    return getattr(layer, "matmul_dtype", None) or layer.compute_dtype


def _own_kernel(layer):
    """The matrix a Dense / TokenEmbedding layer multiplies by."""
    return layer.kernel if isinstance(layer, Dense) else layer.embeddings


def _active_copy(layer, kernel):
    """The copy of ``layer``'s kernel made by the innermost active :class:`CastKernels`, else ``kernel``."""
    for kernels in reversed(getattr(_ACTIVE_COPIES, "stack", [])):
        copy = kernels.copy_of(layer)
        if copy is not None:
            return copy
    return kernel


def _product_layers(layer):
    """The Dense / TokenEmbedding layers of a model or bert4sim layer, nested ones included."""
    if isinstance(layer, (Dense, TokenEmbedding)):
        yield layer
    children = layer.layers if isinstance(layer, keras.Model) else (
        getattr(layer, name, None) for name in getattr(layer, "_matmul_children", ()))
    for child in children:
        if child is not None:
            yield from _product_layers(child)


class CastKernels:
    """Copies of a model's kernels in their product dtype, cast once for many calls.

    A layer whose product runs in another dtype than its kernel
    (``matmul_dtype="bfloat16"``, a mixed-precision policy) casts the kernel
    at every call: per batch when encoding, per step when decoding. Here
    each such kernel (Dense kernels, the tied embedding matrix) gets a copy,
    made by :meth:`refresh`; layers traced or run inside :meth:`active` use
    the copies. Call ``refresh()`` at the start of each encoding/decoding
    call, so a model trained in between runs with its new weights. Kernels
    already in their product dtype get no copy.

    Example:
        >>> kernels = CastKernels(encoder)
        >>> @tf.function
        ... def run(ids, segs):
        ...     with kernels.active():
        ...         return encoder([ids, segs], training=False)
        >>> kernels.refresh(); vectors = run(ids, segs)
    """

    def __init__(self, model):
        self.copies = {}  # id(layer) -> (kernel, copy)
        for layer in _product_layers(model):
            kernel, dtype = _own_kernel(layer), _product_dtype(layer)
            if id(layer) not in self.copies and kernel.dtype != dtype:
                copy = keras.Variable(ops.zeros(kernel.shape, dtype), dtype=dtype, trainable=False,
                                      name=f"{layer.name}_{dtype}_copy")
                self.copies[id(layer)] = (kernel, copy)
        self._refresh = None

    def refresh(self):
        """Cast every kernel into its copy (one compiled call)."""
        if not self.copies:
            return
        if self._refresh is None:
            import tensorflow as tf

            def cast_all():
                for kernel, copy in self.copies.values():
                    copy.assign(ops.cast(kernel, copy.dtype))
                return 0

            self._refresh = tf.function(cast_all) if keras.backend.backend() == "tensorflow" else cast_all
        self._refresh()

    def copy_of(self, layer):
        """``layer``'s copy, or None (no copy, or one made before its matmul_dtype was switched)."""
        _, copy = self.copies.get(id(layer), (None, None))
        return copy if copy is not None and copy.dtype == _product_dtype(layer) else None

    @contextlib.contextmanager
    def active(self):
        """Within this block (at trace time for compiled functions) layers use the copies."""
        stack = _ACTIVE_COPIES.__dict__.setdefault("stack", [])
        stack.append(self)
        try:
            yield self
        finally:
            stack.pop()


def gelu_erf(x):
    """GELU by erf, as Google BERT: ``0.5 * x * (1 + erf(x / sqrt(2)))``.

    Written out because it runs about twice as fast on CPU as
    ``keras.activations.gelu(approximate=False)`` with the same values.

    Example:
        >>> gelu_erf(keras.ops.convert_to_tensor([0.0, 1.0]))  # [0.0, 0.8413]
    """
    return 0.5 * x * (1.0 + ops.erf(x * (1.0 / math.sqrt(2.0))))


def _gelu_erf_fusable(x):
    """:func:`gelu_erf` in the op order TensorFlow's oneDNN graph rewrite fuses, with the
    MatMul and BiasAdd before it, into one kernel (inference graphs; any float dtype)."""
    constant = lambda value: ops.cast(value, x.dtype)  # noqa: E731
    return ((ops.erf(x * constant(1.0 / math.sqrt(2.0))) + constant(1.0)) * constant(0.5)) * x


def _bias_add(x, bias):
    """``x + bias`` over the last axis.

    On TensorFlow this is ``tf.nn.bias_add``: TF's oneDNN rewrite fuses a
    MatMul + BiasAdd (+ GELU / ReLU) into one kernel, but not an AddV2
    (measured on a [1728, 384] x [384, 1536] product with GELU: float32
    8.4 -> 6.3 ms, bfloat16 7.1 -> 3.0 ms).
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.nn.bias_add(x, bias)
    return ops.add(x, bias)


_GELU_VERSION = ["erf"]


def set_gelu(version):
    """Choose what ``"gelu"`` means in models built afterwards: ``"erf"`` (default, Google BERT) or ``"tanh"``.

    bert4keras's switch, for checkpoints trained with the tanh approximation.

    Example:
        >>> set_gelu("tanh")
    """
    version = str(version).lower()
    if version not in ("erf", "tanh"):
        raise ValueError(f"gelu version must be 'erf' or 'tanh', got {version!r}")
    _GELU_VERSION[0] = version


def get_activation(name):
    """Map a ``hidden_act`` config value to a Keras activation.

    ``"gelu"`` is the exact (erf) form used by Google BERT; ``"gelu_new"`` /
    ``"gelu_approximate"`` the tanh approximation.

    Example:
        >>> act = get_activation("gelu")
        >>> float(act(keras.ops.convert_to_tensor(0.0)))
        0.0
    """
    if callable(name):
        return name
    if name == "gelu" and _GELU_VERSION[0] == "tanh":
        name = "gelu_approximate"
    table = {
        "gelu": gelu_erf,
        "gelu_erf": gelu_erf,
        "gelu_new": lambda x: keras.activations.gelu(x, approximate=True),
        "gelu_approximate": lambda x: keras.activations.gelu(x, approximate=True),
        "relu": keras.activations.relu,
        "swish": keras.activations.silu,
        "silu": keras.activations.silu,
        "tanh": keras.activations.tanh,
        "linear": keras.activations.linear,
        None: keras.activations.linear,
    }
    if name not in table:
        raise ValueError(
            f"unknown activation {name!r}; expected one of "
            f"{sorted(k for k in table if k)}"
        )
    return table[name]


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
class TokenEmbedding(_MatmulDtype, keras.layers.Layer):
    """Token embedding whose matrix also serves as the tied output projection.

    ``layer(ids)`` looks rows up; ``layer(hidden, reverse=True)`` returns
    ``hidden @ embeddings.T`` (logits over the vocabulary).

    Example:
        >>> emb = TokenEmbedding(100, 64)
        >>> logits = emb(emb(keras.ops.array([[3, 4]])), reverse=True)  # [1, 2, 100]
    """

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

    def call(self, inputs, reverse=False):
        if reverse:
            return self.logits(inputs)
        return ops.take(self.embeddings, ops.cast(inputs, "int32"), axis=0)

    def logits(self, inputs, embeddings=None):
        """``inputs @ embeddings.T`` (in ``matmul_dtype`` if set), in ``inputs``' dtype.

        ``embeddings`` replaces the layer's matrix, e.g. one already cast
        once for many calls (cached decoding).

        Example:
            >>> logits = emb.logits(hidden)   # what emb(hidden, reverse=True) returns
        """
        embeddings = _active_copy(self, self.embeddings) if embeddings is None else embeddings
        # [N, H] x [V, H] -> [N, V] contracts the matrix as stored: no transposed copy of
        # it in the forward pass, and its gradient comes out in its own [V, H] layout.
        flat = ops.reshape(inputs, (-1, self.output_dim))
        logits = ops.cast(matmul_in(self.matmul_dtype or inputs.dtype, flat, embeddings, "nh,vh->nv"), inputs.dtype)
        return ops.reshape(logits, tuple(ops.shape(inputs)[:-1]) + (self.input_dim,))

    def compute_output_spec(self, inputs, reverse=False):
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
class MultiHeadAttention(_MatmulDtype, keras.layers.Layer):
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
class FeedForward(_MatmulDtype, keras.layers.Layer):
    """Position-wise feed-forward: ``W2 · act(W1 · x)`` (BERT's intermediate/output).

    Example:
        >>> y = FeedForward(intermediate_size=128, activation="gelu")(x)
    """

    _matmul_children = ("inner_dense", "output_dense")

    def __init__(self, intermediate_size, activation="gelu", kernel_initializer="glorot_uniform",
                 matmul_dtype=None, **kwargs):
        super().__init__(**kwargs)
        self.intermediate_size = int(intermediate_size)
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.inner_dense = Dense(
            self.intermediate_size,
            activation=get_activation(activation),
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
class TransformerBlock(_MatmulDtype, keras.layers.Layer):
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
        self.hidden_act = hidden_act
        self.dropout_rate = float(dropout_rate)
        self.attention_dropout_rate = float(attention_dropout_rate)
        self.use_rope = bool(use_rope)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.attention = None
        self.feed_forward = FeedForward(
            self.intermediate_size, hidden_act, self.kernel_initializer, name="ffn", dtype=self.dtype_policy
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


# --------------------------------------------------------------------------
# Heads
# --------------------------------------------------------------------------


@_serializable
class Pooler(_MatmulDtype, keras.layers.Layer):
    """BERT pooler: a dense layer on the first ([CLS]) position.

    ``activation="tanh"`` is BERT's; ``"linear"`` is what SimBERT and
    RoFormer-Sim use (``with_pool='linear'``).

    Example:
        >>> pooled = Pooler(64, activation="linear")(sequence_output)  # [B, 64]
    """

    _matmul_children = ("dense",)

    def __init__(self, units, activation="tanh", kernel_initializer="glorot_uniform", matmul_dtype=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.dense = Dense(
            self.units,
            activation=get_activation(activation),
            kernel_initializer=self.kernel_initializer,
            name="dense",
            dtype=self.dtype_policy,
        )
        self.matmul_dtype = matmul_dtype

    def build(self, input_shape):
        self.dense.build((input_shape[0], input_shape[-1]))
        self.built = True

    def call(self, inputs):
        return self.dense(inputs[:, 0])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "matmul_dtype": self.matmul_dtype,
        }


@_serializable
class MLMTransform(_MatmulDtype, keras.layers.Layer):
    """The MLM head's transform: dense + activation + LayerNorm (``cls/predictions/transform``).

    Example:
        >>> h = MLMTransform(activation="gelu")(sequence_output)
    """

    _matmul_children = ("dense",)

    def __init__(
        self,
        activation="gelu",
        kernel_initializer="glorot_uniform",
        layer_norm_epsilon=LAYER_NORM_EPSILON,
        matmul_dtype=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.dense = None
        self.norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="norm", dtype=self.dtype_policy
        )
        self.matmul_dtype = matmul_dtype

    def build(self, input_shape):
        self.dense = Dense(
            input_shape[-1],
            activation=get_activation(self.activation),
            kernel_initializer=self.kernel_initializer,
            name="dense",
            dtype=self.dtype_policy,
            matmul_dtype=self.matmul_dtype,
        )
        self.dense.build(input_shape)
        self.norm.build(input_shape)
        self.built = True

    def call(self, inputs):
        return self.norm(self.dense(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "activation": self.activation,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "matmul_dtype": self.matmul_dtype,
        }


@_serializable
class MLMBias(keras.layers.Layer):
    """Adds the MLM ``output_bias`` and applies softmax (or nothing if linear, or with ``logits_only=True``).

    The softmax is computed in float32, so mixed-precision models return
    float32 probabilities.

    Example:
        >>> probs = MLMBias(vocab_size, activation="softmax")(logits)
    """

    def __init__(self, units, activation="softmax", **kwargs):
        super().__init__(**kwargs)
        if activation not in ("softmax", "linear"):
            raise ValueError(f"MLMBias activation must be 'softmax' or 'linear', got {activation!r}")
        self.units = int(units)
        self.activation = activation

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="output_bias")
        self.built = True

    def call(self, inputs, logits_only=False):
        logits = ops.cast(inputs, "float32") + ops.cast(self.bias, "float32")
        if self.activation == "softmax" and not logits_only:
            return ops.softmax(logits, axis=-1)
        return logits

    def compute_output_spec(self, inputs, logits_only=False):
        return keras.KerasTensor(inputs.shape, dtype="float32")

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation}


@_serializable
class Pooling(keras.layers.Layer):
    """Sentence vector from token vectors: ``cls``, ``mean`` or ``max``, padding excluded.

    Inputs ``[sequence_output, token_ids]``; positions whose token id is 0
    (padding) do not count. ``normalize=True`` returns unit vectors.

    Example:
        >>> vectors = Pooling("mean")([sequence_output, token_ids])   # [B, H]
    """

    MODES = ("cls", "mean", "max")

    def __init__(self, mode="mean", normalize=False, **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"Pooling mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.normalize = bool(normalize)

    def call(self, inputs):
        sequence, token_ids = inputs
        if self.mode == "cls":
            pooled = sequence[:, 0]
        else:
            valid = ops.cast(ops.not_equal(token_ids, 0), sequence.dtype)[..., None]
            if self.mode == "mean":
                pooled = ops.sum(sequence * valid, axis=1) / ops.maximum(ops.sum(valid, axis=1), 1.0)
            else:
                lowest = ops.cast(-1e4 if sequence.dtype == "float16" else -1e9, sequence.dtype)
                pooled = ops.max(ops.where(valid > 0, sequence, lowest), axis=1)
        if self.normalize:
            pooled = pooled / ops.maximum(ops.norm(pooled, axis=-1, keepdims=True), 1e-12)
        return pooled

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "normalize": self.normalize}


# --- RetroMAE ---


@_serializable
class RetroMAEStreams(keras.layers.Layer):
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


@_serializable
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

from bert4sim.loss_layer import Loss  # noqa: E402,F401  (bert4keras kept Loss in layers)
