"""bert4sim equals bert4keras 0.11.5 on SimBERT- and RoFormer-Sim-layout checkpoints.

The reference outputs were computed by bert4keras itself (tests/fixtures/make_bert4keras_fixture.py,
run in an old-TensorFlow virtualenv) on the tiny checkpoints committed beside it.
"""
import os

import numpy as np
import pytest

from bert4sim.models import build_transformer_model

HERE = os.path.join(os.path.dirname(__file__), "fixtures")
REFERENCE = np.load(os.path.join(HERE, "bert4keras_reference.npz"))


@pytest.mark.parametrize("name,model", [("tiny_simbert", "bert"), ("tiny_roformer_sim", "roformer")])
def test_unilm_pooled_and_mlm_match_bert4keras(name, model):
    folder = os.path.join(HERE, name)
    config = os.path.join(folder, "bert_config.json")
    tokens, segments = REFERENCE["token_ids"], REFERENCE["segment_ids"]
    pooled, probas = build_transformer_model(config, folder, model=model, application="unilm",
                                             with_pool="linear").predict([tokens, segments], verbose=0)
    np.testing.assert_allclose(pooled, REFERENCE[f"{name}_pooled"], atol=1e-4)
    np.testing.assert_allclose(probas, REFERENCE[f"{name}_mlm"], atol=1e-5)
    tanh = build_transformer_model(config, folder, model=model, with_pool=True).predict([tokens, segments], verbose=0)
    np.testing.assert_allclose(tanh, REFERENCE[f"{name}_encoder_pooled_tanh"], atol=1e-4)


@pytest.mark.parametrize("name,model", [("tiny_simbert", "bert"), ("tiny_roformer_sim", "roformer")])
def test_keep_tokens_matches_bert4keras(name, model):
    folder = os.path.join(HERE, name)
    kept = build_transformer_model(os.path.join(folder, "bert_config.json"), folder, model=model,
                                   application="unilm", with_pool="linear",
                                   keep_tokens=list(REFERENCE["keep_tokens"]))
    pooled, probas = kept.predict([REFERENCE["token_ids"] // 2, REFERENCE["segment_ids"]], verbose=0)
    np.testing.assert_allclose(pooled, REFERENCE[f"{name}_keep_pooled"], atol=1e-4)
    np.testing.assert_allclose(probas, REFERENCE[f"{name}_keep_mlm"], atol=1e-5)
