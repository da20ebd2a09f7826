"""bert4keras's ``snippets``: padding, truncation, batching, text splitting, ``open``, ``to_array``.

A thin namespace over bert4sim's own modules (``bert4sim.sequences``,
``bert4sim.data``, ``bert4sim.decoder``) plus the few helpers only bert4keras
scripts use. No bert4sim module imports this one.

Example:
    >>> from bert4sim.snippets import sequence_padding, DataGenerator, AutoRegressiveDecoder
"""
import builtins
import types

import numpy as np

from bert4sim.data import batches_to_dataset, samples_to_dataset
from bert4sim.decoder import AutoRegressiveDecoder  # noqa: F401  (bert4keras kept it in snippets)
from bert4sim.sequences import sequence_padding, text_segmentate, truncate_sequences  # noqa: F401

# bert4keras's "from bert4keras.snippets import uniout" printed unicode lists on Python 2; a no-op here.
uniout = types.ModuleType("uniout", "No-op on Python 3 (bert4keras imported it for Python 2 printing).")


def is_string(s):
    """Whether ``s`` is a ``str``.

    Example:
        >>> is_string("文本"), is_string(b"bytes")
        (True, False)
    """
    return isinstance(s, str)


def to_array(*args):
    """Each argument as a numpy array (one argument: the array itself, several: a list).

    Lets ``model.predict(to_array([ids], [segs]))`` feed nested lists.

    Example:
        >>> token_ids, segment_ids = to_array([[2, 5, 3]], [[0, 0, 0]])
    """
    arrays = [np.array(a) for a in args]
    return arrays[0] if len(arrays) == 1 else arrays


def open(name, mode="r", encoding=None, errors="strict", indexable=False):
    """bert4keras's ``open``: the built-in ``open``, or with ``indexable`` a file whose lines can be indexed.

    ``indexable=True`` scans the file once for line offsets; a string path
    stores / reuses those offsets as JSON. Lines keep their newline, as
    ``readline``.

    Example:
        >>> with open("corpus.txt", encoding="utf-8") as f: lines = [l.strip() for l in f]
        >>> open("corpus.txt", encoding="utf-8", indexable=True)[1000]
    """
    if not indexable:
        return builtins.open(name, mode, encoding=encoding, errors=errors)
    return IndexedFile(name, encoding or "utf-8", errors, indexable)


class IndexedFile:
    """A text file read line by line or by line number (see :func:`open` with ``indexable``).

    Example:
        >>> lines = IndexedFile("corpus.txt"); len(lines), lines[3]
    """

    def __init__(self, name, encoding="utf-8", errors="strict", index_path=True):
        import json
        import os

        self.name, self.encoding, self.errors = name, encoding, errors
        self.file = builtins.open(name, "rb")
        if isinstance(index_path, str) and os.path.exists(index_path):
            with builtins.open(index_path, encoding="utf-8") as f:
                self.offsets = json.load(f)
        else:
            self.offsets, offset = [], 0
            for line in self.file:
                self.offsets.append(offset)
                offset += len(line)
            if isinstance(index_path, str):
                with builtins.open(index_path, "w", encoding="utf-8") as f:
                    json.dump(self.offsets, f)
        self.file.seek(0)

    def __len__(self):
        return len(self.offsets)

    def __getitem__(self, key):
        self.file.seek(self.offsets[key])
        return self.file.readline().decode(self.encoding, self.errors)

    def __iter__(self):
        self.file.seek(0)
        for line in self.file:
            yield line.decode(self.encoding, self.errors)

    def readline(self):
        return self.file.readline().decode(self.encoding, self.errors)

    def close(self):
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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

    def _endless(self, random):
        while True:
            yield from self.__iter__(random)

    def forfit(self, random=True):
        """Endless batches for ``model.fit(generator.forfit(), steps_per_epoch=len(generator))``.

        A ``tf.data.Dataset`` over ``__iter__``'s batches: lists become
        tuples (Keras 3 takes a tuple as several inputs), a ``None`` target is
        dropped, and every dimension but the rank is left unknown, so batches
        of any length follow each other (Keras's generator adapter fixes a
        dimension that happens to match in the first batches).

        Example:
            >>> model.fit(train_generator.forfit(), steps_per_epoch=len(train_generator), epochs=10)
        """
        return batches_to_dataset(lambda: self._endless(random))

    def fortest(self, random=False):
        """Endless inputs (the first element of each batch), for ``model.predict(..., steps=len(generator))``.

        Example:
            >>> model.predict(test_generator.fortest(), steps=len(test_generator))
        """
        return batches_to_dataset(lambda: (batch[0] for batch in self._endless(random)), inputs_only=True)

    def to_dataset(self, types, shapes, names=None, padded_batch=False):
        """bert4keras's ``to_dataset``: ``__iter__`` yields single samples, batched (or padded-batched) by tf.data.

        ``types`` / ``shapes`` describe one sample with the structure
        ``__iter__`` yields (``shapes`` may use None for variable lengths);
        ``names`` turns the structure into dicts (a name, a list of names, or
        a list of lists of names for ``(inputs, targets)``).

        Example:
            >>> dataset = generator.to_dataset(types=("float32", "float32"), shapes=([None], [None]),
            ...                                names=("Input-Token", "Input-Segment"), padded_batch=True)
        """
        return samples_to_dataset(lambda: self._endless(True), types, shapes, self.batch_size, names, padded_batch)


_END = object()  # sentinel for DataGenerator's look-ahead over a plain iterator
