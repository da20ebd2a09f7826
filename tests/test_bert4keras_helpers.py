"""bert4keras's backend and snippets helpers in bert4sim's facade: values from bert4keras 0.11.5 where it has them.

Reference values: tests/fixtures/make_bert4keras_surface_fixture.py (snippets_and_backend).
"""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert4sim import backend, snippets

REFERENCE = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "bert4keras_surface", "reference.npz"))


@pytest.mark.parametrize("i", range(20))
def test_longest_common_subsequence_and_substring_match_bert4keras(i):
    a, b = list(REFERENCE[f"snippets/lcs_{i}/a"]), list(REFERENCE[f"snippets/lcs_{i}/b"])
    length, mapping = snippets.longest_common_subsequence(a, b)
    assert [length] + [k for pair in mapping for k in pair] == list(REFERENCE[f"snippets/lcs_{i}/subsequence"])
    length, span = snippets.longest_common_substring(a, b)
    assert [length, *span] == list(REFERENCE[f"snippets/lcs_{i}/substring"])


@pytest.mark.parametrize("i", range(5))
def test_viterbi_paths_match_bert4keras(i):
    trans, nodes = REFERENCE["snippets/viterbi/trans"], REFERENCE[f"snippets/viterbi/nodes_{i}"]
    np.testing.assert_array_equal(snippets.ViterbiDecoder(trans).decode(nodes), REFERENCE[f"snippets/viterbi/path_{i}"])
    restricted = snippets.ViterbiDecoder(trans, starts=[0, 1], ends=[2]).decode(nodes)
    np.testing.assert_array_equal(restricted, REFERENCE[f"snippets/viterbi/path_start_end_{i}"])
    assert restricted[0] in (0, 1) and restricted[-1] == 2


@pytest.mark.parametrize("shape", [(8, 12), (6, 4), (2, 13)])
def test_orthogonally_resize_matches_bert4keras(shape):
    resized = snippets.orthogonally_resize(REFERENCE["snippets/resize/input"], shape)
    np.testing.assert_allclose(resized, REFERENCE["snippets/resize/%dx%d" % shape], rtol=1e-6)


@pytest.mark.parametrize("name,schedule,from_zero", [("warmup", {1000: 1, 2000: 0.1}, True),
                                                     ("zero", {0: 0.5, 1500: 1.0}, True),
                                                     ("not_from_zero", {1000: 1, 2000: 0.1}, False)])
def test_piecewise_linear_matches_bert4keras(name, schedule, from_zero):
    values = backend.piecewise_linear(REFERENCE["backend/steps"], schedule, from_zero)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(values), REFERENCE[f"backend/piecewise_{name}"], rtol=1e-6)


def test_sinusoidal_rope_and_attention_normalizations_match_bert4keras():
    np.testing.assert_allclose(keras.ops.convert_to_numpy(backend.Sinusoidal()((7, 6))), REFERENCE["backend/sinusoidal"],
                               atol=1e-6)
    x = REFERENCE["backend/x"]
    table = backend.sinusoidal_embeddings(keras.ops.arange(6, dtype="float32")[None], 8)
    rotated = backend.apply_rotary_position_embeddings(table, x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rotated), REFERENCE["backend/rotary"], atol=1e-6)
    mask = np.arange(8)[None].repeat(2, 0) < np.array([[5], [8]])
    for method in ("softmax_plus", "squared_relu"):
        probs = backend.attention_normalize(x, mask, -1, method)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(probs), REFERENCE[f"backend/attention_{method}"],
                                   atol=1e-6)


def test_shape_helpers():
    x = np.arange(24, dtype="float32").reshape(2, 3, 4)
    assert backend.align(keras.ops.ones((2, 4)), [0, 3], 4).shape == (2, 1, 1, 4)
    assert backend.reshape(x, (2, -1), -1).shape == (2, 3, 2, 2)
    assert backend.K.reshape(x, (2, 2), 2, (3, 1), 1).shape == (2, 3, 1, 2, 2)
    assert backend.flatten(keras.ops.ones((2, 3, 4, 5)), 1, 3).shape == (2, 12, 5)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(backend.where(x > 10, x, 0.0)), np.where(x > 10, x, 0))
    assert backend.dtype(3) is None and backend.dtype(keras.ops.ones(2)) == "float32"
    pooled = backend.pool1d(x, 2, 2, pool_mode="avg")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pooled), x.reshape(2, 1, 3, 4)[:, :, :2].mean(2))
    assert backend.divisible_temporal_padding(x, 2).shape == (2, 4, 4)
    assert backend.divisible_temporal_padding(x, 3).shape == (2, 3, 4)
    assert float(backend.root_mean_square(keras.ops.convert_to_tensor([3.0, 4.0]))) == pytest.approx(12.5 ** 0.5)
    assert float(backend.leaky_relu(keras.ops.convert_to_tensor(-1.0))) == pytest.approx(-0.2)
    assert backend.symbolic(len) is len and backend.is_tf_keras
    assert isinstance(backend.get_available_gpus(), list)
    with pytest.raises(ValueError, match="align: 1 axes given for a tensor of rank 2"):
        backend.align(keras.ops.ones((2, 4)), [0])


def test_recompute_grad_gives_the_same_gradients(monkeypatch):
    class Square(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, inputs):
            return keras.ops.square(inputs * self.w)

    assert backend.recompute_grad(Square.call) is Square.call  # RECOMPUTE unset: unchanged
    monkeypatch.setattr(backend, "do_recompute", True)

    class Recomputed(Square):
        call = backend.recompute_grad(Square.call)

    x = tf.constant([[1.0, 2.0, 3.0]])
    gradients = []
    for layer in (Square(), Recomputed()):
        layer.build(x.shape)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x))
        gradients.append([g.numpy() for g in tape.gradient(loss, [x, layer.w])])
    for plain, recomputed in zip(*gradients):
        np.testing.assert_allclose(recomputed, plain)


def test_text_helpers_and_decorators():
    assert snippets.strQ2B("ＡＢＣ１２３，　！") == "ABC123, !"
    assert snippets.convert_to_unicode("中文".encode("utf-8")) == "中文" == snippets.convert_to_str("中文")
    assert snippets.lowercase_and_normalize("Ça Va") == "ca va"
    assert snippets.string_matching("Transformer-0-FeedForward", ["Norm", "Feed"])
    assert not snippets.string_matching("Embedding", ["Norm"])
    x = np.zeros(2)
    assert snippets.is_one_of(x, [np.zeros(2), x]) and not snippets.is_one_of(np.zeros(2), [x])
    assert snippets.is_py2 is False
    np.testing.assert_allclose(snippets.softmax(np.array([0.0, np.log(3.0)])), [0.25, 0.75])

    class Base:
        def __init__(self, **kwargs):
            self.rest = kwargs

    class Extended(Base):
        @snippets.insert_arguments(steps=2, rate=0.1)
        @snippets.delete_arguments("forbidden")
        def __init__(self, **kwargs):
            super().__init__(**kwargs)

    made = Extended(steps=5, other=1)
    assert (made.steps, made.rate, made.rest) == (5, 0.1, {"other": 1})
    with pytest.raises(TypeError, match="Extended got an unexpected keyword argument 'forbidden'"):
        Extended(forbidden=1)


@pytest.mark.parametrize("dummy", [True, False])
def test_parallel_apply_threads_and_processes(dummy):
    items = list(range(30))
    ordered = snippets.parallel_apply(lambda v: v * v, items, workers=3, max_queue_size=4, dummy=dummy,
                                      unordered=False)
    assert ordered == [v * v for v in items]
    collected = []
    snippets.parallel_apply(lambda v: -v, items, workers=2, max_queue_size=2, callback=collected.append, dummy=dummy)
    assert sorted(collected) == sorted(-v for v in items)
    pairs = list(snippets.parallel_apply_generator(str, "abc", workers=2, max_queue_size=1, dummy=dummy))
    assert sorted(pairs) == [(0, "a"), (1, "b"), (2, "c")]


def test_parallel_apply_reports_a_failing_item():
    with pytest.raises(RuntimeError, match=r"func failed on item 2: ZeroDivisionError"):
        snippets.parallel_apply(lambda v: 1 / (v - 2), range(5), workers=2, max_queue_size=2, dummy=True)


# --- tokenizers ---

with open(os.path.join(os.path.dirname(__file__), "fixtures", "bert4keras_surface", "cases.json"),
          encoding="utf-8") as _f:
    TOKENIZER_CASES = __import__("json").load(_f)["tokenizer"]


def test_encode_patterns_and_truncation_match_bert4keras():
    from bert4sim.tokenizers import Tokenizer

    tokenizer = Tokenizer({token: i for i, token in enumerate(TOKENIZER_CASES["vocab"])})
    for first, second, maxlen, pattern, truncate_from, ids, segments in TOKENIZER_CASES["encode"]:
        got = tokenizer.encode(first, second, maxlen=maxlen, pattern=pattern, truncate_from=truncate_from)
        assert got == (ids, segments), (first, second, maxlen, pattern, truncate_from)
    with pytest.raises(ValueError, match="pattern must be 'S\\*E\\*E' or 'S\\*ES\\*E'"):
        tokenizer.encode("今天", pattern="SE")


def test_vocabulary_of_own_symbols_as_bert4keras_takes_it():
    """bert4keras's chess example: a vocabulary without [CLS]/[SEP]/[UNK]; the script sets _token_unk_id."""
    from bert4sim.tokenizers import Tokenizer

    case = TOKENIZER_CASES["own_symbols"]
    tokenizer = Tokenizer(dict(zip(case["symbols"], range(len(case["symbols"])))))
    with pytest.raises(KeyError, match=r"token '\[CLS\]' is not in the vocabulary, which has no \[UNK\]"):
        tokenizer.encode(case["text"])
    tokenizer._token_unk_id = 0
    assert tokenizer.encode(case["text"])[0] == case["ids"]


def test_tokenizer_base_frames_and_encodes_a_subclass():
    from bert4sim.tokenizers import TokenizerBase

    class Characters(TokenizerBase):
        def _tokenize(self, text):
            return list(text)

        def token_to_id(self, token):
            return {"[CLS]": 1, "[SEP]": 2}.get(token, ord(token[0]))

    tokenizer = Characters()
    assert tokenizer.tokenize("ab") == ["[CLS]", "a", "b", "[SEP]"]
    assert tokenizer.encode("ab", "c") == ([1, 97, 98, 2, 99, 2], [0, 0, 0, 0, 1, 1])
    with pytest.raises(NotImplementedError, match="Characters must implement decode"):
        tokenizer.decode([1])
