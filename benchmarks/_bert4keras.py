"""Load bert4keras 0.11.5's pure-Python tokenizer for side-by-side comparisons.

bert4keras does not import on TensorFlow 2.15+ / Keras 3 because its
snippets module imports its Keras backend. Its tokenizer needs none of that,
so this loader runs the package's own ``snippets.py`` without the backend
import and then its ``tokenizers.py``. The package is taken from an
installed ``bert4keras`` or from a source archive fetched from PyPI with
``pip download --no-deps bert4keras==0.11.5`` (pass its path). Nothing of
bert4keras is copied into bert4sim.
"""
import glob
import importlib.util
import os
import sys
import tarfile
import tempfile
import types


def _package_dir(archive_or_dir=None):
    if archive_or_dir is None:
        spec = importlib.util.find_spec("bert4keras")
        if spec is not None and spec.submodule_search_locations:
            return spec.submodule_search_locations[0]
        candidates = glob.glob(os.path.join(tempfile.gettempdir(), "b4k", "bert4keras-*.tar.gz"))
        if not candidates:
            return None
        archive_or_dir = candidates[0]
    if os.path.isdir(archive_or_dir):
        return os.path.join(archive_or_dir, "bert4keras")
    target = tempfile.mkdtemp(prefix="bert4keras_")
    with tarfile.open(archive_or_dir) as tar:
        tar.extractall(target, filter="data")
    found = glob.glob(os.path.join(target, "*", "bert4keras"))
    return found[0] if found else None


def load_bert4keras_tokenizers(archive_or_dir=None):
    """Return bert4keras's ``tokenizers`` module, or None when bert4keras is not available."""
    package = _package_dir(archive_or_dir)
    if package is None:
        return None
    snippets_source = open(os.path.join(package, "snippets.py"), encoding="utf-8").read()
    snippets_source = snippets_source.replace("from bert4keras.backend import K, keras, tf", "")
    root = types.ModuleType("bert4keras")
    root.__path__ = [package]
    snippets = types.ModuleType("bert4keras.snippets")
    sys.modules.setdefault("bert4keras", root)
    sys.modules["bert4keras.snippets"] = snippets
    try:
        exec(compile(snippets_source, os.path.join(package, "snippets.py"), "exec"), snippets.__dict__)
    except Exception:  # parts of snippets that need Keras: the tokenizer does not use them
        pass
    spec = importlib.util.spec_from_file_location("bert4keras.tokenizers", os.path.join(package, "tokenizers.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
