"""Autoregressive decoding: bert4keras's AutoRegressiveDecoder and a key/value-cached decoder.

``AutoRegressiveDecoder`` keeps bert4keras's API: subclass it, override
``predict(self, inputs, output_ids, states)`` decorated with
``@AutoRegressiveDecoder.wraps(default_rtype=...)`` and call
``random_sample`` / ``beam_search``. Such a decoder recomputes the whole
sequence at every step, as bert4keras did.

``CachedDecoder`` decodes a bert4sim ``unilm`` / ``lm`` model incrementally:
the source is encoded once, its keys/values are kept in fixed-shape buffers,
and each step feeds only the newest token of every row through one
compiled ``tf.function``.
"""
import numpy as np
import tensorflow as tf
from keras import ops

from bert4sim.models import Transformer


def softmax(x, axis=-1):
    """Numerically stable softmax in numpy."""
    x = x - x.max(axis=axis, keepdims=True)
    x = np.exp(x)
    return x / x.sum(axis=axis, keepdims=True)


def _sample_rows(probas, rng):
    """One draw per row from row-wise distributions (inverse CDF, vectorised)."""
    cumulative = np.cumsum(probas, axis=1)
    draws = rng.random(len(probas))[:, None] * cumulative[:, -1:]
    return np.minimum((cumulative < draws).sum(axis=1), probas.shape[1] - 1)


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
        """
        if default_rtype not in ("probas", "logits"):
            raise ValueError(f"default_rtype must be 'probas' or 'logits', got {default_rtype!r}")

        def decorator(predict):
            def new_predict(self, inputs, output_ids, states, temperature=1, rtype=default_rtype):
                if rtype not in ("probas", "logits"):
                    raise ValueError(f"rtype must be 'probas' or 'logits', got {rtype!r}")
                prediction = predict(self, inputs, output_ids, states)
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
        """A model returning only the last position of ``model``'s outputs (cached per model)."""
        if model not in self.models:
            import keras

            outputs = [keras.layers.Lambda(lambda x: x[:, -1])(output) for output in model.outputs]
            self.models[model] = keras.Model(model.inputs, outputs)
        return self.models[model]

    def predict(self, inputs, output_ids, states):
        raise NotImplementedError("subclasses implement predict(inputs, output_ids, states)")

    def select_rows(self, states, rows):
        """Hook: keep/reorder per-row states when rows are tiled, reordered or dropped."""
        return states

    def _rng(self, seed):
        return np.random.default_rng(seed) if seed is not None else np.random.default_rng(np.random.randint(2**31))

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
            scores, states = self.predict(inputs, output_ids, states, temperature, "logits")
            if step == 0:
                inputs = [np.repeat(i, topk, axis=0) for i in inputs]
            scores = output_scores.reshape((-1, 1)) + scores
            indices = _top_k_indices(scores.reshape(1, -1), topk)[0]
            parents, tokens = indices // scores.shape[1], indices % scores.shape[1]
            output_ids = np.concatenate([output_ids[parents], tokens[:, None]], 1)
            output_scores = scores.reshape(-1)[indices]
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

        ``seed`` makes the draws reproducible (bert4sim extension).

        Example:
            >>> samples = generator.random_sample([token_ids, segment_ids], n=10, topp=0.95, seed=0)
        """
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        rng = self._rng(seed)
        inputs = [np.array([i]) for i in inputs]
        output_ids = self.first_output_ids
        results = []
        for step in range(self.maxlen):
            probas, states = self.predict(inputs, output_ids, states, temperature, "probas")
            probas = probas / probas.sum(axis=1, keepdims=True)
            if step == 0:
                probas = np.repeat(probas, n, axis=0)
                inputs = [np.repeat(i, n, axis=0) for i in inputs]
                output_ids = np.repeat(output_ids, n, axis=0)
                states = self.select_rows(states, np.zeros(n, dtype=int))
            candidates = None
            if topk is not None:
                candidates = _top_k_indices(probas, topk)
                probas = np.take_along_axis(probas, candidates, axis=1)
                probas /= probas.sum(axis=1, keepdims=True)
            if topp is not None:
                order = np.argsort(-probas, axis=1, kind="stable")
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


class CachedDecoder(AutoRegressiveDecoder):
    """Incremental decoding of a bert4sim ``unilm``/``lm`` model with a key/value cache.

    ``inputs`` are ``[token_ids, segment_ids]`` of the source; generated
    tokens get segment id 1 for ``unilm`` models (0 for ``lm``). The source
    is encoded once per call, whatever ``n``/``topk``; its cache is tiled
    over the rows; each step feeds one token per row through a compiled step.

    Example:
        >>> decoder = CachedDecoder(seq2seq_model, end_id=tokenizer._token_end_id, maxlen=32)
        >>> outputs = decoder.random_sample(tokenizer.encode("信用卡怎么注销"), n=100, topk=5)
        >>> [tokenizer.decode(ids) for ids in outputs]
    """

    def __init__(self, model, end_id, maxlen, minlen=1, start_id=None, jit_compile=False):
        super().__init__(start_id, end_id, maxlen, minlen)
        self.transformer = Transformer.from_model(model)
        t = self.transformer
        if t.mlm_transform is None:
            raise ValueError(f"model {model.name!r} has no MLM head: build it with with_mlm=True or application='unilm'")
        if t.application == "encoder":
            raise ValueError(f"model {model.name!r} is a bidirectional encoder; decoding needs application='unilm' or 'lm'")
        first = t.blocks[0]
        self.segment_id = 1 if t.application == "unilm" else 0
        self.num_heads = first.num_heads
        self.head_size = t.config["hidden_size"] // first.num_heads
        self.max_positions = t.config["max_position_embeddings"] if t.position_embedding is not None else None
        self._prefill = tf.function(self._prefill_graph, reduce_retracing=True, jit_compile=jit_compile)
        self._step = tf.function(self._step_graph, reduce_retracing=True, jit_compile=jit_compile)

    # -- compiled pieces ----------------------------------------------------------

    def _logits(self, hidden):
        t = self.transformer
        logits = t.token_embedding(t.mlm_transform(hidden), reverse=True)
        return ops.cast(logits, "float32") + ops.cast(t.mlm_bias.bias, "float32")

    def _prefill_graph(self, token_ids, segment_ids, cache_length):
        t = self.transformer
        batch, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        pattern = t.attention_mask([token_ids, segment_ids])  # [B, P, P], padding included
        mask = ops.pad(pattern, [[0, 0], [0, 0], [0, cache_length - length]], constant_values=False)
        x = t.embed(token_ids, segment_ids)
        empty = ops.zeros((batch, self.num_heads, cache_length, self.head_size), dtype=x.dtype)
        caches = []
        for block in t.blocks:
            x, cache = block(x, attention_mask=mask, cache=(empty, empty), cache_update_index=0)
            caches.append(cache)
        key_valid = ops.pad(ops.not_equal(token_ids, 0), [[0, 0], [0, cache_length - length]], constant_values=True)
        return self._logits(x[:, -1:])[:, 0], caches, key_valid

    def _step_graph(self, token_ids, caches, index, key_valid):
        t = self.transformer
        segment_ids = ops.full_like(token_ids, self.segment_id)
        x = t.embed(token_ids, segment_ids, start_index=index)
        positions = ops.arange(ops.shape(key_valid)[1], dtype="int32")
        mask = ops.logical_and(key_valid, ops.less_equal(positions, index)[None])[:, None, :]
        new_caches = []
        for i, block in enumerate(t.blocks):
            x, cache = block(x, attention_mask=mask, cache=caches[i], cache_update_index=index)
            new_caches.append(cache)
        return self._logits(x)[:, 0], new_caches

    # -- decoder protocol --------------------------------------------------------------

    @AutoRegressiveDecoder.wraps(default_rtype="logits", use_states=True)
    def predict(self, inputs, output_ids, states):
        token_ids, segment_ids = (np.asarray(i, dtype="int32") for i in inputs)
        if states is None:
            cache_length = token_ids.shape[1] + self.maxlen + output_ids.shape[1]
            if self.max_positions is not None and cache_length > self.max_positions:
                raise ValueError(
                    f"source of {token_ids.shape[1]} tokens + maxlen {self.maxlen} exceeds "
                    f"max_position_embeddings={self.max_positions}"
                )
            logits, caches, key_valid = self._prefill(token_ids[:1], segment_ids[:1], cache_length)
            states = {"caches": caches, "key_valid": key_valid, "length": token_ids.shape[1]}
            rows = len(output_ids)
            if rows != 1:
                states = self.select_rows(states, np.zeros(rows, dtype=int))
            fed = 0
        else:
            fed = output_ids.shape[1] - 1
        for column in range(fed, output_ids.shape[1]):
            index = tf.constant(states["length"], dtype=tf.int32)
            logits, caches = self._step(
                tf.constant(output_ids[:, column : column + 1], dtype=tf.int32),
                states["caches"],
                index,
                states["key_valid"],
            )
            states = {**states, "caches": caches, "length": states["length"] + 1}
        return ops.convert_to_numpy(logits), states

    def select_rows(self, states, rows):
        if states is None:
            return None
        rows = tf.constant(np.asarray(rows, dtype="int32"))
        return {
            **states,
            "caches": [(tf.gather(k, rows), tf.gather(v, rows)) for k, v in states["caches"]],
            "key_valid": tf.gather(states["key_valid"], rows),
        }


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
