"""Generic data plumbing: JSON-lines and text readers, sentence splitting, source interleaving, ``tf.data``.

The method modules build their batches on these (step-indexed streams for
exact resume: :func:`step_slices`, :func:`interleave`, :func:`to_dataset`);
:mod:`bert4sim.snippets` builds bert4keras's ``DataGenerator`` on
:func:`batches_to_dataset` / :func:`samples_to_dataset`. TensorFlow is
imported only by the functions that make datasets.

Example:
    >>> stream = interleave([groups, general_pairs], ratio=(1, 1))
    >>> dataset = to_dataset(lambda step: simbert_batches(groups, tokenizer, 32, start_step=step))
"""
import json

import numpy as np

from bert4sim.checks import check_seed
from bert4sim.files import read_lines

SENTENCE_SEPARATORS = "\n。！？!?；;"


def json_records(path, what, keys):
    """``(where, record)`` for each non-empty line of a JSON-lines file; ``where`` is ``'path:line'``.

    Errors name the file and line: invalid JSON, or a line that is not an
    object (``keys`` says which keys the object should have).

    Example:
        >>> for where, record in json_records("examples/data/nli_dev.jsonl", "NLI file", "sentence1, ..."): ...
    """
    for line_number, line in enumerate(read_lines(path, what), 1):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected a JSON object with {keys}")
        yield where, record


def read_passages(path):
    """Non-empty lines of a plain-text corpus (one passage per line)."""
    passages = [line.strip() for line in read_lines(path, "corpus file") if line.strip()]
    if not passages:
        raise ValueError(f"corpus file {path} has no non-empty lines")
    return passages


def split_sentences(text, separators=SENTENCE_SEPARATORS):
    """Split a passage into sentences, each keeping its closing mark.

    Example:
        >>> split_sentences("今天下雨。明天呢？")
        ['今天下雨。', '明天呢？']
    """
    sentences, current = [], []
    for char in text:
        current.append(char)
        if char in separators:
            sentence = "".join(current).strip()
            if sentence.strip(separators):
                sentences.append(sentence)
            current = []
    tail = "".join(current).strip()
    if tail.strip(separators):
        sentences.append(tail)
    return sentences


def pack_sentences(passages, max_chars, separators=SENTENCE_SEPARATORS):
    """Cut passages into texts of at most ``max_chars`` characters, keeping whole sentences together.

    Consecutive sentences of a passage are joined while they fit; a sentence
    longer than ``max_chars`` is cut into ``max_chars`` pieces. Used to turn a
    corpus of long passages into pre-training texts that fit ``maxlen``.

    Example:
        >>> pack_sentences(["今天下雨。明天晴。后天呢？"], max_chars=9)
        ['今天下雨。明天晴。', '后天呢？']
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    texts = []
    for passage in passages:
        current = ""
        for sentence in split_sentences(passage, separators):
            while len(sentence) > max_chars:
                if current:
                    texts.append(current)
                    current = ""
                texts.append(sentence[:max_chars])
                sentence = sentence[max_chars:]
            if len(current) + len(sentence) > max_chars:
                texts.append(current)
                current = ""
            current += sentence
        if current:
            texts.append(current)
    return texts


def step_slices(count, per_step, seed, start_step):
    """Endless ``(step, indices)`` from ``start_step`` on: whole passes over ``count`` items, ``per_step`` a step.

    Each pass has its own order, seeded by ``(seed, 0, pass)``, and drops its
    incomplete last step, so step ``s`` depends on ``s`` only (exact resume).

    Example:
        >>> step, indices = next(step_slices(100, 32, seed=0, start_step=5))
    """
    steps_per_pass = count // per_step
    step, order, order_pass = int(start_step), None, None
    while True:
        pass_index, position = divmod(step, steps_per_pass)
        if pass_index != order_pass:
            order, order_pass = np.random.default_rng([seed, 0, pass_index]).permutation(count), pass_index
        yield step, order[position * per_step : (position + 1) * per_step]
        step += 1


def to_dataset(batches, extra_inputs=0, start_step=0):
    """Wrap numpy batches as a ``tf.data.Dataset`` for ``model.fit``.

    Every batch is a tuple of int32 ``[batch, length]`` arrays; the dataset
    yields ``((array, ...),)`` so Keras sees them all as model inputs.

    ``batches`` is an iterator of batches, or a step-indexed stream: a
    function ``step -> iterator of the batches from step on`` (e.g. a lambda
    over :func:`simbert_batches` with ``start_step=step``). A function is
    called afresh each time the dataset is iterated, with ``start_step`` (an
    int, or a function returning one, read at that moment: give
    ``ExactResume.start_step`` from bert4sim.training and a run resumed from
    a backup reads the batches the killed run would have read next). Keras's
    ``fit`` under a ``tf.distribute`` strategy opens the dataset once to learn
    the shapes before training; a plain iterator loses those batches, a
    function does not.

    Under multi-worker training each batch is a global batch: every worker
    makes it and keeps its own contiguous slice of rows (auto-shard by data).

    Example:
        >>> dataset = to_dataset(simbert_batches(groups, tokenizer, 32))
        >>> dataset = to_dataset(lambda step: simbert_batches(groups, tokenizer, 32, start_step=step),
        ...                      start_step=resume.start_step)
        >>> trainer.fit(dataset, steps_per_epoch=100)
    """
    import tensorflow as tf

    count = 2 + extra_inputs
    spec = tuple(tf.TensorSpec((None, None), tf.int32) for _ in range(count))
    stream = batch_stream(batches, start_step)
    dataset = tf.data.Dataset.from_generator(
        lambda: ((tuple(np.asarray(a, "int32") for a in batch),) for batch in stream()),
        output_signature=(spec,),
    )
    return shard_by_data(dataset).prefetch(2)


def batch_stream(batches, start_step):
    """A function returning the batches to iterate: ``batches`` itself, or ``batches(start step)`` afresh.

    ``batches`` and ``start_step`` as :func:`to_dataset` takes them.

    Example:
        >>> make = batch_stream(lambda step: simbert_batches(groups, tokenizer, 32, start_step=step), 100)
        >>> first = next(make())   # batch 100
    """
    if callable(batches):
        return lambda: batches(int(start_step() if callable(start_step) else start_step))
    if start_step:
        raise ValueError("start_step needs batches given as a function of the start step, not an iterator")
    return lambda: batches


def shard_by_data(dataset):
    """``dataset`` set up for multi-worker training: each worker makes every global batch, keeps its own rows.

    Example:
        >>> dataset = shard_by_data(tf.data.Dataset.from_generator(...)).prefetch(2)
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


# --- Interleaving sources ---


def interleave(sources, ratio=None, seed=0, start=0):
    """Endless ``(source_index, item)`` from several lists, taking ``ratio[k]`` items of source k in turn.

    Each source is reshuffled at every pass over it (independently of the
    others), so a small source repeats while a large one is still going: a
    1:1 mix means one item of each in turn, whatever the sizes — how the
    RoFormer-Sim scripts mix question groups with general pairs (stage 1) and
    similarity pairs with NLI pairs (supervised stage). Item ``t`` is a
    function of ``(sources, ratio, seed, t)``: ``start=t`` begins there, as
    a resumed run needs.

    Example:
        >>> stream = interleave([groups, general_pairs], ratio=(1, 1))
        >>> [next(stream)[0] for _ in range(4)]
        [0, 1, 0, 1]
    """
    sources = list(sources)
    ratio = [1] * len(sources) if ratio is None else list(ratio)
    if not sources or len(ratio) != len(sources):
        raise ValueError(f"need one ratio entry per source: {len(sources)} source(s), ratio {ratio}")
    if any(not isinstance(r, (int, np.integer)) or r < 0 for r in ratio) or not sum(ratio):
        raise ValueError(f"ratio must be non-negative whole numbers, not all 0, got {ratio}")
    for index, (source, r) in enumerate(zip(sources, ratio)):
        if r and not len(source):
            raise ValueError(f"source {index} is empty but its ratio is {r}")
    check_seed("seed", seed)
    check_seed("start", start)
    # one cycle takes ratio[k] items of source k in turn; slot i of a cycle is item `rank[i]` of that cycle's share
    owner = [k for k, r in enumerate(ratio) for _ in range(r)]
    rank = [i for r in ratio for i in range(r)]
    orders = {}
    t = int(start)
    while True:
        cycle, slot = divmod(t, len(owner))
        k = owner[slot]
        pass_index, position = divmod(cycle * ratio[k] + rank[slot], len(sources[k]))
        if orders.get(k, (None,))[0] != pass_index:  # the order of pass `pass_index` over source k
            orders[k] = pass_index, np.random.default_rng([seed, 2, k, pass_index]).permutation(len(sources[k]))
        yield k, sources[k][orders[k][1][position]]
        t += 1


def parse_ratio(text):
    """``'1:1'`` / ``'2:1'`` → ``(1, 1)`` / ``(2, 1)``; a clear error otherwise.

    Example:
        >>> parse_ratio("2:1")
        (2, 1)
    """
    try:
        ratio = tuple(int(part) for part in str(text).split(":"))
    except ValueError:
        ratio = ()
    if len(ratio) < 2 or any(r < 0 for r in ratio) or not sum(ratio):
        raise ValueError(f"ratio must look like 1:1 (whole numbers, not all 0), got {text!r}")
    return ratio


# --- Keras-2 style batches as tf.data ---


def _as_tf_structure(batch):
    """Lists as tuples (Keras reads a tuple as several arrays), leaves as numpy arrays."""
    if isinstance(batch, dict):
        return {key: _as_tf_structure(value) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return tuple(_as_tf_structure(item) for item in batch)
    return np.asarray(batch)


def _variable_spec(structure):
    """Every dimension unknown, except a non-batch dimension of size 1 (labels shaped ``[batch, 1]``
    stay ``[None, 1]``, which Keras's sparse losses need to squeeze them)."""
    import tensorflow as tf

    def spec(a):
        shape = tuple(None if axis == 0 or size != 1 else 1 for axis, size in enumerate(a.shape))
        return tf.TensorSpec(shape, tf.as_dtype(a.dtype))

    return tf.nest.map_structure(spec, structure)


def batches_to_dataset(make_batches, inputs_only=False):
    """A ``tf.data.Dataset`` over bert4keras-style batches, with every dimension left variable.

    ``make_batches()`` returns an iterator of batches: ``(inputs, targets)``
    (``targets`` may be None: dropped) or, with ``inputs_only``, inputs;
    ``inputs`` an array or a list of arrays. The first batch fixes the
    structure, dtypes and ranks, and its non-batch dimensions of size 1.

    Example:
        >>> dataset = batches_to_dataset(lambda: generator.forfit())
        >>> model.fit(dataset, steps_per_epoch=100)
    """
    import tensorflow as tf

    def normalised():
        for batch in make_batches():
            if inputs_only:
                yield (_as_tf_structure(batch),)
                continue
            if not isinstance(batch, (list, tuple)) or len(batch) not in (1, 2, 3):
                raise ValueError("a training batch must be (inputs, targets) or (inputs, targets, sample_weights), "
                                 f"got {type(batch).__name__}" + (f" of length {len(batch)}" if hasattr(batch, "__len__")
                                                                   else ""))
            parts = [part for part in batch if part is not None]
            yield tuple(_as_tf_structure(part) for part in parts)

    first = next(iter(normalised()), None)
    if first is None:
        raise ValueError("the batch generator yielded nothing")
    return tf.data.Dataset.from_generator(normalised, output_signature=_variable_spec(first))


def samples_to_dataset(make_samples, types, shapes, batch_size, names=None, padded_batch=False):
    """Batch single samples with tf.data (bert4keras's ``DataGenerator.to_dataset``).

    ``types`` / ``shapes`` give each leaf of a sample (same nesting as the
    samples; a shape is a list of ints / None); ``names`` turns the nesting
    into dicts (a name, a list of names, or one list of names per part).

    Example:
        >>> samples_to_dataset(lambda: iter(samples), ("int32", "int32"), ([None], [None]), 32, padded_batch=True)
    """
    import tensorflow as tf

    def is_leaf(t):
        return not isinstance(t, (list, tuple, dict))

    def conform(types, x):  # a sample in the nesting of ``types``, leaves as arrays
        if isinstance(types, dict):
            return {k: conform(types[k], x[k]) for k in types}
        if not is_leaf(types):
            return tuple(conform(t, i) for t, i in zip(types, x))
        return np.asarray(x, dtype=types)

    def spec(types, shapes):
        if isinstance(types, dict):
            return {k: spec(types[k], shapes[k]) for k in types}
        if not is_leaf(types):
            return tuple(spec(t, s) for t, s in zip(types, shapes))
        return tf.TensorSpec(tuple(shapes), tf.as_dtype(types))

    def wrap(structure):
        if names is None:
            return structure
        if isinstance(names, str):
            return {names: structure}
        if isinstance(names[0], str):
            return dict(zip(names, structure))
        return tuple(dict(zip(n, part)) for n, part in zip(names, structure))

    dataset = tf.data.Dataset.from_generator(lambda: (wrap(conform(types, x)) for x in make_samples()),
                                             output_signature=wrap(spec(types, shapes)))
    return dataset.padded_batch(batch_size) if padded_batch else dataset.batch(batch_size)
