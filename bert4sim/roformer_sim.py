"""RoFormer-Sim (SimBERT v2): BART-style noise, mined general pairs, distillation and the supervised stage.

Stage 1 and 2 train with SimBERT's recipe on a RoFormer (``model='roformer'``):
:func:`bert4sim.simbert.simbert_batches` with :func:`noisy_source` noise on the
sources and, optionally, general pairs mined by :func:`mine_similar_pairs`;
stage 2 adds a frozen SimBERT teacher to
:func:`bert4sim.simbert.simbert_training_model` (retrieval distillation). The
supervised stage (the released "-ft" checkpoints) trains a bias-free 5-way head
over ``[u; v; |u - v|]`` on labelled pairs and NLI
(:func:`supervised_training_model`).

Example:
    >>> batches = simbert_batches(groups, tokenizer, 96, encode_source=noisy_source())
    >>> model = supervised_training_model(encoder)
    >>> model.compile(optimizer=make_optimizer(2e-5, weight_decay=0.01))
    >>> model.fit(supervised_dataset(stream, tokenizer, 192), steps_per_epoch=1000)
"""
import itertools

import keras
import numpy as np
from keras import ops

from bert4sim.data import SENTENCE_SEPARATORS, json_records, split_sentences
from bert4sim.files import read_lines
from bert4sim.loss_layer import Loss
from bert4sim.losses import task_masked_crossentropy
from bert4sim.sequences import sequence_padding
from bert4sim.simbert import roformer_sim_cut

NLI_LABELS = ("contradiction", "entailment", "neutral")  # labels 2, 3, 4 in RoFormer-Sim's supervised script
_IGNORED_FOR_OVERLAP = SENTENCE_SEPARATORS + "，,、：:\"“”'‘’（）() "

# --- BART-style noise ---


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


# --- General pairs mined from plain text ---


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


# --- Supervised stage: labelled pairs and NLI ---


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


def paired_rows_features(vectors):
    """``[u; v; |u − v|]`` of consecutive rows: rows 2i, 2i+1 hold pair i's sentence vectors.

    Example:
        >>> features = paired_rows_features(encoder([token_ids, segment_ids]))   # [batch / 2, 3 * hidden]
    """
    return ops.concatenate([vectors[::2], vectors[1::2], ops.abs(vectors[::2] - vectors[1::2])], axis=-1)


def task_masked_predictions(labels, logits, similarity_classes=2):
    """The predicted class of each row, chosen among the classes of its own task (as the loss sees them).

    Example:
        >>> accuracy = np.mean(task_masked_predictions(labels, logits) == labels)
    """
    labels = np.asarray(labels).reshape(-1)
    logits = np.array(logits, dtype="float32")
    nli = np.arange(logits.shape[-1]) >= similarity_classes
    logits[np.where((labels < similarity_classes)[:, None], nli[None, :], ~nli[None, :])] = -np.inf
    return logits.argmax(-1)


def supervised_dataset(examples, tokenizer, batch_size, maxlen=64, length=None):
    """:func:`labelled_pair_batches` as a ``tf.data.Dataset`` for :func:`supervised_training_model`.

    Each element is ``((token_ids, segment_ids, labels),)``: the labels (one
    per pair) are an input of the training model, as its loss layer needs.

    Example:
        >>> stream = (example for _, example in interleave([pairs, nli]))
        >>> model.fit(supervised_dataset(stream, tokenizer, 192), steps_per_epoch=1000)
    """
    import tensorflow as tf

    ids = tf.TensorSpec((None, None), tf.int32)
    return tf.data.Dataset.from_generator(
        lambda: ((inputs + (labels,),) for inputs, labels in
                 labelled_pair_batches(examples, tokenizer, batch_size, maxlen, length)),
        output_signature=((ids, ids, tf.TensorSpec((None,), tf.int32)),)).prefetch(2)


@keras.saving.register_keras_serializable(package="bert4sim")
class SupervisedSimLoss(Loss):
    """RoFormer-Sim's supervised loss as a layer: :func:`bert4sim.losses.task_masked_crossentropy`.

    Inputs ``[labels, logits]`` (one label per pair: 0/1 similarity, 2-4
    NLI); returns the logits (``output_axis=1``).

    Example:
        >>> logits = SupervisedSimLoss(output_axis=1)([labels, logits])
    """

    def __init__(self, similarity_classes=2, **kwargs):
        super().__init__(**kwargs)
        self.similarity_classes = similarity_classes

    def compute_loss(self, inputs, mask=None):
        labels, logits = inputs
        return task_masked_crossentropy(labels, logits, self.similarity_classes)

    def get_config(self):
        return {**super().get_config(), "similarity_classes": self.similarity_classes}


def supervised_training_model(encoder, num_classes=5, similarity_classes=2):
    """RoFormer-Sim's supervised stage: one bias-free linear layer over ``[u; v; |u − v|]``, task-masked CE.

    ``encoder`` maps ``[token_ids, segment_ids]`` to sentence vectors (the
    linear pooler of a RoFormer(-Sim) checkpoint). Inputs ``[token_ids,
    segment_ids, labels]`` as :func:`supervised_dataset` yields them: rows 2i
    and 2i+1 are pair i, ``labels`` has one entry per pair (0/1 for
    similarity sets, 2-4 for NLI). Output: the logits ``[pairs, num_classes]``
    of the layer named ``"Supervised-Classifier"`` (no bias), which only
    training needs; the encoder is what is kept. ``fit`` logs ``loss``.

    Example:
        >>> model = supervised_training_model(encoder)
        >>> model.compile(optimizer=make_optimizer(2e-5, weight_decay=0.01))
        >>> logits = keras.Model(model.inputs[:2], model.get_layer("Supervised-Classifier").output)
    """
    if not 0 < similarity_classes < num_classes:
        raise ValueError(f"need 0 < similarity_classes ({similarity_classes}) < num_classes ({num_classes})")
    token_ids = keras.Input((None,), dtype="int32", name="Input-Token")
    segment_ids = keras.Input((None,), dtype="int32", name="Input-Segment")
    labels = keras.Input((), dtype="int32", name="Input-Labels")
    vectors = encoder([token_ids, segment_ids])
    classifier = keras.layers.Dense(num_classes, use_bias=False, name="Supervised-Classifier")
    logits = classifier(PairedRowsFeatures(name="Paired-Rows-Features")(vectors))
    outputs = SupervisedSimLoss(similarity_classes, output_axis=1, name="Supervised-Loss")([labels, logits])
    return keras.Model([token_ids, segment_ids, labels], outputs, name="supervised_sim_training")


@keras.saving.register_keras_serializable(package="bert4sim")
class PairedRowsFeatures(keras.layers.Layer):
    """``[batch, dim]`` -> ``[batch / 2, 3 * dim]``: :func:`paired_rows_features` as a layer.

    Example:
        >>> features = PairedRowsFeatures()(vectors)
    """

    def call(self, inputs):
        return paired_rows_features(inputs)

    def compute_output_shape(self, input_shape):
        return (None, 3 * input_shape[-1])
