"""bert4keras-compatible optimizers over Keras 3's own.

``Adam`` and ``AdaFactor`` take bert4keras's argument names and defaults;
``extend_with_*`` return subclasses that add bert4keras's options, each
mapped onto a Keras 3 optimizer feature (no new update rule):

==================================  ================================  ===============================
bert4keras                           option                            Keras 3 feature used
==================================  ================================  ===============================
extend_with_weight_decay             weight_decay_rate,                ``weight_decay`` +
                                     exclude_from_weight_decay         ``exclude_from_weight_decay``
extend_with_piecewise_linear_lr      lr_schedule={step: multiplier}    a ``LearningRateSchedule``
extend_with_gradient_accumulation    grad_accum_steps                  ``gradient_accumulation_steps``
extend_with_exponential_moving_      ema_momentum, apply_ema_weights,  ``use_ema`` / ``ema_momentum``
average                              reset_old_weights
==================================  ================================  ===============================

The ``_v2`` names are the same functions (bert4keras's ``_v2`` were its
tf.keras versions).

Example:
    >>> AdamW = extend_with_weight_decay(Adam, "AdamW")
    >>> AdamWLR = extend_with_piecewise_linear_lr(AdamW, "AdamWLR")
    >>> optimizer = AdamWLR(learning_rate=1e-5, weight_decay_rate=0.01,
    ...                     exclude_from_weight_decay=["Norm", "bias"], lr_schedule={1000: 1, 2000: 0.1})
"""
import inspect
import re

import keras
from keras import ops

from bert4sim import unprovided
from bert4sim.compat.keras2_backend import piecewise_linear


def _learning_rate(args, kwargs, default):
    """The learning rate of a bert4keras-style call: first positional, ``learning_rate=`` or Keras 2's ``lr=``."""
    if args:
        if "learning_rate" in kwargs or "lr" in kwargs:
            raise TypeError("learning rate given twice (positionally and by keyword)")
        return args[0], args[1:]
    if "lr" in kwargs:
        if "learning_rate" in kwargs:
            raise TypeError("give learning_rate or lr, not both")
        return kwargs.pop("lr"), args
    return kwargs.pop("learning_rate", default), args


def dense_gradient(gradient):
    """A gradient as one dense tensor: ``IndexedSlices`` (embedding rows) summed per row, as bert4keras did.

    Keras 3's optimizers update their moments once per slice of an
    ``IndexedSlices`` gradient, so a token that occurs twice in a batch
    moves its moments twice (and squares the parts, not their sum);
    bert4keras made such gradients dense first.

    Example:
        >>> dense_gradient(tf.IndexedSlices(values, indices, dense_shape))   # [rows, dim]
    """
    if hasattr(gradient, "indices") and hasattr(gradient, "dense_shape"):
        import tensorflow as tf

        return tf.convert_to_tensor(gradient)
    return gradient


class Adam(keras.optimizers.Adam):
    """bert4keras's Adam: ``epsilon=1e-6`` by default, its step formula, sparse gradients made dense.

    The step is bert4keras's formula, ``w -= lr · m̂ / (sqrt(v̂) + ε)`` with
    ``m̂ = m / (1 - β1ᵗ)`` and ``v̂ = v / (1 - β2ᵗ)``; Keras's Adam adds ε to
    ``sqrt(v)`` before the correction, a different number early in training.
    Embedding gradients are made dense first (:func:`dense_gradient`).
    ``bias_correction=False`` (bert4keras's option) is refused.

    Example:
        >>> model.compile(optimizer=Adam(2e-5))
    """

    def __init__(self, *args, beta_1=0.9, beta_2=0.999, epsilon=1e-6, bias_correction=True, **kwargs):
        if not bias_correction:
            raise ValueError("Adam(bias_correction=False) is not supported: bert4sim's Adam always corrects the "
                             "moment estimates")
        learning_rate, args = _learning_rate(args, kwargs, 0.001)
        if args:
            raise TypeError(f"Adam takes the learning rate as its only positional argument, got {len(args) + 1}")
        kwargs.setdefault("name", "Adam")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        gradient = ops.cast(dense_gradient(gradient), variable.dtype)
        rate = ops.cast(learning_rate, variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign(m, self.beta_1 * m + (1 - self.beta_1) * gradient)
        self.assign(v, self.beta_2 * v + (1 - self.beta_2) * ops.square(gradient))
        m_hat = ops.convert_to_tensor(m) / (1 - ops.power(ops.cast(self.beta_1, variable.dtype), step))
        v_hat = ops.convert_to_tensor(v) / (1 - ops.power(ops.cast(self.beta_2, variable.dtype), step))
        self.assign_sub(variable, rate * m_hat / (ops.sqrt(v_hat) + self.epsilon))


class AdaFactor(keras.optimizers.Adafactor):
    """AdaFactor with bert4keras's argument names, on Keras 3's ``Adafactor``.

    ``learning_rate`` is used as given (bert4keras: ``None`` means
    ``min(1e-2, 1/sqrt(step))``); ``beta2=None`` is the ``1 - step**-0.8``
    decay of both; ``epsilon1``, ``epsilon2``, ``clipping_threshold`` map to
    Keras's ``epsilon_1``, ``epsilon_2``, ``clip_threshold``. Keras's
    Adafactor always scales by the parameter's RMS and factors every matrix,
    and has no first moment: ``beta1 != 0``, ``multiply_by_parameter_scale=False``
    and ``min_dim_size_to_factor`` other than the default are refused.

    Example:
        >>> model.compile(optimizer=AdaFactor(learning_rate=1e-3))
    """

    def __init__(self, learning_rate=1e-3, beta1=0.0, beta2=None, epsilon1=1e-30, epsilon2=1e-3,
                 multiply_by_parameter_scale=True, clipping_threshold=1.0, min_dim_size_to_factor=128,
                 exclude_from_parameter_scale=None, **kwargs):
        unsupported = {"beta1": (beta1, 0.0), "multiply_by_parameter_scale": (multiply_by_parameter_scale, True),
                       "min_dim_size_to_factor": (min_dim_size_to_factor, 128),
                       "exclude_from_parameter_scale": (exclude_from_parameter_scale, None)}
        for name, (value, default) in unsupported.items():
            if value != default:
                raise ValueError(f"AdaFactor({name}={value!r}) has no Keras 3 Adafactor counterpart")
        if beta2 is not None:
            raise ValueError("AdaFactor(beta2=...) has no Keras 3 counterpart (it always decays as 1 - step**-0.8)")
        kwargs.setdefault("name", "AdaFactor")
        relative = learning_rate is None
        super().__init__(learning_rate=1e-2 if relative else learning_rate, epsilon_1=epsilon1, epsilon_2=epsilon2,
                         clip_threshold=clipping_threshold, relative_step=relative, **kwargs)


@keras.saving.register_keras_serializable(package="bert4sim")
class PiecewiseLinearSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``learning_rate × piecewise_linear(step, schedule)``: bert4keras's ``lr_schedule``.

    ``schedule`` is ``{step: multiplier}``; the multiplier goes linearly
    between the given steps, from 0 at step 0 (unless step 0 is given),
    and stays at the last value after the last step.

    Example:
        >>> PiecewiseLinearSchedule(1e-3, {1000: 1, 2000: 0.1})(500)  # 5e-4
    """

    def __init__(self, learning_rate, schedule):
        if not schedule:
            raise ValueError("lr_schedule must have at least one {step: multiplier} entry")
        self.learning_rate = learning_rate
        self.schedule = {int(step): float(value) for step, value in schedule.items()}

    def multiplier(self, step):
        return piecewise_linear(step, self.schedule)

    def __call__(self, step):
        rate = self.learning_rate
        rate = rate(step) if callable(rate) else rate
        return ops.cast(rate, "float32") * self.multiplier(step)

    def get_config(self):
        rate = self.learning_rate
        if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
            rate = keras.saving.serialize_keras_object(rate)
        return {"learning_rate": rate, "schedule": self.schedule}

    @classmethod
    def from_config(cls, config):
        rate = config["learning_rate"]
        if isinstance(rate, dict):
            rate = keras.saving.deserialize_keras_object(rate)
        return cls(rate, config["schedule"])


def _named(cls, name, default):
    cls.__name__ = cls.__qualname__ = name or default
    return cls


def extend_with_weight_decay(BaseOptimizer, name=None):
    """Add bert4keras's decoupled weight decay: ``weight_decay_rate`` (0.01), ``exclude_from_weight_decay``.

    Every variable decays unless one of the ``exclude_from_weight_decay``
    regular expressions matches its path (e.g. ``["Norm", "bias"]``); the
    step is ``x -= lr · weight_decay_rate · x`` besides the base update, as
    bert4keras did (Keras's ``weight_decay``).

    Example:
        >>> AdamW = extend_with_weight_decay(Adam, "AdamW")
        >>> AdamW(learning_rate=1e-5, weight_decay_rate=0.01, exclude_from_weight_decay=["Norm", "bias"])
    """

    class WeightDecay(BaseOptimizer):
        def __init__(self, *args, weight_decay_rate=0.01, exclude_from_weight_decay=(), **kwargs):
            super().__init__(*args, weight_decay=weight_decay_rate, **kwargs)
            self.weight_decay_rate = weight_decay_rate
            self.exclude_patterns = list(exclude_from_weight_decay or ())

        def build(self, var_list):
            excluded = [v for v in var_list if any(re.search(p, v.path) for p in self.exclude_patterns)]
            if excluded:
                self.exclude_from_weight_decay(var_list=excluded)
            super().build(var_list)

        def get_config(self):
            config = super().get_config()
            config.pop("weight_decay", None)
            return {**config, "weight_decay_rate": self.weight_decay_rate,
                    "exclude_from_weight_decay": self.exclude_patterns}

    return _named(WeightDecay, name, f"{BaseOptimizer.__name__}W")


def extend_with_piecewise_linear_lr(BaseOptimizer, name=None):
    """Add bert4keras's ``lr_schedule={step: multiplier}`` (piecewise linear, see :class:`PiecewiseLinearSchedule`).

    Example:
        >>> AdamLR = extend_with_piecewise_linear_lr(Adam, "AdamLR")
        >>> AdamLR(learning_rate=1e-4, lr_schedule={1000: 1, 2000: 0.1})  # warm up 1000 steps, then decay
    """

    class PiecewiseLinearLR(BaseOptimizer):
        def __init__(self, *args, lr_schedule=None, **kwargs):
            learning_rate, args = _learning_rate(args, kwargs, 0.001)
            if isinstance(learning_rate, dict):  # from get_config
                learning_rate = keras.saving.deserialize_keras_object(learning_rate)
            if lr_schedule is not None:
                learning_rate = PiecewiseLinearSchedule(learning_rate, lr_schedule)
            super().__init__(learning_rate, *args, **kwargs)
            self.lr_schedule = None if lr_schedule is None else dict(learning_rate.schedule)

    return _named(PiecewiseLinearLR, name, f"{BaseOptimizer.__name__}LR")


def extend_with_gradient_accumulation(BaseOptimizer, name=None):
    """Add ``grad_accum_steps`` (2): apply the mean gradient of every ``grad_accum_steps`` batches.

    Keras's ``gradient_accumulation_steps``: the update comes with the k-th
    batch of each group (bert4keras applied a group's mean one batch later,
    starting with an update from zero gradients).

    Example:
        >>> AdamGA = extend_with_gradient_accumulation(Adam, "AdamGA")
        >>> AdamGA(learning_rate=1e-5, grad_accum_steps=4)
    """

    class GradientAccumulation(BaseOptimizer):
        def __init__(self, *args, grad_accum_steps=2, **kwargs):
            if int(grad_accum_steps) < 1:
                raise ValueError(f"grad_accum_steps must be at least 1, got {grad_accum_steps}")
            kwargs.pop("gradient_accumulation_steps", None)
            steps = int(grad_accum_steps)
            super().__init__(*args, gradient_accumulation_steps=steps if steps > 1 else None, **kwargs)
            self.grad_accum_steps = steps

        def get_config(self):
            return {**super().get_config(), "grad_accum_steps": self.grad_accum_steps}

    return _named(GradientAccumulation, name, f"{BaseOptimizer.__name__}GA")


def extend_with_exponential_moving_average(BaseOptimizer, name=None):
    """Add a moving average of the weights (``ema_momentum``, 0.999) with ``apply_ema_weights`` / ``reset_old_weights``.

    The average is Keras's (``use_ema``): it starts from the weights after
    the first step, so it needs no bias correction (bert4keras started from
    zeros and divided by ``1 - momentum**steps``; the two agree once
    ``momentum**steps`` is small). ``fit`` leaves the trained weights in
    the model (Keras would swap the average in at the end of ``fit``);
    ``apply_ema_weights()`` backs them up and loads the average,
    ``reset_old_weights()`` restores them.

    Example:
        >>> AdamEMA = extend_with_exponential_moving_average(Adam, "AdamEMA")
        >>> optimizer = AdamEMA(learning_rate=1e-5, ema_momentum=0.9999)
        >>> optimizer.apply_ema_weights(); model.save_weights("best.weights.h5"); optimizer.reset_old_weights()
    """

    class ExponentialMovingAverage(BaseOptimizer):
        def __init__(self, *args, ema_momentum=0.999, **kwargs):
            kwargs.pop("use_ema", None)
            super().__init__(*args, use_ema=True, ema_momentum=ema_momentum, **kwargs)
            self.old_weights = None

        def build(self, var_list):
            super().build(var_list)
            self.model_weights = list(var_list)

        def finalize_variable_values(self, var_list):
            pass  # keep the trained weights after fit, as bert4keras; apply_ema_weights swaps on request

        def apply_ema_weights(self, bias_correction=True):
            """Back up the model's weights and load their moving average (``bias_correction`` is implied)."""
            if not getattr(self, "model_weights", None):
                raise RuntimeError("apply_ema_weights() needs a built optimizer (train at least one step first)")
            self.old_weights = [ops.convert_to_numpy(v) for v in self.model_weights]
            super().finalize_variable_values(self.model_weights)

        def reset_old_weights(self):
            """Restore the weights backed up by :meth:`apply_ema_weights`."""
            if self.old_weights is None:
                raise RuntimeError("reset_old_weights() without a previous apply_ema_weights()")
            for variable, value in zip(self.model_weights, self.old_weights):
                variable.assign(value)

    return _named(ExponentialMovingAverage, name, f"{BaseOptimizer.__name__}EMA")


extend_with_weight_decay_v2 = extend_with_weight_decay
extend_with_piecewise_linear_lr_v2 = extend_with_piecewise_linear_lr
extend_with_gradient_accumulation_v2 = extend_with_gradient_accumulation
extend_with_exponential_moving_average_v2 = extend_with_exponential_moving_average


class Lion(keras.optimizers.Lion):
    """Lion (https://arxiv.org/abs/2302.06675) with bert4keras's defaults: ``learning_rate=3e-4``, betas 0.95 / 0.98.

    Keras 3's update is bert4keras's: ``w -= lr · sign(β1·m + (1-β1)·g)``,
    then ``m = β2·m + (1-β2)·g``.

    Example:
        >>> model.compile(optimizer=Lion(1e-4), loss="mse")
    """

    def __init__(self, learning_rate=3e-4, beta_1=0.95, beta_2=0.98, **kwargs):
        kwargs.setdefault("name", "Lion")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, **kwargs)


LionV2 = Lion
AdaFactorV2 = AdaFactor


def _matches(variable, patterns):
    """Whether one of the regular expressions matches the variable's path (bert4keras matched ``w.name``)."""
    return any(re.search(pattern, variable.path) for pattern in patterns)


class _DeltaTransform:
    """Mixin: run the base optimizer's ``update_step``, then replace the variable's change ``delta`` by
    ``self.transform_delta(delta, old, gradient, variable, learning_rate)``."""

    def transform_delta(self, delta, old, gradient, variable, learning_rate):
        raise NotImplementedError

    def changes(self, variable):
        return True

    def update_step(self, gradient, variable, learning_rate):
        # the backend may pass its own variable: decide on the Keras variable (its path) it stands for
        gradient = dense_gradient(gradient)
        if not self.changes(self._trainable_variables[self._get_variable_index(variable)]):
            return super().update_step(gradient, variable, learning_rate)
        old = ops.copy(ops.convert_to_tensor(variable))
        super().update_step(gradient, variable, learning_rate)
        delta = ops.convert_to_tensor(variable) - old
        variable.assign(old + self.transform_delta(delta, old, gradient, variable, learning_rate))


def extend_with_layer_adaptation(BaseOptimizer, name=None):  # noqa: N803
    """Add layer adaptation (LAMB's trust ratio, https://arxiv.org/abs/1904.00962): ``exclude_from_layer_adaptation``.

    Each step ``Δw`` of a variable is rescaled to ``Δw · ‖w‖ / ‖Δw / lr‖``
    (unchanged when either norm is 0), so every layer moves by about ``lr``
    of its own size; variables matching one of the
    ``exclude_from_layer_adaptation`` regular expressions are left alone.

    Example:
        >>> Lamb = extend_with_layer_adaptation(Adam, "Lamb")
        >>> Lamb(learning_rate=1e-3, exclude_from_layer_adaptation=["Norm", "bias"])
    """

    class LayerAdaptation(_DeltaTransform, BaseOptimizer):
        def __init__(self, *args, exclude_from_layer_adaptation=(), **kwargs):
            super().__init__(*args, **kwargs)
            self.exclude_from_layer_adaptation = list(exclude_from_layer_adaptation or ())

        def changes(self, variable):
            return not _matches(variable, self.exclude_from_layer_adaptation)

        def transform_delta(self, delta, old, gradient, variable, learning_rate):
            rate = ops.maximum(ops.cast(learning_rate, delta.dtype), keras.config.epsilon())
            weight_norm, step_norm = ops.norm(ops.reshape(old, (-1,))), ops.norm(ops.reshape(delta / rate, (-1,)))
            usable = ops.logical_and(weight_norm > 0, step_norm > 0)
            return delta * ops.where(usable, weight_norm / ops.where(usable, step_norm, 1.0), 1.0)

        def get_config(self):
            return {**super().get_config(), "exclude_from_layer_adaptation": self.exclude_from_layer_adaptation}

    return _named(LayerAdaptation, name, f"{BaseOptimizer.__name__}LA")


def extend_with_lazy_optimization(BaseOptimizer, name=None):  # noqa: N803
    """Add lazy updates: rows (e.g. of an embedding) whose gradient is all zero do not move (``include_in_lazy_optimization``).

    For variables matching one of the ``include_in_lazy_optimization``
    regular expressions, a row whose gradient is zero keeps its value,
    although the base optimizer's momentum would move it.

    Example:
        >>> AdamLazy = extend_with_lazy_optimization(Adam, "AdamLazy")
        >>> AdamLazy(learning_rate=1e-3, include_in_lazy_optimization=["Embedding"])
    """

    class LazyOptimization(_DeltaTransform, BaseOptimizer):
        def __init__(self, *args, include_in_lazy_optimization=(), **kwargs):
            super().__init__(*args, **kwargs)
            self.include_in_lazy_optimization = list(include_in_lazy_optimization or ())

        def changes(self, variable):
            return _matches(variable, self.include_in_lazy_optimization)

        def transform_delta(self, delta, old, gradient, variable, learning_rate):
            used = ops.any(ops.not_equal(ops.convert_to_tensor(gradient), 0), axis=-1, keepdims=True)
            return delta * ops.cast(used, delta.dtype)

        def get_config(self):
            return {**super().get_config(), "include_in_lazy_optimization": self.include_in_lazy_optimization}

    return _named(LazyOptimization, name, f"{BaseOptimizer.__name__}Lazy")


def extend_with_parameter_wise_lr(BaseOptimizer, name=None):  # noqa: N803
    """Add ``paramwise_lr_schedule={substring: multiplier}``: a variable's step is scaled by the multipliers of
    every substring found in its path (bert4keras: in its name).

    Example:
        >>> AdamPW = extend_with_parameter_wise_lr(Adam, "AdamPW")
        >>> AdamPW(learning_rate=1e-4, paramwise_lr_schedule={"Embedding": 0.1, "MLM": 2.0})
    """

    class ParameterWiseLR(_DeltaTransform, BaseOptimizer):
        def __init__(self, *args, paramwise_lr_schedule=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.paramwise_lr_schedule = dict(paramwise_lr_schedule or {})

        def multiplier(self, variable):
            if not hasattr(variable, "path"):  # the backend's variable: find the Keras one (its path)
                variable = self._trainable_variables[self._get_variable_index(variable)]
            value = 1.0
            for part, factor in self.paramwise_lr_schedule.items():
                if part in variable.path:
                    value *= factor
            return value

        def changes(self, variable):
            return self.multiplier(variable) != 1

        def transform_delta(self, delta, old, gradient, variable, learning_rate):
            return delta * self.multiplier(variable)

        def get_config(self):
            return {**super().get_config(), "paramwise_lr_schedule": self.paramwise_lr_schedule}

    return _named(ParameterWiseLR, name, f"{BaseOptimizer.__name__}PW")


def extend_with_lookahead(BaseOptimizer, name=None):  # noqa: N803
    """Add Lookahead (https://arxiv.org/abs/1907.08610): ``steps_per_slow_update`` (5), ``slow_step_size`` (0.5).

    Each variable has a slow copy; at every ``steps_per_slow_update``-th
    step (iterations 0, k, 2k, ... as in bert4keras) the slow copy moves
    ``slow_step_size`` of the way to the weights and the weights are reset
    to it. The slow copies start from the weights (bert4keras 0.11.5 started
    them at zero, which halved every weight at the first step).

    Example:
        >>> AdamLA = extend_with_lookahead(Adam, "AdamLookahead")
        >>> AdamLA(learning_rate=1e-3, steps_per_slow_update=5, slow_step_size=0.5)
    """

    class Lookahead(BaseOptimizer):
        def __init__(self, *args, steps_per_slow_update=5, slow_step_size=0.5, **kwargs):
            if int(steps_per_slow_update) < 1:
                raise ValueError(f"steps_per_slow_update must be at least 1, got {steps_per_slow_update}")
            super().__init__(*args, **kwargs)
            self.steps_per_slow_update, self.slow_step_size = int(steps_per_slow_update), float(slow_step_size)

        def build(self, var_list):
            super().build(var_list)
            self._slow = {}
            for variable in var_list:
                self._slow[self._var_key(variable)] = self.add_variable_from_reference(variable, "slow")

        def update_step(self, gradient, variable, learning_rate):
            start = ops.copy(ops.convert_to_tensor(variable))
            super().update_step(gradient, variable, learning_rate)
            slow = self._slow[self._var_key(variable)]
            first = ops.equal(self.iterations, 0)  # the slow copy starts from the weights before the first step
            weights = ops.convert_to_tensor(variable)
            slow_value = ops.where(first, start, ops.convert_to_tensor(slow))
            moved = slow_value + self.slow_step_size * (weights - slow_value)
            sync = ops.equal(ops.mod(self.iterations, self.steps_per_slow_update), 0)
            slow.assign(ops.where(sync, moved, slow_value))
            variable.assign(ops.where(sync, moved, weights))

        def get_config(self):
            return {**super().get_config(), "steps_per_slow_update": self.steps_per_slow_update,
                    "slow_step_size": self.slow_step_size}

    return _named(Lookahead, name, f"{BaseOptimizer.__name__}Lookahead")


def export_to_custom_objects(extend_with):
    """bert4keras's decorator for ``extend_with_*`` factories: the class made gets ``name`` and is registered
    with Keras (``keras.saving.get_custom_objects()``), so saved models that use it load.

    Example:
        >>> extend_with_my_option = export_to_custom_objects(my_factory)   # my_factory(BaseOptimizer) -> class
        >>> MyAdam = extend_with_my_option(Adam, "MyAdam")
    """

    takes_name = len(inspect.signature(extend_with).parameters) > 1

    def extend(BaseOptimizer, name=None):  # noqa: N803
        made = extend_with(BaseOptimizer, name) if takes_name else extend_with(BaseOptimizer)
        if name:
            made.__name__ = made.__qualname__ = name
        keras.saving.get_custom_objects()[made.__name__] = made
        return made

    extend.__name__ = getattr(extend_with, "__name__", "extend")
    extend.__doc__ = extend_with.__doc__
    return extend


extend_with_layer_adaptation_v2 = extend_with_layer_adaptation
extend_with_lazy_optimization_v2 = extend_with_lazy_optimization
extend_with_parameter_wise_lr_v2 = extend_with_parameter_wise_lr
extend_with_lookahead_v2 = extend_with_lookahead
custom_objects = {"Adam": Adam, "AdaFactor": AdaFactor}

__getattr__ = unprovided.module_getattr("optimizers")
