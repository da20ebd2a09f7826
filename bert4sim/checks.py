"""Argument checks shared by the public API: each error names the argument and the value it got.

Example:
    >>> from bert4sim.checks import check_int, check_texts
    >>> check_int(5, "topn", minimum=1)
    5
    >>> check_texts(["你好", "再见"])
    ['你好', '再见']
"""
import numbers

import numpy as np

from bert4sim.tokenizers import has_content


def check_int(value, name, minimum=None, allow_none=False):
    """``value`` as an int, or a ``TypeError`` / ``ValueError`` naming ``name``.

    Example:
        >>> check_int(5, "topn", minimum=1)
        5
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def check_seed(name, value):
    """Raise unless ``value`` is a non-negative integer (a seed or a step index).

    Example:
        >>> check_seed("seed", 0)
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def check_text(text, name="text"):
    """``text`` if it is a string with content, else a ``TypeError`` / ``ValueError`` naming ``name``.

    Control and zero-width characters do not count as content.

    Example:
        >>> check_text("你好")
        '你好'
    """
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    if not has_content(text):
        raise ValueError(f"{name} is empty or whitespace only (control and zero-width characters count as empty)")
    return text


def check_texts(texts, name="texts"):
    """``texts`` as a list of strings with content; errors name the first bad entry.

    Example:
        >>> check_texts(("a", "b"))
        ['a', 'b']
    """
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__iter__"):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] is {type(text).__name__}, not str")
        if not has_content(text):
            raise ValueError(f"{name}[{i}] is empty or whitespace only (control and zero-width characters "
                             "count as empty)")
    return texts
