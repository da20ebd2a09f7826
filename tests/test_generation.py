"""Cached decoding equals full recompute; bert4keras-style decoders port unchanged."""
import keras
import numpy as np
import pytest

from bert4sim.generation import AutoRegressiveDecoder, CachedDecoder, RecomputeDecoder
from bert4sim.models import build_transformer_model
from bert4sim.snippets import AutoRegressiveDecoder as FromSnippets

CONFIG = dict(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=64, max_position_embeddings=64)
SOURCE = [[2, 10, 11, 12, 3], [0, 0, 0, 0, 0]]


@pytest.fixture(scope="module", params=["bert", "roformer"])
def model(request):
    keras.utils.set_random_seed(7)
    return build_transformer_model(model=request.param, application="unilm", with_pool="linear", **CONFIG)


def assert_steps_match(fast, slow, tokens, atol=1e-5):
    """Feed ``tokens`` one by one; at each step both decoders' next-token distributions agree.

    Returns the cached decoder's last distribution and states.
    """
    inputs = [np.array([row]) for row in SOURCE]
    output_ids, states = np.empty((1, 0), int), None
    for token in tokens:
        fast_probas, states = fast.predict(inputs, output_ids, states, 1, "probas")
        slow_probas, _ = slow.predict(inputs, output_ids, None, 1, "probas")
        np.testing.assert_allclose(fast_probas, slow_probas, atol=atol)
        output_ids = np.concatenate([output_ids, [[token]]], 1)
    return fast_probas, states


def test_next_token_distribution_matches_recompute(model):
    fast, slow = CachedDecoder(model, end_id=3, maxlen=8), RecomputeDecoder(model, end_id=3, maxlen=8)
    assert_steps_match(fast, slow, [7, 8, 9, 20, 21])


def test_greedy_and_beam_tokens_equal_recompute(model):
    fast, slow = CachedDecoder(model, end_id=3, maxlen=10), RecomputeDecoder(model, end_id=3, maxlen=10)
    greedy_fast = fast.random_sample(SOURCE, 3, topk=1, seed=0)
    greedy_slow = slow.random_sample(SOURCE, 3, topk=1, seed=0)
    assert [list(x) for x in greedy_fast] == [list(x) for x in greedy_slow]
    assert list(fast.beam_search(SOURCE, topk=4)) == list(slow.beam_search(SOURCE, topk=4))


def test_sampling_is_seeded_and_bounded(model):
    fast = CachedDecoder(model, end_id=3, maxlen=6)
    first = fast.random_sample(SOURCE, 8, topk=5, topp=0.9, seed=3)
    second = fast.random_sample(SOURCE, 8, topk=5, topp=0.9, seed=3)
    assert len(first) == 8 and all(len(ids) <= 6 for ids in first)
    assert [list(x) for x in first] == [list(x) for x in second]
    slow = RecomputeDecoder(model, end_id=3, maxlen=6)
    assert [list(x) for x in slow.random_sample(SOURCE, 8, topk=5, topp=0.9, seed=3)] == [list(x) for x in first]


def test_lm_application_matches_recompute():
    keras.utils.set_random_seed(3)
    lm = build_transformer_model(application="lm", with_mlm=True, **CONFIG)
    fast, slow = CachedDecoder(lm, end_id=3, maxlen=8), RecomputeDecoder(lm, end_id=3, maxlen=8)
    assert [list(x) for x in fast.random_sample(SOURCE, 6, topk=4, seed=5)] == [
        list(x) for x in slow.random_sample(SOURCE, 6, topk=4, seed=5)
    ]
    assert list(fast.beam_search(SOURCE, topk=3)) == list(slow.beam_search(SOURCE, topk=3))


def test_start_id_temperature_and_topp_without_topk_match_recompute(model):
    fast = CachedDecoder(model, end_id=3, maxlen=7, start_id=2)
    slow = RecomputeDecoder(model, end_id=3, maxlen=7, start_id=2)
    kwargs = dict(topp=0.8, temperature=0.7, seed=11)
    assert [list(x) for x in fast.random_sample(SOURCE, 5, **kwargs)] == [
        list(x) for x in slow.random_sample(SOURCE, 5, **kwargs)
    ]
    assert list(fast.beam_search(SOURCE, topk=2, temperature=0.5)) == list(
        slow.beam_search(SOURCE, topk=2, temperature=0.5)
    )


def test_rows_with_one_history_share_a_cache_row_and_the_step_is_traced_at_most_twice(model):
    fast = CachedDecoder(model, end_id=-1, maxlen=6)
    inputs = [np.array([row]) for row in SOURCE]
    probas, states = fast.predict(inputs, np.empty((1, 0), int), None, 1, "probas")
    states = fast.select_rows(states, np.zeros(6, dtype=int))
    # rows 0-2 chose token 7, rows 3-4 token 8, row 5 token 9: three distinct histories
    output_ids = np.array([[7], [7], [7], [8], [8], [9]])
    probas, states = fast.predict(inputs, output_ids, states, 1, "probas")
    assert states["buffers"].rows == 3 and list(states["rows"]) == [0, 0, 0, 1, 1, 2]
    np.testing.assert_array_equal(probas[0], probas[2])
    assert not np.allclose(probas[0], probas[3])
    for n in (1, 7, 30):
        fast.random_sample(SOURCE, n, topk=3, seed=n)
    fast.beam_search(SOURCE, topk=4)
    assert fast._step.experimental_get_tracing_count() <= 2


def test_out_of_date_states_are_refused(model):
    fast = CachedDecoder(model, end_id=3, maxlen=6)
    inputs = [np.array([row]) for row in SOURCE]
    _, start = fast.predict(inputs, np.empty((1, 0), int), None, 1, "probas")
    _, one = fast.predict(inputs, np.array([[7]]), start, 1, "probas")
    _, two = fast.predict(inputs, np.array([[7, 8]]), one, 1, "probas")
    with pytest.raises(ValueError, match="states are out of date"):
        fast.predict(inputs, np.array([[7, 9]]), one, 1, "probas")
    # states from before the first generated token own no buffers yet: reusable
    again, _ = fast.predict(inputs, np.array([[7, 9]]), start, 1, "probas")
    fresh, _ = fast.predict(inputs, np.array([[7, 9]]), None, 1, "probas")
    np.testing.assert_allclose(again, fresh, atol=1e-6)
    with pytest.raises(ValueError, match="states describe 1 rows but output_ids has 2"):
        fast.predict(inputs, np.array([[7, 8, 1], [7, 9, 1]]), two, 1, "probas")
    with pytest.raises(ValueError, match="one source per call"):
        fast.predict([np.array([[2, 10, 3], [2, 11, 3]]), np.zeros((2, 3), int)], np.empty((2, 0), int), None)


def test_minlen_and_end_token():
    keras.utils.set_random_seed(1)
    model = build_transformer_model(application="unilm", **CONFIG)
    # make token 3 ([SEP]) overwhelmingly likely: every sample ends right away
    bias = model.get_layer("MLM-Bias").bias
    bias.assign(np.where(np.arange(60) == 3, 50.0, 0.0).astype("float32"))
    outputs = CachedDecoder(model, end_id=3, maxlen=8).random_sample(SOURCE, 4, seed=0)
    assert all(list(ids) == [3] for ids in outputs)
    outputs = CachedDecoder(model, end_id=3, maxlen=8, minlen=3).random_sample(SOURCE, 2, seed=0)
    assert all(len(ids) == 3 for ids in outputs)
    two_ends = CachedDecoder(model, end_id=3, maxlen=8).random_sample(SOURCE, 2, seed=0, min_ends=2)
    assert all(list(ids) == [3, 3] for ids in two_ends)


def test_bert4keras_style_subclass_ports_unchanged(model):
    seq2seq = keras.Model(model.inputs, model.outputs[1])

    class SynonymsGenerator(FromSnippets):
        @AutoRegressiveDecoder.wraps(default_rtype="probas")
        def predict(self, inputs, output_ids, states):
            token_ids, segment_ids = inputs
            token_ids = np.concatenate([token_ids, output_ids], 1)
            segment_ids = np.concatenate([segment_ids, np.ones_like(output_ids)], 1)
            return self.last_token(seq2seq).predict([token_ids, segment_ids], verbose=0)

    generator = SynonymsGenerator(start_id=None, end_id=3, maxlen=6)
    ported = generator.random_sample(SOURCE, 3, topk=1, seed=0)
    cached = CachedDecoder(model, end_id=3, maxlen=6).random_sample(SOURCE, 3, topk=1, seed=0)
    assert [list(x) for x in ported] == [list(x) for x in cached]


def test_clear_errors():
    encoder = build_transformer_model(**CONFIG)
    with pytest.raises(ValueError, match="has no MLM head"):
        CachedDecoder(encoder, end_id=3, maxlen=4)
    bidirectional = build_transformer_model(with_mlm=True, **CONFIG)
    with pytest.raises(ValueError, match="bidirectional encoder"):
        CachedDecoder(bidirectional, end_id=3, maxlen=4)
    lm = build_transformer_model(application="lm", with_mlm=True, **CONFIG)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=64"):
        CachedDecoder(lm, end_id=3, maxlen=70).random_sample(SOURCE, 1)
    with pytest.raises(ValueError, match="n must be at least 1"):
        CachedDecoder(lm, end_id=3, maxlen=4).random_sample(SOURCE, 0)
    with pytest.raises(ValueError, match="default_rtype must be"):
        AutoRegressiveDecoder.wraps(default_rtype="scores")


@pytest.mark.parametrize("model_type", ["bert", "roformer"])
def test_bfloat16_products_decode_like_recompute_and_weights_are_recast_each_call(model_type):
    from bert4sim.precision import set_matmul_dtype

    keras.utils.set_random_seed(5)
    model = build_transformer_model(model=model_type, application="unilm", with_pool="linear", **CONFIG)
    set_matmul_dtype(model, "bfloat16")
    fast = CachedDecoder(model, end_id=3, maxlen=8)
    before, _ = assert_steps_match(fast, RecomputeDecoder(model, end_id=3, maxlen=8), [7, 8, 9], atol=2e-3)
    first = model.get_layer("Transformer-0")
    assert fast._kernels.kernel_for(first.attention.query_dense).dtype == "bfloat16"  # the cast copy of the kernel
    assert fast._kernels.kernel_for(model.get_layer("Embedding-Token")).dtype == "bfloat16"
    embeddings = model.get_layer("Embedding-Token").embeddings  # also the (bfloat16-cast) output projection
    embeddings.assign(embeddings.numpy() * 4.0)  # e.g. trained between two calls
    after, _ = assert_steps_match(fast, RecomputeDecoder(model, end_id=3, maxlen=8), [7, 8, 9], atol=2e-3)
    assert np.abs(before - after).max() > 5 * 2e-3  # well beyond the tolerance above


def test_xla_static_shape_decoding_equals_recompute(model):
    fast = CachedDecoder(model, end_id=3, maxlen=8, jit_compile=True)
    slow = RecomputeDecoder(model, end_id=3, maxlen=8)
    _, states = assert_steps_match(fast, slow, [7, 8, 9])
    assert [list(x) for x in fast.random_sample(SOURCE, 6, topk=4, seed=2)] == [
        list(x) for x in slow.random_sample(SOURCE, 6, topk=4, seed=2)]
    assert list(fast.beam_search(SOURCE, topk=3)) == list(slow.beam_search(SOURCE, topk=3))
    assert states["prefix_valid"].shape == (CachedDecoder.SOURCE_BUCKET,)  # the source padded to its bucket
    shapes, step = set(), fast._step

    def recording_step(token_ids, slot, source_length, prefix, prefix_valid, buffers):
        shapes.add((tuple(token_ids.shape), tuple(prefix_valid.shape), tuple(buffers[0][0].read_value().shape)))
        return step(token_ids, slot, source_length, prefix, prefix_valid, buffers)

    fast._step = recording_step
    longer = [[2, 10, 11, 12, 13, 14, 15, 3], [0] * 8]  # same source bucket
    for source in (SOURCE, longer):
        fast.random_sample(source, 6, topk=4, seed=2)  # rows end at different steps: padded back to 6
    assert shapes == {((6, 1), (16,), (8, 6, 4, 8))}  # one shape: one XLA compilation
