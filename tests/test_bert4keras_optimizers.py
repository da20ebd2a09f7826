"""bert4keras's optimizer extensions on Keras 3: the same weights as bert4keras 0.11.5 after five steps.

Reference values: tests/fixtures/make_bert4keras_surface_fixture.py (optimizer_runs), run with bert4keras 0.11.5.
"""
import os

import keras
import numpy as np
import pytest

from bert4sim.optimizers import (Adam, Lion, LionV2, export_to_custom_objects, extend_with_layer_adaptation,
                                 extend_with_layer_adaptation_v2, extend_with_lazy_optimization,
                                 extend_with_lookahead, extend_with_parameter_wise_lr)

REFERENCE = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "bert4keras_surface", "reference.npz"))

RUNS = {
    "layer_adaptation": lambda: extend_with_layer_adaptation(Adam)(learning_rate=0.01,
                                                                   exclude_from_layer_adaptation=["bias"]),
    "paramwise_lr": lambda: extend_with_parameter_wise_lr(Adam)(learning_rate=0.01,
                                                                 paramwise_lr_schedule={"Proj": 0.1, "kernel": 0.5}),
    "lazy": lambda: extend_with_lazy_optimization(Adam)(learning_rate=0.01, include_in_lazy_optimization=["Table"]),
    "lion": lambda: Lion(learning_rate=0.01),
}


def small_model():
    token_in = keras.Input((None,), dtype="int32")
    hidden = keras.layers.Embedding(6, 4, name="Table")(token_in)
    output = keras.layers.Dense(4, name="Proj")(keras.ops.mean(hidden, axis=1))
    model = keras.Model(token_in, output)
    model.set_weights([REFERENCE[f"optimizers/start_{i}"] for i in range(3)])
    return model


@pytest.mark.parametrize("name", sorted(RUNS))
def test_five_steps_match_bert4keras(name):
    model = small_model()
    model.compile(optimizer=RUNS[name](), loss="mse")
    model.fit(REFERENCE["optimizers/ids"], REFERENCE["optimizers/targets"], batch_size=3, epochs=5, verbose=0,
              shuffle=False)
    for i, weight in enumerate(model.get_weights()):
        np.testing.assert_allclose(weight, REFERENCE[f"optimizers/{name}_{i}"], atol=2e-6, err_msg=f"weight {i}")


def test_lazy_rows_without_gradient_stay_put_where_adam_moves_them():
    plain, lazy = small_model(), small_model()
    plain.compile(optimizer=Adam(0.01), loss="mse")
    lazy.compile(optimizer=extend_with_lazy_optimization(Adam)(0.01, include_in_lazy_optimization=["Table"]),
                 loss="mse")
    for model in (plain, lazy):
        model.fit(REFERENCE["optimizers/ids"], REFERENCE["optimizers/targets"], batch_size=3, epochs=3, verbose=0)
    start = REFERENCE["optimizers/start_0"]
    np.testing.assert_array_equal(lazy.get_weights()[0][4:], start[4:])  # rows 4 and 5 are never looked up
    np.testing.assert_array_equal(plain.get_weights()[0][4:], start[4:])  # no gradient, no Adam moment either
    assert not np.allclose(lazy.get_weights()[0][:4], start[:4])


def test_lookahead_syncs_every_k_steps_from_the_weights():
    """Slow weights start at the weights (bert4keras started them at zero); a sync at iterations 0, k, 2k, ..."""
    x = np.ones((1, 1), "float32")
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(inputs))
    model.compile(optimizer=extend_with_lookahead(keras.optimizers.SGD)(learning_rate=0.1, steps_per_slow_update=2,
                                                                        slow_step_size=0.5), loss="mse")
    kernels = []
    for _ in range(3):
        model.train_on_batch(x, np.zeros((1, 1), "float32"))
        kernels.append(float(model.get_weights()[0][0, 0]))
    # numpy: w <- w - 0.1 * 2w (mse gradient); sync on iterations 0 and 2
    w, slow, expected = 1.0, 1.0, []
    for step in range(3):
        w = w - 0.1 * 2 * w
        if step % 2 == 0:
            slow = slow + 0.5 * (w - slow)
            w = slow
        expected.append(w)
    np.testing.assert_allclose(kernels, expected, rtol=1e-6)


def test_v2_names_lion_defaults_and_custom_objects():
    assert extend_with_layer_adaptation_v2 is extend_with_layer_adaptation and LionV2 is Lion
    lion = Lion()
    assert (float(lion.learning_rate), lion.beta_1, lion.beta_2) == (pytest.approx(3e-4), 0.95, 0.98)

    def extend_with_nothing(BaseOptimizer):  # noqa: N803  (bert4keras's factory shape)
        class Nothing(BaseOptimizer):
            pass
        return Nothing

    named = export_to_custom_objects(extend_with_nothing)(Adam, "AdamNothing")
    assert named.__name__ == "AdamNothing" and keras.saving.get_custom_objects()["AdamNothing"] is named
