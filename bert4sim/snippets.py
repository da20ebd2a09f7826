"""bert4keras-compatible helpers: padding, truncation, batching, text splitting."""
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


class DataGenerator:
    """bert4keras's batch generator base: subclass and write ``__iter__``.

    ``self.sample(random)`` yields ``(is_end, item)``; ``forfit()`` loops
    forever (for ``fit``); ``steps`` is the number of batches per epoch when
    the data has a length.

    Example:
        >>> class Batches(DataGenerator):
        ...     def __iter__(self, random=False):
        ...         batch = []
        ...         for is_end, item in self.sample(random):
        ...             batch.append(item)
        ...             if len(batch) == self.batch_size or is_end:
        ...                 yield np.array(batch); batch = []
    """

    def __init__(self, data, batch_size=32, buffer_size=None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.data = data
        self.batch_size = batch_size
        if hasattr(data, "__len__"):
            self.steps = len(data) // batch_size + int(len(data) % batch_size != 0)
        else:
            self.steps = None
        self.buffer_size = buffer_size or batch_size * 1000

    def __len__(self):
        return self.steps

    def sample(self, random=False):
        """Yield ``(is_end, item)``; shuffled (fully, or through a buffer) when ``random``."""
        if random:
            if self.steps is None:
                def generator():
                    caches, is_full = [], False
                    for item in self.data:
                        caches.append(item)
                        if is_full:
                            yield caches.pop(np.random.randint(len(caches)))
                        elif len(caches) == self.buffer_size:
                            is_full = True
                    while caches:
                        yield caches.pop(np.random.randint(len(caches)))
            else:
                def generator():
                    for i in np.random.permutation(len(self.data)):
                        yield self.data[i]
            data = generator()
        else:
            data = iter(self.data)
        current = next(data, _END)
        if current is _END:
            return
        for following in data:
            yield False, current
            current = following
        yield True, current

    def __iter__(self, random=False):
        raise NotImplementedError("subclasses of DataGenerator implement __iter__")

    def forfit(self, random=True):
        """Endless batches for ``model.fit(generator.forfit(), steps_per_epoch=len(generator))``."""
        while True:
            for batch in self.__iter__(random):
                yield batch


_END = object()  # sentinel for DataGenerator's look-ahead over a plain iterator

# ---- end of the data helpers; AutoRegressiveDecoder (adapter over generation.py) goes below ----


def __getattr__(name):
    # bert4keras kept AutoRegressiveDecoder in snippets; it lives in generation.py here.
    if name == "AutoRegressiveDecoder":
        from bert4sim.generation import AutoRegressiveDecoder

        return AutoRegressiveDecoder
    raise AttributeError(f"module 'bert4sim.snippets' has no attribute {name!r}")
