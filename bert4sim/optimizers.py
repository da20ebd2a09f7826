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
import re

import keras
import numpy as np
from keras import ops


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


class Adam(keras.optimizers.Adam):
    """Adam with bert4keras's defaults (``epsilon=1e-6``); the update is Keras's, which is bert4keras's formula.

    ``bias_correction=False`` (bert4keras's option without the
    ``1 - beta**t`` corrections) has no Keras 3 counterpart and is refused.

    Example:
        >>> model.compile(optimizer=Adam(2e-5))
    """

    def __init__(self, *args, beta_1=0.9, beta_2=0.999, epsilon=1e-6, bias_correction=True, **kwargs):
        if not bias_correction:
            raise ValueError("Adam(bias_correction=False) is not supported: Keras 3's Adam always corrects the "
                             "moment estimates")
        learning_rate, args = _learning_rate(args, kwargs, 0.001)
        if args:
            raise TypeError(f"Adam takes the learning rate as its only positional argument, got {len(args) + 1}")
        kwargs.setdefault("name", "Adam")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)


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
        points = sorted(self.schedule.items())
        if points[0][0] != 0:
            points = [(0, 0.0)] + points
        steps = np.array([p[0] for p in points], "float32")
        values = np.array([p[1] for p in points], "float32")
        step = ops.cast(step, "float32")
        result = ops.full_like(step, values[-1])
        for i in range(len(points) - 1, 0, -1):  # the segment the step falls in, from the right
            slope = (values[i] - values[i - 1]) / (steps[i] - steps[i - 1])
            inside = values[i - 1] + slope * (step - steps[i - 1])
            result = ops.where(step < steps[i], inside, result)
        return result

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
