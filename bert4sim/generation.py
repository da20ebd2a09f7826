"""Incremental decoding of bert4sim ``unilm`` / ``lm`` models with a key/value cache.

``CachedDecoder`` keeps :class:`bert4sim.decoder.AutoRegressiveDecoder`'s API
(``random_sample``, ``beam_search``): the source is encoded once per call
(whatever ``n``), its keys/values are shared by all rows, the keys/values of
generated tokens go to fixed-shape buffers, and each step feeds only the
newest token of every distinct row through one compiled ``tf.function``.
``RecomputeDecoder`` re-runs the whole model every step (the bert4keras way),
the reference the cached path is tested and benchmarked against.

Example:
    >>> decoder = CachedDecoder(seq2seq, end_id=tokenizer._token_end_id, maxlen=32)
    >>> samples = decoder.random_sample(tokenizer.encode("信用卡怎么注销"), n=100, topk=5)
"""
import math

import numpy as np
import tensorflow as tf
from keras import ops

from bert4sim.decoder import AutoRegressiveDecoder, softmax
from bert4sim.layers import MASKED_LOGIT, TransformerBlock, rotary_position_embedding
from bert4sim.models import Transformer
from bert4sim.precision import KernelCopies


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
        unsupported = [what for what, present in (
            ("inputs other than [token_ids, segment_ids]", len(model.inputs) != 2 or t.segment_vocab_size == 0),
            ("conditional LayerNorms", t.conditional),
            ("an embedding_size other than hidden_size", t.embedding_mapping is not None),
            ("attention head sizes other than hidden_size / heads",
             any(b.head_size or b.key_size for b in t.blocks)),
            ("residual attention scores", t.residual_attention_scores),
            ("hierarchical positions", t.hierarchical_position)) if present]
        if unsupported:
            raise ValueError(f"CachedDecoder steps plain BERT / RoFormer models; model {model.name!r} has "
                             f"{', '.join(unsupported)}: decode it with an AutoRegressiveDecoder subclass (it "
                             "re-runs the model each step)")
        first = t.blocks[0]
        self.segment_id = 1 if t.application == "unilm" else 0
        self.vocab_size = t.config["vocab_size"]
        self.num_heads = first.num_heads
        self.head_size = t.config["hidden_size"] // first.num_heads
        self.max_positions = t.config["max_position_embeddings"] if t.position_embedding is not None else None
        # bfloat16 products: the step's kernels are cast once per decoding call, not once per step
        self._kernels = KernelCopies(model)
        self._prefill = tf.function(self._prefill_graph, reduce_retracing=True)
        self._step = tf.function(self._step_graph, reduce_retracing=True, jit_compile=jit_compile)
        self._select = tf.function(self._select_graph, reduce_retracing=True)

    # -- compiled pieces ----------------------------------------------------------

    def _project(self, dense, x):
        """``dense`` at inference with its kernel cast once for the call."""
        return dense.project(x, kernel=self._kernels.kernel_for(dense))

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
        return self.transformer.mlm_logits(x[:, last]), prefix

    def _attend(self, attention, x, position, slot, prefix, prefix_valid, buffers):
        """Attention of one new token per row over the source and the generated tokens so far."""
        heads, size = self.num_heads, self.head_size
        q, k, v = (self._project(dense, x) for dense in (attention.query_dense, attention.key_dense,
                                                          attention.value_dense))
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
        return self._project(attention.output_dense, ops.reshape(context, (-1, heads * size)))

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
            x = block.output_norm(x + self._project(ffn.output_dense, self._project(ffn.inner_dense, x)))
        return t.mlm_logits(x, kernels=self._kernels)

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
        if len(model.inputs) != 2:
            raise ValueError(f"RecomputeDecoder feeds [token_ids, segment_ids]; model {model.name!r} has "
                             f"{len(model.inputs)} inputs: write an AutoRegressiveDecoder subclass for it")
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
