"""bert4keras's ``AutoRegressiveDecoder``: random sampling and beam search over a ``predict`` you write.

Subclass it, override ``predict(self, inputs, output_ids, states)``
decorated with ``@AutoRegressiveDecoder.wraps(default_rtype=...)`` and call
``random_sample`` / ``beam_search``. Such a decoder recomputes the whole
sequence at every step, as bert4keras did; :class:`bert4sim.generation.CachedDecoder`
is the incremental one for bert4sim models. numpy only (Keras is imported
only to silence progress bars).

Example:
    >>> class Generator(AutoRegressiveDecoder):
    ...     @AutoRegressiveDecoder.wraps(default_rtype="probas")
    ...     def predict(self, inputs, output_ids, states):
    ...         ...
    >>> Generator(start_id=None, end_id=3, maxlen=32).random_sample([ids, segs], n=5, topk=5)
"""
import numpy as np
from keras import ops


def softmax(x, axis=-1):
    """Numerically stable softmax in numpy.

    Example:
        >>> softmax(np.array([0.0, 0.0]))
        array([0.5, 0.5])
    """
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

            # the last position has no padding mask (Keras 2's Lambda passed masks through; this drops it)
            outputs = [keras.layers.Lambda(lambda x: x[:, -1], mask=lambda inputs, mask: None)(output)
                       for output in model.outputs]
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
