"""build_transformer_model: numbers vs an independent numpy forward, checkpoints, errors."""
import json
import os

import keras
import numpy as np
import pytest

from bert4sim.checkpoints import read_config, resolve_checkpoint_path, write_checkpoint
from bert4sim.models import Transformer, build_transformer_model, save_checkpoint
from numpy_reference import forward, random_checkpoint_arrays

CONFIG = {
    "vocab_size": 40,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 32,
    "type_vocab_size": 2,
    "hidden_act": "gelu",
}
# Two pairs "[CLS] a [SEP] b [SEP]" with padding, ids 2=[CLS] 3=[SEP].
TOKENS = np.array([[2, 7, 8, 9, 3, 11, 12, 3, 0, 0], [2, 20, 3, 21, 22, 23, 24, 25, 26, 3]])
SEGMENTS = np.array([[0, 0, 0, 0, 0, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1, 1, 1, 1, 1]])


def make_checkpoint(folder, model="bert", with_pool=True, with_mlm=True, config=CONFIG, prefix="bert"):
    arrays = random_checkpoint_arrays(config, model, with_pool, with_mlm, prefix=prefix)
    os.makedirs(folder, exist_ok=True)
    write_checkpoint(os.path.join(folder, "bert_model.ckpt"), arrays)
    with open(os.path.join(folder, "bert_config.json"), "w") as f:
        json.dump(config, f)
    return arrays, os.path.join(folder, "bert_config.json"), os.path.join(folder, "bert_model.ckpt")


def predict(model, tokens=TOKENS, segments=SEGMENTS):
    out = model([tokens, segments], training=False)
    if isinstance(out, (list, tuple)):
        return [keras.ops.convert_to_numpy(o) for o in out]
    return keras.ops.convert_to_numpy(out)


@pytest.mark.parametrize("model_type", ["bert", "roformer"])
@pytest.mark.parametrize("application", ["encoder", "unilm", "lm"])
def test_matches_numpy_reference(tmp_path, model_type, application):
    w, config_path, ckpt = make_checkpoint(str(tmp_path), model_type)
    model = build_transformer_model(config_path, ckpt, model=model_type, application=application,
                                    with_pool="linear", with_mlm=True)
    pooled, probs = predict(model)
    ref_pooled, ref_probs = forward(w, CONFIG, TOKENS, SEGMENTS, model_type, application, "linear", True)
    np.testing.assert_allclose(pooled, ref_pooled, atol=1e-4)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-5)


def test_sequence_output_and_tanh_pooler(tmp_path):
    w, config_path, ckpt = make_checkpoint(str(tmp_path))
    seq = predict(build_transformer_model(config_path, ckpt))
    np.testing.assert_allclose(seq, forward(w, CONFIG, TOKENS, SEGMENTS), atol=1e-4)
    pooled = predict(build_transformer_model(config_path, ckpt, with_pool=True))
    np.testing.assert_allclose(pooled, forward(w, CONFIG, TOKENS, SEGMENTS, with_pool=True), atol=1e-4)
    logits = predict(build_transformer_model(config_path, ckpt, with_mlm="linear"))
    ref = forward(w, CONFIG, TOKENS, SEGMENTS, with_mlm="linear")
    np.testing.assert_allclose(logits, ref, atol=1e-4)


def test_unilm_cls_vector_ignores_the_target_sentence(tmp_path):
    _, config_path, ckpt = make_checkpoint(str(tmp_path), "roformer")
    model = build_transformer_model(config_path, ckpt, model="roformer", application="unilm", with_pool="linear")
    full, _ = predict(model, TOKENS[:1, :8], SEGMENTS[:1, :8])
    source_only, _ = predict(model, TOKENS[:1, :5], SEGMENTS[:1, :5])
    np.testing.assert_allclose(full, source_only, atol=1e-5)


def test_keep_tokens_slices_embedding_and_bias(tmp_path):
    w, config_path, ckpt = make_checkpoint(str(tmp_path))
    keep = [0, 1, 2, 3, 7, 8, 9, 11, 12, 20, 21, 22, 23, 24, 25, 26]
    model = build_transformer_model(config_path, ckpt, application="unilm", with_pool="linear", keep_tokens=keep)
    assert model.get_layer("Embedding-Token").embeddings.shape == (len(keep), 16)
    new_id = {old: new for new, old in enumerate(keep)}
    tokens = np.vectorize(new_id.get)(TOKENS)
    pooled, probs = predict(model, tokens)
    ref_pooled, ref_probs_full = forward(w, CONFIG, TOKENS, SEGMENTS, "bert", "unilm", "linear", "linear")
    np.testing.assert_allclose(pooled, ref_pooled, atol=1e-4)
    logits = ref_probs_full[..., keep]
    ref_probs = np.exp(logits - logits.max(-1, keepdims=True))
    ref_probs /= ref_probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-5)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("MLM-Bias").bias), w["cls/predictions/output_bias"][keep]
    )


@pytest.mark.parametrize("model_type", ["bert", "roformer"])
def test_save_and_reload_round_trip(tmp_path, model_type):
    model = build_transformer_model(model=model_type, application="unilm", with_pool="linear", **CONFIG)
    before = predict(model)
    out = tmp_path / "saved"
    save_checkpoint(model, str(out / "bert_model.ckpt"))
    assert json.load(open(out / "bert_config.json"))["num_hidden_layers"] == 2
    reloaded = build_transformer_model(str(out / "bert_config.json"), str(out), model=model_type,
                                       application="unilm", with_pool="linear")
    after = predict(reloaded)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def test_keras_file_round_trip_and_from_model(tmp_path):
    model = build_transformer_model(model="roformer", application="unilm", with_pool="linear", **CONFIG)
    path = str(tmp_path / "m.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    for a, b in zip(predict(model), predict(restored)):
        np.testing.assert_array_equal(a, b)
    view = Transformer.from_model(restored)
    assert (view.model_type, view.application, view.with_pool) == ("roformer", "unilm", "linear")
    assert len(view.blocks) == 2 and view.position_embedding is None


def test_return_builder_object(tmp_path):
    t = build_transformer_model(return_keras_model=False, with_pool=True, **CONFIG)
    assert isinstance(t, Transformer) and isinstance(t.model, keras.Model)
    assert t.config["vocab_size"] == 40 and len(t.blocks) == 2 and t.pooler is not None
    assert set(t.variable_mapping()) >= {"embeddings/word_embeddings", "pooler/dense/kernel"}


def test_roformer_prefix_detected(tmp_path):
    w, config_path, ckpt = make_checkpoint(str(tmp_path), "roformer", prefix="roformer")
    model = build_transformer_model(config_path, ckpt, model="roformer", with_pool=True, with_mlm=True)
    pooled, _ = predict(model)
    ref, _ = forward(w, CONFIG, TOKENS, SEGMENTS, "roformer", "encoder", True, True, prefix="roformer")
    np.testing.assert_allclose(pooled, ref, atol=1e-4)


# ---- errors a user can act on ------------------------------------------------------------


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found: .*nope.json"):
        build_transformer_model(str(tmp_path / "nope.json"))


def test_config_key_missing(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps({k: v for k, v in CONFIG.items() if k != "num_attention_heads"}))
    with pytest.raises(KeyError, match="bert_config.json lacks required key.*num_attention_heads"):
        build_transformer_model(str(path))


def test_config_not_json(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text("{vocab_size: 3")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_config(str(path))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*bert_model.ckpt"):
        build_transformer_model(checkpoint_path=str(tmp_path / "bert_model.ckpt"), **CONFIG)
    with pytest.raises(FileNotFoundError, match="no TF checkpoint"):
        resolve_checkpoint_path(str(tmp_path))


def test_missing_variable_named(tmp_path):
    w = random_checkpoint_arrays(CONFIG)
    del w["bert/encoder/layer_1/output/dense/bias"]
    write_checkpoint(str(tmp_path / "bert_model.ckpt"), w)
    with pytest.raises(ValueError, match="bert/encoder/layer_1/output/dense/bias is missing"):
        build_transformer_model(checkpoint_path=str(tmp_path / "bert_model.ckpt"), **CONFIG)


def test_missing_pooler_needs_opt_in(tmp_path):
    w, config_path, ckpt = make_checkpoint(str(tmp_path), with_pool=False, with_mlm=False)
    with pytest.raises(ValueError, match="bert/pooler/dense/kernel is missing.*allow_missing_heads=True"):
        build_transformer_model(config_path, ckpt, with_pool=True)
    with pytest.warns(UserWarning, match="bert/pooler/dense/kernel"):
        model = build_transformer_model(config_path, ckpt, with_pool=True, allow_missing_heads=True)
    assert predict(model).shape == (2, 16)


def test_shape_mismatch_names_both_shapes(tmp_path):
    _, _, ckpt = make_checkpoint(str(tmp_path))
    config = dict(CONFIG, intermediate_size=48)
    with pytest.raises(ValueError, match=r"layer_0/intermediate/dense/kernel: checkpoint has \(16, 32\), "
                                         r"model expects \(16, 48\)"):
        build_transformer_model(checkpoint_path=ckpt, **config)


def test_keep_tokens_out_of_range(tmp_path):
    _, config_path, ckpt = make_checkpoint(str(tmp_path))
    with pytest.raises(ValueError, match="keep_tokens index 40 is out of range .*40 rows"):
        build_transformer_model(config_path, ckpt, keep_tokens=[0, 1, 40])


def test_bad_model_and_application_names():
    with pytest.raises(ValueError, match="model must be one of"):
        build_transformer_model(model="gpt", **CONFIG)
    with pytest.raises(ValueError, match="application must be one of"):
        build_transformer_model(application="seq2seq", **CONFIG)
    with pytest.raises(ValueError, match="not a multiple of num_attention_heads"):
        build_transformer_model(**dict(CONFIG, num_attention_heads=3))


def test_from_model_rejects_foreign_model():
    inputs = keras.Input((3,))
    with pytest.raises(ValueError, match="not built by bert4sim"):
        Transformer.from_model(keras.Model(inputs, keras.layers.Dense(2)(inputs)))
