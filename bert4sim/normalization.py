"""Affine and normalization layers with conditions: ``ScaleOffset`` and (conditional) ``LayerNormalization``.

bert4keras's two layers, for Keras 3. :class:`LayerNormalization` normalizes
the last axis (``zero_mean``, ``unit_variance``, ``epsilon``) and then
applies :class:`ScaleOffset`'s ``x * gamma + beta``. With
``conditional=True`` the layer is called on ``[x, condition]`` and the
condition (``[batch, c]``, one vector per example) shifts both:
``gamma + h·W_g`` and ``beta + h·W_b``, where ``h`` is the condition or,
with ``hidden_units``, ``activation(condition·W_h)``. ``W_g`` and ``W_b``
start at zero, so a conditional layer starts out equal to the plain one
(conditional LayerNorm, https://kexue.fm/archives/7124).
``build_transformer_model(..., layer_norm_cond=...)`` makes every
LayerNorm of the model conditional with this layer.

Example:
    >>> y = LayerNormalization(epsilon=1e-12)(x)
    >>> y = LayerNormalization(conditional=True, hidden_units=128, hidden_activation="swish")([x, condition])
"""
import keras
from keras import ops

from bert4sim.activations import get_activation, resolve_activation

_serializable = keras.saving.register_keras_serializable(package="bert4sim")


def _is_set(value):
    return value is not False and value is not None


@_serializable
class ScaleOffset(keras.layers.Layer):
    """``x * gamma + beta`` over the last axis, with fixed, learned or conditional ``gamma`` / ``beta``.

    ``scale`` / ``offset``: True → a learned vector (``gamma`` starts at
    ones, ``beta`` at zeros); a number → that constant; False / None → none.
    ``conditional=True``: called on ``[x, condition]`` with a condition
    ``[batch, c]``; ``hidden_units`` / ``hidden_activation`` /
    ``hidden_initializer`` add a projection of the condition first (no
    bias). The mask of ``x`` passes through.

    Example:
        >>> y = ScaleOffset(scale=False)(logits)          # + a learned bias (bert4keras's MLM-Bias)
        >>> y = ScaleOffset(conditional=True)([x, condition])
    """

    def __init__(self, scale=True, offset=True, conditional=False, hidden_units=None, hidden_activation="linear",
                 hidden_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.scale = scale
        self.offset = offset
        self.conditional = bool(conditional)
        self.hidden_units = None if hidden_units is None else int(hidden_units)
        self.hidden_activation = resolve_activation(hidden_activation)
        self.hidden_initializer = keras.initializers.get(hidden_initializer)
        self.supports_masking = True

    def _condition_shape(self, input_shape):
        if not self.conditional:
            return tuple(input_shape), None
        if not (isinstance(input_shape, (list, tuple)) and len(input_shape) == 2
                and isinstance(input_shape[0], (list, tuple))):
            raise ValueError(f"{type(self).__name__}(conditional=True) is called on [x, condition]; "
                             f"got one input of shape {input_shape}")
        x_shape, condition_shape = tuple(input_shape[0]), tuple(input_shape[1])
        if len(condition_shape) != 2:
            raise ValueError(f"{type(self).__name__}: the condition must be [batch, features] (one vector per "
                             f"example, as in bert4keras), got shape {condition_shape}")
        return x_shape, condition_shape

    def build(self, input_shape):
        x_shape, condition_shape = self._condition_shape(input_shape)
        dim = x_shape[-1]
        if self.offset is True:
            self.beta = self.add_weight(shape=(dim,), initializer="zeros", name="beta")
        if self.scale is True:
            self.gamma = self.add_weight(shape=(dim,), initializer="ones", name="gamma")
        if self.conditional:
            width = condition_shape[-1]
            if self.hidden_units is not None:
                self.hidden_dense = keras.layers.Dense(
                    self.hidden_units, activation=get_activation(self.hidden_activation), use_bias=False,
                    kernel_initializer=self.hidden_initializer, name="hidden_dense", dtype=self.dtype_policy)
                self.hidden_dense.build(condition_shape)
                width = self.hidden_units
            for role, wanted in (("beta_dense", self.offset), ("gamma_dense", self.scale)):
                if _is_set(wanted):
                    dense = keras.layers.Dense(dim, use_bias=False, kernel_initializer="zeros", name=role,
                                               dtype=self.dtype_policy)
                    dense.build((condition_shape[0], width))
                    setattr(self, role, dense)
        self.built = True

    def _scale_offset(self, inputs, condition=None):
        if condition is not None and self.hidden_units is not None:
            condition = self.hidden_dense(condition)
        if _is_set(self.scale):
            gamma = self.gamma if self.scale is True else self.scale
            if condition is not None:
                gamma = gamma + ops.expand_dims(self.gamma_dense(condition), 1)
            inputs = inputs * gamma
        if _is_set(self.offset):
            beta = self.beta if self.offset is True else self.offset
            if condition is not None:
                beta = beta + ops.expand_dims(self.beta_dense(condition), 1)
            inputs = inputs + beta
        return inputs

    def _split(self, inputs):
        if self.conditional:
            x, condition = inputs
            return x, ops.cast(condition, x.dtype)
        return inputs, None

    def call(self, inputs):
        return self._scale_offset(*self._split(inputs))

    def compute_mask(self, inputs, mask=None):
        if self.conditional and isinstance(mask, (list, tuple)):
            return mask[0]
        return mask

    def compute_output_shape(self, input_shape):
        return self._condition_shape(input_shape)[0]

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "offset": self.offset,
            "conditional": self.conditional,
            "hidden_units": self.hidden_units,
            "hidden_activation": self.hidden_activation,
            "hidden_initializer": keras.initializers.serialize(self.hidden_initializer),
        }


@_serializable
class LayerNormalization(ScaleOffset):
    """Layer normalization with bert4keras's options, optionally conditional (see :class:`ScaleOffset`).

    ``zero_mean=False`` skips the mean subtraction (an RMS norm),
    ``unit_variance=False`` the division; ``epsilon`` defaults to
    ``keras.config.epsilon()`` (1e-7) as in bert4keras; Google BERT uses
    1e-12. ``x̂ = (x - mean) / sqrt(mean((x - mean)²) + epsilon)``, then
    ``x̂ * gamma + beta``.

    Example:
        >>> y = LayerNormalization(epsilon=1e-12)(x)
        >>> y = LayerNormalization(conditional=True)([x, condition])   # condition: [batch, c]
    """

    def __init__(self, zero_mean=True, unit_variance=True, epsilon=None, **kwargs):
        super().__init__(**kwargs)
        self.zero_mean = bool(zero_mean)
        self.unit_variance = bool(unit_variance)
        self.epsilon = float(epsilon or keras.config.epsilon())

    def call(self, inputs):
        x, condition = self._split(inputs)
        if self.zero_mean:
            x = x - ops.mean(x, axis=-1, keepdims=True)
        if self.unit_variance:
            variance = ops.mean(ops.square(x), axis=-1, keepdims=True)
            x = x * ops.rsqrt(variance + self.epsilon)
        return self._scale_offset(x, condition)

    def get_config(self):
        return {**super().get_config(), "zero_mean": self.zero_mean, "unit_variance": self.unit_variance,
                "epsilon": self.epsilon}
