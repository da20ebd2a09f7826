"""Training set-up: tf.distribute strategy, optimizer + schedule, callbacks, exact resume.

The precision of training is :func:`bert4sim.precision.set_precision`'s.

Example:
    >>> strategy = get_strategy()
    >>> with strategy.scope():
    ...     model = simbert_training_model(build_transformer_model(..., return_keras_model=False))
    ...     model.compile(optimizer=make_optimizer(1e-5, total_steps=1000))
    >>> model.fit(dataset, steps_per_epoch=100, epochs=10,
    ...           callbacks=training_callbacks("runs/simbert", backup_every=50))
"""
import json
import os
import shutil
import sys

import keras
import numpy as np
import tensorflow as tf


def strategy_kind(tf_config=None, num_gpus=0):
    """Which strategy :func:`get_strategy` picks: ``'multi_worker'``, ``'mirrored'`` or ``'default'``.

    ``tf_config`` is the text of the ``TF_CONFIG`` variable (or None); it
    picks multi-worker training when its cluster has more than one worker
    (chief included). Otherwise several GPUs give ``'mirrored'``.

    Example:
        >>> strategy_kind('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}')
        'multi_worker'
        >>> strategy_kind(None, num_gpus=2)
        'mirrored'
    """
    if tf_config:
        try:
            config = json.loads(tf_config)
        except json.JSONDecodeError as error:
            raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
        cluster = config.get("cluster", {}) if isinstance(config, dict) else None
        if not isinstance(cluster, dict):
            raise ValueError(f"TF_CONFIG 'cluster' must be an object of job name -> addresses, got {cluster!r}")
        if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
            return "multi_worker"
    return "mirrored" if num_gpus > 1 else "default"


def get_strategy():
    """The ``tf.distribute`` strategy for this machine.

    ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names several
    workers, ``MirroredStrategy`` when several GPUs are visible, the default
    strategy otherwise (see :func:`strategy_kind`). Build and compile the
    model inside ``strategy.scope()``; batches are global and Keras splits
    each one across the replicas (see :func:`replica_batch_size`). With
    ``TF_CONFIG``, call it first, before any TensorFlow op runs.

    Example:
        >>> strategy = get_strategy(); strategy.num_replicas_in_sync
        1
    """
    # physical devices: listing logical ones would start TensorFlow's runtime, after which
    # MultiWorkerMirroredStrategy can no longer configure its collective ops
    kind = strategy_kind(os.environ.get("TF_CONFIG"), len(tf.config.list_physical_devices("GPU")))
    if kind == "multi_worker":
        try:
            return MultiWorkerStrategy()
        except RuntimeError as error:
            if "program startup" not in str(error):
                raise
            raise RuntimeError("TF_CONFIG asks for multi-worker training, but TensorFlow already ran an op in this "
                               "process: call get_strategy() before building models or creating tensors") from None
    if kind == "mirrored":
        return MirroredStrategy()
    return tf.distribute.get_strategy()


class _FitReduce:
    """``reduce`` that takes what Keras 3's ``fit`` gives it (mixed into the strategies below).

    ``fit`` reduces the first batch (a structure of per-replica tensors) to
    build the model symbolically, and each step's logs (per-replica scalars)
    with ``axis=0``. TensorFlow's multi-worker ``reduce`` takes neither a
    structure nor a scalar with an axis (keras-team/keras#20585), and no
    strategy can sum a bool tensor (a bool input, such as RetroMAE's decoder
    mask, stops ``fit`` on its first batch). Here a structure is reduced
    value by value (every worker runs the same reductions in the same order,
    as collectives need), a scalar across replicas only, and a bool tensor —
    which Keras only reads for its shape and dtype — is the first replica's.
    """

    def reduce(self, reduce_op, value, axis):
        def reduce_one(one):
            local = self.experimental_local_results(one)[0]
            if getattr(local, "dtype", None) == tf.bool:
                return local
            scalar = getattr(local, "shape", None) is not None and local.shape.rank == 0
            return super(_FitReduce, self).reduce(reduce_op, one, None if scalar else axis)

        return tf.nest.map_structure(reduce_one, value)


class MirroredStrategy(_FitReduce, tf.distribute.MirroredStrategy):
    """TensorFlow's ``MirroredStrategy`` (several GPUs of one machine) that ``fit`` can reduce bool inputs of.

    Example:
        >>> strategy = MirroredStrategy(["/gpu:0", "/gpu:1"])   # what get_strategy() returns with 2+ GPUs
    """


class MultiWorkerStrategy(_FitReduce, tf.distribute.MultiWorkerMirroredStrategy):
    """TensorFlow's ``MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras 3's ``fit`` gives it.

    Example:
        >>> strategy = MultiWorkerStrategy()   # what get_strategy() returns when TF_CONFIG names 2+ workers
    """


def replica_batch_size(global_batch_size, strategy=None, multiple=2):
    """Rows each replica gets from a global batch; checks that paired rows stay on one replica.

    A global batch is cut into ``num_replicas`` contiguous slices. SimBERT
    batches hold pairs in adjacent rows (and the similarity loss is taken
    within each replica), so each slice must be a positive multiple of
    ``multiple`` rows.

    Example:
        >>> replica_batch_size(32, tf.distribute.get_strategy())
        32
    """
    replicas = (strategy or tf.distribute.get_strategy()).num_replicas_in_sync
    per_replica, remainder = divmod(global_batch_size, replicas)
    if remainder or per_replica < multiple or per_replica % multiple:
        raise ValueError(f"global batch size {global_batch_size} must split into {replicas} replica batch(es) "
                         f"of a positive multiple of {multiple} rows (paired rows must stay together)")
    return per_replica


@keras.saving.register_keras_serializable(package="bert4sim")
class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``learning_rate`` over ``warmup_steps``, then linear decay to 0 at ``total_steps``.

    Both ramps are Keras's ``PolynomialDecay`` with ``power=1``; this class
    only switches from one to the other (Keras has no warm-up + linear decay).

    Example:
        >>> schedule = LinearWarmupDecay(1e-5, total_steps=1000, warmup_steps=100)
        >>> schedule(50)  # half-way up: 5e-6; schedule(550) is half-way down: 5e-6
    """

    def __init__(self, learning_rate, total_steps, warmup_steps=0):
        if total_steps < 1 or not 0 <= warmup_steps < total_steps:
            raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) < total_steps ({total_steps})")
        self.learning_rate, self.total_steps, self.warmup_steps = learning_rate, total_steps, warmup_steps
        schedules = keras.optimizers.schedules
        self._warmup = schedules.PolynomialDecay(0.0, max(warmup_steps, 1), end_learning_rate=learning_rate, power=1.0)
        self._decay = schedules.PolynomialDecay(learning_rate, total_steps - warmup_steps, end_learning_rate=0.0,
                                                power=1.0)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        return keras.ops.where(step < self.warmup_steps, self._warmup(step), self._decay(step - self.warmup_steps))

    def get_config(self):
        return {"learning_rate": self.learning_rate, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}


@keras.saving.register_keras_serializable(package="bert4sim")
class FusedAdamW(keras.optimizers.AdamW):
    """Keras AdamW whose Adam update is TensorFlow's fused kernel (one pass over each variable).

    Same hyper-parameters, state variables, weight decay and results (to
    float32 round-off) as ``keras.optimizers.AdamW``, whose update runs as
    about a dozen separate elementwise ops per variable: on CPU, where the
    update is memory-bound, that costs ~0.3 s per step at BERT-base size,
    the fused kernel ~0.1 s. Sparse gradients, ``amsgrad`` and non-float
    variables take Keras's own update.

    Example:
        >>> optimizer = FusedAdamW(learning_rate=1e-5, weight_decay=0.01)
    """

    def update_step(self, gradient, variable, learning_rate):
        variable = variable.value if isinstance(variable, keras.Variable) else variable
        if (self.amsgrad or isinstance(gradient, tf.IndexedSlices)
                or variable.dtype not in (tf.float32, tf.float64)):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        momentum, velocity = self._momentums[index].value, self._velocities[index].value
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=momentum.handle, v=velocity.handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype), use_locking=False,
        )


def make_optimizer(learning_rate=1e-5, total_steps=None, warmup_ratio=0.1, weight_decay=0.01, clipnorm=None,
                   global_clipnorm=None):
    """AdamW (:class:`FusedAdamW`), with a linear warm-up/decay schedule when ``total_steps`` is given.

    LayerNorm parameters and biases are excluded from weight decay.
    ``global_clipnorm`` rescales all gradients together so that their global
    norm is at most that value (what HF's Trainer ``max_grad_norm`` and
    sentence-transformers' ``fit`` do, both 1.0); ``clipnorm`` clips each
    variable's gradient on its own. Keras clips before ``update_step``, so
    the fused update sees the clipped gradients. Without ``total_steps`` the
    learning rate is constant (SimBERT's and RoFormer-Sim's scripts).

    Example:
        >>> optimizer = make_optimizer(2e-5, total_steps=1000, warmup_ratio=0.1, global_clipnorm=1.0)
    """
    for name, value in (("clipnorm", clipnorm), ("global_clipnorm", global_clipnorm)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be a positive number or None, got {value!r}")
    if clipnorm is not None and global_clipnorm is not None:
        raise ValueError("give clipnorm (per variable) or global_clipnorm (all variables), not both")
    rate = learning_rate
    if total_steps:
        rate = LinearWarmupDecay(learning_rate, total_steps, int(total_steps * warmup_ratio))
    as_float = lambda value: None if value is None else float(value)  # noqa: E731 (numpy float64 breaks Keras)
    optimizer = FusedAdamW(learning_rate=rate, weight_decay=weight_decay, clipnorm=as_float(clipnorm),
                           global_clipnorm=as_float(global_clipnorm))
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def _optimizer_step(model):
    """The optimizer's step count as an int (also for a mirrored step variable under tf.distribute)."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations.value))


class StopAtStep(keras.callbacks.Callback):
    """Stop training once the optimizer has taken ``steps`` steps (default: ``epochs × steps_per_epoch``).

    Keras's ``BackupAndRestore`` restores the weights, the optimizer (its
    step counter included) and the epoch of a backup taken mid-epoch, but
    then runs that epoch again from its first batch. This callback ends the
    resumed run when the optimizer reaches the planned step count, so a run
    killed and resumed takes as many optimizer steps (and follows the same
    step-based learning-rate schedule) as one that never stopped.

    Example:
        >>> model.fit(dataset, epochs=10, steps_per_epoch=100, callbacks=[backup, StopAtStep()])
    """

    def __init__(self, steps=None):
        super().__init__()
        if steps is not None and steps < 1:
            raise ValueError(f"steps must be a positive step count, got {steps}")
        self.steps = steps
        self._target = None

    def on_train_begin(self, logs=None):
        planned = (self.params or {}).get("epochs"), (self.params or {}).get("steps")
        if self.steps is None and None in planned:
            raise ValueError("StopAtStep needs steps=... when fit() is not given steps_per_epoch")
        self._target = self.steps or planned[0] * planned[1]

    def on_train_batch_end(self, batch, logs=None):
        if _optimizer_step(self.model) >= self._target:
            self.model.stop_training = True


class SafeBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's ``BackupAndRestore`` that also survives a kill while the backup's metadata was written.

    Keras writes ``latest.weights.h5`` and then ``training_metadata.json``
    (keeping the previous pair as ``*.bkp`` with ``double_checkpoint``), and
    falls back to the previous pair when the weights file cannot be read —
    but a metadata file cut short by a kill stops every later resume with a
    JSON error. Here a damaged metadata file also falls back to the previous
    pair; with none, the error names the file and says how to start over.

    Example:
        >>> backup = SafeBackupAndRestore("runs/simbert/backup", save_freq=50, double_checkpoint=True)
    """

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            metadata = os.path.join(self.backup_dir, "training_metadata.json")
            weights = os.path.join(self.backup_dir, "latest.weights.h5")
            previous = [f"{weights}.bkp", f"{metadata}.bkp"]
            if not all(os.path.isfile(path) for path in previous):
                raise ValueError(f"backup metadata {metadata} is damaged ({type(error).__name__}: {error}) and "
                                 f"there is no previous backup to fall back to; delete {self.backup_dir} to "
                                 "train from the start") from None
            for source, target in zip(previous, (weights, metadata)):
                shutil.copyfile(source, target)
            super().on_train_begin(logs)


class ExactResume(keras.callbacks.Callback):
    """Makes a run resumed from a backup continue exactly as the killed run would have.

    Goes after ``BackupAndRestore`` in the callback list (as
    :func:`training_callbacks` puts it). Two things depend on how far
    training got, and Keras's backup restores neither:

    - the data: :meth:`start_step` is the optimizer step at which this
      ``fit`` began (the backup's step after a restore); given to
      :func:`bert4sim.data.to_dataset` as ``start_step``, a step-indexed
      stream restarts at the batch the killed run would have read next;
    - dropout: before every step, the state of each dropout seed generator
      in the model is set to (its seed, ``step * 2**20``), so the masks are a
      function of the step and not of how many steps this process has run
      (a step may call a generator up to 2**20 times).

    Example:
        >>> resume = ExactResume()
        >>> dataset = to_dataset(lambda step: simbert_batches(groups, tokenizer, 32, start_step=step),
        ...                      start_step=resume.start_step)
        >>> model.fit(dataset, epochs=3, steps_per_epoch=100,
        ...             callbacks=training_callbacks("runs/simbert", backup_every=50, resume=resume))
    """

    STEP_STRIDE = 2 ** 20

    def __init__(self):
        super().__init__()
        self._start_step = 0
        self._seeds = []

    def start_step(self):
        """The optimizer step this ``fit`` started (or resumed) from; 0 before training begins."""
        return self._start_step

    def on_train_begin(self, logs=None):
        self._start_step = _optimizer_step(self.model)
        unique = {id(v): v for v in self.model.variables if v.name == "seed_generator_state"}
        self._seeds = [(v, int(v.numpy()[0])) for v in unique.values()]

    def on_train_batch_begin(self, batch, logs=None):
        if self._seeds:
            step = _optimizer_step(self.model)
            for state, seed in self._seeds:
                state.assign(np.array([seed, step * self.STEP_STRIDE], dtype=state.dtype))


RUN_SETTINGS = "run_settings.json"


def resume_or_start(output_dir, settings, mode="auto"):
    """Before training: decide whether this run continues the interrupted run backed up in ``output_dir``.

    A run killed mid-way leaves its backup in ``OUTPUT/backup/`` (see
    :func:`training_callbacks`; a run that finishes removes it) and its
    ``settings`` (a JSON-able dict, e.g. the script's flags) in
    ``OUTPUT/run_settings.json``. ``mode``:

    - ``"auto"``: resume a backup made with the same settings; refuse
      (``ValueError`` naming the differences) one made with others;
    - ``"fresh"``: discard such a backup and start over;
    - ``"resume"``: resume the backup even though the settings differ.

    Returns the line to print first (``""`` for a new run with nothing to
    say) and records ``settings`` for the next run to compare with.

    Example:
        >>> line = resume_or_start("runs/simbert", {"epochs": 10, "lr": 1e-3})
        >>> if line: print(line)   # 'resuming the interrupted run in runs/simbert (backup at epoch 3) ...'
    """
    if mode not in ("auto", "fresh", "resume"):
        raise ValueError(f"mode must be 'auto', 'fresh' or 'resume', got {mode!r}")
    settings = json.loads(json.dumps(settings))  # as it will read back
    backup = os.path.join(output_dir, "backup")
    recorded_path = os.path.join(output_dir, RUN_SETTINGS)
    interrupted = os.path.isfile(os.path.join(backup, "latest.weights.h5"))
    line = ""
    if not interrupted and mode == "resume":
        raise ValueError(f"--resume: there is no interrupted run in {output_dir} (no {backup}/latest.weights.h5)")
    if interrupted:
        recorded = None
        if os.path.isfile(recorded_path):
            try:
                with open(recorded_path, encoding="utf-8") as f:
                    recorded = json.load(f)
            except (OSError, ValueError):
                recorded = None
        changed = _changed_settings(recorded, settings)
        where = f"the interrupted run in {output_dir} ({_backup_position(backup)})"
        if mode == "fresh":
            shutil.rmtree(backup)  # Keras's own backup folder of this run (BackupAndRestore)
            line = f"starting afresh: discarded {where} (--fresh)"
        elif not changed:
            line = f"resuming {where}, same settings; --fresh starts over"
        elif mode == "resume":
            line = f"resuming {where} although its settings differ ({changed}) (--resume)"
        else:
            raise ValueError(f"{where} was made with other settings ({changed}): pass --fresh to discard it and "
                             "start over, or --resume to continue it anyway")
    os.makedirs(output_dir, exist_ok=True)
    with open(recorded_path, "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=2, sort_keys=True)
    return line


def start_run_or_exit(args, *output_dirs, prog=None):
    """For example scripts: :func:`resume_or_start` on each run folder with the script's flags as settings.

    ``args`` (argparse) has ``fresh`` / ``resume`` flags, which choose the
    mode and are not settings. Prints the resume line first; a refusal is
    one line on stderr and exit status 2.

    Example:
        >>> start_run_or_exit(args, os.path.join(args.output, "run"), prog="simbert.py")
    """
    settings = {key: value for key, value in vars(args).items() if key not in ("fresh", "resume")}
    mode = "fresh" if getattr(args, "fresh", False) else "resume" if getattr(args, "resume", False) else "auto"
    backed_up = [os.path.isfile(os.path.join(folder, "backup", "latest.weights.h5")) for folder in output_dirs]
    try:
        if mode == "resume" and not any(backed_up):
            raise ValueError(f"--resume: there is no interrupted run in {' or '.join(output_dirs)}")
        lines = [resume_or_start(folder, settings, mode if found or mode == "fresh" else "auto")
                 for folder, found in zip(output_dirs, backed_up)]
    except ValueError as error:
        print(f"{prog or 'bert4sim'}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    for line in filter(None, lines):
        print(line, flush=True)


def _changed_settings(recorded, settings):
    if not isinstance(recorded, dict):
        return "its settings were not recorded"
    keys = sorted(set(recorded) | set(settings))
    return ", ".join(f"{key}: {recorded.get(key)!r} then, {settings.get(key)!r} now" for key in keys
                     if recorded.get(key) != settings.get(key))


def _backup_position(backup):
    try:
        with open(os.path.join(backup, "training_metadata.json"), encoding="utf-8") as f:
            metadata = json.load(f)
        steps = f" and {metadata['batch'] + 1} steps" if metadata.get("batch") else ""
        return f"backed up after {metadata['epoch']} epochs{steps}"
    except (OSError, ValueError, KeyError, TypeError):
        return "backup of unknown position"


def training_callbacks(output_dir, monitor="loss", tensorboard=True, backup_every=None, resume=None):
    """Callbacks: resume after a kill (BackupAndRestore), best and last weights, TensorBoard (if installed).

    Backups go to ``OUTPUT/backup/`` at every epoch end, or every
    ``backup_every`` steps; step backups come with :class:`StopAtStep` so a
    resumed run ends at the same optimizer step count as an uninterrupted
    one (fit needs ``steps_per_epoch``). Two backups are kept, so a kill
    while one is being written falls back to the previous one
    (:class:`SafeBackupAndRestore`). An
    :class:`ExactResume` (``resume``, or a new one) follows the backup: with
    a step-indexed dataset started at ``resume.start_step``, a run killed
    at any step and restarted with the same command ends with the weights
    of a run that never stopped. Also ``OUTPUT/best.weights.h5`` (lowest
    ``monitor`` at an epoch end), ``OUTPUT/last.weights.h5``, TensorBoard
    logs in ``OUTPUT/logs/``.

    Example:
        >>> model.fit(dataset, epochs=5, steps_per_epoch=1000,
        ...             callbacks=training_callbacks("runs/simbert", backup_every=200, resume=resume))
    """
    if backup_every is not None and (not isinstance(backup_every, int) or backup_every < 1):
        raise ValueError(f"backup_every must be a positive number of steps or None, got {backup_every!r}")
    if resume is not None and not isinstance(resume, ExactResume):
        raise ValueError(f"resume must be an ExactResume callback or None, got {resume!r}")
    os.makedirs(output_dir, exist_ok=True)
    callbacks = [
        SafeBackupAndRestore(os.path.join(output_dir, "backup"), save_freq=backup_every or "epoch",
                             double_checkpoint=True),
        resume or ExactResume(),
        keras.callbacks.ModelCheckpoint(os.path.join(output_dir, "best.weights.h5"), monitor=monitor,
                                        save_best_only=True, save_weights_only=True),
        keras.callbacks.ModelCheckpoint(os.path.join(output_dir, "last.weights.h5"), save_weights_only=True),
    ]
    if backup_every:
        callbacks.append(StopAtStep())
    if tensorboard:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            import warnings

            warnings.warn("tensorboard is not installed (pip install tensorboard): no TensorBoard logs")
        else:
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "logs"), write_graph=False))
    return callbacks
