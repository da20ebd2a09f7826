"""SimBERT corpus reader (json lines, errors with file:line), paired batches, tf.data pipeline."""
import json

import numpy as np
import pytest

from bert4sim.data import to_dataset
from bert4sim.simbert import encode_pair, read_synonym_groups, sample_pair, simbert_batches, truncate_sentence
from bert4sim.tokenizers import Tokenizer

CHARS = "信用卡怎么注销如何办理退款快递到了吗没天气今明好"
VOCAB = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(dict.fromkeys(CHARS)))}
GROUPS = [["信用卡怎么注销", "怎么注销信用卡", "如何注销信用卡"], ["怎么办理退款", "如何办理退款"],
          ["快递到了吗", "快递到了没"], ["今天天气好", "今天天气好吗", "天气今天好吗"]]


@pytest.fixture
def tokenizer():
    return Tokenizer(VOCAB)


def write_lines(tmp_path, lines, name="corpus.json"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_reader_returns_groups_text_first_deduplicated(tmp_path):
    path = write_lines(tmp_path, [
        json.dumps({"text": "信用卡怎么注销", "synonyms": ["怎么注销信用卡", " 如何注销信用卡 ", "怎么注销信用卡"]},
                   ensure_ascii=False),
        "",
        json.dumps({"text": "快递到了吗", "synonyms": ["快递到了没", ""]}, ensure_ascii=False),
    ])
    assert read_synonym_groups(path) == [["信用卡怎么注销", "怎么注销信用卡", "如何注销信用卡"], ["快递到了吗", "快递到了没"]]


@pytest.mark.parametrize("line, message", [
    ("{not json", r"corpus.json:2: not valid JSON"),
    ('["a", "b"]', r"corpus.json:2: expected a JSON object with 'text' and 'synonyms'"),
    ('{"synonyms": ["a"]}', r"corpus.json:2: 'text' must be a non-empty string, got None"),
    ('{"text": 3, "synonyms": ["a"]}', r"corpus.json:2: 'text' must be a non-empty string, got 3"),
    ('{"text": "a", "synonyms": "b"}', r"corpus.json:2: 'synonyms' must be a list of strings"),
    ('{"text": "a", "synonyms": ["b", 1]}', r"corpus.json:2: 'synonyms' must be a list of strings"),
    ('{"text": "a", "synonyms": ["a", " a "]}', r"corpus.json:2: group has 1 distinct sentence\(s\), at least 2"),
])
def test_reader_errors_name_file_and_line(tmp_path, line, message):
    good = json.dumps({"text": "甲", "synonyms": ["乙"]})
    path = write_lines(tmp_path, [good, line, good])
    with pytest.raises(ValueError, match=message):
        read_synonym_groups(path)


def test_reader_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus file not found: .*nope.json"):
        read_synonym_groups(str(tmp_path / "nope.json"))
    with pytest.raises(ValueError, match="empty.json holds no groups"):
        read_synonym_groups(write_lines(tmp_path, ["", "  "], "empty.json"))


def test_sample_pair_draws_two_different_members():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        a, b = sample_pair(GROUPS[0], rng)
        assert a != b and a in GROUPS[0] and b in GROUPS[0]
        seen.add((a, b))
    assert len(seen) == 6  # every ordered pair of a 3-sentence group turns up


def test_truncate_sentence_keeps_the_first_piece_cut_at_punctuation():
    assert truncate_sentence("信用卡怎么注销，如何办理退款", maxlen=9) == "信用卡怎么注销"
    assert truncate_sentence("快递到了吗？今天天气好吗？", maxlen=9) == "快递到了吗？"
    assert truncate_sentence("信用卡怎么注销如何办理退款", maxlen=9) == "信用卡怎么注销如何办理退款"  # nowhere to cut


def test_encode_pair_fits_twice_maxlen_cutting_the_longer_side(tokenizer):
    ids, segments = encode_pair(tokenizer, "信用卡怎么注销", "退款", maxlen=5)
    assert len(ids) == 10 and segments == [0] * 7 + [1] * 3
    assert ids[:7] == tokenizer.encode("信用卡怎么")[0] and ids[7:] == tokenizer.encode("退款")[0][1:]
    ids, segments = encode_pair(tokenizer, "信用卡怎么注销，如何办理退款", "快递到了吗", maxlen=9)
    assert ids == tokenizer.encode("信用卡怎么注销", "快递到了吗")[0]


def test_batches_put_both_orders_of_one_pair_in_adjacent_rows(tokenizer):
    batches = simbert_batches(GROUPS, tokenizer, batch_size=4, maxlen=16, seed=3)
    for _ in range(6):
        token_ids, segment_ids = next(batches)
        assert token_ids.shape == segment_ids.shape and token_ids.shape[0] == 4
        groups_in_batch = []
        for row in range(0, 4, 2):
            first = token_ids[row][(segment_ids[row] == 0) & (token_ids[row] > 0)]
            second = token_ids[row][segment_ids[row] == 1]
            partner_first = token_ids[row + 1][(segment_ids[row + 1] == 0) & (token_ids[row + 1] > 0)]
            partner_second = token_ids[row + 1][segment_ids[row + 1] == 1]
            a, b = tokenizer.decode(first), tokenizer.decode(second)
            assert (tokenizer.decode(partner_first), tokenizer.decode(partner_second)) == (b, a)
            group = next(i for i, g in enumerate(GROUPS) if a in g)
            assert b in GROUPS[group] and a != b
            groups_in_batch.append(group)
        assert len(set(groups_in_batch)) == 2  # one pair per group within a batch


def test_batches_cover_every_group_each_pass_and_follow_the_seed(tokenizer):
    batches = simbert_batches(GROUPS, tokenizer, batch_size=4, maxlen=16, seed=1)
    first_pass = [tokenizer.decode(token_ids[row][1:]) for token_ids, _ in (next(batches), next(batches))
                  for row in (0, 2)]
    assert sorted(next(i for i, g in enumerate(GROUPS) if any(s in text for s in g)) for text in first_pass) == \
        [0, 1, 2, 3]
    again = simbert_batches(GROUPS, tokenizer, batch_size=4, maxlen=16, seed=1)
    replay = simbert_batches(GROUPS, tokenizer, batch_size=4, maxlen=16, seed=1)
    for _ in range(3):
        np.testing.assert_array_equal(next(again)[0], next(replay)[0])


def test_batches_fixed_length_and_argument_errors(tokenizer):
    token_ids, segment_ids = next(simbert_batches(GROUPS, tokenizer, 4, maxlen=8, length=16))
    assert token_ids.shape == (4, 16) and segment_ids.shape == (4, 16)
    with pytest.raises(ValueError, match="batch_size must be even and at least 2.*got 5"):
        next(simbert_batches(GROUPS, tokenizer, 5))
    with pytest.raises(ValueError, match="4 groups cannot fill a batch of 10"):
        next(simbert_batches(GROUPS, tokenizer, 10))
    with pytest.raises(ValueError, match=r"length 10 is shorter than a pair can be \(2 \* maxlen = 16\)"):
        next(simbert_batches(GROUPS, tokenizer, 4, maxlen=8, length=10))


def test_to_dataset_yields_int32_input_tuples(tokenizer):
    batches = simbert_batches(GROUPS, tokenizer, 4, maxlen=16, seed=0)
    reference = simbert_batches(GROUPS, tokenizer, 4, maxlen=16, seed=0)
    dataset = to_dataset(batches)
    for (token_ids, segment_ids), in dataset.take(2):
        expected_ids, expected_segments = next(reference)
        assert token_ids.dtype.name == "int32" and segment_ids.dtype.name == "int32"
        np.testing.assert_array_equal(token_ids.numpy(), expected_ids)
        np.testing.assert_array_equal(segment_ids.numpy(), expected_segments)
