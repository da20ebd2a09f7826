"""transformers folders used directly: build_transformer_model, SimilarityModel.from_checkpoint, the CLI, README.

Fixtures: tests/fixtures/transformers/ (saved by transformers itself, see make_transformers_fixtures.py).
"""
import os
import re
import shlex
import shutil

import keras
import numpy as np
import pytest

from bert4sim.cli import main as cli_main
from bert4sim.convert import convert
from bert4sim.models import build_transformer_model
from bert4sim.similarity import SimilarityModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "transformers")
REFERENCE = np.load(os.path.join(FIXTURES, "reference.npz"))
INPUTS = [REFERENCE["token_ids"], REFERENCE["segment_ids"]]


def fixture(name):
    return os.path.join(FIXTURES, name)


def test_build_from_a_transformers_folder_takes_its_config_and_weights():
    pooled = build_transformer_model(fixture("bert_model"), with_pool=True).predict(INPUTS, verbose=0)
    np.testing.assert_allclose(pooled, REFERENCE["bert_model_pooled"], atol=1e-5, rtol=0)
    roformer = build_transformer_model(fixture("roformer_mlm"), with_mlm="linear", return_keras_model=False)
    assert roformer.model_type == "roformer" and roformer.position_embedding is None  # read from config.json
    np.testing.assert_allclose(roformer.model.predict(INPUTS, verbose=0), REFERENCE["roformer_mlm_logits"],
                               atol=1e-5, rtol=0)


def test_transformers_folder_as_checkpoint_with_keep_tokens(tmp_path):
    convert(fixture("bert_mlm"), tmp_path / "google")
    keep = list(range(0, 39, 2))
    kept = build_transformer_model(str(tmp_path / "google" / "bert_config.json"), fixture("bert_mlm"),
                                   with_mlm="linear", keep_tokens=keep)
    full = build_transformer_model(fixture("bert_mlm"), with_mlm="linear")
    ids = np.array([[2, 6, 8, 10, 0]])  # even ids only: new id = old id // 2
    np.testing.assert_allclose(kept.predict([ids // 2, np.zeros_like(ids)], verbose=0),
                               full.predict([ids, np.zeros_like(ids)], verbose=0)[..., keep], atol=1e-5)


def test_errors_name_the_converted_folder():
    with pytest.raises(ValueError, match=r"pooler/dense/kernel is missing from checkpoint transformers folder .*roformer_model "
                                         r"\(converted in memory\)"):
        build_transformer_model(fixture("roformer_model"), with_pool="linear")
    with pytest.raises(ValueError, match="position_embeddings is missing"):
        build_transformer_model(fixture("roformer_model"), model="bert")


def test_similarity_model_from_a_sentence_transformers_folder():
    sim = SimilarityModel.from_checkpoint(fixture("st_bert"), precision="float32")  # its mean pooling
    texts = [str(t) for t in REFERENCE["texts"]]
    np.testing.assert_allclose(sim.encode(texts, normalize=False), REFERENCE["st_embeddings"], atol=1e-5, rtol=0)


def test_similarity_model_from_roformer_folders():
    with pytest.raises(ValueError, match="has no pooler .*choose pooling 'cls', 'mean' or 'max'"):
        SimilarityModel.from_checkpoint(fixture("roformer_model"))
    sim = SimilarityModel.from_checkpoint(fixture("roformer_mlm"), pooling="cls", precision="float32")
    assert sim.seq2seq is not None  # the MLM head makes it a generator too
    vectors = sim.encode(["我是中国人"], normalize=False)
    base = build_transformer_model(fixture("roformer_mlm"))
    ids = np.array([[2, 11, 7, 16, 21, 10, 3]])  # what the fixture's tokenizer gives for 我是中国人
    np.testing.assert_allclose(vectors, base.predict([ids, np.zeros_like(ids)], verbose=0)[:, 0], atol=1e-5)


def test_cli_similar_with_a_transformers_folder(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("我是中国人\n他说你们来了\n这个大国\n", encoding="utf-8")
    assert cli_main(["index", "build", str(corpus), "--model", fixture("st_bert"), "--out", str(tmp_path / "idx"),
                     "--precision", "float32"]) == 0
    capsys.readouterr()
    assert cli_main(["similar", "我是中国人", "--model", fixture("st_bert"), "--index", str(tmp_path / "idx"),
                     "--topn", "2", "--precision", "float32"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].endswith("\t我是中国人") and lines[0].startswith("1.0000")


def test_cli_convert_errors_are_one_line(tmp_path, capsys, monkeypatch):
    assert cli_main(["convert", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bert4sim: model folder not found")
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # as if torch were not installed
    assert cli_main(["convert", fixture("bert_mlm_bin"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pytorch_model.bin is a PyTorch pickle and torch is not installed" in err


def _readme_fixture_commands():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = re.search(r"<!-- fixture-commands -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "README lost its fixture-commands block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_convert_commands_run_as_written(tmp_path, monkeypatch, capsys):
    commands = _readme_fixture_commands()
    assert sum(c.startswith("bert4sim convert") for c in commands) >= 3
    os.symlink(os.path.join(ROOT, "tests"), tmp_path / "tests")  # README's relative paths, outputs in tmp
    monkeypatch.chdir(tmp_path)
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "bert4sim", command
        assert cli_main(argv[1:] + (["--precision", "float32"] if argv[1] == "similar" else [])) == 0, command
    out = capsys.readouterr().out
    assert "wrote a Google-format checkpoint" in out and "wrote a transformers folder" in out
    shutil.rmtree(tmp_path / "checkpoints", ignore_errors=True)
    assert keras.backend.backend() == "tensorflow"
