"""Character classes of BERT tokenization: CJK characters, punctuation, spaces, controls, special tokens.

The rules bert4keras's (and Google BERT's) tokenizer splits and drops
characters by, cached per character, and ``lowercase_and_normalize``.
Pure Python; :mod:`bert4sim.tokenizers` re-exports these names.

Example:
    >>> is_cjk_character("中"), is_punctuation("，"), has_content("\u200b ")
    (True, True, False)
"""
import unicodedata


def is_cjk_character(ch):
    """True for CJK unified ideographs (and their extensions / compatibility blocks).

    Example:
        >>> is_cjk_character("中"), is_cjk_character("a")
        (True, False)
    """
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F
        or 0x2B740 <= code <= 0x2B81F
        or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def is_punctuation(ch):
    """True for ASCII symbols/punctuation and every Unicode ``P*`` character.

    Example:
        >>> is_punctuation("，"), is_punctuation("$"), is_punctuation("a")
        (True, True, False)
    """
    code = ord(ch)
    return (
        33 <= code <= 47
        or 58 <= code <= 64
        or 91 <= code <= 96
        or 123 <= code <= 126
        or unicodedata.category(ch).startswith("P")
    )


def is_space(ch):
    """Whitespace as BERT sees it: space, \\n, \\r, \\t and category Zs."""
    return ch in " \n\r\t" or unicodedata.category(ch) == "Zs"


def is_control(ch):
    """Control / format characters (Cc, Cf), which the tokenizer drops."""
    return unicodedata.category(ch) in ("Cc", "Cf")


def is_special(token):
    """``[XXX]`` tokens such as ``[CLS]``, which decode() leaves out."""
    return bool(token) and token[0] == "[" and token[-1] == "]"


def stem(token):
    """The token without its ``##`` continuation prefix."""
    return token[2:] if token[:2] == "##" else token


def is_redundant(token):
    """A token the tokenizer can never produce (multi-char containing CJK or punctuation)."""
    return len(token) > 1 and any(is_cjk_character(c) or is_punctuation(c) for c in stem(token))


def lowercase_and_normalize(text):
    """Lowercase, NFD-decompose and drop combining marks (accents).

    Example:
        >>> lowercase_and_normalize("Héllo")
        'hello'
    """
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(ch for ch in text if unicodedata.category(ch) != "Mn")


# Character classes for the scanner; cached because corpora repeat characters.
_SPLIT, _SPACE, _DROP, _KEEP = 0, 1, 2, 3
_CHAR_CLASS = {}


def _char_class(ch):
    kind = _CHAR_CLASS.get(ch)
    if kind is None:
        if is_punctuation(ch) or is_cjk_character(ch):
            kind = _SPLIT
        elif is_space(ch):
            kind = _SPACE
        elif ord(ch) == 0 or ord(ch) == 0xFFFD or is_control(ch):
            kind = _DROP
        elif ch.isspace():  # e.g. U+2028: not BERT whitespace, but str.split() splits there
            kind = _SPACE
        else:
            kind = _KEEP
        _CHAR_CLASS[ch] = kind
    return kind


def has_content(text):
    """True when ``text`` holds a character the tokenizer keeps that is not a combining mark.

    Spaces, control and zero-width characters are dropped by the tokenizer; combining marks
    (accents, categories M*) alone have no base character and lower-casing drops them, so a
    text made only of those is empty everywhere in bert4sim.

    Example:
        >>> has_content("\u200b\u200d \t"), has_content("\u0301\u0302"), has_content("你好")
        (False, False, True)
    """
    return any(_char_class(ch) in (_SPLIT, _KEEP) and unicodedata.category(ch)[0] != "M" for ch in text)
