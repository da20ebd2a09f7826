"""bert4sim's build_transformer_model options and layers give bert4keras 0.11.5's numbers on the same weights.

Reference values: tests/fixtures/make_bert4keras_surface_fixture.py, run with bert4keras 0.11.5 (its checkpoints,
inputs, random weights and outputs are in tests/fixtures/bert4keras_surface/).
"""
import json
import os

import keras
import numpy as np
import pytest

from bert4sim import layers as L
from bert4sim.backend import K
from bert4sim.models import build_transformer_model

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "bert4keras_surface")
REFERENCE = np.load(os.path.join(HERE, "reference.npz"))
with open(os.path.join(HERE, "cases.json"), encoding="utf-8") as _f:
    CASES = json.load(_f)
MODEL_CASES = sorted(name for name, case in CASES.items() if "checkpoint" in case)


def _norm_layer(model, bert4keras_name):
    """bert4sim's LayerNorm for bert4keras's LayerNorm layer name."""
    if bert4keras_name == "MLM-Norm":
        return model.get_layer("MLM-Transform").norm
    if bert4keras_name.startswith("Transformer-"):
        _, index, kind = bert4keras_name.split("-", 2)
        block = model.get_layer(f"Transformer-{index}")
        return block.attention_norm if kind.startswith("MultiHeadSelfAttention") else block.output_norm
    return model.get_layer(bert4keras_name)


def build_case(name):
    case = CASES[name]
    options = {k: ([tuple(i) if isinstance(i, list) and len(i) == 2 and isinstance(i[0], list) else i
                    for i in v] if k == "compound_tokens" else v) for k, v in case["options"].items()}
    folder = os.path.join(HERE, case["checkpoint"])
    if case["conditional"]:
        condition = keras.Input(shape=(6,), name="Input-Condition")
        options.update(layer_norm_cond=condition, additional_input_layers=condition)
    model = build_transformer_model(os.path.join(folder, "bert_config.json"), os.path.join(folder, "bert_model.ckpt"),
                                    **options)
    for key, (layer_name, role) in case["cond_weights"].items():
        getattr(_norm_layer(model, layer_name), role).kernel.assign(REFERENCE[key])
    return model, [REFERENCE[f"inputs/{i}"] for i in case["inputs"]]


@pytest.mark.parametrize("name", MODEL_CASES)
def test_model_outputs_and_mask_match_bert4keras(name):
    model, inputs = build_case(name)
    outputs = model.predict(inputs, verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    assert len(outputs) == CASES[name]["outputs"]
    for i, output in enumerate(outputs):
        np.testing.assert_allclose(output, REFERENCE[f"{name}/output_{i}"], atol=2e-5, err_msg=f"output {i}")
    if f"{name}/mask" in REFERENCE:
        called = model(inputs)
        mask = (called[-1] if isinstance(called, (list, tuple)) else called)._keras_mask  # the Keras mask
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(mask), REFERENCE[f"{name}/mask"])


def test_lm_option_means_the_mlm_head_and_ignores_with_mlm_false():
    np.testing.assert_array_equal(REFERENCE["bert_lm_with_mlm_false/output_0"], REFERENCE["bert_lm/output_0"])
    model, inputs = build_case("bert_lm_with_mlm_false")
    assert model.output.shape[-1] == 40


def test_fresh_conditional_model_equals_the_plain_one():
    np.testing.assert_allclose(REFERENCE["bert_lm_cond_fresh/output_0"], REFERENCE["bert_lm/output_0"], atol=1e-6)
    model, inputs = build_case("bert_lm_cond_fresh")
    assert [t.name for t in model.inputs] == ["Input-Token", "Input-Segment", "Input-Condition"]


def test_language_model_loss_weights_by_the_output_mask():
    """task_language_model.py's loss reads ``mask[1]``: a mean over real tokens, as under bert4keras."""
    from bert4sim.layers import Loss

    class CrossEntropy(Loss):
        def compute_loss(self, inputs, mask=None):
            y_true, y_pred = inputs
            y_mask = 1.0 if mask[1] is None else K.cast(mask[1], K.floatx())[:, 1:]
            loss = K.sparse_categorical_crossentropy(y_true[:, 1:], y_pred[:, :-1])
            return K.sum(loss * y_mask) / K.sum(y_mask)

    folder = os.path.join(HERE, "bert")
    model = build_transformer_model(os.path.join(folder, "bert_config.json"), os.path.join(folder, "bert_model.ckpt"),
                                    application="lm")
    train = keras.Model(model.inputs, CrossEntropy(1)([model.inputs[0], model.output]))
    train.compile(optimizer="sgd")
    loss = train.evaluate([REFERENCE["inputs/token_ids"], REFERENCE["inputs/segment_ids"]], verbose=0)
    np.testing.assert_allclose(loss, REFERENCE["lm_loss"], rtol=1e-5)


def test_conditional_norm_refuses_a_per_token_condition():
    folder = os.path.join(HERE, "bert")
    condition = keras.Input(shape=(None, 6))
    with pytest.raises(ValueError, match=r"layer_norm_cond must be \[batch, features\]"):
        build_transformer_model(os.path.join(folder, "bert_config.json"), application="lm", layer_norm_cond=condition,
                                additional_input_layers=condition)


def test_reload_reuses_build_time_vocabulary_changes():
    """bert4keras's builder remembers keep_tokens / compound_tokens: a later load_weights_from_checkpoint uses them."""
    name = "bert_keep_compound_mlm"
    case, folder = CASES[name], os.path.join(HERE, "bert")
    options = dict(case["options"], compound_tokens=[[5, 6], ([7], [1.0])])
    bert = build_transformer_model(os.path.join(folder, "bert_config.json"), return_keras_model=False, **options)
    bert.load_weights_from_checkpoint(os.path.join(folder, "bert_model.ckpt"))
    inputs = [REFERENCE[f"inputs/{i}"] for i in case["inputs"]]
    np.testing.assert_allclose(bert.model.predict(inputs, verbose=0), REFERENCE[f"{name}/output_0"], atol=2e-5)


# --- single layers ---

def _weights(name):
    weights, i = [], 0
    while f"layers/{name}/weight_{i}" in REFERENCE:
        weights.append(REFERENCE[f"layers/{name}/weight_{i}"])
        i += 1
    return weights


LAYER_CASES = {
    "ln_plain": lambda: L.LayerNormalization(epsilon=1e-12),
    "ln_default_eps": lambda: L.LayerNormalization(),
    "ln_rms": lambda: L.LayerNormalization(zero_mean=False, offset=False, epsilon=1e-12),
    "ln_no_variance": lambda: L.LayerNormalization(unit_variance=False, scale=False),
    "ln_cond": lambda: L.LayerNormalization(conditional=True, epsilon=1e-12),
    "ln_cond_hidden": lambda: L.LayerNormalization(conditional=True, hidden_units=3, hidden_activation="swish",
                                                   epsilon=1e-12),
    "scale_offset": lambda: L.ScaleOffset(),
    "scale_offset_const": lambda: L.ScaleOffset(scale=2.0, offset=0.5),
    "scale_offset_cond": lambda: L.ScaleOffset(conditional=True, hidden_units=3),
    **{f"position_{m}": (lambda m=m: L.PositionEmbedding(10, 6, merge_mode=m)) for m in ("add", "mul", "zero", "concat")},
    **{f"sinusoidal_{m}": (lambda m=m: L.SinusoidalPositionEmbedding(6, merge_mode=m))
       for m in ("add", "mul", "zero", "concat")},
    "position_custom": lambda: L.PositionEmbedding(10, 6, custom_position_ids=True),
    "position_custom_concat": lambda: L.PositionEmbedding(10, 6, merge_mode="concat", custom_position_ids=True),
    "sinusoidal_custom": lambda: L.SinusoidalPositionEmbedding(6, custom_position_ids=True),
    "position_hierarchical": lambda: L.PositionEmbedding(4, 6, hierarchical=True),
    "position_hierarchical_custom": lambda: L.PositionEmbedding(4, 6, hierarchical=0.2, custom_position_ids=True),
    "mha_plain": lambda: L.MultiHeadAttention(heads=2, head_size=4, out_dim=8),
    "mha_bool_bias": lambda: L.MultiHeadAttention(heads=2, head_size=4, out_dim=8),
    "mha_float_bias": lambda: L.MultiHeadAttention(heads=2, head_size=4, out_dim=8),
    "mha_rotary": lambda: L.MultiHeadAttention(heads=2, head_size=4, out_dim=8),
    "mha_rotary_bias": lambda: L.MultiHeadAttention(heads=2, head_size=4, out_dim=8),
    "mha_key_size_scores": lambda: L.MultiHeadAttention(heads=2, head_size=4, key_size=3, out_dim=8,
                                                        return_attention_scores=True),
}


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_matches_bert4keras(name):
    case = CASES[f"layer:{name}"]
    inputs = [REFERENCE[k] for k in case["inputs"]]
    layer = LAYER_CASES[name]()
    argument = inputs if len(inputs) > 1 else inputs[0]
    layer(argument, **case["call"])
    weights = _weights(name)
    assert len(layer.weights) == len(weights)
    for variable, value in zip(layer.weights, weights):
        variable.assign(value)
    outputs = layer(argument, **case["call"])
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    for i, output in enumerate(outputs):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(output), REFERENCE[f"layers/{name}/output_{i}"],
                                   atol=1e-5, err_msg=f"output {i}")
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_masked_pooling_and_concatenate1d_follow_the_keras_mask():
    token_in, other_in = keras.Input((None,), dtype="int32"), keras.Input((None, 4))
    embedded = keras.layers.Embedding(6, 4, mask_zero=True)
    hidden = embedded(token_in)
    joined = L.Concatenate1D()([hidden, other_in])
    model = keras.Model([token_in, other_in], [L.GlobalAveragePooling1D()(hidden), L.GlobalMaxPooling1D()(hidden),
                                               joined])
    embedded.set_weights([REFERENCE["layers/table"]])
    outputs = model.predict([REFERENCE["layers/ids"], REFERENCE["layers/other"]], verbose=0)
    for key, output in zip(("gap", "gmp", "concat1d"), outputs):
        np.testing.assert_allclose(output, REFERENCE[f"layers/{key}/output_0"], atol=1e-6)
    mask = L.Concatenate1D().compute_mask([np.zeros((2, 5, 4)), np.zeros((2, 2, 4))],
                                          [REFERENCE["layers/ids"] != 0, None])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(mask), REFERENCE["layers/concat1d/mask"])


def test_batch_split_and_concat():
    batch = REFERENCE["layers/batch"]
    for name, parts in (("batchsplit_2", 2), ("batchsplit_1_3", [1, 3])):
        pieces = L.BatchSplit(parts)(batch)
        for i, piece in enumerate(pieces):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(piece), REFERENCE[f"layers/{name}/output_{i}"])
    joined = L.BatchConcat()([batch[:2], batch[2:]])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(joined), REFERENCE["layers/batchconcat/output_0"])
    with pytest.raises(ValueError, match="BatchSplit parts must be"):
        L.BatchSplit(0)


def test_embedding_dense_mode_and_first_position_mask():
    embedding = L.Embedding(7, 4, mask_zero=True)
    embedding(REFERENCE["layers/ids"])
    embedding.set_weights([REFERENCE["layers/table7"]])
    dense = embedding(REFERENCE["layers/embedding_dense/input"], mode="dense")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(dense), REFERENCE["layers/embedding_dense/output_0"],
                               atol=1e-6)
    mask = embedding.compute_mask(REFERENCE["layers/embedding_mask/ids"])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(mask), REFERENCE["layers/embedding_mask/mask"])


def test_bert4keras_attention_refuses_relative_positions_of_other_families():
    from bert4sim.unprovided import NotProvidedError

    q = REFERENCE["layers/q"]
    with pytest.raises(NotProvidedError, match="NEZHA's relative positions are not provided"):
        L.MultiHeadAttention(heads=2, head_size=4)([q, q, q, np.zeros((5, 5, 4), "float32")], p_bias="typical_relative")


@pytest.mark.parametrize("name", ["bert_lm_cond_hidden", "roformer_custom_position_ids", "bert_e8_pool_mlm",
                                  "bert_residual_attention", "bert_nsp", "bert_segment0_lm"])
def test_models_with_new_options_save_and_load(tmp_path, name):
    model, inputs = build_case(name)
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    for got, want in zip(*(m.predict(inputs, verbose=0) if len(m.outputs) > 1 else [m.predict(inputs, verbose=0)]
                           for m in (restored, model))):
        np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("name", ["bert_e8_pool_mlm", "bert_nsp", "roformer_lm"])
def test_google_checkpoint_round_trip_of_new_options(tmp_path, name):
    """save_checkpoint writes the new variables (embedding mapping, NSP head); the result rebuilds the model."""
    from bert4sim.models import save_checkpoint

    model, inputs = build_case(name)
    save_checkpoint(model, str(tmp_path / "bert_model.ckpt"))
    options = {k: v for k, v in CASES[name]["options"].items()}
    rebuilt = build_transformer_model(str(tmp_path / "bert_config.json"), str(tmp_path / "bert_model.ckpt"), **options)
    for got, want in zip(*(m.predict(inputs, verbose=0) if len(m.outputs) > 1 else [m.predict(inputs, verbose=0)]
                           for m in (rebuilt, model))):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_roformer_epsilon_is_bert4keras_unless_the_config_says_otherwise():
    """RoFormer's embedding / block norms use bert4keras's 1e-7; a transformers RoFormer (1e-12) keeps its own."""
    from bert4sim import transformers_format

    assert transformers_format.DEFAULT_LAYER_NORM_EPSILON == {"bert": L.LAYER_NORM_EPSILON,
                                                             "roformer": L.ROFORMER_LAYER_NORM_EPSILON}
    folder = os.path.join(HERE, "roformer")
    bert4keras_like = build_transformer_model(os.path.join(folder, "bert_config.json"), model="roformer",
                                              with_mlm=True, return_keras_model=False)
    assert bert4keras_like.blocks[0].layer_norm_epsilon == 1e-7 and bert4keras_like.embedding_norm.epsilon == 1e-7
    assert bert4keras_like.mlm_transform.layer_norm_epsilon == 1e-12
    config = transformers_format.google_config({"model_type": "roformer", "vocab_size": 40, "hidden_size": 16,
                                                "num_hidden_layers": 1, "num_attention_heads": 2,
                                                "intermediate_size": 32, "layer_norm_eps": 1e-12})
    from_transformers = build_transformer_model(with_mlm=True, return_keras_model=False, **config)
    assert from_transformers.blocks[0].layer_norm_epsilon == 1e-12
    assert from_transformers.mlm_transform.layer_norm_epsilon == 1e-12
    back = transformers_format.transformers_config(bert4keras_like.config, "roformer", "RoFormerModel")
    assert back["layer_norm_eps"] == 1e-7
