"""bert4keras-compatible helpers."""
import numpy as np
import pytest

from bert4sim.snippets import DataGenerator, sequence_padding, text_segmentate, truncate_sequences


def test_sequence_padding_post_pre_and_length():
    np.testing.assert_array_equal(sequence_padding([[1, 2, 3], [4]]), [[1, 2, 3], [4, 0, 0]])
    np.testing.assert_array_equal(sequence_padding([[1, 2, 3], [4]], mode="pre"), [[1, 2, 3], [0, 0, 4]])
    np.testing.assert_array_equal(sequence_padding([[1, 2, 3], [4]], length=2, value=9), [[1, 2], [4, 9]])
    padded = sequence_padding([np.ones((2, 3)), np.ones((1, 3))])
    assert padded.shape == (2, 2, 3) and padded[1, 1].sum() == 0
    with pytest.raises(ValueError, match="mode must be"):
        sequence_padding([[1]], mode="middle")
    with pytest.raises(ValueError, match="at least one sequence"):
        sequence_padding([])


def test_truncate_sequences_pops_longest_first_on_ties():
    a, b = [1, 2, 3, 9], [4, 5, 9]
    assert truncate_sequences(5, -2, a, b) == [[1, 9], [4, 5, 9]]
    assert a == [1, 9]
    c, d = [1, 2, 9], [3, 4, 9]
    truncate_sequences(5, -2, c, d)
    assert (c, d) == ([1, 9], [3, 4, 9])
    assert truncate_sequences(3, -1, [1, 2, 3, 4], None) == [[1, 2, 3]]


def test_text_segmentate():
    assert text_segmentate("你好。今天天气不错，出去走走吧。", 8, "。，") == ["你好。", "今天天气不错，", "出去走走吧。"]
    assert text_segmentate("  短句  ", 10) == ["短句"]


def test_data_generator_batches_and_forfit():
    class Batches(DataGenerator):
        def __iter__(self, random=False):
            batch = []
            for is_end, item in self.sample(random):
                batch.append(item)
                if len(batch) == self.batch_size or is_end:
                    yield batch
                    batch = []

    generator = Batches(list(range(5)), batch_size=2)
    assert len(generator) == 3
    assert list(generator) == [[0, 1], [2, 3], [4]]
    np.random.seed(0)
    shuffled = sum(list(generator.__iter__(random=True)), [])
    assert sorted(shuffled) == list(range(5))
    class XY(Batches):
        def __iter__(self, random=False):
            for batch in super().__iter__(random):
                yield np.array(batch), None

    endless = iter(XY(list(range(5)), batch_size=2).forfit())  # a tf.data.Dataset repeating the epochs
    assert [len(next(endless)[0]) for _ in range(7)] == [2, 2, 1, 2, 2, 1, 2]
    streamed = Batches(iter(range(5)), batch_size=2, buffer_size=3)
    assert streamed.steps is None and sorted(sum(streamed.__iter__(True), [])) == list(range(5))
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        Batches([1], batch_size=0)
