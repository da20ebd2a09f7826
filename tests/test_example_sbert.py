"""examples/sbert.py end to end, one micro run per objective on the shipped data."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import sbert  # noqa: E402


@pytest.mark.parametrize("objective", sbert.OBJECTIVES)
def test_micro_run_lowers_loss_and_raises_held_apart_spearman(objective, tmp_path, capsys):
    history, before, after = sbert.main(["--micro", "--objective", objective, "--output", str(tmp_path)])
    losses = history.history["loss"]
    assert losses[-1] < losses[0], losses
    assert after["spearman"] > before["spearman"], (before, after)
    assert len(history.history["sts_dev_spearman"]) == 6  # the dev callback logged every epoch
    printed = capsys.readouterr().out
    assert "held-apart before training" in printed and "held-apart after training" in printed
    if objective != "cosent":
        return
    # the default objective's outputs: a Google checkpoint and a SimilarityModel folder with an index
    from bert4sim.evaluation import evaluate_sts, load_retrieval_set, read_scored_pairs
    from bert4sim.similarity import SimilarityModel

    sim = SimilarityModel.load(str(tmp_path / "similarity_model"))
    test = read_scored_pairs(os.path.join(sbert.DATA, "sts_test.tsv"))
    assert evaluate_sts(sim.encode, *test)["spearman"] == pytest.approx(after["spearman"], abs=1e-5)
    query = "信用卡怎么注销"
    hits = sim.most_similar(query, topn=3)  # the saved folder carries its retrieval index
    assert len(hits) == 3 and hits[0][1] >= hits[1][1] >= hits[2][1]
    _, corpus, _ = load_retrieval_set(os.path.join(sbert.DATA, "retrieval_dev.json"))
    assert sorted(sim.index.texts) == sorted(corpus.values())
    checkpoint = SimilarityModel.from_checkpoint(str(tmp_path / "encoder"), pooling="mean", maxlen=32)
    np.testing.assert_allclose(checkpoint.encode([query]), sim.encode([query]), atol=1e-5)


def test_bad_data_file_is_named(tmp_path):
    (tmp_path / "sts_train.tsv").write_text("一\t二\t5\n三\t四\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"sts_train.tsv:2: expected 3 tab-separated fields, got 2"):
        sbert.training_rows("cosent", str(tmp_path), np.random.default_rng(0))
