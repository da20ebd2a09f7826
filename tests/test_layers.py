"""Each layer alone: masks, RoPE, cache, serialization."""
import math

import keras
import numpy as np
import pytest

from bert4sim import layers as L
from bert4sim.activations import get_activation
from bert4sim.heads import MLMBias, MLMTransform, Pooler
from bert4sim.precision import Dense, KernelCopies, set_matmul_dtype
from numpy_reference import rope_bert4keras


def test_unilm_mask_exact_matrix():
    segment_ids = np.array([[0, 0, 0, 1, 1, 1]])
    token_ids = np.array([[2, 5, 3, 6, 7, 3]])
    mask = keras.ops.convert_to_numpy(L.AttentionMask("unilm")([token_ids, segment_ids]))[0]
    expected = np.array(
        [
            [1, 1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 1],
        ],
        bool,
    )
    np.testing.assert_array_equal(mask, expected)


def test_unilm_mask_hides_padding_keys():
    segment_ids = np.array([[0, 0, 1, 1, 0, 0]])
    token_ids = np.array([[2, 3, 6, 3, 0, 0]])
    mask = keras.ops.convert_to_numpy(L.AttentionMask("unilm")([token_ids, segment_ids]))[0]
    expected = np.array(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 0, 0],
        ],
        bool,
    )
    np.testing.assert_array_equal(mask, expected)


def test_lm_and_padding_masks():
    token_ids = np.array([[2, 5, 6, 0]])
    segment_ids = np.zeros_like(token_ids)
    lm = keras.ops.convert_to_numpy(L.AttentionMask("lm")([token_ids, segment_ids]))[0]
    np.testing.assert_array_equal(
        lm, np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]], bool)
    )
    pad = keras.ops.convert_to_numpy(L.AttentionMask("padding")([token_ids, segment_ids]))[0]
    np.testing.assert_array_equal(pad, np.tile([[1, 1, 1, 0]], (4, 1)).astype(bool))
    offset = keras.ops.convert_to_numpy(L.causal_mask(2, 5, query_offset=2))
    np.testing.assert_array_equal(offset, np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], bool))


def test_attention_mask_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode must be one of"):
        L.AttentionMask("bidirectional")


def test_rope_hand_computed():
    # head size 4: pair 0 turns by m*1, pair 1 by m*0.01.
    x = np.array([1.0, 0.0, 0.0, 1.0], "float32").reshape(1, 1, 1, 4)
    x = np.concatenate([x, x], axis=1)  # positions 0 and 1
    out = keras.ops.convert_to_numpy(L.rotary_position_embedding(x, np.arange(2)))
    np.testing.assert_allclose(out[0, 0, 0], [1, 0, 0, 1], atol=1e-7)
    expected = [math.cos(1), math.sin(1), -math.sin(0.01), math.cos(0.01)]
    np.testing.assert_allclose(out[0, 1, 0], expected, atol=1e-6)


def test_rope_matches_bert4keras_formula():
    x = np.random.default_rng(0).standard_normal((2, 7, 3, 8)).astype("float32")
    ours = keras.ops.convert_to_numpy(L.rotary_position_embedding(x, np.arange(7)))
    np.testing.assert_allclose(ours, rope_bert4keras(x.astype("float64")), atol=2e-6)


def test_rope_score_depends_only_on_relative_position():
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((2, 16)).astype("float32")

    def score(m, n):
        positions = np.array([m, n], "float32")
        both = np.stack([q, k])[None, :, None, :]
        rotated = keras.ops.convert_to_numpy(L.rotary_position_embedding(both, positions))
        return float(rotated[0, 0, 0] @ rotated[0, 1, 0])

    assert score(3, 1) == pytest.approx(score(10, 8), abs=1e-4)
    assert score(0, 5) == pytest.approx(score(20, 25), abs=1e-4)
    assert score(3, 1) != pytest.approx(score(3, 2), abs=1e-3)


def test_rope_rejects_odd_head_size():
    with pytest.raises(ValueError, match="even"):
        L.rotary_position_embedding(np.zeros((1, 2, 1, 5), "float32"), np.arange(2))


def test_token_embedding_reverse_is_tied():
    emb = L.TokenEmbedding(10, 4)
    ids = np.array([[1, 2]])
    h = emb(ids)
    logits = keras.ops.convert_to_numpy(emb(h, reverse=True))
    table = keras.ops.convert_to_numpy(emb.embeddings)
    np.testing.assert_allclose(logits, keras.ops.convert_to_numpy(h) @ table.T, rtol=1e-6)


def test_position_embedding_start_index_and_length_check():
    layer = L.PositionEmbedding(8)
    x = np.zeros((1, 3, 4), "float32")
    out = keras.ops.convert_to_numpy(layer(x, start_index=2))
    np.testing.assert_allclose(out[0], keras.ops.convert_to_numpy(layer.embeddings)[2:5])
    with pytest.raises(ValueError, match="max_position_embeddings=8"):
        layer(np.zeros((1, 9, 4), "float32"))


@pytest.mark.parametrize("use_rope", [False, True])
def test_cached_attention_equals_full_attention(use_rope):
    rng = np.random.default_rng(2)
    block = L.TransformerBlock(2, 16, use_rope=use_rope, dropout_rate=0, attention_dropout_rate=0)
    x = rng.standard_normal((2, 6, 8)).astype("float32")
    full_mask = L.causal_mask(6)[None]
    full = keras.ops.convert_to_numpy(block(x, attention_mask=keras.ops.tile(full_mask, (2, 1, 1))))
    cache = np.zeros((2, 2, 2, 6, 4), "float32")  # [batch, k/v, heads, max_len, head_size]
    out_prefix, cache = block(x[:, :4], attention_mask=keras.ops.tile(L.causal_mask(4, 6)[None], (2, 1, 1)),
                              cache=cache, cache_update_index=0)
    steps = [keras.ops.convert_to_numpy(out_prefix)]
    for t in (4, 5):
        mask = keras.ops.tile(L.causal_mask(1, 6, query_offset=t)[None], (2, 1, 1))
        out, cache = block(x[:, t:t + 1], attention_mask=mask, cache=cache, cache_update_index=t)
        steps.append(keras.ops.convert_to_numpy(out))
    np.testing.assert_allclose(np.concatenate(steps, 1), full, atol=1e-5)


LAYERS = [
    lambda: L.AttentionMask("unilm"),
    lambda: L.TokenEmbedding(10, 4),
    lambda: L.TokenEmbedding(10, 4, matmul_dtype="bfloat16"),
    lambda: Dense(3, activation="tanh", matmul_dtype="bfloat16"),
    lambda: L.TransformerBlock(2, 16, matmul_dtype="bfloat16"),
    lambda: L.PositionEmbedding(16),
    lambda: L.MultiHeadAttention(2, 4, use_rope=True, dropout_rate=0.1),
    lambda: L.FeedForward(8, "gelu"),
    lambda: L.TransformerBlock(2, 16, use_rope=True),
    lambda: Pooler(8, "linear"),
    lambda: MLMTransform("gelu"),
    lambda: MLMBias(10, "linear"),
]


@pytest.mark.parametrize("make", LAYERS)
def test_layer_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)


def test_mlm_bias_softmax_in_float32_under_mixed_precision():
    layer = MLMBias(5, dtype="mixed_float16")
    probs = layer(np.zeros((1, 2, 5), "float16"))
    assert keras.ops.convert_to_numpy(probs).dtype == np.float32
    np.testing.assert_allclose(keras.ops.convert_to_numpy(probs).sum(-1), 1.0, rtol=1e-6)


def test_masked_logits_stay_finite_in_half_precision():
    block = L.TransformerBlock(2, 16, dtype="mixed_float16", dropout_rate=0, attention_dropout_rate=0)
    x = np.random.default_rng(3).standard_normal((1, 4, 8)).astype("float16")
    mask = np.array([[[1, 1, 0, 0]] * 4], bool)
    out = keras.ops.convert_to_numpy(block(x, attention_mask=mask))
    assert np.isfinite(out).all()


def test_unknown_activation_named():
    with pytest.raises(ValueError, match="unknown activation 'mish'"):
        get_activation("mish")


MATMUL_LAYERS = {
    "dense": (lambda dtype: Dense(8, activation="gelu", matmul_dtype=dtype), (2, 5, 16)),
    "attention": (lambda dtype: L.MultiHeadAttention(2, 8, use_rope=True, matmul_dtype=dtype), (2, 5, 16)),
    "attention_no_rope": (lambda dtype: L.MultiHeadAttention(2, 8, matmul_dtype=dtype), (2, 5, 16)),
    "feed_forward": (lambda dtype: L.FeedForward(32, matmul_dtype=dtype), (2, 5, 16)),
    "block": (lambda dtype: L.TransformerBlock(2, 32, dropout_rate=0, attention_dropout_rate=0,
                                               matmul_dtype=dtype), (2, 5, 16)),
    "pooler": (lambda dtype: Pooler(8, matmul_dtype=dtype), (2, 5, 16)),
    "mlm_transform": (lambda dtype: MLMTransform(matmul_dtype=dtype), (2, 5, 16)),
}


@pytest.mark.parametrize("name", sorted(MATMUL_LAYERS))
def test_bfloat16_products_stay_close_to_float32_with_float32_outputs(name):
    make, shape = MATMUL_LAYERS[name]
    x = np.random.default_rng(4).standard_normal(shape).astype("float32")
    exact, fast = make(None), make("bfloat16")
    exact(x)
    fast(x)
    fast.set_weights(exact.get_weights())
    a, b = (keras.ops.convert_to_numpy(layer(x)) for layer in (exact, fast))
    assert b.dtype == np.float32 and a.shape == b.shape
    assert not np.array_equal(a, b)  # the products really ran in bfloat16
    np.testing.assert_allclose(b, a, atol=0.05 * np.abs(a).max())


@pytest.mark.parametrize("name", ["attention", "attention_no_rope", "feed_forward", "block"])
def test_bfloat16_inference_path_matches_training_path(name):
    # At inference, tensors that only feed another bfloat16 product stay bfloat16 (bias and
    # GELU fused into the product); in training they round-trip through float32 as before.
    make, shape = MATMUL_LAYERS[name]
    x = np.random.default_rng(6).standard_normal(shape).astype("float32")
    layer = make("bfloat16")
    inference, training = (keras.ops.convert_to_numpy(layer(x, training=flag)) for flag in (False, True))
    assert inference.dtype == np.float32
    np.testing.assert_allclose(inference, training, atol=0.03 * np.abs(training).max())


def test_dense_inference_path_equals_keras_dense_in_float32():
    dense = Dense(8, activation="gelu")
    x = np.random.default_rng(7).standard_normal((2, 5, 16)).astype("float32")
    fused, keras_path = (keras.ops.convert_to_numpy(dense(x, training=flag)) for flag in (False, True))
    np.testing.assert_allclose(fused, keras_path, atol=1e-6)
    h = dense.project(x, output_dtype="float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(h), keras_path, atol=1e-6)


def test_kernel_copies_are_passed_explicitly_and_refreshed_on_demand():
    inputs = keras.Input((5, 16))
    block = L.TransformerBlock(2, 32, dropout_rate=0, attention_dropout_rate=0, matmul_dtype="bfloat16")
    pooler = Pooler(8, matmul_dtype="bfloat16")
    model = keras.Model(inputs, pooler(block(inputs)))
    x = np.random.default_rng(8).standard_normal((2, 5, 16)).astype("float32")
    kernels = KernelCopies(model)
    assert len(kernels.copies) == 7  # q, k, v, output, inner, outer, pooler
    kernels.refresh()
    ffn = block.feed_forward

    def run(copies=None):  # the feed-forward and pooler products, with or without the copies
        project = (lambda dense, h: dense.project(h)) if copies is None else \
            (lambda dense, h: dense.project(h, kernel=copies.kernel_for(dense)))
        hidden = project(ffn.output_dense, project(ffn.inner_dense, x))
        return keras.ops.convert_to_numpy(project(pooler.dense, hidden[:, 0]))

    cached = run(kernels)
    np.testing.assert_array_equal(cached, run())  # a copy is exactly the per-call cast
    ffn.inner_dense.kernel.assign(ffn.inner_dense.kernel * 3.0)
    fresh = run()
    assert np.abs(run(kernels) - fresh).max() > 1e-3  # stale until refreshed
    kernels.refresh()
    np.testing.assert_array_equal(run(kernels), fresh)
    assert not KernelCopies(keras.Model(inputs, Pooler(8)(inputs))).copies  # float32: nothing to copy
    set_matmul_dtype(model, "float32")  # copies made for bfloat16 products no longer apply
    np.testing.assert_array_equal(run(kernels), run())


def test_token_embedding_reverse_in_bfloat16_and_any_rank():
    emb = L.TokenEmbedding(10, 4, matmul_dtype="bfloat16")
    hidden = np.random.default_rng(5).standard_normal((2, 3, 4)).astype("float32")
    emb.build()
    table = keras.ops.convert_to_numpy(emb.embeddings)
    logits = keras.ops.convert_to_numpy(emb(hidden, reverse=True))
    assert logits.shape == (2, 3, 10) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, hidden @ table.T, atol=0.05)
    flat = keras.ops.convert_to_numpy(emb(hidden[0], reverse=True))
    np.testing.assert_allclose(flat, logits[0], rtol=1e-6)


def test_set_matmul_dtype_switches_nested_layers_and_names_bad_values():
    inputs = keras.Input((5, 16))
    block = L.TransformerBlock(2, 32)
    inner = keras.Model(inputs, block(inputs))
    outer = keras.Model(inputs, Pooler(8)(inner(inputs)))
    assert set_matmul_dtype(outer, "bfloat16") == 2  # the block (inside the nested model) and the pooler
    assert block.attention.key_dense.matmul_dtype == "bfloat16"
    assert block.feed_forward.output_dense.matmul_dtype == "bfloat16"
    set_matmul_dtype(outer, "float32")
    assert block.attention.key_dense.matmul_dtype is None
    with pytest.raises(ValueError, match="matmul_dtype must be one of .* got 'int8'"):
        set_matmul_dtype(outer, "int8")
    with pytest.raises(ValueError, match="matmul_dtype must be one of"):
        Dense(3, matmul_dtype="float64")
