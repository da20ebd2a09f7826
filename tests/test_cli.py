"""The bert4sim console command on a tiny checkpoint folder: index build, similar, synonyms, errors."""
import json
import os
import re
import subprocess
import sys

import keras
import pytest

from bert4sim.cli import main as cli_main
from bert4sim.files import current_version
from bert4sim.models import build_transformer_model, save_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHARS = "我想注销信用卡怎么办理银行开户查询余额今天天气很好明天下雨吗手机充电慢"
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(CHARS))
CORPUS = ["我想注销信用卡", "信用卡怎么注销", "怎么办理银行开户", "查询余额", "今天天气很好", "明天下雨吗", "手机充电慢"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    keras.utils.set_random_seed(0)
    model = build_transformer_model(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=64, application="unilm", with_pool="linear")
    save_checkpoint(model, str(root / "ckpt" / "bert_model.ckpt"))
    (root / "ckpt" / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    (root / "corpus.txt").write_text("\n".join(CORPUS) + "\n\n", encoding="utf-8")
    return root


def test_index_build_then_similar(folders, capsys):
    ckpt, out = str(folders / "ckpt"), str(folders / "idx")
    assert cli_main(["index", "build", str(folders / "corpus.txt"), "--model", ckpt, "--out", out]) == 0
    meta = os.path.join(current_version(out, "vector-index"), "meta.json")
    assert json.load(open(meta))["count"] == len(CORPUS)  # the blank line is skipped
    assert "indexed 7 sentences (32-d)" in capsys.readouterr().out
    assert cli_main(["similar", "查询余额", "--model", ckpt, "--index", out, "--topn", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].endswith("\t查询余额")
    scores = [float(line.split("\t")[0]) for line in lines]
    assert scores == sorted(scores, reverse=True) and abs(scores[0] - 1) < 1e-4


def test_synonyms_prints_at_most_k_distinct_lines(folders, capsys):
    args = ["synonyms", "我想注销信用卡", "--model", str(folders / "ckpt"), "-n", "10", "-k", "3", "--seed", "0"]
    assert cli_main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert 0 < len(lines) <= 3 and len(set(lines)) == len(lines) and "我想注销信用卡" not in lines


def test_faiss_backend_from_the_shell(folders, capsys):
    pytest.importorskip("faiss")
    ckpt, out = str(folders / "ckpt"), str(folders / "faiss_idx")
    assert cli_main(["index", "build", str(folders / "corpus.txt"), "--model", ckpt, "--out", out,
                     "--backend", "faiss"]) == 0
    assert os.path.isfile(os.path.join(current_version(out, "vector-index"), "faiss.index"))
    capsys.readouterr()
    assert cli_main(["similar", "明天下雨吗", "--model", ckpt, "--index", out, "--topn", "1"]) == 0
    assert capsys.readouterr().out.strip().endswith("\t明天下雨吗")
    assert cli_main(["similar", "明天下雨吗", "--model", ckpt, "--index", out, "--topn", "1",
                     "--precision", "bfloat16"]) == 0
    assert capsys.readouterr().out.strip().endswith("\t明天下雨吗")


@pytest.mark.parametrize("args, message", [
    (["similar", "", "--index", "{root}/idx"], "empty or whitespace"),
    (["similar", "查询", "--index", "{root}/nowhere"], "index folder not found"),
    (["index", "build", "{root}/missing.txt", "--out", "{root}/x"], "corpus file not found"),
    (["index", "build", "{root}/blank.txt", "--out", "{root}/x"], "has no non-empty lines"),
    (["synonyms", "查询", "-n", "0"], "n must be at least 1"),
    (["synonyms", "查询", "-n", "3", "-k", "5"], "k must be between 1 and n=3"),
])
def test_errors_are_one_line_and_exit_2(folders, capsys, args, message):
    (folders / "blank.txt").write_text("\n  \n", encoding="utf-8")
    if not (folders / "idx").is_dir():
        cli_main(["index", "build", str(folders / "corpus.txt"), "--model", str(folders / "ckpt"),
                  "--out", str(folders / "idx")])
    argv = [a.format(root=folders) for a in args] + ["--model", str(folders / "ckpt")]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("bert4sim: ") and message in err and "Traceback" not in err


def test_missing_model_folder(tmp_path, capsys):
    assert cli_main(["synonyms", "查询", "--model", str(tmp_path / "none")]) == 2
    assert "model folder not found" in capsys.readouterr().err


@pytest.mark.parametrize("args, code, stream", [
    (["--help"], 0, "stdout"),
    (["similar", "--help"], 0, "stdout"),
    (["serve", "--help"], 0, "stdout"),
    (["export", "--help"], 0, "stdout"),
    (["similar", "查询"], 2, "stderr"),  # argparse error: --model and --index missing
    (["frobnicate"], 2, "stderr"),
])
def test_help_and_usage_errors_do_not_import_tensorflow(args, code, stream):
    # A fresh interpreter: this test process has imported TensorFlow already.
    probe = ("import sys\nfrom bert4sim.cli import main\n"
             f"try:\n    main({args!r})\nexcept SystemExit as exit:\n    code = exit.code\n"
             "heavy = sorted(m for m in ('tensorflow', 'keras', 'numpy') if m in sys.modules)\n"
             "print('HEAVY', heavy, 'CODE', code, file=sys.stderr)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert f"HEAVY [] CODE {code}" in done.stderr, done.stderr
    if code == 0:
        assert "usage: bert4sim" in done.stdout
    else:  # one line: what is wrong and where the options are
        error = done.stderr.splitlines()[0]
        assert error.startswith("bert4sim") and ": error: " in error and error.endswith("--help shows the options)")


@pytest.mark.parametrize("command", [["synonyms"], ["similar"], ["index", "build"], ["serve"], ["export"]])
def test_each_subcommand_help_shows_defaults_and_an_example(capsys, command):
    with pytest.raises(SystemExit):
        cli_main(command + ["--help"])
    text = capsys.readouterr().out
    assert re.search(r"\(default:\s+auto\)", text) and "\nexample:\n  bert4sim " + " ".join(command) in text
    assert "(default: None)" not in text


def _run_cli(args, **env_changes):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # conftest sets it for this process; a user's shell has none
    env.update(env_changes)
    return subprocess.run([sys.executable, "-m", "bert4sim.cli"] + args, capture_output=True, text=True, env=env,
                          timeout=120)


def test_the_command_prints_only_its_own_lines(folders):
    """No TensorFlow / absl start-up lines, unless the user sets TF_CPP_MIN_LOG_LEVEL; progress on stderr."""
    out = str(folders / "quiet_idx")
    done = _run_cli(["index", "build", str(folders / "corpus.txt"), "--model", str(folders / "ckpt"), "--out", out])
    assert done.returncode == 0 and done.stdout == f"indexed 7 sentences (32-d) into {out}\n", done
    own = re.compile(r"bert4sim: .*|7/7 - \d+s - .*/sentence")  # the precision note, the progress summary
    assert all(own.fullmatch(line) for line in done.stderr.splitlines()) and "\x1b" not in done.stderr, done.stderr
    done = _run_cli(["similar", "查询余额", "--model", str(folders / "ckpt"), "--index", out, "--topn", "2"])
    assert all(own.fullmatch(line) for line in done.stderr.splitlines()) and [line.split("\t")[1] for line in done.stdout.splitlines()][0] == "查询余额", done
    loud = _run_cli(["similar", "查询余额", "--model", str(folders / "ckpt"), "--index", out, "--topn", "1"],
                    TF_CPP_MIN_LOG_LEVEL="0")
    assert loud.returncode == 0 and "absl::InitializeLog" in loud.stderr  # the user's setting wins
