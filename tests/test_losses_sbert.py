"""Sentence-BERT objectives against direct numpy computations on a fixed batch."""
import keras
import numpy as np
import pytest

from bert4sim.losses import cosent_loss, cosine_regression_loss, multiple_negatives_ranking_loss, triplet_loss
from bert4sim.models import build_transformer_model
from bert4sim.sbert import build_sentence_encoder, sbert_training_model, softmax_classification_logits

RNG = np.random.default_rng(0)
U, V, W = (RNG.standard_normal((5, 4)).astype("float32") for _ in range(3))
SCORES = np.array([0.9, 0.1, 0.5, 0.5, 0.0], "float32")  # a tie: pairs 2 and 3 are never compared


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def np_logsumexp(x):
    return np.log(np.exp(x - x.max()).sum()) + x.max()


def np_cross_entropy(logits, label):
    return np_logsumexp(logits) - logits[label]


def model_loss(model, x):
    """The loss a Loss-layer training model adds for inputs ``x`` (inference mode)."""
    model(list(x), training=False)
    return value(keras.ops.sum(model.losses))


def value(x):
    return float(keras.ops.convert_to_numpy(x))


def test_regression_is_mse_of_cosine():
    cos = np.array([u @ v / np.linalg.norm(u) / np.linalg.norm(v) for u, v in zip(U, V)])
    assert value(cosine_regression_loss(U, V, SCORES)) == pytest.approx(((cos - SCORES) ** 2).mean(), rel=1e-5)


@pytest.mark.parametrize("margin", [1.0, 5.0])
def test_triplet_is_euclidean_hinge(margin):
    expected = np.mean([max(np.linalg.norm(a - p) - np.linalg.norm(a - n) + margin, 0.0) for a, p, n in zip(U, V, W)])
    assert value(triplet_loss(U, V, W, margin=margin)) == pytest.approx(expected, rel=1e-5)
    # the paper's margin 1 is the default
    assert value(triplet_loss(U, V, W)) == pytest.approx(value(triplet_loss(U, V, W, margin=1.0)))


def test_multiple_negatives_ranking_in_batch_and_hard_negatives():
    scores = unit(U) @ unit(V).T * 20
    expected = np.mean([np_cross_entropy(scores[i], i) for i in range(5)])
    assert value(multiple_negatives_ranking_loss(U, V)) == pytest.approx(expected, rel=1e-5)
    # hard negatives become 5 extra candidate columns for every anchor
    scores = unit(U) @ np.concatenate([unit(V), unit(W)]).T * 20
    expected = np.mean([np_cross_entropy(scores[i], i) for i in range(5)])
    assert value(multiple_negatives_ranking_loss(U, V, W)) == pytest.approx(expected, rel=1e-5)
    # anchors -> candidates only: swapping the roles changes the value (not symmetric)
    assert value(multiple_negatives_ranking_loss(V, U)) != pytest.approx(value(multiple_negatives_ranking_loss(U, V)))


def sentence_transformers_mnrl(anchors, *candidates, scale=20.0):
    """numpy version of sentence-transformers' formula: scores = scale * cos(anchors, cat(candidates))."""
    scores = unit(anchors) @ np.concatenate([unit(c) for c in candidates]).T * scale
    log_softmax = scores - np.array([np_logsumexp(row) for row in scores])[:, None]
    return -np.mean(log_softmax[np.arange(len(anchors)), np.arange(len(anchors))])


@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_multiple_negatives_ranking_with_k_hard_negatives_matches_the_formula(k):
    rng = np.random.default_rng(k)
    anchors, positives = (rng.standard_normal((6, 8)).astype("float32") for _ in range(2))
    negatives = [rng.standard_normal((6, 8)).astype("float32") for _ in range(k)]
    expected = sentence_transformers_mnrl(anchors, positives, *negatives)
    assert value(multiple_negatives_ranking_loss(anchors, positives, negatives)) == pytest.approx(expected, rel=1e-5)
    assert value(multiple_negatives_ranking_loss(anchors, positives, negatives, scale=7.0)) == pytest.approx(
        sentence_transformers_mnrl(anchors, positives, *negatives, scale=7.0), rel=1e-5)
    if k:  # the order of the negative columns does not matter, each one does
        assert value(multiple_negatives_ranking_loss(anchors, positives, negatives[::-1])) == pytest.approx(
            expected, rel=1e-5)
        assert value(multiple_negatives_ranking_loss(anchors, positives, negatives[:-1])) != pytest.approx(expected)


def test_cosent_over_ordered_pairs():
    cos = (unit(U) * unit(V)).sum(1) * 20
    terms = [cos[j] - cos[i] for i in range(5) for j in range(5) if SCORES[i] > SCORES[j]]
    assert len(terms) == 9  # 10 pairs, one tie
    expected = np.log1p(np.exp(np.array(terms)).sum())
    assert value(cosent_loss(U, V, SCORES)) == pytest.approx(expected, rel=1e-5)
    # all gold scores tied: nothing to order, log(1 + 0)
    assert value(cosent_loss(U, V, np.ones(5, "float32"))) == pytest.approx(0.0, abs=1e-6)


def test_classification_head_is_u_v_absdiff():
    dense = keras.layers.Dense(3)
    dense.build((None, 12))
    logits = keras.ops.convert_to_numpy(softmax_classification_logits(dense, U, V))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in (dense.kernel, dense.bias))
    np.testing.assert_allclose(logits, np.concatenate([U, V, np.abs(U - V)], 1) @ kernel + bias, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def encoder():
    bert = build_transformer_model(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, dropout_rate=0.0, return_keras_model=False)
    return build_sentence_encoder(bert, "mean")


def batch(rows, length=5, seed=0):
    ids = np.random.default_rng(seed).integers(5, 30, size=(rows, length)).astype("int32")
    ids[:, 0], ids[1, -2:] = 2, 0
    return ids, np.zeros_like(ids)


def test_training_model_loss_equals_the_function_on_encoder_vectors(encoder):
    a, b, c = batch(4, seed=1), batch(4, seed=2), batch(4, seed=3)
    u, v, w = (keras.ops.convert_to_numpy(encoder(list(t), training=False)) for t in (a, b, c))
    scores = np.array([0.2, 0.8, 0.4, 1.0], "float32")
    cases = [("regression", (a, b), scores, cosine_regression_loss(u, v, scores)),
             ("cosent", (a, b), scores, cosent_loss(u, v, scores)),
             ("triplet", (a, b, c), None, triplet_loss(u, v, w)),
             ("mnrl", (a, b), None, multiple_negatives_ranking_loss(u, v)),
             ("mnrl", (a, b, c), None, multiple_negatives_ranking_loss(u, v, w)),
             ("mnrl", (a, b, c, a), None, multiple_negatives_ranking_loss(u, v, [w, u]))]
    for objective, texts, y, expected in cases:
        trainer = sbert_training_model(encoder, objective, texts=len(texts))
        x = [array for text in texts for array in text] + ([] if y is None else [y])
        assert model_loss(trainer, x) == pytest.approx(value(expected), rel=1e-4)
    trainer = sbert_training_model(encoder, "classification", num_labels=2)
    labels = np.array([0, 1, 1, 0])
    logits = softmax_classification_logits(trainer.get_layer("SBERT-Classifier"), u, v)
    logits = keras.ops.convert_to_numpy(logits)
    expected = np.mean([np_cross_entropy(row, label) for row, label in zip(logits, labels)])
    assert model_loss(trainer, list(a + b) + [labels]) == pytest.approx(expected, rel=1e-4)


def test_training_model_errors(encoder):
    with pytest.raises(ValueError, match="objective must be one of"):
        sbert_training_model(encoder, "contrastive")
    with pytest.raises(ValueError, match="num_labels must be at least 2, got 1"):
        sbert_training_model(encoder, "classification", num_labels=1)
    with pytest.raises(ValueError, match="objective 'triplet' takes 6 input arrays .* got 4"):
        sbert_training_model(encoder, "triplet", texts=2)
    with pytest.raises(ValueError, match="objective 'mnrl' takes an even number \\(at least 4\\) of input arrays .* got 2"):
        sbert_training_model(encoder, "mnrl", texts=1)
    assert [i.name for i in sbert_training_model(encoder, "cosent").inputs][-1] == "Input-Targets"
