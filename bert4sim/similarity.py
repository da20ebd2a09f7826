"""Sentence vectors, similar-sentence generation and retrieval over a persistent index.

``SimilarityModel`` wraps a tokenizer, an encoder (any Keras model
``[token_ids, segment_ids] -> [batch, dim]``) and optionally a seq2seq
model (SimBERT / RoFormer-Sim ``unilm`` MLM output) for ``gen_synonyms``.
``VectorIndex`` keeps unit vectors and their texts for exact (numpy) or
approximate (faiss, optional) search, saved as ``.npy`` + JSON without pickle.
"""
import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

INDEX_FILES = ("vectors.npy", "texts.json", "meta.json")
MODEL_META = "similarity_model.json"
FAISS_FILE = "faiss.index"


def _check_texts(texts, name="texts"):
    if isinstance(texts, str) or not hasattr(texts, "__iter__"):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] is {type(text).__name__}, not str")
        if not text.strip():
            raise ValueError(f"{name}[{i}] is empty or whitespace only")
    return texts


def _check_text(text, name="text"):
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"{name} is empty or whitespace only")
    return text


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
        if topn < 1:
            raise ValueError(f"topn must be at least 1, got {topn}")
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
        """Write ``vectors.npy``, ``texts.json``, ``meta.json`` atomically (a temp dir renamed in place).

        A built faiss index is written too (``faiss.index``, faiss's own
        binary format), so loading does not rebuild it.

        Example:
            >>> index.save("indexes/faq")
        """
        parent = os.path.dirname(os.path.abspath(directory))
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".index-", dir=parent)
        try:
            np.save(os.path.join(staging, "vectors.npy"), self.vectors, allow_pickle=False)
            with open(os.path.join(staging, "texts.json"), "w", encoding="utf-8") as f:
                json.dump(self.texts, f, ensure_ascii=False)
            meta = {"dim": self.dim, "dtype": self.dtype, "backend": self.backend, "model_id": self.model_id,
                    "count": len(self), "faiss_factory": self.faiss_factory, "search_breadth": self.search_breadth,
                    "format": "bert4sim-vector-index-1"}
            if self._faiss is not None:
                import faiss

                faiss.write_index(self._faiss, os.path.join(staging, FAISS_FILE))
            with open(os.path.join(staging, "meta.json"), "w", encoding="utf-8") as f:
                json.dump(meta, f, indent=2)
            if os.path.exists(directory):
                old = directory.rstrip("/") + ".old"
                os.replace(directory, old)
                os.replace(staging, directory)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return directory

    @classmethod
    def load(cls, directory, backend=None):
        """Read an index written by :meth:`save`; ``backend`` overrides the saved one.

        Example:
            >>> index = VectorIndex.load("indexes/faq")
        """
        for name in INDEX_FILES:
            if not os.path.isfile(os.path.join(directory, name)):
                raise FileNotFoundError(f"{os.path.join(directory, name)} not found: not a bert4sim index folder")
        with open(os.path.join(directory, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        vectors = np.load(os.path.join(directory, "vectors.npy"), allow_pickle=False)
        with open(os.path.join(directory, "texts.json"), encoding="utf-8") as f:
            texts = json.load(f)
        if vectors.shape != (meta["count"], meta["dim"]) or len(texts) != meta["count"]:
            raise ValueError(f"index {directory} is inconsistent: {vectors.shape} vectors, {len(texts)} texts, "
                             f"meta says {meta['count']} x {meta['dim']}")
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
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
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
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if not 1 <= k <= n:
            raise ValueError(f"k must be between 1 and n={n}, got {k}")
        if self._decoder is None or self._decoder.maxlen != (maxlen or self.maxlen):
            self._decoder = CachedDecoder(self.seq2seq, end_id=self.tokenizer._token_end_id, maxlen=maxlen or self.maxlen)
        token_ids, segment_ids = self.tokenizer.encode(text, maxlen=self.maxlen)
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
        """Save as a folder: ``encoder.keras`` [+ ``seq2seq.keras``], ``vocab.txt``, metadata.

        Example:
            >>> sim.save("models/faq"); sim = SimilarityModel.load("models/faq")
        """
        from bert4sim.tokenizers import save_vocab

        os.makedirs(directory, exist_ok=True)
        self.encoder.save(os.path.join(directory, "encoder.keras"))
        if self.seq2seq is not None:
            self.seq2seq.save(os.path.join(directory, "seq2seq.keras"))
        save_vocab(os.path.join(directory, "vocab.txt"), self.tokenizer.token_dict)
        meta = {"maxlen": self.maxlen, "do_lower_case": self.tokenizer._do_lower_case,
                "model_id": self.model_id, "precision": self.requested_precision, "format": "bert4sim-similarity-model-1"}
        with open(os.path.join(directory, MODEL_META), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
        if self.index is not None:
            self.index.save(os.path.join(directory, "index"))
        return directory

    @classmethod
    def load(cls, directory):
        """Load a folder written by :meth:`save` (or a Google checkpoint folder, see from_checkpoint)."""
        import keras

        from bert4sim.tokenizers import Tokenizer

        meta_path = os.path.join(directory, MODEL_META)
        if not os.path.isfile(meta_path):
            if os.path.isfile(os.path.join(directory, "bert_config.json")):
                return cls.from_checkpoint(directory)
            raise FileNotFoundError(f"{meta_path} not found: not a SimilarityModel folder or a checkpoint folder")
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        import bert4sim.layers  # noqa: F401  (registers the serializable layers)

        encoder = keras.models.load_model(os.path.join(directory, "encoder.keras"))
        seq2seq_path = os.path.join(directory, "seq2seq.keras")
        seq2seq = keras.models.load_model(seq2seq_path) if os.path.isfile(seq2seq_path) else None
        tokenizer = Tokenizer(os.path.join(directory, "vocab.txt"), do_lower_case=meta["do_lower_case"])
        model = cls(tokenizer, encoder, seq2seq, maxlen=meta["maxlen"], model_id=meta["model_id"],
                    precision=meta.get("precision", "auto"))
        if os.path.isdir(os.path.join(directory, "index")):
            model.index = VectorIndex.load(os.path.join(directory, "index"))
        return model

    @classmethod
    def from_checkpoint(cls, directory, pooling="pooler", model="bert", with_seq2seq=None,
                        do_lower_case=True, maxlen=64, checkpoint_prefix=None, precision="auto"):
        """Build from a Google-format checkpoint folder (bert_config.json, vocab.txt, bert_model.ckpt).

        ``pooling``: ``'pooler'`` (SimBERT / RoFormer-Sim linear pooler),
        ``'cls'``, ``'mean'`` or ``'max'``. ``with_seq2seq`` (default: when the
        checkpoint has an MLM head) adds the UniLM generator. ``precision``:
        see the class docstring.

        Example:
            >>> sim = SimilarityModel.from_checkpoint("checkpoints/chinese_simbert_L-12_H-768_A-12")
            >>> minilm = SimilarityModel.from_checkpoint("checkpoints/all-MiniLM-L6-v2", pooling="mean")
        """
        import keras
        import tensorflow as tf

        from bert4sim.layers import Pooling
        from bert4sim.models import build_transformer_model, resolve_checkpoint_path
        from bert4sim.tokenizers import Tokenizer

        config_path = os.path.join(directory, "bert_config.json")
        checkpoint = resolve_checkpoint_path(directory)
        names = tf.train.load_checkpoint(checkpoint).get_variable_to_shape_map()
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
