"""``Model``: a Keras 3 functional model that also takes Keras 2's inputs.

Keras 2 (and so every bert4keras script) fed a multi-input model nested
Python lists, ``model.predict([[token_ids], [segment_ids]])``, and matched a
dict of targets to the outputs by their layers' names (also in a
``tf.data.Dataset``); Keras 3 refuses the first ("Unrecognized data type")
and, for a single output, the second.
:class:`Model` converts such inputs before handing them to Keras:
``build_transformer_model`` returns this class, and bert4sim's bert4keras
facade (``from bert4sim.backend import keras``) hands it out as
``keras.Model`` / ``keras.models.Model``. It is registered for saving;
nothing in Keras is changed.

Example:
    >>> encoder = Model(bert.inputs, bert.outputs[0])
    >>> encoder.predict([[token_ids], [segment_ids]])          # one row, two inputs: nested lists
"""
import keras
import numpy as np


def _array(value):
    """A (nested) Python list / tuple of numbers or arrays as one numpy array; anything else unchanged."""
    if isinstance(value, (list, tuple)) and not any(keras.utils.is_keras_tensor(v) or keras.ops.is_tensor(v)
                                                    for v in value):
        return np.asarray(value)
    return value


def keras2_inputs(x, count):
    """``x`` as Keras 3 reads a model's inputs: nested lists become one array per input (Keras 2's reading).

    ``count`` is the number of model inputs. A list of ``count`` items
    (lists or arrays) is one item per input; for a single-input model a
    nested list is one array. Dicts, arrays, datasets and generators are
    returned unchanged.

    Example:
        >>> keras2_inputs([[[2, 5, 3]], [[0, 0, 0]]], 2)     # [array([[2, 5, 3]]), array([[0, 0, 0]])]
    """
    if isinstance(x, tuple) and count > 1 and len(x) == count:
        x = list(x)
    if not isinstance(x, list):
        return x
    if count > 1 and len(x) == count:
        return [_array(item) for item in x]
    if count == 1:
        if len(x) == 1 and (isinstance(x[0], (list, tuple)) or hasattr(x[0], "shape")):
            return _array(x[0])
        return _array(x)
    return x


def keras2_targets(y, output_names):
    """Targets as Keras 3 reads them: nested lists become arrays; a dict keyed by output names is put in output order.

    Example:
        >>> keras2_targets({"Probas": labels}, ["Probas"])    # labels
    """
    if isinstance(y, dict) and output_names and set(y) == set(output_names):
        values = [_array(y[name]) for name in output_names]
        return values[0] if len(values) == 1 else values
    return keras2_inputs(y, len(output_names or ())) if isinstance(y, (list, tuple)) else y


def keras2_dataset(dataset, output_names):
    """A ``tf.data.Dataset`` of ``(inputs, {output name: target})`` with the targets put in output order.

    (What Keras 2 did with dict targets; bert4keras's ``DataGenerator.to_dataset(names=...)`` makes such
    datasets.) Other datasets are returned unchanged.

    Example:
        >>> keras2_dataset(generator.to_dataset(types, shapes, names=...), ["Probas"])
    """
    spec = getattr(dataset, "element_spec", None)
    if not (isinstance(spec, tuple) and len(spec) >= 2 and isinstance(spec[1], dict) and output_names
            and set(spec[1]) == set(output_names)):
        return dataset

    def ordered(inputs, targets, *rest):
        values = tuple(targets[name] for name in output_names)
        return (inputs, values[0] if len(values) == 1 else values) + rest

    return dataset.map(ordered)


def _is_dataset(x):
    return type(x).__module__.startswith("tensorflow") and hasattr(x, "element_spec")


@keras.saving.register_keras_serializable(package="bert4sim")
class Model(keras.Model):
    """A functional Keras model whose ``predict``, ``fit``, ``evaluate`` and ``*_on_batch`` take Keras 2's inputs.

    Built like ``keras.Model(inputs, outputs)``; inputs given as nested
    Python lists (one list per model input) and targets given as a dict
    keyed by output-layer names are converted first (:func:`keras2_inputs`,
    :func:`keras2_targets`); everything else goes to Keras unchanged.

    Example:
        >>> model = Model(bert.model.inputs, bert.model.outputs[0])
        >>> vectors = model.predict([[ids], [segs]], verbose=0)
    """

    def _x(self, x):
        if _is_dataset(x):
            return keras2_dataset(x, list(getattr(self, "output_names", None) or []))
        return keras2_inputs(x, len(self.inputs))

    def _y(self, y):
        return keras2_targets(y, list(getattr(self, "output_names", None) or []))

    def predict(self, x, *args, **kwargs):
        """Keras's ``predict``, with Keras 2's inputs converted first.

        Example:
            >>> model.predict([[ids], [segs]], verbose=0)
        """
        return super().predict(self._x(x), *args, **kwargs)

    def predict_on_batch(self, x):
        """Keras's ``predict_on_batch``, with Keras 2's inputs converted first.

        Example:
            >>> model.predict_on_batch([[ids], [segs]])
        """
        return super().predict_on_batch(self._x(x))

    def fit(self, x=None, y=None, *args, **kwargs):
        """Keras's ``fit``, with Keras 2's inputs converted first.

        Example:
            >>> model.fit([ids_rows, segs_rows], labels, epochs=1)
        """
        data = kwargs.get("validation_data")
        if isinstance(data, (list, tuple)):
            kwargs["validation_data"] = (self._x(data[0]), self._y(data[1])) + tuple(data[2:])
        elif _is_dataset(data):
            kwargs["validation_data"] = self._x(data)
        return super().fit(self._x(x), self._y(y), *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Keras's ``evaluate``, with Keras 2's inputs converted first.

        Example:
            >>> model.evaluate([ids_rows, segs_rows], labels)
        """
        return super().evaluate(self._x(x), self._y(y), *args, **kwargs)

    def train_on_batch(self, x, y=None, *args, **kwargs):
        """Keras's ``train_on_batch``, with Keras 2's inputs converted first.

        Example:
            >>> model.train_on_batch([ids_rows, segs_rows], labels)
        """
        return super().train_on_batch(self._x(x), self._y(y), *args, **kwargs)

    def test_on_batch(self, x, y=None, *args, **kwargs):
        """Keras's ``test_on_batch``, with Keras 2's inputs converted first.

        Example:
            >>> model.test_on_batch([ids_rows, segs_rows], labels)
        """
        return super().test_on_batch(self._x(x), self._y(y), *args, **kwargs)
