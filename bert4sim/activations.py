"""Activations of BERT-style models, by the names their configs use (``hidden_act``).

``"gelu"`` is Google BERT's exact GELU (erf); ``"gelu_tanh"`` (also
``"gelu_new"`` / ``"gelu_approximate"``) the tanh approximation.
:func:`set_gelu` is bert4keras's switch of what ``"gelu"`` means for models
built afterwards; layers resolve the name when they are made
(:func:`resolve_activation`) and keep the resolved name in their config, so
a saved model computes the same GELU wherever it is loaded.

Example:
    >>> from bert4sim.activations import get_activation
    >>> float(get_activation("gelu")(keras.ops.convert_to_tensor(0.0)))
    0.0
"""
import math

import keras
from keras import ops


def gelu_erf(x):
    """GELU by erf, as Google BERT: ``0.5 * x * (1 + erf(x / sqrt(2)))``.

    Written out because it runs about twice as fast on CPU as
    ``keras.activations.gelu(approximate=False)`` with the same values.

    Example:
        >>> gelu_erf(keras.ops.convert_to_tensor([0.0, 1.0]))  # [0.0, 0.8413]
    """
    return 0.5 * x * (1.0 + ops.erf(x * (1.0 / math.sqrt(2.0))))


def gelu_erf_fusable(x):
    """:func:`gelu_erf` in the op order TensorFlow's oneDNN graph rewrite fuses, with the
    MatMul and BiasAdd before it, into one kernel (inference graphs; any float dtype).

    Example:
        >>> y = gelu_erf_fusable(bias_add(tf.matmul(x, kernel), bias))
    """
    constant = lambda value: ops.cast(value, x.dtype)  # noqa: E731
    return ((ops.erf(x * constant(1.0 / math.sqrt(2.0))) + constant(1.0)) * constant(0.5)) * x


def gelu_tanh(x):
    """GELU by its tanh approximation (``gelu_new`` in transformers, ``gelu_tanh`` in bert4keras).

    Example:
        >>> gelu_tanh(keras.ops.convert_to_tensor([1.0]))  # [0.8412]
    """
    return keras.activations.gelu(x, approximate=True)


def bias_add(x, bias):
    """``x + bias`` over the last axis.

    On TensorFlow this is ``tf.nn.bias_add``: TF's oneDNN rewrite fuses a
    MatMul + BiasAdd (+ GELU / ReLU) into one kernel, but not an AddV2
    (measured on a [1728, 384] x [384, 1536] product with GELU: float32
    8.4 -> 6.3 ms, bfloat16 7.1 -> 3.0 ms).

    Example:
        >>> y = bias_add(tf.matmul(x, kernel), bias)
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.nn.bias_add(x, bias)
    return ops.add(x, bias)


ACTIVATIONS = {
    "gelu": gelu_erf,
    "gelu_erf": gelu_erf,
    "gelu_tanh": gelu_tanh,
    "gelu_new": gelu_tanh,
    "gelu_approximate": gelu_tanh,
    "relu": keras.activations.relu,
    "swish": keras.activations.silu,
    "silu": keras.activations.silu,
    "tanh": keras.activations.tanh,
    "linear": keras.activations.linear,
}

# What "gelu" resolves to in layers made from now on (bert4keras's set_gelu); see resolve_activation.
_GELU_DEFAULT = ["gelu"]


def set_gelu(version):
    """Choose what ``"gelu"`` means in models built afterwards: ``"erf"`` (default, Google BERT) or ``"tanh"``.

    bert4keras's switch, for checkpoints trained with the tanh approximation.
    Layers record the variant they were built with in their config.

    Example:
        >>> set_gelu("tanh")
    """
    version = str(version).lower()
    if version not in ("erf", "tanh"):
        raise ValueError(f"gelu version must be 'erf' or 'tanh', got {version!r}")
    _GELU_DEFAULT[0] = "gelu" if version == "erf" else "gelu_tanh"


def resolve_activation(name):
    """The activation name a layer made now records: ``"gelu"`` follows :func:`set_gelu`, others are checked.

    Example:
        >>> resolve_activation("gelu")   # 'gelu', or 'gelu_tanh' after set_gelu("tanh")
        'gelu'
    """
    if name is None:
        return "linear"
    if callable(name):
        return name
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return _GELU_DEFAULT[0] if name == "gelu" else name


def get_activation(name):
    """Map a ``hidden_act`` config value to a Keras activation (``"gelu"`` is the erf form).

    Example:
        >>> act = get_activation("gelu")
        >>> float(act(keras.ops.convert_to_tensor(0.0)))
        0.0
    """
    if callable(name):
        return name
    if name is None:
        return keras.activations.linear
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]
