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


def simbert_batches(groups, tokenizer, batch_size, maxlen=32, seed=0, encode_source=None, with_sources=False):
    """Endless SimBERT batches ``(token_ids, segment_ids)`` as numpy arrays.

    Each step takes ``batch_size // 2`` groups, samples a pair from each and
    puts both orders ``a→b`` and ``b→a`` next to each other, so row i's
    partner is row i±1 (what the similarity loss expects). ``encode_source``
    (``(tokenizer, text, rng) -> token_ids``) replaces the source encoding,
    e.g. with BART-style noise for RoFormer-Sim; ``with_sources=True`` adds
    each row's clean source sentence as a third item (for a teacher model).

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
            token_ids, segment_ids, sources = [], [], []
            for group_index in order[start : start + batch_size // 2]:
                a, b = sample_pair(groups[group_index], rng)
                for source, target in ((a, b), (b, a)):
                    ids, segments = _pair_ids(tokenizer, source, target, maxlen, rng, encode_source)
                    token_ids.append(ids)
                    segment_ids.append(segments)
                    sources.append(source)
            batch = (sequence_padding(token_ids), sequence_padding(segment_ids))
            yield batch + (sources,) if with_sources else batch


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


# --- RoFormer-Sim: BART-style noise and pair mining ---

SENTENCE_SEPARATORS = "\n。！？!?；;"
_IGNORED_FOR_OVERLAP = SENTENCE_SEPARATORS + "，,、：:\"“”'‘’（）() "


def jieba_words(text):
    """jieba's precise-mode words without its HMM (what RoFormer-Sim's word vocab uses)."""
    import jieba

    return jieba.lcut(text, HMM=False)


def masked_encode(tokenizer, text, rng, word_rate=0.15, pre_tokenize=jieba_words):
    """Encode ``text`` as a source with BART-style whole-word noise (RoFormer-Sim's rule).

    The text is cut into words; each word is picked with probability
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


def noisy_source(noise_probability=0.5, word_rate=0.15, pre_tokenize=jieba_words):
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
    if not os.path.isfile(path):
        raise FileNotFoundError(f"corpus file not found: {path}")
    with open(path, encoding="utf-8") as f:
        passages = [line.strip() for line in f if line.strip()]
    if not passages:
        raise ValueError(f"corpus file {path} has no non-empty lines")
    return passages
