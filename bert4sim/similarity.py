"""Sentence vectors, similar-sentence generation and retrieval: ``SimilarityModel``.

``SimilarityModel`` wraps a tokenizer, an encoder (any Keras model
``[token_ids, segment_ids] -> [batch, dim]``) and optionally a seq2seq
model (SimBERT / RoFormer-Sim ``unilm`` MLM output) for ``gen_synonyms``;
``most_similar`` searches a :class:`bert4sim.index.VectorIndex`.

Example:
    >>> sim = SimilarityModel.from_checkpoint("checkpoints/simbert_demo")
    >>> sim.gen_synonyms("信用卡怎么注销", n=50, k=5)
    >>> sim.build_index(corpus); sim.most_similar("怎么注销信用卡", topn=3)
"""
import contextlib
import hashlib
import json
import numbers
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from bert4sim.checkpoints import (CONFIG_DEFAULTS, REQUIRED_CONFIG_KEYS, checkpoint_shapes, detect_model_type,
                                  read_config, resolve_checkpoint_path)
from bert4sim.checks import (Field, check_bool, check_choice, check_int, check_text, check_texts, physical_memory,
                             read_fields)
from bert4sim.files import new_version, read_current, read_json, read_marker
from bert4sim.generation import CachedDecoder
from bert4sim.heads import Pooling
from bert4sim.index import VectorIndex, unit_rows
from bert4sim.models import build_transformer_model
from bert4sim.precision import PRECISIONS, resolve_precision, set_matmul_dtype
from bert4sim.sequences import sequence_padding
from bert4sim.tokenizers import Tokenizer, has_content, save_vocab
from bert4sim.transformers_folder import is_transformers_folder, read_transformers_folder

MODEL_META = "similarity_model.json"
# What similarity_model.json may hold (checked on load, bert4sim.checks.read_fields).
MODEL_META_FIELDS = {
    "maxlen": Field("int", minimum=2, maximum=1 << 20, required=True),
    "do_lower_case": Field("bool", required=True),
    "model_id": Field("str", required=True),
    "precision": Field("choice", choices=PRECISIONS, default="auto"),
}
POOLINGS = ("pooler", "cls", "mean", "max")


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


class _Progress:
    """Keras's progress bar on stderr (stdout stays for results); one summary line when stderr is not a terminal."""

    def __init__(self, total, show):
        with contextlib.redirect_stdout(sys.stderr):
            verbose = 0 if not show else 1 if sys.stderr.isatty() else 2  # Keras's live bar writes ANSI codes
            self._bar = keras.utils.Progbar(total, verbose=verbose, unit_name="sentence")

    def add(self, count):
        with contextlib.redirect_stdout(sys.stderr):
            self._bar.add(count)


class SimilarityModel:
    """Encode sentences, generate similar ones, and search a corpus.

    ``encoder``: Keras model ``[token_ids, segment_ids] -> [batch, dim]``;
    ``seq2seq``: optional ``unilm`` model with MLM output (for
    ``gen_synonyms``). ``maxlen`` truncates inputs. ``precision="bfloat16"``
    runs the matrix products of the encoder's bert4sim layers in bfloat16
    and the rest in float32 (1.6-1.8x faster encoding on CPUs with AMX and on
    an AMD EPYC with AVX-512 BF16, 0.6x on an Intel Xeon without AMX; cosine
    to the float32 vectors ~0.9999): it switches those layers in place
    (:func:`bert4sim.precision.set_matmul_dtype`), so a ``seq2seq`` model
    sharing them generates with bfloat16 products too. ``"float32"``
    switches them back to float32. ``"auto"`` (the default) is bfloat16
    only where it is faster on this machine
    (:func:`bert4sim.precision.auto_precision`); ``self.precision`` is the
    precision in use, ``"auto"`` is what :meth:`save` records so a saved
    model decides again on the machine that loads it.

    Each version of a saved model folder (:meth:`save`, :mod:`bert4sim.files`)
    holds ``encoder.keras`` [+ ``seq2seq.keras``], ``vocab.txt``,
    ``similarity_model.json`` (maxlen, lower-casing, model id, precision)
    and, when one is attached, the index folder ``index/`` (see
    :meth:`VectorIndex.save`).

    Example:
        >>> sim = SimilarityModel.from_checkpoint("checkpoints/simbert_demo")
        >>> sim.gen_synonyms("信用卡怎么注销", n=50, k=5)
        >>> sim.build_index(corpus); sim.most_similar("怎么注销信用卡", topn=3)
    """

    def __init__(self, tokenizer, encoder, seq2seq=None, maxlen=64, model_id=None, precision="auto"):
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"tokenizer must be a bert4sim.tokenizers.Tokenizer, got {type(tokenizer).__name__}")
        for name, part in (("encoder", encoder), ("seq2seq", seq2seq)):
            if not isinstance(part, keras.Model) and (name == "encoder" or part is not None):
                raise TypeError(f"{name} must be a Keras model [token_ids, segment_ids] -> "
                                f"{'vectors' if name == 'encoder' else 'MLM probabilities'}, got {type(part).__name__}")
        if model_id is not None and (not isinstance(model_id, str) or not model_id):
            raise TypeError(f"model_id must be a non-empty str or None, got {type(model_id).__name__} {model_id!r}")
        maxlen = check_int(maxlen, "maxlen", 2)
        positions = position_limit(encoder)
        if positions is not None and maxlen > positions:
            raise ValueError(f"maxlen {maxlen} exceeds the model's {positions} positions (max_position_embeddings)")
        self.tokenizer, self.encoder, self.seq2seq, self.maxlen = tokenizer, encoder, seq2seq, maxlen
        self.model_id = model_id or _fingerprint(encoder)
        self.requested_precision = precision
        self.precision = precision = resolve_precision(precision)
        self.index = None
        if not set_matmul_dtype(encoder, precision) and precision != "float32":
            if self.requested_precision == "auto":  # nothing to switch: float32 is all it can run
                self.precision = "float32"
            else:
                raise ValueError(f"precision={precision!r} needs an encoder made of bert4sim layers; "
                                 f"{encoder.name!r} has none with a matmul_dtype option")
        self._run = tf.function(lambda ids, segs: encoder([ids, segs], training=False), reduce_retracing=True)
        self._decoder = None

    def __repr__(self):
        index = "no index" if self.index is None else f"index of {len(self.index)} texts"
        dim = self.encoder.output_shape[-1] if isinstance(self.encoder.output_shape, tuple) else "?"
        return (f"SimilarityModel(model_id={self.model_id!r}, dim={dim}, vocab={self.tokenizer.vocab_size}, "
                f"maxlen={self.maxlen}, precision={self.precision!r}, "
                f"synonyms={'yes' if self.seq2seq is not None else 'no'}, {index})")

    # -- vectors ---------------------------------------------------------------------

    def encode(self, texts, batch_size=64, normalize=True, show_progress=None):
        """Vectors for ``texts`` (in input order); a single string gives one vector.

        Texts are sorted by length so each batch pads little.

        Example:
            >>> vectors = sim.encode(["你好", "今天天气不错"], batch_size=32)   # (2, dim)
        """
        single = isinstance(texts, str)
        texts = [check_text(texts)] if single else check_texts(texts)
        if not texts:
            raise ValueError("texts is empty")
        batch_size = check_int(batch_size, "batch_size", 1)
        normalize = check_bool(normalize, "normalize")
        if show_progress is not None:
            show_progress = check_bool(show_progress, "show_progress")
        encoded = [self.tokenizer.encode(text, maxlen=self.maxlen) for text in texts]
        order = np.argsort([len(ids) for ids, _ in encoded], kind="stable")
        show = show_progress if show_progress is not None else len(texts) >= 10000
        progress = _Progress(len(texts), show)
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
            outputs = unit_rows(outputs)
        return outputs[0] if single else outputs

    # -- generation --------------------------------------------------------------------

    def gen_synonyms(self, text, n=100, k=20, topk=5, topp=None, maxlen=None, seed=None):
        """Sample ``n`` similar sentences, drop duplicates and ``text``, return the ``k`` closest.

        Closeness is the cosine of the encoder's vectors, as SimBERT does.

        Example:
            >>> sim.gen_synonyms("微信和支付宝哪个好", n=100, k=10)
        """
        text = check_text(text)
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
        self._check_samples_fit(n, maxlen)
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
            if has_content(candidate) and candidate != text and candidate not in candidates:
                candidates.append(candidate)
        if not candidates:
            return []
        vectors = self.encode([text] + candidates)
        scores = vectors[1:] @ vectors[0]
        return [candidates[i] for i in np.argsort(-scores, kind="stable")[:k]]

    def _check_samples_fit(self, n, maxlen):
        """Refuse an ``n`` whose decoding buffers (key/value cache, logits) would not fit in memory."""
        embedding = _find_layer(self.seq2seq, "Embedding-Token")
        memory = physical_memory()
        if embedding is None or memory is None:
            return
        blocks = sum(1 for layer in self.seq2seq.layers if layer.name.startswith("Transformer-"))
        length = self.maxlen + maxlen
        need = 4 * n * (2 * blocks * length * embedding.output_dim + 2 * embedding.input_dim)
        if need > memory // 2:
            raise ValueError(f"n={n} samples would need {need / 2**30:.1f} GiB of decoding buffers, more than half "
                             f"of this machine's {memory / 2**30:.1f} GiB: draw fewer (n=100 is SimBERT's default)")

    # -- retrieval -----------------------------------------------------------------------

    def build_index(self, corpus, batch_size=64, dtype="float32", backend="numpy", show_progress=None,
                    faiss_factory="HNSW32", search_breadth=None):
        """Encode ``corpus`` into a new :class:`VectorIndex` (kept as ``self.index``).

        Example:
            >>> sim.build_index(["怎么注销信用卡", "信用卡额度怎么提高"])
            >>> sim.build_index(big_corpus, backend="faiss", faiss_factory="IVF4096,Flat")
        """
        corpus = check_texts(corpus, "corpus")
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
        texts = check_texts(texts)
        self.index.add(self.encode(texts, batch_size=batch_size), texts)
        return self.index

    def use_index(self, index):
        """Attach a loaded :class:`VectorIndex`, checking it was built by this model (dimension, model id).

        Example:
            >>> sim.use_index(VectorIndex.load("indexes/faq"))
        """
        if not isinstance(index, VectorIndex):
            hint = " (load a folder with VectorIndex.load(path))" if isinstance(index, (str, os.PathLike)) else ""
            raise TypeError(f"index must be a VectorIndex, got {type(index).__name__}{hint}")
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
        text = check_text(text)
        if self.index is None:
            raise ValueError("no index: call build_index(corpus) or use_index(VectorIndex.load(dir)) first")
        scores, indices = self.index.search(self.encode([text]), topn)
        return [(self.index.texts[i], float(s)) for s, i in zip(scores[0], indices[0])]

    # -- persistence ---------------------------------------------------------------------

    def save(self, directory):
        """Save as a folder: ``encoder.keras`` [+ ``seq2seq.keras``], ``vocab.txt``, metadata [+ ``index/``].

        A new version folder made current by one atomic rename; a folder that
        is not empty and not a bert4sim SimilarityModel folder is refused
        (see :meth:`VectorIndex.save`).

        Example:
            >>> sim.save("models/faq"); sim = SimilarityModel.load("models/faq")
        """
        with new_version(directory, "similarity-model") as staging:
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
        """Load a folder written by :meth:`save` (or a Google checkpoint / transformers folder, see from_checkpoint).

        Reads the folder's current version and changes nothing on disk.

        Example:
            >>> sim = SimilarityModel.load("models/faq")
        """
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"model folder not found: {directory}")
        if (read_marker(directory) or {}).get("kind") == "checkpoint":
            return cls.from_checkpoint(directory)
        return read_current(directory, "similarity-model", cls._read)

    @classmethod
    def _read(cls, directory):
        meta_path = os.path.join(directory, MODEL_META)
        if not os.path.isfile(meta_path):
            if os.path.isfile(os.path.join(directory, "bert_config.json")) or is_transformers_folder(directory):
                return cls.from_checkpoint(directory)
            raise FileNotFoundError(f"{meta_path} not found: not a SimilarityModel folder, a checkpoint folder "
                                    "or a transformers folder")
        meta = read_fields(read_json(meta_path, dict), MODEL_META_FIELDS, meta_path)
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
                    model_id=meta["model_id"], precision=meta["precision"])
        if os.path.isdir(os.path.join(directory, "index")):
            index_dir = os.path.join(directory, "index")
            try:
                model.use_index(VectorIndex.load(index_dir))  # the checks use_index makes
            except ValueError as error:
                raise ValueError(f"{index_dir}: {error}") from None
        return model

    @classmethod
    def from_checkpoint(cls, directory, pooling=None, model=None, with_seq2seq=None,
                        do_lower_case=None, maxlen=None, checkpoint_prefix=None, precision="auto"):
        """Build from a Google-format checkpoint folder (bert_config.json, vocab.txt, bert_model.ckpt)
        or a transformers / sentence-transformers BERT or RoFormer folder (converted in memory).

        ``pooling``: ``'pooler'`` (SimBERT / RoFormer-Sim linear pooler),
        ``'cls'``, ``'mean'`` or ``'max'``; by default the folder's own, as
        ``bert_config.json`` records it (key ``"pooling"``: bert4sim's
        Sentence-BERT and RetroMAE encoders write the pooling they were
        trained with; a converted sentence-transformers folder its pooling),
        else ``'pooler'`` (a folder without a pooler is then an error). ``with_seq2seq`` (default:
        when the checkpoint has an MLM head) adds the UniLM generator.
        ``model`` (``'bert'`` / ``'roformer'``) is read from the folder when
        not given (:func:`bert4sim.checkpoints.detect_model_type`).
        ``do_lower_case`` defaults to the folder's tokenizer setting, else
        True. ``maxlen`` defaults to 64, or the model's position count when
        smaller. ``precision``: see the class docstring.

        Example:
            >>> sim = SimilarityModel.from_checkpoint("checkpoints/chinese_simbert_L-12_H-768_A-12")
            >>> minilm = SimilarityModel.from_checkpoint("checkpoints/all-MiniLM-L6-v2", pooling="mean")
            >>> text2vec = SimilarityModel.from_checkpoint("models/text2vec-base-chinese")  # its mean pooling
        """
        check_choice(pooling, "pooling", POOLINGS, allow_none=True)
        check_choice(model, "model", ("bert", "roformer"), allow_none=True)
        for name, flag in (("do_lower_case", do_lower_case), ("with_seq2seq", with_seq2seq)):
            if flag is not None:
                check_bool(flag, name)
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"checkpoint folder not found: {directory}")
        options = dict(pooling=pooling, model=model, with_seq2seq=with_seq2seq, do_lower_case=do_lower_case,
                       maxlen=maxlen, checkpoint_prefix=checkpoint_prefix, precision=precision)
        return read_current(directory, "checkpoint", lambda version: cls._from_folder(
            version, os.path.join(version if os.path.isfile(os.path.join(version, "vocab.txt")) else directory,
                                  "vocab.txt"), **options))  # a vocab.txt put beside a save without one

    @classmethod
    def _from_folder(cls, directory, vocab_path, pooling, model, with_seq2seq, do_lower_case, maxlen,
                     checkpoint_prefix, precision):
        if is_transformers_folder(directory):
            config, checkpoint, vocab = read_transformers_folder(directory)
            names, config_path, vocab_source = checkpoint, None, {token: i for i, token in enumerate(vocab)}
            vocab_where = f"the vocabulary of {directory}"
            config_keys = {k: v for k, v in config.items() if k in REQUIRED_CONFIG_KEYS or k in CONFIG_DEFAULTS}
        else:
            config_path = os.path.join(directory, "bert_config.json")
            checkpoint = resolve_checkpoint_path(directory)
            names = checkpoint_shapes(checkpoint)
            config = read_config(config_path)
            vocab_source = vocab_where = vocab_path
            config_keys = {}
        model = model or detect_model_type(names, config)
        if maxlen is None:
            maxlen = 64 if model == "roformer" else min(64, config["max_position_embeddings"])
        if with_seq2seq is None:
            with_seq2seq = "cls/predictions/output_bias" in names
        if pooling is None:
            pooling = config.get("pooling", "pooler")
        if pooling not in ("pooler", "cls", "mean", "max"):
            raise ValueError(f"pooling must be 'pooler', 'cls', 'mean' or 'max', got {pooling!r}")
        scope = checkpoint_prefix or ("roformer" if "roformer/embeddings/word_embeddings" in names else "bert")
        if pooling == "pooler" and f"{scope}/pooler/dense/kernel" not in names:
            raise ValueError(f"{directory} has no pooler ({scope}/pooler/dense): choose pooling 'cls', 'mean' "
                             "or 'max' (CLI --pooling)")
        base = build_transformer_model(
            config_path, checkpoint, model=model,
            application="unilm" if with_seq2seq else "encoder",
            with_pool="linear" if pooling == "pooler" else False,
            with_mlm=bool(with_seq2seq), return_keras_model=False, checkpoint_prefix=checkpoint_prefix,
            **config_keys,
        )
        outputs = base.model.outputs
        if pooling == "pooler":
            vectors = outputs[0]
        else:
            sequence = base.blocks[-1].output
            vectors = Pooling(pooling, name="Pooling")([sequence, base.model.inputs[0]])
        encoder = keras.Model(base.model.inputs, vectors, name="encoder")
        seq2seq = keras.Model(base.model.inputs, outputs[-1], name="seq2seq") if with_seq2seq else None
        if do_lower_case is None:
            do_lower_case = config.get("do_lower_case", True) is not False
        tokenizer = Tokenizer(vocab_source, do_lower_case=do_lower_case)
        check_vocab_size(tokenizer, encoder, vocab_where)
        return cls(tokenizer, encoder, seq2seq, maxlen=maxlen, precision=precision)


_LOADED = {}


def _load_cached(model_dir):
    if model_dir not in _LOADED:
        _LOADED[model_dir] = SimilarityModel.load(model_dir)
    return _LOADED[model_dir]


def gen_synonyms(text, model_dir, n=100, k=20, **kwargs):
    """Shell helper: the model folder is loaded once per process.

    Example:
        >>> gen_synonyms("信用卡怎么注销", "checkpoints/simbert_demo/similarity_model", n=50, k=5)
    """
    return _load_cached(model_dir).gen_synonyms(text, n=n, k=k, **kwargs)


def most_similar(text, model_dir, index_dir=None, topn=10):
    """Shell helper: ``most_similar("怎么注销信用卡", "models/faq", "indexes/faq")``.

    Example:
        >>> most_similar("怎么注销信用卡", "checkpoints/simbert_demo/similarity_model", topn=3)
    """
    model = _load_cached(model_dir)
    if index_dir is not None:
        model.use_index(VectorIndex.load(index_dir))
    return model.most_similar(text, topn=topn)
