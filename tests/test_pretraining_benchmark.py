"""benchmarks/pretraining.py: its helpers on inline data, and the whole script on a tiny synthetic corpus."""
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import pretraining  # noqa: E402
import pretraining_curve  # noqa: E402

CHARS = "今天明后雨晴风雪人民日报新闻北京上海会议经济发展房间干净服务很好差不满意书本"
ARTICLE = "北京今天下雨了。上海明天会晴。人民日报报道会议。经济发展很好。新闻说后天有风雪。"


def test_schedule_warms_up_holds_and_decays_to_zero():
    schedule = pretraining.make_schedule(1e-3, 100, 10, 20)
    rates = np.asarray(schedule(np.arange(100)))  # step = updates made before this one
    np.testing.assert_allclose(rates[:10], 1e-3 * np.arange(1, 11) / 10, rtol=1e-6)
    np.testing.assert_allclose(rates[10:80], 1e-3, rtol=1e-6)
    np.testing.assert_allclose(rates[80:], 1e-3 * np.arange(20, 0, -1) / 20, rtol=1e-6)
    assert float(pretraining.make_schedule(1e-3, 100, 0, 0)(0)) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match=r"warm-up \(60\) \+ decay \(50\) <= total steps \(100\)"):
        pretraining.make_schedule(1e-3, 100, 60, 50)


def test_points_must_increase():
    assert pretraining.parse_points("300,750,1500") == [300, 750, 1500]
    for bad in ("300,300", "0,10", "a", ""):
        with pytest.raises(ValueError, match="increasing positive step counts"):
            pretraining.parse_points(bad)
    with pytest.raises(SystemExit):
        pretraining.parse_args(["--out", "x", "--points", "25,50", "--log-every", "10"])
    with pytest.raises(SystemExit):
        pretraining.parse_args(["--out", "x", "--evaluate-only", "y"])


def test_variants_added_later_keep_the_earlier_training_only_with_the_same_settings(tmp_path, capsys):
    settings = {"seed": 0, "lr": 5e-4}
    record = {"points": {"20": 1.0}, "losses": [], "seconds": 1.0}
    (tmp_path / "run.json").write_text(json.dumps({"settings": settings, "training": {"mlm": record}}))
    assert pretraining.earlier_training(str(tmp_path), settings, ["mlm"]) == {"mlm": record}
    assert pretraining.earlier_training(str(tmp_path), settings, []) == {}
    with pytest.raises(SystemExit) as exit_info:
        pretraining.earlier_training(str(tmp_path), {"seed": 1, "lr": 5e-4}, ["mlm"])
    assert exit_info.value.code == 2
    assert "trained with other settings (seed)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pretraining.earlier_training(str(tmp_path), settings, ["retromae"])
    with pytest.raises(SystemExit):
        pretraining.parse_args(["--out", "x", "--variants", "bert"])
    assert pretraining.parse_args(["--out", "x", "--variants", "retromae"]).variants == ["retromae"]


def test_overtaking_and_extrapolation():
    assert pretraining_curve.overtaking_step([1, 2, 3], [0.3, 0.4, 0.5], [0.1, 0.2, 0.3]) == 1
    assert pretraining_curve.overtaking_step([1, 2, 3], [0.1, 0.4, 0.5], [0.2, 0.2, 0.3]) == 2
    assert pretraining_curve.overtaking_step([1, 2, 3], [0.3, 0.4, 0.1], [0.1, 0.2, 0.3]) is None
    assert pretraining_curve.steps_to_reach([10, 100], [0.2, 0.3], 0.5) == pytest.approx(10000)
    assert pretraining_curve.steps_to_reach([10, 100], [0.3, 0.2], 0.5) is None
    assert pretraining_curve.steps_to_reach([10], [0.3], 0.5) is None


def figures(passages, clauses=0.1, sentiment=0.6):
    return {"knn10_accuracy": sentiment, "logreg_accuracy": sentiment, "clauses_recall@1": clauses,
            "clauses_mrr@10": clauses, "passages_recall@1": passages, "passages_mrr@10": passages}


def test_verdict_says_where_retromae_overtakes_and_against_which_baselines():
    curve = {"mlm": {100: {"cls": figures(0.10), "mean": figures(0.20)}, 400: {"cls": figures(0.15), "mean": figures(0.25)}},
             "retromae": {100: {"cls": figures(0.05), "mean": figures(0.1)}, 400: {"cls": figures(0.30), "mean": figures(0.2)}}}
    baselines = {"characters": {"bag": figures(0.50, 0.8, 0.7)},
                 "initial": {"cls": figures(0.02, 0.05, 0.5), "mean": figures(0.12, 0.3, 0.55)}}
    lines = pretraining_curve.verdict(curve, baselines)
    assert lines[0] == ("passage retrieval recall@1: RetroMAE [CLS] overtakes MLM's at 400 steps "
                        "(100: 0.050 vs 0.100, 400: 0.300 vs 0.150).")
    assert lines[1].startswith("passage retrieval recall@1: best learned vector retromae cls at 400 steps 0.300; "
                               "random initial encoder 0.120 (best pooling), bag of characters 0.500: beats the random "
                               "initial encoder, not a bag of characters.")
    assert "reaches the bag of characters at about" in lines[1]
    assert "not above MLM's at the last point" in lines[2]  # clauses: equal is not above
    assert "beats neither" in lines[3]


def test_cloze_task_takes_a_sentence_out_of_each_passage():
    long_article = "".join(f"第{i}句话在这里说了一些事情。" for i in range(40))
    articles = [ARTICLE, "太短了。", long_article]
    queries, documents = pretraining_curve.cloze_task(articles, np.random.default_rng(0), min_chars=6)
    assert len(queries) == len(documents) == 2
    for (sentence, gold), article in zip(queries, [ARTICLE, long_article]):
        document = documents[gold]
        assert sentence not in document and len(document) + len(sentence) <= pretraining_curve.PASSAGE_CHARS
        assert article.startswith(document[:4]) or article.startswith(sentence[:4])


def test_plot_is_skipped_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    assert pretraining_curve.plot_curve({}, {}, str(tmp_path / "curve.png")) is False
    assert not (tmp_path / "curve.png").exists()


def tiny_corpus(folder):
    """A data folder shaped like examples/data/real_corpus.py's output, a few lines each."""
    os.makedirs(folder)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    write = lambda name, rows: open(os.path.join(folder, name), "w", encoding="utf-8").writelines(  # noqa: E731
        row + "\n" for row in rows)
    rng = np.random.default_rng(0)
    write("vocab.txt", specials + list(dict.fromkeys(CHARS + "。，")))
    sentences = ["".join(rng.choice(list(CHARS), int(rng.integers(6, 12)))) + "。" for _ in range(200)]
    write("articles.txt", ["".join(sentences[i:i + 5]) for i in range(0, 100, 5)])
    write("review_passages.txt", ["".join(sentences[i:i + 2]) for i in range(100, 140, 2)])
    write("heldout_articles.txt", ["".join(sentences[i:i + 4]) for i in range(140, 200, 4)])
    clauses = [s[:-1] for s in sentences[:30]]
    write("heldout_clauses.txt", clauses)
    write("paraphrase_test.tsv", [f"{c}\t{c[::-1]}" for c in clauses[:10]])
    reviews = [f"{i % 2}\t{'很好满意' if i % 2 else '很差不满意'}{sentences[i][:5]}" for i in range(60)]
    write("reviews_train.tsv", reviews[:40])
    write("reviews_test.tsv", reviews[40:])


def test_script_trains_saves_each_point_and_evaluates_again(tmp_path, capsys):
    from bert4sim.models import build_transformer_model
    from bert4sim.similarity import SimilarityModel

    data, out = str(tmp_path / "data"), str(tmp_path / "run")
    tiny_corpus(data)
    tiny = ["--data", data, "--layers", "1", "--hidden", "16", "--heads", "2", "--intermediate", "32", "--maxlen", "32",
            "--batch-size", "4", "--points", "2,4", "--log-every", "2", "--min-chars", "10", "--precision", "float32",
            "--quick"]
    summary, run = pretraining.main(["--out", out, *tiny])
    assert set(summary["curve"]) == {"mlm", "retromae"} and all(set(c) == {2, 4} for c in summary["curve"].values())
    assert set(summary["baselines"]) == {"characters", "initial"} and len(summary["verdict"]) == 6
    assert summary["evaluation_sizes"]["passage_queries"] == 15
    losses = run["training"]["mlm"]["losses"]
    assert [r["step"] for r in losses] == [2, 4] and all(r["decoder_loss"] == 0 for r in losses)
    assert all(r["decoder_loss"] > 0 for r in run["training"]["retromae"]["losses"])
    for folder in ["initial", "mlm/step_000002", "mlm/step_000004", "retromae/step_000002", "retromae/step_000004"]:
        path = os.path.join(out, folder)
        assert os.path.isfile(os.path.join(path, "vocab.txt"))
        build_transformer_model(os.path.join(path, "bert_config.json"), path)
    vectors = SimilarityModel.from_checkpoint(os.path.join(out, "retromae/step_000004"), pooling="cls",
                                              with_seq2seq=False, maxlen=32).encode(["北京今天下雨了。", "很好"])
    assert vectors.shape == (2, 16)
    written = json.load(open(os.path.join(out, "curve.json"), encoding="utf-8"))
    assert written["curve"]["retromae"]["4"]["cls"] == summary["curve"]["retromae"][4]["cls"]
    printed = capsys.readouterr().out
    assert "passage R@1" in printed and ("curve.png" in printed)
    # a saved encoder alone gives the same figures again (a copy of the run with one point, to stay quick)
    import shutil

    copy = str(tmp_path / "copy")
    for folder in ("initial", "retromae/step_000004"):
        shutil.copytree(os.path.join(out, folder), os.path.join(copy, folder))
    again = pretraining.main(["--evaluate-only", copy, *tiny[:2], "--quick"])
    assert list(again["curve"]) == ["retromae"] and list(again["curve"]["retromae"]) == [4]
    pairs = [(again["curve"]["retromae"][4], summary["curve"]["retromae"][4]),
             (again["baselines"]["initial"], summary["baselines"]["initial"])]
    for new, old in pairs:
        for pooling, r in old.items():
            assert new[pooling] == pytest.approx(r, abs=1e-6)
