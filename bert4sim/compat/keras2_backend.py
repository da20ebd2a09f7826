"""Keras 2's backend functions (``K``) written on ``keras.ops``, and the schedule helper the facade shares.

``bert4sim.backend.K`` is the namespace defined here: each function keeps
Keras 2's argument order and defaults (``K.sum(x, axis)``,
``K.batch_dot``, ``K.sparse_categorical_crossentropy`` taking float
targets, ...), plus the functions bert4keras installed on ``K``
(``K.reshape`` with its axis form, ``K.flatten(x, start, end)``,
``K.where`` broadcasting scalars, ``K.symbolic``). Nothing in Keras or
TensorFlow is modified.

Example:
    >>> from bert4sim.compat.keras2_backend import K
    >>> float(K.sum(K.constant([[1.0, 2.0], [3.0, 4.0]])))
    10.0
"""
import types

import keras
import numpy as np
from keras import ops

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


def flatten(tensor, start=None, end=None):
    """Merge the axes ``start..end-1`` of ``tensor`` into one (all axes by default): bert4keras's ``K.flatten``.

    Example:
        >>> flatten(x, 2)            # [batch, length, heads, size] -> [batch, length, heads * size]
    """
    if start is None and end is None:
        return ops.reshape(tensor, (-1,))
    shape = list(ops.shape(tensor))
    start = start or 0
    end = len(shape) if end is None else end
    return ops.reshape(tensor, shape[:start] + [-1] + shape[end:])


def _batch_flatten(x):
    return ops.reshape(x, (ops.shape(x)[0], -1))


def reshape(tensor, *args):
    """``reshape(x, shape)``, or bert4keras's ``reshape(x, shape1, axis1, shape2, axis2, ...)``: axis ``axis_i``
    replaced by the axes ``shape_i`` (one of them may be -1).

    Example:
        >>> reshape(x, (heads, -1), -1)    # [batch, length, hidden] -> [batch, length, heads, hidden / heads]
    """
    if len(args) == 1:
        return ops.reshape(tensor, args[0])
    if len(args) % 2:
        raise TypeError("reshape takes (x, shape) or (x, shape1, axis1, shape2, axis2, ...)")
    shape = [[dim] for dim in ops.shape(tensor)]
    for new, axis in zip(args[::2], args[1::2]):
        new = list(new)
        if new.count(-1) > 1:
            raise ValueError(f"reshape: at most one -1 per replaced axis, got {tuple(new)}")
        if -1 in new:
            known = int(np.prod([d for d in new if d != -1]))
            new[new.index(-1)] = shape[axis][0] // known
        shape[axis] = new
    return ops.reshape(tensor, [dim for dims in shape for dim in dims])


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


def where(condition, x=None, y=None):
    """``where(cond, x, y)`` broadcasting all three; a Python number takes the other side's dtype (bert4keras's).

    Example:
        >>> where(mask, scores, -1e12)
    """
    if x is None and y is None:
        return ops.where(ops.cast(condition, "bool"))
    number = (int, float, np.number)
    if isinstance(x, number) and isinstance(y, number):
        x, y = (ops.convert_to_tensor(v, keras.config.floatx()) for v in (x, y))
    elif isinstance(x, number):
        x = ops.cast(x, keras.backend.standardize_dtype(y.dtype))
    elif isinstance(y, number):
        y = ops.cast(y, keras.backend.standardize_dtype(x.dtype))
    return ops.where(ops.cast(condition, "bool"), x, y)


def symbolic(function):
    """bert4keras's identity decorator (old Keras needed it on optimizer code).

    Example:
        >>> @symbolic
        ... def get_updates(self, loss, params): ...
    """
    return function


def piecewise_linear(t, schedule, from_zero=True):
    """The value at step ``t`` of a piecewise-linear schedule ``{step: value}`` (bert4keras's helper).

    Linear between the given steps, from ``(0, 0)`` unless ``from_zero=False``
    or step 0 is given (then constant before the first step), constant after
    the last.

    Example:
        >>> float(piecewise_linear(500, {1000: 1.0, 2000: 0.1}))
        0.5
    """
    if not schedule:
        raise ValueError("piecewise_linear needs at least one {step: value} entry")
    points = sorted((int(step), float(value)) for step, value in schedule.items())
    if from_zero and points[0][0] != 0:
        points = [(0, 0.0)] + points
    t = ops.cast(t, "float32")
    result = ops.full_like(t, points[-1][1])
    for (x0, y0), (x1, y1) in reversed(list(zip(points[:-1], points[1:]))):  # the segment t falls in, from the right
        result = ops.where(t < x1, y0 + (y1 - y0) / (x1 - x0) * (t - x0), result)
    return ops.where(t < points[0][0], points[0][1], result)


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


def _current_training():
    """The training flag of the Keras 3 call in progress (None outside one); Keras 2 had a global learning phase."""
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # another Keras layout: the flag must be passed explicitly
        return "unknown"
    context = global_state.get_global_attribute("current_call_ctx")
    return None if context is None else context.get_value("training")


def _in_train_phase(x, alt, training=None):
    """Keras 2's ``K.in_train_phase``: ``x`` while training, ``alt`` otherwise (callables are called).

    Without ``training`` the flag of the enclosing Keras call is used (True
    inside ``fit``, False in ``predict``); outside any training call it is
    ``alt``, as with Keras 2's default learning phase.
    """
    if training is None:
        training = _current_training()
        if training == "unknown":
            raise ValueError("K.in_train_phase needs an explicit training flag with this Keras version")
    chosen = x if training else alt
    return chosen() if callable(chosen) else chosen


def _random_binomial(shape, p=0.0, dtype=None, seed=None):
    """Keras 2's ``K.random_binomial``: 1 with probability ``p``, else 0."""
    draws = keras.random.uniform(shape, seed=seed)
    return ops.cast(ops.less(draws, p), dtype or keras.config.floatx())


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
    less=ops.less, less_equal=ops.less_equal, switch=_switch, where=where, symbolic=symbolic, stop_gradient=ops.stop_gradient,
    # shape manipulation
    expand_dims=_expand_dims, squeeze=ops.squeeze, concatenate=_concatenate, stack=ops.stack,
    reshape=reshape, permute_dimensions=_permute_dimensions, transpose=ops.transpose,
    repeat_elements=_repeat_elements, repeat=_repeat, tile=_tile, flatten=flatten,
    batch_flatten=_batch_flatten, one_hot=_one_hot, gather=_gather,
    # products and losses
    dot=_dot, batch_dot=_batch_dot, l2_normalize=_l2_normalize,
    categorical_crossentropy=_categorical_crossentropy,
    sparse_categorical_crossentropy=_sparse_categorical_crossentropy,
    binary_crossentropy=_binary_crossentropy,
    # training-time helpers
    in_train_phase=_in_train_phase, random_binomial=_random_binomial, dropout=_dropout, random_uniform=_random_uniform,
    random_normal=_random_normal, clear_session=keras.backend.clear_session,
)
