"""Files: crash-safe writes of bert4sim folders (indexes, SimilarityModel folders, checkpoints), checked text reads.

A save writes its files into a staging folder inside the target folder, fsyncs them, then
commits by atomically writing a journal (``.bert4sim-commit.json``) that lists the renames
still to do. The renames follow; the journal is removed last. A crash before the journal
exists leaves the old files untouched (the staging folder is cleaned by the next save); a
crash after it leaves a journal that :func:`recover` (called by every bert4sim loader and
by the next save) plays to the end. So at any instant the folder holds, or is recovered to,
either the old or the new complete copy.

A folder that holds files bert4sim did not write is never overwritten: the target must be
missing, empty, or hold only the files of an earlier save of the same kind (listed in
its ``.bert4sim.json`` marker). Checkpoint saves (``kind="checkpoint"``) share their folder
with other files (e.g. training logs) and only replace the checkpoint's own files.

Example:
    >>> with atomic_folder("indexes/faq", kind="vector-index") as staging:
    ...     np.save(os.path.join(staging, "vectors.npy"), vectors)
"""
import contextlib
import json
import os
import secrets
import shutil

MARKER = ".bert4sim.json"
JOURNAL = ".bert4sim-commit.json"
STAGING_PREFIX = ".bert4sim-tmp-"
# Files earlier bert4sim versions wrote without a marker: such a folder is still ours.
LEGACY_FILES = {
    "vector-index": {"vectors.npy", "texts.json", "meta.json", "faiss.index"},
    "similarity-model": {"encoder.keras", "seq2seq.keras", "vocab.txt", "similarity_model.json", "index"},
}


def _fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root):
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            _fsync_path(os.path.join(folder, name))
        _fsync_path(folder)


def write_json_atomic(path, value):
    """Write JSON to ``path`` through a fsynced temp file renamed in place.

    Example:
        >>> write_json_atomic("out/meta.json", {"dim": 768})
    """
    temp = f"{path}.tmp-{secrets.token_hex(4)}"
    try:
        with open(temp, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=2, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise
    _fsync_path(os.path.dirname(os.path.abspath(path)))


def read_marker(folder):
    """The ``.bert4sim.json`` marker of ``folder`` as a dict, or None when it has none."""
    path = os.path.join(folder, MARKER)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            marker = json.load(f)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is damaged ({error}); remove it if the folder is yours") from None
    if not isinstance(marker, dict) or not isinstance(marker.get("files"), list):
        raise ValueError(f"{path} is not a bert4sim marker (no 'files' list)")
    return marker


def _pid_alive(name):
    try:
        pid = int(name[len(STAGING_PREFIX):].split("-")[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _apply(folder, journal):
    """Play a commit journal to its end; each step can be repeated after a crash."""
    staging = os.path.join(folder, journal["staging"])
    new, trash = os.path.join(staging, "new"), os.path.join(staging, "trash")
    os.makedirs(trash, exist_ok=True)
    for name in journal["delete"]:
        if os.path.lexists(os.path.join(folder, name)):
            os.replace(os.path.join(folder, name), os.path.join(trash, name))
    for name in journal["moves"]:
        source = os.path.join(new, name)
        if not os.path.lexists(source):
            continue  # moved before the crash
        target = os.path.join(folder, name)
        if os.path.lexists(target):
            os.replace(target, os.path.join(trash, name))
        os.replace(source, target)
    _fsync_path(folder)
    os.remove(os.path.join(folder, JOURNAL))
    _fsync_path(folder)
    shutil.rmtree(staging, ignore_errors=True)


def recover(folder):
    """Finish a save that was interrupted after its commit point, and drop dead staging folders.

    Every bert4sim loader calls this first, so a folder whose save was
    killed loads as the old or the new copy. A no-op on a clean folder.

    Example:
        >>> recover("indexes/faq")
    """
    if not os.path.isdir(folder):
        return
    journal_path = os.path.join(folder, JOURNAL)
    if os.path.isfile(journal_path):
        try:
            with open(journal_path, encoding="utf-8") as f:
                journal = json.load(f)
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"{journal_path}: damaged commit journal ({error})") from None
        _apply(folder, journal)
    for name in os.listdir(folder):
        if name.startswith(STAGING_PREFIX) and not _pid_alive(name):
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


def check_writable(folder, kind):
    """Raise unless ``folder`` may receive a ``kind`` save without losing anyone's files.

    Example:
        >>> check_writable("indexes/faq", "vector-index")
    """
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise FileExistsError(f"{folder} is a file, not a folder: refusing to replace it")
    if not os.path.isdir(folder) or kind == "checkpoint":
        return
    entries = {name for name in os.listdir(folder) if not name.startswith((MARKER, JOURNAL, STAGING_PREFIX))}
    if not entries:
        return
    marker = read_marker(folder)
    if marker is None:
        ours = LEGACY_FILES.get(kind, set())
    elif marker.get("kind") != kind:
        raise FileExistsError(f"{folder} holds a bert4sim {marker.get('kind')}, not a {kind}: "
                              "refusing to overwrite it; choose another folder")
    else:
        ours = set(marker["files"])
    foreign = sorted(entries - ours)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise FileExistsError(f"{folder} holds files bert4sim did not write ({shown}): refusing to overwrite "
                              "it; choose another folder or empty this one")


@contextlib.contextmanager
def atomic_folder(folder, kind, keep_other_files=None):
    """Context manager: write a save's files into the yielded staging folder; committed on exit.

    ``kind`` names what is saved (``"vector-index"``, ``"similarity-model"``,
    ``"checkpoint"``). Files of the earlier save that the new one does not
    write are removed, except with ``keep_other_files=True`` (the default for
    checkpoints, whose folder other files share). An exception inside the
    block leaves the folder as it was.

    Example:
        >>> with atomic_folder("models/faq", "similarity-model") as staging:
        ...     encoder.save(os.path.join(staging, "encoder.keras"))
    """
    folder = os.path.abspath(os.fspath(folder))
    if keep_other_files is None:
        keep_other_files = kind == "checkpoint"
    check_writable(folder, kind)
    recover(folder)
    os.makedirs(folder, exist_ok=True)
    staging = os.path.join(folder, f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")
    new = os.path.join(staging, "new")
    os.makedirs(new)
    try:
        yield new
        written = sorted(os.listdir(new))
        old = read_marker(folder)
        old_files = set(old["files"]) if old else set()
        if keep_other_files:
            files = sorted(set(written) | {n for n in old_files if os.path.lexists(os.path.join(folder, n))})
            delete = []
        else:
            files = written
            previous = old_files or LEGACY_FILES.get(kind, set())
            delete = sorted(n for n in previous - set(written) if os.path.lexists(os.path.join(folder, n)))
        with open(os.path.join(new, MARKER), "w", encoding="utf-8") as f:
            json.dump({"kind": kind, "files": files, "format": "bert4sim-folder-1"}, f, indent=2)
        _fsync_tree(staging)
        journal = {"staging": os.path.basename(staging), "moves": written + [MARKER], "delete": delete}
        write_json_atomic(os.path.join(folder, JOURNAL), journal)  # the commit point
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _apply(folder, journal)


def read_lines(path, what="file"):
    """The lines of a UTF-8 text file (a leading BOM dropped, line ends stripped).

    Errors name the file, and the line for text that is not UTF-8.

    Example:
        >>> for number, line in enumerate(read_lines("corpus.txt", "corpus file"), 1): ...
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path} is a folder, not a file")
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    texts = []
    for number, line in enumerate(lines, 1):
        try:
            texts.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}:{number}: not UTF-8 text (byte {error.start} of the line)") from None
    return texts


def read_json(path, kind=None, what=None):
    """Parse a JSON file (a UTF-8 BOM allowed); errors name the file and line.

    ``kind`` (``dict`` / ``list``) is the required top-level type; ``what``
    prefixes the messages (e.g. ``"config file"``).

    Example:
        >>> meta = read_json("indexes/faq/meta.json", dict)
    """
    where = f"{what} {path}" if what else str(path)
    try:
        with open(path, encoding="utf-8-sig") as f:
            value = json.load(f)
    except UnicodeDecodeError as error:
        raise ValueError(f"{where}: not UTF-8 text (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}:{error.lineno}: not valid JSON ({error.msg}; truncated?)") from None
    if kind is not None and not isinstance(value, kind):
        raise ValueError(f"{where} must hold a JSON {'object' if kind is dict else 'list'}, "
                         f"got {type(value).__name__}")
    return value
