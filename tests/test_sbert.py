"""Sentence-BERT objectives against numpy, and examples/sbert.py end to end per objective."""
import os
import sys

import keras
import numpy as np
import pytest

from bert4sim.losses import (SentenceBERTTrainer, cosent_loss, cosine_regression_loss,
                             multiple_negatives_ranking_loss, softmax_classification_logits, triplet_loss)
from bert4sim.models import build_sentence_encoder, build_transformer_model

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
RNG = np.random.default_rng(0)
U, V, W = (RNG.standard_normal((5, 4)).astype("float32") for _ in range(3))
SCORES = np.array([0.9, 0.1, 0.5, 0.5, 0.0], "float32")


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def np_logsumexp(x):
    return np.log(np.exp(x - x.max()).sum()) + x.max()


def test_regression_and_triplet_match_numpy():
    cos = (unit(U) * unit(V)).sum(1)
    assert float(cosine_regression_loss(U, V, SCORES)) == pytest.approx(((cos - SCORES) ** 2).mean(), rel=1e-5)
    expected = np.maximum(np.linalg.norm(U - V, axis=1) - np.linalg.norm(U - W, axis=1) + 1.0, 0).mean()
    assert float(triplet_loss(U, V, W)) == pytest.approx(expected, rel=1e-5)


def test_mnrl_and_cosent_match_numpy():
    scores = unit(U) @ unit(V).T * 20
    expected = np.mean([np_logsumexp(scores[i]) - scores[i, i] for i in range(5)])
    assert float(multiple_negatives_ranking_loss(U, V)) == pytest.approx(expected, rel=1e-5)
    cos = (unit(U) * unit(V)).sum(1) * 20
    terms = [cos[j] - cos[i] for i in range(5) for j in range(5) if SCORES[i] > SCORES[j]]
    assert float(cosent_loss(U, V, SCORES)) == pytest.approx(np_logsumexp(np.array([0.0] + terms)), rel=1e-5)


def test_classification_head_input_order():
    dense = keras.layers.Dense(3, use_bias=False)
    dense.build((None, 12))
    logits = keras.ops.convert_to_numpy(softmax_classification_logits(dense, U, V))
    kernel = keras.ops.convert_to_numpy(dense.kernel)
    np.testing.assert_allclose(logits, np.concatenate([U, V, np.abs(U - V)], 1) @ kernel, rtol=1e-5)


def test_encoder_pooling_ignores_padding_and_trainer_validates():
    bert = build_transformer_model(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, return_keras_model=False)
    encoder = build_sentence_encoder(bert, "mean")
    a = encoder.predict([np.array([[2, 5, 6, 3]]), np.zeros((1, 4))], verbose=0)
    b = encoder.predict([np.array([[2, 5, 6, 3, 0, 0]]), np.zeros((1, 6))], verbose=0)
    np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="objective must be one of"):
        SentenceBERTTrainer(encoder, "contrastive")
    with pytest.raises(ValueError, match="pooling='pooler' needs"):
        build_sentence_encoder(bert, "pooler")


@pytest.mark.parametrize("objective", ["classification", "regression", "triplet", "mnrl", "cosent"])
def test_sbert_example_micro_improves_held_apart_spearman(objective, tmp_path):
    import sbert

    history, before, after = sbert.main(["--micro", "--objective", objective, "--output", str(tmp_path)])
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert after["spearman"] > before["spearman"]
    assert os.path.isfile(tmp_path / "encoder" / "bert_model.ckpt.index")
    assert os.path.isfile(tmp_path / "similarity_model" / "encoder.keras")
