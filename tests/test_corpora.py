"""Corpus readers of bert4sim.corpora on small inline samples (no network)."""
import numpy as np
import pytest

from bert4sim.corpora import (char_vocab, cut_words, disjoint_split, group_articles, half_width, inverse_cloze,
                              merge_groups, parse_cilin, parse_tagged_line, read_labelled_lines, review_sentences,
                              strip_tags, synonym_rewrite, synonym_table, tagged_sentences)
from bert4sim.tokenizers import Tokenizer

PEOPLES_DAILY = [
    "迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  ——/w  一九九八年/t  新年/t  讲话/n  （/w  附/v  图片/n  １/m  张/q  ）/w",
    "１２月/t  ３１日/t  ，/w  [中央/n  电视台/n]nt  播出/v  讲话/n  。/w  他/r  说/v  ：/w  “/w  好/a  ！/w  ”/w  我们/r  走/v  。/w",
]
CILIN = [
    "Aa01A02= 人类 生人 全人类",
    "Aa01A05= 匹夫 个人",
    "Aa01A06# 家伙 东西",
    "Di23A05@ 省人大",
    "Ka01A01= 提高 增强 人类",
]


def test_strip_tags_removes_tags_and_phrase_brackets_and_halves_digits():
    assert strip_tags(PEOPLES_DAILY[0]) == "迈向充满希望的新世纪——一九九八年新年讲话（附图片1张）"
    assert strip_tags(PEOPLES_DAILY[1]).startswith("12月31日，中央电视台播出讲话。")
    assert parse_tagged_line("[中央/n  电视台/n]nt  播出/v") == ["中央", "电视台", "播出"]


def test_tagged_line_errors_name_where_and_token():
    with pytest.raises(ValueError, match=r"199801.txt:7: token '播出' is not word/TAG"):
        parse_tagged_line("讲话/n  播出", where="199801.txt:7")


def test_tagged_sentences_cut_at_sentence_ends_keeping_closing_quotes():
    sentences = tagged_sentences(PEOPLES_DAILY[1])
    assert ["".join(s) for s in sentences] == ["12月31日，中央电视台播出讲话。", "他说：“好！”", "我们走。"]
    assert sentences[0][:2] == ["12月", "31日"]
    assert tagged_sentences("今天/t  下雨/v") == [["今天", "下雨"]]
    assert cut_words(["今天", "，", "下雨", "。"], separators="，。") == [["今天", "，"], ["下雨", "。"]]


def test_review_sentences_split_and_drop_short_ones():
    review = "房间很干净，位置也方便。服务一般！好\n早餐种类太少了;下次不来"
    assert review_sentences(review, min_chars=4) == ["房间很干净，位置也方便。", "服务一般！", "早餐种类太少了;", "下次不来"]
    assert review_sentences(review, min_chars=6) == ["房间很干净，位置也方便。", "早餐种类太少了;"]
    assert review_sentences("ＡＢＣ手机不错。", min_chars=1) == ["ABC手机不错。"]
    assert review_sentences(review, min_chars=4, max_chars=6) == ["服务一般！", "下次不来"]


def test_read_labelled_lines_skips_blank_lines():
    assert read_labelled_lines(["好书\n", "  \n", "值得一读\n"], 0) == [("好书", 0), ("值得一读", 0)]


def test_parse_cilin_keeps_synonym_groups_only():
    groups = parse_cilin(CILIN)
    assert groups == [("Aa01A02=", ["人类", "生人", "全人类"]), ("Aa01A05=", ["匹夫", "个人"]),
                      ("Ka01A01=", ["提高", "增强", "人类"])]
    assert [code for code, _ in parse_cilin(CILIN, kinds="#")] == ["Aa01A06#"]
    assert parse_cilin(["Aa01A01= 人 人"]) == []  # one distinct word is no group


def test_parse_cilin_error_names_line():
    with pytest.raises(ValueError, match=r"cilin.txt:2: 'Aa01' is not a Cilin code"):
        parse_cilin(["Aa01A05= 匹夫 个人", "Aa01 人 士"], where="cilin.txt")


def test_merge_groups_unions_members_by_code():
    merged = merge_groups(parse_cilin(CILIN[:2]), [("Aa01A05=", ["匹夫", "个体"]), ("Zz99Z99=", ["甲", "乙"])])
    assert merged == [("Aa01A02=", ["人类", "生人", "全人类"]), ("Aa01A05=", ["匹夫", "个人", "个体"]),
                      ("Zz99Z99=", ["甲", "乙"])]


def test_synonym_table_joins_groups_and_skips_single_characters():
    table = synonym_table([words for _, words in parse_cilin(CILIN)] + [["人", "士"]])
    assert table["人类"] == ["生人", "全人类", "提高", "增强"]
    assert "人" not in table and "士" not in table
    assert "人类" not in table["人类"]


def test_synonym_rewrite_swaps_rate_of_swappable_words():
    table = {"提高": ["增强"], "人类": ["全人类"], "未来": ["将来"]}
    words = ["提高", "人类", "的", "未来", "水平"]
    text, replaced = synonym_rewrite(words, table, np.random.default_rng(0), rate=1.0)
    assert (text, replaced) == ("增强全人类的将来水平", 3)
    text, replaced = synonym_rewrite(words, table, np.random.default_rng(0), rate=0.3)
    assert replaced == 1 and text != "".join(words) and len(text) >= len("".join(words))
    assert synonym_rewrite(["的", "水平"], table, np.random.default_rng(0)) == ("的水平", 0)


def test_disjoint_split_has_no_shared_key_and_drops_duplicates():
    items = [(f"评论{i % 50}", i % 2) for i in range(100)]  # every text twice
    train, test = disjoint_split(items, 0.2, seed=3, key=lambda r: r[0])
    assert len(train) + len(test) == 50 and len(test) == 10
    assert not {t for t, _ in train} & {t for t, _ in test}
    assert disjoint_split(items, 0.2, seed=3, key=lambda r: r[0]) == (train, test)  # seeded
    with pytest.raises(ValueError, match="leaves no train"):
        disjoint_split(["a", "a"], 1)


def test_char_vocab_tokenizes_corpus_without_unknowns():
    texts = ["１９９８年新年讲话。", "手机ABC不错"]
    vocab = char_vocab([half_width(t) for t in texts])
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and len(set(vocab)) == len(vocab)
    tokenizer = Tokenizer({t: i for i, t in enumerate(vocab)}, do_lower_case=True)
    ids = tokenizer.encode("1998年手机abc不错")[0]
    assert 1 not in ids  # no [UNK]
    assert char_vocab(texts, min_count=2)[5:] == ["年", "９"]  # full-width digit: no ## piece
    assert len(char_vocab(texts, max_size=7)) == 7


def test_group_articles_splits_at_headlines_bylines_and_captions():
    lines = ["北京举行新年音乐会", "江泽民等出席（附图片1张）", "音乐会今晚举行。", "同胞们、朋友们：", None,
             "他说：“祝大家新年好！”", "（新华社记者樊如钧摄）", "本报讯记者报道：会议开幕。", "李鹏在北京考察企业",
             "向职工祝贺新年", "  今天是最后一天。  "]
    assert group_articles(lines) == [["音乐会今晚举行。", "同胞们、朋友们：", "他说：“祝大家新年好！”"],
                                     ["本报讯记者报道：会议开幕。"], ["今天是最后一天。"]]
    assert group_articles(["标题", None, "标题二"]) == []
    assert group_articles(["甲。", "乙"], body_ends="乙") == [["乙"]]


def test_inverse_cloze_takes_out_one_long_enough_sentence():
    sentences = ["短。", "第二句足够长了。", "第三句也足够长。", "尾。"]
    drawn = {inverse_cloze(sentences, np.random.default_rng(seed), min_chars=6) for seed in range(40)}
    assert drawn == {("第二句足够长了。", "短。第三句也足够长。尾。"), ("第三句也足够长。", "短。第二句足够长了。尾。")}
    assert inverse_cloze(["只有一句话而已。"], np.random.default_rng(0)) is None
    assert inverse_cloze(["短。", "也短。"], np.random.default_rng(0), min_chars=6) is None
