"""Training set-up: tf.distribute strategy, optimizer + schedule, mixed precision, callbacks.

Example:
    >>> strategy = get_strategy()
    >>> with strategy.scope():
    ...     trainer = SimBERTTrainer(build_transformer_model(..., return_keras_model=False))
    ...     trainer.compile(optimizer=make_optimizer(1e-5, total_steps=1000))
    >>> trainer.fit(dataset, steps_per_epoch=100, epochs=10, callbacks=training_callbacks("runs/simbert"))
"""
import json
import os

import keras
import tensorflow as tf


def get_strategy():
    """The ``tf.distribute`` strategy for this machine.

    ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names several
    workers, ``MirroredStrategy`` when several GPUs are visible, the default
    strategy otherwise. Build and compile the model inside ``strategy.scope()``;
    batches are global and split across replicas by Keras.

    Example:
        >>> strategy = get_strategy(); strategy.num_replicas_in_sync
        1
    """
    tf_config = os.environ.get("TF_CONFIG")
    if tf_config:
        try:
            cluster = json.loads(tf_config).get("cluster", {})
        except json.JSONDecodeError as error:
            raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
        if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
            return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def set_precision(policy=None):
    """Set Keras's global dtype policy: ``None``/``'float32'``, ``'mixed_bfloat16'`` or ``'mixed_float16'``.

    Call before building the model. Losses are computed in float32.
    """
    allowed = (None, "float32", "mixed_bfloat16", "mixed_float16")
    if policy not in allowed:
        raise ValueError(f"precision policy must be one of {allowed}, got {policy!r}")
    keras.mixed_precision.set_global_policy(policy or "float32")


@keras.saving.register_keras_serializable(package="bert4sim")
class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``learning_rate`` over ``warmup_steps``, then linear decay to 0.

    Example:
        >>> schedule = LinearWarmupDecay(1e-5, total_steps=1000, warmup_steps=100)
    """

    def __init__(self, learning_rate, total_steps, warmup_steps=0):
        if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps ({total_steps}), total >= 1")
        self.learning_rate, self.total_steps, self.warmup_steps = learning_rate, total_steps, warmup_steps

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = step / max(self.warmup_steps, 1)
        decay = (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        factor = keras.ops.where(step < self.warmup_steps, warmup, decay)
        return self.learning_rate * keras.ops.clip(factor, 0.0, 1.0)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}


def make_optimizer(learning_rate=1e-5, total_steps=None, warmup_ratio=0.1, weight_decay=0.01, clipnorm=None):
    """Keras AdamW, with a linear warm-up/decay schedule when ``total_steps`` is given.

    LayerNorm parameters and biases are excluded from weight decay.

    Example:
        >>> optimizer = make_optimizer(2e-5, total_steps=1000, warmup_ratio=0.1)
    """
    rate = learning_rate
    if total_steps:
        rate = LinearWarmupDecay(learning_rate, total_steps, int(total_steps * warmup_ratio))
    optimizer = keras.optimizers.AdamW(learning_rate=rate, weight_decay=weight_decay, clipnorm=clipnorm)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def training_callbacks(output_dir, monitor="loss", tensorboard=True):
    """Callbacks: resume after a kill (BackupAndRestore), best and last weights, TensorBoard (if installed).

    Backups are taken at every epoch end: Keras's BackupAndRestore restarts
    an interrupted epoch from its beginning, so only epoch-end backups make
    a resumed run end at the same step count as an uninterrupted one. For
    frequent backups use short epochs (``steps_per_epoch``). Files:
    ``OUTPUT/backup/``, ``OUTPUT/best.weights.h5``, ``OUTPUT/last.weights.h5``,
    ``OUTPUT/logs/``.

    Example:
        >>> trainer.fit(dataset, epochs=50, steps_per_epoch=20, callbacks=training_callbacks("runs/x"))
    """
    os.makedirs(output_dir, exist_ok=True)
    callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(output_dir, "backup"), save_freq="epoch"),
        keras.callbacks.ModelCheckpoint(os.path.join(output_dir, "best.weights.h5"), monitor=monitor,
                                        save_best_only=True, save_weights_only=True),
        keras.callbacks.ModelCheckpoint(os.path.join(output_dir, "last.weights.h5"), save_weights_only=True),
    ]
    if tensorboard:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            import warnings

            warnings.warn("tensorboard is not installed (pip install tensorboard): no TensorBoard logs")
        else:
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "logs"), write_graph=False))
    return callbacks
