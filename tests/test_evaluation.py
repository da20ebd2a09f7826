"""Evaluation metrics against hand-computed cases."""
import numpy as np
import pytest

from bert4sim.evaluation import (EvaluationCallback, evaluate_retrieval, evaluate_sts, pearson, rankdata,
                                 load_retrieval_set, read_scored_pairs, retrieval_metrics, spearman)


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


def test_spearman_ties_on_both_sides_and_all_tied_ranks():
    # x ranks [1.5, 1.5, 3, 4], y ranks [1, 2.5, 2.5, 4]: centred [-1, -1, .5, 1.5] and [-1.5, 0, 0, 1.5];
    # covariance 3.75, norms sqrt(4.5) and sqrt(4.5) -> 3.75 / 4.5
    assert spearman([5, 5, 7, 9], [1, 3, 3, 8]) == pytest.approx(3.75 / 4.5, abs=1e-12)
    np.testing.assert_array_equal(rankdata([2, 1, 2, 1, 3]), [3.5, 1.5, 3.5, 1.5, 5])
    # only the order matters
    assert spearman([1, 2, 3, 4], [1, 10, 100, 1000]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [1, 10, 100, 1000]) < 0.9


def test_retrieval_perfect_reversed_and_beyond_ten():
    docs = [f"d{i}" for i in range(12)]
    perfect = retrieval_metrics({"q": docs}, {"q": ["d0", "d1"]}, ks=(1, 2, 10))
    assert perfect == {"recall@1": 0.5, "recall@2": 1.0, "recall@10": 1.0, "mrr@10": 1.0}
    reversed_ = retrieval_metrics({"q": docs[::-1]}, {"q": ["d0", "d1"]}, ks=(1, 2, 10))
    # d1 and d0 sit at ranks 11 and 12: outside the top 10, so MRR@10 and recall@10 are 0
    assert reversed_ == {"recall@1": 0.0, "recall@2": 0.0, "recall@10": 0.0, "mrr@10": 0.0}
    tenth = retrieval_metrics({"q": docs[9:10] + docs[:9]}, {"q": ["d8"]}, ks=(10,))
    assert tenth["mrr@10"] == pytest.approx(1 / 10)
    # a query with no ranking at all counts as a miss
    missing = retrieval_metrics({}, {"q": ["d0"]}, ks=(1,))
    assert missing == {"recall@1": 0.0, "mrr@10": 0.0}


def test_evaluate_retrieval_cosine_ties_keep_corpus_order():
    encode = lambda texts: np.array([[1.0, 0.0] if t != "far" else [0.0, 1.0] for t in texts])  # noqa: E731
    corpus = {"a": "x", "b": "y", "c": "far"}
    metrics = evaluate_retrieval(encode, {"q1": "q", "q2": "q"}, corpus, {"q1": ["b"], "q2": ["c"]}, ks=(1, 2))
    # a and b tie at cosine 1 (a first), c is last
    assert metrics == {"recall@1": 0.0, "recall@2": 0.5, "mrr@10": pytest.approx((1 / 2 + 1 / 3) / 2)}


def test_evaluation_input_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="pair file not found: .*nope.tsv"):
        read_scored_pairs(str(tmp_path / "nope.tsv"))
    with pytest.raises(ValueError, match="same length >= 2, got 3 and 2"):
        pearson([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="no queries with relevant documents"):
        retrieval_metrics({"q": ["a"]}, {})
    with pytest.raises(ValueError, match="query 'q' has no relevant documents"):
        retrieval_metrics({"q": ["a"]}, {"q": []})
    path = tmp_path / "retrieval.json"
    path.write_text('{"queries": {}, "corpus": {}}', encoding="utf-8")
    with pytest.raises(KeyError, match="retrieval.json lacks 'qrels'"):
        load_retrieval_set(str(path))
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.tsv has no pairs"):
        read_scored_pairs(str(empty))


def test_metrics_import_numpy_only():
    import subprocess
    import sys

    code = "import sys, bert4sim.evaluation; print(sorted({'keras', 'tensorflow', 'scipy'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
