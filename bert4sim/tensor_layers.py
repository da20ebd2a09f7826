"""Small layers over whole sequences and batches, with their Keras masks: bert4keras's utility layers.

Masked global pooling (:class:`GlobalAveragePooling1D`,
:class:`GlobalMaxPooling1D`: padding steps do not count),
:class:`Concatenate1D` (sequences joined along the step axis, masks too, a
missing mask counting as all-True) and :class:`BatchSplit` /
:class:`BatchConcat` (cut a batch into parts and join them again, e.g. one
part per device). The mean and max of :func:`masked_mean` /
:func:`masked_max` also serve :class:`bert4sim.heads.Pooling`.

Example:
    >>> vectors = GlobalAveragePooling1D()(TokenEmbedding(100, 8, mask_zero=True)(token_ids))
    >>> first, second = BatchSplit(2)(x)
"""
import keras
from keras import ops

_serializable = keras.saving.register_keras_serializable(package="bert4sim")


def masked_mean(x, mask, axis=1):
    """Mean of ``x`` over ``axis`` counting only the steps where ``mask`` (``[batch, steps]``) is true.

    Example:
        >>> masked_mean(sequence_output, token_ids != 0)   # [batch, hidden]
    """
    if mask is None:
        return ops.mean(x, axis=axis)
    weights = ops.cast(mask, x.dtype)
    weights = ops.expand_dims(weights, -1) if axis == 1 else ops.expand_dims(weights, 1)
    return ops.sum(x * weights, axis=axis) / ops.sum(weights, axis=axis)


def masked_max(x, mask, axis=1, lowest=None):
    """Max of ``x`` over ``axis`` over the steps where ``mask`` is true (others count as ``lowest``, -inf by default).

    Example:
        >>> masked_max(sequence_output, token_ids != 0)   # [batch, hidden]
    """
    if mask is None:
        return ops.max(x, axis=axis)
    keep = ops.cast(mask, "bool")
    keep = ops.expand_dims(keep, -1) if axis == 1 else ops.expand_dims(keep, 1)
    lowest = ops.cast(float("-inf") if lowest is None else lowest, x.dtype)
    return ops.max(ops.where(keep, x, lowest), axis=axis)


def _step_axis(data_format):
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}")
    return 1 if data_format == "channels_last" else 2


@_serializable
class GlobalAveragePooling1D(keras.layers.Layer):
    """Mean over the steps of a sequence, padding (the input's Keras mask) excluded; any length.

    Example:
        >>> vector = GlobalAveragePooling1D()(masked_sequence)   # [batch, features]
    """

    def __init__(self, data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format
        self.axis = _step_axis(data_format)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        return masked_mean(inputs, mask, self.axis)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[3 - self.axis])

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


@_serializable
class GlobalMaxPooling1D(GlobalAveragePooling1D):
    """Max over the steps of a sequence, padding (the input's Keras mask) excluded.

    Example:
        >>> vector = GlobalMaxPooling1D()(masked_sequence)   # [batch, features]
    """

    def call(self, inputs, mask=None):
        return masked_max(inputs, mask, self.axis)


@_serializable
class Add(keras.layers.Add):
    """``keras.layers.Add`` whose output mask combines the masks of the inputs that have one (Keras 2's rule).

    Keras 3's ``Add`` drops the mask when any input has none; BERT's
    embeddings add an unmasked segment embedding to the masked token
    embedding, and bert4keras scripts read that mask downstream.

    Example:
        >>> x = Add(name="Embedding-Token-Segment")([token_vectors, segment_vectors])
    """

    def compute_mask(self, inputs, mask=None):
        masks = [m for m in (mask or []) if m is not None]
        if not masks:
            return None
        combined = ops.cast(masks[0], "bool")
        for m in masks[1:]:
            combined = ops.logical_and(combined, ops.cast(m, "bool"))
        return combined


@_serializable
class Concatenate1D(keras.layers.Layer):
    """Concatenate sequences along the step axis; their masks likewise (a missing one counts as all-True).

    Example:
        >>> both = Concatenate1D()([cached_keys, new_keys])
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return ops.concatenate(list(inputs), axis=1)

    def compute_mask(self, inputs, mask=None):
        if mask is None or all(m is None for m in mask):
            return None
        masks = [ops.ones_like(x[..., 0], dtype="bool") if m is None else ops.cast(m, "bool")
                 for x, m in zip(inputs, mask)]
        return ops.concatenate(masks, axis=1)

    def compute_output_shape(self, input_shape):
        lengths = [shape[1] for shape in input_shape]
        length = None if any(n is None for n in lengths) else sum(lengths)
        return (input_shape[0][0], length) + tuple(input_shape[0][2:])


def _cut_points(batch_size, parts):
    """Where :class:`BatchSplit` cuts a batch: equal chunks of ceil(batch / parts), or in proportion to a list."""
    if isinstance(parts, (list, tuple)):
        total = float(sum(parts))
        size = ops.cast(batch_size, "float64")
        running, points = 0.0, []
        for part in parts:
            running += part
            points.append(ops.cast(running * size / total, "int32"))
        return points
    stride = ops.cast(ops.ceil(ops.cast(batch_size, "float32") / parts), "int32")
    return [stride * (i + 1) for i in range(parts)]


@_serializable
class BatchSplit(keras.layers.Layer):
    """Split every input along the batch axis into ``parts`` (an int: equal chunks, a list: proportions).

    The outputs are flat: the parts of the first input, then those of the
    second, ... (bert4keras's order). Masks are split alike.

    Example:
        >>> a1, a2, b1, b2 = BatchSplit(2)([a, b])
        >>> small, large = BatchSplit([1, 3])(x)
    """

    def __init__(self, parts, **kwargs):
        super().__init__(**kwargs)
        if isinstance(parts, (list, tuple)):
            if not parts or any(p <= 0 for p in parts):
                raise ValueError(f"BatchSplit parts must be positive proportions, got {parts!r}")
            parts = list(parts)
        elif not isinstance(parts, int) or parts < 1:
            raise ValueError(f"BatchSplit parts must be a positive int or a list of proportions, got {parts!r}")
        self.parts = parts
        self.supports_masking = True

    @property
    def count(self):
        """How many parts each input is cut into.

        Example:
            >>> BatchSplit([1, 3]).count
            2
        """
        return len(self.parts) if isinstance(self.parts, list) else self.parts

    def _split(self, x):
        points = _cut_points(ops.shape(x)[0], self.parts)
        starts = [0] + points[:-1]
        pieces = [x[start:end] for start, end in zip(starts[:-1], points[:-1])]
        return pieces + [x[starts[-1]:]]

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            return [piece for x in inputs for piece in self._split(x)]
        return self._split(inputs)

    def compute_mask(self, inputs, mask=None):
        if isinstance(inputs, (list, tuple)):
            masks = mask if isinstance(mask, (list, tuple)) else [mask] * len(inputs)
            return [piece for m in masks for piece in self.compute_mask(None, m)]
        return [None] * self.count if mask is None else self._split(mask)

    def compute_output_spec(self, inputs):
        def spec(x):
            return keras.KerasTensor((None,) + tuple(x.shape[1:]), dtype=x.dtype)

        if isinstance(inputs, (list, tuple)):
            return [spec(x) for x in inputs for _ in range(self.count)]
        return [spec(inputs) for _ in range(self.count)]

    def get_config(self):
        return {**super().get_config(), "parts": self.parts}


@_serializable
class BatchConcat(keras.layers.Layer):
    """Concatenate inputs along the batch axis (undoes :class:`BatchSplit`); masks only when all have one.

    Example:
        >>> x = BatchConcat()([x1, x2])
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return ops.concatenate(list(inputs), axis=0)

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)) and all(m is not None for m in mask):
            return ops.concatenate(list(mask), axis=0)
        return None

    def compute_output_shape(self, input_shape):
        return (None,) + tuple(input_shape[0][1:])
