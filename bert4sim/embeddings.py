"""Embedding layers: the tied token embedding, learned and sinusoidal position embeddings, bert4keras's ``Embedding``.

:class:`TokenEmbedding` is the builder's token table: a lookup, and with
``reverse=True`` the tied output projection of the MLM head; with
``mask_zero`` it gives its output bert4keras's padding mask (token id 0
masked, the first position never). :class:`PositionEmbedding` and
:class:`SinusoidalPositionEmbedding` take bert4keras's options
(``merge_mode`` ``add`` / ``mul`` / ``zero`` / ``concat``, custom position
ids, hierarchical decomposition for sequences longer than the table).
:class:`Embedding` is ``keras.layers.Embedding`` with bert4keras's
``mode='dense'`` call. All are serializable and use ``keras.ops``.

Example:
    >>> x = TokenEmbedding(100, 64, mask_zero=True)(token_ids)          # carries the padding mask
    >>> x = PositionEmbedding(512, 64, embeddings_initializer="zeros")(x)
    >>> table = sinusoidal_embeddings(keras.ops.arange(8, dtype="float32"), 64)   # [8, 64]
"""
import keras
from keras import ops

from bert4sim.precision import MatmulDtype, matmul_in

_serializable = keras.saving.register_keras_serializable(package="bert4sim")
MERGE_MODES = ("add", "mul", "zero", "concat")


def first_token_kept(mask):
    """``mask`` (bool ``[batch, length]``) with its first column set: bert4keras never masks position 0.

    Example:
        >>> first_token_kept(keras.ops.array([[False, True, False]]))   # [[True, True, False]]
    """
    return ops.concatenate([ops.ones_like(mask[:, :1]), mask[:, 1:]], axis=1)


def token_mask(token_ids):
    """bert4keras's padding mask of a batch of token ids: id 0 is masked except at the first position.

    Example:
        >>> token_mask(keras.ops.array([[0, 5, 0]]))   # [[True, True, False]]
    """
    return first_token_kept(ops.not_equal(token_ids, 0))


def sinusoidal_embeddings(positions, dim, base=10000):
    """Sinusoidal embeddings of (float) ``positions``: ``[..., dim]``, interleaved ``[sin, cos, sin, cos, ...]``.

    Pair ``i`` of position ``p`` is ``(sin(p·w_i), cos(p·w_i))`` with
    ``w_i = base**(-2i/dim)``: bert4keras's layout, which RoFormer's rotary
    position embedding reads.

    Example:
        >>> sinusoidal_embeddings(keras.ops.arange(4, dtype="float32"), 8).shape
        (4, 8)
    """
    if dim % 2:
        raise ValueError(f"sinusoidal embeddings need an even dimension, got {dim}")
    positions = ops.cast(positions, "float32")
    frequencies = ops.power(float(base), -2.0 * ops.arange(dim // 2, dtype="float32") / dim)
    angles = ops.expand_dims(positions, -1) * frequencies
    pairs = ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1)
    return ops.reshape(pairs, tuple(ops.shape(angles)[:-1]) + (dim,))


def merge_positions(inputs, embeddings, merge_mode):
    """Combine a sequence ``[batch, length, d]`` with its position embeddings as bert4keras's ``merge_mode`` says.

    ``add``: ``x + e``; ``mul``: ``x * (e + 1)``; ``zero``: ``e`` alone;
    ``concat``: ``[x, e]`` on the last axis (``e`` broadcast over the batch).

    Example:
        >>> merge_positions(x, table[None, :length], "add")
    """
    embeddings = ops.cast(embeddings, inputs.dtype)
    if merge_mode == "add":
        return inputs + embeddings
    if merge_mode == "mul":
        return inputs * (embeddings + 1.0)
    if merge_mode == "zero":
        return embeddings
    shape = ops.shape(inputs)
    embeddings = ops.broadcast_to(embeddings, (shape[0], shape[1], ops.shape(embeddings)[-1]))
    return ops.concatenate([inputs, embeddings], axis=-1)


def _check_merge_mode(merge_mode):
    if merge_mode not in MERGE_MODES:
        raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
    return merge_mode


def _merged_shape(input_shape, output_dim, merge_mode, custom_position_ids):
    shape = tuple(input_shape[0] if custom_position_ids else input_shape)
    if merge_mode == "concat":
        last = None if shape[-1] is None else shape[-1] + output_dim
        return shape[:-1] + (last,)
    return shape[:-1] + (output_dim,)


@_serializable
class TokenEmbedding(MatmulDtype, keras.layers.Layer):
    """Token embedding whose matrix also serves as the tied output projection.

    ``layer(ids)`` looks rows up; ``layer(hidden, reverse=True)`` returns
    ``hidden @ embeddings.T`` (logits over the vocabulary). With
    ``mask_zero=True`` the looked-up sequence carries bert4keras's padding
    mask (:func:`token_mask`) and the reverse product passes its input's
    mask on.

    Example:
        >>> emb = TokenEmbedding(100, 64)
        >>> logits = emb(emb(keras.ops.array([[3, 4]])), reverse=True)  # [1, 2, 100]
    """

    _product_kernel = "embeddings"

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", matmul_dtype=None, mask_zero=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.matmul_dtype = matmul_dtype
        self.mask_zero = bool(mask_zero)

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

    def compute_mask(self, inputs, mask=None):
        if len(inputs.shape) != 2:  # the reverse product: [batch, length, hidden] keeps its mask
            return mask
        return token_mask(inputs) if self.mask_zero else None

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
            "mask_zero": self.mask_zero,
        }


@_serializable
class PositionEmbedding(keras.layers.Layer):
    """Learned absolute position embedding (bert4keras's ``PositionEmbedding``).

    ``input_dim`` rows; ``output_dim`` defaults to the input's width.
    ``merge_mode``: ``add`` (BERT), ``mul``, ``zero`` (the embeddings alone)
    or ``concat``. ``custom_position_ids=True``: the layer is called on
    ``[x, position_ids]`` and gathers those rows. ``hierarchical`` (True =
    0.4, or a float alpha) decomposes position ``p`` into ``p // input_dim``
    and ``p % input_dim`` so sequences up to ``input_dim**2`` long work
    (https://kexue.fm/archives/7947). ``start_index`` shifts the positions
    (cached decoding). The input's mask passes through.

    Example:
        >>> x = PositionEmbedding(512)(x)                     # adds rows 0..L-1
        >>> x = PositionEmbedding(512)(x, start_index=7)      # rows 7..L+6
        >>> x = PositionEmbedding(64, 32, custom_position_ids=True)([x, position_ids])
    """

    def __init__(self, input_dim, output_dim=None, merge_mode="add", hierarchical=None,
                 embeddings_initializer="zeros", custom_position_ids=False, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = int(input_dim)
        self.output_dim = None if output_dim is None else int(output_dim)
        self.merge_mode = _check_merge_mode(merge_mode)
        self.hierarchical = hierarchical
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.custom_position_ids = bool(custom_position_ids)
        self.supports_masking = True

    @property
    def max_length(self):
        """The number of rows (``max_position_embeddings``).

        Example:
            >>> PositionEmbedding(512).max_length
            512
        """
        return self.input_dim

    def build(self, input_shape):
        width = (input_shape[0] if self.custom_position_ids else input_shape)[-1]
        self.output_dim = self.output_dim or width
        self.embeddings = self.add_weight(
            shape=(self.input_dim, self.output_dim), initializer=self.embeddings_initializer, name="embeddings"
        )
        self.built = True

    def call(self, inputs, start_index=0):
        if self.custom_position_ids:
            inputs, positions = inputs
            positions = ops.cast(positions, "int32")
        else:
            length = inputs.shape[1]
            if not self.hierarchical and isinstance(length, int) and isinstance(start_index, int):
                if start_index + length > self.input_dim:
                    raise ValueError(f"sequence of length {start_index + length} is longer than "
                                     f"max_position_embeddings={self.input_dim}")
            # A gather rather than a slice: XLA then compiles once for any (traced) start index.
            positions = (ops.arange(ops.shape(inputs)[1]) + start_index)[None]
        if self.hierarchical:
            alpha = 0.4 if self.hierarchical is True else float(self.hierarchical)
            table = (self.embeddings - alpha * self.embeddings[:1]) / (1 - alpha)
            embeddings = (alpha * ops.take(table, positions // self.input_dim, axis=0)
                          + (1 - alpha) * ops.take(table, positions % self.input_dim, axis=0))
        else:
            embeddings = ops.take(self.embeddings, positions, axis=0)
        return merge_positions(inputs, embeddings, self.merge_mode)

    def compute_mask(self, inputs, mask=None):
        return mask[0] if self.custom_position_ids and isinstance(mask, (list, tuple)) else mask

    def compute_output_shape(self, input_shape):
        if self.output_dim is None:
            return tuple(input_shape[0] if self.custom_position_ids else input_shape)
        return _merged_shape(input_shape, self.output_dim, self.merge_mode, self.custom_position_ids)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "merge_mode": self.merge_mode,
            "hierarchical": self.hierarchical,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "custom_position_ids": self.custom_position_ids,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "max_length" in config:  # the configuration bert4sim 0.1 saved
            config["input_dim"] = config.pop("max_length")
        return cls(**config)


@_serializable
class SinusoidalPositionEmbedding(keras.layers.Layer):
    """Fixed sin/cos position embedding (bert4keras's ``SinusoidalPositionEmbedding``).

    ``output_dim`` features by :func:`sinusoidal_embeddings` of positions
    ``0..L-1`` (or of ``[x, position_ids]`` with ``custom_position_ids``),
    merged as ``merge_mode`` says; RoFormer uses ``merge_mode='zero'`` to
    get the table its rotary attention reads.

    Example:
        >>> table = SinusoidalPositionEmbedding(64, merge_mode="zero")(x)   # [1, L, 64]
    """

    def __init__(self, output_dim, merge_mode="add", custom_position_ids=False, **kwargs):
        super().__init__(**kwargs)
        self.output_dim = int(output_dim)
        self.merge_mode = _check_merge_mode(merge_mode)
        self.custom_position_ids = bool(custom_position_ids)
        self.supports_masking = True

    def call(self, inputs):
        if self.custom_position_ids:
            inputs, positions = inputs
        else:
            positions = ops.arange(ops.shape(inputs)[1], dtype="float32")[None]
        return merge_positions(inputs, sinusoidal_embeddings(positions, self.output_dim), self.merge_mode)

    def compute_mask(self, inputs, mask=None):
        return mask[0] if self.custom_position_ids and isinstance(mask, (list, tuple)) else mask

    def compute_output_spec(self, inputs):
        x = inputs[0] if self.custom_position_ids else inputs
        shape = _merged_shape(x.shape, self.output_dim, self.merge_mode, False)
        if self.merge_mode == "zero" and not self.custom_position_ids:
            shape = (1,) + shape[1:]
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "output_dim": self.output_dim, "merge_mode": self.merge_mode,
                "custom_position_ids": self.custom_position_ids}


@_serializable
class Embedding(keras.layers.Embedding):
    """``keras.layers.Embedding`` with bert4keras's two additions.

    ``call(x, mode='dense')`` is ``x @ embeddings.T`` (the tied output
    projection, no bias); with ``mask_zero=True`` the mask of the looked-up
    ids never hides the first position (bert4keras's rule), and a dense
    call passes its input's mask on.

    Example:
        >>> emb = Embedding(100, 64, mask_zero=True)
        >>> logits = emb(emb(token_ids), mode="dense")    # [batch, length, 100]
    """

    def call(self, inputs, mode="embedding"):
        if mode == "embedding":
            return super().call(inputs)
        if mode != "dense":
            raise ValueError(f"Embedding mode must be 'embedding' or 'dense', got {mode!r}")
        return ops.matmul(inputs, ops.transpose(ops.cast(self.embeddings, inputs.dtype)))

    def compute_mask(self, inputs, mask=None):
        if len(inputs.shape) != 2:
            return mask
        if not self.mask_zero:
            return None
        return token_mask(inputs)

    def compute_output_spec(self, inputs, mode="embedding"):
        if mode == "dense":
            return keras.KerasTensor(inputs.shape[:-1] + (self.input_dim,), dtype=self.compute_dtype)
        return keras.KerasTensor(inputs.shape + (self.output_dim,), dtype=self.compute_dtype)
