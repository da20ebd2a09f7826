"""Keras 2's inputs on bert4sim models: nested Python lists in predict / fit / evaluate / *_on_batch.

bert4keras scripts call ``encoder.predict([[token_ids], [segment_ids]])`` on models built by
``build_transformer_model`` and on models they build with ``keras.models.Model`` from bert4keras's backend.
"""
import numpy as np
import pytest

from bert4sim.backend import keras
from bert4sim.functional import Model, keras2_inputs, keras2_targets
from bert4sim.models import build_transformer_model

TINY = dict(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
IDS, SEGS = [[2, 5, 6, 3], [2, 7, 3, 0]], [[0, 0, 0, 0], [0, 0, 0, 0]]


@pytest.fixture(scope="module")
def bert():
    return build_transformer_model(with_pool="linear", return_keras_model=False, **TINY)


def test_built_and_facade_models_are_keras2_models(bert):
    assert isinstance(bert.model, Model)
    encoder = keras.models.Model(bert.model.inputs, bert.model.outputs[0])
    assert isinstance(encoder, Model) and keras.Model is Model
    assert keras.layers.Dense is __import__("keras").layers.Dense  # the rest is Keras 3 itself


def test_nested_lists_in_predict_and_predict_on_batch(bert):
    encoder = keras.models.Model(bert.model.inputs, bert.model.outputs[0])
    arrays = encoder.predict([np.array(IDS), np.array(SEGS)], verbose=0)
    np.testing.assert_allclose(encoder.predict([IDS, SEGS], verbose=0), arrays, atol=1e-6)
    np.testing.assert_allclose(encoder.predict([[IDS[0]], [SEGS[0]]], verbose=0), arrays[:1], atol=1e-6)
    np.testing.assert_allclose(encoder.predict_on_batch([IDS, SEGS]), arrays, atol=1e-6)
    np.testing.assert_allclose(bert.model.predict([IDS, SEGS], verbose=0), arrays, atol=1e-6)


def test_nested_lists_in_fit_evaluate_and_on_batch(bert):
    head = keras.layers.Dense(2, activation="softmax")(bert.model.outputs[0])
    classifier = keras.models.Model(bert.model.inputs, head)
    classifier.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    labels = [[1], [0]]
    history = classifier.fit([IDS, SEGS], labels, epochs=2, batch_size=2, verbose=0)
    assert len(history.history["loss"]) == 2
    loss = classifier.evaluate([IDS, SEGS], labels, verbose=0)
    assert loss == pytest.approx(classifier.evaluate([np.array(IDS), np.array(SEGS)], np.array(labels), verbose=0))
    assert np.isfinite(classifier.train_on_batch([IDS, SEGS], labels))
    assert np.isfinite(classifier.test_on_batch([IDS, SEGS], labels))
    classifier.fit([IDS, SEGS], labels, validation_data=([IDS, SEGS], labels), epochs=1, verbose=0)


def test_dict_targets_by_output_name_and_conversion_rules():
    inputs = keras.Input((3,))
    model = keras.models.Model(inputs, keras.layers.Dense(1, name="Score")(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x, y = [[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]], [[1.0], [0.0]]
    assert np.isfinite(model.train_on_batch(x, {"Score": y}))
    converted = keras2_inputs([[[2, 5]], [[0, 0]]], 2)
    assert [a.shape for a in converted] == [(1, 2), (1, 2)]
    assert keras2_inputs([[1, 2], [3, 4]], 1).shape == (2, 2)
    assert keras2_inputs({"a": 1}, 2) == {"a": 1}
    np.testing.assert_array_equal(keras2_targets({"Score": y}, ["Score"]), np.array(y))


def test_keras2_model_saves_and_loads(tmp_path, bert):
    encoder = keras.models.Model(bert.model.inputs, bert.model.outputs[0])
    path = str(tmp_path / "encoder.keras")
    encoder.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, Model)
    np.testing.assert_allclose(restored.predict([IDS, SEGS], verbose=0), encoder.predict([IDS, SEGS], verbose=0),
                               atol=1e-6)
