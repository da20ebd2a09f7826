"""Corpus readers, SimBERT batches, BART-style noise and ``tf.data`` pipelines.

The SimBERT corpus format is JSON lines ``{"text": str, "synonyms": [str, ...]}``
(one group of similar sentences a line), as the released SimBERT scripts read.
"""
import itertools
import json

import numpy as np

from bert4sim.files import read_lines
from bert4sim.snippets import sequence_padding, text_segmentate

# --- SimBERT corpus ---


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


def read_synonym_groups(path, min_size=2):
    """Read a SimBERT corpus file into groups ``[text, synonym, ...]``.

    Errors name the file and line: invalid JSON, missing or non-string
    ``text``, ``synonyms`` not a list of strings, groups with fewer than
    ``min_size`` distinct non-empty sentences.

    Example:
        >>> groups = read_synonym_groups("examples/data/simbert_train.json")
        >>> groups[0]
        ['信用卡怎么注销', '怎样注销信用卡', ...]
    """
    groups = []
    for where, record in json_records(path, "corpus file", "'text' and 'synonyms'"):
        text, synonyms = record.get("text"), record.get("synonyms", [])
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: 'text' must be a non-empty string, got {text!r}")
        if not isinstance(synonyms, list) or not all(isinstance(s, str) for s in synonyms):
            raise ValueError(f"{where}: 'synonyms' must be a list of strings")
        group = list(dict.fromkeys(s.strip() for s in [text] + synonyms if s.strip()))
        if len(group) < min_size:
            raise ValueError(f"{where}: group has {len(group)} distinct sentence(s), at least {min_size} needed")
        groups.append(group)
    if not groups:
        raise ValueError(f"corpus file {path} holds no groups")
    return groups


def sample_pair(group, rng):
    """Two different sentences of a group (text + synonym, or two synonyms), random order."""
    first, second = rng.choice(len(group), size=2, replace=False)
    return group[first], group[second]


def truncate_sentence(text, maxlen, max_chars=None):
    """The first piece of ``text`` split at punctuation into pieces of ≤ ``max_chars`` characters.

    ``max_chars`` defaults to ``maxlen - 2`` (SimBERT's cut); RoFormer-Sim's
    scripts cut at ``1.2 * maxlen`` characters (see :func:`roformer_sim_cut`).

    Example:
        >>> truncate_sentence("我想注销信用卡，请问要去柜台吗？还是网上就行", 16)
        '我想注销信用卡'
    """
    limit = maxlen - 2 if max_chars is None else max_chars
    piece = text_segmentate(text, limit, "\n。！？!?；;，, ", "；;，, ")[0]
    return piece or text


def roformer_sim_cut(text, maxlen):
    """RoFormer-Sim's cut of a long sentence: its first punctuation piece of ≤ ``1.2 * maxlen`` characters.

    Example:
        >>> roformer_sim_cut("我想注销信用卡，请问要去柜台吗？还是网上就行", 10)
        '我想注销信用卡'
    """
    return truncate_sentence(text, maxlen, max_chars=1.2 * maxlen)


def encode_pair(tokenizer, first, second, maxlen):
    """``[CLS] first [SEP] second [SEP]``, each sentence cut by :func:`truncate_sentence` (SimBERT's rule).

    A sentence without punctuation to cut at is shortened token by token
    (longer side first) so the pair fits ``2 * maxlen`` tokens.

    Example:
        >>> token_ids, segment_ids = encode_pair(tokenizer, "信用卡怎么注销", "怎么注销信用卡", maxlen=32)
    """
    first, second = truncate_sentence(first, maxlen), truncate_sentence(second, maxlen)
    return tokenizer.encode(first, second, maxlen=maxlen * 2)


def simbert_batches(groups, tokenizer, batch_size, maxlen=32, seed=0, encode_source=None, with_sources=False,
                    length=None, general=None, ratio=(1, 1), start_step=0):
    """Endless SimBERT batches ``(token_ids, segment_ids)`` as numpy arrays, from batch ``start_step`` on.

    Each step takes ``batch_size // 2`` groups, samples a pair from each and
    puts both orders ``a→b`` and ``b→a`` next to each other, so row i's
    partner is row i±1 (what the similarity loss expects). ``encode_source``
    (``(tokenizer, text, rng) -> token_ids``) replaces the source encoding,
    e.g. with BART-style noise for RoFormer-Sim; ``with_sources=True`` adds
    each row's clean source sentence as a third item (for a teacher model).
    ``length`` pads every batch to that many tokens (fixed shapes for XLA;
    ``2 * maxlen`` holds any pair); by default to the batch's longest row.
    ``general`` (groups too, e.g. ``[a, b]`` pairs mined from a general
    corpus) are interleaved with ``groups`` at ``ratio`` (groups : general;
    1:1 as RoFormer-Sim's stage 1) by :func:`interleave`, each side
    reshuffled at every pass over it. With an ``encode_source`` (RoFormer-Sim)
    each sentence is first cut at punctuation (:func:`roformer_sim_cut`).

    The stream is step-indexed: batch ``s`` (groups, pairs, noise) is a
    function of the arguments and ``s`` only, so ``start_step=s`` gives
    exactly the batches a stream started at 0 gives from its ``s``-th on —
    what a resumed training run needs (see :func:`to_dataset`).

    Example:
        >>> batches = simbert_batches(groups, tokenizer, batch_size=32)
        >>> token_ids, segment_ids = next(batches)
        >>> later = simbert_batches(groups, tokenizer, batch_size=32, start_step=1)   # next(later) is batch 1
    """
    if batch_size < 2 or batch_size % 2:
        raise ValueError(f"batch_size must be even and at least 2 (pairs stay together), got {batch_size}")
    if length is not None and length < 2 * maxlen:
        raise ValueError(f"length {length} is shorter than a pair can be (2 * maxlen = {2 * maxlen})")
    _check_seed("seed", seed)
    _check_seed("start_step", start_step)
    if general is None and len(groups) < batch_size // 2:
        raise ValueError(f"{len(groups)} groups cannot fill a batch of {batch_size} (needs {batch_size // 2} groups)")
    chosen = _batch_groups(groups, general, ratio, batch_size // 2, seed, int(start_step))
    for step, batch_groups in enumerate(chosen, int(start_step)):
        rng = np.random.default_rng([seed, 1, step])  # this batch's pairs and noise
        token_ids, segment_ids, sources = [], [], []
        for group in batch_groups:
            a, b = sample_pair(group, rng)
            for source, target in ((a, b), (b, a)):
                ids, segments = _pair_ids(tokenizer, source, target, maxlen, rng, encode_source)
                token_ids.append(ids)
                segment_ids.append(segments)
                sources.append(source)
        batch = (sequence_padding(token_ids, length), sequence_padding(segment_ids, length))
        yield batch + (sources,) if with_sources else batch


def _check_seed(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _batch_groups(groups, general, ratio, batch_pairs, seed, start_step):
    """Endless lists of the groups each batch samples from, from batch ``start_step`` on.

    Without ``general``: whole passes over the groups, each in the order of
    its own seed (a pass drops its incomplete batch). With it: the items of
    :func:`interleave`, which is step-indexed too. The seed sequences are
    tagged (0: pass orders, 1: a batch's draws, 2: interleave) so none repeats.
    """
    if general is not None:
        stream = interleave([groups, general], ratio, seed, start=start_step * batch_pairs)
        while True:
            yield [group for _, group in itertools.islice(stream, batch_pairs)]
    for _, chosen in _step_slices(len(groups), batch_pairs, seed, start_step):
        yield [groups[i] for i in chosen]


def _step_slices(count, per_step, seed, start_step):
    """Endless ``(step, indices)`` from ``start_step`` on: whole passes over ``count`` items, ``per_step`` a step.

    Each pass has its own order, seeded by ``(seed, 0, pass)``, and drops its
    incomplete last step, so step ``s`` depends on ``s`` only (exact resume).
    """
    steps_per_pass = count // per_step
    step, order, order_pass = int(start_step), None, None
    while True:
        pass_index, position = divmod(step, steps_per_pass)
        if pass_index != order_pass:
            order, order_pass = np.random.default_rng([seed, 0, pass_index]).permutation(count), pass_index
        yield step, order[position * per_step : (position + 1) * per_step]
        step += 1


def _pair_ids(tokenizer, source, target, maxlen, rng, encode_source):
    if encode_source is None:
        return encode_pair(tokenizer, source, target, maxlen)
    source, target = roformer_sim_cut(source, maxlen), roformer_sim_cut(target, maxlen)
    source_ids = list(encode_source(tokenizer, source, rng))[:maxlen]
    if source_ids[-1] != tokenizer._token_end_id:
        source_ids[-1] = tokenizer._token_end_id
    target_ids = tokenizer.encode(target, maxlen=maxlen)[0][1:]
    return source_ids + target_ids, [0] * len(source_ids) + [1] * len(target_ids)


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
    stream = _stream(batches, start_step)
    dataset = tf.data.Dataset.from_generator(
        lambda: ((tuple(np.asarray(a, "int32") for a in batch),) for batch in stream()),
        output_signature=(spec,),
    )
    return _distributed_by_data(dataset).prefetch(2)


def _stream(batches, start_step):
    """A function returning the batches to iterate: ``batches`` itself, or ``batches(start step)`` afresh."""
    if callable(batches):
        return lambda: batches(int(start_step() if callable(start_step) else start_step))
    if start_step:
        raise ValueError("start_step needs batches given as a function of the start step, not an iterator")
    return lambda: batches


def _distributed_by_data(dataset):
    """Multi-worker: each worker makes every global batch and keeps its own slice of rows."""
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
    _check_seed("seed", seed)
    _check_seed("start", start)
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


# --- Labelled pairs and NLI (RoFormer-Sim's supervised stage) ---

NLI_LABELS = ("contradiction", "entailment", "neutral")  # labels 2, 3, 4 in RoFormer-Sim's supervised script


def read_labelled_pairs(path, threshold=0.5):
    """LCQMC-style ``text_a<TAB>text_b<TAB>label`` rows as ``[(a, b, 0 or 1), ...]``.

    The label is ``float(label) > threshold``: 0.5 for 0/1 sets (LCQMC,
    ATEC, BQ, PAWSX), 2.5 for 0-5 scored sets such as STS-B (the thresholds
    of RoFormer-Sim's supervised script). Errors name the file and line.

    Example:
        >>> read_labelled_pairs("examples/data/pairs_train.tsv")[0]
        ('高龄补贴怎么申请', '怎么申请法律援助', 0)
        >>> read_labelled_pairs("examples/data/sts_train.tsv", threshold=2.5)
    """
    pairs = []
    for line_number, line in enumerate(read_lines(path, "pairs file"), 1):
        if not line.strip():
            continue
        fields, where = line.split("\t"), f"{path}:{line_number}"
        if len(fields) != 3:
            raise ValueError(f"{where}: expected text_a<TAB>text_b<TAB>label, got {len(fields)} field(s)")
        a, b, label = (field.strip() for field in fields)
        if not a or not b:
            raise ValueError(f"{where}: empty sentence")
        try:
            score = float(label)
        except ValueError:
            raise ValueError(f"{where}: label must be a number, got {label!r}") from None
        if not np.isfinite(score):
            raise ValueError(f"{where}: label must be a finite number, got {label!r}")
        pairs.append((a, b, int(score > threshold)))
    if not pairs:
        raise ValueError(f"pairs file {path} holds no pairs")
    return pairs


def read_nli_pairs(path, labels=NLI_LABELS, first_label=2):
    """CNSD/SNLI-style JSON lines ``{"sentence1", "sentence2", "gold_label"}`` as ``[(s1, s2, label), ...]``.

    ``label = first_label + labels.index(gold_label)`` (2 contradiction,
    3 entailment, 4 neutral, as RoFormer-Sim's supervised script numbers
    them); rows whose ``gold_label`` is not one of ``labels`` (SNLI's ``"-"``,
    no consensus) are skipped, as there. Errors name the file and line.

    Example:
        >>> read_nli_pairs("examples/data/nli_train.jsonl")[0]
        ('两个孩子在公园里踢足球', '孩子们在户外运动', 3)
    """
    pairs = []
    for where, record in json_records(path, "NLI file", "sentence1, sentence2, gold_label"):
        for key in ("sentence1", "sentence2", "gold_label"):
            if not isinstance(record.get(key), str):
                raise ValueError(f"{where}: {key!r} must be a string, got {record.get(key)!r}")
        if record["gold_label"] not in labels:
            continue
        a, b = record["sentence1"].strip(), record["sentence2"].strip()
        if not a or not b:
            raise ValueError(f"{where}: empty sentence")
        pairs.append((a, b, first_label + labels.index(record["gold_label"])))
    if not pairs:
        raise ValueError(f"NLI file {path} holds no pair labelled {' / '.join(labels)}")
    return pairs


def labelled_pair_batches(examples, tokenizer, batch_size, maxlen=64, length=None):
    """Batches ``((token_ids, segment_ids), labels)`` of sentence pairs: rows 2i and 2i+1 are pair i.

    ``examples`` yields ``(a, b, label)`` (e.g. ``(index, example)`` from
    :func:`interleave`, whose index is dropped); ``batch_size`` counts rows
    (two per pair, as the original scripts count), ``labels`` has one entry
    per pair. Each sentence is cut at punctuation (:func:`roformer_sim_cut`)
    and encoded alone, ``[CLS] text [SEP]`` of at most ``maxlen`` tokens.
    ``length`` pads every batch to that many tokens (default: the longest row).
    A finite ``examples`` ends with a smaller last batch.

    Example:
        >>> stream = (example for _, example in interleave([pairs, nli]))
        >>> (token_ids, segment_ids), labels = next(labelled_pair_batches(stream, tokenizer, 192))
    """
    if batch_size < 2 or batch_size % 2:
        raise ValueError(f"batch_size must be even and at least 2 (two rows per pair), got {batch_size}")
    examples, finished = iter(examples), False
    while not finished:
        token_ids, labels = [], []
        for a, b, label in itertools.islice(examples, batch_size // 2):
            for text in (a, b):
                token_ids.append(tokenizer.encode(roformer_sim_cut(text, maxlen), maxlen=maxlen)[0])
            labels.append(label)
        finished = len(labels) < batch_size // 2
        if labels:
            token_ids = sequence_padding(token_ids, length).astype("int32")
            yield (token_ids, np.zeros_like(token_ids)), np.array(labels, dtype="int32")


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


# --- RoFormer-Sim: BART-style noise and pair mining ---

SENTENCE_SEPARATORS = "\n。！？!?；;"
_IGNORED_FOR_OVERLAP = SENTENCE_SEPARATORS + "，,、：:\"“”'‘’（）() "


def jieba_words(text):
    """jieba's precise-mode words without its HMM (what RoFormer-Sim's word vocab uses)."""
    import jieba

    return jieba.lcut(text, HMM=False)


def jieba_hmm_words(text):
    """jieba's precise-mode words with its HMM on (``jieba.lcut(text)``): RoFormer-Sim's whole-word noise units."""
    import jieba

    return jieba.lcut(text)


def masked_encode(tokenizer, text, rng, word_rate=0.15, pre_tokenize=jieba_hmm_words):
    """Encode ``text`` as a source with BART-style whole-word noise (RoFormer-Sim's rule).

    The text is cut into words (jieba with its HMM, as the RoFormer-Sim
    scripts do); each word is picked with probability
    ``word_rate``; a picked word's tokens become ``[MASK]`` (80 % of picks),
    stay (10 %) or become random non-special ids (10 %). ``[CLS]``/``[SEP]``
    are never touched. Returns ``(token_ids, noised)`` where ``noised`` marks
    the tokens of picked words.

    Example:
        >>> ids, noised = masked_encode(tokenizer, "我想注销信用卡", np.random.default_rng(0))
    """
    if tokenizer._token_mask_id is None:
        raise ValueError("the vocabulary has no [MASK] token, which BART-style noise needs")
    special = {tokenizer._token_dict.get(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")}
    ordinary = np.array([i for i in range(tokenizer.vocab_size) if i not in special])
    token_ids, noised = [tokenizer._token_start_id], [False]
    for word in pre_tokenize(text):
        ids = tokenizer.encode(word)[0][1:-1]
        if not ids:
            continue
        draw = rng.random()
        if draw < word_rate * 0.8:
            ids = [tokenizer._token_mask_id] * len(ids)
        elif word_rate * 0.9 <= draw < word_rate:
            ids = list(rng.choice(ordinary, size=len(ids)))
        token_ids.extend(int(i) for i in ids)
        noised.extend([draw < word_rate] * len(ids))
    return token_ids + [tokenizer._token_end_id], noised + [False]


def noisy_source(noise_probability=0.5, word_rate=0.15, pre_tokenize=jieba_hmm_words):
    """An ``encode_source`` for :func:`simbert_batches`: noise half of the sources, as RoFormer-Sim does.

    Example:
        >>> batches = simbert_batches(groups, tokenizer, 32, encode_source=noisy_source())
    """

    def encode(tokenizer, text, rng):
        if rng.random() < noise_probability:
            return masked_encode(tokenizer, text, rng, word_rate, pre_tokenize)[0]
        return tokenizer.encode(text)[0]

    return encode


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


def char_jaccard(a, b):
    """Character-set Jaccard similarity of two sentences, punctuation ignored.

    RoFormer-Sim mined "general" similar-sentence pairs with a plain
    character-level Jaccard-style score inside one document.

    Example:
        >>> char_jaccard("银行卡怎么办理", "怎么办理银行卡")
        1.0
    """
    set_a = {c for c in a if c not in _IGNORED_FOR_OVERLAP}
    set_b = {c for c in b if c not in _IGNORED_FOR_OVERLAP}
    if not set_a or not set_b:
        return 0.0
    return len(set_a & set_b) / len(set_a | set_b)


def mine_similar_pairs(documents, threshold=0.6, min_chars=5):
    """Sentence pairs of the same document with ``char_jaccard >= threshold``.

    Identical sentences and sentences shorter than ``min_chars`` are skipped.
    Returns ``[(sentence_a, sentence_b, score), ...]`` per document, best first.

    Example:
        >>> mine_similar_pairs(["信用卡可以在网上注销。信用卡也可以在网上注销。今天天气很好。"], 0.6)
        [('信用卡可以在网上注销。', '信用卡也可以在网上注销。', 0.9)]
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    pairs = []
    for document in documents:
        sentences = [s for s in dict.fromkeys(split_sentences(document)) if len(s) >= min_chars]
        found = [(a, b, char_jaccard(a, b)) for i, a in enumerate(sentences) for b in sentences[i + 1:]]
        pairs.extend(sorted((p for p in found if p[2] >= threshold), key=lambda p: -p[2]))
    return pairs


def read_passages(path):
    """Non-empty lines of a plain-text corpus (one passage per line)."""
    passages = [line.strip() for line in read_lines(path, "corpus file") if line.strip()]
    if not passages:
        raise ValueError(f"corpus file {path} has no non-empty lines")
    return passages


# --- RetroMAE collator ---

RETROMAE_INPUTS = ("encoder_token_ids", "segment_ids", "decoder_token_ids", "decoder_attention_mask")
RETROMAE_LABELS = ("encoder_labels", "decoder_labels")


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


def whole_words(tokens):
    """Positions of the words of ``[CLS] ... [SEP]`` tokens: ``##`` pieces join the word before them.

    ``[CLS]``, ``[SEP]`` (and ``[PAD]``) are no word. These are the units the
    RetroMAE reference masks (Hugging Face's whole-word-mask collator).

    Example:
        >>> whole_words(["[CLS]", "信", "用", "card", "##s", "[SEP]"])
        [[1], [2], [3, 4]]
    """
    words = []
    for position, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]", "[PAD]"):
            continue
        if words and token.startswith("##"):
            words[-1].append(position)
        else:
            words.append([position])
    return words


def sample_whole_word_mask(words, length, rate, rng):
    """Bool ``[length]``: whole words hidden until ``round(rate * length)`` positions are (at least 1).

    The reference's rule: the count is taken over all ``length`` positions,
    ``[CLS]``/``[SEP]`` included (Python's ``round``, halves to even), words
    are tried in random order and one that would overshoot the count is
    skipped. So a text of n characters gets ``round(rate * (n + 2))`` hidden
    (40 % at n = 10 and rate 0.3), and ``[CLS]``/``[SEP]`` never are.

    Example:
        >>> sample_whole_word_mask([[1], [2], [3]], 5, 0.5, np.random.default_rng(0)).sum()
        2
    """
    target = max(1, round(length * rate))
    hidden = np.zeros(length, dtype=bool)
    count = 0
    for index in rng.permutation(len(words)):
        if count >= target:
            break
        if count + len(words[index]) > target:
            continue
        hidden[words[index]] = True
        count += len(words[index])
    return hidden


def sample_decoder_mask(length, rate, rng, padded_length=None, words=None, pool_size=256):
    """RetroMAE's position-specific decoder attention mask, as the reference samples it: bool ``[P, P]``.

    For a text of ``length`` tokens (``[CLS]`` at 0, ``[SEP]`` last), the
    reference draws ``min(length, pool_size)`` whole-word masks at ``rate``
    (:func:`sample_whole_word_mask`); row ``i`` takes one of them at random
    and also hides its own position ``i``. True = visible. So every row sees
    the ``[CLS]`` column (the sentence vector) and the final ``[SEP]``
    column except on the diagonal, and of the other text tokens about
    ``1 - rate * (n + 2) / n`` stay visible (40 % at n = 10, rate 0.5).
    ``words`` (default: one word per text token) are position groups from
    :func:`whole_words`. Padding columns are hidden; padding rows see column
    0 only (so their softmax stays finite; they carry no label).

    Example:
        >>> mask = sample_decoder_mask(6, 0.5, np.random.default_rng(0), padded_length=8)
        >>> mask[1:, 0].all(), mask[3, 3], mask[:5, 5].all()
        (True, False, True)
    """
    padded_length = length if padded_length is None else padded_length
    if length < 1 or padded_length < length:
        raise ValueError(f"need 1 <= length <= padded_length, got length={length}, padded_length={padded_length}")
    words = [[i] for i in range(1, length - 1)] if words is None else words
    pool = [sample_whole_word_mask(words, length, rate, rng) for _ in range(min(length, pool_size))]
    mask = np.zeros((padded_length, padded_length), dtype=bool)
    mask[length:, 0] = True
    for row, choice in enumerate(rng.integers(0, len(pool), size=length)):
        mask[row, :length] = ~pool[choice]
        mask[row, row] = False
    return mask


class RetroMAECollator:
    """Turns texts into RetroMAE batches: masked encoder input, decoder input, sampled masks, labels.

    For each text (``[CLS] ... [SEP]``, cut to ``maxlen`` tokens):

    - encoder: whole words (``##`` pieces stay with their word) are picked
      until ``round(encoder_mask_rate * (n + 2))`` of the ``n`` text tokens
      are (at least one; [CLS]/[SEP] count in the total but are never
      picked), by :func:`sample_whole_word_mask`, as the reference's
      whole-word collator does; a pick becomes ``[MASK]`` (80 %), a random
      token (10 %) or stays (10 %); ``encoder_labels`` holds the original id
      at picks, 0 elsewhere. One difference from the reference: our random
      token is never a special one (``[PAD]``, ``[CLS]``, ...).
    - decoder: ``decoder_token_ids`` are the original (unmasked) ids;
      ``decoder_attention_mask`` comes from :func:`sample_decoder_mask` at
      ``decoder_mask_rate``; ``decoder_labels`` hold every original text
      token (``[CLS]`` and the final ``[SEP]`` excluded), 0 elsewhere.

    Label 0 means "no loss here" (id 0 is ``[PAD]``, never a target).
    Defaults follow the RetroMAE code (encoder 0.3, decoder 0.5). Draws
    come from ``numpy.random.default_rng(seed)``, so a collator with the same
    seed given the same texts returns the same batches; ``collator(texts,
    rng=...)`` draws from the given generator instead (what the step-indexed
    :func:`retromae_batches` does). ``texts`` may also be lists of token ids
    (already with ``[CLS]``/``[SEP]``).

    Example:
        >>> collator = RetroMAECollator(tokenizer, maxlen=64, seed=0)
        >>> batch = collator(["信用卡怎么注销", "怎么修改收货地址"])
        >>> batch["decoder_attention_mask"].shape    # (2, L, L)
    """

    def __init__(self, tokenizer, maxlen=512, encoder_mask_rate=0.3, decoder_mask_rate=0.5, seed=0):
        for name, rate in (("encoder_mask_rate", encoder_mask_rate), ("decoder_mask_rate", decoder_mask_rate)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {rate}")
        if maxlen < 3:
            raise ValueError(f"maxlen must be at least 3 ([CLS], one token, [SEP]), got {maxlen}")
        if tokenizer._token_mask_id is None:
            raise ValueError("the vocabulary has no [MASK] token, which the RetroMAE encoder input needs")
        self.tokenizer, self.maxlen = tokenizer, maxlen
        self.encoder_mask_rate, self.decoder_mask_rate = encoder_mask_rate, decoder_mask_rate
        self.rng = np.random.default_rng(seed)
        special = {tokenizer._token_dict.get(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")}
        self.ordinary_ids = np.array([i for i in range(tokenizer.vocab_size) if i not in special])

    def _token_ids(self, text, index):
        if isinstance(text, str):
            return self.tokenizer.encode(text, maxlen=self.maxlen)[0]
        try:
            ids = [int(i) for i in text]
        except (TypeError, ValueError):
            raise TypeError(f"text {index} must be a string or a list of token ids, got {text!r}") from None
        if not 2 <= len(ids) <= self.maxlen:
            raise ValueError(f"text {index} has {len(ids)} token ids; need 2..maxlen={self.maxlen} "
                             "including [CLS] and [SEP]")
        return ids

    def _words(self, token_ids):
        return whole_words([self.tokenizer.id_to_token(i) for i in token_ids])

    def mask_encoder_input(self, token_ids, words=None, rng=None):
        """``(masked_ids, labels)`` for one text's ids, by the encoder rule above (draws from ``rng`` if given)."""
        rng = self.rng if rng is None else rng
        masked, labels = list(token_ids), [0] * len(token_ids)
        if self.encoder_mask_rate == 0:
            return masked, labels
        words = self._words(token_ids) if words is None else words
        picks = np.flatnonzero(sample_whole_word_mask(words, len(token_ids), self.encoder_mask_rate, rng))
        for position in picks:
            labels[position] = token_ids[position]
            draw = rng.random()
            if draw < 0.8:
                masked[position] = self.tokenizer._token_mask_id
            elif draw < 0.9 and len(self.ordinary_ids):
                masked[position] = int(rng.choice(self.ordinary_ids))
        return masked, labels

    def __call__(self, texts, rng=None):
        if isinstance(texts, str) or not len(texts):
            raise ValueError("RetroMAECollator takes a non-empty list of texts")
        rng = self.rng if rng is None else rng
        originals = [self._token_ids(text, i) for i, text in enumerate(texts)]
        length = max(len(ids) for ids in originals)
        encoder_ids, encoder_labels, decoder_labels, masks = [], [], [], []
        for ids in originals:
            words = self._words(ids)
            masked, labels = self.mask_encoder_input(ids, words, rng)
            encoder_ids.append(masked)
            encoder_labels.append(labels)
            decoder_labels.append([0] + list(ids[1:-1]) + [0])
            masks.append(sample_decoder_mask(len(ids), self.decoder_mask_rate, rng, length, words))
        decoder_ids = sequence_padding(originals, length)
        return {
            "encoder_token_ids": sequence_padding(encoder_ids, length).astype("int32"),
            "segment_ids": np.zeros_like(decoder_ids, dtype="int32"),
            "encoder_labels": sequence_padding(encoder_labels, length).astype("int32"),
            "decoder_token_ids": decoder_ids.astype("int32"),
            "decoder_attention_mask": np.stack(masks),
            "decoder_labels": sequence_padding(decoder_labels, length).astype("int32"),
        }


def retromae_batches(texts, collator, batch_size, seed=0, start_step=0):
    """Endless RetroMAE batches ``(inputs, labels)`` for ``model.fit``, reshuffled every pass, from ``start_step`` on.

    ``inputs`` = ``(encoder_token_ids, segment_ids, decoder_token_ids,
    decoder_attention_mask)``, ``labels`` = ``(encoder_labels, decoder_labels)``
    (the order of :data:`RETROMAE_INPUTS` / :data:`RETROMAE_LABELS`). The last
    incomplete batch of a pass is dropped. Step-indexed like
    :func:`simbert_batches`: batch ``s`` (its texts and the collator's masks,
    drawn from a generator seeded by ``(seed, s)``) depends on ``s`` only.

    Example:
        >>> batches = retromae_batches(texts, RetroMAECollator(tokenizer, 64), batch_size=32)
        >>> inputs, labels = next(batches)
    """
    if not 1 <= batch_size <= len(texts):
        raise ValueError(f"batch_size must be between 1 and the number of texts ({len(texts)}), got {batch_size}")
    _check_seed("seed", seed)
    _check_seed("start_step", start_step)
    for step, chosen in _step_slices(len(texts), batch_size, seed, start_step):
        batch = collator([texts[i] for i in chosen], rng=np.random.default_rng([seed, 1, step]))
        yield tuple(batch[k] for k in RETROMAE_INPUTS), tuple(batch[k] for k in RETROMAE_LABELS)


def retromae_dataset(batches, start_step=0, labels_as_inputs=False):
    """Wrap :func:`retromae_batches` as a ``tf.data.Dataset`` (int32 ids, bool mask).

    ``batches`` and ``start_step`` as in :func:`to_dataset` (an iterator, or a
    function of the start step for an exact resume). Elements are ``(inputs,
    labels)``, or with ``labels_as_inputs=True`` the six tensors as inputs
    alone (``(inputs + labels,)``), for
    :func:`bert4sim.losses.retromae_training_model`.

    Example:
        >>> trainer.fit(retromae_dataset(retromae_batches(texts, collator, 32)), steps_per_epoch=100)
        >>> dataset = retromae_dataset(lambda step: retromae_batches(texts, collator, 32, start_step=step),
        ...                            start_step=resume.start_step)
        >>> model.fit(retromae_dataset(retromae_batches(texts, collator, 32), labels_as_inputs=True))
    """
    import tensorflow as tf

    ids = tf.TensorSpec((None, None), tf.int32)
    spec = ((ids, ids, ids, tf.TensorSpec((None, None, None), tf.bool)), (ids, ids))
    dataset = tf.data.Dataset.from_generator(_stream(batches, start_step), output_signature=spec)
    if labels_as_inputs:
        dataset = dataset.map(lambda inputs, labels: (inputs + labels,))
    return _distributed_by_data(dataset).prefetch(2)
