"""A SIGKILL at every stage of a bert4sim.files save leaves the old or the new version, with nothing to recover.

The child counts its filesystem calls (os.open / mkdir / fsync / replace / rename / remove / rmdir / unlink,
flock, open, shutil.rmtree) and kills itself (SIGKILL) at call N, for N = 1, 2, ... until a save runs
to the end. After each kill this process reads the folder (reading changes nothing), checks that
TensorFlow's state files of a checkpoint name a complete version, then saves again: the next save
needs no recovery step and leaves no debris of the killed one.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from bert4sim.files import MARKER, current_version, new_version, read_current

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CKPT = "bert_model.ckpt"

CHILD = r"""
import builtins, fcntl, os, shutil, signal, sys
stage, folder, kind = int(sys.argv[1]), sys.argv[2], sys.argv[3]
from bert4sim.files import new_version
calls = [0]

def killing(function):
    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == stage:
            os.kill(os.getpid(), signal.SIGKILL)
        return function(*args, **kwargs)
    return wrapped

for name in ("open", "mkdir", "fsync", "replace", "rename", "remove", "rmdir", "unlink"):
    setattr(os, name, killing(getattr(os, name)))
fcntl.flock, shutil.rmtree, builtins.open = killing(fcntl.flock), killing(shutil.rmtree), killing(builtins.open)
with new_version(folder, kind, "bert_model.ckpt" if kind == "checkpoint" else None) as path:
    for name in ("a.txt", "b.txt", "bert_config.json", "vocab.txt"):
        with open(os.path.join(path, name), "w") as f:
            f.write("new")
"""


def save(folder, kind, payload):
    with new_version(folder, kind, CKPT if kind == "checkpoint" else None) as path:
        for name in ("a.txt", "b.txt", "bert_config.json", "vocab.txt"):
            with open(os.path.join(path, name), "w") as f:
                f.write(payload)


def read(path):
    with open(os.path.join(path, "a.txt")) as f, open(os.path.join(path, "b.txt")) as g:
        a, b = f.read(), g.read()
    assert a == b, (path, a, b)
    return a


LEGACY = {"vector-index": ["vectors.npy", "texts.json", "meta.json"],
          "checkpoint": [f"{CKPT}.index", f"{CKPT}.data-00000-of-00001", "checkpoint", "bert_config.json"]}


def legacy(folder, kind):
    """A folder as bert4sim 0.1.0 saved it: files at the top, a 'bert4sim-folder-1' marker."""
    os.makedirs(folder)
    for name in ["a.txt", "b.txt"] + LEGACY[kind]:
        with open(os.path.join(folder, name), "w") as f:
            f.write(f'model_checkpoint_path: "{CKPT}"\n' if name == "checkpoint" else "old")
    with open(os.path.join(folder, MARKER), "w") as f:
        json.dump({"kind": kind, "files": sorted(["a.txt", "b.txt"] + LEGACY[kind]), "format": "bert4sim-folder-1"}, f)


def snapshot(root):
    state = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(folder, name)
            state[os.path.relpath(path, root)] = open(path, "rb").read() if os.path.isfile(path) else None
    return state


def tf_state(path):
    """The version a TF ``checkpoint`` state file names, checked complete: what TensorFlow would read."""
    with open(path) as f:
        name = re.fullmatch(r'model_checkpoint_path: "(.*)"\n', f.read()).group(1)
    prefix = os.path.join(os.path.dirname(path), name)
    if name == CKPT:  # 0.1.0's state file: the checkpoint's files are at the top
        return open(prefix + ".index").read()
    return read(os.path.dirname(prefix))


@pytest.mark.parametrize("start", ["fresh", "existing", "legacy"])
@pytest.mark.parametrize("kind", ["vector-index", "checkpoint"])
def test_a_save_killed_at_every_stage_leaves_old_or_new(tmp_path, kind, start):
    folder = str(tmp_path / "f")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    outcomes = []

    def reset():
        shutil.rmtree(folder, ignore_errors=True)
        if start == "existing":
            save(folder, kind, "older")
            save(folder, kind, "old")
        elif start == "legacy":
            legacy(folder, kind)

    reset()
    stage = 0
    while True:
        stage += 1
        done = subprocess.run([sys.executable, "-c", CHILD, str(stage), folder, kind], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode in (0, -signal.SIGKILL), done.stderr
        before = snapshot(tmp_path)
        try:
            outcomes.append(read_current(folder, kind, read))
        except FileNotFoundError as error:
            assert start == "fresh", error  # a first save killed before its commit: there was nothing to lose
            outcomes.append("nothing")
        assert snapshot(tmp_path) == before  # reading changed nothing
        if kind == "checkpoint" and outcomes[-1] != "nothing":
            for state in (os.path.join(folder, "checkpoint"), os.path.join(folder, CKPT, "checkpoint")):
                if os.path.exists(state):  # written after the commit: it may still name the old version
                    assert tf_state(state) in ("old", "new"), stage
        if done.returncode == 0:
            assert outcomes[-1] == "new"
            break
        save(folder, kind, "again")  # the next save needs no recovery and clears the killed one's debris
        assert read_current(folder, kind, read) == "again"
        store = os.path.join(folder, CKPT) if kind == "checkpoint" else folder
        versions = [n for n in os.listdir(store) if re.fullmatch(r"v\d{6}", n)]
        assert len(versions) <= 2 and current_version(folder, kind).endswith(max(versions)), versions
        assert not [n for n in os.listdir(folder) + os.listdir(store) if ".tmp-" in n or n.startswith(
            (".bert4sim-tmp", ".bert4sim-old"))]
        if kind == "checkpoint":
            assert tf_state(os.path.join(folder, "checkpoint")) == "again"
            assert open(os.path.join(folder, "vocab.txt")).read() == "again"
        if start == "legacy":  # 0.1.0's files gone (a checkpoint's state file and config are rewritten)
            assert not set(LEGACY[kind][:2]) & set(os.listdir(folder))
        reset()
    assert stage > 10, stage  # the save has many stages and each was killed once
    first = {"fresh": "nothing", "existing": "old", "legacy": "old"}[start]
    assert outcomes[0] == first and set(outcomes) == {first, "new"}, outcomes
    assert outcomes == sorted(outcomes, key=[first, "new"].index)  # old until the commit, new after
    print(f"{kind} from {start}: killed at {stage - 1} stages, outcomes {outcomes.count(first)} {first} "
          f"then {outcomes.count('new')} new")
