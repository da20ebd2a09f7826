"""RoFormer-Sim pieces: noise statistics, pair mining, word level, the example end to end."""
import os
import sys

import numpy as np
import pytest

from bert4sim.data import split_sentences
from bert4sim.roformer_sim import char_jaccard, masked_encode, mine_similar_pairs, noisy_source
from bert4sim.simbert import simbert_batches
from bert4sim.tokenizers import Tokenizer, load_vocab

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, os.path.join(ROOT, "examples"))
VOCAB = os.path.join(ROOT, "examples", "data", "vocab.txt")
TEXTS = ["我想注销信用卡，请问怎么办理", "火车票如何改签到明天", "手机充电慢应该怎么解决呢", "怎么修改收货地址和电话"]


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(load_vocab(VOCAB), do_lower_case=True)


def test_noise_rate_targets_and_special_tokens(tokenizer):
    rng = np.random.default_rng(0)
    picked = total = masked = 0
    for _ in range(400):
        for text in TEXTS:
            clean = tokenizer.encode(text)[0]
            ids, noised = masked_encode(tokenizer, text, rng, word_rate=0.15)
            assert len(ids) == len(clean) and ids[0] == clean[0] and ids[-1] == clean[-1]
            assert not noised[0] and not noised[-1]
            kept = [i for i, n in zip(ids, noised) if not n]
            assert kept == [c for c, n in zip(clean, noised) if not n]  # unpicked tokens untouched
            picked += sum(noised)
            masked += sum(i == tokenizer._token_mask_id for i in ids)
            total += len(ids) - 2
    # word-level picks at 15 %: token share close to 15 %, four fifths of them [MASK]
    assert 0.11 < picked / total < 0.19
    assert 0.7 < masked / picked < 0.9


def test_noisy_source_noises_about_half_the_examples(tokenizer):
    rng = np.random.default_rng(1)
    encode = noisy_source(noise_probability=0.5, word_rate=1.0)  # every word picked when noised
    noised = sum(encode(tokenizer, TEXTS[0], rng) != tokenizer.encode(TEXTS[0])[0] for _ in range(400))
    assert 160 < noised < 240


def test_stage1_interleaves_groups_and_general_pairs_and_cuts_at_punctuation(tokenizer):
    groups = [["信用卡怎么注销", "怎么注销信用卡"], ["火车票如何改签", "怎么改签火车票"], ["手机充电慢", "手机充电很慢"]]
    general = [["今天下雨了", "今天在下雨"], ["我想查询余额", "我要查询余额"]]
    clean = lambda tokenizer, text, rng: tokenizer.encode(text)[0]  # noqa: E731 (no noise: compare texts)
    batches = simbert_batches(groups, tokenizer, 8, maxlen=16, encode_source=clean, with_sources=True,
                              general=general)
    for _ in range(3):
        sources = next(batches)[2]
        kinds = ["group" if any(s in g for g in groups) else "general" for s in sources]
        assert kinds == ["group", "group", "general", "general"] * 2  # pairs in turn, both orders adjacent
    batches = simbert_batches(groups, tokenizer, 8, maxlen=16, encode_source=clean, with_sources=True,
                              general=general, ratio=(1, 3))
    kinds = ["group" if any(s in g for g in groups) else "general" for s in next(batches)[2]]
    assert kinds == ["group"] * 2 + ["general"] * 6
    long = [["我想注销信用卡，请问需要去柜台办理吗还是网上就可以", "怎么注销信用卡"]] * 2
    token_ids, segment_ids = next(simbert_batches(long, tokenizer, 2, maxlen=10, encode_source=clean))
    sources = {tokenizer.decode(ids[segments == 0]) for ids, segments in zip(token_ids, segment_ids)}
    assert sources == {"我想注销信用卡", "怎么注销信用卡"}  # cut at the comma (12 characters at most), not at a token


def test_example_defaults_follow_the_original_when_fine_tuning_a_released_checkpoint():
    import roformer_sim

    released, demo = roformer_sim.parse_args(["--config", "c.json", "--checkpoint", "c"]), roformer_sim.parse_args([])
    assert (released.batch_size, released.clip_norm, released.general_ratio) == (96, None, "1:1")
    assert demo.batch_size == 32


def test_pair_mining_on_a_small_document():
    document = "信用卡可以在网上注销。信用卡也可以在网上注销。今天天气很好！明天可能会下雨？"
    assert split_sentences(document)[:2] == ["信用卡可以在网上注销。", "信用卡也可以在网上注销。"]
    pairs = mine_similar_pairs([document], threshold=0.6)
    assert [(a, b) for a, b, _ in pairs] == [("信用卡可以在网上注销。", "信用卡也可以在网上注销。")]
    assert pairs[0][2] == pytest.approx(char_jaccard("信用卡可以在网上注销", "信用卡也可以在网上注销"))
    assert mine_similar_pairs([document], threshold=0.95) == []
    with pytest.raises(ValueError, match="threshold must be in"):
        mine_similar_pairs([document], threshold=0)


def test_roformer_sim_example_micro_char_and_word_level(tmp_path):
    import roformer_sim
    import simbert

    from bert4sim.models import build_transformer_model

    teacher = str(tmp_path / "teacher")
    simbert.main(["--micro", "--output", teacher])
    out = str(tmp_path / "rsim")
    student, tokenizer, histories = roformer_sim.main(["--micro", "--teacher", teacher, "--output", out,
                                                       "--general-corpus", os.path.join(ROOT, "examples", "data",
                                                                                        "corpus.txt")])
    assert histories[0].history["loss"][-1] < histories[0].history["loss"][0]
    assert "distillation_loss" in histories[1].history and "similarity_loss" not in histories[1].history
    reloaded = build_transformer_model(os.path.join(out, "bert_config.json"), out, model="roformer",
                                       application="unilm", with_pool="linear")
    ids, segments = tokenizer.encode("信用卡怎么注销", "怎么注销信用卡")
    inputs = [np.array([ids]), np.array([segments])]
    for a, b in zip(student.model.predict(inputs, verbose=0), reloaded.predict(inputs, verbose=0)):
        np.testing.assert_array_equal(a, b)
    word_out = str(tmp_path / "rsim_word")
    _, word_tokenizer, _ = roformer_sim.main(["--micro", "--word-level", "--teacher", teacher, "--output", word_out])
    assert any(len(token) > 1 and not token.startswith(("[", "##")) for token in word_tokenizer.token_dict)
    assert len(word_tokenizer.tokenize("信用卡怎么注销")) < len("信用卡怎么注销") + 2
