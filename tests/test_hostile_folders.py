"""Prepared folders through the real loaders and saves: nothing changes on load, nothing outside on save.

Every case of tests/test_files_storage.py (0.1.0 journals and markers naming absolute and ``../``
paths, links out of the folder, user files with bert4sim's names, ...) goes through VectorIndex.load,
SimilarityModel.load / from_checkpoint, build_transformer_model, ``bert4sim similar --model``, and
VectorIndex.save, SimilarityModel.save, save_checkpoint, ``bert4sim index build``. A checkpoint
folder made by others whose TF state file names a checkpoint outside it is read from its own files.
"""
import os

import keras
import numpy as np
import pytest

from bert4sim.cli import main as cli_main
from bert4sim.models import build_transformer_model, save_checkpoint
from bert4sim.similarity import SimilarityModel, VectorIndex
from bert4sim.tokenizers import Tokenizer
from test_files_storage import CASES, CKPT, snapshot

VOCAB = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("我想注销信用卡查询余额"))}


def tiny(seed):
    keras.utils.set_random_seed(seed)
    return build_transformer_model(vocab_size=len(VOCAB), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=16, with_pool="linear", max_position_embeddings=16,
                                   return_keras_model=False)


@pytest.fixture(scope="module")
def sim():
    model = SimilarityModel(Tokenizer(VOCAB), tiny(0).model, maxlen=8)
    model.build_index(["我想注销信用卡", "查询余额"])
    return model


@pytest.fixture
def sandbox(tmp_path):
    from test_files_storage import FORMAT
    import json

    outside = tmp_path / "outside"
    (outside / "some_dir").mkdir(parents=True)
    (outside / "some_dir" / "x.txt").write_text("keep")
    (outside / "some_dir" / "vectors.npy").write_text("keep")
    (outside / "victim.txt").write_text("keep")
    (outside / "v000001").mkdir()
    for name in ("a.txt", "b.txt"):
        (outside / "v000001" / name).write_text("outside")
    (outside / "marker.json").write_text(json.dumps({"kind": "vector-index", "format": FORMAT, "current": "v000001"}))
    (tmp_path / "corpus.txt").write_text("我想注销信用卡\n查询余额\n", encoding="utf-8")
    return tmp_path, tmp_path / "target", outside


def loads(target):
    return [lambda: VectorIndex.load(str(target)), lambda: SimilarityModel.load(str(target)),
            lambda: SimilarityModel.from_checkpoint(str(target)),
            lambda: build_transformer_model(str(target / "bert_config.json"), str(target)),
            lambda: build_transformer_model(str(target / "bert_config.json"), str(target / CKPT)),
            lambda: cli_main(["similar", "查询", "--model", str(target)])]


def saves(target, sim, root):
    return {"vector-index": lambda: sim.index.save(str(target)),
            "similarity-model": lambda: sim.save(str(target)),
            "checkpoint": lambda: save_checkpoint(sim.encoder, str(target / CKPT), vocab=VOCAB),
            "cli index build": lambda: cli_main(["index", "build", str(root / "corpus.txt"), "--model",
                                                 str(root / "model"), "--out", str(target)])}


@pytest.mark.parametrize("case", sorted(CASES))
def test_prepared_folders_through_the_api_and_the_command(sandbox, sim, case, capsys):
    root, target, outside = sandbox
    sim.save(str(root / "model"))
    prepare, _ = CASES[case]
    prepare(target, outside)
    before = snapshot(root)
    for load in loads(target):
        try:
            load()
        except (OSError, ValueError, KeyError):
            pass
        assert snapshot(root) == before, "a load changed files"
    for name, save in saves(target, sim, root).items():
        outside_before = snapshot(outside)
        try:
            save()
        except (OSError, ValueError):
            pass
        assert snapshot(outside) == outside_before, f"{name} changed files outside the folder"
        assert not (outside / "created.txt").exists()
    capsys.readouterr()


def test_a_tf_state_file_naming_a_checkpoint_elsewhere_is_read_as_a_name_in_its_folder(tmp_path):
    import tensorflow as tf

    inside, elsewhere = tiny(0), tiny(1)
    save_checkpoint(elsewhere, str(tmp_path / "elsewhere" / CKPT))
    save_checkpoint(inside, str(tmp_path / "render" / CKPT), vocab=VOCAB)
    released = tmp_path / "released"  # a checkpoint folder as others ship it: its files at the top
    rendered = tf.train.latest_checkpoint(str(tmp_path / "render" / CKPT))
    os.makedirs(released)
    for name in os.listdir(os.path.dirname(rendered)):
        if name != "checkpoint":
            os.link(os.path.join(os.path.dirname(rendered), name), released / name)
    target = tf.train.latest_checkpoint(str(tmp_path / "elsewhere" / CKPT))
    kernel = lambda model: keras.ops.convert_to_numpy(model.get_layer("Pooler-Dense").weights[0])  # noqa: E731
    for named in (target, os.path.relpath(target, released), "../elsewhere/" + CKPT):
        (released / "checkpoint").write_text(f'model_checkpoint_path: "{named}"\n')
        before = snapshot(tmp_path)
        loaded = build_transformer_model(str(released / "bert_config.json"), str(released), with_pool="linear")
        assert np.array_equal(kernel(loaded), kernel(inside.model)), named  # never the checkpoint elsewhere
        assert np.array_equal(kernel(SimilarityModel.from_checkpoint(str(released), with_seq2seq=False).encoder),
                              kernel(inside.model))
        assert snapshot(tmp_path) == before
