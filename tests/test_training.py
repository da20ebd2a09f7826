"""Training set-up: strategy choice, replica batches, schedule, AdamW decay, precision, callbacks,
and every method's training model under MirroredStrategy (2 logical CPUs), mixed precision and XLA."""
import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import keras
import numpy as np
import tensorflow as tf
import pytest

from bert4sim.models import build_transformer_model
from bert4sim.precision import set_precision
from bert4sim.simbert import simbert_training_model
from bert4sim.training import (LinearWarmupDecay, StopAtStep, get_strategy, make_optimizer, replica_batch_size, strategy_kind, training_callbacks)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def tiny_bert(**kwargs):
    return build_transformer_model(vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, application="unilm", with_pool="linear",
                                   return_keras_model=False, **kwargs)


def model_loss(model, x, training=False):
    """The loss a Loss-layer training model adds for inputs ``x``."""
    model(list(x), training=training)
    return keras.ops.sum(model.losses)


def pair_batch(rows=4, length=10, seed=0):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(5, 20, (rows, length)).astype("int32")
    token_ids[:, 0], token_ids[:, length // 2 - 1], token_ids[:, -1] = 2, 3, 3
    segment_ids = np.zeros_like(token_ids)
    segment_ids[:, length // 2:] = 1
    return token_ids, segment_ids


def test_strategy_kind_follows_tf_config_then_gpus():
    two_workers = {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}
    chief_and_worker = {"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "chief", "index": 0}}
    one_worker = {"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}
    assert strategy_kind(json.dumps(two_workers)) == "multi_worker"
    assert strategy_kind(json.dumps(chief_and_worker), num_gpus=4) == "multi_worker"
    assert strategy_kind(json.dumps(one_worker), num_gpus=2) == "mirrored"
    assert strategy_kind(None, num_gpus=2) == "mirrored"
    assert strategy_kind(None, num_gpus=1) == "default"
    assert strategy_kind("", num_gpus=0) == "default"


def test_strategy_kind_errors_name_tf_config():
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        strategy_kind("{cluster")
    with pytest.raises(ValueError, match="TF_CONFIG 'cluster' must be an object.*got \\['a:1'\\]"):
        strategy_kind('{"cluster": ["a:1"]}')


def test_get_strategy_on_a_cpu_machine_is_the_default_one(monkeypatch):
    import tensorflow as tf

    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = get_strategy()
    assert strategy is tf.distribute.get_strategy() and strategy.num_replicas_in_sync == 1


def test_replica_batch_size_keeps_pairs_on_one_replica():
    assert replica_batch_size(32) == 32
    assert replica_batch_size(32, SimpleNamespace(num_replicas_in_sync=4)) == 8
    for size, replicas in ((30, 4), (6, 2), (4, 4)):
        with pytest.raises(ValueError, match=f"global batch size {size} must split into {replicas} replica"):
            replica_batch_size(size, SimpleNamespace(num_replicas_in_sync=replicas))


def test_linear_warmup_decay_matches_the_formula():
    lr, total, warmup = 2e-3, 50, 10
    schedule = LinearWarmupDecay(lr, total, warmup)
    steps = np.arange(0, 60)
    expected = np.where(steps < warmup, lr * steps / warmup, lr * np.clip((total - steps) / (total - warmup), 0, 1))
    got = np.array([float(schedule(int(s))) for s in steps])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)
    no_warmup = LinearWarmupDecay(lr, 4)
    np.testing.assert_allclose([float(no_warmup(s)) for s in range(5)], [lr, 0.75 * lr, 0.5 * lr, 0.25 * lr, 0],
                               rtol=1e-6)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert float(restored(25)) == pytest.approx(float(schedule(25)))
    with pytest.raises(ValueError, match=r"need 0 <= warmup_steps \(10\) < total_steps \(10\)"):
        LinearWarmupDecay(lr, 10, 10)


def test_adamw_decays_kernels_but_not_biases_or_layernorm():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.LayerNormalization()])
    optimizer = make_optimizer(0.1, total_steps=10, warmup_ratio=0.0, weight_decay=0.5)
    assert isinstance(optimizer, keras.optimizers.AdamW)
    for variable in model.trainable_variables:
        variable.assign(np.full(variable.shape, 2.0, "float32"))
    before = {v.path: v.numpy() for v in model.trainable_variables}
    # zero gradients: Adam's step is 0, only the decoupled weight decay (lr * wd * w) moves a weight
    optimizer.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in model.trainable_variables])
    for variable in model.trainable_variables:
        factor = 1 - 0.1 * 0.5 if variable.path.endswith("kernel") else 1.0
        np.testing.assert_allclose(variable.numpy(), before[variable.path] * factor, rtol=1e-6, err_msg=variable.path)
    assert float(optimizer.learning_rate) == pytest.approx(0.1 * 9 / 10)  # decayed one step of ten


def test_fused_adamw_matches_keras_adamw_step_by_step():
    from bert4sim.training import FusedAdamW

    rng = np.random.default_rng(0)
    shapes = {"dense/kernel": (6, 4), "dense/bias": (4,), "norm/gamma": (4,), "block/kernel": (3, 2, 5)}
    start = {name: rng.standard_normal(shape).astype("float32") for name, shape in shapes.items()}
    gradients = [[rng.standard_normal(shape).astype("float32") for shape in shapes.values()] for _ in range(6)]
    results = []
    for cls in (keras.optimizers.AdamW, FusedAdamW):
        variables = [keras.Variable(value, name=name.replace("/", "_")) for name, value in start.items()]
        optimizer = cls(learning_rate=0.01, weight_decay=0.1)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma"])
        step = tf.function(lambda grads: optimizer.apply(grads, variables))
        for grads in gradients:
            step([tf.constant(g) for g in grads])
        results.append([v.numpy() for v in variables])
    for keras_value, fused_value in zip(*results):
        np.testing.assert_allclose(fused_value, keras_value, rtol=1e-5, atol=1e-6)
    assert not np.allclose(results[1][0], start["dense/kernel"])
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(FusedAdamW(2e-5, weight_decay=0.01)))
    assert type(restored) is FusedAdamW and restored.weight_decay == 0.01


def first_moment_norms(optimizer):
    """Per-variable norms of the gradients the first Adam step saw: m_1 = (1 - beta_1) * g."""
    return np.array([np.linalg.norm(m.numpy()) / (1 - optimizer.beta_1) for m in optimizer._momentums])


@pytest.mark.parametrize("clip", ["global_clipnorm", "clipnorm", None])
def test_make_optimizer_clipping_bounds_the_gradient_the_fused_update_sees(clip):
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.standard_normal(shape).astype("float32")) for shape in [(6, 4), (4,), (3, 5)]]
    gradients = [tf.constant(rng.standard_normal(v.shape).astype("float32") * 100) for v in variables]
    raw = np.array([np.linalg.norm(g.numpy()) for g in gradients])
    optimizer = make_optimizer(1e-3, weight_decay=0.0, **({clip: 1.0} if clip else {}))
    optimizer.apply(gradients, variables)
    seen = first_moment_norms(optimizer)
    if clip == "global_clipnorm":  # all gradients scaled by one factor so that the global norm is 1
        assert np.sqrt(np.sum(seen ** 2)) == pytest.approx(1.0, rel=1e-4)
        np.testing.assert_allclose(seen / raw, seen[0] / raw[0], rtol=1e-4)
    elif clip == "clipnorm":  # each variable's gradient on its own
        np.testing.assert_allclose(seen, 1.0, rtol=1e-4)
    else:
        np.testing.assert_allclose(seen, raw, rtol=1e-4)


def test_clipping_applies_inside_fit_and_arguments_are_checked():
    bert = tiny_bert(dropout_rate=0.0)
    trainer = simbert_training_model(bert)
    x = pair_batch(rows=8, seed=3)
    with tf.GradientTape() as tape:
        loss = model_loss(trainer, x, training=True)
    gradients = tape.gradient(loss, trainer.trainable_variables)
    # An embedding's gradient is IndexedSlices (repeated rows) or dense, depending on the path: its norm
    # differs slightly between the two, so the global norm Keras measures lies between these two figures.
    values = [g.values if isinstance(g, tf.IndexedSlices) else g for g in gradients]
    norms = [np.sqrt(sum(float(tf.reduce_sum(tf.convert_to_tensor(v) ** 2)) for v in vs)) for vs in (values, gradients)]
    assert min(norms) > 0.5  # the bound below is well under the raw norm
    bound = min(norms) / 10
    trainer.compile(optimizer=make_optimizer(1e-3, weight_decay=0.0, global_clipnorm=bound))
    trainer.fit(tf.data.Dataset.from_tensors((x,)), epochs=1, verbose=0, shuffle=False)
    seen = first_moment_norms(trainer.optimizer)
    dense = [i for i, g in enumerate(gradients) if not isinstance(g, tf.IndexedSlices) and np.any(g.numpy())]
    factors = seen[dense] / np.array([np.linalg.norm(gradients[i].numpy()) for i in dense])
    # about one factor for every gradient (fit's graph and the tape differ by round-off on tiny gradients)
    assert np.mean(np.abs(factors / np.median(factors) - 1) < 1e-3) > 0.6
    # Keras measures the embedding's IndexedSlices by its values (repeated rows apart), the moment holds
    # them summed: the dense norm of the clipped update is the bound times at most max/min of the norms.
    assert np.sqrt(np.sum(seen ** 2)) < bound * max(norms) / min(norms) * 1.01  # unclipped: ~10x the bound
    # ~1/10 (fit's gradients differ from the tape's by round-off, ~0.1 %); unclipped it would be 1
    assert bound / max(norms) * 0.99 <= np.median(factors) <= bound / min(norms) * 1.01
    with pytest.raises(ValueError, match="not both"):
        make_optimizer(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match="global_clipnorm must be a positive number or None, got 0"):
        make_optimizer(global_clipnorm=0)


def test_fused_adamw_takes_keras_update_for_sparse_gradients():
    from bert4sim.training import FusedAdamW

    table = keras.Variable(np.ones((5, 3), "float32"))
    optimizer = FusedAdamW(learning_rate=0.1, weight_decay=0.0)
    sparse = tf.IndexedSlices(tf.ones((1, 3)), tf.constant([2]), tf.constant([5, 3]))
    optimizer.apply([sparse], [table])
    moved = np.abs(table.numpy() - 1).sum(1)
    assert moved[2] > 0 and moved[[0, 1, 3, 4]].max() == 0


def test_set_precision_sets_the_policy_and_names_bad_values():
    try:
        assert set_precision("mixed_bfloat16") is None
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        assert set_precision("bfloat16") == "bfloat16"  # products only: the Keras policy stays float32
        assert keras.mixed_precision.global_policy().name == "float32"
    finally:
        set_precision(None)
    assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(ValueError, match="precision policy must be one of .* got 'fp16'"):
        set_precision("fp16")


@pytest.mark.parametrize("machine_choice, matmul_dtype", [("bfloat16", "bfloat16"), ("float32", None)])
def test_set_precision_auto_follows_the_machine_choice(monkeypatch, machine_choice, matmul_dtype):
    from bert4sim import precision

    monkeypatch.setattr(precision, "_CHOSEN", {})
    monkeypatch.setenv(precision.PIN_VARIABLE, machine_choice)
    assert set_precision("auto") == matmul_dtype
    assert keras.mixed_precision.global_policy().name == "float32"


def test_callbacks_write_backups_best_last_and_tensorboard(tmp_path):
    callbacks = training_callbacks(str(tmp_path), backup_every=2, tensorboard=True)
    kinds = [type(c).__name__ for c in callbacks]
    assert kinds[:5] == ["SafeBackupAndRestore", "ExactResume", "ModelCheckpoint", "ModelCheckpoint", "StopAtStep"]
    assert callbacks[0].save_freq == 2 and callbacks[0].double_checkpoint
    assert "StopAtStep" not in [type(c).__name__ for c in training_callbacks(str(tmp_path / "e"), tensorboard=False)]
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x, y = np.ones((8, 3), "float32"), np.ones((8, 1), "float32")
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2 and not seen:  # a step backup exists mid-epoch (before training ends and removes it)
                seen.append(sorted(os.listdir(tmp_path / "backup")))

    model.fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=callbacks + [Spy()])
    assert "latest.weights.h5" in seen[0] and "training_metadata.json" in seen[0]
    assert (tmp_path / "best.weights.h5").is_file() and (tmp_path / "last.weights.h5").is_file()
    assert not (tmp_path / "backup").exists()  # finished runs clean their backup up
    if "TensorBoard" in kinds:
        events = [f for _, _, files in os.walk(tmp_path / "logs") for f in files if "tfevents" in f]
        assert events
    else:
        pytest.skip("tensorboard not installed: TensorBoard logs not checked")


def test_callback_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="backup_every must be a positive number of steps or None, got 0"):
        training_callbacks(str(tmp_path), backup_every=0)
    with pytest.raises(ValueError, match="steps must be a positive step count, got -1"):
        StopAtStep(-1)


def test_stop_at_step_ends_training_at_the_step_count():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x, y = np.ones((8, 3), "float32"), np.ones((8, 1), "float32")
    model.fit(x, y, batch_size=2, epochs=3, verbose=0, callbacks=[StopAtStep(6)])
    assert int(model.optimizer.iterations) == 6


def test_xla_loss_path_equals_the_gathered_one():
    keras.utils.set_random_seed(0)
    bert = tiny_bert(dropout_rate=0.0)
    x = pair_batch()
    gathered = float(model_loss(simbert_training_model(bert), x))
    full = simbert_training_model(bert, full_sequence=True)  # XLA: all positions scored, loss masked
    assert float(model_loss(full, x)) == pytest.approx(gathered, rel=1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_training_model_trains_under_mixed_precision(policy):
    import tensorflow as tf

    try:
        set_precision(policy)
        keras.utils.set_random_seed(0)
        bert = tiny_bert()
        trainer = simbert_training_model(bert)
        trainer.compile(optimizer=make_optimizer(1e-3))
        assert bert.blocks[-1].output.dtype == policy.split("_")[1]
        dataset = tf.data.Dataset.from_tensors((pair_batch(),)).repeat()
        history = trainer.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
        assert all(np.isfinite(history.history[k][0]) for k in ("loss", "seq2seq_loss", "similarity_loss"))
        assert all(v.dtype == "float32" for v in trainer.trainable_variables)
        if policy == "mixed_float16":
            assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    finally:
        set_precision(None)


MIRRORED = textwrap.dedent('''
    import json
    import sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from bert4sim.training import MirroredStrategy, replica_batch_size
    from test_training import METHODS, model_loss

    strategy = MirroredStrategy(["/cpu:0", "/cpu:1"])  # get_strategy()'s with several GPUs
    for method in sys.argv[1:]:
        make, batch = METHODS[method]
        with strategy.scope():
            keras.utils.set_random_seed(0)
            trainer = make()
            trainer.compile(optimizer=keras.optimizers.SGD(0.5))
        reference = make()
        for mine, theirs in zip(reference.trainable_variables, trainer.trainable_variables):
            mine.assign(theirs.numpy())
        x = batch(8)
        history = trainer.fit(tf.data.Dataset.from_tensors((x,)), epochs=1, verbose=0, shuffle=False)
        # what one SGD step should do: each replica takes its 4 contiguous rows (pairs stay together);
        # the gradient of the mean of the two replicas' losses
        with tf.GradientTape() as tape:
            halves = [model_loss(reference, [a[i * len(a) // 2:(i + 1) * len(a) // 2] for a in x], training=True)
                      for i in (0, 1)]
            loss = (halves[0] + halves[1]) / 2
        gradients = [tf.convert_to_tensor(g) for g in tape.gradient(loss, reference.trainable_variables)]
        diff = max(float(np.max(np.abs(mine.numpy() - 0.5 * g.numpy() - theirs.numpy())))
                   for mine, g, theirs in zip(reference.trainable_variables, gradients, trainer.trainable_variables))
        moved = max(float(np.max(np.abs(0.5 * g.numpy()))) for g in gradients)
        print(json.dumps({"method": method, "replicas": strategy.num_replicas_in_sync,
                          "per_replica": replica_batch_size(8, strategy), "diff": diff, "moved": moved,
                          "loss": history.history["loss"][0], "expected": float(loss)}))
''')


def _tokens(rows, seed, length=10, vocab=20):
    token_ids = np.random.default_rng(seed).integers(5, vocab, (rows, length)).astype("int32")
    token_ids[:, 0], token_ids[:, -1] = 2, 3
    return token_ids


def _simbert():
    return simbert_training_model(tiny_bert(dropout_rate=0.0))


def _retromae():
    from bert4sim.retromae import build_retromae_model, retromae_training_model

    return retromae_training_model(build_retromae_model(
        vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        dropout_rate=0.0, return_keras_model=False))


def _retromae_batch(rows):
    from bert4sim.retromae import RETROMAE_INPUTS, RETROMAE_LABELS, RetroMAECollator
    from bert4sim.tokenizers import Tokenizer

    tokenizer = Tokenizer({t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                                                      + [chr(0x4e00 + i) for i in range(15)])})
    texts = ["".join(chr(0x4e00 + (i * 7 + j) % 15) for j in range(4 + i % 5)) for i in range(rows)]
    batch = RetroMAECollator(tokenizer, maxlen=12, seed=0)(texts)
    return tuple(batch[k] for k in RETROMAE_INPUTS + RETROMAE_LABELS)


def _encoder(pooling="pooler"):
    from bert4sim.sbert import build_sentence_encoder

    bert = build_transformer_model(vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, dropout_rate=0.0, with_pool="linear", return_keras_model=False)
    return build_sentence_encoder(bert, pooling)


def _sbert():
    from bert4sim.sbert import sbert_training_model

    return sbert_training_model(_encoder("mean"), "regression")


def _sbert_batch(rows):
    a, b = _tokens(rows, 1), _tokens(rows, 2)
    return a, np.zeros_like(a), b, np.zeros_like(b), np.linspace(0.0, 1.0, rows).astype("float32")


def _supervised():
    from bert4sim.roformer_sim import supervised_training_model

    return supervised_training_model(_encoder())


def _supervised_batch(rows):
    token_ids = _tokens(rows, 3)
    return token_ids, np.zeros_like(token_ids), np.array([0, 1, 3, 4][: rows // 2] * (rows // 8), "int32")


METHODS = {"simbert": (_simbert, lambda rows: pair_batch(rows=rows)), "retromae": (_retromae, _retromae_batch),
           "sbert": (_sbert, _sbert_batch), "supervised": (_supervised, _supervised_batch)}


def test_every_training_model_under_mirrored_strategy_on_two_logical_cpus(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests"), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, str(script), *METHODS], capture_output=True, text=True, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    results = [json.loads(line) for line in run.stdout.strip().splitlines() if line.startswith("{")]
    assert [r["method"] for r in results] == list(METHODS)
    for result in results:
        # A random model's sentence vectors are nearly parallel: their cosines and |u - v| carry float32
        # rounding that TensorFlow's graph (fit) and eager (the reference) runs round differently (up to
        # 5e-5 apart on one replica alone). A summed rather than averaged loss would be 100 % off.
        check_mirrored_step(result, loss_tolerance=1e-3 if result["method"] in ("sbert", "supervised") else 1e-5)


def check_mirrored_step(result, loss_tolerance=1e-5):
    assert result["replicas"] == 2 and result["per_replica"] == 4
    # The step moved the weights as the mean of the two replicas' gradients says. (Summed gradients
    # would make diff ≈ moved. The tolerance covers float32 noise: a random model's pooled vectors
    # are nearly parallel, and their normalisation amplifies rounding, even between two eager runs.)
    assert result["moved"] > 0.1
    assert result["diff"] < 1e-2 * result["moved"]
    assert result["loss"] == pytest.approx(result["expected"], rel=loss_tolerance)


def test_resume_or_start_resumes_same_settings_and_refuses_others(tmp_path):
    from bert4sim.training import resume_or_start

    run = str(tmp_path / "run")
    assert resume_or_start(run, {"epochs": 3, "lr": 1e-3}) == ""  # nothing to resume: nothing to say
    with pytest.raises(ValueError, match="--resume: there is no interrupted run in"):
        resume_or_start(run, {"epochs": 3, "lr": 1e-3}, mode="resume")
    os.makedirs(os.path.join(run, "backup"))  # what a killed run leaves (Keras BackupAndRestore)
    open(os.path.join(run, "backup", "latest.weights.h5"), "w").close()
    with open(os.path.join(run, "backup", "training_metadata.json"), "w") as f:
        f.write('{"epoch": 2, "batch": 4}')
    line = resume_or_start(run, {"epochs": 3, "lr": 1e-3})
    assert line.startswith(f"resuming the interrupted run in {run} (backed up after 2 epochs and 5 steps), same")
    with pytest.raises(ValueError, match=r"made with other settings \(lr: 0.001 then, 0.01 now\): pass --fresh"):
        resume_or_start(run, {"epochs": 3, "lr": 1e-2})
    assert "although its settings differ (lr: 0.001 then, 0.01 now)" in resume_or_start(run, {"epochs": 3, "lr": 1e-2},
                                                                                          mode="resume")
    assert resume_or_start(run, {"epochs": 3}, mode="fresh").startswith("starting afresh: discarded")
    assert not os.path.exists(os.path.join(run, "backup"))
    with pytest.raises(ValueError, match="mode must be"):
        resume_or_start(run, {}, mode="maybe")
