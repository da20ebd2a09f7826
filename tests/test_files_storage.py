"""bert4sim.files alone: versioned saves, validated markers, 0.1.0 folders, and prepared hostile folders.

The hostile cases build a sandbox with an ``outside`` folder next to the target and check, for
every kind, that loading changes nothing at all and that saving changes nothing outside the target.
"""
import errno
import json
import os
import shutil
import stat
import subprocess

import pytest

from bert4sim.files import (FORMAT, KINDS, LEGACY_FORMAT, LOCK, MARKER, check_writable, current_version, new_version,
                            read_current, read_marker)

CKPT = "bert_model.ckpt"


def prefix_of(kind):
    return CKPT if kind == "checkpoint" else None


def save(folder, kind, payload="new", extra=None):
    """One save of a tiny payload: two files that must always agree."""
    with new_version(folder, kind, prefix_of(kind)) as path:
        for name in ("a.txt", "b.txt"):
            with open(os.path.join(path, name), "w") as f:
                f.write(payload)
        for name, text in (extra or {}).items():
            with open(os.path.join(path, name), "w") as f:
                f.write(text)
    return path


def read_payload(path):
    with open(os.path.join(path, "a.txt")) as f, open(os.path.join(path, "b.txt")) as g:
        a, b = f.read(), g.read()
    assert a == b, (a, b)
    return a


def load(folder, kind):
    return read_current(folder, kind, read_payload)


def snapshot(root):
    """Every entry under ``root``, links not followed: a link's target, a file's bytes and mode."""
    state = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                state[os.path.relpath(path, root)] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                state[os.path.relpath(path, root)] = ("dir",)
            else:
                with open(path, "rb") as f:
                    state[os.path.relpath(path, root)] = ("file", f.read(), info.st_mode)
    return state


# --- ordinary use ---

def test_versions_pointer_and_keep_two(tmp_path):
    folder = str(tmp_path / "idx")
    save(folder, "vector-index", "one")
    assert sorted(os.listdir(folder)) == [MARKER, LOCK, "v000001"]
    assert read_marker(folder) == {"kind": "vector-index", "format": FORMAT, "current": "v000001", "upgrading": False}
    assert current_version(folder, "vector-index") == os.path.join(folder, "v000001")
    save(folder, "vector-index", "two")
    save(folder, "vector-index", "three")
    assert sorted(n for n in os.listdir(folder) if n.startswith("v")) == ["v000002", "v000003"]
    assert load(folder, "vector-index") == "three"
    assert read_payload(os.path.join(folder, "v000002")) == "two"  # the previous version stays for slow readers


def test_a_version_being_read_is_not_removed_by_later_saves(tmp_path):
    folder = str(tmp_path / "idx")
    save(folder, "vector-index", "one")

    def slow_read(path):
        for payload in ("two", "three", "four"):  # saves while this reader holds v000001
            save(folder, "vector-index", payload)
        return read_payload(path)

    assert read_current(folder, "vector-index", slow_read) == "one"
    assert sorted(n for n in os.listdir(folder) if n.startswith("v")) == ["v000001", "v000003", "v000004"]
    save(folder, "vector-index", "five")  # no reader holds v000001 now
    assert sorted(n for n in os.listdir(folder) if not n.startswith(".bert4sim.")) == ["v000004", "v000005"]


def test_trailing_separator_means_that_folder(tmp_path):
    save(str(tmp_path / "ck1") + os.sep, "checkpoint")
    assert sorted(os.listdir(tmp_path)) == ["ck1"]
    assert load(str(tmp_path / "ck1"), "checkpoint") == "new"


def test_exception_inside_a_save_leaves_the_folder_as_it_was(tmp_path):
    folder = str(tmp_path / "idx")
    save(folder, "vector-index", "old")
    before = snapshot(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        with new_version(folder, "vector-index") as path:
            open(os.path.join(path, "a.txt"), "w").write("half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert snapshot(tmp_path) == before
    assert load(folder, "vector-index") == "old"


def test_a_failed_commit_keeps_the_old_version(tmp_path, monkeypatch):
    folder = str(tmp_path / "idx")
    save(folder, "vector-index", "old")
    before = snapshot(tmp_path)
    real_replace = os.replace

    def full_disk(source, target):
        if os.path.basename(target) == MARKER:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save(folder, "vector-index", "new")
    monkeypatch.undo()
    assert snapshot(tmp_path) == before
    assert load(folder, "vector-index") == "old"


def chattr(flag, path):
    if shutil.which("chattr") is None or subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode:
        pytest.skip("chattr +i/-i not available here (needs root and a filesystem with attributes)")


@pytest.mark.parametrize("frozen", ["folder", "marker"])
def test_immutable_folder_or_marker_is_an_error_and_keeps_the_old_version(tmp_path, frozen):
    folder = tmp_path / "idx"
    save(str(folder), "vector-index", "old")
    target = folder if frozen == "folder" else folder / MARKER
    chattr("+i", target)
    try:
        before = snapshot(tmp_path)
        with pytest.raises(PermissionError):
            save(str(folder), "vector-index", "new")
        assert snapshot(tmp_path) == before
        assert load(str(folder), "vector-index") == "old"
    finally:
        chattr("-i", target)


def test_kinds_never_overwrite_each_other(tmp_path):
    for kind in KINDS:
        save(str(tmp_path / kind), kind)
    for kind in KINDS:
        for other in KINDS:
            if other != kind:
                with pytest.raises(FileExistsError, match=f"holds a bert4sim {kind}, not a {other}"):
                    save(str(tmp_path / kind), other)
                with pytest.raises(ValueError, match=f"holds a bert4sim {kind}, not a {other}"):
                    current_version(str(tmp_path / kind), other)
    with pytest.raises(FileExistsError, match="holds checkpoint 'bert_model.ckpt', not 'model.ckpt'"):
        with new_version(str(tmp_path / "checkpoint"), "checkpoint", "model.ckpt"):
            pass


def test_folders_that_are_not_ours_are_refused(tmp_path):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        save(str(tmp_path / "file"), "vector-index")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / ".env").write_text("SECRET=1")
    with pytest.raises(FileExistsError, match=r"not a bert4sim folder \(no .bert4sim.json\) and not empty \(.env\)"):
        save(str(tmp_path / "user"), "similarity-model")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / MARKER).write_text('{"kind": "vector-index", "format": "bert4sim-folder-9"}')
    with pytest.raises(ValueError, match=r"bad/.bert4sim.json: unknown format 'bert4sim-folder-9'"):
        check_writable(str(tmp_path / "bad"), "vector-index")
    assert (tmp_path / "file").read_text() == "mine" and os.listdir(tmp_path / "user") == [".env"]


def test_a_folder_left_by_a_killed_first_save_is_still_ours(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    (folder / LOCK).write_text("")
    (folder / MARKER).write_text(json.dumps({"kind": "vector-index", "format": FORMAT, "current": None}))
    (folder / "v000001").mkdir()  # the first save's unfinished version
    (folder / "v000001" / "a.txt").write_text("half")
    with pytest.raises(FileNotFoundError, match="holds no complete save yet"):
        current_version(str(folder), "vector-index")
    save(str(folder), "vector-index")
    assert sorted(os.listdir(folder)) == [MARKER, LOCK, "v000002"]
    assert load(str(folder), "vector-index") == "new"


def test_checkpoint_versions_and_tensorflow_state_files(tmp_path):
    folder = tmp_path / "ck"
    (tmp_path / "ck").mkdir()
    for number in (1, 2, 3):
        save(str(folder), "checkpoint", f"w{number}", extra={"bert_config.json": f"config {number}",
                                                            "vocab.txt": f"vocab {number}"})
    assert sorted(os.listdir(folder)) == sorted([MARKER, LOCK, CKPT, "checkpoint", "bert_config.json", "vocab.txt"])
    assert sorted(os.listdir(folder / CKPT)) == ["checkpoint", "v000002", "v000003"]
    assert (folder / CKPT / "checkpoint").read_text() == f'model_checkpoint_path: "v000003/{CKPT}"\n'
    assert (folder / "checkpoint").read_text() == f'model_checkpoint_path: "{CKPT}/v000003/{CKPT}"\n'
    assert (folder / "bert_config.json").read_text() == "config 3" and (folder / "vocab.txt").read_text() == "vocab 3"
    for where in (folder, folder / CKPT):  # the folder, or the checkpoint's own folder as TF users pass it
        assert current_version(str(where), "checkpoint") == str(folder / CKPT / "v000003")
    (folder / "training-log.txt").write_text("not ours, kept")
    save(str(folder), "checkpoint", "w4")
    assert (folder / "training-log.txt").read_text() == "not ours, kept"


def test_tensorflow_reads_the_current_checkpoint_at_the_usual_paths(tmp_path):
    tf = pytest.importorskip("tensorflow")
    folder = str(tmp_path / "ck")
    for number in (1, 2, 3):
        with new_version(folder, "checkpoint", CKPT) as path:
            tf.raw_ops.SaveV2(prefix=os.path.join(path, CKPT), tensor_names=["bert/x"], shape_and_slices=[""],
                              tensors=[tf.constant([float(number)])])
    for where in (os.path.join(folder, CKPT), folder, os.path.join(folder, CKPT) + "/"):
        assert tf.train.load_variable(where, "bert/x").tolist() == [3.0]
        assert tf.train.list_variables(where) == [("bert/x", [1])]
    assert tf.train.latest_checkpoint(folder) == os.path.join(folder, CKPT, "v000003", CKPT)


# --- bert4sim 0.1.0 folders ---

LEGACY = {
    "vector-index": ["vectors.npy", "texts.json", "meta.json"],
    "similarity-model": ["encoder.keras", "vocab.txt", "similarity_model.json", "index"],
    "checkpoint": ["bert_config.json", "vocab.txt", "checkpoint", f"{CKPT}.index", f"{CKPT}.data-00000-of-00001"],
}


def legacy_folder(folder, kind, files=None):
    """A folder as bert4sim 0.1.0 saved it: files at the top and a 'bert4sim-folder-1' marker."""
    folder.mkdir()
    for name in LEGACY[kind]:
        if name == "index":
            (folder / "index").mkdir()
            for inner in LEGACY["vector-index"]:
                (folder / "index" / inner).write_text("0.1.0")
        else:
            (folder / name).write_text("0.1.0")
    (folder / "a.txt").write_text("0.1.0")
    (folder / "b.txt").write_text("0.1.0")
    marker = {"kind": kind, "files": sorted(files or LEGACY[kind] + ["a.txt", "b.txt"]), "format": LEGACY_FORMAT}
    (folder / MARKER).write_text(json.dumps(marker))


@pytest.mark.parametrize("kind", KINDS)
def test_legacy_folder_loads_read_only_and_a_save_upgrades_it(tmp_path, kind):
    folder = tmp_path / "old"
    legacy_folder(folder, kind)
    (folder / "notes.txt").write_text("the user's")
    if kind == "similarity-model":
        (folder / "index" / "notes.txt").write_text("the user's")
    before = snapshot(tmp_path)
    assert current_version(str(folder), kind) == str(folder) and load(str(folder), kind) == "0.1.0"
    assert snapshot(tmp_path) == before
    save(str(folder), kind, "new")
    assert load(str(folder), kind) == "new" and read_marker(str(folder))["format"] == FORMAT
    left = {n for n in os.listdir(folder)}
    assert not left & {n for n in LEGACY[kind] if n not in ("bert_config.json", "vocab.txt", "checkpoint", "index")}
    assert (folder / "notes.txt").read_text() == "the user's" and (folder / "a.txt").exists()  # not 0.1.0's names
    if kind == "similarity-model":
        assert sorted(os.listdir(folder / "index")) == ["notes.txt"]  # 0.1.0's index files gone, the user's kept


def test_an_upgrade_killed_after_its_commit_is_finished_by_the_next_save(tmp_path):
    folder = tmp_path / "old"
    legacy_folder(folder, "vector-index")
    save(str(folder), "vector-index", "new")
    (folder / "meta.json").write_text("0.1.0's, left by an upgrade killed after its commit")
    marker = read_marker(str(folder))
    (folder / MARKER).write_text(json.dumps({**marker, "upgrading": True}))
    (folder / "meta2.json").write_text("the user's")
    save(str(folder), "vector-index", "again")
    assert not (folder / "meta.json").exists() and (folder / "meta2.json").exists()
    assert read_marker(str(folder))["upgrading"] is False
    (folder / "meta.json").write_text("the user's, in a folder that is no longer upgrading")
    save(str(folder), "vector-index", "later")
    assert (folder / "meta.json").exists()


def test_a_folder_without_a_marker_loads_as_it_is(tmp_path):
    (tmp_path / "hand").mkdir()
    for name in ("a.txt", "b.txt"):
        (tmp_path / "hand" / name).write_text("by hand")
    for kind in KINDS:
        assert load(str(tmp_path / "hand"), kind) == "by hand"


# --- prepared hostile folders: nothing outside the target changes on load or on save ---

def journal(target, outside, marker=True):
    staging = target / ".bert4sim-tmp-1-deadbeef"
    (staging / "new").mkdir(parents=True)
    (staging / "new" / "a.txt").write_text("staged")
    (target / "vectors.npy").write_text("moved")
    (target / ".bert4sim-commit.json").write_text(json.dumps(
        {"staging": str(outside), "moves": ["../outside/victim.txt", str(outside / "some_dir")],
         "delete": ["../outside/victim.txt", str(outside / "some_dir"), "../outside"]}))
    if marker:
        (target / MARKER).write_text(json.dumps({"kind": "vector-index", "files": ["vectors.npy"],
                                                 "format": LEGACY_FORMAT}))


def ours(target, kind="vector-index", current="v000002", versions=("v000001", "v000002")):
    target.mkdir(exist_ok=True)
    for name in versions:
        (target / name).mkdir()
        (target / name / "a.txt").write_text(name)
        (target / name / "b.txt").write_text(name)
    marker = {"kind": kind, "format": FORMAT, "current": current}
    (target / MARKER).write_text(json.dumps(marker))


def our_checkpoint(target):
    target.mkdir()
    save(str(target), "checkpoint", "old", extra={"bert_config.json": "{}", "vocab.txt": "[PAD]"})


def write_marker(target, **marker):
    target.mkdir(exist_ok=True)
    (target / MARKER).write_text(json.dumps(marker))


CASES = {
    # 0.1.0 commit journals naming absolute and ../ paths
    "journal_absolute_and_dotdot": (lambda t, o: journal(t, o), ()),
    "journal_without_marker": (lambda t, o: journal(t, o, marker=False), ()),
    "journal_in_a_current_folder": (lambda t, o: (ours(t), journal(t, o, marker=False)), ("vector-index",)),
    # markers naming paths out of the folder
    "legacy_marker_dotdot_files": (lambda t, o: write_marker(t, kind="vector-index", format=LEGACY_FORMAT,
                                                             files=["../outside/some_dir", "vectors.npy"]), ()),
    "legacy_marker_absolute_files": (lambda t, o: write_marker(t, kind="similarity-model", format=LEGACY_FORMAT,
                                                               files=[str(o / "victim.txt")]), ()),
    "marker_current_dotdot": (lambda t, o: write_marker(t, kind="vector-index", format=FORMAT,
                                                        current="../outside"), ()),
    "marker_current_absolute": (lambda t, o: write_marker(t, kind="vector-index", format=FORMAT,
                                                          current=str(o / "v000001")), ()),
    "marker_kind_dotdot": (lambda t, o: write_marker(t, kind="../outside", format=FORMAT, current=None), ()),
    "checkpoint_prefix_dotdot": (lambda t, o: write_marker(t, kind="checkpoint", format=FORMAT, current="v000001",
                                                           prefix="../outside"), ()),
    "checkpoint_prefix_absolute": (lambda t, o: write_marker(t, kind="checkpoint", format=FORMAT, current=None,
                                                             prefix=str(o / "some_dir")), ()),
    "marker_is_a_link_out": (lambda t, o: (t.mkdir(), os.symlink(o / "marker.json", t / MARKER)), ()),
    # symbolic links out of the folder where bert4sim's own names are
    "current_version_is_a_link_out": (lambda t, o: (t.mkdir(), os.symlink(o / "v000001", t / "v000001"),
                                                    write_marker(t, kind="vector-index", format=FORMAT,
                                                                 current="v000001")), ("vector-index",)),
    "old_versions_are_links_out": (lambda t, o: (t.mkdir(), [os.symlink(o / "v000001", t / f"v00000{n}")
                                                             for n in (1, 3)], ours(t, versions=("v000002",))),
                                   ("vector-index",)),
    "links_inside_old_versions": (lambda t, o: (ours(t, versions=("v000001", "v000002")),
                                                os.symlink(o, t / "v000001" / "escape"),
                                                os.symlink(o / "victim.txt", t / "v000001" / "a.txt.link")),
                                  ("vector-index",)),
    "lock_is_a_link_out": (lambda t, o: (ours(t), os.symlink(o / "victim.txt", t / LOCK)), ()),
    "lock_is_a_dangling_link_out": (lambda t, o: (ours(t), os.symlink(o / "created.txt", t / LOCK)), ()),
    "temp_names_are_links_out": (lambda t, o: (ours(t), os.symlink(o / "victim.txt", t / f"{MARKER}.tmp-deadbeef"),
                                               os.symlink(o / "some_dir", t / "vocab.txt.tmp-deadbeef"),
                                               (t / "v000009").write_text("a file, not a version")),
                                 ("vector-index",)),
    "checkpoint_folder_is_a_link_out": (lambda t, o: (write_marker(t, kind="checkpoint", format=FORMAT,
                                                                   current="v000001", prefix=CKPT),
                                                      os.symlink(o / "some_dir", t / CKPT)), ()),
    "checkpoint_state_and_copies_are_links_out": (
        lambda t, o: (our_checkpoint(t), [(os.remove(t / n), os.symlink(o / "victim.txt", t / n))
                                          for n in ("checkpoint", "bert_config.json", "vocab.txt")],
                      os.remove(t / CKPT / "checkpoint"), os.symlink(o / "victim.txt", t / CKPT / "checkpoint")),
        ("checkpoint",)),
    "legacy_staging_is_a_link_out": (lambda t, o: (legacy_folder(t, "vector-index"),
                                                   os.symlink(o / "some_dir", t / ".bert4sim-tmp-1-deadbeef")),
                                     ("vector-index",)),
    "legacy_files_are_links_out": (lambda t, o: (legacy_folder(t, "vector-index"), os.remove(t / "vectors.npy"),
                                                 os.symlink(o / "victim.txt", t / "vectors.npy")), ("vector-index",)),
    "legacy_index_is_a_link_out": (lambda t, o: (legacy_folder(t, "similarity-model"), shutil.rmtree(t / "index"),
                                                 os.symlink(o / "some_dir", t / "index")), ("similarity-model",)),
    # user folders whose files have bert4sim's names, and no marker
    "user_files_with_bert4sim_names": (lambda t, o: [(t / n).parent.mkdir(parents=True, exist_ok=True) or
                                                     (t / n).write_text("the user's") for n in
                                                     ("vectors.npy", "texts.json", "meta.json", "vocab.txt",
                                                      "encoder.keras", "similarity_model.json", "index/notes.txt",
                                                      "bert_config.json", "checkpoint", f"{CKPT}.index",
                                                      "v000001/a.txt", "v000001/b.txt")], ()),
    "tf_state_naming_a_path_out": (lambda t, o: (t.mkdir(), (t / "checkpoint").write_text(
        f'model_checkpoint_path: "{o / "some_dir" / "model.ckpt"}"\n'), (t / "a.txt").write_text("x"),
        (t / "b.txt").write_text("x")), ()),
}


@pytest.fixture
def sandbox(tmp_path):
    outside = tmp_path / "outside"
    (outside / "some_dir").mkdir(parents=True)
    (outside / "some_dir" / "x.txt").write_text("keep")
    (outside / "some_dir" / "vectors.npy").write_text("keep")
    (outside / "victim.txt").write_text("keep")
    (outside / "v000001").mkdir()
    (outside / "v000001" / "a.txt").write_text("outside")
    (outside / "v000001" / "b.txt").write_text("outside")
    (outside / "marker.json").write_text(json.dumps({"kind": "vector-index", "format": FORMAT, "current": "v000001"}))
    return tmp_path, tmp_path / "target", outside


@pytest.mark.parametrize("case", sorted(CASES))
def test_prepared_folders_change_nothing_on_load_and_nothing_outside_on_save(sandbox, case):
    root, target, outside = sandbox
    prepare, saved_kinds = CASES[case]
    prepare(target, outside)
    for kind in KINDS:
        before = snapshot(root)
        for where in (target, target / CKPT):
            for attempt in (lambda: current_version(str(where), kind), lambda: load(str(where), kind)):
                try:
                    result = attempt()
                except (OSError, ValueError, AssertionError):  # AssertionError: a.txt and b.txt differ
                    continue
                assert "outside" not in result  # never a version read through a link out of the folder
        assert snapshot(root) == before, f"a {kind} load changed files"
    for kind in KINDS:
        outside_before = snapshot(outside)
        try:
            save(str(target), kind, "new")
            saved = True
        except (OSError, ValueError) as error:
            saved = False
            assert str(target) in str(error) or error.errno == errno.ELOOP, error  # names the folder
        assert snapshot(outside) == outside_before, f"a {kind} save changed files outside the folder"
        assert not (outside / "created.txt").exists()
        assert saved == (kind in saved_kinds), (kind, saved)
        if saved:
            assert load(str(target), kind) == "new"
