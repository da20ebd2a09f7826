"""bert4keras's ``backend``: ``keras``, ``K`` and bert4keras's tensor helpers, for Keras 3.

``from bert4sim.backend import keras, K`` gives a bert4keras script what
``from bert4keras.backend import keras, K`` gave it: ``keras`` is a namespace
over Keras 3 whose ``Model`` also takes Keras 2's nested-list inputs
(:mod:`bert4sim.compat.keras_namespace`), and ``K`` a namespace of the Keras 2
backend functions such scripts call, written on ``keras.ops``
(:mod:`bert4sim.compat.keras2_backend`). The helpers below keep bert4keras's
names and meanings; those the model code also uses (RoPE, sinusoidal
embeddings, GELU, attention normalization) are bert4sim's own functions.
Nothing in Keras or TensorFlow is modified (bert4keras installed its helpers
on ``keras.backend`` and replaced Keras's global pooling layers).

Example:
    >>> from bert4sim.backend import K
    >>> float(K.sum(K.constant([[1.0, 2.0], [3.0, 4.0]])))
    10.0
"""
import functools
import os

import keras as _keras
import numpy as np
from keras import ops

from bert4sim import unprovided
from bert4sim.activations import gelu_erf, gelu_tanh, set_gelu  # noqa: F401  (bert4keras's backend exported them)
from bert4sim.attention import apply_rotary_position_embeddings  # noqa: F401
from bert4sim.attention import attention_normalize as _attention_normalize
from bert4sim.compat.keras2_backend import (K, flatten, infinity, piecewise_linear, reshape,  # noqa: F401
                                            set_infinity, symbolic, where)
from bert4sim.compat.keras_namespace import keras
from bert4sim.embeddings import sinusoidal_embeddings

# bert4sim behaves as bert4keras did under TF_KERAS=1 (the tf.keras branch: the *_v2 optimizers, ...)
is_tf_keras = True
# bert4keras's switch for gradient checkpointing (RECOMPUTE=1), read once at import as bert4keras did
do_recompute = os.environ.get("RECOMPUTE", "0").strip().lower() in ("1", "true", "yes", "on")


# --- bert4keras's own tensor helpers -----------------------------------------


def dtype(x):
    """The dtype name of ``x``, or None when it has none (a Python number): bert4keras's tolerant ``K.dtype``.

    Example:
        >>> dtype(K.constant([1.0])), dtype(3)
        ('float32', None)
    """
    value = getattr(x, "dtype", None)
    return None if value is None else _keras.backend.standardize_dtype(value)


def _dtype(x):
    return dtype(x) or dtype(ops.convert_to_tensor(x))


def _ndim(x):
    return len(x.shape)



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
        aligned = align(mask, [0, a], _ndim(x))
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


def align(tensor, axes, ndim=None):
    """Batched ``expand_dims``: axis ``i`` of ``tensor`` becomes axis ``axes[i]`` of an ``ndim``-rank result.

    Example:
        >>> align(mask, [0, 3], 4)     # [batch, length] -> [batch, 1, 1, length]
    """
    rank = len(tensor.shape)
    if len(axes) != rank:
        raise ValueError(f"align: {len(axes)} axes given for a tensor of rank {rank}")
    if ndim is None and min(axes) < 0:
        raise ValueError("align: negative axes need ndim")
    ndim = ndim or max(axes) + 1
    index = [None] * ndim
    for axis in axes:
        index[axis] = slice(None)
    return tensor[tuple(index)]


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
    layer = inputs if isinstance(inputs, _keras.layers.Layer) else inputs._keras_history[0]
    if layer.name == name:
        return layer
    if id(layer) in exclude_from:
        return None
    exclude_from.add(id(layer))
    if isinstance(layer, _keras.Model):
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
                         _keras.config.epsilon(), 1)
    return positive_loss + all_loss + ops.log(remainder)


def attention_normalize(a, mask=None, axis=-1, method="softmax", bias=None):
    """Attention weights of logits ``a``: ``softmax``, ``squared_relu`` or ``softmax_plus`` (bert4keras's helper).

    ``mask`` ``[batch, keys]`` and ``bias`` (bool: a mask, float: added) as
    in :func:`sequence_masking`; see :func:`bert4sim.attention.attention_normalize`.

    Example:
        >>> probs = attention_normalize(scores, key_mask, axis=-1, method="softmax_plus")
    """
    a, keep = sequence_masking(a, mask, -np.inf, axis, bias, return_mask=True)
    return _attention_normalize(a, keep, method, axis)


@_keras.saving.register_keras_serializable(package="bert4sim")
class Sinusoidal(_keras.initializers.Initializer):
    """Initializer of a ``[size, dim]`` table with sin/cos position embeddings (bert4keras's ``Sinusoidal``).

    Example:
        >>> table = keras.layers.Embedding(512, 64, embeddings_initializer=Sinusoidal())
    """

    def __call__(self, shape, dtype=None):
        size, dim = shape
        return ops.cast(sinusoidal_embeddings(ops.arange(size, dtype="float32"), dim), dtype or "float32")


def get_available_gpus():
    """Names of the GPUs TensorFlow sees (bert4keras's helper).

    Example:
        >>> get_available_gpus()     # [] on a CPU machine
    """
    import tensorflow as tf

    return [device.name for device in tf.config.list_logical_devices("GPU")]


def pool1d(x, pool_size, strides=1, padding="valid", data_format=None, pool_mode="max"):
    """Max / average pooling over the steps of ``[batch, steps, features]`` (bert4keras's helper).

    Example:
        >>> pool1d(x, 2, 2, pool_mode="avg")     # halves the steps
    """
    if pool_mode not in ("max", "avg"):
        raise ValueError(f"pool_mode must be 'max' or 'avg', got {pool_mode!r}")
    pool = ops.max_pool if pool_mode == "max" else ops.average_pool
    return pool(x, pool_size, strides, padding, data_format)


def divisible_temporal_padding(x, n):
    """Right-pad ``[batch, steps, features]`` with zeros so that ``steps`` is a multiple of ``n``.

    Example:
        >>> divisible_temporal_padding(x, 4).shape[1] % 4
        0
    """
    remainder = ops.shape(x)[1] % n
    return ops.pad(x, [[0, 0], [0, (n - remainder) % n], [0, 0]])


def root_mean_square(x, axis=None, keepdims=False):
    """``sqrt(mean(x²))`` over ``axis``.

    Example:
        >>> float(root_mean_square(K.constant([3.0, 4.0])))   # 3.5355...
    """
    return ops.sqrt(ops.mean(ops.square(x), axis=axis, keepdims=keepdims))


def swish(x):
    """``x * sigmoid(x)`` as a named function.

    Example:
        >>> keras.layers.Dense(8, activation=swish)
    """
    return _keras.activations.silu(x)


def leaky_relu(x, alpha=0.2):
    """Leaky ReLU with bert4keras's slope 0.2, as a named function.

    Example:
        >>> keras.layers.Dense(8, activation=leaky_relu)
    """
    return _keras.activations.leaky_relu(x, negative_slope=alpha)


def recompute_grad(call):
    """Decorator for a layer's ``call``: gradient checkpointing when ``RECOMPUTE=1`` (bert4keras's), else unchanged.

    With recomputation the layer's activations are not kept for the
    backward pass but computed again (``tf.recompute_grad``): less memory,
    more time.

    Example:
        >>> class Big(keras.layers.Layer):
        ...     @recompute_grad
        ...     def call(self, inputs): ...
    """
    if not do_recompute:
        return call
    import tensorflow as tf

    @functools.wraps(call)
    def recomputed(self, inputs, **kwargs):
        flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]

        def forward(*tensors):
            return call(self, list(tensors) if isinstance(inputs, (list, tuple)) else tensors[0], **kwargs)

        return tf.recompute_grad(forward)(*flat)

    return recomputed


custom_objects = {"gelu_erf": gelu_erf, "gelu_tanh": gelu_tanh, "gelu": gelu_erf,
                  "root_mean_square": root_mean_square, "swish": swish, "leaky_relu": leaky_relu,
                  "Sinusoidal": Sinusoidal, "multilabel_categorical_crossentropy": multilabel_categorical_crossentropy,
                  "initializer": _keras.initializers.GlorotUniform}

__getattr__ = unprovided.module_getattr("backend")
