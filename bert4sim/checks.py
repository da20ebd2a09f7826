"""Argument checks shared by the public API: each error names the argument and the value it got.

The same checks read the fields of saved folders and config files (:func:`read_fields`), so a
value a user passes and a value a file holds are held to one rule.

Example:
    >>> from bert4sim.checks import check_int, check_texts
    >>> check_int(5, "topn", minimum=1)
    5
    >>> check_texts(["你好", "再见"])
    ['你好', '再见']
"""
import dataclasses
import math
import numbers

import numpy as np

from bert4sim.tokenizers import has_content


def _shown(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _range_error(name, value, minimum, maximum):
    if minimum is not None and maximum is not None:
        return ValueError(f"{name} must be between {minimum} and {maximum}, got {_shown(value)}")
    if minimum is not None:
        return ValueError(f"{name} must be at least {minimum}, got {_shown(value)}")
    return ValueError(f"{name} must be at most {maximum}, got {_shown(value)}")


def check_int(value, name, minimum=None, allow_none=False, maximum=None):
    """``value`` as an int, or a ``TypeError`` / ``ValueError`` naming ``name``.

    Booleans and floats are refused (``2.0`` is not a count); numpy integers are fine.

    Example:
        >>> check_int(5, "topn", minimum=1)
        5
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {_shown(value)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise _range_error(name, value, minimum, maximum)
    return int(value)


def check_number(value, name, minimum=None, maximum=None, allow_none=False, above=None, below=None):
    """``value`` as a finite float in ``[minimum, maximum]`` (and ``> above``, ``< below``), else an error naming ``name``.

    NaN and infinities are refused, as are strings such as ``"0.1"`` and booleans.

    Example:
        >>> check_number(0.1, "hidden_dropout_prob", minimum=0, maximum=1)
        0.1
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        raise _range_error(name, value, minimum, maximum) from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number}")
    if above is not None and not number > above:
        raise ValueError(f"{name} must be greater than {above}, got {_shown(value)}")
    if below is not None and not number < below:
        raise ValueError(f"{name} must be less than {below}, got {_shown(value)}")
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise _range_error(name, value, minimum, maximum)
    return number


def check_bool(value, name):
    """``value`` if it is a bool (numpy's too); ``"false"``, ``0`` or ``None`` are refused, not guessed.

    Example:
        >>> check_bool(True, "normalize")
        True
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {_shown(value)}")
    return bool(value)


def check_choice(value, name, choices, allow_none=False):
    """``value`` if it is one of ``choices``, else a ``ValueError`` listing them.

    Example:
        >>> check_choice("mean", "pooling", ("cls", "mean", "max"))
        'mean'
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or value not in choices:
        shown = ", ".join(repr(choice) for choice in choices)
        raise ValueError(f"{name} must be one of {shown}, got {type(value).__name__} {_shown(value)}")
    return value


def check_seed(name, value):
    """Raise unless ``value`` is a non-negative integer (a seed or a step index).

    Example:
        >>> check_seed("seed", 0)
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {_shown(value)}")


def _check_string(text, name):
    if isinstance(text, np.str_):
        text = str(text)
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate: no file or JSON encoder could write it
        raise ValueError(f"{name} holds a lone surrogate {text[error.start]!r} at character {error.start}: "
                         "not valid Unicode text") from None
    if not has_content(text):
        raise ValueError(f"{name} is empty or whitespace only (control, zero-width and combining characters "
                         "alone count as empty)")
    return text


def check_text(text, name="text"):
    """``text`` if it is a string with content, else a ``TypeError`` / ``ValueError`` naming ``name``.

    Control and zero-width characters and combining marks alone do not count as content (the
    tokenizer keeps nothing of them); a lone surrogate is refused.

    Example:
        >>> check_text("你好")
        '你好'
    """
    return _check_string(text, name)


def check_texts(texts, name="texts"):
    """``texts`` as a list of strings with content; errors name the first bad entry.

    A one-dimensional numpy array of strings is fine; a single string is not a list.

    Example:
        >>> check_texts(("a", "b"))
        ['a', 'b']
    """
    if isinstance(texts, np.ndarray) and texts.ndim != 1:
        raise TypeError(f"{name} must be a list of strings, got a {texts.ndim}-dimensional array")
    if isinstance(texts, (str, bytes, dict)) or not hasattr(texts, "__iter__"):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    return [_check_string(text, f"{name}[{i}]") for i, text in enumerate(texts)]


def check_vectors(vectors, name, dim=None):
    """``vectors`` as a float32 ``(n, dim)`` array of finite rows with a direction (not all zero).

    Example:
        >>> check_vectors([[3.0, 4.0]], "queries", dim=2).shape
        (1, 2)
    """
    try:
        array = np.asarray(vectors)
    except ValueError as error:  # ragged rows
        raise ValueError(f"{name} is not a rectangular array ({error})") from None
    if array.dtype.kind not in "iuf" or array.dtype == np.bool_:
        raise TypeError(f"{name} must hold numbers, got an array of {array.dtype}")
    array = np.atleast_2d(array.astype("float32", copy=False))
    if array.ndim != 2 or (dim is not None and array.shape[1] != dim) or array.shape[0] == 0:
        want = f"(n, {dim})" if dim is not None else "(n, dim)"
        raise ValueError(f"{name} must have shape {want} with n >= 1, got {array.shape}")
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        raise ValueError(f"{name} row {int(np.argmin(finite))} holds NaN or infinity")
    zero = ~array.any(axis=1)
    if zero.any():
        raise ValueError(f"{name} row {int(np.argmax(zero))} is all zeros: it has no direction")
    return array


def physical_memory():
    """This machine's physical memory in bytes, or None where the system does not say.

    Sizes are checked against it before anything is allocated (a config or an argument that would
    need more is one clear error, not seconds of allocating and an out-of-memory error).

    Example:
        >>> physical_memory() > 0
        True
    """
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


# -- saved folders and config files --------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Field:
    """What one key of a saved file may hold (see :func:`read_fields`).

    ``kind``: ``"int"``, ``"number"``, ``"bool"``, ``"str"`` or ``"choice"`` (one of ``choices``).

    Example:
        >>> Field("int", minimum=1, required=True)
    """

    kind: str
    minimum: float = None
    maximum: float = None
    above: float = None  # "number" only: exclusive bounds
    below: float = None
    choices: tuple = ()
    required: bool = False
    allow_none: bool = False
    default: object = None


def read_fields(data, schema, where, error=ValueError):
    """Check ``data``'s keys against ``schema`` (``{key: Field}``); defaults fill absent optional keys.

    Keys ``schema`` does not name are kept as they are. A missing required key or a bad
    value raises ``error`` naming ``where`` (the file) and the key; a value of the wrong
    type is an ``error`` too (a file holds what it holds: not the caller's ``TypeError``).

    Example:
        >>> read_fields({"maxlen": 32}, {"maxlen": Field("int", minimum=2, required=True)}, "meta.json")
        {'maxlen': 32}
    """
    if not isinstance(data, dict):
        raise error(f"{where} must hold a JSON object, got {type(data).__name__}")
    missing = [key for key, field in schema.items() if field.required and key not in data]
    if missing:
        raise error(f"{where} lacks required key(s): {', '.join(missing)}")
    checked = dict(data)
    for key, field in schema.items():
        if key not in data:
            if field.default is not None:
                checked[key] = field.default
            continue
        value, name = data[key], f"{where}: {key}"
        if value is None and field.allow_none:
            continue
        try:
            if field.kind == "int":
                checked[key] = check_int(value, name, field.minimum, maximum=field.maximum)
            elif field.kind == "number":
                checked[key] = check_number(value, name, field.minimum, field.maximum, above=field.above,
                                            below=field.below)
            elif field.kind == "bool":
                checked[key] = check_bool(value, name)
            elif field.kind == "choice":
                checked[key] = check_choice(value, name, field.choices)
            elif not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {type(value).__name__} {_shown(value)}")
        except (TypeError, ValueError) as problem:
            raise error(str(problem)) from None
    return checked
