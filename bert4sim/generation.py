"""Autoregressive decoding: bert4keras's AutoRegressiveDecoder and a key/value-cached decoder.

``AutoRegressiveDecoder`` keeps bert4keras's API: subclass it, override
``predict(self, inputs, output_ids, states)`` decorated with
``@AutoRegressiveDecoder.wraps(default_rtype=...)`` and call
``random_sample`` / ``beam_search``. Such a decoder recomputes the whole
sequence at every step, as bert4keras did.

``CachedDecoder`` decodes a bert4sim ``unilm`` / ``lm`` model incrementally:
the source is encoded once per call (whatever ``n``), its keys/values are
shared by all rows, the keys/values of generated tokens go to fixed-shape
buffers, and each step feeds only the newest token of every distinct row
through one compiled ``tf.function``.
"""
import math

import numpy as np
import tensorflow as tf
from keras import ops

from bert4sim.layers import MASKED_LOGIT, CastKernels, TransformerBlock, rotary_position_embedding
from bert4sim.models import Transformer


def softmax(x, axis=-1):
    """Numerically stable softmax in numpy."""
    x = x - x.max(axis=axis, keepdims=True)
    x = np.exp(x)
    return x / x.sum(axis=axis, keepdims=True)


def _sample_rows(probas, rng):
    """One draw per row from row-wise distributions (inverse CDF, vectorised).

    With ``rng=None`` the draws are numpy's global ones, one uniform per row
    in row order, compared as ``np.random.choice`` compares them: the same
    ids as bert4keras's per-row ``np.random.choice`` after ``np.random.seed``.
    """
    cumulative = np.cumsum(probas, axis=1)
    if rng is None:
        cumulative /= cumulative[:, -1:]
        uniforms = np.random.random_sample(len(probas))[:, None]
        return np.minimum((cumulative <= uniforms).sum(axis=1), probas.shape[1] - 1)
    draws = rng.random(len(probas))[:, None] * cumulative[:, -1:]
    return np.minimum((cumulative < draws).sum(axis=1), probas.shape[1] - 1)


def _quietly(function, *args):
    """Call ``function`` with Keras's progress bars off: a ``model.predict`` made at every decoding step
    (as bert4keras scripts write it) would print one bar per step."""
    import keras

    if not keras.utils.is_interactive_logging_enabled():
        return function(*args)
    keras.utils.disable_interactive_logging()
    try:
        return function(*args)
    finally:
        keras.utils.enable_interactive_logging()


class _QuietModel:
    """A model's ``predict`` for one decoding step: a direct call, no progress bar, numpy out.

    ``AutoRegressiveDecoder.last_token`` returns it, so a bert4keras
    ``predict`` written as ``self.last_token(model).predict([ids, segs])``
    prints nothing per step (Keras 3's ``predict`` shows a progress bar by
    default and sets up a data pipeline on every call). Other attributes are
    the wrapped Keras model's.
    """

    def __init__(self, model):
        self.model = model

    def predict(self, x, batch_size=None, verbose=0, steps=None, callbacks=None):
        arrays = [np.asarray(a) for a in x] if isinstance(x, (list, tuple)) else np.asarray(x)
        outputs = self.model(arrays, training=False)
        if isinstance(outputs, (list, tuple)):
            return [ops.convert_to_numpy(o) for o in outputs]
        return ops.convert_to_numpy(outputs)

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.model, name)


def _top_k_indices(scores, k):
    """Indices of the k largest scores per row, largest first (ties: lower index first)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part.sort(axis=1)  # ties then resolve by index, whatever argpartition returned
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


class AutoRegressiveDecoder:
    """bert4keras-compatible decoding base class.

    ``start_id`` (None to start from nothing), ``end_id``, ``maxlen`` (most
    generated tokens), ``minlen``. Subclasses implement ``predict``.

    Example:
        >>> class Generator(AutoRegressiveDecoder):
        ...     @AutoRegressiveDecoder.wraps(default_rtype="probas")
        ...     def predict(self, inputs, output_ids, states):
        ...         token_ids, segment_ids = inputs
        ...         token_ids = np.concatenate([token_ids, output_ids], 1)
        ...         segment_ids = np.concatenate([segment_ids, np.ones_like(output_ids)], 1)
        ...         return self.last_token(seq2seq).predict([token_ids, segment_ids], verbose=0)
        >>> Generator(start_id=None, end_id=3, maxlen=32).random_sample([ids, segs], n=5, topk=5)
    """

    def __init__(self, start_id, end_id, maxlen, minlen=1):
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, got {maxlen}")
        self.start_id = start_id
        self.end_id = end_id
        self.maxlen = maxlen
        self.minlen = minlen
        self.models = {}
        if start_id is None:
            self.first_output_ids = np.empty((1, 0), dtype=int)
        else:
            self.first_output_ids = np.array([[start_id]])

    @staticmethod
    def wraps(default_rtype="probas", use_states=False):
        """Decorate ``predict``: adds temperature and the ``rtype`` ('probas' | 'logits') switch.

        ``default_rtype`` says what the wrapped predict returns; with
        ``use_states=True`` it returns ``(prediction, states)``.

        Example:
            >>> @AutoRegressiveDecoder.wraps(default_rtype="logits", use_states=True)
            ... def predict(self, inputs, output_ids, states): ...
        """
        if default_rtype not in ("probas", "logits"):
            raise ValueError(f"default_rtype must be 'probas' or 'logits', got {default_rtype!r}")

        def decorator(predict):
            def new_predict(self, inputs, output_ids, states, temperature=1, rtype=default_rtype):
                if rtype not in ("probas", "logits"):
                    raise ValueError(f"rtype must be 'probas' or 'logits', got {rtype!r}")
                prediction = _quietly(predict, self, inputs, output_ids, states)
                scores, states = prediction if use_states else (prediction, None)
                scores = np.asarray(scores, dtype="float64")
                if default_rtype == "logits":
                    probas = softmax(scores / temperature)
                elif temperature != 1:
                    probas = np.power(scores, 1.0 / temperature)
                    probas = probas / probas.sum(axis=-1, keepdims=True)
                else:
                    probas = scores
                if rtype == "probas":
                    return probas, states
                return np.log(probas + 1e-12), states

            new_predict.__wrapped__ = predict
            return new_predict

        return decorator

    def last_token(self, model):
        """A model returning only the last position of ``model``'s outputs (cached per model).

        Its ``predict`` calls the model directly and prints nothing (see :class:`_QuietModel`).
        """
        if model not in self.models:
            import keras

            outputs = [keras.layers.Lambda(lambda x: x[:, -1])(output) for output in model.outputs]
            self.models[model] = _QuietModel(keras.Model(model.inputs, outputs if len(outputs) > 1 else outputs[0]))
        return self.models[model]

    def predict(self, inputs, output_ids, states):
        raise NotImplementedError("subclasses implement predict(inputs, output_ids, states)")

    def select_rows(self, states, rows):
        """Hook: keep/reorder per-row states when rows are tiled, reordered or dropped."""
        return states

    def candidates(self, inputs, output_ids, states, temperature, k, rtype):
        """The ``k`` best next tokens of every row: ``(scores, token_ids, states)``.

        ``scores``/``token_ids`` are ``[rows, k]``, best first (ties: lower
        id first); ``k=None`` returns all scores and ``token_ids=None``.
        The default calls ``predict``; :class:`CachedDecoder` selects the
        candidates inside its compiled step instead.

        Example:
            >>> probas, ids, states = decoder.candidates(inputs, output_ids, None, 1, 5, "probas")
        """
        scores, states = self.predict(inputs, output_ids, states, temperature, rtype)
        if k is None:
            return scores, None, states
        ids = _top_k_indices(scores, k)
        return np.take_along_axis(scores, ids, axis=1), ids, states


    def beam_search(self, inputs, topk, states=None, temperature=1, min_ends=1):
        """The most probable sequence by beam search with ``topk`` beams.

        Example:
            >>> ids = generator.beam_search([token_ids, segment_ids], topk=3)
        """
        if topk < 1:
            raise ValueError(f"topk must be at least 1, got {topk}")
        inputs = [np.array([i]) for i in inputs]
        output_ids, output_scores = self.first_output_ids, np.zeros(1)
        for step in range(self.maxlen):
            scores, tokens, states = self.candidates(inputs, output_ids, states, temperature, topk, "logits")
            if step == 0:
                inputs = [np.repeat(i, topk, axis=0) for i in inputs]
            # The best topk of all beams x vocabulary lie among each beam's own best topk;
            # order by score, then beam, then token id (bert4keras's flat-index order).
            scores = output_scores.reshape((-1, 1)) + scores
            beams = np.broadcast_to(np.arange(len(scores))[:, None], scores.shape)
            best = np.lexsort((tokens.ravel(), beams.ravel(), -scores.ravel()))[:topk]
            parents, tokens = beams.ravel()[best], tokens.ravel()[best]
            output_ids = np.concatenate([output_ids[parents], tokens[:, None]], 1)
            output_scores = scores.ravel()[best]
            states = self.select_rows(states, parents)
            is_end = output_ids[:, -1] == self.end_id
            end_counts = (output_ids == self.end_id).sum(1)
            if output_ids.shape[1] >= self.minlen:
                best = output_scores.argmax()
                if is_end[best] and end_counts[best] >= min_ends:
                    return output_ids[best]
                keep = ~is_end | (end_counts < min_ends)
                if not keep.all():
                    inputs = [i[keep] for i in inputs]
                    output_ids, output_scores = output_ids[keep], output_scores[keep]
                    states = self.select_rows(states, np.flatnonzero(keep))
                    topk = int(keep.sum())
        return output_ids[output_scores.argmax()]

    def random_sample(self, inputs, n, topk=None, topp=None, states=None, temperature=1, min_ends=1, seed=None):
        """``n`` sampled sequences (top-k, then top-p filtering, temperature).

        Without ``seed`` the draws come from numpy's global generator exactly
        as bert4keras 0.11.5 made them (``np.random.seed(s)`` before the call
        reproduces its samples on the same model; the order of the top-k
        candidates comes from ``argpartition``, which may differ between numpy
        versions). ``seed`` draws from ``np.random.default_rng(seed)`` instead
        (bert4sim extension, also used by :class:`CachedDecoder`).

        Example:
            >>> samples = generator.random_sample([token_ids, segment_ids], n=10, topp=0.95, seed=0)
        """
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if topk is not None and topk < 1:
            raise ValueError(f"topk must be at least 1, got {topk}")
        rng = None if seed is None else np.random.default_rng(seed)
        # bert4keras's order of operations on the full distribution, unless a subclass selects candidates itself
        as_bert4keras = rng is None and type(self).candidates is AutoRegressiveDecoder.candidates
        inputs = [np.array([i]) for i in inputs]
        output_ids = self.first_output_ids
        results = []
        for step in range(self.maxlen):
            probas, candidates, states = self.candidates(inputs, output_ids, states, temperature,
                                                         None if as_bert4keras else topk, "probas")
            probas = probas / probas.sum(axis=1, keepdims=True)
            if step == 0:
                probas = np.repeat(probas, n, axis=0)
                candidates = None if candidates is None else np.repeat(candidates, n, axis=0)
                inputs = [np.repeat(i, n, axis=0) for i in inputs]
                output_ids = np.repeat(output_ids, n, axis=0)
                states = self.select_rows(states, np.zeros(n, dtype=int))
            if as_bert4keras and topk is not None:
                candidates = probas.argpartition(-topk, axis=1)[:, -topk:]
                probas = np.take_along_axis(probas, candidates, axis=1)
                probas /= probas.sum(axis=1, keepdims=True)
            if topp is not None:
                order = probas.argsort(axis=1)[:, ::-1] if rng is None else np.argsort(-probas, axis=1, kind="stable")
                probas = np.take_along_axis(probas, order, axis=1)
                beyond = np.roll(np.cumsum(probas, axis=1) >= topp, 1, axis=1)
                beyond[:, 0] = False
                probas[beyond] = 0
                probas /= probas.sum(axis=1, keepdims=True)
                candidates = order if candidates is None else np.take_along_axis(candidates, order, axis=1)
            sample_ids = _sample_rows(probas, rng)[:, None]
            if candidates is not None:
                sample_ids = np.take_along_axis(candidates, sample_ids, axis=1)
            output_ids = np.concatenate([output_ids, sample_ids], 1)
            is_end = output_ids[:, -1] == self.end_id
            end_counts = (output_ids == self.end_id).sum(1)
            if output_ids.shape[1] >= self.minlen:
                finished = is_end & (end_counts >= min_ends)
                if finished.any():
                    results.extend(output_ids[finished])
                    keep = ~finished
                    inputs = [i[keep] for i in inputs]
                    output_ids, end_counts = output_ids[keep], end_counts[keep]
                    states = self.select_rows(states, np.flatnonzero(keep))
                    if len(output_ids) == 0:
                        break
        results.extend(output_ids)
        return results


@tf.function(reduce_retracing=True)
def _regroup(sources, targets, parents, filled):
    """Row ``i`` of each target := row ``parents[i]`` of its source, over the first ``filled`` slots."""
    slots = tf.range(filled)
    grid = tf.stack(tf.meshgrid(slots, tf.range(tf.shape(parents)[0]), indexing="ij"), axis=-1)
    for source, target in zip(sources, targets):
        kept = tf.gather(source.sparse_read(slots), parents, axis=1)  # read before any write
        target.scatter_nd_update(tf.reshape(grid, (-1, 2)), tf.reshape(kept, (-1,) + tuple(kept.shape[2:])))
    return tf.constant(0)


class _Buffers:
    """Keys/values of the generated tokens: per block a pair of variables ``[slots, capacity, heads, head_size]``.

    The first ``rows`` rows are in use. A step writes its slot in place
    (``scatter_nd_update``) and reads only the slots filled so far
    (``sparse_read``), so no step copies a whole buffer; rows are regrouped in
    place when histories split, merge or end. ``version`` counts in-place
    changes, so states older than the buffers are refused.
    """

    def __init__(self, pairs, capacity, rows=1):
        self.pairs, self.capacity, self.rows, self.version = pairs, capacity, rows, 0

    @classmethod
    def empty(cls, blocks, slots, capacity, heads, head_size, dtype):
        # The row dimension is left unknown: a compiled step traced for one
        # capacity must not bake it in (variables do not retrace by shape).
        shape = tf.TensorShape([slots, None, heads, head_size])
        zeros = tf.zeros((slots, capacity, heads, head_size), dtype)
        make = lambda: tf.Variable(zeros, trainable=False, shape=shape)  # noqa: E731
        return cls([(make(), make()) for _ in range(blocks)], capacity)

    def variables(self):
        return [variable for pair in self.pairs for variable in pair]

    def regroup(self, parents, filled):
        """Buffers whose row ``i`` holds row ``parents[i]`` of these (in place when they fit)."""
        target = self
        if len(parents) > self.capacity:
            first = self.pairs[0][0]
            target = _Buffers.empty(len(self.pairs), first.shape[0], len(parents), first.shape[2], first.shape[3],
                                    first.dtype)
        if filled:
            parents_tensor = tf.constant(np.asarray(parents, dtype="int32"))
            _regroup(self.variables(), target.variables(), parents_tensor, tf.constant(filled, tf.int32))
        target.rows = len(parents)
        target.version = self.version + 1
        return target


class CachedDecoder(AutoRegressiveDecoder):
    """Incremental decoding of a bert4sim ``unilm``/``lm`` model with a key/value cache.

    ``inputs`` are ``[token_ids, segment_ids]`` of the source; generated
    tokens get segment id 1 for ``unilm`` models (0 for ``lm``). The source
    is encoded once per call, whatever ``n``/``topk``, and its keys/values
    are shared by all rows (never tiled). The keys/values of generated tokens
    live in fixed-shape buffers written in place; each step feeds one token
    per *distinct* row (rows with the same history share a cache row)
    through one compiled step, which also picks the top-k candidates.

    ``jit_compile=True`` compiles the step with XLA, which fuses its many
    small operations (calls about 17 % faster at SimBERT-base size on CPU),
    with static shapes so that it compiles once per call shape: every row is
    fed (no sharing), finished rows are padded, attention runs over all
    slots with the unused ones masked, and the source is padded to a
    multiple of ``SOURCE_BUCKET`` tokens. The first call for a new shape
    (``n`` or ``topk``, source bucket) compiles (a few seconds at
    SimBERT-base size). XLA's CPU matrix products do not use AMX: with
    ``matmul_dtype="bfloat16"`` leave it off.

    Example:
        >>> decoder = CachedDecoder(seq2seq_model, end_id=tokenizer._token_end_id, maxlen=32)
        >>> outputs = decoder.random_sample(tokenizer.encode("信用卡怎么注销"), n=100, topk=5)
        >>> [tokenizer.decode(ids) for ids in outputs]
    """

    SOURCE_BUCKET = 16

    def __init__(self, model, end_id, maxlen, minlen=1, start_id=None, jit_compile=False):
        super().__init__(start_id, end_id, maxlen, minlen)
        self.jit_compile = bool(jit_compile)
        self.transformer = Transformer.from_model(model)
        t = self.transformer
        if t.mlm_transform is None:
            raise ValueError(f"model {model.name!r} has no MLM head: build it with with_mlm=True or application='unilm'")
        if t.application == "encoder":
            raise ValueError(f"model {model.name!r} is a bidirectional encoder; decoding needs application='unilm' or 'lm'")
        for block in t.blocks:
            if type(block) is not TransformerBlock:
                raise ValueError(f"block {block.name!r} is a {type(block).__name__}; CachedDecoder steps TransformerBlock only")
        first = t.blocks[0]
        self.segment_id = 1 if t.application == "unilm" else 0
        self.vocab_size = t.config["vocab_size"]
        self.num_heads = first.num_heads
        self.head_size = t.config["hidden_size"] // first.num_heads
        self.max_positions = t.config["max_position_embeddings"] if t.position_embedding is not None else None
        # bfloat16 products: kernels cast once per decoding call, not once per step
        self._kernels = CastKernels(model)
        self._prefill = tf.function(self._with_cast_kernels(self._prefill_graph), reduce_retracing=True)
        self._step = tf.function(self._with_cast_kernels(self._step_graph), reduce_retracing=True,
                                 jit_compile=jit_compile)
        self._select = tf.function(self._select_graph, reduce_retracing=True)

    # -- compiled pieces ----------------------------------------------------------

    def _with_cast_kernels(self, graph):
        def traced(*args):
            with self._kernels.active():
                return graph(*args)

        return traced

    def _logits(self, hidden):
        """MLM logits of the last position of every row (float32)."""
        t = self.transformer
        hidden = t.mlm_transform.norm(t.mlm_transform.dense.project(hidden))
        logits = t.token_embedding.logits(hidden)
        return ops.cast(logits, "float32") + ops.cast(t.mlm_bias.bias, "float32")

    def _select_graph(self, logits, temperature, k):
        """Top-k of the temperature-scaled logits as log-probabilities (computed in float32, returned as float64)."""
        scaled = logits / ops.cast(temperature, logits.dtype)
        values, ids = tf.math.top_k(scaled, k)
        return ops.cast(values - tf.reduce_logsumexp(scaled, axis=-1, keepdims=True), "float64"), ids

    def _prefill_graph(self, token_ids, segment_ids, last):
        """Encode the source ([1, P]): logits at position ``last``, keys/values per block as ``[heads, P, head_size]``."""
        t = self.transformer
        mask = t.attention_mask([token_ids, segment_ids])
        x = t.embed(token_ids, segment_ids)
        empty = ops.zeros((1, self.num_heads, ops.shape(token_ids)[1], self.head_size), dtype=x.dtype)
        prefix = []
        for block in t.blocks:
            x, (keys, values) = block(x, attention_mask=mask, cache=(empty, empty), cache_update_index=0)
            prefix.append((keys[0], values[0]))
        return self._logits(x[:, last]), prefix

    def _attend(self, attention, x, position, slot, prefix, prefix_valid, buffers):
        """Attention of one new token per row over the source and the generated tokens so far."""
        heads, size = self.num_heads, self.head_size
        q, k, v = (dense.project(x) for dense in (attention.query_dense, attention.key_dense, attention.value_dense))
        q, k = ops.reshape(q, (-1, 1, heads, size)), ops.reshape(k, (-1, 1, heads, size))
        v = ops.reshape(v, (-1, heads, size))
        if attention.use_rope:
            q = rotary_position_embedding(q, ops.reshape(position, (1,)))
            k = rotary_position_embedding(k, ops.reshape(position, (1,)))
        q, k = q[:, 0], k[:, 0]
        key_buffer, value_buffer = buffers
        rows = ops.shape(x)[0]
        where = ops.stack([ops.full((rows,), slot, dtype="int32"), ops.arange(rows, dtype="int32")], axis=1)
        key_buffer.scatter_nd_update(where, ops.cast(k, key_buffer.dtype))
        value_buffer.scatter_nd_update(where, ops.cast(v, value_buffer.dtype))
        if self.jit_compile:  # static shapes: every slot, those after this one masked
            keys, values = ops.convert_to_tensor(key_buffer), ops.convert_to_tensor(value_buffer)
            generated_valid = ops.arange(ops.shape(keys)[0]) <= slot
        else:
            filled = ops.arange(slot + 1)
            # [t, rows, heads, size]; the slice is free when all rows are in use
            keys, values = key_buffer.sparse_read(filled)[:, :rows], value_buffer.sparse_read(filled)[:, :rows]
            generated_valid = ops.ones((slot + 1,), dtype="bool")
        prefix_keys, prefix_values = prefix
        scale = math.sqrt(size)
        source_logits = ops.einsum("rhd,hpd->rhp", q, prefix_keys) / scale
        generated_logits = ops.transpose(ops.sum(q[None] * keys, axis=-1), (1, 2, 0)) / scale
        logits = ops.cast(ops.concatenate([source_logits, generated_logits], axis=-1), "float32")
        valid = ops.concatenate([prefix_valid, generated_valid], axis=0)
        probs = ops.cast(ops.softmax(ops.where(valid, logits, MASKED_LOGIT), axis=-1), x.dtype)
        length = ops.shape(prefix_keys)[1]
        context = ops.einsum("rhp,hpd->rhd", probs[..., :length], prefix_values)
        weights = ops.transpose(probs[..., length:], (2, 0, 1))[..., None]
        context = context + ops.sum(weights * ops.cast(values, x.dtype), axis=0)
        return attention.output_dense.project(ops.reshape(context, (-1, heads * size)))

    def _step_graph(self, token_ids, slot, source_length, prefix, prefix_valid, buffers):
        """Logits of the next token for one new token per cache row (``token_ids`` [rows, 1])."""
        t = self.transformer
        position = source_length + slot
        segment_ids = ops.full_like(token_ids, self.segment_id)
        x = t.embed(token_ids, segment_ids, start_index=position)[:, 0]
        for block, source, pair in zip(t.blocks, prefix, buffers):
            attended = self._attend(block.attention, x, position, slot, source, prefix_valid, pair)
            x = block.attention_norm(x + attended)
            ffn = block.feed_forward
            x = block.output_norm(x + ffn.output_dense.project(ffn.inner_dense.project(x)))
        return self._logits(x)

    # -- decoder protocol --------------------------------------------------------------

    def _start(self, inputs, rows):
        token_ids, segment_ids = (np.asarray(i, dtype="int32") for i in inputs)
        if token_ids.ndim != 2 or token_ids.shape != segment_ids.shape:
            raise ValueError(f"inputs must be [token_ids, segment_ids] of equal shape [rows, length], got "
                             f"{token_ids.shape} and {segment_ids.shape}")
        if (token_ids != token_ids[:1]).any() or (segment_ids != segment_ids[:1]).any():
            raise ValueError("CachedDecoder decodes one source per call; the rows of inputs differ")
        slots = self.maxlen + self.first_output_ids.shape[1]
        if self.max_positions is not None and token_ids.shape[1] + slots > self.max_positions:
            raise ValueError(
                f"source of {token_ids.shape[1]} tokens + maxlen {self.maxlen} exceeds "
                f"max_position_embeddings={self.max_positions}"
            )
        length = token_ids.shape[1]
        if self.jit_compile:  # pad the source (masked) so that sources of similar length share one compilation
            padded = -(-length // self.SOURCE_BUCKET) * self.SOURCE_BUCKET
            if self.max_positions is not None:
                padded = max(length, min(padded, self.max_positions))
            token_ids, segment_ids = (np.pad(i[:1], ((0, 0), (0, padded - length))) for i in (token_ids, segment_ids))
        self._kernels.refresh()  # the model's current weights, cast once for this call
        logits, prefix = self._prefill(token_ids[:1], segment_ids[:1], tf.constant(length - 1, tf.int32))
        return {
            "prefix": prefix,
            "prefix_valid": tf.constant(token_ids[0] != 0),
            "source_length": tf.constant(length, tf.int32),
            "buffers": None,  # allocated at the first generated token, for the rows there are then
            "slots": slots,
            "version": 0,
            "fed": 0,
            "rows": np.zeros(rows, dtype=int),  # decoder row -> cache row
            "logits": logits,  # of the cache rows, for the last fed column
        }

    def _advance(self, inputs, output_ids, states):
        """Feed the columns of ``output_ids`` not yet in the cache; returns the new states."""
        if states is None:
            states = self._start(inputs, len(output_ids))
        buffers, rows = states["buffers"], states["rows"]
        if len(rows) != len(output_ids):
            raise ValueError(f"states describe {len(rows)} rows but output_ids has {len(output_ids)}")
        if buffers is not None and buffers.version != states["version"]:
            raise ValueError("states are out of date: continue decoding from the states the latest call returned")
        for column in range(states["fed"], output_ids.shape[1]):
            tokens = np.asarray(output_ids[:, column], dtype="int64")
            if buffers is None:
                dtype = states["prefix"][0][0].dtype
                buffers = _Buffers.empty(len(states["prefix"]), states["slots"], len(rows),
                                         self.num_heads, self.head_size, dtype)
            if self.jit_compile:
                # one cache row per decoder row, padded to the buffers' capacity: one shape for every step
                count = len(rows)
                parents = np.concatenate([rows, np.zeros(max(buffers.capacity - count, 0), dtype=int)])
                fed = np.concatenate([tokens, np.full(len(parents) - count, tokens[0])])
                inverse = np.arange(count)
            else:
                # rows with the same history and the same new token share one cache row
                _, first, inverse = np.unique(rows * self.vocab_size + tokens, return_index=True, return_inverse=True)
                parents, fed = rows[first], tokens[first]
            if len(parents) != buffers.rows or (parents != np.arange(len(parents))).any():
                buffers = buffers.regroup(parents, column)
            logits = self._step(
                tf.constant(fed[:, None], dtype=tf.int32),
                tf.constant(column, dtype=tf.int32),
                states["source_length"],
                states["prefix"],
                states["prefix_valid"],
                buffers.pairs,
            )
            buffers.version += 1
            rows = inverse.reshape(-1)
            states = {**states, "buffers": buffers, "version": buffers.version, "rows": rows, "fed": column + 1,
                      "logits": logits}
        return states

    @AutoRegressiveDecoder.wraps(default_rtype="logits", use_states=True)
    def predict(self, inputs, output_ids, states):
        states = self._advance(inputs, output_ids, states)
        return ops.convert_to_numpy(states["logits"])[states["rows"]], states

    def candidates(self, inputs, output_ids, states, temperature, k, rtype):
        if k is None:
            return super().candidates(inputs, output_ids, states, temperature, k, rtype)
        states = self._advance(inputs, output_ids, states)
        scores, ids = self._select(
            states["logits"], tf.constant(temperature, tf.float64), tf.constant(min(k, self.vocab_size), tf.int32)
        )
        rows = states["rows"]
        scores, ids = ops.convert_to_numpy(scores)[rows], ops.convert_to_numpy(ids)[rows]
        return (np.exp(scores) if rtype == "probas" else scores), ids, states

    def select_rows(self, states, rows):
        if states is None:
            return None
        return {**states, "rows": states["rows"][np.asarray(rows, dtype=int)]}


class RecomputeDecoder(AutoRegressiveDecoder):
    """The bert4keras way: re-run the whole model on source + generated tokens every step.

    Same interface as :class:`CachedDecoder`; kept as the reference the
    cached path is tested and benchmarked against.

    Example:
        >>> slow = RecomputeDecoder(seq2seq_model, end_id=3, maxlen=32)
    """

    def __init__(self, model, end_id, maxlen, minlen=1, start_id=None):
        super().__init__(start_id, end_id, maxlen, minlen)
        self.transformer = Transformer.from_model(model)
        self.segment_id = 1 if self.transformer.application == "unilm" else 0
        self._run = tf.function(lambda ids, segs: model([ids, segs], training=False), reduce_retracing=True)
        self._linear = self.transformer.mlm_bias.activation == "linear"

    @AutoRegressiveDecoder.wraps(default_rtype="probas")
    def predict(self, inputs, output_ids, states):
        token_ids, segment_ids = inputs
        token_ids = np.concatenate([token_ids, output_ids], 1).astype("int32")
        segment_ids = np.concatenate([segment_ids, np.full_like(output_ids, self.segment_id)], 1).astype("int32")
        outputs = self._run(tf.constant(token_ids), tf.constant(segment_ids))
        probas = outputs[-1] if isinstance(outputs, (list, tuple)) else outputs
        probas = ops.convert_to_numpy(probas[:, -1]).astype("float64")
        return softmax(probas) if self._linear else probas
