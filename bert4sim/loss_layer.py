"""``Loss``: bert4keras's loss layer (a layer that adds the model's loss), for Keras 3.

Re-exported as ``bert4sim.layers.Loss``. A subclass writes
``compute_loss(inputs, mask=None)``; calling the layer adds that loss to the
model (``add_loss``) and passes ``inputs`` (or the ones picked by
``output_axis``) through, so a script builds ``train_model`` with the loss
inside and compiles it without a ``loss=`` argument.
"""
import keras
from keras import ops


def _as_float(x):
    # bert4keras models take float32 ids, so its loss code multiplies by segment ids freely
    if ops.is_tensor(x) or keras.utils.is_keras_tensor(x):
        if not keras.backend.is_float_dtype(keras.backend.standardize_dtype(x.dtype)):
            return ops.cast(x, keras.config.floatx())
    return x


def _in_symbolic_build(value):
    # Keras 3 (TF backend) runs call() once in a scratch graph to infer a functional model's shapes
    graph = getattr(value, "graph", None)
    return graph is not None and str(getattr(graph, "name", "")).startswith("scratch_graph")


def _eager(value):
    return getattr(value, "graph", None) is None  # eager tensors and Python numbers


class Loss(keras.layers.Layer):
    """A layer that computes a loss from its inputs and adds it to the model (bert4keras's contract).

    ``output_axis``: None returns all inputs, an int the input at that index,
    a list those inputs. ``compute_loss(inputs, mask=None)`` sees integer
    inputs (token / segment ids) as ``floatx`` tensors, as bert4keras's
    float32 inputs were, so ``loss * y_mask`` works unchanged. What it
    returns is reduced as TensorFlow-Keras 2 reduced an ``add_loss``: the
    mean over all its elements (a per-row loss logs its batch mean, not
    its sum); under ``tf.distribute`` Keras scales it per replica, so the
    update is the gradient of the global mean and ``fit`` logs the mean.
    ``self.add_metric(value, name)`` inside ``compute_loss`` logs ``name``
    in ``fit``'s history (mean over the epoch).

    Example:
        >>> class CrossEntropy(Loss):
        ...     def compute_loss(self, inputs, mask=None):
        ...         y_true, y_mask, y_pred = inputs
        ...         loss = K.sparse_categorical_crossentropy(y_true[:, 1:], y_pred[:, :-1])
        ...         return K.sum(loss * y_mask[:, 1:]) / K.sum(y_mask[:, 1:])
        >>> output = CrossEntropy(2)(model.inputs + model.outputs)
        >>> train_model = keras.Model(model.inputs, output)
        >>> train_model.compile(optimizer=Adam(1e-5))
    """

    def __init__(self, output_axis=None, **kwargs):
        super().__init__(**kwargs)
        self.output_axis = output_axis
        # Metrics appear on first use, after the layer is built (when Keras locks tracked state):
        # kept in a dict the tracker does not wrap, listed by the ``metrics`` property.
        object.__setattr__(self, "_named_metrics", {})

    def call(self, inputs, mask=None):
        as_float = [_as_float(x) for x in inputs] if isinstance(inputs, (list, tuple)) else _as_float(inputs)
        loss = ops.mean(ops.cast(self.compute_loss(as_float, mask), "float32"))
        self.add_loss(loss)  # Keras 3 scales added losses for tf.distribute itself
        return self._select(inputs)

    def compute_loss(self, inputs, mask=None):
        """The loss of a batch (a scalar, or per-row / per-element values that are averaged)."""
        raise NotImplementedError("subclasses of Loss implement compute_loss(inputs, mask=None)")

    def add_metric(self, value, name):
        """Log ``value`` under ``name`` in ``fit``'s logs (mean over the epoch, like ``loss``).

        Call it from ``compute_loss``. The metric is created when the model is
        built (the first, symbolic call); a layer first called inside a
        training step must create it beforehand with ``add_metric(0.0, name)``
        in its ``__init__``.

        Example:
            >>> self.add_metric(accuracy, "accuracy")
        """
        symbolic = _in_symbolic_build(value)
        metric = self._named_metrics.get(name)
        if metric is None:
            if not (symbolic or _eager(value)):
                raise RuntimeError(f"Loss layer {self.name!r}: metric {name!r} is first logged inside a compiled "
                                   f"step; call self.add_metric(0.0, {name!r}) in __init__ to create it first")
            metric = keras.metrics.Mean(name=name)
            self._named_metrics[name] = metric
        if not symbolic:
            metric.update_state(ops.mean(ops.cast(value, "float32")))

    @property
    def metrics(self):
        return [*super().metrics, *self._named_metrics.values()]

    def _select(self, values):
        if self.output_axis is None:
            return values
        if isinstance(self.output_axis, (list, tuple)):
            return [values[i] for i in self.output_axis]
        return values[self.output_axis]

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        return self._select(mask)

    def get_config(self):
        return {**super().get_config(), "output_axis": self.output_axis}
