"""Files: versioned bert4sim folders (indexes, SimilarityModel folders, checkpoints), checked text reads.

A bert4sim folder holds immutable version folders and a marker naming the current one::

    indexes/faq/.bert4sim.json   {"kind": "vector-index", "format": "bert4sim-folder-2", "current": "v000007"}
    indexes/faq/v000006/ v000007/    each a complete save (vectors.npy, texts.json, meta.json)

A save (:func:`new_version`) writes a fresh ``vNNNNNN`` folder, fsyncs it and replaces the marker
with ``os.replace``: that rename is the commit, so a kill at any instant leaves the old or the new
version current, with nothing to recover. It then removes its own older versions, keeping two (the
new one and the one it replaced) and any a reader holds: :func:`read_current` holds the version it
reads with a shared ``flock`` on its folder, and a save renames a version away (then deletes it)
only when it can take that lock exclusively, so readers always see one whole version. Saves into one
folder take turns (``flock`` on ``.bert4sim.lock``). Loading never writes, renames or deletes.

Trust: a folder is bert4sim's only if it holds a valid marker (known kind and format, plain names);
a save into any other folder that is not empty is refused. No name read from a file steers a change:
a save creates and removes only entries of its own patterns (real ``vNNNNNN`` folders, its temp
files, ``.bert4sim-old-vNNNNNN``), never through a symbolic link.

Checkpoints keep TensorFlow's paths: the versions live in a folder named after the checkpoint, each
a whole Google-format folder (``ckpt/bert_model.ckpt/v000007/bert_model.ckpt.index``, ``.data-*``,
``bert_config.json``, ``vocab.txt``). After the commit the save writes TF's ``checkpoint`` state files
(``ckpt/bert_model.ckpt/checkpoint``: ``v000007/bert_model.ckpt``; ``ckpt/checkpoint``:
``bert_model.ckpt/v000007/bert_model.ckpt``) and copies ``bert_config.json`` / ``vocab.txt`` to the
top, so ``tf.train.load_variable("ckpt/bert_model.ckpt", name)`` (bert4keras) and
``tf.train.load_checkpoint("ckpt")`` read the new version. Folders of bert4sim 0.1.0 (files at the
top, marker format ``bert4sim-folder-1``) load as they are; a save into one commits its first
version, then removes the 0.1.0 files by their fixed names.

Example:
    >>> with new_version("indexes/faq", "vector-index") as path:
    ...     np.save(os.path.join(path, "vectors.npy"), vectors)
    >>> texts = read_current("indexes/faq", "vector-index", lambda path: read_json(f"{path}/texts.json"))
"""
import contextlib
import fcntl
import itertools
import json
import os
import re
import secrets
import shutil
import stat

MARKER = ".bert4sim.json"
LOCK = ".bert4sim.lock"
FORMAT = "bert4sim-folder-2"
LEGACY_FORMAT = "bert4sim-folder-1"  # bert4sim 0.1.0: files at the top of the folder
KINDS = ("vector-index", "similarity-model", "checkpoint")
VERSION = re.compile(r"v\d{6,}")
OLD = re.compile(r"\.bert4sim-old-v\d{6,}")  # a version being removed
TEMP = re.compile(r"(\.bert4sim\.json|checkpoint|bert_config\.json|vocab\.txt)\.tmp-[0-9a-f]{8}")
CHECKPOINT_MIRRORS = ("bert_config.json", "vocab.txt")
# What 0.1.0 wrote at the top of a folder (regular expressions of its fixed names).
LEGACY_JOURNAL, LEGACY_STAGING = ".bert4sim-commit.json", re.compile(r"\.bert4sim-tmp-\d+-[0-9a-f]{8}")
LEGACY_NAMES = {"vector-index": r"vectors\.npy|texts\.json|meta\.json|faiss\.index",
                "similarity-model": r"encoder\.keras|seq2seq\.keras|vocab\.txt|similarity_model\.json"}


def _fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path):
    """fsync every file and folder under ``path`` (itself last), so a rename of it commits whole files."""
    for root, _, files in os.walk(path, topdown=False):
        for file in files:
            _fsync_path(os.path.join(root, file))
        _fsync_path(root)


def _write_atomic(path, data):
    temp = f"{path}.tmp-{secrets.token_hex(4)}"
    try:
        with open(temp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise
    _fsync_path(os.path.dirname(os.path.abspath(path)))


def write_json_atomic(path, value):
    """Write JSON to ``path`` through a fsynced temp file renamed in place.

    Example:
        >>> write_json_atomic("out/meta.json", {"dim": 768})
    """
    _write_atomic(path, json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8"))


def _is(path, test=stat.S_ISDIR):
    """Whether ``path`` itself (a link is not followed) is a folder (or passes ``test``)."""
    try:
        return test(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _plain(name):
    return isinstance(name, str) and name not in ("", ".", "..") and not re.search(r"[/\\\0]", name)


def _checkpoint_name(prefix):
    reserved = (MARKER, LOCK, "checkpoint") + CHECKPOINT_MIRRORS
    return _plain(prefix) and prefix not in reserved and not VERSION.fullmatch(prefix) and not TEMP.fullmatch(prefix)


def read_marker(folder):
    """The validated ``.bert4sim.json`` of ``folder`` as a dict, or None when it has none.

    Raises ValueError naming the file and value for a damaged marker, a
    symbolic link, an unknown kind or format, or a name that is not plain.

    Example:
        >>> read_marker("indexes/faq")["current"]
        'v000007'
    """
    path = os.path.join(folder, MARKER)
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as f:
            marker = json.loads(f.read(1 << 20).decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable bert4sim marker ({error}); remove it if the folder "
                         "is yours") from None
    marker = marker if isinstance(marker, dict) else {"kind": marker}
    files, current, prefix = marker.get("files"), marker.get("current"), marker.get("prefix")
    if marker.get("kind") not in KINDS:
        problem = f"kind {marker.get('kind')!r} is not one of {KINDS}"
    elif marker.get("format") not in (FORMAT, LEGACY_FORMAT):
        problem = f"unknown format {marker.get('format')!r} (expected {FORMAT!r})"
    elif marker["format"] == LEGACY_FORMAT and not (isinstance(files, list) and all(map(_plain, files))):
        problem = f"'files' must list plain file names, got {files!r}"
    elif marker["format"] == FORMAT and not (current is None or VERSION.fullmatch(str(current))):
        problem = f"'current' must name a version folder like 'v000001', got {current!r}"
    elif marker["format"] == FORMAT and (marker["kind"] == "checkpoint") != _checkpoint_name(prefix):
        problem = f"'prefix' must be a plain checkpoint name for a checkpoint only, got {prefix!r}"
    elif marker["format"] == FORMAT and not isinstance(marker.get("upgrading", False), bool):
        problem = f"'upgrading' must be true or false, got {marker['upgrading']!r}"
    else:
        return marker
    raise ValueError(f"{path}: {problem}")


def current_version(folder, kind):
    """The folder holding ``folder``'s current complete version, to read from; changes nothing.

    A folder of bert4sim 0.1.0, or one without a marker, is read as it is.
    A checkpoint's own folder (``ckpt/bert_model.ckpt``) stands for ``ckpt``.

    Example:
        >>> current_version("indexes/faq", "vector-index")
        'indexes/faq/v000007'
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{kind} folder not found: {folder}")
    marker, (parent, name) = read_marker(folder), os.path.split(os.path.abspath(folder))
    if marker is None and kind == "checkpoint" and (read_marker(parent) or {}).get("prefix") == name:
        return current_version(parent, kind)
    if marker is not None and marker["kind"] != kind:
        raise ValueError(f"{folder} holds a bert4sim {marker['kind']}, not a {kind}")
    if marker is None or marker["format"] == LEGACY_FORMAT:
        if os.path.lexists(os.path.join(folder, LEGACY_JOURNAL)):
            raise ValueError(f"{folder} holds an unfinished bert4sim 0.1.0 save ({LEGACY_JOURNAL}): load it "
                             "once with bert4sim 0.1.0 to finish it, or restore the folder from a copy")
        return folder
    if marker["current"] is None:
        raise FileNotFoundError(f"{folder} holds no complete save yet (its first save has not finished)")
    store = os.path.join(folder, marker["prefix"]) if kind == "checkpoint" else folder
    path = os.path.join(store, marker["current"])
    if not (_is(store) and _is(path)):
        raise FileNotFoundError(f"{os.path.join(folder, MARKER)} names {marker['current']}, but {path} is not a folder")
    return path


def read_current(folder, kind, read, attempts=10):
    """``read(path)`` on the current version of ``folder``, which no save removes meanwhile.

    The version is held with a shared ``flock`` on its folder while ``read``
    runs (a save removes only versions no reader holds); changes nothing.

    Example:
        >>> texts = read_current("indexes/faq", "vector-index", lambda path: read_json(f"{path}/texts.json"))
    """
    for attempt in range(attempts):
        try:
            path = current_version(folder, kind)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:  # also: removed between reading the marker and opening it
            if attempt + 1 == attempts:
                raise
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                whole = os.path.samestat(os.fstat(fd), os.stat(path))  # still there under its name
            except FileNotFoundError:
                whole = False
            if whole:
                return read(path)
        finally:
            os.close(fd)
    raise FileNotFoundError(f"{folder}: each version {MARKER} named was removed before it could be opened")


def check_writable(folder, kind, prefix=None):
    """Raise ``FileExistsError`` unless a ``kind`` save may go into ``folder``; return its marker or None.

    Allowed: a missing or empty folder, or one whose marker has this kind
    (and, for a checkpoint, this checkpoint name ``prefix``).

    Example:
        >>> check_writable("indexes/faq", "vector-index")
    """
    folder = os.fspath(folder)
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise FileExistsError(f"{folder} is a file, not a folder: refusing to replace it")
    marker = read_marker(folder) if os.path.isdir(folder) else None
    others = sorted(n for n in os.listdir(folder) if not n.startswith(".bert4sim")) if os.path.isdir(folder) else []
    if marker is None and others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise FileExistsError(f"{folder} is not a bert4sim folder (no {MARKER}) and not empty ({shown}): refusing "
                              "to write into it; choose another folder or empty this one")
    if marker is not None and marker["kind"] != kind:
        raise FileExistsError(f"{folder} holds a bert4sim {marker['kind']}, not a {kind}: refusing to overwrite it")
    if marker is not None and marker.get("prefix", prefix) != prefix:
        raise FileExistsError(f"{folder} holds checkpoint {marker['prefix']!r}, not {prefix!r}: one checkpoint "
                              "name per folder")
    if marker is not None and marker["format"] == LEGACY_FORMAT:
        current_version(folder, kind)  # refuses a folder holding an unfinished 0.1.0 save
    return marker


def _claim(folder, kind, prefix):
    """Check ``folder``, create and mark it if new, lock it: ``(lock fd, its marker before)``."""
    if kind not in KINDS or (kind == "checkpoint") != _checkpoint_name(prefix):
        raise ValueError(f"{folder}: kind {kind!r} with checkpoint name {prefix!r}")
    check_writable(folder, kind, prefix)
    os.makedirs(folder, exist_ok=True)
    lock = os.open(os.path.join(folder, LOCK), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = check_writable(folder, kind, prefix)  # again, now that no other save runs
        if old is None:  # claims the folder: what this save leaves in it is provably its own
            write_json_atomic(os.path.join(folder, MARKER), _marker(kind, prefix, None))
        return lock, old or {}
    except BaseException:
        os.close(lock)
        raise


def _marker(kind, prefix, current, upgrading=False):
    return {"kind": kind, "format": FORMAT, "current": current, "upgrading": upgrading} | (
        {"prefix": prefix} if prefix else {})


def claim(folder, kind, prefix=None):
    """Make a missing or empty ``folder`` a bert4sim ``kind`` folder before its first save.

    For a folder that gets other files first, such as a checkpoint folder
    whose training logs go in during training. Raises like
    :func:`check_writable`; a bert4sim folder of that kind is left as it is.

    Example:
        >>> claim("checkpoints/simbert_demo", "checkpoint", "bert_model.ckpt")
    """
    os.close(_claim(os.path.abspath(os.fspath(folder)), kind, prefix)[0])


@contextlib.contextmanager
def new_version(folder, kind, prefix=None):
    """Context manager: yield a fresh, private version folder, made current on a clean exit.

    ``kind``: ``"vector-index"``, ``"similarity-model"`` or ``"checkpoint"``
    (``prefix``: the checkpoint's name, e.g. ``"bert_model.ckpt"``). An
    exception inside the block leaves the folder as it was.

    Example:
        >>> with new_version("models/faq", "similarity-model") as path:
        ...     encoder.save(os.path.join(path, "encoder.keras"))
    """
    folder = os.path.abspath(os.fspath(folder))
    lock, old = _claim(folder, kind, prefix)
    try:
        store = os.path.join(folder, prefix) if prefix else folder
        if prefix and not os.path.lexists(store):
            os.mkdir(store)
            _fsync_path(folder)
        if not _is(store):
            raise FileExistsError(f"{store} is not a folder: refusing to write into it")
        last = max([int(n[1:]) for n in os.listdir(store) if VERSION.fullmatch(n)], default=0)
        for number in itertools.count(last + 1):
            name, path = f"v{number:06d}", os.path.join(store, f"v{number:06d}")
            with contextlib.suppress(FileExistsError):
                os.mkdir(path)  # fails on anything of that name, a link included
                break
        upgrading = old.get("format") == LEGACY_FORMAT or old.get("upgrading", False)
        try:
            yield path
            _fsync_tree(path)
            _fsync_path(store)
            write_json_atomic(os.path.join(folder, MARKER), _marker(kind, prefix, name, upgrading))  # the commit
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        if prefix:
            _mirror_checkpoint(folder, prefix, name)
        if upgrading:  # from 0.1.0: its files go after the commit, the flag once they are gone
            _drop_legacy(folder, kind, prefix)
            write_json_atomic(os.path.join(folder, MARKER), _marker(kind, prefix, name))
        _prune(store, keep={old.get("current"), name})
        if prefix:
            _prune(folder, keep=None)  # temp files only: the versions are in the checkpoint's own folder
    finally:
        os.close(lock)


@contextlib.contextmanager
def fresh_folder(folder):
    """Context manager for a folder in another program's layout: filled privately, renamed into place whole.

    For outputs that must keep their files at the top (a SavedModel, a
    transformers folder): ``folder`` must be missing or empty; the block
    writes into a private sibling folder, which replaces ``folder`` only on a
    clean exit, so a failure leaves nothing half-written.

    Example:
        >>> with fresh_folder("hf/simbert") as path:
        ...     write_safetensors(os.path.join(path, "model.safetensors"), tensors)
    """
    folder = os.path.abspath(os.fspath(folder))
    if os.path.lexists(folder) and (not _is(folder) or os.listdir(folder)):
        raise FileExistsError(f"{folder} exists and is not an empty folder: refusing to replace it")
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".bert4sim-new-{secrets.token_hex(6)}")
    os.mkdir(staging)
    try:
        yield staging
        _fsync_tree(staging)
        if _is(folder):
            os.rmdir(folder)  # empty, checked above
        os.rename(staging, folder)
        _fsync_path(parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _mirror_checkpoint(folder, prefix, name):
    """TF's state files and top-level copies, so TensorFlow and bert4keras read the new version."""
    _write_atomic(os.path.join(folder, prefix, "checkpoint"), f'model_checkpoint_path: "{name}/{prefix}"\n'.encode())
    _write_atomic(os.path.join(folder, "checkpoint"), f'model_checkpoint_path: "{prefix}/{name}/{prefix}"\n'.encode())
    for file in CHECKPOINT_MIRRORS:
        if _is(os.path.join(folder, prefix, name, file), stat.S_ISREG):
            with open(os.path.join(folder, prefix, name, file), "rb") as f:
                _write_atomic(os.path.join(folder, file), f.read())


def _drop_legacy(folder, kind, prefix):
    """Remove what 0.1.0 wrote at the top of a folder it marked: regular files of its fixed names."""
    index = os.path.join(folder, "index")
    own = LEGACY_NAMES.get(kind) or re.escape(prefix) + r"\.(index|data-\d{5}-of-\d{5})"
    nested = kind == "similarity-model" and _is(index)
    for where, pattern in [(folder, own)] + [(index, LEGACY_NAMES["vector-index"])] * nested:
        for name in os.listdir(where):
            if re.fullmatch(pattern, name) and _is(os.path.join(where, name), stat.S_ISREG):
                os.remove(os.path.join(where, name))
    with contextlib.suppress(OSError):
        if nested:
            os.rmdir(index)  # only when nothing else is left in it
    for name in os.listdir(folder):
        if LEGACY_STAGING.fullmatch(name) and _is(os.path.join(folder, name)):
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


def _prune(folder, keep):
    """Remove this folder's own versions not in ``keep`` (None: none) and no reader holds, and debris of killed saves.

    A version is first renamed out of the way (``.bert4sim-old-vNNNNNN``), so
    a reader finds it whole or not at all, then deleted.
    """
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if keep is not None and VERSION.fullmatch(name) and name not in keep and _is(path):
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a reader holds it: a later save removes it
                os.rename(path, os.path.join(folder, f".bert4sim-old-{name}"))
            except BlockingIOError:
                continue
            finally:
                os.close(fd)
            shutil.rmtree(os.path.join(folder, f".bert4sim-old-{name}"), ignore_errors=True)  # no link followed
        elif OLD.fullmatch(name) and _is(path):
            shutil.rmtree(path, ignore_errors=True)
        elif TEMP.fullmatch(name) and _is(path, stat.S_ISREG):
            with contextlib.suppress(OSError):
                os.remove(path)


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
