"""Sequence helpers with no TensorFlow: padding, truncation, text segmentation (bert4keras semantics).

Example:
    >>> from bert4sim.sequences import sequence_padding
    >>> sequence_padding([[1, 2, 3], [4]]).tolist()
    [[1, 2, 3], [4, 0, 0]]
"""
import numpy as np


def sequence_padding(inputs, length=None, value=0, seq_dims=1, mode="post"):
    """Pad (or cut) a list of sequences to one length; returns a numpy array.

    ``length`` defaults to the longest; ``mode`` is ``'post'`` or ``'pre'``;
    ``seq_dims`` pads that many leading dimensions.

    Example:
        >>> sequence_padding([[1, 2, 3], [4]])
        array([[1, 2, 3],
               [4, 0, 0]])
    """
    if len(inputs) == 0:
        raise ValueError("sequence_padding needs at least one sequence")
    if length is None:
        length = np.max([np.shape(x)[:seq_dims] for x in inputs], axis=0)
    elif not hasattr(length, "__getitem__"):
        length = [length]
    if mode not in ("post", "pre"):
        raise ValueError(f'mode must be "post" or "pre", got {mode!r}')
    slices = tuple(np.s_[: length[i]] for i in range(seq_dims))
    slices = slices if len(slices) > 1 else slices[0]
    outputs = []
    for x in inputs:
        x = np.asarray(x)[slices]
        pad_width = [(0, 0)] * np.ndim(x)
        for i in range(seq_dims):
            missing = length[i] - np.shape(x)[i]
            pad_width[i] = (0, missing) if mode == "post" else (missing, 0)
        outputs.append(np.pad(x, pad_width, "constant", constant_values=value))
    return np.array(outputs)


def truncate_sequences(maxlen, indices, *sequences):
    """Shorten lists in place until their total length is at most ``maxlen``.

    Each round pops from the currently longest list (the first on ties), at
    position ``indices`` (one index for all, or one per list); bert4keras
    uses ``-2`` to keep a final ``[SEP]``. Empty / None lists are ignored.

    Example:
        >>> a, b = [1, 2, 3, 9], [4, 5, 9]
        >>> truncate_sequences(5, -2, a, b)
        [[1, 9], [4, 5, 9]]
    """
    sequences = [s for s in sequences if s]
    if not isinstance(indices, (list, tuple)):
        indices = [indices] * len(sequences)
    while True:
        lengths = [len(s) for s in sequences]
        if sum(lengths) <= maxlen:
            return sequences
        i = int(np.argmax(lengths))
        sequences[i].pop(indices[i])


def text_segmentate(text, maxlen, seps="\n", strips=None):
    """Split ``text`` recursively at ``seps`` (in order) into pieces of at most ``maxlen`` chars.

    ``strips`` are characters removed from both ends of each piece.

    Example:
        >>> text_segmentate("你好。今天天气不错，出去走走吧。", 8, "。，")
        ['你好。', '今天天气不错，', '出去走走吧。']
    """
    text = text.strip().strip(strips)
    if not seps or len(text) <= maxlen:
        return [text]
    separator, finer = seps[0], seps[1:]
    pieces = text.split(separator)
    result, buffer = [], ""
    for index, piece in enumerate(pieces):
        if buffer and piece and len(buffer) + len(piece) > maxlen - 1:
            result += text_segmentate(buffer, maxlen, finer, strips)
            buffer = ""
        buffer += piece if index == len(pieces) - 1 else piece + separator
    if buffer:
        result += text_segmentate(buffer, maxlen, finer, strips)
    return result

