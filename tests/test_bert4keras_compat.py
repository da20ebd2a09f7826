"""bert4keras-style scripts on bert4sim: a SimBERT training script, optimizers, decoding draws, snippets.

Reference values come from bert4keras 0.11.5 (tests/fixtures/make_bert4keras_compat_fixture.py).
"""
import os

import keras
import numpy as np
import pytest

from bert4sim.backend import K
from bert4sim.layers import Loss
from bert4sim.models import build_transformer_model
from bert4sim.optimizers import (Adam, AdaFactor, PiecewiseLinearSchedule, extend_with_exponential_moving_average,
                                 extend_with_gradient_accumulation, extend_with_piecewise_linear_lr,
                                 extend_with_weight_decay)
from bert4sim.snippets import AutoRegressiveDecoder, DataGenerator, is_string, open, sequence_padding, to_array, uniout

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = np.load(os.path.join(HERE, "fixtures", "bert4keras_compat.npz"))
CHECKPOINT = os.path.join(HERE, "fixtures", "tiny_simbert")


# --- a SimBERT training script written the bert4keras way ---

class TotalLoss(Loss):
    """seq2seq loss + in-batch similarity loss, as SimBERT's script writes them."""

    def compute_loss(self, inputs, mask=None):
        seq2seq = self.seq2seq(inputs)
        similarity = self.similarity(inputs)
        self.add_metric(seq2seq, "seq2seq_loss")
        return seq2seq + similarity

    def seq2seq(self, inputs):
        y_true, y_mask, _, y_pred = inputs
        y_true, y_mask, y_pred = y_true[:, 1:], y_mask[:, 1:], y_pred[:, :-1]
        loss = K.sparse_categorical_crossentropy(y_true, y_pred)
        return K.sum(loss * y_mask) / K.sum(y_mask)  # y_mask: segment ids, a float here as in bert4keras

    def similarity(self, inputs):
        vectors = K.l2_normalize(inputs[2], axis=1)
        rows = K.arange(0, K.shape(vectors)[0])
        labels = K.one_hot(rows + 1 - rows % 2 * 2, K.shape(vectors)[0])
        scores = K.dot(vectors, K.transpose(vectors)) - K.eye(K.shape(vectors)[0]) * 1e12
        return K.categorical_crossentropy(labels, scores * 30, from_logits=True)  # one value per row


def simbert_train_model():
    bert = build_transformer_model(os.path.join(CHECKPOINT, "bert_config.json"),
                                   os.path.join(CHECKPOINT, "bert_model.ckpt"), with_pool="linear",
                                   application="unilm", dropout_rate=0.0, attention_dropout_rate=0.0,
                                   return_keras_model=False)
    outputs = TotalLoss([2, 3])(bert.model.inputs + bert.model.outputs)
    model = keras.Model(bert.model.inputs, outputs)
    AdamW = extend_with_weight_decay(Adam, "AdamW")
    model.compile(optimizer=AdamW(learning_rate=1e-3, weight_decay_rate=0.01))
    return model


class PairGenerator(DataGenerator):
    """bert4keras-style: yields ``[token_ids, segment_ids], None`` with the batch's own length."""

    def __iter__(self, random=False):
        token_ids, segment_ids = [], []
        for is_end, (a, b) in self.sample(random):
            for first, second in ((a, b), (b, a)):
                token_ids.append(first + second[1:])
                segment_ids.append([0] * len(first) + [1] * (len(second) - 1))
            if len(token_ids) == self.batch_size or is_end:
                yield [sequence_padding(token_ids), sequence_padding(segment_ids)], None
                token_ids, segment_ids = [], []


def test_simbert_script_trains_on_variable_length_list_batches():
    # the first two batches have the same length, the third a shorter one (Keras's own generator
    # adapter would have fixed the length after two batches)
    pairs = [([2, 10, 11, 3], [2, 12, 13, 3]), ([2, 14, 3], [2, 15, 16, 17, 3]),
             ([2, 20, 21, 3], [2, 22, 23, 3]), ([2, 24, 3], [2, 25, 26, 27, 3]),
             ([2, 30, 3], [2, 31, 3]), ([2, 32, 3], [2, 33, 3])]
    generator = PairGenerator(pairs, batch_size=4)
    model = simbert_train_model()
    history = model.fit(generator.forfit(random=False), steps_per_epoch=len(generator), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert "seq2seq_loss" in history.history
    test_inputs = model.predict(generator.fortest(), steps=len(generator), verbose=0)
    assert test_inputs[0].shape[0] == 8  # two batches of two pairs, both orders


def test_simbert_script_logs_the_loss_bert4keras_logs():
    model = simbert_train_model()
    token_ids, segment_ids = FIXTURE["simbert_token_ids"], FIXTURE["simbert_segment_ids"]
    history = model.fit([token_ids, segment_ids], batch_size=len(token_ids), epochs=3, verbose=0, shuffle=False)
    expected = FIXTURE["simbert_losses"]
    assert history.history["loss"][0] == pytest.approx(expected[0], rel=1e-5)  # same weights, same batch
    np.testing.assert_allclose(history.history["loss"], expected, rtol=2e-3)  # after AdamW steps


# --- optimizers against bert4keras ---

def _optimizer_model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(4, name="Proj")(inputs)
    model = keras.Model(inputs, keras.layers.LayerNormalization(name="Out-Norm", epsilon=1e-6)(hidden))
    model.get_layer("Proj").set_weights([np.eye(4, dtype="float32") * 0.5 + 0.1, np.full(4, 0.2, "float32")])
    return model


@pytest.mark.parametrize("name", ["adam", "adamw", "adamlr", "adamwlr"])
def test_optimizers_match_bert4keras(name):
    AdamW = extend_with_weight_decay(Adam, "AdamW")
    configs = {
        "adam": lambda: Adam(learning_rate=0.01),
        "adamw": lambda: AdamW(learning_rate=0.01, weight_decay_rate=0.1, exclude_from_weight_decay=["Norm", "bias"]),
        "adamlr": lambda: extend_with_piecewise_linear_lr(Adam)(learning_rate=0.01, lr_schedule={2: 1, 4: 0.2}),
        "adamwlr": lambda: extend_with_piecewise_linear_lr(AdamW, "AdamWLR")(
            learning_rate=0.01, weight_decay_rate=0.1, exclude_from_weight_decay=["bias"], lr_schedule={2: 1, 4: 0.2}),
    }
    model = _optimizer_model()
    model.compile(optimizer=configs[name](), loss="mse")
    x, y = FIXTURE["optimizer_data"]
    model.fit(x, y, batch_size=6, epochs=5, verbose=0, shuffle=False)
    for i, weight in enumerate(model.get_weights()):
        np.testing.assert_allclose(weight, FIXTURE[f"optimizer_{name}_{i}"], rtol=1e-4, atol=5e-5)


def test_piecewise_linear_schedule_formula():
    schedule = PiecewiseLinearSchedule(2.0, {1000: 1, 2000: 0.1})
    for step, multiplier in [(0, 0.0), (500, 0.5), (1000, 1.0), (1500, 0.55), (2000, 0.1), (5000, 0.1)]:
        assert float(schedule(step)) == pytest.approx(2.0 * multiplier, rel=1e-6)
    assert float(PiecewiseLinearSchedule(1.0, {0: 1, 10: 0.5})(5)) == pytest.approx(0.75)
    restored = PiecewiseLinearSchedule.from_config(schedule.get_config())
    assert float(restored(1500)) == pytest.approx(1.1)


def _sgd_steps(optimizer, gradients):
    variable = keras.Variable(np.array([1.0, -2.0], "float32"))
    for gradient in gradients:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(np.array(gradient, "float32")), variable)])
    return variable, optimizer


def test_gradient_accumulation_applies_the_mean_of_each_group():
    SGDGA = extend_with_gradient_accumulation(keras.optimizers.SGD, "SGDGA")
    gradients = [[1.0, 2.0], [3.0, 0.0], [5.0, 4.0], [1.0, 2.0]]
    variable, _ = _sgd_steps(SGDGA(learning_rate=0.1, grad_accum_steps=2), gradients)
    expected = np.array([1.0, -2.0]) - 0.1 * (np.mean(gradients[:2], 0) + np.mean(gradients[2:], 0))
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6)


def test_exponential_moving_average_apply_and_reset():
    SGDEMA = extend_with_exponential_moving_average(keras.optimizers.SGD, "SGDEMA")
    gradients = [[1.0, 2.0], [3.0, 0.0], [5.0, 4.0]]
    variable, optimizer = _sgd_steps(SGDEMA(learning_rate=0.1, ema_momentum=0.5), gradients)
    weights, average = np.array([1.0, -2.0]), None
    for gradient in gradients:
        weights = weights - 0.1 * np.array(gradient)
        average = weights if average is None else 0.5 * average + 0.5 * weights
    trained = variable.numpy().copy()
    np.testing.assert_allclose(trained, weights, rtol=1e-6)
    optimizer.apply_ema_weights()
    np.testing.assert_allclose(variable.numpy(), average, rtol=1e-6)
    optimizer.reset_old_weights()
    np.testing.assert_allclose(variable.numpy(), trained)


def test_ema_keeps_trained_weights_after_fit():
    AdamEMA = extend_with_exponential_moving_average(Adam, "AdamEMA")
    model = _optimizer_model()
    model.compile(optimizer=AdamEMA(learning_rate=0.01, ema_momentum=0.9), loss="mse")
    x, y = FIXTURE["optimizer_data"]
    model.fit(x, y, epochs=3, verbose=0)
    trained = [w.copy() for w in model.get_weights()]
    model.optimizer.apply_ema_weights()
    assert any(not np.allclose(a, b) for a, b in zip(trained, model.get_weights()))
    model.optimizer.reset_old_weights()
    for a, b in zip(trained, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_optimizer_argument_checks():
    assert float(Adam(lr=0.5).learning_rate) == 0.5 and Adam().epsilon == 1e-6
    with pytest.raises(ValueError, match="bias_correction"):
        Adam(bias_correction=False)
    with pytest.raises(ValueError, match="beta1"):
        AdaFactor(beta1=0.9)
    model = _optimizer_model()
    model.compile(optimizer=AdaFactor(learning_rate=1e-2), loss="mse")
    x, y = FIXTURE["optimizer_data"]
    losses = model.fit(x, y, epochs=5, verbose=0).history["loss"]
    assert losses[-1] < losses[0]


# --- decoding draws against bert4keras ---

class TableDecoder(AutoRegressiveDecoder):
    @AutoRegressiveDecoder.wraps(default_rtype="logits")
    def predict(self, inputs, output_ids, states):
        last = output_ids[:, -1] if output_ids.shape[1] else np.repeat(inputs[0][:, -1], len(output_ids))
        return FIXTURE["decoder_table"][last]


@pytest.mark.parametrize("name,options", [("plain", {}), ("topp", {"topp": 0.8}), ("topk", {"topk": 3}),
                                          ("topk_topp", {"topk": 4, "topp": 0.7})])
def test_random_sample_draws_what_bert4keras_draws(name, options):
    decoder = TableDecoder(start_id=None, end_id=11, maxlen=8)
    np.random.seed(7)
    samples = decoder.random_sample([[1, 2, 3]], n=6, **options)
    padded = np.array([np.pad(s, (0, 8 - len(s)), constant_values=-1) for s in samples])
    np.testing.assert_array_equal(padded, FIXTURE[f"samples_{name}"])


def test_last_token_predict_prints_nothing(capsys):
    bert = build_transformer_model(os.path.join(CHECKPOINT, "bert_config.json"),
                                   os.path.join(CHECKPOINT, "bert_model.ckpt"), application="unilm")
    decoder = AutoRegressiveDecoder(start_id=None, end_id=3, maxlen=4)
    probas = decoder.last_token(bert).predict([[[2, 10, 3]], [[0, 0, 0]]])
    assert probas.shape == (1, 120) and capsys.readouterr().out == ""
    np.testing.assert_allclose(probas, bert.predict(to_array([[2, 10, 3]], [[0, 0, 0]]), verbose=0)[:, -1], rtol=1e-5)


# --- snippets and builder options ---

def test_small_snippets(tmp_path):
    token_ids, segment_ids = to_array([[2, 5, 3]], [[0, 0, 0]])
    assert token_ids.shape == (1, 3) and to_array([1, 2]).tolist() == [1, 2]
    assert is_string("文本") and not is_string(b"x") and uniout is not None
    path = tmp_path / "lines.txt"
    path.write_text("第一行\nsecond\n第三行\n", encoding="utf-8")
    with open(str(path), encoding="utf-8") as f:
        assert f.read().splitlines()[2] == "第三行"
    indexed = open(str(path), encoding="utf-8", indexable=str(tmp_path / "index.json"))
    assert len(indexed) == 3 and indexed[2] == "第三行\n" and indexed[0] == "第一行\n"
    assert open(str(path), encoding="utf-8", indexable=str(tmp_path / "index.json"))[1] == "second\n"


def test_to_dataset_batches_samples():
    class Samples(DataGenerator):
        def __iter__(self, random=False):
            for is_end, item in self.sample(random):
                yield [item, [0] * len(item)], [[len(item)]]

    generator = Samples([[2, 5, 3], [2, 6, 7, 8, 3], [2, 3]], batch_size=2)
    dataset = generator.to_dataset(types=[["int32", "int32"], ["int32"]], shapes=[[[None], [None]], [[1]]],
                                   padded_batch=True)
    (tokens, segments), (lengths,) = next(iter(dataset))
    assert tokens.shape[0] == 2 and tokens.shape == segments.shape and lengths.shape == (2, 1)
    named = generator.to_dataset(types=[["int32", "int32"], ["int32"]], shapes=[[[None], [None]], [[1]]],
                                 names=[["Input-Token", "Input-Segment"], ["length"]], padded_batch=True)
    inputs, targets = next(iter(named))
    assert set(inputs) == {"Input-Token", "Input-Segment"} and set(targets) == {"length"}


def test_build_transformer_model_options(tmp_path):
    config = os.path.join(CHECKPOINT, "bert_config.json")
    with pytest.raises(TypeError, match="'hiden_size'"):
        build_transformer_model(config, hiden_size=32)
    bert = build_transformer_model(config, return_keras_model=False)
    assert isinstance(bert.initializer, keras.initializers.TruncatedNormal)
    # a checkpoint with another hidden size: every variable mismatched; ignore_invalid_weights keeps the init
    with pytest.raises(ValueError, match="shape mismatch"):
        build_transformer_model(config, os.path.join(CHECKPOINT, "bert_model.ckpt"), intermediate_size=96)
    with pytest.warns(UserWarning, match="intermediate"):
        build_transformer_model(config, os.path.join(CHECKPOINT, "bert_model.ckpt"), intermediate_size=96,
                                ignore_invalid_weights=True)


def test_decoding_with_a_direct_model_predict_prints_nothing(capsys):
    """SimBERT's script calls ``seq2seq.predict(...)`` itself at every step."""
    bert = build_transformer_model(os.path.join(CHECKPOINT, "bert_config.json"),
                                   os.path.join(CHECKPOINT, "bert_model.ckpt"), application="unilm")

    class Direct(AutoRegressiveDecoder):
        @AutoRegressiveDecoder.wraps("probas")
        def predict(self, inputs, output_ids, step):
            token_ids = np.concatenate([inputs[0], output_ids], 1)
            segment_ids = np.concatenate([inputs[1], np.ones_like(output_ids)], 1)
            return bert.predict([token_ids, segment_ids])[:, -1]

    capsys.readouterr()
    samples = Direct(start_id=None, end_id=3, maxlen=3).random_sample([[2, 10, 3], [0, 0, 0]], n=2, topk=3)
    assert len(samples) == 2 and capsys.readouterr().out == ""
    bert.predict(to_array([[2, 10, 3]], [[0, 0, 0]]))  # outside decoding Keras's progress bar is back
    assert capsys.readouterr().out != ""
