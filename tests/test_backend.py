"""bert4sim.backend: each K function and bert4keras helper against numpy on small inputs."""
import numpy as np
import pytest

from bert4sim.backend import (K, batch_gather, infinity, keras, multilabel_categorical_crossentropy,
                              search_layer, sequence_masking, set_infinity,
                              sparse_multilabel_categorical_crossentropy)

rng = np.random.default_rng(0)
A = rng.normal(size=(2, 3, 4)).astype("float32")
B = rng.normal(size=(2, 4, 5)).astype("float32")
M = rng.normal(size=(4, 5)).astype("float32")


def n(x):
    return keras.ops.convert_to_numpy(x)


def close(x, y, atol=1e-5):
    np.testing.assert_allclose(n(x), y, rtol=1e-5, atol=atol)


def test_config_and_shapes():
    assert K.floatx() == "float32" and K.epsilon() == pytest.approx(1e-7)
    x = K.constant(A)
    assert K.ndim(x) == 3 and K.int_shape(x) == (2, 3, 4) and K.dtype(x) == "float32"
    assert tuple(K.shape(x)) == (2, 3, 4)
    assert K.dtype(K.cast(x, "int32")) == "int32"
    close(K.constant(2.0, shape=(2, 2)), np.full((2, 2), 2.0))
    close(K.eye(3), np.eye(3))
    close(K.arange(1, 7, 2), np.arange(1, 7, 2))
    close(K.zeros_like(x), np.zeros_like(A))
    close(K.ones_like(x), np.ones_like(A))
    variable = K.variable(np.ones(2))
    K.set_value(variable, np.array([3.0, 4.0]))
    close(K.get_value(variable), [3.0, 4.0])


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "prod", "std", "var"])
@pytest.mark.parametrize("axis,keepdims", [(None, False), (1, False), (-1, True), ([0, 2], False)])
def test_reductions(name, axis, keepdims):
    reference = getattr(np, name)(A, axis=None if axis is None else tuple(np.atleast_1d(axis)), keepdims=keepdims)
    close(getattr(K, name)(K.constant(A), axis, keepdims), reference)


def test_elementwise_and_comparisons():
    x = K.constant(A)
    pairs = {"abs": np.abs, "square": np.square, "exp": np.exp, "tanh": np.tanh, "sign": np.sign}
    for name, reference in pairs.items():
        close(getattr(K, name)(x), reference(A))
    close(K.sqrt(K.abs(x)), np.sqrt(np.abs(A)))
    close(K.log(K.abs(x) + 1), np.log(np.abs(A) + 1))
    close(K.pow(x, 2), A**2)
    close(K.maximum(x, 0.1), np.maximum(A, 0.1))
    close(K.minimum(x, 0.1), np.minimum(A, 0.1))
    close(K.clip(x, -0.5, 0.5), np.clip(A, -0.5, 0.5))
    close(K.sigmoid(x), 1 / (1 + np.exp(-A)))
    for name, reference in {"equal": np.equal, "not_equal": np.not_equal, "greater": np.greater,
                            "greater_equal": np.greater_equal, "less": np.less, "less_equal": np.less_equal}.items():
        np.testing.assert_array_equal(n(getattr(K, name)(x, 0.0)), reference(A, 0.0))
    close(K.stop_gradient(x), A)


def test_softmax_logsumexp_cumsum_argmax():
    x = K.constant(A)
    e = np.exp(A - A.max(-1, keepdims=True))
    close(K.softmax(x), e / e.sum(-1, keepdims=True))
    close(K.softmax(x, axis=1), np.exp(A) / np.exp(A).sum(1, keepdims=True))
    close(K.logsumexp(x, axis=-1), np.log(np.exp(A).sum(-1)))
    close(K.cumsum(x, axis=1), np.cumsum(A, axis=1))
    close(K.cumsum(K.constant([1.0, 2.0, 3.0])), [1.0, 3.0, 6.0])  # Keras 2 default axis 0
    np.testing.assert_array_equal(n(K.argmax(x)), A.argmax(-1))
    np.testing.assert_array_equal(n(K.argmin(x, 1)), A.argmin(1))


def test_shape_manipulation():
    x = K.constant(A)
    close(K.expand_dims(x), A[..., None])
    close(K.expand_dims(x, 1), A[:, None])
    close(K.squeeze(K.expand_dims(x, 1), 1), A)
    close(K.concatenate([x, x]), np.concatenate([A, A], -1))
    close(K.concatenate([x, x], axis=0), np.concatenate([A, A], 0))
    close(K.stack([x, x], axis=1), np.stack([A, A], 1))
    close(K.reshape(x, (2, 12)), A.reshape(2, 12))
    close(K.reshape(x, (-1, 4)), A.reshape(-1, 4))
    close(K.permute_dimensions(x, (0, 2, 1)), A.transpose(0, 2, 1))
    close(K.repeat_elements(x, 2, axis=1), np.repeat(A, 2, axis=1))
    close(K.repeat(K.constant(M), 3), np.repeat(M[:, None], 3, axis=1))
    close(K.tile(x, (1, 2, 1)), np.tile(A, (1, 2, 1)))
    close(K.flatten(x), A.reshape(-1))
    close(K.batch_flatten(x), A.reshape(2, -1))
    close(K.one_hot(K.constant([0, 2], "int32"), 3), np.eye(3)[[0, 2]])
    close(K.gather(K.constant(M), K.constant([3, 0], "int32")), M[[3, 0]])


def test_switch_and_where():
    x = K.constant(A)
    condition = K.greater(x, 0)
    close(K.switch(condition, x, K.zeros_like(x)), np.where(A > 0, A, 0))
    row_condition = K.constant([True, False], "bool")  # lower rank: lined up on the left
    close(K.switch(row_condition, x, -x), np.where(np.array([True, False])[:, None, None], A, -A))
    close(K.switch(True, lambda: x, lambda: -x), A)


def test_dot_and_batch_dot():
    close(K.dot(K.constant(A), K.constant(M)), A @ M)
    close(K.dot(K.constant(M.T), K.constant(M)), M.T @ M)
    w = rng.normal(size=(3, 4, 2)).astype("float32")  # Keras 2: last axis of x with axis -2 of y
    close(K.dot(K.constant(A), K.constant(w)), np.tensordot(A, w, axes=[[2], [1]]))
    close(K.batch_dot(K.constant(A), K.constant(B)), np.einsum("bij,bjk->bik", A, B))
    close(K.batch_dot(K.constant(A), K.constant(A), axes=[2, 2]), np.einsum("bik,bjk->bij", A, A))
    close(K.batch_dot(K.constant(A), K.constant(A), axes=1), np.einsum("bki,bkj->bij", A, A))
    u, v = rng.normal(size=(2, 4, 3)).astype("float32")
    close(K.batch_dot(K.constant(u), K.constant(v)), (u * v).sum(-1, keepdims=True))  # [batch, 1]
    vector = rng.normal(size=(2, 4)).astype("float32")
    close(K.batch_dot(K.constant(A), K.constant(vector)), np.einsum("bij,bj->bi", A, vector))


def test_l2_normalize():
    close(K.l2_normalize(K.constant(M), axis=1), M / np.linalg.norm(M, axis=1, keepdims=True))
    close(K.l2_normalize(K.constant(M), axis=0), M / np.linalg.norm(M, axis=0, keepdims=True))
    close(K.l2_normalize(K.constant(M)), M / np.linalg.norm(M))
    close(K.l2_normalize(K.zeros((2, 3)), axis=1), np.zeros((2, 3)))


def test_crossentropies():
    logits = rng.normal(size=(3, 5)).astype("float32")
    probas = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = np.array([4, 0, 2])
    expected = -np.log(probas[np.arange(3), labels])
    close(K.sparse_categorical_crossentropy(K.constant(labels, "int32"), K.constant(probas)), expected)
    close(K.sparse_categorical_crossentropy(K.constant(labels.astype("float32")), K.constant(logits),
                                            from_logits=True), expected)  # float ids, as bert4keras feeds
    close(K.categorical_crossentropy(K.constant(np.eye(5)[labels]), K.constant(probas)), expected)
    targets = rng.uniform(size=(3, 5)).astype("float32")
    sigmoid = 1 / (1 + np.exp(-logits))
    expected_binary = -(targets * np.log(sigmoid) + (1 - targets) * np.log(1 - sigmoid))
    close(K.binary_crossentropy(K.constant(targets), K.constant(logits), from_logits=True), expected_binary, 1e-4)


def test_sequence_masking():
    x = K.constant(A)  # [2, 3, 4]; sequence on axis 1 (or 2)
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    close(sequence_masking(x, mask, 0), A * mask[:, :, None])
    masked = n(sequence_masking(x, K.constant(mask), "-inf", axis=1))
    assert (masked[mask == 0] == -infinity()).all() and np.allclose(masked[mask == 1], A[mask == 1])
    square = K.constant(rng.normal(size=(2, 3, 3)).astype("float32"))
    both = n(sequence_masking(square, mask, 0, axis=[1, 2]))
    np.testing.assert_allclose(both, n(square) * mask[:, :, None] * mask[:, None, :])
    close(sequence_masking(x, None, 0), A)
    close(sequence_masking(x, bias=K.constant(np.ones_like(A))), A + 1)
    x2, full = sequence_masking(x, mask, 0, axis=-2, return_mask=True)
    assert tuple(full.shape) == (2, 3, 1)


def test_infinity_is_settable():
    assert infinity() == 1e12 and K.infinity() == 1e12
    set_infinity(1e4)
    try:
        assert K.infinity() == 1e4
    finally:
        set_infinity(1e12)


def test_batch_gather():
    indices = np.array([[2, 0], [1, 1]])
    close(batch_gather(K.constant(A), K.constant(indices, "int32")), A[np.arange(2)[:, None], indices])
    close(batch_gather(K.constant(A), K.constant(indices.astype("float32"))), A[np.arange(2)[:, None], indices])


def _multilabel_numpy(labels, scores):
    positives = np.where(labels > 0, -scores, -np.inf)
    negatives = np.where(labels > 0, -np.inf, scores)
    return np.log1p(np.exp(positives).sum(-1)) + np.log1p(np.exp(negatives).sum(-1))


def test_multilabel_crossentropies():
    scores = rng.normal(size=(3, 6)).astype("float32")
    labels = np.array([[1, 0, 0, 1, 0, 0], [0, 0, 0, 0, 1, 1], [0, 1, 1, 0, 0, 0]], "float32")
    expected = _multilabel_numpy(labels, scores)
    close(multilabel_categorical_crossentropy(K.constant(labels), K.constant(scores)), expected)
    positive_ids = np.array([[0, 3], [5, 4], [1, 2]])
    close(sparse_multilabel_categorical_crossentropy(K.constant(positive_ids, "int32"), K.constant(scores)),
          expected, 1e-4)
    # mask_zero: index 0 pads and class 0 never counts as positive
    padded = np.array([[1, 2, 0], [3, 0, 0], [5, 4, 1]])
    mask_labels = np.zeros((3, 6), "float32")
    for row, ids in enumerate(padded):
        mask_labels[row, ids[ids > 0]] = 1
    expected = _multilabel_numpy(mask_labels[:, 1:], scores[:, 1:])  # class 0 is set aside
    got = sparse_multilabel_categorical_crossentropy(K.constant(padded, "int32"), K.constant(scores), mask_zero=True)
    close(got, expected, 1e-4)


def test_search_layer_walks_back_through_the_graph():
    x = keras.Input((3,))
    h = keras.layers.Dense(4, name="first")(x)
    y = keras.layers.Dense(2, name="second")(h)
    inner = keras.Model(x, y, name="inner")
    z = keras.layers.Dense(1, name="outer")(inner(x))
    assert search_layer(z, "first").name == "first"
    assert search_layer(z, "inner") is inner
    assert search_layer(z, "absent") is None


def test_set_gelu_switches_models_built_afterwards():
    from bert4sim.activations import get_activation, resolve_activation
    from bert4sim.backend import set_gelu

    x = keras.ops.convert_to_tensor(np.array([1.0], "float32"))
    try:
        set_gelu("tanh")
        tanh_value = float(n(get_activation(resolve_activation("gelu"))(x))[0])
        set_gelu("erf")
        erf_value = float(n(get_activation(resolve_activation("gelu"))(x))[0])
    finally:
        set_gelu("erf")
    assert tanh_value == pytest.approx(0.8411920, abs=1e-6) and erf_value == pytest.approx(0.8413447, abs=1e-6)
    with pytest.raises(ValueError, match="gelu version"):
        set_gelu("relu")


def test_the_gelu_variant_is_saved_with_the_model(tmp_path):
    from bert4sim.backend import set_gelu
    from bert4sim.models import build_transformer_model

    try:
        set_gelu("tanh")
        model = build_transformer_model(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=16, with_mlm=True)
    finally:
        set_gelu("erf")
    assert model.get_layer("Transformer-0").hidden_act == "gelu_tanh"
    assert model.get_layer("MLM-Transform").activation == "gelu_tanh"
    ids = np.array([[2, 5, 6, 3]], "int32")
    expected = model.predict([ids, np.zeros_like(ids)], verbose=0)
    model.save(str(tmp_path / "m.keras"))
    restored = keras.models.load_model(str(tmp_path / "m.keras"))  # loaded while "gelu" means erf again
    np.testing.assert_allclose(restored.predict([ids, np.zeros_like(ids)], verbose=0), expected, rtol=1e-6)
    erf_model = build_transformer_model(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=16, with_mlm=True)
    assert erf_model.get_layer("Transformer-0").hidden_act == "gelu"
