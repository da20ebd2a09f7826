"""Pooling layer and build_sentence_encoder: numpy equivalence, padding excluded, persistence, errors."""
import keras
import numpy as np
import pytest

from bert4sim.heads import Pooling
from bert4sim.models import build_transformer_model, save_checkpoint
from bert4sim.sbert import build_sentence_encoder

RNG = np.random.default_rng(0)
SEQUENCE = RNG.standard_normal((3, 6, 4)).astype("float32")
TOKENS = np.array([[2, 7, 8, 3, 0, 0], [2, 9, 3, 0, 0, 0], [2, 5, 6, 7, 8, 3]], "int32")


def run(model, ids):
    """Eager call (tracing a Keras predict function per tiny model costs more than the call)."""
    return keras.ops.convert_to_numpy(model([ids, np.zeros_like(ids)], training=False))


def np_pool(mode, sequence, tokens):
    rows = []
    for hidden, ids in zip(sequence, tokens):
        valid = hidden[ids != 0]
        rows.append({"cls": hidden[0], "mean": valid.mean(0), "max": valid.max(0)}[mode])
    return np.stack(rows)


@pytest.mark.parametrize("mode", Pooling.MODES)
@pytest.mark.parametrize("normalize", [False, True])
def test_pooling_matches_numpy(mode, normalize):
    # padded positions hold large values: any leak into mean/max would show
    sequence = np.where((TOKENS == 0)[..., None], 100.0, SEQUENCE).astype("float32")
    expected = np_pool(mode, sequence, TOKENS)
    if normalize:
        expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    got = keras.ops.convert_to_numpy(Pooling(mode, normalize=normalize)([sequence, TOKENS]))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_max_pooling_with_all_negative_values_ignores_padding():
    sequence = -np.abs(SEQUENCE) - 1.0
    got = keras.ops.convert_to_numpy(Pooling("max")([sequence, TOKENS]))
    np.testing.assert_allclose(got, np_pool("max", sequence, TOKENS), rtol=1e-6)


def test_pooling_config_round_trip_and_bad_mode():
    layer = Pooling("max", normalize=True, name="Pooling")
    clone = Pooling.from_config(layer.get_config())
    assert (clone.mode, clone.normalize, clone.name) == ("max", True, "Pooling")
    with pytest.raises(ValueError, match="Pooling mode must be one of .* got 'sum'"):
        Pooling("sum")


@pytest.fixture(scope="module")
def bert():
    return build_transformer_model(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=32, return_keras_model=False)


@pytest.mark.parametrize("mode", Pooling.MODES)
def test_encoder_vectors_do_not_change_with_extra_padding(bert, mode):
    encoder = build_sentence_encoder(bert, mode)
    short = np.array([[2, 11, 12, 13, 3], [2, 14, 3, 0, 0]], "int32")
    padded = np.pad(short, ((0, 0), (0, 6)))
    a = run(encoder, short)
    b = run(encoder, padded)
    np.testing.assert_allclose(a, b, atol=1e-5)
    # and the encoder pools the transformer's own last hidden states
    sequence = run(bert.model, padded)
    np.testing.assert_allclose(b, np_pool(mode, sequence, padded), atol=1e-5)


def test_encoder_saved_and_reloaded_gives_same_vectors(bert, tmp_path):
    encoder = build_sentence_encoder(bert, "mean", normalize=True)
    ids = np.array([[2, 11, 12, 3, 0]], "int32")
    path = str(tmp_path / "encoder.keras")
    encoder.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(run(reloaded, ids), run(encoder, ids), atol=1e-6)


def test_encoder_from_a_checkpoint_folder(bert, tmp_path):
    save_checkpoint(bert, str(tmp_path / "bert_model.ckpt"))
    from_folder = build_sentence_encoder(str(tmp_path), "cls")
    ids = np.array([[2, 11, 12, 3]], "int32")
    np.testing.assert_allclose(run(from_folder, ids), run(build_sentence_encoder(bert, "cls"), ids), atol=1e-5)


def test_build_sentence_encoder_errors(bert, tmp_path):
    with pytest.raises(ValueError, match="pooling must be 'cls', 'mean', 'max' or 'pooler', got 'first'"):
        build_sentence_encoder(bert, "first")
    with pytest.raises(ValueError, match="pooling='pooler' needs a model built with with_pool"):
        build_sentence_encoder(bert, "pooler")
    with pytest.raises(FileNotFoundError, match="bert_config.json not found"):
        build_sentence_encoder(str(tmp_path), "mean")
    with pytest.raises(TypeError, match="got int"):
        build_sentence_encoder(3, "mean")
