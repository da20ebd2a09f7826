"""Sentence vectors, similar-sentence generation and retrieval over a persistent index.

``SimilarityModel`` wraps a tokenizer, an encoder (any Keras model
``[token_ids, segment_ids] -> [batch, dim]``) and optionally a seq2seq
model (SimBERT / RoFormer-Sim ``unilm`` MLM output) for ``gen_synonyms``.
``VectorIndex`` keeps unit vectors and their texts for exact (numpy) or
approximate (faiss, optional) search, saved as ``.npy`` + JSON without pickle.
"""
import hashlib
import json
import numbers
import os

import numpy as np

from bert4sim.files import read_json
from bert4sim.tokenizers import has_content

INDEX_FILES = ("vectors.npy", "texts.json", "meta.json")
MODEL_META = "similarity_model.json"
FAISS_FILE = "faiss.index"


def _check_texts(texts, name="texts"):
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__iter__"):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] is {type(text).__name__}, not str")
        if not has_content(text):
            raise ValueError(f"{name}[{i}] is empty or whitespace only (control and zero-width characters "
                             "count as empty)")
    return texts


def _check_text(text, name="text"):
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    if not has_content(text):
        raise ValueError(f"{name} is empty or whitespace only (control and zero-width characters count as empty)")
    return text


def check_int(value, name, minimum=None, allow_none=False):
    """``value`` as an int, or a ``TypeError`` / ``ValueError`` naming ``name``.

    Example:
        >>> check_int(5, "topn", minimum=1)
        5
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _normalize(vectors):
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
        if dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
        if backend not in ("numpy", "faiss"):
            raise ValueError(f"backend must be 'numpy' or 'faiss', got {backend!r}")
        self.dim, self.dtype, self.backend, self.model_id = int(dim), dtype, backend, model_id
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
        vectors = np.asarray(vectors, dtype="float32")
        texts = _check_texts(texts)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors must have shape (n, {self.dim}), got {vectors.shape}")
        if len(vectors) != len(texts):
            raise ValueError(f"{len(vectors)} vectors but {len(texts)} texts")
        norms = np.linalg.norm(vectors, axis=1)
        bad = ~np.isfinite(norms) | (norms == 0)
        if bad.any():
            raise ValueError(f"vector row {int(np.argmax(bad))} is zero or not finite: it has no direction to index")
        vectors = _normalize(vectors)
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
        """``(scores, indices)`` of the ``topn`` nearest vectors for each query row."""
        queries = _normalize(np.atleast_2d(np.asarray(queries, dtype="float32")))
        if queries.shape[1] != self.dim:
            raise ValueError(f"query vectors have dimension {queries.shape[1]}, the index holds {self.dim}")
        if len(self) == 0:
            raise ValueError("the index is empty: add texts first")
        topn = min(check_int(topn, "topn", 1), len(self))
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

        The save is atomic (:mod:`bert4sim.files`): a crash leaves the old
        or the new index. A folder holding files bert4sim did not write is
        refused (``FileExistsError``), as is a path naming a file. A built
        faiss index is written in faiss's own binary format, so loading does
        not rebuild it.

        Example:
            >>> index.save("indexes/faq")
        """
        from bert4sim.files import atomic_folder

        with atomic_folder(directory, "vector-index") as staging:
            self._write(staging)
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

        Everything is checked: the JSON files parse (errors name the file),
        vectors are finite unit rows of the recorded shape, texts are
        strings, one per vector.

        Example:
            >>> index = VectorIndex.load("indexes/faq")
        """
        from bert4sim.files import recover

        if not os.path.isdir(directory):
            raise FileNotFoundError(f"index folder not found: {directory}")
        recover(directory)
        for name in INDEX_FILES:
            if not os.path.isfile(os.path.join(directory, name)):
                raise FileNotFoundError(f"{os.path.join(directory, name)} not found: not a bert4sim index folder")
        meta_path = os.path.join(directory, "meta.json")
        meta = read_json(meta_path, dict)
        for key, kind in (("dim", int), ("count", int), ("dtype", str), ("backend", str)):
            if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
                raise ValueError(f"{meta_path}: key {key!r} must be {kind.__name__}, got {meta.get(key)!r}")
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
                    meta.get("faiss_factory", "HNSW32"), meta.get("search_breadth"))
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


def _find_layer(model, name):
    for layer in model.layers:
        if layer.name == name:
            return layer
        if hasattr(layer, "layers"):
            found = _find_layer(layer, name)
            if found is not None:
                return found
    return None


def check_vocab_size(tokenizer, model, vocab_path):
    """Raise unless the vocabulary has exactly one id per row of the model's token embedding.

    Example:
        >>> check_vocab_size(tokenizer, encoder, "models/faq/vocab.txt")
    """
    embedding = _find_layer(model, "Embedding-Token")
    if embedding is None:
        return
    rows = embedding.input_dim
    largest = max(tokenizer.token_dict.values()) + 1
    if tokenizer.vocab_size != rows or largest != rows:
        raise ValueError(f"{vocab_path} has {tokenizer.vocab_size} tokens (ids up to {largest - 1}), the model's "
                         f"token embedding has {rows} rows: vocab and checkpoint do not belong together "
                         "(a simplified vocab needs keep_tokens)")


def position_limit(model):
    """How many positions the model's position embedding has (None: unlimited, e.g. RoFormer).

    Example:
        >>> position_limit(sim.encoder)
        512
    """
    layer = _find_layer(model, "Embedding-Position")
    return None if layer is None else int(layer.max_length)


def _fingerprint(model):
    digest = hashlib.sha1()
    for weight in model.weights:
        value = np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight)
        digest.update(str(value.shape).encode())
        digest.update(np.ascontiguousarray(value.reshape(-1)[:4096], dtype="float32").tobytes())
    return digest.hexdigest()[:16]


class SimilarityModel:
    """Encode sentences, generate similar ones, and search a corpus.

    ``encoder``: Keras model ``[token_ids, segment_ids] -> [batch, dim]``;
    ``seq2seq``: optional ``unilm`` model with MLM output (for
    ``gen_synonyms``). ``maxlen`` truncates inputs. ``precision="bfloat16"``
    runs the matrix products of the encoder's bert4sim layers in bfloat16
    and the rest in float32 (1.6-1.8x faster encoding on CPUs with AMX and on
    an AMD EPYC with AVX-512 BF16, 0.6x on an Intel Xeon without AMX; cosine
    to the float32 vectors ~0.9999; a bfloat16 copy of each kernel is kept
    and refreshed once per ``encode`` call, :class:`bert4sim.layers.CastKernels`):
    it switches those layers in place
    (:func:`bert4sim.layers.set_matmul_dtype`), so a ``seq2seq`` model
    sharing them generates with bfloat16 products too. ``"float32"``
    switches them back to float32. ``"auto"`` (the default) is bfloat16
    only where it is faster on this machine
    (:func:`bert4sim.precision.auto_precision`); ``self.precision`` is the
    precision in use, ``"auto"`` is what :meth:`save` records so a saved
    model decides again on the machine that loads it.

    A saved model folder (:meth:`save`) holds ``encoder.keras`` [+
    ``seq2seq.keras``], ``vocab.txt``, ``similarity_model.json`` (maxlen,
    lower-casing, model id, precision) and, when one is attached, the index
    folder ``index/`` (see :meth:`VectorIndex.save`).

    Example:
        >>> sim = SimilarityModel.from_checkpoint("checkpoints/simbert_demo")
        >>> sim.gen_synonyms("信用卡怎么注销", n=50, k=5)
        >>> sim.build_index(corpus); sim.most_similar("怎么注销信用卡", topn=3)
    """

    def __init__(self, tokenizer, encoder, seq2seq=None, maxlen=64, model_id=None, precision="auto"):
        import tensorflow as tf

        from bert4sim.precision import resolve_precision

        maxlen = check_int(maxlen, "maxlen", 2)
        positions = position_limit(encoder)
        if positions is not None and maxlen > positions:
            raise ValueError(f"maxlen {maxlen} exceeds the model's {positions} positions (max_position_embeddings)")
        self.tokenizer, self.encoder, self.seq2seq, self.maxlen = tokenizer, encoder, seq2seq, maxlen
        self.model_id = model_id or _fingerprint(encoder)
        self.requested_precision = precision
        self.precision = precision = resolve_precision(precision)
        self.index = None
        from bert4sim.layers import CastKernels, set_matmul_dtype

        if not set_matmul_dtype(encoder, precision) and precision != "float32":
            if self.requested_precision == "auto":  # nothing to switch: float32 is all it can run
                self.precision = "float32"
            else:
                raise ValueError(f"precision={precision!r} needs an encoder made of bert4sim layers; "
                                 f"{encoder.name!r} has none with a matmul_dtype option")
        # bfloat16 products: the kernels are cast once per encode() call, not once per batch.
        self._kernels = CastKernels(encoder)

        def run(ids, segs):
            with self._kernels.active():
                return encoder([ids, segs], training=False)

        self._run = tf.function(run, reduce_retracing=True)
        self._decoder = None

    # -- vectors ---------------------------------------------------------------------

    def encode(self, texts, batch_size=64, normalize=True, show_progress=None):
        """Vectors for ``texts`` (in input order); a single string gives one vector.

        Texts are sorted by length so each batch pads little.

        Example:
            >>> vectors = sim.encode(["你好", "今天天气不错"], batch_size=32)   # (2, dim)
        """
        import keras
        import tensorflow as tf

        from bert4sim.snippets import sequence_padding

        single = isinstance(texts, str)
        texts = [_check_text(texts)] if single else _check_texts(texts)
        if not texts:
            raise ValueError("texts is empty")
        batch_size = check_int(batch_size, "batch_size", 1)
        encoded = [self.tokenizer.encode(text, maxlen=self.maxlen) for text in texts]
        self._kernels.refresh()  # the encoder's current weights, cast once for this call
        order = np.argsort([len(ids) for ids, _ in encoded], kind="stable")
        show = show_progress if show_progress is not None else len(texts) >= 10000
        progress = keras.utils.Progbar(len(texts), verbose=1 if show else 0, unit_name="sentence")
        outputs = np.zeros((len(texts), 0), dtype="float32")
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            token_ids = sequence_padding([encoded[i][0] for i in rows])
            segment_ids = sequence_padding([encoded[i][1] for i in rows])
            vectors = self._run(tf.constant(token_ids, tf.int32), tf.constant(segment_ids, tf.int32))
            vectors = np.asarray(vectors, dtype="float32")
            if outputs.shape[1] == 0:
                outputs = np.zeros((len(texts), vectors.shape[1]), dtype="float32")
            outputs[rows] = vectors
            progress.add(len(rows))
        if normalize:
            outputs = _normalize(outputs)
        return outputs[0] if single else outputs

    # -- generation --------------------------------------------------------------------

    def gen_synonyms(self, text, n=100, k=20, topk=5, topp=None, maxlen=None, seed=None):
        """Sample ``n`` similar sentences, drop duplicates and ``text``, return the ``k`` closest.

        Closeness is the cosine of the encoder's vectors, as SimBERT does.

        Example:
            >>> sim.gen_synonyms("微信和支付宝哪个好", n=100, k=10)
        """
        from bert4sim.generation import CachedDecoder

        text = _check_text(text)
        if self.seq2seq is None:
            raise ValueError("this SimilarityModel has no seq2seq model: gen_synonyms needs one (SimBERT / RoFormer-Sim)")
        n = check_int(n, "n", 1)
        if not 1 <= check_int(k, "k") <= n:
            raise ValueError(f"k must be between 1 and n={n}, got {k}")
        topk = check_int(topk, "topk", 1, allow_none=True)
        seed = check_int(seed, "seed", 0, allow_none=True)
        maxlen = self.maxlen if maxlen is None else check_int(maxlen, "maxlen", 1)
        if topp is not None:
            if isinstance(topp, bool) or not isinstance(topp, numbers.Real):
                raise TypeError(f"topp must be a number in (0, 1], got {type(topp).__name__} {topp!r}")
            if not 0 < topp <= 1:
                raise ValueError(f"topp must be in (0, 1], got {topp}")
        positions = position_limit(self.seq2seq)
        # The source and the generated sentence share the positions: the source gets at most half.
        source_len = self.maxlen if positions is None else min(self.maxlen, positions // 2)
        token_ids, segment_ids = self.tokenizer.encode(text, maxlen=source_len)
        if positions is not None:
            maxlen = min(maxlen, positions - len(token_ids))
        if self._decoder is None or self._decoder.maxlen != maxlen:
            self._decoder = CachedDecoder(self.seq2seq, end_id=self.tokenizer._token_end_id, maxlen=maxlen)
        samples = self._decoder.random_sample([token_ids, segment_ids], n, topk=topk, topp=topp, seed=seed)
        candidates = []
        for ids in samples:
            candidate = self.tokenizer.decode(ids)
            if candidate.strip() and candidate != text and candidate not in candidates:
                candidates.append(candidate)
        if not candidates:
            return []
        vectors = self.encode([text] + candidates)
        scores = vectors[1:] @ vectors[0]
        return [candidates[i] for i in np.argsort(-scores, kind="stable")[:k]]

    # -- retrieval -----------------------------------------------------------------------

    def build_index(self, corpus, batch_size=64, dtype="float32", backend="numpy", show_progress=None,
                    faiss_factory="HNSW32", search_breadth=None):
        """Encode ``corpus`` into a new :class:`VectorIndex` (kept as ``self.index``).

        Example:
            >>> sim.build_index(["怎么注销信用卡", "信用卡额度怎么提高"])
            >>> sim.build_index(big_corpus, backend="faiss", faiss_factory="IVF4096,Flat")
        """
        corpus = _check_texts(corpus, "corpus")
        if not corpus:
            raise ValueError("corpus is empty")
        vectors = self.encode(corpus, batch_size=batch_size, show_progress=show_progress)
        index = VectorIndex(vectors.shape[1], dtype, backend, self.model_id, faiss_factory, search_breadth)
        self.index = index.add(vectors, corpus)
        return self.index

    def add(self, texts, batch_size=64):
        """Encode ``texts`` and append them to the index (creating it if needed).

        Example:
            >>> sim.add(["新的一句话"])
        """
        if self.index is None:
            return self.build_index(texts, batch_size)
        texts = _check_texts(texts)
        self.index.add(self.encode(texts, batch_size=batch_size), texts)
        return self.index

    def use_index(self, index):
        """Attach a loaded :class:`VectorIndex`, checking it was built by this model."""
        dim = self.encode("测试").shape[0]
        if index.dim != dim:
            raise ValueError(f"index vectors have dimension {index.dim}, this model produces {dim}")
        if index.model_id and index.model_id != self.model_id:
            raise ValueError(f"index was built by model {index.model_id}, this model is {self.model_id}")
        self.index = index
        return self

    def most_similar(self, text, topn=10):
        """``[(text, cosine), ...]`` of the ``topn`` corpus texts closest to ``text``.

        Example:
            >>> sim.most_similar("信用卡如何注销", topn=3)
            [('信用卡怎么注销', 0.97), ...]
        """
        text = _check_text(text)
        if self.index is None:
            raise ValueError("no index: call build_index(corpus) or use_index(VectorIndex.load(dir)) first")
        scores, indices = self.index.search(self.encode([text]), topn)
        return [(self.index.texts[i], float(s)) for s, i in zip(scores[0], indices[0])]

    # -- persistence ---------------------------------------------------------------------

    def save(self, directory):
        """Save as a folder: ``encoder.keras`` [+ ``seq2seq.keras``], ``vocab.txt``, metadata [+ ``index/``].

        Atomic, and refuses a folder holding files bert4sim did not write
        (see :meth:`VectorIndex.save`).

        Example:
            >>> sim.save("models/faq"); sim = SimilarityModel.load("models/faq")
        """
        from bert4sim.files import atomic_folder
        from bert4sim.tokenizers import save_vocab

        with atomic_folder(directory, "similarity-model") as staging:
            self.encoder.save(os.path.join(staging, "encoder.keras"))
            if self.seq2seq is not None:
                self.seq2seq.save(os.path.join(staging, "seq2seq.keras"))
            save_vocab(os.path.join(staging, "vocab.txt"), self.tokenizer.token_dict)
            meta = {"maxlen": self.maxlen, "do_lower_case": self.tokenizer._do_lower_case,
                    "model_id": self.model_id, "precision": self.requested_precision, "format": "bert4sim-similarity-model-1"}
            with open(os.path.join(staging, MODEL_META), "w", encoding="utf-8") as f:
                json.dump(meta, f, indent=2)
            if self.index is not None:
                os.mkdir(os.path.join(staging, "index"))
                self.index._write(os.path.join(staging, "index"))
        return directory

    @classmethod
    def load(cls, directory):
        """Load a folder written by :meth:`save` (or a Google checkpoint folder, see from_checkpoint)."""
        import keras

        from bert4sim.files import recover
        from bert4sim.tokenizers import Tokenizer

        if not os.path.isdir(directory):
            raise FileNotFoundError(f"model folder not found: {directory}")
        recover(directory)
        meta_path = os.path.join(directory, MODEL_META)
        if not os.path.isfile(meta_path):
            if os.path.isfile(os.path.join(directory, "bert_config.json")):
                return cls.from_checkpoint(directory)
            raise FileNotFoundError(f"{meta_path} not found: not a SimilarityModel folder or a checkpoint folder")
        meta = read_json(meta_path, dict)
        for key in ("maxlen", "do_lower_case", "model_id"):
            if key not in meta:
                raise ValueError(f"{meta_path} lacks key {key!r}")
        import bert4sim.layers  # noqa: F401  (registers the serializable layers)

        models = {}
        for name in ("encoder", "seq2seq"):
            path = os.path.join(directory, f"{name}.keras")
            if not os.path.isfile(path):
                if name == "encoder":
                    raise FileNotFoundError(f"{path} not found: the SimilarityModel folder is incomplete")
                continue
            try:
                models[name] = keras.models.load_model(path)
            except Exception as error:  # Keras raises many kinds for a damaged archive
                raise ValueError(f"{path} is not a loadable Keras model ({type(error).__name__}: "
                                 f"{str(error).splitlines()[0] if str(error) else ''})") from None
        tokenizer = Tokenizer(os.path.join(directory, "vocab.txt"), do_lower_case=meta["do_lower_case"])
        check_vocab_size(tokenizer, models["encoder"], os.path.join(directory, "vocab.txt"))
        model = cls(tokenizer, models["encoder"], models.get("seq2seq"), maxlen=meta["maxlen"],
                    model_id=meta["model_id"], precision=meta.get("precision", "auto"))
        if os.path.isdir(os.path.join(directory, "index")):
            model.index = VectorIndex.load(os.path.join(directory, "index"))
        return model

    @classmethod
    def from_checkpoint(cls, directory, pooling="pooler", model=None, with_seq2seq=None,
                        do_lower_case=True, maxlen=None, checkpoint_prefix=None, precision="auto"):
        """Build from a Google-format checkpoint folder (bert_config.json, vocab.txt, bert_model.ckpt).

        ``pooling``: ``'pooler'`` (SimBERT / RoFormer-Sim linear pooler),
        ``'cls'``, ``'mean'`` or ``'max'``. ``with_seq2seq`` (default: when the
        checkpoint has an MLM head) adds the UniLM generator. ``model``
        (``'bert'`` / ``'roformer'``) is read from the folder when not given
        (:func:`bert4sim.models.detect_model_type`). ``maxlen`` defaults to
        64, or the model's position count when smaller. ``precision``: see
        the class docstring.

        Example:
            >>> sim = SimilarityModel.from_checkpoint("checkpoints/chinese_simbert_L-12_H-768_A-12")
            >>> minilm = SimilarityModel.from_checkpoint("checkpoints/all-MiniLM-L6-v2", pooling="mean")
        """
        import keras
        import tensorflow as tf

        from bert4sim.layers import Pooling
        from bert4sim.models import build_transformer_model, detect_model_type, read_config, resolve_checkpoint_path
        from bert4sim.tokenizers import Tokenizer

        if not os.path.isdir(directory):
            raise FileNotFoundError(f"checkpoint folder not found: {directory}")
        config_path = os.path.join(directory, "bert_config.json")
        checkpoint = resolve_checkpoint_path(directory)
        try:
            names = tf.train.load_checkpoint(checkpoint).get_variable_to_shape_map()
        except (tf.errors.OpError, ValueError, IndexError) as error:
            raise ValueError(f"checkpoint {checkpoint}.index is damaged ({str(error).strip()[:200]})") from None
        config = read_config(config_path)
        model = model or detect_model_type(names, config)
        if maxlen is None:
            maxlen = 64 if model == "roformer" else min(64, config["max_position_embeddings"])
        if with_seq2seq is None:
            with_seq2seq = "cls/predictions/output_bias" in names
        if pooling not in ("pooler", "cls", "mean", "max"):
            raise ValueError(f"pooling must be 'pooler', 'cls', 'mean' or 'max', got {pooling!r}")
        base = build_transformer_model(
            config_path, checkpoint, model=model,
            application="unilm" if with_seq2seq else "encoder",
            with_pool="linear" if pooling == "pooler" else False,
            with_mlm=bool(with_seq2seq), return_keras_model=False, checkpoint_prefix=checkpoint_prefix,
        )
        outputs = base.model.outputs
        if pooling == "pooler":
            vectors = outputs[0]
        else:
            sequence = base.blocks[-1].output
            vectors = Pooling(pooling, name="Pooling")([sequence, base.model.inputs[0]])
        encoder = keras.Model(base.model.inputs, vectors, name="encoder")
        seq2seq = keras.Model(base.model.inputs, outputs[-1], name="seq2seq") if with_seq2seq else None
        tokenizer = Tokenizer(os.path.join(directory, "vocab.txt"), do_lower_case=do_lower_case)
        check_vocab_size(tokenizer, encoder, os.path.join(directory, "vocab.txt"))
        return cls(tokenizer, encoder, seq2seq, maxlen=maxlen, precision=precision)


_LOADED = {}


def _load_cached(model_dir):
    if model_dir not in _LOADED:
        _LOADED[model_dir] = SimilarityModel.load(model_dir)
    return _LOADED[model_dir]


def gen_synonyms(text, model_dir, n=100, k=20, **kwargs):
    """Shell helper: ``gen_synonyms("信用卡怎么注销", "checkpoints/simbert_demo")``.

    The model folder is loaded once per process.
    """
    return _load_cached(model_dir).gen_synonyms(text, n=n, k=k, **kwargs)


def most_similar(text, model_dir, index_dir=None, topn=10):
    """Shell helper: ``most_similar("怎么注销信用卡", "models/faq", "indexes/faq")``."""
    model = _load_cached(model_dir)
    if index_dir is not None:
        model.use_index(VectorIndex.load(index_dir))
    return model.most_similar(text, topn=topn)
