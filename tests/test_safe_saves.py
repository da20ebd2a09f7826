"""Saves of real bert4sim folders never destroy data: a SIGKILL at any stage leaves the old or new version,
loading changes nothing, folders that are not bert4sim's are refused, 0.1.0 folders load and upgrade.

The kill tests run each save in a child process whose os.open / mkdir / fsync / replace / rename /
remove / rmdir / unlink, flock, open and shutil.rmtree calls are counted; the child kills itself (SIGKILL) at
call N, for N = 1, 2, ... until a save runs to the end. After each kill this process loads the folder
(no recovery step exists) and saves into it again. VectorIndex.save runs whole in the child (no
TensorFlow needed). SimilarityModel.save and save_checkpoint need TensorFlow, whose import is too slow
to repeat per stage here, so their files are rendered once by the real save and the child commits a
copy through the same bert4sim.files.new_version those saves use.
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

from bert4sim.files import LOCK, MARKER, current_version, new_version
from bert4sim.models import build_transformer_model, save_checkpoint
from bert4sim.similarity import SimilarityModel, VectorIndex
from bert4sim.tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("我想注销信用卡查询余额"))}
CKPT = "bert_model.ckpt"

CHILD = r"""
import builtins, fcntl, os, shutil, signal, sys
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

from bert4sim.files import new_version
from bert4sim.index import VectorIndex
if what == "index":
    texts = ["new-%d" % i for i in range(5)]
    index = VectorIndex(4).add(np.eye(5, 4) + 0.5, texts)
copy = shutil.copytree, shutil.copyfile
for name in ("open", "mkdir", "fsync", "replace", "rename", "remove", "rmdir", "unlink"):
    setattr(os, name, killing(getattr(os, name)))
fcntl.flock, shutil.rmtree, builtins.open = killing(fcntl.flock), killing(shutil.rmtree), killing(builtins.open)
if what == "index":
    index.save(folder)
else:
    kind, template = what.split(":", 1)
    with new_version(folder, kind, "bert_model.ckpt" if kind == "checkpoint" else None) as path:
        for name in os.listdir(template):
            source = os.path.join(template, name)
            (copy[0] if os.path.isdir(source) else copy[1])(source, os.path.join(path, name))
"""


def run_child(stage, folder, what):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", CHILD, str(stage), str(folder), what], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, -signal.SIGKILL), done.stderr
    return done.returncode == 0


def snapshot(root):
    """Every entry under ``root`` (links not followed) with a file's bytes: to show a load changed nothing."""
    state = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(folder, name)
            state[os.path.relpath(path, root)] = open(path, "rb").read() if os.path.isfile(path) else None
    return state


def read_only(folder, load):
    """``load()``, checked to leave ``folder`` exactly as it was."""
    before = snapshot(folder)
    try:
        return load()
    finally:
        assert snapshot(folder) == before, "a load changed the folder"


def kill_at_every_stage(folder, what, check):
    """Run the child save killed at call 1, 2, ...; ``check(folder, killed_at)`` after each. Returns the kill count."""
    stage = 1
    while not run_child(stage, folder, what):
        check(folder, killed_at=stage)
        stage += 1
    check(folder, killed_at=None)
    assert stage > 10  # the save has many stages, each was killed once
    return stage - 1


@pytest.mark.parametrize("existing", [True, False])
def test_index_save_killed_at_every_stage_leaves_old_or_new(tmp_path, existing):
    folder = tmp_path / "idx"
    old, new = ["old-%d" % i for i in range(3)], ["new-%d" % i for i in range(5)]
    outcomes = []

    def reset():
        shutil.rmtree(folder, ignore_errors=True)
        if existing:  # two versions: the killed save also removes one
            VectorIndex(4).add(np.ones((3, 4)), ["older"] * 3).save(str(folder))
            VectorIndex(4).add(np.ones((3, 4)), old).save(str(folder))

    def check(folder, killed_at):
        try:
            texts = read_only(folder, lambda: VectorIndex.load(str(folder)).texts)  # a complete version, no recovery
            assert texts in (old, new), killed_at
            outcomes.append("old" if texts == old else "new")
        except FileNotFoundError:
            assert not existing, killed_at  # a first save killed before its commit: there was nothing to lose
            outcomes.append("nothing")
        if killed_at is None:
            assert outcomes[-1] == "new"
        else:  # the next save needs no recovery step and clears the killed one's debris
            VectorIndex(4).add(np.ones((2, 4)), ["again", "again"]).save(str(folder))
            assert VectorIndex.load(str(folder)).texts == ["again", "again"]
            assert not [n for n in os.listdir(folder) if ".tmp-" in n or n.startswith(".bert4sim-old")]
            assert len([n for n in os.listdir(folder) if n.startswith("v0")]) <= 2
        reset()

    reset()
    kills = kill_at_every_stage(folder, "index", check)
    first = "old" if existing else "nothing"
    assert outcomes[0] == first and outcomes[-2:] == ["new", "new"], outcomes
    assert outcomes == sorted(outcomes, key=[first, "new"].index)  # old until the commit, new after
    print(f"VectorIndex.save ({'over an index' if existing else 'first save'}): killed at {kills} stages, "
          f"{outcomes.count(first)} {first} then {outcomes.count('new')} new")


def tiny(seed):
    keras.utils.set_random_seed(seed)
    return build_transformer_model(vocab_size=len(VOCAB), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=16, with_pool="linear", max_position_embeddings=16,
                                   return_keras_model=False)


def pooler(model):
    return keras.ops.convert_to_numpy(model.get_layer("Pooler-Dense").weights[0])


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Two SimilarityModel folders and two checkpoint folders rendered by the real saves (old and new weights)."""
    root = tmp_path_factory.mktemp("renders")
    kernels = {}
    for seed, name in ((0, "old"), (1, "new")):
        base = tiny(seed)
        sim = SimilarityModel(Tokenizer(VOCAB), base.model, maxlen=8)
        sim.build_index(["我想注销信用卡", "查询余额"])
        sim.save(str(root / f"sim-{name}"))
        save_checkpoint(base, str(root / f"ckpt-{name}" / CKPT), vocab=VOCAB)
        kernels[name] = pooler(base.model)
    return root, kernels


@pytest.mark.parametrize("kind", ["similarity-model", "checkpoint"])
def test_model_and_checkpoint_saves_killed_at_every_stage(tiny_models, tmp_path, kind):
    import tensorflow as tf

    root, kernels = tiny_models
    short = "sim" if kind == "similarity-model" else "ckpt"
    folder = tmp_path / "out"
    template = current_version(str(root / f"{short}-new"), kind)  # what the real save wrote

    def reset():
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(root / f"{short}-old", folder)
        if kind == "checkpoint":
            (folder / "training-log.txt").write_text("not ours, kept\n")

    seen = []

    def check(folder, killed_at):
        if kind == "similarity-model":
            loaded = read_only(folder, lambda: SimilarityModel.load(str(folder)))
            kernel = pooler(loaded.encoder)
            assert len(loaded.index) == 2
        else:
            kernel = pooler(read_only(folder, lambda: build_transformer_model(
                str(folder / "bert_config.json"), str(folder), with_pool="linear")))
            assert (folder / "training-log.txt").read_text() == "not ours, kept\n"
            # what bert4keras reads: tf.train.load_variable on FOLDER/bert_model.ckpt, through TF's state file
            stored = read_only(folder, lambda: tf.train.load_variable(str(folder / CKPT), "bert/pooler/dense/kernel"))
            assert any(np.array_equal(stored, value) for value in kernels.values()), killed_at
        matches = [name for name, value in kernels.items() if np.array_equal(kernel, value)]
        assert len(matches) == 1, killed_at
        seen.append(matches[0])
        if killed_at is None:
            assert matches == ["new"]
        reset()

    reset()
    kills = kill_at_every_stage(folder, f"{kind}:{template}", check)
    assert seen[0] == "old" and seen[-1] == "new" and seen == sorted(seen, key=["old", "new"].index), seen
    print(f"{kind}: killed at {kills} stages, {seen.count('old')} old then {seen.count('new')} new")


def test_folders_that_are_not_bert4sims_are_refused_and_kept(tmp_path):
    user = tmp_path / "u"
    (user / "sub").mkdir(parents=True)
    (user / "a.txt").write_text("keep")
    index = VectorIndex(4).add(np.ones((2, 4)), ["a", "b"])
    with pytest.raises(FileExistsError, match=r"u is not a bert4sim folder \(no .bert4sim.json\) and not empty "
                                              r"\(a.txt, sub\)"):
        index.save(str(user))
    assert (user / "a.txt").read_text() == "keep" and sorted(os.listdir(user)) == ["a.txt", "sub"]
    (tmp_path / "file").write_text("mine")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        index.save(str(tmp_path / "file"))
    assert (tmp_path / "file").read_text() == "mine"
    # user files with bert4sim's names, no marker: refused too, whatever the names
    named = tmp_path / "named"
    (named / "index").mkdir(parents=True)
    for name in ("vocab.txt", "meta.json", "texts.json", "index/notes.txt"):
        (named / name).write_text("the user's")
    for save in (index.save, SimilarityModel(Tokenizer(VOCAB), tiny(0).model, maxlen=8).save,
                 lambda path: save_checkpoint(tiny(0), os.path.join(path, CKPT))):
        with pytest.raises(FileExistsError, match="not a bert4sim folder"):
            save(str(named))
    assert sorted(os.listdir(named)) == ["index", "meta.json", "texts.json", "vocab.txt"]
    assert (named / "index" / "notes.txt").read_text() == "the user's"


def test_a_users_files_in_a_bert4sim_folder_are_left_alone(tmp_path):
    index = VectorIndex(4).add(np.ones((2, 4)), ["a", "b"])
    index.save(str(tmp_path / "idx"))
    (tmp_path / "idx" / "notes.txt").write_text("added by the user after the save")
    index.save(str(tmp_path / "idx"))
    index.save(str(tmp_path / "idx"))
    assert (tmp_path / "idx" / "notes.txt").read_text() == "added by the user after the save"
    assert sorted(os.listdir(tmp_path / "idx")) == [MARKER, LOCK, "notes.txt", "v000002", "v000003"]


def test_kinds_never_replace_each_other(tmp_path):
    base = tiny(0)
    sim = SimilarityModel(Tokenizer(VOCAB), base.model, maxlen=8)
    sim.save(str(tmp_path / "model"))
    save_checkpoint(base, str(tmp_path / "ckpt" / CKPT), vocab=VOCAB)
    VectorIndex(4).add(np.ones((2, 4)), ["a", "b"]).save(str(tmp_path / "index"))
    before = snapshot(tmp_path)
    with pytest.raises(FileExistsError, match="holds a bert4sim similarity-model, not a checkpoint"):
        save_checkpoint(base, str(tmp_path / "model" / CKPT))
    with pytest.raises(FileExistsError, match="holds a bert4sim similarity-model, not a checkpoint"):
        save_checkpoint(base, str(tmp_path / "model") + os.sep)
    with pytest.raises(FileExistsError, match="holds a bert4sim checkpoint, not a similarity-model"):
        sim.save(str(tmp_path / "ckpt"))
    with pytest.raises(FileExistsError, match="holds a bert4sim vector-index, not a similarity-model"):
        sim.save(str(tmp_path / "index"))
    with pytest.raises(FileExistsError, match="holds checkpoint 'bert_model.ckpt', not 'model.ckpt'"):
        save_checkpoint(base, str(tmp_path / "ckpt" / "model.ckpt"))
    assert snapshot(tmp_path) == before
    # a SimilarityModel.load of a checkpoint folder builds from it, as before
    assert np.array_equal(pooler(SimilarityModel.load(str(tmp_path / "ckpt")).encoder), pooler(base.model))


def test_a_path_ending_in_a_separator_is_that_folder(tmp_path):
    base = tiny(0)
    assert save_checkpoint(base, str(tmp_path / "models" / "ck1") + os.sep) == str(tmp_path / "models" / "ck1" / CKPT)
    assert sorted(os.listdir(tmp_path / "models")) == ["ck1"]
    assert sorted(os.listdir(tmp_path / "models" / "ck1")) == sorted([MARKER, LOCK, CKPT, "bert_config.json", "checkpoint"])
    save_checkpoint(base, str(tmp_path / "models" / "ck1"))  # a bert4sim checkpoint folder, named without one
    model = build_transformer_model(str(tmp_path / "models" / "ck1" / "bert_config.json"),
                                    str(tmp_path / "models" / "ck1" / CKPT), with_pool="linear")
    assert np.array_equal(pooler(model), pooler(base.model))
    assert sorted(os.listdir(tmp_path / "models" / "ck1" / CKPT)) == ["checkpoint", "v000001", "v000002"]


def test_an_exception_inside_a_save_leaves_the_old_version(tmp_path):
    VectorIndex(4).add(np.ones((2, 4)), ["a", "b"]).save(str(tmp_path / "idx"))
    before = snapshot(tmp_path)
    with pytest.raises(RuntimeError):
        with new_version(str(tmp_path / "idx"), "vector-index") as path:
            open(os.path.join(path, "vectors.npy"), "w").write("half")
            raise RuntimeError("disk full")
    assert VectorIndex.load(str(tmp_path / "idx")).texts == ["a", "b"]
    assert snapshot(tmp_path) == before


# --- folders written by bert4sim 0.1.0: files at the top, marker format "bert4sim-folder-1" ---

def as_0_1_0(rendered, folder, kind):
    """Lay a rendered version out as bert4sim 0.1.0 saved it (its journal committed the files at the top)."""
    shutil.copytree(current_version(rendered, kind), folder)
    if kind == "checkpoint":
        (folder / "checkpoint").write_text(f'model_checkpoint_path: "{CKPT}"\n')
    marker = {"kind": kind, "files": sorted(os.listdir(folder)), "format": "bert4sim-folder-1"}
    (folder / MARKER).write_text(json.dumps(marker, indent=2))
    return folder


@pytest.mark.parametrize("kind", ["vector-index", "similarity-model", "checkpoint"])
def test_0_1_0_folders_load_read_only_and_a_save_upgrades_them(tiny_models, tmp_path, kind):
    root, kernels = tiny_models
    if kind == "vector-index":
        rendered = os.path.join(current_version(str(root / "sim-old"), "similarity-model"), "index")
        old = tmp_path / "old"
        shutil.copytree(rendered, old)
        (old / MARKER).write_text(json.dumps({"kind": kind, "files": sorted(os.listdir(old)),
                                              "format": "bert4sim-folder-1"}))
    else:
        old = as_0_1_0(str(root / ("sim-old" if kind == "similarity-model" else "ckpt-old")), tmp_path / "old", kind)
    (old / "notes.txt").write_text("the user's")
    before = snapshot(tmp_path)
    if kind == "vector-index":
        assert VectorIndex.load(str(old)).texts == ["我想注销信用卡", "查询余额"]
    elif kind == "similarity-model":
        assert np.array_equal(pooler(SimilarityModel.load(str(old)).encoder), kernels["old"])
    else:
        for checkpoint in (str(old), str(old / CKPT)):
            model = build_transformer_model(str(old / "bert_config.json"), checkpoint, with_pool="linear")
            assert np.array_equal(pooler(model), kernels["old"])
        assert np.array_equal(pooler(SimilarityModel.from_checkpoint(str(old)).encoder), kernels["old"])
    assert snapshot(tmp_path) == before  # loading wrote, renamed and deleted nothing
    new = tiny(1)
    if kind == "vector-index":
        VectorIndex(4).add(np.ones((2, 4)), ["a", "b"]).save(str(old))
        assert VectorIndex.load(str(old)).texts == ["a", "b"]
        gone = {"vectors.npy", "texts.json", "meta.json"}
    elif kind == "similarity-model":
        SimilarityModel(Tokenizer(VOCAB), new.model, maxlen=8).save(str(old))
        assert np.array_equal(pooler(SimilarityModel.load(str(old)).encoder), kernels["new"])
        gone = {"encoder.keras", "similarity_model.json", "vocab.txt", "index"}
    else:
        save_checkpoint(new, str(old / CKPT), vocab=VOCAB)
        model = build_transformer_model(str(old / "bert_config.json"), str(old / CKPT), with_pool="linear")
        assert np.array_equal(pooler(model), kernels["new"])
        gone = {f"{CKPT}.index", f"{CKPT}.data-00000-of-00001"}
    assert not gone & set(os.listdir(old)), sorted(os.listdir(old))  # 0.1.0's files, removed after the commit
    assert (old / "notes.txt").read_text() == "the user's"


def test_an_unfinished_0_1_0_save_is_refused_not_replayed(tmp_path):
    folder = tmp_path / "idx"
    VectorIndex(4).add(np.ones((2, 4)), ["a", "b"]).save(str(tmp_path / "render"))
    shutil.copytree(current_version(str(tmp_path / "render"), "vector-index"), folder)
    (folder / MARKER).write_text(json.dumps({"kind": "vector-index", "files": sorted(os.listdir(folder)),
                                             "format": "bert4sim-folder-1"}))
    (tmp_path / "victim.txt").write_text("keep")
    (folder / ".bert4sim-commit.json").write_text(json.dumps(
        {"staging": str(tmp_path), "moves": [], "delete": ["../victim.txt", str(tmp_path / "victim.txt")]}))
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"holds an unfinished bert4sim 0.1.0 save \(.bert4sim-commit.json\)"):
        VectorIndex.load(str(folder))
    with pytest.raises(ValueError, match="unfinished bert4sim 0.1.0 save"):
        VectorIndex(4).add(np.ones((2, 4)), ["c", "d"]).save(str(folder))
    assert snapshot(tmp_path) == before
