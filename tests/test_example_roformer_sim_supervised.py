"""examples/roformer_sim_supervised.py end to end on the micro setting; its checkpoint loads in SimilarityModel."""
import os
import sys

import numpy as np
import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, os.path.join(ROOT, "examples"))


def test_supervised_example_micro_run_prints_accuracy_and_saves_a_loadable_checkpoint(tmp_path, capsys):
    import roformer_sim_supervised

    from bert4sim.similarity import SimilarityModel

    out = str(tmp_path / "supervised")
    history, before, after, sim = roformer_sim_supervised.main(["--micro", "--output", out])
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert set(before) == set(after) == {"pairs_accuracy", "nli_accuracy", "sts_spearman"}
    printed = capsys.readouterr().out
    assert "held-apart before" in printed and "held-apart after" in printed and "sampled 1:1" in printed
    loaded = SimilarityModel.from_checkpoint(out, model="roformer", maxlen=32)
    texts = ["一位老人在公园里跑步", "信用卡怎么注销"]
    np.testing.assert_allclose(loaded.encode(texts, show_progress=False), sim.encode(texts, show_progress=False),
                               atol=1e-5)
    # fine-tuning a checkpoint folder (--init) starts from its weights and vocabulary
    again = str(tmp_path / "again")
    _, before_again, _, _ = roformer_sim_supervised.main(["--init", out, "--batch-size", "16", "--maxlen", "32",
                                                          "--epochs", "1", "--steps-per-epoch", "2", "--output", again])
    # the encoder's weights carry over (the 5-way head is for training only and starts anew)
    assert before_again["sts_spearman"] == pytest.approx(after["sts_spearman"], abs=1e-6)


def test_supervised_example_arguments(tmp_path):
    import roformer_sim_supervised as example

    released = example.parse_args(["--init", "some/folder"])
    assert (released.batch_size, released.lr, released.maxlen, released.clip_norm) == (192, 2e-5, 64, None)
    demo = example.parse_args([])
    assert (demo.batch_size, demo.lr, demo.maxlen) == (64, 1e-3, 32)
    assert demo.pairs[0].endswith("pairs_train.tsv") and demo.nli[0].endswith("nli_train.jsonl")
    only_pairs = example.parse_args(["--pairs", "a.tsv"])
    assert only_pairs.nli is None
    assert example.split_threshold("data/STS-B.train.data:2.5") == ("data/STS-B.train.data", 2.5)
    assert example.split_threshold("data/LCQMC.train.data") == ("data/LCQMC.train.data", 0.5)
    with pytest.raises(FileNotFoundError, match="pairs file not found: .*missing.tsv"):
        example.main(["--micro", "--pairs", str(tmp_path / "missing.tsv"), "--output", str(tmp_path / "o")])
