"""Heads on a transformer's token vectors: BERT's pooler, the MLM head (transform + bias), sentence pooling.

The MLM head's output projection is the token embedding itself (tied,
``TokenEmbedding(..., reverse=True)``); ``Transformer.mlm_logits`` in
:mod:`bert4sim.models` chains the three.

Example:
    >>> pooled = Pooler(768, activation="linear")(sequence_output)
    >>> vectors = Pooling("mean")([sequence_output, token_ids])
"""
import keras
from keras import ops

from bert4sim.activations import get_activation, resolve_activation
from bert4sim.layers import LAYER_NORM_EPSILON, apply_norm, layer_norm
from bert4sim.precision import Dense, MatmulDtype

_serializable = keras.saving.register_keras_serializable(package="bert4sim")


@_serializable
class Pooler(MatmulDtype, keras.layers.Layer):
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
        self.activation = resolve_activation(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.dense = Dense(
            self.units,
            activation=get_activation(self.activation),
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

    def compute_mask(self, inputs, mask=None):
        return None  # one vector per example: the sequence's mask does not apply

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
class MLMTransform(MatmulDtype, keras.layers.Layer):
    """The MLM head's transform: dense + activation + LayerNorm (``cls/predictions/transform``).

    ``units`` is the width of the tied embedding (``embedding_size``; by
    default the input's width). ``conditional=True`` makes the LayerNorm
    conditional (``call(x, condition=...)``, see
    :class:`bert4sim.normalization.LayerNormalization`). The input's mask
    passes through.

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
        units=None,
        conditional=False,
        condition_hidden_units=None,
        condition_hidden_activation="linear",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.activation = resolve_activation(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.units = None if units is None else int(units)
        self.conditional = bool(conditional)
        self.condition_hidden_units = None if condition_hidden_units is None else int(condition_hidden_units)
        self.condition_hidden_activation = resolve_activation(condition_hidden_activation)
        self.dense = None
        self.norm = layer_norm(self.conditional, self.layer_norm_epsilon, self.condition_hidden_units,
                               self.condition_hidden_activation, self.kernel_initializer, name="norm",
                               dtype=self.dtype_policy)
        self.matmul_dtype = matmul_dtype
        self.supports_masking = True

    def build(self, inputs_shape, condition_shape=None):
        units = self.units or inputs_shape[-1]
        self.dense = Dense(
            units,
            activation=get_activation(self.activation),
            kernel_initializer=self.kernel_initializer,
            name="dense",
            dtype=self.dtype_policy,
            matmul_dtype=self.matmul_dtype,
        )
        self.dense.build(inputs_shape)
        if self.conditional and condition_shape is None:
            raise ValueError(f"{self.name!r} has a conditional LayerNorm: call it with condition=[batch, c]")
        norm_shape = tuple(inputs_shape[:-1]) + (units,)
        self.norm.build([norm_shape, condition_shape] if self.conditional else norm_shape)
        self.built = True

    def call(self, inputs, kernels=None, condition=None):
        return apply_norm(self.norm, self.dense(inputs, kernels=kernels), condition)

    def compute_output_shape(self, inputs_shape, condition_shape=None):
        return tuple(inputs_shape[:-1]) + (self.units or inputs_shape[-1],)

    def get_config(self):
        return {
            **super().get_config(),
            "activation": self.activation,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "matmul_dtype": self.matmul_dtype,
            "units": self.units,
            "conditional": self.conditional,
            "condition_hidden_units": self.condition_hidden_units,
            "condition_hidden_activation": self.condition_hidden_activation,
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
        self.supports_masking = True

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
class NextSentence(keras.layers.Layer):
    """BERT's next-sentence head: ``softmax(pooled · Wᵀ + b)`` over (is next, is random).

    The weight is stored as the Google checkpoint stores it,
    ``output_weights`` ``[2, hidden]`` (``cls/seq_relationship``), so it
    loads and saves without transposing.

    Example:
        >>> probas = NextSentence(name="NSP-Proba")(pooled)   # [batch, 2]
    """

    def __init__(self, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        self.output_weights = self.add_weight(shape=(2, input_shape[-1]), initializer=self.kernel_initializer,
                                              name="output_weights")
        self.output_bias = self.add_weight(shape=(2,), initializer="zeros", name="output_bias")
        self.built = True

    def call(self, inputs):
        logits = ops.matmul(inputs, ops.transpose(ops.cast(self.output_weights, inputs.dtype)))
        return ops.softmax(logits + ops.cast(self.output_bias, inputs.dtype), axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (2,)

    def get_config(self):
        return {**super().get_config(), "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


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

    def compute_mask(self, inputs, mask=None):
        return None  # one vector per example

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "normalize": self.normalize}
