"""Corpus readers, SimBERT batches, BART-style noise and ``tf.data`` pipelines.

The SimBERT corpus format is JSON lines ``{"text": str, "synonyms": [str, ...]}``
(one group of similar sentences a line), as the released SimBERT scripts read.
"""
import json
import os

import numpy as np

from bert4sim.snippets import sequence_padding

# --- SimBERT corpus ---


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
    if not os.path.isfile(path):
        raise FileNotFoundError(f"corpus file not found: {path}")
    groups = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{where}: expected a JSON object with 'text' and 'synonyms'")
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


def encode_pair(tokenizer, first, second, maxlen):
    """``[CLS] first [SEP] second [SEP]`` with each side cut to ``maxlen`` tokens (SimBERT's rule)."""
    return tokenizer.encode(first, second, maxlen=maxlen * 2)


def simbert_batches(groups, tokenizer, batch_size, maxlen=32, seed=0, encode_source=None):
    """Endless SimBERT batches ``(token_ids, segment_ids)`` as numpy arrays.

    Each step takes ``batch_size // 2`` groups, samples a pair from each and
    puts both orders ``a→b`` and ``b→a`` next to each other, so row i's
    partner is row i±1 (what the similarity loss expects). ``encode_source``
    (``(tokenizer, text, rng) -> token_ids``) replaces the source encoding,
    e.g. with BART-style noise for RoFormer-Sim.

    Example:
        >>> batches = simbert_batches(groups, tokenizer, batch_size=32)
        >>> token_ids, segment_ids = next(batches)
    """
    if batch_size < 2 or batch_size % 2:
        raise ValueError(f"batch_size must be even and at least 2 (pairs stay together), got {batch_size}")
    rng = np.random.default_rng(seed)
    if len(groups) < batch_size // 2:
        raise ValueError(f"{len(groups)} groups cannot fill a batch of {batch_size} (needs {batch_size // 2} groups)")
    while True:
        order = rng.permutation(len(groups))
        for start in range(0, len(order) - batch_size // 2 + 1, batch_size // 2):
            token_ids, segment_ids = [], []
            for group_index in order[start : start + batch_size // 2]:
                a, b = sample_pair(groups[group_index], rng)
                for source, target in ((a, b), (b, a)):
                    ids, segments = _pair_ids(tokenizer, source, target, maxlen, rng, encode_source)
                    token_ids.append(ids)
                    segment_ids.append(segments)
            yield sequence_padding(token_ids), sequence_padding(segment_ids)


def _pair_ids(tokenizer, source, target, maxlen, rng, encode_source):
    if encode_source is None:
        return encode_pair(tokenizer, source, target, maxlen)
    source_ids = list(encode_source(tokenizer, source, rng))[:maxlen]
    if source_ids[-1] != tokenizer._token_end_id:
        source_ids[-1] = tokenizer._token_end_id
    target_ids = tokenizer.encode(target, maxlen=maxlen)[0][1:]
    return source_ids + target_ids, [0] * len(source_ids) + [1] * len(target_ids)


def to_dataset(batches, extra_inputs=0):
    """Wrap a generator of numpy batches as a ``tf.data.Dataset`` for ``model.fit``.

    Every batch is a tuple of int32 ``[batch, length]`` arrays; the dataset
    yields ``((array, ...),)`` so Keras sees them all as model inputs.

    Example:
        >>> dataset = to_dataset(simbert_batches(groups, tokenizer, 32))
        >>> trainer.fit(dataset, steps_per_epoch=100)
    """
    import tensorflow as tf

    count = 2 + extra_inputs
    spec = tuple(tf.TensorSpec((None, None), tf.int32) for _ in range(count))
    dataset = tf.data.Dataset.from_generator(
        lambda: ((tuple(np.asarray(a, "int32") for a in batch),) for batch in batches),
        output_signature=(spec,),
    )
    return dataset.prefetch(2)
