"""RetroMAE's loss as a bert4keras-style Loss layer: the formula's value, trains, serializes."""
import keras
import numpy as np
import pytest

import itertools

from bert4sim.losses import masked_lm_loss
from bert4sim.retromae import (LabelledPositions, RetroMAECollator, RetroMAELoss, labelled_positions, retromae_batches,
                               retromae_dataset, retromae_training_model)
from test_retromae import fixed_batch, randomize, tiny, tokenizer


def formula_parts(retromae, inputs, labels):
    """The encoder and decoder losses by the formulas: the shared MLM head at the labelled positions."""
    _, encoder_sequence, decoder_hidden = retromae.backbone(inputs, training=False)
    parts = []
    for part_labels, hidden in zip(labels, (encoder_sequence, decoder_hidden)):
        targets, rows = labelled_positions(part_labels, hidden)
        parts.append(float(masked_lm_loss(targets, retromae.encoder.mlm_logits(rows))))
    return {"encoder_loss": parts[0], "decoder_loss": parts[1], "loss": parts[0] + parts[1]}


def evaluate(model, *data):
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    return model.evaluate(*data, return_dict=True, verbose=0)


@pytest.mark.parametrize("model", ["bert", "roformer"])
def test_logged_loss_equals_the_formulas_on_the_same_weights(model):
    retromae = tiny(model)
    randomize(retromae.decoder, 4)
    inputs, labels = fixed_batch(seed=2)
    ours = evaluate(retromae_training_model(retromae), inputs + labels)
    theirs = formula_parts(retromae, inputs, labels)
    for name in ("loss", "encoder_loss", "decoder_loss"):
        assert ours[name] == pytest.approx(theirs[name], rel=1e-6), name
    assert ours["loss"] == pytest.approx(ours["encoder_loss"] + ours["decoder_loss"], rel=1e-6)
    assert ours["encoder_loss"] > 0 and ours["decoder_loss"] > 0
    # Weights reach the layer; the weighted sum is what the model adds.
    weighted = evaluate(retromae_training_model(retromae, encoder_weight=0.5, decoder_weight=2.0), inputs + labels)
    assert weighted["loss"] == pytest.approx(0.5 * ours["encoder_loss"] + 2.0 * ours["decoder_loss"], rel=1e-5)


def test_loss_layer_takes_whole_sequences_too():
    retromae = tiny()
    randomize(retromae.decoder, 5)
    inputs, (encoder_labels, decoder_labels) = fixed_batch(seed=3)
    _, encoder_logits, decoder_logits = retromae.model(inputs, training=False)
    layer = RetroMAELoss(decoder_weight=0.0)
    layer([encoder_labels, encoder_logits, decoder_labels, decoder_logits])
    expected = formula_parts(retromae, inputs, (encoder_labels, decoder_labels))["encoder_loss"]
    assert float(layer.losses[0]) == pytest.approx(float(expected), rel=1e-5)


def test_labelled_positions_keeps_the_labelled_rows_in_order():
    labels = np.array([[0, 7, 0, 9], [3, 0, 0, 0]])
    hidden = np.arange(2 * 4 * 2, dtype="float32").reshape(2, 4, 2)
    targets, rows = labelled_positions(labels, hidden)
    np.testing.assert_array_equal(np.asarray(targets), [7, 9, 3])
    np.testing.assert_array_equal(np.asarray(rows), hidden[[0, 0, 1], [1, 3, 0]])
    targets, rows = LabelledPositions()([labels, hidden])
    np.testing.assert_array_equal(np.asarray(targets), [7, 9, 3])


def test_a_few_steps_train_every_weight_from_the_dataset():
    keras.utils.set_random_seed(0)  # the loss of 6 steps on 6 texts falls from any seed tried (0-4), not from every state
    retromae = tiny()
    model = retromae_training_model(retromae)
    assert {v.path for v in model.trainable_weights} == {v.path for v in retromae.model.trainable_weights}
    assert [i.name for i in model.inputs][-2:] == ["Input-Encoder-Labels", "Input-Decoder-Labels"]
    texts = ["甲乙丙丁戊己庚", "天地人和", "子丑寅卯辰巳午未申", "酉戌亥天地", "丙丁戊己", "人和子丑寅卯"]
    collator = RetroMAECollator(tokenizer(), maxlen=12, seed=0)
    dataset = retromae_dataset(lambda step: retromae_batches(texts, collator, 2, start_step=step))
    (element,) = next(iter(dataset))  # inputs alone: the four model inputs then the two labels
    assert len(element) == 6
    before = [np.array(v) for v in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(dataset, epochs=2, steps_per_epoch=3, verbose=0)
    assert {"loss", "encoder_loss", "decoder_loss"} <= set(history.history)
    assert history.history["loss"][-1] < history.history["loss"][0]
    unchanged = [v.path for v, b in zip(model.trainable_weights, before) if np.array_equal(np.array(v), b)]
    assert not unchanged


def test_config_round_trip_and_bad_argument():
    layer = RetroMAELoss(encoder_weight=0.5, decoder_weight=2.0, output_axis=4, name="l")
    clone = RetroMAELoss.from_config(layer.get_config())
    assert (clone.encoder_weight, clone.decoder_weight, clone.output_axis, clone.name) == (0.5, 2.0, 4, "l")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(LabelledPositions(name="p")))
    assert isinstance(restored, LabelledPositions) and restored.name == "p"
    with pytest.raises(TypeError, match="return_keras_model=False"):
        retromae_training_model(tiny().model)


def test_the_dataset_resumes_at_the_same_batch():
    texts = ["甲乙丙丁戊己庚", "天地人和", "子丑寅卯辰巳午未申", "酉戌亥天地", "丙丁戊己", "人和子丑寅卯"]
    collator = RetroMAECollator(tokenizer(), maxlen=12, seed=0)
    batches = lambda step: retromae_batches(texts, collator, 2, seed=3, start_step=step)  # noqa: E731
    whole = [e for e, _ in zip(retromae_dataset(batches), range(5))]
    resumed = [e for e, _ in zip(retromae_dataset(batches, start_step=lambda: 3), range(2))]
    plain = list(itertools.islice(batches(3), 2))
    for (mine,), (expected,), (inputs, labels) in zip(resumed, whole[3:], plain):
        for a, b, c in zip(mine, expected, tuple(inputs) + tuple(labels)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
