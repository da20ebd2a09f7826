"""BERT WordPiece tokenizer with bert4keras semantics (ids identical to bert4keras).

Pure Python, no TensorFlow. Character classes are cached per character, so
long corpora tokenize faster than bert4keras's character-by-character
string building while giving the same tokens.
"""
import numbers
import os
import re
from collections import Counter

from bert4sim import unprovided
from bert4sim.characters import (_DROP, _KEEP, _SPACE, _SPLIT, _char_class, has_content,  # noqa: F401
                                 is_cjk_character, is_control, is_punctuation, is_redundant, is_space, is_special,
                                 lowercase_and_normalize, stem)
from bert4sim.files import read_lines
from bert4sim.sequences import truncate_sequences

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
REQUIRED_TOKENS = ("[CLS]", "[SEP]", "[UNK]")

# Full-width and CJK punctuation after which decode() puts no space.
CJK_PUNCTUATION = (
    "\uff02\uff03\uff04\uff05\uff06\uff07\uff08\uff09\uff0a\uff0b\uff0c\uff0d\uff0f\uff1a"
    "\uff1b\uff1c\uff1d\uff1e\uff20\uff3b\uff3c\uff3d\uff3e\uff3f\uff40\uff5b\uff5c\uff5d"
    "\uff5e\uff5f\uff60\uff62\uff63\uff64\u3000\u3001\u3003\u3008\u3009\u300a\u300b\u300c"
    "\u300d\u300e\u300f\u3010\u3011\u3014\u3015\u3016\u3017\u3018\u3019\u301a\u301b\u301c"
    "\u301d\u301e\u301f\u3030\u303e\u303f\u2013\u2014\u2018\u2019\u201b\u201c\u201d\u201e"
    "\u201f\u2026\u2027\ufe4f\ufe51\ufe54\u00b7\uff01\uff1f\uff61\u3002"
)
_NO_SPACE_AFTER = re.compile("(%s) " % "|".join(re.escape(p) for p in CJK_PUNCTUATION + "+-/={(<["))


def load_vocab(dict_path, encoding="utf-8", simplified=False, startswith=None):
    """Read a BERT ``vocab.txt`` into ``{token: id}`` (ids by line order).

    With ``simplified=True``, tokens the tokenizer can never produce are
    dropped and ``(token_dict, keep_tokens)`` is returned, ``keep_tokens``
    being the original ids of the kept tokens (pass it to
    ``build_transformer_model(keep_tokens=...)``); ``startswith`` tokens come
    first, in the given order.

    Example:
        >>> token_dict, keep_tokens = load_vocab("vocab.txt", simplified=True,
        ...     startswith=["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    """
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig"):
        lines = read_lines(dict_path, "vocab file")  # a UTF-8 BOM is dropped, not read into [PAD]
    else:
        if not os.path.isfile(dict_path):
            raise FileNotFoundError(f"vocab file not found: {dict_path}")
        with open(dict_path, encoding=encoding) as reader:
            lines = reader.read().splitlines()
    token_dict = {}
    for line_number, line in enumerate(lines, 1):
        fields = line.split()
        token = fields[0] if fields else line.strip()
        if not token:
            raise ValueError(f"{dict_path}:{line_number}: empty line (a vocab holds one token a line)")
        if token in token_dict:
            raise ValueError(
                f"{dict_path}:{line_number}: duplicate token {token!r} "
                f"(first on line {token_dict[token] + 1})"
            )
        token_dict[token] = len(token_dict)
    if not token_dict:
        raise ValueError(f"vocab file {dict_path} is empty")
    if not simplified:
        return token_dict
    new_dict, keep_tokens = {}, []
    for token in startswith or []:
        if token not in token_dict:
            raise ValueError(f"startswith token {token!r} is not in vocab {dict_path}")
        new_dict[token] = len(new_dict)
        keep_tokens.append(token_dict[token])
    for token, index in token_dict.items():
        if token not in new_dict and not is_redundant(token):
            new_dict[token] = len(new_dict)
            keep_tokens.append(index)
    return new_dict, keep_tokens


def check_token_dict(token_dict, name="vocab"):
    """Raise unless ``token_dict`` is a ``{token: id}`` dict whose ids are exactly 0 .. n-1 (a vocab.txt's lines).

    Example:
        >>> check_token_dict({"[PAD]": 0, "[UNK]": 1})
    """
    if not isinstance(token_dict, dict):
        raise TypeError(f"{name} must be a {{token: id}} dict, got {type(token_dict).__name__}")
    for token, index in token_dict.items():
        if not isinstance(token, str) or not token or any(ch in token for ch in "\r\n"):
            raise ValueError(f"{name}: token {token!r} is not a one-line non-empty string")
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise ValueError(f"{name}: id of {token!r} is {type(index).__name__} {index!r}, not an integer")
    if sorted(token_dict.values()) != list(range(len(token_dict))):
        raise ValueError(f"{name}: ids must be 0 .. {len(token_dict) - 1}, each once (one per vocab.txt line)")


def save_vocab(dict_path, token_dict, encoding="utf-8"):
    """Write ``{token: id}`` as a vocab.txt, one token a line in id order (ids must be 0 .. n-1).

    Example:
        >>> save_vocab("out/vocab.txt", tokenizer.token_dict)
    """
    check_token_dict(token_dict)
    with open(dict_path, "w", encoding=encoding) as writer:
        for token, _ in sorted(token_dict.items(), key=lambda item: item[1]):
            writer.write(token + "\n")


class TokenizerBase:
    """bert4keras's tokenizer base: framing, ``encode`` and ids over a subclass's ``_tokenize`` / ``token_to_id``.

    A subclass supplies ``_tokenize(text)`` (text to tokens),
    ``token_to_id`` / ``id_to_token`` and ``decode``; this class adds
    ``token_start`` / ``token_end`` around the tokens, ``token_translate``
    (a mapping applied after tokenizing), ``tokenize(text, maxlen)`` and
    ``encode(first, second, maxlen, pattern, truncate_from)``.

    Example:
        >>> class Characters(TokenizerBase):
        ...     def _tokenize(self, text): return list(text)
        ...     def token_to_id(self, token): return ord(token[0])
    """

    def __init__(self, token_start="[CLS]", token_end="[SEP]", pre_tokenize=None, token_translate=None):
        self._token_pad, self._token_unk, self._token_mask = "[PAD]", "[UNK]", "[MASK]"
        self._token_start, self._token_end = token_start, token_end
        self._pre_tokenize = pre_tokenize
        self._token_translate = token_translate or {}
        self._token_translate_inv = {v: k for k, v in self._token_translate.items()}

    def _tokenize(self, text):
        raise NotImplementedError(f"{type(self).__name__} must implement _tokenize(text)")

    def _tokenize_head(self, text, limit):
        return self._tokenize(text)

    def token_to_id(self, token):
        """The id of ``token`` (a subclass defines it).

        Example:
            >>> tokenizer.token_to_id("[CLS]")
        """
        raise NotImplementedError(f"{type(self).__name__} must implement token_to_id(token)")

    def id_to_token(self, index):
        """The token of id ``index`` (a subclass defines it).

        Example:
            >>> tokenizer.id_to_token(2)
        """
        raise NotImplementedError(f"{type(self).__name__} must implement id_to_token(index)")

    def decode(self, ids):
        """Readable text of ``ids`` (a subclass defines it).

        Example:
            >>> tokenizer.decode(token_ids)
        """
        raise NotImplementedError(f"{type(self).__name__} must implement decode(ids)")

    def tokens_to_ids(self, tokens):
        """:meth:`token_to_id` of each token.

        Example:
            >>> tokenizer.tokens_to_ids(["[CLS]", "你", "[SEP]"])
        """
        return [self.token_to_id(token) for token in tokens]

    def ids_to_tokens(self, ids):
        """Tokens of a sequence of integer ids (a list, tuple or 1-D integer array).

        Example:
            >>> tokenizer.ids_to_tokens([2, 872, 3])
        """
        if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__") or getattr(ids, "ndim", 1) != 1:
            shape = f" of shape {ids.shape}" if hasattr(ids, "shape") else ""
            raise TypeError(f"ids must be a sequence of integer token ids, got {type(ids).__name__}{shape}")
        tokens = []
        for i, index in enumerate(ids):
            if isinstance(index, bool) or not isinstance(index, numbers.Integral):
                raise TypeError(f"ids[{i}] must be an integer token id, got {type(index).__name__} {index!r}")
            tokens.append(self.id_to_token(int(index)))
        return tokens

    def tokenize(self, text, maxlen=None):
        """``[CLS] tokens [SEP]``, truncated from the end (keeping ``[SEP]``) to ``maxlen``.

        Example:
            >>> tokenizer.tokenize("你好 world")
            ['[CLS]', '你', '好', 'world', '[SEP]']
        """
        tokens = self._framed_tokens(text, maxlen)
        if maxlen is not None:
            truncate_sequences(maxlen, -(int(self._token_end is not None) + 1), tokens)
        return tokens

    def _framed_tokens(self, text, limit=None):
        """``[CLS] tokens [SEP]`` of the whole text, or of a long text's first ``limit`` or more tokens."""
        tokens = [self._token_translate.get(t) or t for t in self._tokenize_head(text, limit)]
        if self._token_start is not None:
            tokens.insert(0, self._token_start)
        if self._token_end is not None:
            tokens.append(self._token_end)
        return tokens

    def encode(self, first_text, second_text=None, maxlen=None, pattern="S*E*E", truncate_from="right"):
        """``(token_ids, segment_ids)`` for one text or a pair.

        A pair is ``[CLS] first [SEP] second [SEP]`` (``pattern='S*ES*E'``
        keeps the second part's ``[CLS]``) with segment ids 0 then 1. With
        ``maxlen``, tokens are removed from the end of the longer part (the
        first on ties), never the final ``[SEP]`` (``truncate_from='left'``:
        from the start, after ``[CLS]``; an int: at that index), as bert4keras
        does.

        Example:
            >>> tokenizer.encode("今天天气不错", "天气很好", maxlen=8)
        """
        if maxlen is not None and (isinstance(maxlen, bool) or not isinstance(maxlen, numbers.Integral)):
            raise TypeError(f"maxlen must be an integer, got {type(maxlen).__name__}")
        if pattern not in ("S*E*E", "S*ES*E"):
            raise ValueError(f"pattern must be 'S*E*E' or 'S*ES*E', got {pattern!r}")
        first_tokens = self._as_tokens(first_text, "first_text", maxlen)
        second_tokens = None if second_text is None else self._as_tokens(second_text, "second_text", maxlen)
        drop_start = second_tokens is not None and pattern == "S*E*E"
        if maxlen is not None:
            shortest = 2 if second_tokens is None else 3
            if maxlen < shortest:
                raise ValueError(
                    f"maxlen must be at least {shortest} ([CLS], [SEP]"
                    f"{'' if second_tokens is None else ', [SEP]'}), got {maxlen}"
                )
            if truncate_from == "right":
                index = -int(self._token_end is not None) - 1
            elif truncate_from == "left":
                index = int(self._token_start is not None)
            elif isinstance(truncate_from, numbers.Integral) and not isinstance(truncate_from, bool):
                index = int(truncate_from)
            else:
                raise ValueError(f"truncate_from must be 'right', 'left' or an index, got {truncate_from!r}")
            truncate_sequences(maxlen + int(drop_start), index, first_tokens, second_tokens)
        token_ids = self.tokens_to_ids(first_tokens)
        segment_ids = [0] * len(token_ids)
        if second_tokens is not None:
            second_ids = self.tokens_to_ids(second_tokens[int(bool(self._token_start)) if drop_start else 0:])
            token_ids.extend(second_ids)
            segment_ids.extend([1] * len(second_ids))
        return token_ids, segment_ids

    def _as_tokens(self, text, name, maxlen=None):
        if isinstance(text, str):
            return self._framed_tokens(text, maxlen)
        if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
            return list(text)
        raise TypeError(f"{name} must be a str (or a list of tokens), got {type(text).__name__}")


class Tokenizer(TokenizerBase):
    """BERT tokenizer with bert4keras's behaviour and API.

    ``token_dict`` is a vocab path or a ``{token: id}`` dict. With
    ``do_lower_case`` text is lowercased and accents stripped. CJK characters
    and punctuation become tokens of their own, the rest goes through
    WordPiece (``##`` continuations, a word that cannot be matched becomes
    ``[UNK]``). ``pre_tokenize`` (e.g. ``lambda s: jieba.cut(s, HMM=False)``)
    splits the text first; a piece found in the vocab stays whole. A BERT
    vocabulary must hold ``[CLS]``, ``[SEP]`` and ``[UNK]``; a vocabulary
    with none of them (a script's own symbols) is taken as bert4keras takes
    it: the missing tokens' ids are ``_token_unk_id``, None until the
    script sets it.

    Example:
        >>> tokenizer = Tokenizer("vocab.txt", do_lower_case=True)
        >>> token_ids, segment_ids = tokenizer.encode("你好", "hello world", maxlen=32)
        >>> tokenizer.decode(token_ids)
    """

    def __init__(
        self,
        token_dict,
        do_lower_case=False,
        pre_tokenize=None,
        token_start="[CLS]",
        token_end="[SEP]",
        word_maxlen=200,
        token_translate=None,
    ):
        super().__init__(token_start, token_end, pre_tokenize, token_translate)
        if isinstance(token_dict, (str, os.PathLike)):
            token_dict = load_vocab(os.fspath(token_dict))
        if not isinstance(token_dict, dict):
            raise TypeError(f"token_dict must be a vocab path or a dict, got {type(token_dict).__name__}")
        if not isinstance(do_lower_case, bool) and type(do_lower_case).__name__ != "bool_":
            raise TypeError(f"do_lower_case must be True or False, got {type(do_lower_case).__name__} "
                            f"{do_lower_case!r}")
        missing = [t for t in REQUIRED_TOKENS if t not in token_dict]
        own_symbols = len(missing) == len(REQUIRED_TOKENS)  # no BERT specials at all: bert4keras's custom vocabulary
        missing += [t for t in (token_start, token_end) if t and t not in token_dict and t not in missing]
        if missing and not own_symbols:
            raise ValueError(f"vocabulary lacks required special token(s): {', '.join(missing)}")
        if len(set(token_dict.values())) != len(token_dict):
            raise ValueError("vocabulary maps several tokens to the same id")
        self._token_dict = token_dict
        self._token_dict_inv = {index: token for token, index in token_dict.items()}
        self._vocab_size = len(token_dict)
        self._do_lower_case = do_lower_case
        self._word_maxlen = word_maxlen
        for name in ("pad", "unk", "mask", "start", "end"):
            token = getattr(self, f"_token_{name}")
            setattr(self, f"_token_{name}_id", token_dict.get(token))

    # -- vocabulary -------------------------------------------------------------

    @property
    def token_dict(self):
        """The ``{token: id}`` vocabulary."""
        return self._token_dict

    @property
    def vocab_size(self):
        return self._vocab_size

    def token_to_id(self, token):
        """Id of ``token``; ``[UNK]``'s id when it is not in the vocabulary."""
        return self.tokens_to_ids([token])[0]

    def tokens_to_ids(self, tokens):
        ids = [self._token_dict.get(token, self._token_unk_id) for token in tokens]
        if self._token_unk_id is None and None in ids:
            unknown = tokens[ids.index(None)]
            raise KeyError(f"token {unknown!r} is not in the vocabulary, which has no [UNK]: set "
                           f"tokenizer._token_unk_id (bert4keras scripts do), or pass token_start=None / token_end=None")
        return ids

    def id_to_token(self, index):
        """Token of ``index``; raises ``IndexError`` naming the id when out of range."""
        try:
            return self._token_dict_inv[index]
        except KeyError:
            raise IndexError(f"token id {index} is not in the vocabulary (size {self._vocab_size})") from None

    def decode(self, ids, tokens=None):
        """Readable text: no spaces between CJK characters, spaces between words, ``##`` joined.

        Example:
            >>> tokenizer.decode(tokenizer.encode("我爱 NLP 和 deep learning")[0])
            '我爱nlp和deep learning'
        """
        tokens = self.ids_to_tokens(ids) if tokens is None else list(tokens)
        tokens = [token for token in tokens if not is_special(token)]
        text = ""
        for i, token in enumerate(tokens):
            if token[:2] == "##":
                text += token[2:]
            elif len(token) == 1 and is_cjk_character(token):
                text += token
            elif len(token) == 1 and is_punctuation(token):
                text += token + " "
            elif i > 0 and text and is_cjk_character(text[-1]):
                text += token
            else:
                text += " " + token
        text = re.sub(" +", " ", text)
        text = re.sub("' (re|m|s|t|ve|d|ll) ", "'\\1 ", text)
        text = _NO_SPACE_AFTER.sub("\\1", text)
        text = re.sub(r"(\d\.) (\d)", "\\1\\2", text)
        return text.strip()

    def _tokenize_head(self, text, limit):
        """The tokens of ``text``, or when it is long, its first tokens (at least ``limit`` of them).

        The text is tokenized a piece at a time, each piece ending before a
        space or punctuation (where no word continues), so the tokens are those
        of the whole text, and a 1,000,000-character text costs about what
        ``limit`` tokens cost.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        step = max(4 * (limit or 0), 256)
        if limit is None or len(text) <= 2 * step:
            return self._tokenize(text)
        tokens, start = [], 0
        while start < len(text) and len(tokens) < limit:
            end = self._piece_end(text, start + step)
            cut = start + step + self._word_maxlen + 1
            tail = text[start + step : cut]
            if end > cut and self._pre_tokenize is None and tail.isascii() and tail.isalnum():
                # The piece ends in a word longer than word_maxlen, one token however long: tokenize its
                # head only and append the rest of the word to that token as plain text.
                tokens.extend(self._tokenize(text[start:cut]))
                rest = text[cut:end]
                tokens[-1] += rest.lower() if self._do_lower_case else rest
            else:
                tokens.extend(self._tokenize(text[start:end]))
            start = end
        return tokens

    def _piece_end(self, text, position):
        # Pre-tokenizers (jieba) join CJK characters into words, so then only spaces and punctuation end a piece.
        words_only = self._pre_tokenize is None
        index = position
        while index < len(text):
            block = text[index : index + 1024]
            if not (block.isascii() and block.isalnum()):  # an ASCII letter/digit run holds no word end
                for offset, ch in enumerate(block):
                    kind = _char_class(ch)
                    if kind == _SPACE or (kind == _SPLIT and (words_only or is_punctuation(ch))):
                        return index + offset
            index += len(block)
        return len(text)

    def _tokenize(self, text, pre_tokenize=True):
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if self._do_lower_case:
            text = lowercase_and_normalize(text)
        if pre_tokenize and self._pre_tokenize is not None:
            tokens = []
            for piece in self._pre_tokenize(text):
                if piece in self._token_dict:
                    tokens.append(piece)
                else:
                    tokens.extend(self._tokenize(piece, False))
            return tokens
        words, current = [], []
        for ch in text:
            kind = _char_class(ch)
            if kind == _KEEP:
                current.append(ch)
                continue
            if kind == _DROP:  # dropped characters do not split words
                continue
            if current:
                words.append("".join(current))
                current = []
            if kind == _SPLIT:
                words.append(ch)
        if current:
            words.append("".join(current))
        tokens = []
        vocab = self._token_dict
        for word in words:
            if word in vocab:
                tokens.append(word)
            else:
                tokens.extend(self._word_piece_tokenize(word))
        return tokens

    def _word_piece_tokenize(self, word):
        if len(word) > self._word_maxlen:
            return [word]
        vocab, tokens, start = self._token_dict, [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    break
                end -= 1
            if start == end:
                return [word]
            tokens.append(piece)
            start = end
        return tokens

    def rematch(self, text, tokens):
        """For each token, the list of character offsets in ``text`` it came from.

        Special tokens map to ``[]``.

        Example:
            >>> tokens = tokenizer.tokenize("Hello 世界")
            >>> tokenizer.rematch("Hello 世界", tokens)
            [[], [0, 1, 2, 3, 4], [6], [7], []]
        """
        if self._do_lower_case:
            text = text.lower()
        normalized, char_mapping = [], []
        for i, ch in enumerate(text):
            if self._do_lower_case:
                ch = lowercase_and_normalize(ch)
            ch = "".join(c for c in ch if not (ord(c) == 0 or ord(c) == 0xFFFD or is_control(c)))
            normalized.append(ch)
            char_mapping.extend([i] * len(ch))
        normalized = "".join(normalized)
        mapping, offset = [], 0
        for token in tokens:
            if is_special(token):
                mapping.append([])
                continue
            piece = stem(token)
            start = normalized.find(piece, offset)
            if start < 0:
                raise ValueError(f"token {token!r} does not occur in the text after offset {offset}")
            end = start + len(piece)
            mapping.append(char_mapping[start:end])
            offset = end
        return mapping


def build_vocab(corpus, min_count=1, max_size=None, pre_tokenize=None, do_lower_case=True,
                special_tokens=SPECIAL_TOKENS, always_include=""):
    """Build a word + character vocabulary from texts (for word-level models).

    Every character of the corpus is kept (with a ``##`` continuation for
    non-CJK characters), so any text of the corpus tokenizes without
    ``[UNK]``; words produced by
    ``pre_tokenize`` (e.g. jieba) that occur at least ``min_count`` times and
    are longer than one character are added, most frequent first, up to
    ``max_size`` tokens in all. Returns ``{token: id}``.

    Example:
        >>> import jieba
        >>> vocab = build_vocab(texts, pre_tokenize=lambda s: jieba.lcut(s, HMM=False), min_count=2)
        >>> tokenizer = Tokenizer(vocab, pre_tokenize=lambda s: jieba.lcut(s, HMM=False))
    """
    chars, words = Counter(always_include), Counter()
    for text in corpus:
        if do_lower_case:
            text = lowercase_and_normalize(text)
        for ch in text:
            if _char_class(ch) in (_SPLIT, _KEEP):
                chars[ch] += 1
        if pre_tokenize is not None:
            for word in pre_tokenize(text):
                word = word.strip()
                if len(word) > 1 and not any(_char_class(c) != _KEEP and not is_cjk_character(c) for c in word):
                    words[word] += 1
    vocab = {token: i for i, token in enumerate(special_tokens)}
    ranked_chars = [ch for ch, _ in sorted(chars.items(), key=lambda item: (-item[1], item[0]))]
    for ch in ranked_chars:
        vocab.setdefault(ch, len(vocab))
    for ch in ranked_chars:  # WordPiece continuations, so unseen words split into characters
        if _char_class(ch) == _KEEP:
            vocab.setdefault("##" + ch, len(vocab))
    for word, count in sorted(words.items(), key=lambda item: (-item[1], item[0])):
        if count < min_count or (max_size is not None and len(vocab) >= max_size):
            break
        vocab.setdefault(word, len(vocab))
    return vocab


__getattr__ = unprovided.module_getattr("tokenizers")
