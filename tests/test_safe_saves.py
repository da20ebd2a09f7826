"""Saves never destroy data: foreign folders refused, and a SIGKILL at any stage leaves the old or new copy.

The kill tests run each save in a child process whose os.fsync / os.replace / os.remove /
os.mkdir / shutil.rmtree calls are counted; the child kills itself (SIGKILL) at call N, for
N = 1, 2, ... until a save runs to the end. After each kill this process loads the folder.
VectorIndex.save runs whole in the child (no TensorFlow needed). SimilarityModel.save and
save_checkpoint need TensorFlow, whose import is too slow to repeat per stage here, so their
new files are rendered once by the real save and the child commits them through the same
bert4sim.files.atomic_folder those saves use.
"""
import json
import os
import shutil
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from bert4sim.files import JOURNAL, MARKER, STAGING_PREFIX, atomic_folder
from bert4sim.models import build_transformer_model, save_checkpoint
from bert4sim.similarity import SimilarityModel, VectorIndex
from bert4sim.tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("我想注销信用卡查询余额"))}

CHILD = r"""
import os, shutil, signal, sys
import numpy as np
stage, folder, what = int(sys.argv[1]), sys.argv[2], sys.argv[3]
calls = [0]

def killing(function):
    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == stage:
            os.kill(os.getpid(), signal.SIGKILL)
        return function(*args, **kwargs)
    return wrapped

from bert4sim.files import atomic_folder
from bert4sim.similarity import VectorIndex
if what == "index":
    texts = ["new-%d" % i for i in range(5)]
    index = VectorIndex(4).add(np.eye(5, 4) + 0.5, texts)
for name in ("fsync", "replace", "remove", "mkdir"):
    setattr(os, name, killing(getattr(os, name)))
shutil.rmtree = killing(shutil.rmtree)
if what == "index":
    index.save(folder)
else:
    kind, template = what.split(":", 1)
    with atomic_folder(folder, kind) as staging:
        for name in os.listdir(template):
            source = os.path.join(template, name)
            if os.path.isdir(source):
                shutil.copytree(source, os.path.join(staging, name))
            else:
                shutil.copyfile(source, os.path.join(staging, name))
"""


def run_child(stage, folder, what):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", CHILD, str(stage), str(folder), what], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, -signal.SIGKILL), done.stderr
    return done.returncode == 0


def kill_at_every_stage(folder, what, check):
    """Run the child save killed at call 1, 2, ...; ``check(folder)`` after each kill. Returns the kill count."""
    stage = 1
    while not run_child(stage, folder, what):
        check(folder, killed_at=stage)
        stage += 1
    check(folder, killed_at=None)
    assert stage > 5  # the save has several stages, each was killed once
    return stage - 1


def no_leftovers(folder):
    assert not [n for n in os.listdir(folder) if n.startswith(STAGING_PREFIX) or n == JOURNAL]


@pytest.mark.parametrize("existing", [True, False])
def test_index_save_killed_at_every_stage_leaves_old_or_new(tmp_path, existing):
    folder = tmp_path / "idx"
    old, new = ["old-%d" % i for i in range(3)], ["new-%d" % i for i in range(5)]
    outcomes = []

    def reset():
        shutil.rmtree(folder, ignore_errors=True)
        if existing:
            VectorIndex(4).add(np.ones((3, 4)), old).save(str(folder))

    def check(folder, killed_at):
        if not existing and not (folder / "meta.json").exists():
            outcomes.append("nothing")  # a first save killed before its commit: there was nothing to lose
        else:
            texts = VectorIndex.load(str(folder)).texts  # plays an interrupted commit to its end
            assert texts in (old, new), killed_at
            outcomes.append("old" if texts == old else "new")
            no_leftovers(folder)  # the killed save's staging folder is gone
        if killed_at is None:
            assert outcomes[-1] == "new"
        reset()

    reset()
    kill_at_every_stage(folder, "index", check)
    assert outcomes[0] == ("old" if existing else "nothing") and outcomes[-2:] == ["new", "new"], outcomes
    assert outcomes == sorted(outcomes, key=["nothing", "old", "new"].index)  # old until the commit, new after


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Two SimilarityModel folders and two checkpoints rendered by the real saves (old and new weights)."""
    root = tmp_path_factory.mktemp("renders")
    models = {}
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        base = build_transformer_model(vocab_size=len(VOCAB), hidden_size=8, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=16, with_pool="linear",
                                       max_position_embeddings=16, return_keras_model=False)
        sim = SimilarityModel(Tokenizer(VOCAB), base.model, maxlen=8)
        sim.build_index(["我想注销信用卡", "查询余额"])
        name = "old" if seed == 0 else "new"
        sim.save(str(root / f"sim-{name}"))
        save_checkpoint(base, str(root / f"ckpt-{name}" / "bert_model.ckpt"), vocab=VOCAB)
        models[name] = keras.ops.convert_to_numpy(base.model.get_layer("Pooler-Dense").weights[0])
    return root, models


def _template(root, name):
    """A rendered folder without its marker (the child's atomic_folder writes its own)."""
    template = root / f"{name}-payload"
    if not template.exists():
        shutil.copytree(root / name, template, ignore=shutil.ignore_patterns(MARKER))
    return template


@pytest.mark.parametrize("kind", ["similarity-model", "checkpoint"])
def test_model_and_checkpoint_saves_killed_at_every_stage(tiny_models, tmp_path, kind):
    root, pooler = tiny_models
    short = "sim" if kind == "similarity-model" else "ckpt"
    folder = tmp_path / "out"
    shutil.copytree(root / f"{short}-old", folder)
    if kind == "checkpoint":
        (folder / "training-log.txt").write_text("not ours, kept\n")
    seen = set()

    def check(folder, killed_at):
        if kind == "similarity-model":
            loaded = SimilarityModel.load(str(folder))
            kernel = keras.ops.convert_to_numpy(loaded.encoder.get_layer("Pooler-Dense").weights[0])
            assert len(loaded.index) == 2
        else:
            model = build_transformer_model(str(folder / "bert_config.json"), str(folder), with_pool="linear",
                                            return_keras_model=False)
            kernel = keras.ops.convert_to_numpy(model.model.get_layer("Pooler-Dense").weights[0])
            assert (folder / "training-log.txt").read_text() == "not ours, kept\n"
        matches = [name for name, value in pooler.items() if np.array_equal(kernel, value)]
        assert len(matches) == 1, killed_at
        seen.add(matches[0])
        if killed_at is None:
            assert matches == ["new"]
        shutil.rmtree(folder)
        shutil.copytree(root / f"{short}-old", folder)
        if kind == "checkpoint":
            (folder / "training-log.txt").write_text("not ours, kept\n")

    kill_at_every_stage(folder, f"{kind}:{_template(root, f'{short}-new')}", check)
    assert seen == {"old", "new"}


def test_foreign_folder_refused_and_kept(tmp_path):
    user = tmp_path / "u"
    (user / "sub").mkdir(parents=True)
    (user / "a.txt").write_text("keep")
    index = VectorIndex(4).add(np.ones((2, 4)), ["a", "b"])
    with pytest.raises(FileExistsError, match=r"holds files bert4sim did not write \(a.txt, sub\)"):
        index.save(str(user))
    assert (user / "a.txt").read_text() == "keep" and sorted(os.listdir(user)) == ["a.txt", "sub"]
    (tmp_path / "file").write_text("mine")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        index.save(str(tmp_path / "file"))
    assert (tmp_path / "file").read_text() == "mine"
    index.save(str(tmp_path / "idx"))
    (tmp_path / "idx" / "notes.txt").write_text("added by the user after the save")
    with pytest.raises(FileExistsError, match="notes.txt"):
        index.save(str(tmp_path / "idx"))
    os.remove(tmp_path / "idx" / "notes.txt")
    with atomic_folder(str(tmp_path / "idx2"), "similarity-model") as staging:
        open(os.path.join(staging, "vocab.txt"), "w").write("[PAD]\n")
    with pytest.raises(FileExistsError, match="holds a bert4sim similarity-model, not a vector-index"):
        index.save(str(tmp_path / "idx2"))


def test_replacing_an_index_drops_files_of_the_old_save_only(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    (folder / "faiss.index").write_text("written by an earlier bert4sim (legacy, no marker)")
    for name in ("vectors.npy", "texts.json", "meta.json"):
        (folder / name).write_text("old")
    VectorIndex(4).add(np.ones((2, 4)), ["a", "b"]).save(str(folder))
    assert sorted(os.listdir(folder)) == [MARKER, "meta.json", "texts.json", "vectors.npy"]
    assert json.loads((folder / MARKER).read_text())["files"] == ["meta.json", "texts.json", "vectors.npy"]


def test_an_exception_inside_a_save_leaves_the_old_copy(tmp_path):
    VectorIndex(4).add(np.ones((2, 4)), ["a", "b"]).save(str(tmp_path / "idx"))
    with pytest.raises(RuntimeError):
        with atomic_folder(str(tmp_path / "idx"), "vector-index") as staging:
            open(os.path.join(staging, "vectors.npy"), "w").write("half")
            raise RuntimeError("disk full")
    assert VectorIndex.load(str(tmp_path / "idx")).texts == ["a", "b"]
    no_leftovers(tmp_path / "idx")
