"""SimBERT / RoFormer-Sim losses equal direct numpy computations of their formulas."""
import keras
import numpy as np
import pytest

from bert4sim.losses import distillation_loss, seq2seq_loss, similarity_loss
from bert4sim.simbert import simbert_training_model
from bert4sim.models import build_transformer_model

RNG = np.random.default_rng(0)


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_seq2seq_loss_matches_numpy():
    token_ids = np.array([[2, 5, 6, 3, 7, 8, 3, 0], [2, 9, 3, 4, 5, 6, 7, 3]])
    segment_ids = np.array([[0, 0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1, 1, 1]])
    logits = RNG.standard_normal((2, 8, 12)).astype("float32")
    probs = np_softmax(logits[:, :-1].astype("float64"))
    targets, mask = token_ids[:, 1:], segment_ids[:, 1:]
    ce = -np.log(np.take_along_axis(probs, targets[..., None], -1)[..., 0])
    expected = (ce * mask).sum() / mask.sum()
    assert float(seq2seq_loss(token_ids, segment_ids, logits)) == pytest.approx(expected, rel=1e-5)
    assert float(seq2seq_loss(token_ids, segment_ids, np_softmax(logits), from_logits=False)) == pytest.approx(expected, rel=1e-4)


def test_similarity_loss_matches_numpy():
    vectors = RNG.standard_normal((6, 5)).astype("float32")
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    s = (v @ v.T - np.eye(6) * 1e12) * 30
    labels = [1, 0, 3, 2, 5, 4]
    expected = np.mean([-np.log(np_softmax(s[i])[labels[i]]) for i in range(6)])
    assert float(similarity_loss(vectors, scale=30)) == pytest.approx(expected, rel=1e-5)


def test_distillation_loss_matches_numpy_and_is_zero_for_same_vectors():
    u, v = RNG.standard_normal((5, 4)), RNG.standard_normal((5, 6))
    cos = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T  # noqa: E731
    expected = 100 / 25 * ((cos(u) - cos(v)) ** 2).sum()
    assert float(distillation_loss(u.astype("float32"), v.astype("float32"))) == pytest.approx(expected, rel=1e-5)
    assert float(distillation_loss(u.astype("float32"), u.astype("float32"))) == pytest.approx(0.0, abs=1e-6)


def test_training_model_loss_equals_full_model_loss():
    keras.utils.set_random_seed(0)
    bert = build_transformer_model(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, application="unilm", with_pool="linear", with_mlm="linear",
                                   return_keras_model=False, dropout_rate=0.0)
    model = simbert_training_model(bert)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    token_ids = np.array([[2, 5, 6, 3, 7, 8, 3, 0], [2, 7, 8, 3, 5, 6, 3, 0]])
    segment_ids = np.array([[0, 0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 1, 1, 1, 0]])
    total = model.evaluate([token_ids, segment_ids], batch_size=2, verbose=0, return_dict=True)["loss"]
    pooled, logits = bert.model.predict([token_ids, segment_ids], verbose=0)
    expected = float(seq2seq_loss(token_ids, segment_ids, logits)) + float(similarity_loss(pooled))
    assert total == pytest.approx(expected, rel=1e-5)


def test_training_model_rejects_models_without_heads():
    encoder = build_transformer_model(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32, return_keras_model=False)
    with pytest.raises(ValueError, match="needs a unilm model with a pooler and an MLM head"):
        simbert_training_model(encoder)
