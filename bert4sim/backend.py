"""bert4keras-compatible backend: ``keras``, ``K`` and bert4keras's tensor helpers.

``from bert4sim.backend import keras, K`` gives a bert4keras script what
``from bert4keras.backend import keras, K`` gave it: ``keras`` is Keras 3
itself, and ``K`` is a namespace of the Keras 2 backend functions such
scripts call (``K.sum``, ``K.batch_dot``, ``K.sparse_categorical_crossentropy``
...), each written on ``keras.ops`` with Keras 2's argument order and
defaults. Nothing in Keras or TensorFlow is modified.

Example:
    >>> from bert4sim.backend import K
    >>> float(K.sum(K.constant([[1.0, 2.0], [3.0, 4.0]])))
    10.0
"""
import types

import keras
import numpy as np
from keras import ops

from bert4sim.activations import set_gelu  # noqa: F401  (bert4keras's backend exported it)

_INFINITY = [1e12]


def infinity():
    """The "large number" bert4keras uses for masking (1e12 unless :func:`set_infinity` changed it).

    Example:
        >>> x = x - (1 - mask) * infinity()
    """
    return _INFINITY[0]


def set_infinity(value):
    """Change what :func:`infinity` returns (bert4keras's ``K.set_infinity``).

    Example:
        >>> set_infinity(1e4)  # finite in float16
    """
    _INFINITY[0] = value


# --- Keras 2 backend functions on keras.ops ---------------------------------


def _dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


def _ndim(x):
    return len(x.shape)


def _int_shape(x):
    return tuple(x.shape)


def _constant(value, dtype=None, shape=None, name=None):
    value = np.asarray(value, dtype=dtype or keras.config.floatx())
    if shape is not None:
        value = np.broadcast_to(value, shape)
    return ops.convert_to_tensor(value)


def _cast(x, dtype):
    return ops.cast(x, dtype)


def _reduce(op):
    def reduce(x, axis=None, keepdims=False):
        return op(x, axis=axis, keepdims=keepdims)

    reduce.__name__ = op.__name__
    return reduce


def _std(x, axis=None, keepdims=False):
    return ops.std(x, axis=axis, keepdims=keepdims)


def _var(x, axis=None, keepdims=False):
    return ops.var(x, axis=axis, keepdims=keepdims)


def _l2_normalize(x, axis=None):
    # tf.math.l2_normalize: x / sqrt(max(sum(x**2), 1e-12)); axis None = all axes
    squares = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * ops.rsqrt(ops.maximum(squares, 1e-12))


def _dot(x, y):
    """Keras 2 ``K.dot``: the last axis of x with the second-to-last of y (the only axis of a 1-D y)."""
    if _ndim(y) <= 2:
        return ops.matmul(x, y)
    return ops.tensordot(x, y, axes=[[_ndim(x) - 1], [_ndim(y) - 2]])


def _batch_dot(x, y, axes=None):
    """Keras 2 ``K.batch_dot``: per-sample dot product over ``axes`` (two 2-D tensors give ``[batch, 1]``)."""
    x_ndim, y_ndim = _ndim(x), _ndim(y)
    if axes is None:
        axes = (x_ndim - 1, y_ndim - 2 if y_ndim > 2 else y_ndim - 1)
    if isinstance(axes, int):
        axes = (axes, axes)
    x_axis, y_axis = (a % n for a, n in zip(axes, (x_ndim, y_ndim)))
    if x_axis == 0 or y_axis == 0:
        raise ValueError(f"batch_dot cannot contract the batch axis (axes={axes})")
    # x -> [batch, rest_x..., k], y -> [batch, k, rest_y...], then one batched matmul
    x = ops.moveaxis(x, x_axis, -1)
    y = ops.moveaxis(y, y_axis, 1)
    x_shape, y_shape = ops.shape(x), ops.shape(y)
    x_rest, y_rest = list(x_shape[1:-1]), list(y_shape[2:])
    x2 = ops.reshape(x, (x_shape[0], -1, x_shape[-1]))
    y2 = ops.reshape(y, (y_shape[0], y_shape[1], -1))
    result = ops.matmul(x2, y2)
    result = ops.reshape(result, [x_shape[0]] + x_rest + y_rest)
    if x_ndim == 2 and y_ndim == 2:
        result = ops.expand_dims(result, 1)
    return result


def _expand_dims(x, axis=-1):
    return ops.expand_dims(x, axis)


def _concatenate(tensors, axis=-1):
    return ops.concatenate(list(tensors), axis=axis)


def _repeat_elements(x, rep, axis):
    return ops.repeat(x, rep, axis=axis)


def _repeat(x, n):
    """Keras 2 ``K.repeat``: [batch, dim] -> [batch, n, dim]."""
    return ops.repeat(ops.expand_dims(x, 1), n, axis=1)


def _tile(x, n):
    return ops.tile(x, n)


def _flatten(x, start=None, end=None):
    if start is None and end is None:  # Keras 2: flatten everything
        return ops.reshape(x, (-1,))
    shape = ops.shape(x)
    start = start or 0
    end = len(shape) if end is None else end
    return ops.reshape(x, list(shape[:start]) + [-1] + list(shape[end:]))


def _batch_flatten(x):
    return ops.reshape(x, (ops.shape(x)[0], -1))


def _reshape(x, shape, *more):
    if more:  # bert4keras's K.reshape(x, (0, 1), ...) form is not supported: say so
        raise TypeError("K.reshape takes (x, shape); bert4keras's axis-merging form is not supported")
    return ops.reshape(x, shape)


def _permute_dimensions(x, pattern):
    return ops.transpose(x, pattern)


def _softmax(x, axis=-1):
    return ops.softmax(x, axis=axis)


def _one_hot(indices, num_classes):
    return ops.one_hot(ops.cast(indices, "int32"), num_classes)


def _cumsum(x, axis=0):
    return ops.cumsum(x, axis=axis)


def _cumprod(x, axis=0):
    return ops.cumprod(x, axis=axis)


def _switch(condition, then_expression, else_expression):
    then_expression = then_expression() if callable(then_expression) else then_expression
    else_expression = else_expression() if callable(else_expression) else else_expression
    condition = ops.cast(condition, "bool")
    then_ndim = _ndim(ops.convert_to_tensor(then_expression))
    while _ndim(condition) < then_ndim:  # Keras 2 lines a lower-rank condition up on the left
        condition = ops.expand_dims(condition, -1)
    return ops.where(condition, then_expression, else_expression)


def _where(condition, x=None, y=None):
    return ops.where(ops.cast(condition, "bool"), x, y)


def _clip(x, min_value, max_value):
    return ops.clip(x, min_value, max_value)


def _arange(start, stop=None, step=1, dtype="int32"):
    return ops.arange(start, stop, step, dtype=dtype)


def _eye(size, dtype=None, name=None):
    return ops.eye(size, dtype=dtype or keras.config.floatx())


def _zeros(shape, dtype=None, name=None):
    return ops.zeros(shape, dtype=dtype or keras.config.floatx())


def _ones(shape, dtype=None, name=None):
    return ops.ones(shape, dtype=dtype or keras.config.floatx())


def _zeros_like(x, dtype=None, name=None):
    return ops.zeros_like(x, dtype=dtype)


def _ones_like(x, dtype=None, name=None):
    return ops.ones_like(x, dtype=dtype)


def _argmax(x, axis=-1):
    return ops.argmax(x, axis=axis)


def _argmin(x, axis=-1):
    return ops.argmin(x, axis=axis)


def _gather(reference, indices):
    return ops.take(reference, indices, axis=0)


def _logsumexp(x, axis=None, keepdims=False):
    return ops.logsumexp(x, axis=axis, keepdims=keepdims)


def _categorical_crossentropy(target, output, from_logits=False, axis=-1):
    return ops.categorical_crossentropy(target, output, from_logits=from_logits, axis=axis)


def _sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    # Keras 2 accepted float targets (bert4keras feeds float32 token ids)
    if not _dtype(ops.convert_to_tensor(target)).startswith(("int", "uint")):
        target = ops.cast(target, "int32")
    return ops.sparse_categorical_crossentropy(target, output, from_logits=from_logits, axis=axis)


def _binary_crossentropy(target, output, from_logits=False):
    return ops.binary_crossentropy(target, output, from_logits=from_logits)


def _in_train_phase(x, alt, training=None):
    if training is None:
        raise ValueError("K.in_train_phase needs an explicit training flag in Keras 3 (no global learning phase)")
    chosen = x if training else alt
    return chosen() if callable(chosen) else chosen


def _random_uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    return keras.random.uniform(shape, minval, maxval, dtype=dtype, seed=seed)


def _random_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    return keras.random.normal(shape, mean, stddev, dtype=dtype, seed=seed)


def _dropout(x, level, noise_shape=None, seed=None):
    return keras.random.dropout(x, level, noise_shape=noise_shape, seed=seed)


def _get_value(x):
    return ops.convert_to_numpy(x)


def _batch_get_value(tensors):
    return [ops.convert_to_numpy(x) for x in tensors]


def _set_value(variable, value):
    variable.assign(value)


def _batch_set_value(pairs):
    for variable, value in pairs:
        variable.assign(value)


def _variable(value, dtype=None, name=None):
    return keras.Variable(value, dtype=dtype or keras.config.floatx(), name=name)


def _pow(x, a):
    return ops.power(x, a)


K = types.SimpleNamespace(
    # configuration
    floatx=keras.config.floatx, set_floatx=keras.config.set_floatx,
    epsilon=keras.config.epsilon, set_epsilon=keras.config.set_epsilon,
    infinity=infinity, set_infinity=set_infinity,
    # tensors and their shapes
    constant=_constant, variable=_variable, cast=_cast, dtype=_dtype, ndim=_ndim, shape=ops.shape,
    int_shape=_int_shape, is_keras_tensor=keras.utils.is_keras_tensor, is_tensor=ops.is_tensor,
    get_value=_get_value, batch_get_value=_batch_get_value, set_value=_set_value,
    batch_set_value=_batch_set_value, eval=_get_value,
    zeros=_zeros, ones=_ones, zeros_like=_zeros_like, ones_like=_ones_like, eye=_eye, arange=_arange,
    # reductions
    sum=_reduce(ops.sum), mean=_reduce(ops.mean), max=_reduce(ops.max), min=_reduce(ops.min),
    prod=_reduce(ops.prod), any=_reduce(ops.any), all=_reduce(ops.all), std=_std, var=_var,
    argmax=_argmax, argmin=_argmin, logsumexp=_logsumexp, cumsum=_cumsum, cumprod=_cumprod,
    # element-wise
    abs=ops.abs, square=ops.square, sqrt=ops.sqrt, exp=ops.exp, log=ops.log, pow=_pow, sign=ops.sign,
    round=ops.round, maximum=ops.maximum, minimum=ops.minimum, clip=_clip, sin=ops.sin, cos=ops.cos,
    tanh=ops.tanh, sigmoid=ops.sigmoid, relu=ops.relu, elu=ops.elu, softplus=ops.softplus,
    softsign=ops.softsign, softmax=_softmax, hard_sigmoid=ops.hard_sigmoid,
    equal=ops.equal, not_equal=ops.not_equal, greater=ops.greater, greater_equal=ops.greater_equal,
    less=ops.less, less_equal=ops.less_equal, switch=_switch, where=_where, stop_gradient=ops.stop_gradient,
    # shape manipulation
    expand_dims=_expand_dims, squeeze=ops.squeeze, concatenate=_concatenate, stack=ops.stack,
    reshape=_reshape, permute_dimensions=_permute_dimensions, transpose=ops.transpose,
    repeat_elements=_repeat_elements, repeat=_repeat, tile=_tile, flatten=_flatten,
    batch_flatten=_batch_flatten, one_hot=_one_hot, gather=_gather,
    # products and losses
    dot=_dot, batch_dot=_batch_dot, l2_normalize=_l2_normalize,
    categorical_crossentropy=_categorical_crossentropy,
    sparse_categorical_crossentropy=_sparse_categorical_crossentropy,
    binary_crossentropy=_binary_crossentropy,
    # training-time helpers
    in_train_phase=_in_train_phase, dropout=_dropout, random_uniform=_random_uniform,
    random_normal=_random_normal, clear_session=keras.backend.clear_session,
)


# --- bert4keras's own tensor helpers -----------------------------------------


def _masking_value(value):
    if isinstance(value, str) and value in ("inf", "-inf"):
        return infinity() if value == "inf" else -infinity()
    return value


def sequence_masking(x, mask=None, value=0, axis=None, bias=None, return_mask=False):
    """Replace the positions where ``mask`` is 0 by ``value`` (bert4keras's helper).

    ``mask`` is ``[batch, length]`` (bool or 0/1); ``axis`` the sequence axis
    of ``x`` (1 by default, or a list of axes all masked by the same mask);
    ``value`` a number or ``'-inf'`` / ``'inf'`` (±:func:`infinity`); ``bias``
    an extra additive term, or (bool) an extra mask.

    Example:
        >>> logits = sequence_masking(logits, mask, "-inf", axis=1)
    """
    value = _masking_value(value)
    if mask is None and bias is None:
        return (x, mask) if return_mask else x
    if mask is None:
        if _dtype(bias) == "bool":
            mask = bias
            x = ops.where(mask, x, value)
        else:
            x = x + bias
        return (x, mask) if return_mask else x
    axes = [1] if axis is None else (list(axis) if isinstance(axis, (list, tuple)) else [axis])
    axes = [a % _ndim(x) for a in axes]
    mask = ops.cast(mask, "bool")
    full_mask = None
    for a in axes:
        aligned = _align(mask, [0, a], _ndim(x))
        full_mask = aligned if full_mask is None else ops.logical_and(full_mask, aligned)
    mask = full_mask
    if bias is None:
        x = ops.where(mask, x, value)
    elif _dtype(bias) == "bool":
        mask = ops.logical_and(mask, bias)
        x = ops.where(mask, x, value)
    else:
        x = ops.where(mask, x + bias, value)
    return (x, mask) if return_mask else x


def _align(tensor, axes, ndim):
    """Insert size-1 axes so that ``tensor``'s axes land on ``axes`` of an ``ndim``-rank tensor."""
    shape = [1] * ndim
    for i, a in enumerate(axes):
        shape[a] = ops.shape(tensor)[i]
    return ops.reshape(tensor, shape)


def batch_gather(params, indices):
    """``params[b, indices[b, ...]]`` for every batch row ``b`` (bert4keras's helper).

    Example:
        >>> batch_gather(sequence_output, positions)  # [batch, n] positions -> [batch, n, hidden]
    """
    import tensorflow as tf  # keras.ops has no gather with batch_dims

    if not _dtype(indices).startswith("int"):
        indices = ops.cast(indices, "int32")
    return tf.gather(params, indices, batch_dims=_ndim(indices) - 1)


def search_layer(inputs, name, exclude_from=None):
    """The layer called ``name`` upstream of ``inputs`` (a layer or a symbolic tensor), or None.

    Walks the functional graph backwards, looking inside nested models too.

    Example:
        >>> search_layer(bert.output, "Embedding-Token")
    """
    exclude_from = set() if exclude_from is None else exclude_from
    layer = inputs if isinstance(inputs, keras.layers.Layer) else inputs._keras_history[0]
    if layer.name == name:
        return layer
    if id(layer) in exclude_from:
        return None
    exclude_from.add(id(layer))
    if isinstance(layer, keras.Model):
        for inner in layer.layers:
            if inner.name == name:
                return inner
    for node in layer._inbound_nodes:
        for tensor in node.input_tensors:
            found = search_layer(tensor, name, exclude_from)
            if found is not None:
                return found
    return None


def multilabel_categorical_crossentropy(y_true, y_pred):
    """Multi-label cross-entropy of https://kexue.fm/archives/7359 (bert4keras's).

    ``y_true`` is 0/1 (or a probability) per class, ``y_pred`` unbounded
    scores (no sigmoid / softmax); a class is predicted when its score > 0.
    Classes whose score is ``-inf`` are ignored.

    Example:
        >>> loss = multilabel_categorical_crossentropy(labels, logits)  # [batch]
    """
    y_true = ops.cast(y_true, y_pred.dtype)
    valid = ops.not_equal(y_pred, -np.inf)
    negatives = ops.where(valid, y_pred, -np.inf) + ops.log(1 - y_true)
    positives = ops.where(valid, -y_pred, -np.inf) + ops.log(y_true)
    zeros = ops.zeros_like(y_pred[..., :1])
    negatives = ops.concatenate([negatives, zeros], axis=-1)
    positives = ops.concatenate([positives, zeros], axis=-1)
    return ops.logsumexp(negatives, axis=-1) + ops.logsumexp(positives, axis=-1)


def sparse_multilabel_categorical_crossentropy(y_true, y_pred, mask_zero=False):
    """:func:`multilabel_categorical_crossentropy` with ``y_true`` as the indices of the positive classes.

    ``y_true`` ``[..., num_positive]`` (int), ``y_pred`` ``[..., num_classes]``;
    with ``mask_zero`` the index 0 pads ``y_true`` and class 0 is never a positive.

    Example:
        >>> loss = sparse_multilabel_categorical_crossentropy(positive_ids, logits)
    """
    zeros = ops.zeros_like(y_pred[..., :1])
    y_pred = ops.concatenate([y_pred, zeros], axis=-1)
    if mask_zero:
        infs = zeros + np.inf
        y_pred = ops.concatenate([infs, y_pred[..., 1:]], axis=-1)
    positive_scores = batch_gather(y_pred, y_true)
    positive_with_zero = ops.concatenate([positive_scores, zeros], axis=-1)
    if mask_zero:
        y_pred = ops.concatenate([-infs, y_pred[..., 1:]], axis=-1)
        positive_scores = batch_gather(y_pred, y_true)
    positive_loss = ops.logsumexp(-positive_with_zero, axis=-1)
    all_loss = ops.logsumexp(y_pred, axis=-1)
    # log(sum over negatives) = log(sum over all) + log(1 - sum over positives / sum over all)
    remainder = ops.clip(1 - ops.exp(ops.logsumexp(positive_scores, axis=-1) - all_loss),
                         keras.config.epsilon(), 1)
    return positive_loss + all_loss + ops.log(remainder)


__all__ = ["keras", "K", "sequence_masking", "batch_gather", "search_layer", "set_gelu", "infinity",
           "set_infinity", "multilabel_categorical_crossentropy", "sparse_multilabel_categorical_crossentropy"]
