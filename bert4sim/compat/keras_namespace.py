"""The ``keras`` that ``from bert4sim.backend import keras`` gives a bert4keras script.

A namespace over Keras 3 (every attribute is Keras's own) in which
``keras.Model`` and ``keras.models.Model`` are :class:`bert4sim.functional.Model`,
the functional model that also takes Keras 2's inputs (nested lists in
``predict`` / ``fit`` / ``evaluate`` / ``*_on_batch``). Keras itself is not
changed: ``import keras`` elsewhere still gives Keras 3's classes.

Example:
    >>> from bert4sim.backend import keras
    >>> encoder = keras.models.Model(bert.model.inputs, bert.model.outputs[0])
    >>> encoder.predict([[token_ids], [segment_ids]])
"""
import types

import keras as _keras

from bert4sim.functional import Model


class KerasNamespace(types.ModuleType):
    """A module-like view of ``target`` with some attributes replaced.

    Example:
        >>> models = KerasNamespace("keras.models", keras.models, Model=Model)
        >>> models.load_model is keras.models.load_model
        True
    """

    def __init__(self, name, target, **replaced):
        super().__init__(name, getattr(target, "__doc__", None))
        self.__dict__["_target"] = target
        self.__dict__.update(replaced)

    def __getattr__(self, name):
        return getattr(self.__dict__["_target"], name)

    def __dir__(self):
        return sorted(set(dir(self.__dict__["_target"])) | set(self.__dict__) - {"_target"})

    def __repr__(self):
        return f"<bert4sim's view of {self.__dict__['_target'].__name__} (Model: Keras 2 inputs)>"


models = KerasNamespace("keras.models", _keras.models, Model=Model)
keras = KerasNamespace("keras", _keras, Model=Model, models=models)
