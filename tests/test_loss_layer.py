"""layers.Loss: bert4keras's loss-layer contract on Keras 3 (reduction, metrics, ids as floats, tf.distribute)."""
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert4sim.backend import K
from bert4sim.layers import Loss

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RowLoss(Loss):
    """Per-row loss that multiplies by integer ids (as seq2seq scripts do with segment ids)."""

    def compute_loss(self, inputs, mask=None):
        x, ids, h = inputs
        self.add_metric(K.mean(h), "h_mean")
        return K.sum(h, axis=1) * ids[:, 0]


def row_model(output_axis=2):
    x = keras.Input((3,))
    ids = keras.Input((2,), dtype="int32")
    h = keras.layers.Dense(3, use_bias=False, kernel_initializer="ones", name="dense")(x)
    model = keras.Model([x, ids], RowLoss(output_axis)([x, ids, h]))
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    return model


DATA = np.arange(12, dtype="float32").reshape(4, 3)
IDS = np.array([[1, 0], [2, 0], [1, 1], [0, 1]], "int32")


def test_logged_loss_is_the_mean_of_a_per_row_loss_and_metrics_reach_the_logs():
    model = row_model()
    rows = DATA.sum(1, keepdims=True).repeat(3, 1)  # the Dense of ones
    expected = (rows.sum(1) * IDS[:, 0]).mean()  # tf.keras 2 averaged a non-scalar add_loss
    history = model.fit([DATA, IDS], epochs=1, batch_size=4, verbose=0, shuffle=False).history
    assert history["loss"][0] == pytest.approx(expected)
    assert history["h_mean"][0] == pytest.approx(rows.mean())
    two_batches = model.fit([DATA, IDS], epochs=1, batch_size=2, verbose=0, shuffle=False).history
    assert two_batches["loss"][0] == pytest.approx(expected)  # size-weighted mean of the batch means
    evaluated = model.evaluate([DATA, IDS], batch_size=4, verbose=0, return_dict=True)
    assert evaluated["loss"] == pytest.approx(expected)


def test_output_axis_passes_inputs_through():
    model = row_model(output_axis=2)
    np.testing.assert_allclose(model.predict([DATA, IDS], verbose=0), DATA.sum(1, keepdims=True).repeat(3, 1))
    both = row_model(output_axis=[0, 2])
    first, _ = both.predict([DATA, IDS], verbose=0)
    np.testing.assert_allclose(first, DATA)
    ids_out = row_model(output_axis=1)([DATA, IDS])
    assert keras.backend.standardize_dtype(ids_out.dtype) == "int32"  # only compute_loss sees floats


def test_config_round_trip_and_missing_compute_loss():
    layer = RowLoss(output_axis=[0, 1], name="row_loss")
    assert RowLoss.from_config(layer.get_config()).output_axis == [0, 1]
    with pytest.raises(NotImplementedError, match="compute_loss"):
        Loss()(tf.ones((2, 2)))


def test_metric_first_logged_inside_a_compiled_step_is_a_clear_error():
    layer = Loss()
    layer.compute_loss = lambda inputs, mask=None: (layer.add_metric(K.sum(inputs), "late"), K.sum(inputs))[1]
    with pytest.raises(RuntimeError, match="add_metric\\(0.0, 'late'\\)"):
        tf.function(layer)(tf.ones((2, 2)))


MIRRORED = textwrap.dedent('''
    import json
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from bert4sim.backend import K
    from bert4sim.layers import Loss

    class Squares(Loss):
        def compute_loss(self, inputs, mask=None):
            x, y = inputs
            self.add_metric(K.mean(y), "y_mean")
            return K.sum(K.square(y), axis=1)  # per row

    def build():
        x = keras.Input((3,))
        y = keras.layers.Dense(2, kernel_initializer="ones", bias_initializer="zeros")(x)
        return keras.Model(x, Squares(1)([x, y]))

    data = np.arange(24, dtype="float32").reshape(8, 3) / 10
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = build()
        model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(tf.data.Dataset.from_tensors((data,)), epochs=1, verbose=0).history
    # one SGD step of the mean per-row loss over all 8 rows
    kernel = np.ones((3, 2), "float32")
    y = data @ kernel
    loss = (y ** 2).sum(1).mean()
    gradient = data.T @ (2 * y) / len(data)
    print(json.dumps({"loss": history["loss"][0], "expected": float(loss), "y_mean": history["y_mean"][0],
                      "expected_y_mean": float(y.mean()),
                      "diff": float(np.abs(model.layers[1].kernel.numpy() - (kernel - 0.01 * gradient)).max()),
                      "moved": float(np.abs(0.01 * gradient).max())}))
''')


def test_loss_layer_under_mirrored_strategy_on_two_logical_cpus(tmp_path):
    script = tmp_path / "mirrored_loss.py"
    script.write_text(MIRRORED)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["loss"] == pytest.approx(result["expected"], rel=1e-5)
    assert result["y_mean"] == pytest.approx(result["expected_y_mean"], rel=1e-5)
    assert result["moved"] > 0.01 and result["diff"] < 1e-5 * max(1.0, result["moved"])  # not 2x the step
