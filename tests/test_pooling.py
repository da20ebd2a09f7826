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


def _vocab(folder, size=40):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"t{i}" for i in range(size - 5)]
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")


def test_encoders_are_saved_with_their_pooling_and_loaded_with_it(tmp_path):
    """bert_config.json records the pooling an encoder was trained with; from_checkpoint picks it by default."""
    import json

    from bert4sim.retromae import build_retromae_model
    from bert4sim.similarity import SimilarityModel

    sizes = dict(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ids = np.array([[2, 11, 12, 3]], "int32")
    # Sentence-BERT: mean pooling, no pooler.
    bert = build_transformer_model(return_keras_model=False, **sizes)
    encoder = build_sentence_encoder(bert, "mean")
    save_checkpoint(bert, str(tmp_path / "sbert" / "bert_model.ckpt"))
    _vocab(tmp_path / "sbert")
    assert json.loads((tmp_path / "sbert" / "bert_config.json").read_text())["pooling"] == "mean"
    sim = SimilarityModel.from_checkpoint(str(tmp_path / "sbert"))
    assert sim.encoder.get_layer("Pooling").mode == "mean"
    np.testing.assert_allclose(run(sim.encoder, ids), run(encoder, ids), atol=1e-5)
    # RetroMAE: the encoder carries a pooler it never trains; its sentence vector is [CLS].
    retromae = build_retromae_model(with_pool=True, return_keras_model=False, **sizes)
    retromae.save_encoder(str(tmp_path / "retromae" / "bert_model.ckpt"))
    _vocab(tmp_path / "retromae")
    sim = SimilarityModel.from_checkpoint(str(tmp_path / "retromae"), with_seq2seq=False)
    assert sim.encoder.get_layer("Pooling").mode == "cls"
    assert "Pooler-Dense" not in [layer.name for layer in sim.encoder.layers]
    explicit = SimilarityModel.from_checkpoint(str(tmp_path / "retromae"), pooling="pooler", with_seq2seq=False)
    assert "Pooler-Dense" in [layer.name for layer in explicit.encoder.layers]  # asked for: given
    # A sentence encoder saved as a Keras model records its Pooling layer too.
    save_checkpoint(build_sentence_encoder(build_transformer_model(return_keras_model=False, **sizes), "max"),
                    str(tmp_path / "keras_model" / "bert_model.ckpt"))
    assert json.loads((tmp_path / "keras_model" / "bert_config.json").read_text())["pooling"] == "max"
    # No record and no pooler: say what to pass, do not guess.
    plain = build_transformer_model(**sizes)
    save_checkpoint(plain, str(tmp_path / "plain" / "bert_model.ckpt"))
    _vocab(tmp_path / "plain")
    with pytest.raises(ValueError, match=r"has no pooler \(bert/pooler/dense\): choose pooling 'cls', 'mean' or 'max'"):
        SimilarityModel.from_checkpoint(str(tmp_path / "plain"))
