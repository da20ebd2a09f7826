"""The shipped demo data parses and meets its stated sizes."""
import json
import os

from bert4sim.simbert import read_synonym_groups
from bert4sim.tokenizers import Tokenizer, load_vocab

DATA = os.path.join(os.path.dirname(__file__), "..", "examples", "data")


def path(name):
    return os.path.join(DATA, name)


def test_groups_sizes_and_split():
    train = read_synonym_groups(path("simbert_train.json"), min_size=3)
    dev = read_synonym_groups(path("simbert_dev.json"), min_size=3)
    assert len(train) >= 300 and len(dev) >= 60
    train_sentences = {s for g in train for s in g}
    assert not train_sentences & {s for g in dev for s in g}


def test_pairs_and_scores():
    for split in ("train", "dev", "test"):
        labels = [line.rstrip("\n").split("\t") for line in open(path(f"pairs_{split}.tsv"), encoding="utf-8")]
        assert labels and all(len(row) == 3 and row[2] in ("0", "1") for row in labels)
        assert 0.3 < sum(row[2] == "1" for row in labels) / len(labels) < 0.7
        scores = [line.rstrip("\n").split("\t") for line in open(path(f"sts_{split}.tsv"), encoding="utf-8")]
        assert scores and all(0.0 <= float(row[2]) <= 5.0 for row in scores)


def test_retrieval_set_and_vocab_cover_the_data():
    retrieval = json.load(open(path("retrieval_dev.json"), encoding="utf-8"))
    assert all(doc in retrieval["corpus"] for docs in retrieval["qrels"].values() for doc in docs)
    assert set(retrieval["qrels"]) == set(retrieval["queries"])
    vocab = load_vocab(path("vocab.txt"))
    assert [t for t, i in sorted(vocab.items(), key=lambda x: x[1])][:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(vocab, do_lower_case=True)
    passages = open(path("corpus.txt"), encoding="utf-8").read().splitlines()
    assert len(passages) >= 400
    texts = passages + [s for g in read_synonym_groups(path("simbert_train.json")) for s in g]
    assert all(vocab["[UNK]"] not in tokenizer.encode(text)[0] for text in texts)
