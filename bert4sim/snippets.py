"""bert4keras's ``snippets``: padding, truncation, batching, text helpers, ``open``, decoders, parallel apply.

A thin namespace over bert4sim's own modules (``bert4sim.sequences``,
``bert4sim.data``, ``bert4sim.decoder``, ``bert4sim.tokenizers``,
``bert4sim.checkpoints``) plus the helpers only bert4keras scripts use. No
bert4sim module imports this one; ``WebServing`` is not provided
(:mod:`bert4sim.unprovided` names ``bert4sim serve`` instead).

Example:
    >>> from bert4sim.snippets import sequence_padding, DataGenerator, AutoRegressiveDecoder
"""
import builtins
import functools
import queue
import re
import threading
import types

import numpy as np

from bert4sim import unprovided
from bert4sim.checkpoints import orthogonally_resize  # noqa: F401  (bert4keras kept it in snippets)
from bert4sim.data import batches_to_dataset, samples_to_dataset
from bert4sim.decoder import AutoRegressiveDecoder, softmax  # noqa: F401  (bert4keras kept them in snippets)
from bert4sim.sequences import sequence_padding, text_segmentate, truncate_sequences  # noqa: F401
from bert4sim.tokenizers import lowercase_and_normalize  # noqa: F401

is_py2 = False

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


# --- text helpers ------------------------------------------------------------


def strQ2B(ustring):  # noqa: N802  (bert4keras's name)
    """Full-width characters as their half-width forms (U+3000 → space, U+FF01..U+FF5E → ASCII).

    bert4keras 0.11.5's version fails on Python 3 (``unichr``); this is the mapping it meant.

    Example:
        >>> strQ2B("ＡＢＣ１２３，　！")
        'ABC123, !'
    """
    def half(ch):
        code = ord(ch)
        if code == 0x3000:
            return " "
        return chr(code - 0xFEE0) if 0xFF01 <= code <= 0xFF5E else ch

    return "".join(half(ch) for ch in ustring)


def string_matching(s, keywords):
    """Whether one of the regular expressions ``keywords`` is found in ``s``.

    Example:
        >>> string_matching("Transformer-0-FeedForward", ["Norm", "Feed"])
        True
    """
    return any(re.search(keyword, s) for keyword in keywords)


def convert_to_unicode(text, encoding="utf-8", errors="ignore"):
    """``bytes`` decoded to ``str`` (``str`` unchanged).

    Example:
        >>> convert_to_unicode("中文".encode("utf-8"))
        '中文'
    """
    return text.decode(encoding, errors=errors) if isinstance(text, bytes) else text


def convert_to_str(text, encoding="utf-8", errors="ignore"):
    """bert4keras's Python 2 / 3 helper; on Python 3 the same as :func:`convert_to_unicode`.

    Example:
        >>> convert_to_str(b"abc")
        'abc'
    """
    return convert_to_unicode(text, encoding, errors)


def is_one_of(x, ys):
    """Whether ``x`` is (by identity) one of ``ys``: ``in`` without ``==`` (tensors compare element-wise).

    Example:
        >>> is_one_of(layer, model.layers)
        True
    """
    return any(x is y for y in ys)


def longest_common_substring(source, target):
    """The longest common slice of two sequences: ``(length, (i0, i1, j0, j1))``, ``source[i0:i1] == target[j0:j1]``.

    The first longest one found (by ``source`` position, then ``target``).

    Example:
        >>> longest_common_substring("abcde", "xbcdy")
        (3, (1, 4, 1, 4))
    """
    previous = [0] * (len(target) + 1)
    best, span = 0, (0, 0, 0, 0)
    for i, item in enumerate(source, 1):
        current = [0] * (len(target) + 1)
        for j, other in enumerate(target, 1):
            if item == other:
                current[j] = previous[j - 1] + 1
                if current[j] > best:
                    best, span = current[j], (i - current[j], i, j - current[j], j)
        previous = current
    return best, span


def longest_common_subsequence(source, target):
    """The longest common subsequence: ``(length, [(i, j), ...])``, the index pairs of one such subsequence.

    Example:
        >>> longest_common_subsequence("abcde", "ace")
        (3, [(0, 0), (2, 1), (4, 2)])
    """
    table = np.zeros((len(source) + 1, len(target) + 1), dtype=int)
    for i, item in enumerate(source, 1):
        for j, other in enumerate(target, 1):
            if item == other:
                table[i, j] = table[i - 1, j - 1] + 1
            else:
                table[i, j] = table[i, j - 1] if table[i, j - 1] > table[i - 1, j] else table[i - 1, j]
    length, pairs = int(table[-1, -1]), []
    i, j = len(source) - 1, len(target) - 1
    while len(pairs) < length:
        if source[i] == target[j]:
            pairs.append((i, j))
            i, j = i - 1, j - 1
        elif table[i + 1, j] > table[i, j + 1]:
            j -= 1
        else:
            i -= 1
    return length, pairs[::-1]


# --- decorators ------------------------------------------------------------


def insert_arguments(**arguments):
    """Decorator for ``__init__``: take these keyword arguments (with defaults) off the call and set them as attributes.

    Example:
        >>> class Optimizer(keras.optimizers.Adam):
        ...     @insert_arguments(grad_accum_steps=2)
        ...     def __init__(self, *args, **kwargs):
        ...         super().__init__(*args, **kwargs)     # self.grad_accum_steps is set
    """
    def decorator(function):
        @functools.wraps(function)
        def wrapped(self, *args, **kwargs):
            for name, default in arguments.items():
                setattr(self, name, kwargs.pop(name, default))
            return function(self, *args, **kwargs)

        return wrapped

    return decorator


def delete_arguments(*arguments):
    """Decorator for ``__init__``: refuse these keyword arguments (a TypeError naming the class and the argument).

    Example:
        >>> class Fixed(Base):
        ...     @delete_arguments("learning_rate")
        ...     def __init__(self, *args, **kwargs): ...
    """
    def decorator(function):
        @functools.wraps(function)
        def wrapped(self, *args, **kwargs):
            for name in arguments:
                if name in kwargs:
                    raise TypeError(f"{type(self).__name__} got an unexpected keyword argument '{name}'")
            return function(self, *args, **kwargs)

        return wrapped

    return decorator


# --- Viterbi decoding ---------------------------------------------------------


class ViterbiDecoder:
    """The best label path through per-step label scores and a transition matrix (bert4keras's base class).

    ``trans`` is ``[labels, labels]`` (score of going from label a to b);
    ``starts`` / ``ends`` restrict the labels allowed first / last.
    ``decode(nodes)`` takes ``[steps, labels]`` scores and returns the
    labels of the best path.

    Example:
        >>> ViterbiDecoder(np.zeros((2, 2))).decode(np.array([[1.0, 0.0], [0.0, 2.0]]))
        array([0, 1])
    """

    def __init__(self, trans, starts=None, ends=None):
        self.trans = np.asarray(trans)
        self.num_labels = len(self.trans)
        self.non_starts = [] if starts is None else [i for i in range(self.num_labels) if i not in starts]
        self.non_ends = [] if ends is None else [i for i in range(self.num_labels) if i not in ends]

    def decode(self, nodes):
        """The best label path (``[steps]``) for scores ``nodes`` ``[steps, labels]`` (left unchanged).

        Example:
            >>> decoder.decode(token_label_scores)
        """
        nodes = np.array(nodes, dtype=float)
        nodes[0, self.non_starts] = -np.inf
        nodes[-1, self.non_ends] = -np.inf
        labels = np.arange(self.num_labels)[None]
        scores, paths = nodes[0][:, None], labels
        for step in range(1, len(nodes)):
            total = scores + self.trans + nodes[step][None]
            best = total.argmax(0)
            scores = total.max(0)[:, None]
            paths = np.concatenate([paths[:, best], labels], 0)
        return paths[:, scores[:, 0].argmax()]


# --- parallel apply ---------------------------------------------------------------

_STOP = None  # sent to each worker when the inputs are exhausted


def _work(func, inputs, outputs, seed):
    if seed is not _NO_SEED:
        np.random.seed(seed)
    while True:
        job = inputs.get()
        if job is _STOP:
            return
        index, item = job
        try:
            outputs.put((index, func(item), None))
        except Exception as error:  # noqa: BLE001  (handed to the caller, which raises it)
            outputs.put((index, None, f"{type(error).__name__}: {error}"))


_NO_SEED = object()


def parallel_apply_generator(func, iterable, workers, max_queue_size, dummy=False, random_seeds=True):
    """Yield ``(index, func(item))`` for every item of ``iterable``, computed by ``workers`` processes (threads
    with ``dummy=True``), in the order they finish.

    At most ``max_queue_size`` items wait for a worker. ``random_seeds``:
    True seeds each worker's numpy afresh, a list gives their seeds,
    False / None leaves numpy alone. Processes are forked (``func`` may be
    a closure, as in bert4keras). An exception in ``func`` is raised here,
    naming the item.

    Example:
        >>> sorted(parallel_apply_generator(len, ["a", "bb"], workers=2, max_queue_size=4, dummy=True))
        [(0, 1), (1, 2)]
    """
    if workers < 1 or max_queue_size < 1:
        raise ValueError(f"workers and max_queue_size must be at least 1, got {workers} and {max_queue_size}")
    if random_seeds is True:
        seeds = [None] * workers
    elif random_seeds in (None, False):
        seeds = []
    else:
        seeds = list(random_seeds)
    seeds += [_NO_SEED] * (workers - len(seeds))
    if dummy:
        inputs, outputs = queue.Queue(max_queue_size), queue.Queue()
        pool = [threading.Thread(target=_work, args=(func, inputs, outputs, seed), daemon=True) for seed in seeds]
    else:
        import multiprocessing

        context = multiprocessing.get_context("fork")
        inputs, outputs = context.Queue(max_queue_size), context.Queue()
        pool = [context.Process(target=_work, args=(func, inputs, outputs, seed), daemon=True) for seed in seeds]
    for worker in pool:
        worker.start()
    sent = received = 0
    try:
        for item in enumerate(iterable):
            while True:
                try:
                    inputs.put(item, timeout=0.01)
                    sent += 1
                    break
                except queue.Full:
                    while not outputs.empty():
                        received += 1
                        yield _result(outputs.get())
        for _ in pool:
            inputs.put(_STOP)
        while received < sent:
            received += 1
            yield _result(outputs.get())
    finally:
        for worker in pool:
            if hasattr(worker, "terminate") and worker.is_alive():
                worker.terminate()


def _result(job):
    index, value, error = job
    if error is not None:
        raise RuntimeError(f"parallel_apply: func failed on item {index}: {error}")
    return index, value


def parallel_apply(func, iterable, workers, max_queue_size, callback=None, dummy=False, random_seeds=True,
                   unordered=True):
    """``func`` over ``iterable`` in ``workers`` processes / threads (see :func:`parallel_apply_generator`).

    Without ``callback``: the list of results, in finishing order, or in
    input order with ``unordered=False``; with ``callback``: it is called on
    each result and None is returned.

    Example:
        >>> parallel_apply(len, ["a", "bb", "ccc"], workers=2, max_queue_size=4, dummy=True, unordered=False)
        [1, 2, 3]
    """
    results = parallel_apply_generator(func, iterable, workers, max_queue_size, dummy, random_seeds)
    if callback is not None:
        for _, value in results:
            callback(value)
        return None
    if unordered:
        return [value for _, value in results]
    return [value for _, value in sorted(results, key=lambda pair: pair[0])]


__getattr__ = unprovided.module_getattr("snippets")
