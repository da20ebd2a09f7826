"""RoFormer-Sim's supervised stage: task-masked loss against numpy, readers, 1:1 interleaving, batches."""
import json

import keras
import numpy as np
import pytest

from bert4sim.data import interleave, parse_ratio
from bert4sim.losses import task_masked_crossentropy
from bert4sim.models import build_transformer_model
from bert4sim.roformer_sim import (NLI_LABELS, labelled_pair_batches, paired_rows_features, read_labelled_pairs,
                                   read_nli_pairs, supervised_training_model, task_masked_predictions)
from bert4sim.sbert import build_sentence_encoder
from bert4sim.simbert import roformer_sim_cut
from bert4sim.tokenizers import Tokenizer


def numpy_special_crossentropy(y_true, y_pred):
    """The original script's loss in numpy: task = y < 1.5; mask [0, 0, 1, 1, 1]; −1e12 on the other task."""
    y_true = y_true.reshape(-1)
    task = (y_true < 1.5).astype("float64")[:, None]
    mask = np.array([[0, 0, 1, 1, 1]], "float64")
    y_pred = task * (y_pred - mask * 1e12) + (1 - task) * (y_pred - (1 - mask) * 1e12)
    y_pred = y_pred - y_pred.max(1, keepdims=True)
    log_softmax = y_pred - np.log(np.exp(y_pred).sum(1, keepdims=True))
    return -np.mean(log_softmax[np.arange(len(y_true)), y_true])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_task_masked_crossentropy_equals_the_original_on_random_logits(seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((64, 5)).astype("float32") * 3
    labels = rng.integers(0, 5, size=64)
    assert {0, 1} & set(labels) and {2, 3, 4} & set(labels)  # both tasks present
    expected = numpy_special_crossentropy(labels, logits.astype("float64"))
    got = float(task_masked_crossentropy(labels, logits))
    assert got == pytest.approx(expected, rel=1e-5)
    # the original repeats each pair's merged row twice with the label of each text: same mean
    assert float(task_masked_crossentropy(np.repeat(labels, 2)[:, None], np.repeat(logits, 2, 0))) == \
        pytest.approx(expected, rel=1e-5)
    # each task alone: the logits of the other task do not change the loss
    similarity = labels < 2
    shifted = logits.copy()
    shifted[similarity, 2:] += 50.0
    shifted[~similarity, :2] -= 50.0
    assert float(task_masked_crossentropy(labels, shifted)) == pytest.approx(got, rel=1e-5)


def test_task_masked_predictions_choose_inside_the_task():
    logits = np.array([[0.0, 1.0, 9.0, 9.0, 9.0], [9.0, 9.0, 0.0, 2.0, 1.0]])
    np.testing.assert_array_equal(task_masked_predictions([0, 4], logits), [1, 3])


def test_paired_rows_features_are_u_v_absdiff_of_consecutive_rows():
    x = np.arange(12, dtype="float32").reshape(4, 3) ** 1.5
    expected = np.concatenate([x[::2], x[1::2], np.abs(x[::2] - x[1::2])], 1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(paired_rows_features(x)), expected)


def test_interleave_alternates_sources_and_follows_the_ratio():
    a, b = list(range(3)), [f"x{i}" for i in range(7)]
    stream = interleave([a, b], seed=0)
    draws = [next(stream) for _ in range(42)]
    assert [index for index, _ in draws] == [0, 1] * 21
    firsts = [item for index, item in draws if index == 0]
    assert sorted(firsts[:3]) == a and sorted(firsts[3:6]) == a  # each source reshuffled per pass
    assert sorted(item for index, item in draws[:14] if index == 1) == b
    stream = interleave([a, b], ratio=(1, 3), seed=1)
    assert [next(stream)[0] for _ in range(8)] == [0, 1, 1, 1, 0, 1, 1, 1]
    assert parse_ratio("2:1") == (2, 1)
    with pytest.raises(ValueError, match="ratio must look like 1:1"):
        parse_ratio("1:x")
    with pytest.raises(ValueError, match="source 1 is empty"):
        next(interleave([a, []]))
    with pytest.raises(ValueError, match="one ratio entry per source"):
        next(interleave([a, b], ratio=(1,)))


def test_readers_labels_thresholds_and_errors(tmp_path):
    tsv = tmp_path / "sts.tsv"
    tsv.write_text("一个人在跑步\t有人在跑步\t4.2\n猫在睡觉\t狗在叫\t2.5\n", encoding="utf-8")
    assert read_labelled_pairs(str(tsv), threshold=2.5) == [("一个人在跑步", "有人在跑步", 1), ("猫在睡觉", "狗在叫", 0)]
    assert [p[2] for p in read_labelled_pairs(str(tsv))] == [1, 1]
    bad = tmp_path / "bad.tsv"
    bad.write_text("甲\t乙\t1\n甲\t乙\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:2: expected text_a<TAB>text_b<TAB>label, got 2 field"):
        read_labelled_pairs(str(bad))
    bad.write_text("甲\t乙\tyes\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:1: label must be a number, got 'yes'"):
        read_labelled_pairs(str(bad))
    jsonl = tmp_path / "nli.jsonl"
    rows = [{"sentence1": "孩子们在踢球", "sentence2": "孩子们在运动", "gold_label": "entailment"},
            {"sentence1": "孩子们在踢球", "sentence2": "没有人在运动", "gold_label": "contradiction"},
            {"sentence1": "孩子们在踢球", "sentence2": "孩子们在比赛", "gold_label": "-"},
            {"sentence1": "孩子们在踢球", "sentence2": "孩子们放学了", "gold_label": "neutral"}]
    jsonl.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    assert [p[2] for p in read_nli_pairs(str(jsonl))] == [3, 2, 4]  # "-" (no consensus) skipped
    assert NLI_LABELS.index("neutral") + 2 == 4
    jsonl.write_text('{"sentence1": "甲", "sentence2": 3, "gold_label": "neutral"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"nli.jsonl:1: 'sentence2' must be a string, got 3"):
        read_nli_pairs(str(jsonl))
    jsonl.write_text('{"sentence1": "甲"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"nli.jsonl:1: not valid JSON"):
        read_nli_pairs(str(jsonl))
    with pytest.raises(FileNotFoundError, match="NLI file not found"):
        read_nli_pairs(str(tmp_path / "missing.jsonl"))


VOCAB = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("甲乙丙丁戊己庚辛，。"))}


def test_labelled_pair_batches_put_pairs_on_consecutive_rows():
    tokenizer = Tokenizer(VOCAB)
    examples = [("甲乙", "丙", 1), ("丁戊己", "庚", 3), ("辛", "甲", 0)]
    batches = labelled_pair_batches(iter(examples), tokenizer, batch_size=4, maxlen=8)
    (token_ids, segment_ids), labels = next(batches)
    assert token_ids.shape == (4, 5) and not segment_ids.any()
    np.testing.assert_array_equal(labels, [1, 3])
    assert list(token_ids[0][:4]) == tokenizer.encode("甲乙")[0] and list(token_ids[3][:3]) == tokenizer.encode("庚")[0]
    (last, _), labels = next(batches)  # a finite stream ends with a smaller batch
    assert last.shape == (2, 3) and list(labels) == [0]
    assert next(batches, None) is None
    assert roformer_sim_cut("甲乙丙丁戊，己庚辛甲乙丙丁", 5) == "甲乙丙丁戊"
    with pytest.raises(ValueError, match="batch_size must be even"):
        next(labelled_pair_batches(iter(examples), tokenizer, batch_size=3))


def test_training_model_loss_is_the_task_masked_ce_of_a_bias_free_head_and_it_learns():
    bert = build_transformer_model(vocab_size=len(VOCAB), model="roformer", with_pool="linear", hidden_size=16,
                                   num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                   dropout_rate=0.0, return_keras_model=False)
    encoder = build_sentence_encoder(bert, "pooler")
    trainer = supervised_training_model(encoder)
    classifier = trainer.get_layer("Supervised-Classifier")
    assert classifier.use_bias is False and classifier.kernel.shape == (48, 5)
    rng = np.random.default_rng(0)
    token_ids = rng.integers(5, len(VOCAB), size=(8, 6)).astype("int32")
    token_ids[:, 0], token_ids[:, -1] = 2, 3
    x, labels = (token_ids, np.zeros_like(token_ids)), np.array([0, 1, 3, 4], "int32")
    vectors = keras.ops.convert_to_numpy(encoder(list(x), training=False))
    features = np.concatenate([vectors[::2], vectors[1::2], np.abs(vectors[::2] - vectors[1::2])], 1)
    logits = features @ keras.ops.convert_to_numpy(classifier.kernel)

    def loss():
        trainer([*x, labels], training=False)
        return float(keras.ops.sum(trainer.losses))

    assert loss() == pytest.approx(numpy_special_crossentropy(labels, logits.astype("float64")), rel=1e-4)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
    import tensorflow as tf

    history = trainer.fit(tf.data.Dataset.from_tensors(((*x, labels),)).repeat(), steps_per_epoch=30, epochs=1,
                          verbose=0)
    assert loss() < history.history["loss"][0] / 2
    with pytest.raises(ValueError, match="similarity_classes"):
        supervised_training_model(encoder, num_classes=2, similarity_classes=2)


def test_the_loss_function_also_serves_a_bert4keras_style_loss_layer():
    from bert4sim.layers import Loss

    class SupervisedLoss(Loss):
        def compute_loss(self, inputs, mask=None):
            labels, logits = inputs
            return task_masked_crossentropy(labels, logits)

    labels_in, logits_in = keras.Input((), dtype="int32"), keras.Input((5,))
    model = keras.Model([labels_in, logits_in], SupervisedLoss(1)([labels_in, logits_in]))
    model.compile(optimizer="sgd")
    rng = np.random.default_rng(5)
    logits, labels = rng.standard_normal((32, 5)).astype("float32"), rng.integers(0, 5, 32).astype("int32")
    loss = model.evaluate([labels, logits], batch_size=32, verbose=0)
    assert float(np.ravel(loss)[0]) == pytest.approx(numpy_special_crossentropy(labels, logits.astype("float64")),
                                                      rel=1e-5)
