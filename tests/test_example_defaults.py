"""The examples' defaults: the originals' recipe when fine-tuning a released checkpoint, CPU-sized otherwise."""
import os
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, os.path.join(ROOT, "examples"))


def test_released_checkpoint_defaults_follow_the_originals_and_the_demo_stays_small():
    import retromae_pretrain
    import roformer_sim
    import roformer_sim_supervised
    import sbert
    import simbert

    released = ["--config", "c/bert_config.json", "--checkpoint", "c"]
    assert (simbert.parse_args(released).batch_size, simbert.parse_args([]).batch_size) == (128, 32)
    assert (roformer_sim.parse_args(released).batch_size, roformer_sim.parse_args([]).batch_size) == (96, 32)
    assert (retromae_pretrain.parse_args(released).batch_size, retromae_pretrain.parse_args([]).batch_size) == (256, 32)
    assert roformer_sim_supervised.parse_args(["--init", "c"]).batch_size == 192
    # gradient clipping by global norm: 1.0 where the references clip, none where the originals do not
    assert retromae_pretrain.parse_args([]).clip_norm == 1.0 and sbert.parse_args([]).clip_norm == 1.0
    assert simbert.parse_args(released).clip_norm is None and roformer_sim.parse_args(released).clip_norm is None
    assert roformer_sim_supervised.parse_args([]).clip_norm is None
    assert simbert.parse_args(["--clip-norm", "0.5"]).clip_norm == 0.5


def test_help_says_which_defaults_are_the_originals(capsys):
    import pytest

    import retromae_pretrain
    import roformer_sim
    import simbert

    for module, needle in ((simbert, "2e-6 constant with --config"), (roformer_sim, "1e-5 constant with --config"),
                           (retromae_pretrain, "256 with --config")):
        with pytest.raises(SystemExit):
            module.parse_args(["--help"])
        assert needle in capsys.readouterr().out
