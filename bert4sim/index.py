"""``VectorIndex``: unit vectors + their texts, exact search with numpy or approximate with faiss.

Saved as ``.npy`` + JSON (no pickle); every loaded file is checked.

Example:
    >>> index = VectorIndex(dim=768).add(vectors, texts)
    >>> scores, ids = index.search(query_vectors, topn=5)
    >>> index.save("indexes/faq"); VectorIndex.load("indexes/faq")
"""
import json
import os

import numpy as np

from bert4sim.checks import Field, check_choice, check_int, check_texts, check_vectors, read_fields
from bert4sim.files import new_version, read_current, read_json

INDEX_FILES = ("vectors.npy", "texts.json", "meta.json")
FAISS_FILE = "faiss.index"
DTYPES, BACKENDS = ("float32", "float16"), ("numpy", "faiss")
# What meta.json may hold (checked on load, bert4sim.checks.read_fields).
INDEX_META_FIELDS = {
    "dim": Field("int", minimum=1, maximum=1 << 20, required=True),
    "count": Field("int", minimum=0, required=True),
    "dtype": Field("choice", choices=DTYPES, required=True),
    "backend": Field("choice", choices=BACKENDS, required=True),
    "model_id": Field("str", allow_none=True),
    "faiss_factory": Field("str", default="HNSW32"),
    "search_breadth": Field("int", minimum=1, allow_none=True),
}


def unit_rows(vectors):
    """Each row of ``vectors`` divided by its L2 norm (zero rows stay zero).

    Example:
        >>> unit_rows(np.array([[3.0, 4.0]]))
        array([[0.6, 0.8]])
    """
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class VectorIndex:
    """Unit vectors + their texts, searchable by cosine (inner product).

    ``backend="numpy"`` is exact (float32, or float16 storage with
    ``dtype="float16"`` to halve memory); ``backend="faiss"`` (the ``faiss``
    extra) is approximate: ``faiss_factory`` is a faiss index-factory string,
    ``"HNSW32"`` (default; adds one by one) or e.g. ``"IVF4096,Flat"``
    (trained on the first ``add``, which needs at least as many vectors as
    lists; builds much faster over millions). ``search_breadth`` trades
    recall for speed: HNSW ``efSearch`` / IVF ``nprobe``. ``model_id``
    records which encoder made the vectors, so an index is not queried with
    another model.

    Example:
        >>> index = VectorIndex(dim=768, model_id=model.model_id)
        >>> index.add(model.encode(corpus), corpus)
        >>> index.search(model.encode(["怎么注销信用卡"]), topn=5)
        >>> index.save("indexes/faq"); VectorIndex.load("indexes/faq")
    """

    def __init__(self, dim, dtype="float32", backend="numpy", model_id=None, faiss_factory="HNSW32",
                 search_breadth=None):
        dim = check_int(dim, "dim", minimum=1, maximum=1 << 20)
        check_choice(dtype, "dtype", DTYPES)
        check_choice(backend, "backend", BACKENDS)
        if model_id is not None and (not isinstance(model_id, str) or not model_id):
            raise TypeError(f"model_id must be a non-empty str or None, got {type(model_id).__name__} {model_id!r}")
        if not isinstance(faiss_factory, str) or not faiss_factory:
            raise TypeError(f"faiss_factory must be a faiss index-factory string, got {type(faiss_factory).__name__}")
        search_breadth = check_int(search_breadth, "search_breadth", minimum=1, allow_none=True)
        self.dim, self.dtype, self.backend, self.model_id = dim, dtype, backend, model_id
        self.faiss_factory, self.search_breadth = faiss_factory, search_breadth
        self.vectors = np.zeros((0, self.dim), dtype=dtype)
        self.texts = []
        self._faiss = None

    def __len__(self):
        return len(self.texts)

    def add(self, vectors, texts):
        """Append vectors (normalised here) and their texts.

        Example:
            >>> index.add(model.encode(["你好", "再见"]), ["你好", "再见"])
        """
        texts = check_texts(texts)
        vectors = check_vectors(vectors, "vectors", self.dim)  # finite rows with a direction to index
        if len(vectors) != len(texts):
            raise ValueError(f"{len(vectors)} vectors but {len(texts)} texts")
        vectors = unit_rows(vectors)
        if self.backend == "faiss":
            self._faiss_index(new=vectors).add(vectors)
        self.vectors = np.concatenate([self.vectors, vectors.astype(self.dtype)])
        self.texts.extend(texts)
        return self

    def _faiss_index(self, new=None):
        """The faiss index over the stored vectors (built on first use; trained on them + ``new``)."""
        if self._faiss is None:
            try:
                import faiss
            except ImportError:
                raise ImportError("backend='faiss' needs faiss: pip install faiss-cpu (extra 'faiss')") from None
            try:
                index = faiss.index_factory(self.dim, self.faiss_factory, faiss.METRIC_INNER_PRODUCT)
            except RuntimeError as error:
                raise ValueError(f"faiss_factory {self.faiss_factory!r} is not a faiss index-factory string") from error
            stored = self.vectors.astype("float32")
            if not index.is_trained:
                sample = stored if new is None else np.concatenate([stored, new])
                lists = faiss.extract_index_ivf(index).nlist if "IVF" in self.faiss_factory else 1
                if len(sample) < lists:
                    raise ValueError(f"faiss index {self.faiss_factory!r} trains on the first add and needs at "
                                     f"least {lists} vectors, got {len(sample)}; add more at once or use 'HNSW32'")
                index.train(sample)
            if len(stored):
                index.add(stored)
            self._faiss = index
            self._set_breadth()
        return self._faiss

    def _set_breadth(self):
        import faiss

        if self._faiss is None:
            return
        if hasattr(self._faiss, "hnsw"):
            self._faiss.hnsw.efSearch = self.search_breadth or 128
        elif "IVF" in self.faiss_factory:
            faiss.extract_index_ivf(self._faiss).nprobe = self.search_breadth or 32

    def search(self, queries, topn=10, chunk_size=65536):
        """``(scores, indices)`` of the ``topn`` nearest vectors for each query row.

        Query rows must be finite and not all zero (a NaN query has no nearest texts).

        Example:
            >>> scores, indices = index.search(model.encode(["怎么注销信用卡"]), topn=5)
        """
        queries = np.asarray(queries) if not isinstance(queries, np.ndarray) else queries
        if queries.ndim and queries.shape[-1] != self.dim:
            raise ValueError(f"query vectors have dimension {queries.shape[-1]}, the index holds {self.dim}")
        queries = unit_rows(check_vectors(queries, "queries", self.dim))
        topn = check_int(topn, "topn", 1)
        chunk_size = check_int(chunk_size, "chunk_size", 1)
        if len(self) == 0:
            raise ValueError("the index is empty: add texts first")
        topn = min(topn, len(self))
        if self.backend == "faiss":
            index = self._faiss_index()
            self._set_breadth()
            scores, indices = index.search(queries, topn)
            return scores, indices
        best_scores = np.full((len(queries), 0), -np.inf, dtype="float32")
        best_indices = np.zeros((len(queries), 0), dtype="int64")
        for start in range(0, len(self), chunk_size):
            block = self.vectors[start : start + chunk_size]
            scores = queries @ block.T.astype("float32", copy=False)
            k = min(topn, scores.shape[1])
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            best_scores = np.concatenate([best_scores, np.take_along_axis(scores, part, 1)], 1)
            best_indices = np.concatenate([best_indices, part + start], 1)
            if best_scores.shape[1] > topn:
                keep = np.argpartition(-best_scores, topn - 1, axis=1)[:, :topn]
                best_scores = np.take_along_axis(best_scores, keep, 1)
                best_indices = np.take_along_axis(best_indices, keep, 1)
        order = np.argsort(-best_scores, axis=1, kind="stable")
        return np.take_along_axis(best_scores, order, 1), np.take_along_axis(best_indices, order, 1)

    def save(self, directory):
        """Write ``vectors.npy``, ``texts.json``, ``meta.json`` [+ ``faiss.index``] into ``directory``.

        Each save is a new version folder made current by one atomic rename
        (:mod:`bert4sim.files`): a crash leaves the old or the new index, and
        readers always get a complete one. A folder that is not empty and
        not a bert4sim index is refused (``FileExistsError``), as is a path
        naming a file. A built faiss index is written in faiss's own binary
        format, so loading does not rebuild it.

        Example:
            >>> index.save("indexes/faq")
        """
        with new_version(directory, "vector-index") as path:
            self._write(path)
        return directory

    def _write(self, folder):
        np.save(os.path.join(folder, "vectors.npy"), self.vectors, allow_pickle=False)
        with open(os.path.join(folder, "texts.json"), "w", encoding="utf-8") as f:
            json.dump(self.texts, f, ensure_ascii=False)
        meta = {"dim": self.dim, "dtype": self.dtype, "backend": self.backend, "model_id": self.model_id,
                "count": len(self), "faiss_factory": self.faiss_factory, "search_breadth": self.search_breadth,
                "format": "bert4sim-vector-index-1"}
        if self._faiss is not None:
            import faiss

            faiss.write_index(self._faiss, os.path.join(folder, FAISS_FILE))
        with open(os.path.join(folder, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)

    @classmethod
    def load(cls, directory, backend=None):
        """Read an index written by :meth:`save`; ``backend`` overrides the saved one.

        Reads the folder's current version and changes nothing on disk.
        Everything is checked: the JSON files parse (errors name the file),
        vectors are finite unit rows of the recorded shape, texts are
        strings, one per vector.

        Example:
            >>> index = VectorIndex.load("indexes/faq")
        """
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"index folder not found: {directory}")
        return read_current(directory, "vector-index", lambda path: cls._read(path, backend))

    @classmethod
    def _read(cls, directory, backend):
        for name in INDEX_FILES:
            if not os.path.isfile(os.path.join(directory, name)):
                raise FileNotFoundError(f"{os.path.join(directory, name)} not found: not a bert4sim index folder")
        meta_path = os.path.join(directory, "meta.json")
        meta = read_fields(read_json(meta_path, dict), INDEX_META_FIELDS, meta_path)
        vectors_path = os.path.join(directory, "vectors.npy")
        try:
            vectors = np.load(vectors_path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise ValueError(f"{vectors_path} is not a readable .npy array ({error})") from None
        texts_path = os.path.join(directory, "texts.json")
        texts = read_json(texts_path, list)
        if vectors.shape != (meta["count"], meta["dim"]) or len(texts) != meta["count"]:
            raise ValueError(f"index {directory} is inconsistent: {vectors.shape} vectors, {len(texts)} texts, "
                             f"meta says {meta['count']} x {meta['dim']}")
        if vectors.dtype.name != meta["dtype"]:
            raise ValueError(f"{vectors_path} holds {vectors.dtype.name} vectors, {meta_path} says {meta['dtype']}")
        bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
        if bad:
            raise ValueError(f"{texts_path}: entry {bad[0]} is {type(texts[bad[0]]).__name__}, not a string")
        rows = vectors.astype("float32", copy=False)  # no second copy of a float32 index
        finite = np.isfinite(rows).all(axis=1)
        if not finite.all():
            raise ValueError(f"{vectors_path}: row {int(np.argmin(finite))} holds NaN or infinity")
        norms = np.linalg.norm(rows, axis=1)
        off = np.abs(norms - 1) > (1e-2 if meta["dtype"] == "float16" else 1e-4)
        if off.any():
            row = int(np.argmax(off))
            raise ValueError(f"{vectors_path}: row {row} has norm {norms[row]:.4g}, an index holds unit vectors")
        index = cls(meta["dim"], meta["dtype"], backend or meta["backend"], meta.get("model_id"),
                    meta["faiss_factory"], meta.get("search_breadth"))
        index.vectors, index.texts = vectors, list(texts)
        faiss_path = os.path.join(directory, FAISS_FILE)
        if index.backend == "faiss" and os.path.isfile(faiss_path):
            import faiss

            stored = faiss.read_index(faiss_path)
            if stored.ntotal != len(index) or stored.d != index.dim:
                raise ValueError(f"{faiss_path} holds {stored.ntotal} x {stored.d} vectors, the index "
                                 f"{len(index)} x {index.dim}")
            index._faiss = stored
        return index
