"""RetroMAE: decoder mask sampler, collator, enhanced decoder, builder and loss against numpy."""
import json
import math

import keras
import numpy as np
import pytest

from bert4sim.checkpoints import write_checkpoint
from bert4sim.data import pack_sentences
from bert4sim.losses import masked_lm_loss, retromae_loss
from bert4sim.models import build_transformer_model
from bert4sim.retromae import (RETROMAE_INPUTS, RETROMAE_LABELS, EnhancedDecoderBlock, RetroMAECollator, RetroMAEStreams,
                               build_retromae_model, retromae_batches, retromae_dataset, retromae_training_model,
                               sample_decoder_mask, sample_whole_word_mask, whole_words)
from bert4sim.tokenizers import Tokenizer
from numpy_reference import forward, gelu, layer_norm, random_checkpoint_arrays, rope_bert4keras, softmax

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARS = list("甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥天地人和")
VOCAB = {t: i for i, t in enumerate(SPECIALS + CHARS)}
CONFIG = dict(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
              intermediate_size=32, max_position_embeddings=32)


def tokenizer():
    return Tokenizer(VOCAB)


def tiny(model="bert", **kwargs):
    return build_retromae_model(model=model, dropout_rate=0.0, attention_dropout_rate=0.0,
                                return_keras_model=False, **CONFIG, **kwargs)


def randomize(layer, seed, scale=0.3):
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        value = rng.standard_normal(variable.shape) * scale
        if variable.path.endswith("gamma"):
            value += 1.0
        variable.assign(value.astype("float32"))


# --- decoder attention mask sampler, against a re-implementation of the reference's sampling ---


def reference_word_mask(tokens, rate, rnd):
    """The RetroMAE reference's whole-word draw (HF whole-word-mask collator), in plain Python: 1 = hidden."""
    groups = []
    for i, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]"):
            continue
        if groups and token.startswith("##"):
            groups[-1].append(i)
        else:
            groups.append([i])
    rnd.shuffle(groups)
    wanted, chosen = min(512, max(1, int(round(len(tokens) * rate)))), set()
    for group in groups:
        if len(chosen) >= wanted:
            break
        if len(chosen) + len(group) <= wanted:
            chosen.update(group)
    return [int(i in chosen) for i in range(len(tokens))]


def reference_decoder_mask(tokens, rate, rnd):
    """The reference's decoder mask: a pool of min(L, 256) word masks, one per row at random, plus the diagonal."""
    pool = [reference_word_mask(tokens, rate, rnd) for _ in range(min(len(tokens), 256))]
    rows = []
    for i in range(len(tokens)):
        hidden = list(pool[rnd.randint(0, len(pool) - 1)])
        hidden[i] = 1
        rows.append([1 - h for h in hidden])
    return np.array(rows, dtype=bool)  # True = visible


def mask_statistics(masks):
    """Per mask: mean visible share of the other text tokens (text rows); plus exact column/diagonal facts."""
    shares, cls_seen, sep_seen, diagonal_seen = [], [], [], []
    for mask in masks:
        length = len(mask)
        text = range(1, length - 1)
        if length > 3:
            shares.append(np.mean([mask[i, [j for j in text if j != i]].mean() for i in text]))
        cls_seen.append(mask[1:, 0].mean())
        sep_seen.append(mask[:-1, -1].mean())
        diagonal_seen.append(np.diag(mask).mean())
    return np.array(shares), np.mean(cls_seen), np.mean(sep_seen), np.mean(diagonal_seen)


@pytest.mark.parametrize("rate", [0.5, 0.7])
@pytest.mark.parametrize("n", [1, 3, 10, 30])
def test_decoder_mask_statistics_match_the_reference_on_10000_rows(n, rate):
    import random

    length, rows = n + 2, 10_000
    count = -(-rows // length)  # masks needed for 10,000 rows
    tokens = ["[CLS]"] + ["字"] * n + ["[SEP]"]
    rng, rnd = np.random.default_rng(n), random.Random(n)
    ours = mask_statistics([sample_decoder_mask(length, rate, rng) for _ in range(count)])
    theirs = mask_statistics([reference_decoder_mask(tokens, rate, rnd) for _ in range(count)])
    assert ours[1:] == theirs[1:] == (1.0, 1.0, 0.0)  # [CLS] and [SEP] columns always seen, the diagonal never
    if n > 1:
        error = np.sqrt(ours[0].var() / len(ours[0]) + theirs[0].var() / len(theirs[0]))
        assert abs(ours[0].mean() - theirs[0].mean()) <= 4 * error + 1e-9, (ours[0].mean(), theirs[0].mean())
        # the visible share the reference's rule gives: round(rate * (n + 2)) hidden, then the diagonal
        hidden = min(n, max(1, round(rate * length)))
        expected = (hidden / n * (n - hidden) + (1 - hidden / n) * (n - hidden - 1)) / (n - 1)
        assert ours[0].mean() == pytest.approx(expected, abs=4 * error + 1e-9)


def test_decoder_mask_whole_words_and_rows_sharing_the_pool_like_the_reference():
    import random

    tokens = ["[CLS]", "信", "用", "card", "##s", "and", "more", "##s", "[SEP]"]
    words = whole_words(tokens)
    assert words == [[1], [2], [3, 4], [5], [6, 7]]
    rng, rnd = np.random.default_rng(0), random.Random(0)
    ours = [sample_decoder_mask(len(tokens), 0.5, rng, words=words) for _ in range(1500)]
    theirs = [reference_decoder_mask(tokens, 0.5, rnd) for _ in range(1500)]
    for masks in (ours, theirs):
        together = np.mean([m[r, 3] == m[r, 4] for m in masks for r in range(len(tokens)) if r not in (3, 4)])
        assert together == 1.0  # a word's pieces are hidden or seen together
    column_share = [np.mean([m[:, j].mean() for m in masks]) for masks in (ours, theirs) for j in [1, 3, 5]]
    np.testing.assert_allclose(column_share[:3], column_share[3:], atol=0.03)


def test_decoder_mask_padding_seed_and_bad_lengths():
    mask = sample_decoder_mask(6, 0.5, np.random.default_rng(7), padded_length=9)
    assert mask.shape == (9, 9) and mask.dtype == bool
    assert not mask[:, 6:].any() and mask[6:, 0].all() and not mask[6:, 1:].any()
    np.testing.assert_array_equal(mask, sample_decoder_mask(6, 0.5, np.random.default_rng(7), padded_length=9))
    with pytest.raises(ValueError, match="length=5, padded_length=3"):
        sample_decoder_mask(5, 0.5, np.random.default_rng(0), padded_length=3)


def loop_word_mask(words, length, rate, rng):
    """sample_whole_word_mask's general rule (words in random order, one that would overshoot skipped)."""
    target, hidden, count = max(1, round(length * rate)), np.zeros(length, dtype=bool), 0
    for index in rng.permutation(len(words)):
        if count >= target:
            break
        if count + len(words[index]) <= target:
            hidden[words[index]] = True
            count += len(words[index])
    return hidden


@pytest.mark.parametrize("length", [3, 4, 12, 40, 300])
def test_one_token_words_take_the_fast_path_with_the_same_draws(length):
    # Chinese text: every word is one character; the shortcut must give the loop's masks and leave the
    # generator where the loop leaves it (so the batches of a run do not change)
    words = [[i] for i in range(1, length - 1)]
    for rate in (0.15, 0.3, 0.5, 0.99):
        fast, loop = np.random.default_rng(length), np.random.default_rng(length)
        for _ in range(20):
            np.testing.assert_array_equal(sample_whole_word_mask(words, length, rate, fast),
                                          loop_word_mask(words, length, rate, loop))
        assert fast.integers(1 << 30) == loop.integers(1 << 30)
    mixed = [[1], [2, 3], [4], [5, 6, 7], [8]]  # ## pieces: the general loop
    fast, loop = np.random.default_rng(1), np.random.default_rng(1)
    for _ in range(20):
        np.testing.assert_array_equal(sample_whole_word_mask(mixed, 10, 0.5, fast), loop_word_mask(mixed, 10, 0.5, loop))


# --- collator ---


@pytest.mark.parametrize("n", [1, 4, 10, 17])
def test_collator_encoder_masking_rule_matches_the_reference_counts(n):
    import random

    tok = tokenizer()
    collator = RetroMAECollator(tok, maxlen=32, encoder_mask_rate=0.3, seed=n)
    rnd = random.Random(n)
    mask_id, kinds = tok._token_mask_id, {"mask": 0, "random": 0, "kept": 0}
    ids = [2] + list(np.random.default_rng(n).integers(5, len(VOCAB), size=n)) + [3]
    expected = sum(reference_word_mask(["[CLS]"] + ["字"] * n + ["[SEP]"], 0.3, rnd))
    assert expected == min(n, max(1, round(0.3 * (n + 2))))  # 4 of 10 at n = 10 (40 %)
    for _ in range(300):
        masked, labels = collator.mask_encoder_input(ids)
        picks = [i for i, label in enumerate(labels) if label]
        assert len(picks) == expected
        assert 0 not in picks and len(ids) - 1 not in picks  # [CLS]/[SEP] never picked
        for i in range(len(ids)):
            if i in picks:
                assert labels[i] == ids[i]
                kind = "mask" if masked[i] == mask_id else "kept" if masked[i] == ids[i] else "random"
                kinds[kind] += 1
                if kind == "random":
                    assert masked[i] >= 5  # an ordinary token, never a special one
            else:
                assert masked[i] == ids[i]
    total = sum(kinds.values())
    assert abs(kinds["mask"] / total - 0.8) < 0.06
    # "kept" also collects random draws that hit the original token (1 in 29 here).
    assert abs(kinds["random"] / total - 0.1) < 0.05 and abs(kinds["kept"] / total - 0.1) < 0.05


def test_collator_batch_layout_and_seed():
    tok = tokenizer()
    texts = ["甲乙丙丁戊己", "天地人", "子丑寅卯辰巳午未申酉戌亥甲乙丙丁戊己"]
    batch = RetroMAECollator(tok, maxlen=12, seed=3)(texts)
    again = RetroMAECollator(tok, maxlen=12, seed=3)(texts)
    other = RetroMAECollator(tok, maxlen=12, seed=4)(texts)
    assert set(batch) == set(RETROMAE_INPUTS) | set(RETROMAE_LABELS)
    for key in batch:
        np.testing.assert_array_equal(batch[key], again[key])
    assert not np.array_equal(batch["decoder_attention_mask"], other["decoder_attention_mask"])
    originals = [tok.encode(t, maxlen=12)[0] for t in texts]
    assert batch["decoder_token_ids"].shape == (3, 12)
    assert batch["decoder_attention_mask"].shape == (3, 12, 12)
    for row, ids in enumerate(originals):
        n = len(ids)
        np.testing.assert_array_equal(batch["decoder_token_ids"][row, :n], ids)
        assert not batch["decoder_token_ids"][row, n:].any() and not batch["encoder_token_ids"][row, n:].any()
        # The decoder reconstructs every text token; [CLS], the final [SEP] and padding carry no label.
        np.testing.assert_array_equal(batch["decoder_labels"][row], [0] + ids[1:-1] + [0] * (13 - n))
        mask = batch["decoder_attention_mask"][row]
        assert mask[1:, 0].all() and mask[:n - 1, n - 1].all() and not np.diag(mask).any() and not mask[:, n:].any()
    assert not batch["segment_ids"].any()
    for key in ("encoder_token_ids", "segment_ids", "encoder_labels", "decoder_token_ids", "decoder_labels"):
        assert batch[key].dtype == np.int32


def test_collator_gives_every_text_a_target():
    collator = RetroMAECollator(tokenizer(), maxlen=16, encoder_mask_rate=0.15, seed=0)
    short = [sum(1 for label in collator.mask_encoder_input([2, 5, 3])[1] if label) for _ in range(50)]
    assert short == [1] * 50  # at least one target even when 0.15 * 3 rounds down


def test_collator_accepts_token_ids():
    batch = RetroMAECollator(tokenizer(), maxlen=8, encoder_mask_rate=0.0, seed=0)([[2, 5, 6, 3], [2, 7, 3]])
    np.testing.assert_array_equal(batch["encoder_token_ids"], [[2, 5, 6, 3], [2, 7, 3, 0]])
    assert not batch["encoder_labels"].any()  # rate 0: nothing masked


def test_collator_errors():
    tok = tokenizer()
    with pytest.raises(ValueError, match="encoder_mask_rate must be in \\[0, 1\\), got 1.5"):
        RetroMAECollator(tok, encoder_mask_rate=1.5)
    with pytest.raises(ValueError, match="decoder_mask_rate must be in \\[0, 1\\), got -0.1"):
        RetroMAECollator(tok, decoder_mask_rate=-0.1)
    with pytest.raises(ValueError, match="maxlen must be at least 3"):
        RetroMAECollator(tok, maxlen=2)
    with pytest.raises(ValueError, match="no \\[MASK\\] token"):
        RetroMAECollator(Tokenizer({t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "甲"])}))
    collator = RetroMAECollator(tok, maxlen=6)
    with pytest.raises(ValueError, match="non-empty list of texts"):
        collator([])
    with pytest.raises(ValueError, match="non-empty list of texts"):
        collator("甲乙")
    with pytest.raises(TypeError, match="text 1 must be a string or a list of token ids, got 3.5"):
        collator(["甲", 3.5])
    with pytest.raises(ValueError, match="text 0 has 9 token ids; need 2..maxlen=6"):
        collator([[2] + [5] * 7 + [3]])


def test_pack_sentences():
    passages = ["今天下雨。明天晴。后天呢？", "一二三四五六七八九十一二。好。"]
    assert pack_sentences(passages, 9) == ["今天下雨。明天晴。", "后天呢？", "一二三四五六七八九", "十一二。好。"]
    assert pack_sentences(passages, 100) == passages
    with pytest.raises(ValueError, match="max_chars must be at least 1, got 0"):
        pack_sentences(passages, 0)


def test_batches_and_dataset():
    texts = ["甲乙丙", "丁戊己庚", "天地人和", "子丑", "寅卯辰巳午"]
    batches = retromae_batches(texts, RetroMAECollator(tokenizer(), maxlen=8), batch_size=2, seed=0)
    (element,) = next(iter(retromae_dataset(batches)))
    inputs, labels = element[:4], element[4:]
    assert [t.dtype.name for t in inputs] == ["int32", "int32", "int32", "bool"]
    assert inputs[3].shape[1:] == (inputs[0].shape[1],) * 2 and len(labels) == 2
    with pytest.raises(ValueError, match="batch_size must be between 1 and the number of texts \\(5\\), got 6"):
        next(retromae_batches(texts, RetroMAECollator(tokenizer()), batch_size=6))


# --- enhanced decoder ---


def numpy_decoder(block, query, content, mask, use_rope=False):
    """One BERT layer whose queries come from ``query`` and keys/values from ``content``."""
    w = lambda layer: [np.asarray(v) for v in layer.weights]  # noqa: E731
    a = block.attention
    heads, d = a.num_heads, a.head_size
    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = (w(x) for x in (a.query_dense, a.key_dense, a.value_dense, a.output_dense))
    b, lq, hidden = query.shape
    q = (query @ wq + bq).reshape(b, lq, heads, d)
    k = (content @ wk + bk).reshape(b, -1, heads, d)
    v = (content @ wv + bv).reshape(b, -1, heads, d)
    if use_rope:
        q, k = rope_bert4keras(q), rope_bert4keras(k)
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d) + (1.0 - mask[:, None]) * -1e12
    o = np.einsum("bhqk,bkhd->bqhd", softmax(logits), v).reshape(b, lq, hidden) @ wo + bo
    x = layer_norm(query + o, *w(block.attention_norm))
    (w1, b1), (w2, b2) = w(block.feed_forward.inner_dense), w(block.feed_forward.output_dense)
    return layer_norm(x + gelu(x @ w1 + b1) @ w2 + b2, *w(block.output_norm))


@pytest.mark.parametrize("use_rope", [False, True])
def test_enhanced_decoder_block_matches_numpy(use_rope):
    rng = np.random.default_rng(0)
    block = EnhancedDecoderBlock(2, 32, dropout_rate=0.0, attention_dropout_rate=0.0, use_rope=use_rope)
    query = rng.standard_normal((2, 7, 16)).astype("float32")
    content = rng.standard_normal((2, 7, 16)).astype("float32")
    mask = np.stack([sample_decoder_mask(7, 0.5, rng), sample_decoder_mask(5, 0.5, rng, 7)])
    out = block([query, content], attention_mask=mask)
    randomize(block, 1)
    out = np.asarray(block([query, content], attention_mask=mask))
    assert out.shape == (2, 7, 16)
    np.testing.assert_allclose(out, numpy_decoder(block, query, content, mask.astype("float64"), use_rope),
                               atol=1e-4)


def test_enhanced_decoder_layers_serialize_and_check_inputs():
    block = EnhancedDecoderBlock(2, 32, use_rope=True, name="dec")
    clone = EnhancedDecoderBlock.from_config(block.get_config())
    assert clone.get_config() == block.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(RetroMAEStreams()))
    assert isinstance(restored, RetroMAEStreams)
    x = np.zeros((1, 4, 16), "float32")
    with pytest.raises(ValueError, match="takes \\[query_stream, content_stream\\]"):
        EnhancedDecoderBlock(2, 32)(x)
    with pytest.raises(ValueError, match="must have the same hidden size"):
        EnhancedDecoderBlock(2, 32)([x, np.zeros((1, 4, 8), "float32")])


def test_streams_layer():
    sequence = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4)
    embeddings = -np.ones((2, 3, 4), "float32")
    query, content = (np.asarray(t) for t in RetroMAEStreams()([sequence, embeddings]))
    np.testing.assert_array_equal(query, np.repeat(sequence[:, :1], 3, axis=1))
    np.testing.assert_array_equal(content[:, 0], sequence[:, 0])
    np.testing.assert_array_equal(content[:, 1:], embeddings[:, 1:])


# --- the whole pre-training model against numpy ---


def numpy_retromae(w, retromae, model, token_ids, segment_ids, decoder_ids, mask):
    """Sentence vectors, encoder logits and decoder logits of RetroMAE, straight from the formulas."""
    sequence = forward(w, CONFIG, token_ids, segment_ids, model=model)
    encoder_logits = forward(w, CONFIG, token_ids, segment_ids, model=model, with_mlm="linear")
    length = decoder_ids.shape[1]
    embedding = w["bert/embeddings/word_embeddings"][decoder_ids] + w["bert/embeddings/token_type_embeddings"][segment_ids]
    sentence = sequence[:, :1]
    query = np.repeat(sentence, length, axis=1)
    if model == "bert":
        positions = w["bert/embeddings/position_embeddings"][:length][None]
        embedding, query = embedding + positions, query + positions
    embedding = layer_norm(embedding, w["bert/embeddings/LayerNorm/gamma"], w["bert/embeddings/LayerNorm/beta"])
    content = np.concatenate([sentence, embedding[:, 1:]], axis=1)
    hidden = numpy_decoder(retromae.decoder, query, content, mask.astype("float64"), use_rope=model == "roformer")
    h = gelu(hidden @ w["cls/predictions/transform/dense/kernel"] + w["cls/predictions/transform/dense/bias"])
    h = layer_norm(h, w["cls/predictions/transform/LayerNorm/gamma"], w["cls/predictions/transform/LayerNorm/beta"])
    decoder_logits = h @ w["bert/embeddings/word_embeddings"].T + w["cls/predictions/output_bias"]
    return sequence[:, 0], encoder_logits, decoder_logits


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random Google-format checkpoint for CONFIG (bert layout, with MLM head)."""
    folder = tmp_path_factory.mktemp("retromae_ckpt")
    full = dict(CONFIG, type_vocab_size=2)
    w = random_checkpoint_arrays(full, with_pool=False, seed=5)
    write_checkpoint(str(folder / "bert_model.ckpt"), w)
    (folder / "bert_config.json").write_text(json.dumps(full))
    return folder, w


def fixed_batch(seed=0):
    texts = ["甲乙丙丁戊己庚", "天地人和", "子丑寅卯辰巳午未申"]
    batch = RetroMAECollator(tokenizer(), maxlen=12, seed=seed)(texts)
    return [batch[k] for k in RETROMAE_INPUTS], [batch[k] for k in RETROMAE_LABELS]


@pytest.mark.parametrize("model", ["bert", "roformer"])
def test_retromae_model_matches_numpy(checkpoint, model):
    folder, w = checkpoint
    # The fixture is a BERT checkpoint: a RoFormer has no position table, so that variable is unused.
    retromae = build_retromae_model(str(folder / "bert_config.json"), str(folder), model=model,
                                    dropout_rate=0.0, attention_dropout_rate=0.0, return_keras_model=False,
                                    allow_unused=model == "roformer")
    randomize(retromae.decoder, 2)
    inputs, _ = fixed_batch()
    outputs = [np.asarray(o) for o in retromae.model(inputs, training=False)]
    expected = numpy_retromae(w, retromae, model, inputs[0], inputs[1], inputs[2], inputs[3])
    assert outputs[2].shape == inputs[0].shape + (len(VOCAB),)
    for ours, theirs in zip(outputs, expected):
        np.testing.assert_allclose(ours, theirs, atol=2e-4, rtol=1e-4)


def test_embeddings_and_mlm_head_are_shared_with_the_encoder():
    retromae = tiny()
    encoder_paths = {v.path for v in retromae.encoder.model.weights}
    extra = [v for v in retromae.model.weights if v.path not in encoder_paths]
    # Only the decoder layer is new: 16 variables, the layout of one BERT layer.
    assert len(extra) == 16 and all(v.path.startswith("RetroMAE-Decoder") for v in extra)


@pytest.mark.parametrize("model", ["bert", "roformer"])
def test_query_position_cannot_see_its_own_token(model):
    retromae = tiny(model)
    randomize(retromae.decoder, 3)
    inputs, _ = fixed_batch(seed=1)
    base = np.asarray(retromae.model(inputs)[2])
    mask = inputs[3]
    for position in (1, 3, 5):
        changed_ids = inputs[2].copy()
        changed_ids[:, position] = np.where(changed_ids[:, position] > 0, 5 + (changed_ids[:, position] - 4) % 25, 0)
        changed = np.asarray(retromae.model(inputs[:2] + [changed_ids, mask])[2])
        np.testing.assert_allclose(changed[:, position], base[:, position], atol=1e-5)
        seen_by = mask[:, :, position] & (inputs[2] > 0)  # rows that see this position
        assert seen_by.any()
        assert np.abs(changed - base).max(-1)[seen_by].min() > 1e-4  # ... and those rows do change
        assert np.allclose(changed[~seen_by], base[~seen_by], atol=1e-5)


# --- loss ---


def numpy_token_loss(labels, logits):
    logits = logits - logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    rows = np.argwhere(labels != 0)
    return -np.mean([log_probs[b, i, labels[b, i]] for b, i in rows])


def test_loss_equals_numpy_on_a_fixed_batch():
    retromae = tiny()
    randomize(retromae.decoder, 4)
    inputs, (encoder_labels, decoder_labels) = fixed_batch(seed=2)
    _, encoder_logits, decoder_logits = (np.asarray(o, "float64") for o in retromae.model(inputs))
    expected_encoder = numpy_token_loss(encoder_labels, encoder_logits)
    expected_decoder = numpy_token_loss(decoder_labels, decoder_logits)
    total, encoder_part, decoder_part = (float(v) for v in retromae_loss(
        encoder_labels, encoder_logits.astype("float32"), decoder_labels, decoder_logits.astype("float32")))
    assert encoder_part == pytest.approx(expected_encoder, rel=1e-5)
    assert decoder_part == pytest.approx(expected_decoder, rel=1e-5)
    assert total == pytest.approx(expected_encoder + expected_decoder, rel=1e-5)
    # The training model applies the head at labelled positions only; same value.
    model = retromae_training_model(retromae)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    value = model.evaluate(list(inputs) + [encoder_labels, decoder_labels], verbose=0, return_dict=True)["loss"]
    assert float(value) == pytest.approx(expected_encoder + expected_decoder, rel=1e-5)
    weighted = float(retromae_loss(encoder_labels, encoder_logits, decoder_labels, decoder_logits, 0.5, 2.0)[0])
    assert weighted == pytest.approx(0.5 * expected_encoder + 2.0 * expected_decoder, rel=1e-5)


def test_masked_lm_loss_hand_case():
    logits = np.log(np.array([[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]], "float32"))
    assert float(masked_lm_loss(np.array([[1, 0]]), logits)) == pytest.approx(-np.log(0.25), rel=1e-6)
    assert float(masked_lm_loss(np.array([[0, 0]]), logits)) == 0.0  # nothing labelled


def test_training_model_trains_every_weight_and_rejects_a_keras_model():
    retromae = tiny()
    trainer = retromae_training_model(retromae)
    assert {v.path for v in trainer.trainable_weights} == {v.path for v in retromae.model.trainable_weights}
    with pytest.raises(TypeError, match="build_retromae_model\\(..., return_keras_model=False\\)"):
        retromae_training_model(retromae.model)


def test_saved_encoder_reloads_with_the_same_cls_vectors(tmp_path, checkpoint):
    folder, w = checkpoint
    retromae = build_retromae_model(str(folder / "bert_config.json"), str(folder), return_keras_model=False)
    # Loading from a checkpoint gives the encoder the checkpoint's weights.
    np.testing.assert_array_equal(np.asarray(retromae.encoder.token_embedding.embeddings),
                                  w["bert/embeddings/word_embeddings"])
    inputs, _ = fixed_batch()
    retromae.save_encoder(str(tmp_path / "bert_model.ckpt"))
    reloaded = build_transformer_model(str(tmp_path / "bert_config.json"), str(tmp_path))
    inside = np.asarray(retromae.model(inputs, training=False)[0])
    np.testing.assert_allclose(np.asarray(reloaded(inputs[:2], training=False))[:, 0], inside, atol=1e-6)
