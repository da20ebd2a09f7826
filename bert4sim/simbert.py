"""SimBERT: its corpus and paired batches, the loss layer and the training model (BERT + UniLM + contrastive).

The corpus is JSON lines ``{"text": str, "synonyms": [str, ...]}`` (one group
of similar sentences a line), as the released SimBERT scripts read it. A batch
holds both orders ``[CLS] a [SEP] b [SEP]`` / ``[CLS] b [SEP] a [SEP]`` of a
sampled pair in adjacent rows; :func:`simbert_training_model` trains the
``unilm`` model's generation loss and the in-batch similarity loss of its
pooled vectors (or RoFormer-Sim's distillation, see :mod:`bert4sim.roformer_sim`).

Example:
    >>> groups = read_synonym_groups("examples/data/simbert_train.json")
    >>> bert = build_transformer_model(config, ckpt, application="unilm", with_pool="linear",
    ...                                return_keras_model=False)
    >>> model = simbert_training_model(bert)
    >>> model.compile(optimizer=make_optimizer(1e-5))
    >>> model.fit(to_dataset(simbert_batches(groups, tokenizer, 32)), steps_per_epoch=100)
"""
import itertools

import keras
import numpy as np
from keras import ops

from bert4sim.checks import check_seed
from bert4sim.data import interleave, json_records, step_slices
from bert4sim.layers import MaskDropping
from bert4sim.loss_layer import Loss
from bert4sim.losses import gather_positions, simbert_loss_parts
from bert4sim.sequences import sequence_padding, text_segmentate

# --- Corpus and batches ---


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
    check_seed("seed", seed)
    check_seed("start_step", start_step)
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
    for _, chosen in step_slices(len(groups), batch_pairs, seed, start_step):
        yield [groups[i] for i in chosen]


def _pair_ids(tokenizer, source, target, maxlen, rng, encode_source):
    if encode_source is None:
        return encode_pair(tokenizer, source, target, maxlen)
    source, target = roformer_sim_cut(source, maxlen), roformer_sim_cut(target, maxlen)
    source_ids = list(encode_source(tokenizer, source, rng))[:maxlen]
    if source_ids[-1] != tokenizer._token_end_id:
        source_ids[-1] = tokenizer._token_end_id
    target_ids = tokenizer.encode(target, maxlen=maxlen)[0][1:]
    return source_ids + target_ids, [0] * len(source_ids) + [1] * len(target_ids)


# --- Training model ---


def predicted_tokens(token_ids, segment_ids, sequence):
    """``(target_ids, hidden)`` of the tokens a UniLM model predicts: position t predicts token t+1 of segment 1.

    Example:
        >>> targets, hidden = predicted_tokens(token_ids, segment_ids, sequence_output)
    """
    positions = ops.where(ops.cast(segment_ids[:, 1:], "bool"))  # tuple of index arrays
    return gather_positions(token_ids[:, 1:], positions), gather_positions(sequence[:, :-1], positions)


@keras.saving.register_keras_serializable(package="bert4sim")
class PredictedTokens(MaskDropping):
    """``[token_ids, segment_ids, sequence_output]`` -> ``[target_ids, hidden]`` of the predicted tokens only.

    Position t predicts token t+1 where that token is in segment 1 (UniLM),
    so the MLM head runs on those rows only (with a large vocabulary the
    head is most of a SimBERT step otherwise).

    Example:
        >>> targets, hidden = PredictedTokens()([token_ids, segment_ids, sequence_output])
    """

    def call(self, inputs):
        return predicted_tokens(*inputs)

    def compute_output_spec(self, inputs):
        token_ids, _, sequence = inputs
        return (keras.KerasTensor((None,), dtype=token_ids.dtype),
                keras.KerasTensor((None, sequence.shape[-1]), dtype=sequence.dtype))


@keras.saving.register_keras_serializable(package="bert4sim")
class SimBERTLoss(Loss):
    """SimBERT / RoFormer-Sim loss layer: generation + similarity (or distillation), bert4keras style.

    Inputs ``[targets, logits, vectors]`` (+ ``teacher_vectors``): the target
    ids and MLM logits of the predicted tokens only (``[N]``, ``[N, vocab]``)
    and the pooled sentence vectors. With ``full_sequence=True`` (static
    shapes, for XLA) the inputs are ``[token_ids, segment_ids, logits, vectors]``
    (+ teacher) with logits at every position. Adds the sum of
    :func:`simbert_loss_parts`, logs ``seq2seq_loss`` and ``similarity_loss``
    (``distillation_loss`` with a teacher) and returns ``inputs[output_axis]``.
    :func:`simbert_training_model` wires it into a model.

    Example:
        >>> pooled = SimBERTLoss(similarity_scale=30, output_axis=2)([targets, logits, pooled])
    """

    def __init__(self, similarity_scale=30.0, distillation_weight=100.0, full_sequence=False, **kwargs):
        super().__init__(**kwargs)
        self.similarity_scale, self.distillation_weight = similarity_scale, distillation_weight
        self.full_sequence = full_sequence

    def compute_loss(self, inputs, mask=None):
        if self.full_sequence:
            token_ids, segment_ids, logits, vectors, *teacher = inputs
            targets, logits, weights = token_ids[:, 1:], logits[:, :-1], segment_ids[:, 1:]
        else:
            (targets, logits, vectors, *teacher), weights = inputs, None
        teacher_vectors = teacher[0] if teacher else None
        generation, similarity = simbert_loss_parts(targets, logits, vectors, weights, self.similarity_scale,
                                                    teacher_vectors, self.distillation_weight)
        self.add_metric(generation, "seq2seq_loss")
        self.add_metric(similarity, "similarity_loss" if teacher_vectors is None else "distillation_loss")
        return generation + similarity

    def get_config(self):
        return {**super().get_config(), "similarity_scale": self.similarity_scale,
                "distillation_weight": self.distillation_weight, "full_sequence": self.full_sequence}


def simbert_training_model(transformer, similarity_scale=30.0, teacher=None, distillation_weight=100.0,
                           full_sequence=False):
    """The bert4keras-style training model of a SimBERT / RoFormer-Sim builder: the loss is a layer inside.

    ``transformer``: ``build_transformer_model(..., application='unilm',
    with_pool='linear', return_keras_model=False)``. Inputs ``[token_ids,
    segment_ids]`` (+ the teacher's two inputs with a ``teacher`` encoder,
    whose distillation loss replaces the similarity loss); output: the pooled
    vectors. The MLM head scores only the predicted tokens
    (:class:`PredictedTokens`), or every position with ``full_sequence``
    (static shapes, for XLA). Compile it with an optimizer only; ``fit`` logs
    ``loss``, ``seq2seq_loss`` and ``similarity_loss`` / ``distillation_loss``.

    Example:
        >>> bert = build_transformer_model(config, ckpt, application="unilm", with_pool="linear",
        ...                                return_keras_model=False)
        >>> model = simbert_training_model(bert)
        >>> model.compile(optimizer=make_optimizer(1e-5)); model.fit(dataset, steps_per_epoch=100)
    """
    t = transformer
    if t.pooler is None or t.mlm_transform is None or t.application != "unilm":
        raise ValueError("simbert_training_model needs a unilm model with a pooler and an MLM head "
                         "(application='unilm', with_pool='linear', return_keras_model=False)")
    t.config["pooling"] = "pooler"  # the vector SimBERT trains; save_checkpoint records it in bert_config.json
    token_ids, segment_ids = t.model.inputs
    sequence, pooled = t.blocks[-1].output, t.model.outputs[0]
    if full_sequence:
        loss_inputs = [token_ids, segment_ids, t.mlm_logits(sequence), pooled]
    else:
        targets, hidden = PredictedTokens(name="Predicted-Tokens")([token_ids, segment_ids, sequence])
        loss_inputs = [targets, t.mlm_logits(hidden), pooled]
    inputs, output_axis = [token_ids, segment_ids], len(loss_inputs) - 1
    if teacher is not None:
        teacher.trainable = False
        teacher_inputs = [keras.Input((None,), dtype=i.dtype, name=f"Teacher-Input-{n}")
                          for n, i in enumerate(teacher.inputs)]
        loss_inputs.append(teacher(teacher_inputs, training=False))
        inputs += teacher_inputs
    vectors = SimBERTLoss(similarity_scale, distillation_weight, full_sequence, output_axis=output_axis,
                          name="SimBERT-Loss")(loss_inputs)
    return keras.Model(inputs, vectors, name="simbert_training")
