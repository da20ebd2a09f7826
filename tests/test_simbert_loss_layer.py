"""SimBERTLoss / simbert_training_model: SimBERT's loss formulas, compiled into a model bert4keras-style."""
import os

import keras
import numpy as np
import pytest

from bert4sim.losses import seq2seq_loss, similarity_loss
from bert4sim.simbert import SimBERTLoss, simbert_training_model
from bert4sim.models import build_transformer_model

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKPOINT = os.path.join(HERE, "fixtures", "tiny_simbert")
TOKENS = np.array([[2, 17, 18, 3, 21, 22, 3, 0], [2, 21, 22, 3, 17, 18, 3, 0],
                   [2, 40, 41, 42, 3, 50, 3, 0], [2, 50, 3, 40, 41, 42, 3, 0]], "int32")
SEGMENTS = np.array([[0, 0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 1, 1, 1, 0],
                     [0, 0, 0, 0, 0, 1, 1, 0], [0, 0, 0, 1, 1, 1, 1, 0]], "int32")


def formula_loss(bert, token_ids, segment_ids):
    """SimBERT's loss computed from the model's own outputs with the formulas of bert4sim.losses."""
    pooled, sequence = keras.Model(bert.model.inputs, [bert.model.outputs[0], bert.blocks[-1].output])(
        [token_ids, segment_ids], training=False)
    logits = bert.mlm_logits(sequence)
    return float(seq2seq_loss(token_ids, segment_ids, logits)) + float(similarity_loss(pooled))


def tiny_bert():
    return build_transformer_model(os.path.join(CHECKPOINT, "bert_config.json"),
                                   os.path.join(CHECKPOINT, "bert_model.ckpt"), application="unilm",
                                   with_pool="linear", dropout_rate=0.0, attention_dropout_rate=0.0,
                                   return_keras_model=False)


@pytest.mark.parametrize("full_sequence", [False, True])
def test_loss_layer_model_logs_what_the_trainer_computes(full_sequence):
    bert = tiny_bert()
    expected = formula_loss(bert, TOKENS, SEGMENTS)
    model = simbert_training_model(bert, full_sequence=full_sequence)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    logs = model.evaluate([TOKENS, SEGMENTS], batch_size=4, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["loss"] == pytest.approx(logs["seq2seq_loss"] + logs["similarity_loss"], rel=1e-5)
    vectors = model.predict([TOKENS, SEGMENTS], verbose=0)
    np.testing.assert_allclose(vectors, bert.model.predict([TOKENS, SEGMENTS], verbose=0)[0], rtol=1e-5, atol=1e-6)


def test_training_moves_the_mlm_head_and_the_backbone():
    bert = tiny_bert()
    model = simbert_training_model(bert)
    head, embedding = bert.mlm_transform.weights[0], bert.token_embedding.weights[0]
    before = [head.numpy().copy(), embedding.numpy().copy(), bert.mlm_bias.bias.numpy().copy()]
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit([TOKENS, SEGMENTS], batch_size=4, epochs=3, verbose=0, shuffle=False).history
    assert history["loss"][-1] < history["loss"][0]
    after = [head.numpy(), embedding.numpy(), bert.mlm_bias.bias.numpy()]
    assert all(not np.allclose(a, b) for a, b in zip(before, after))


def test_distillation_variant_and_config():
    teacher_bert = tiny_bert()
    teacher = keras.Model(teacher_bert.model.inputs, teacher_bert.model.outputs[0])
    model = simbert_training_model(tiny_bert(), teacher=teacher)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    logs = model.evaluate([TOKENS, SEGMENTS, TOKENS, SEGMENTS], batch_size=4, verbose=0, return_dict=True)
    assert "distillation_loss" in logs and logs["distillation_loss"] >= 0
    layer = SimBERTLoss(20.0, 50.0, True, output_axis=3)
    assert SimBERTLoss.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(ValueError, match="unilm"):
        simbert_training_model(build_transformer_model(os.path.join(CHECKPOINT, "bert_config.json"),
                                                       return_keras_model=False))
