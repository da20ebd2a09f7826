"""Evaluation metrics against hand-computed cases."""
import numpy as np
import pytest

from bert4sim.evaluation import (EvaluationCallback, evaluate_retrieval, evaluate_sts, pearson, rankdata,
                                 read_scored_pairs, retrieval_metrics, spearman)


def test_rankdata_average_ties():
    np.testing.assert_array_equal(rankdata([10, 20, 20, 30]), [1, 2.5, 2.5, 4])
    np.testing.assert_array_equal(rankdata([3, 3, 3]), [2, 2, 2])


def test_spearman_perfect_reversed_and_ties():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties: ranks x=[1,2.5,2.5,4], y=[1,2,3,4] -> pearson of the ranks, computed by hand = 0.9486832981
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486832981, abs=1e-9)
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(0.9933992678, abs=1e-9)
    with pytest.raises(ValueError, match="undefined for a constant"):
        spearman([1, 1, 1], [1, 2, 3])


def test_retrieval_metrics_hand_computed():
    ranked = {"q1": ["a", "b", "c"], "q2": ["x", "y", "z"], "q3": ["m"]}
    relevant = {"q1": ["b", "c"], "q2": ["x"], "q3": ["n"]}
    metrics = retrieval_metrics(ranked, relevant, ks=(1, 2))
    assert metrics["recall@1"] == pytest.approx((0 + 1 + 0) / 3)
    assert metrics["recall@2"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert metrics["mrr@10"] == pytest.approx((1 / 2 + 1 + 0) / 3)


def test_evaluate_sts_and_retrieval_with_a_toy_encoder(tmp_path):
    table = {"a": [1, 0], "b": [0.9, 0.1], "c": [0, 1], "d": [0.2, 0.8]}
    encode = lambda texts: np.array([table[t] for t in texts], float)  # noqa: E731
    path = tmp_path / "sts.tsv"
    path.write_text("a\tb\t5\na\tc\t0\nc\td\t4\nb\td\t1\n")
    result = evaluate_sts(encode, *read_scored_pairs(str(path)))
    assert result["spearman"] == pytest.approx(1.0)
    metrics = evaluate_retrieval(encode, {"q": "a"}, {"d1": "c", "d2": "b"}, {"q": ["d2"]})
    assert metrics["recall@1"] == 1.0 and metrics["mrr@10"] == 1.0
    callback = EvaluationCallback(lambda: {"spearman": 0.5}, prefix="dev_")
    logs = {}
    callback.on_epoch_end(0, logs)
    assert logs == {"dev_spearman": 0.5}


def test_pair_file_errors(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("a\tb\t5\na\tb\n")
    with pytest.raises(ValueError, match="bad.tsv:2: expected 3 tab-separated fields, got 2"):
        read_scored_pairs(str(path))
    path.write_text("a\tb\thigh\n")
    with pytest.raises(ValueError, match="bad.tsv:1: score 'high' is not a number"):
        read_scored_pairs(str(path))
