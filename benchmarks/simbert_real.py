"""Held-out real-text paraphrase retrieval and generation of SimBERT checkpoints (e.g. template-only vs real text).

Reads the files of examples/data/real_corpus.py and, for every --model NAME=FOLDER[:POOLING] (a folder
SimilarityModel.from_checkpoint loads; pooling 'pooler' by default, SimBERT's vector):
  - paraphrase retrieval: each rewrite of a held-out People's Daily clause (every word with a Cilin
    synonym swapped) against all held-out clauses: recall@1, MRR@10;
  - mined pairs: held-out same-paragraph sentence pairs (character-overlap mining), each first sentence
    against all other sentences of these pairs: recall@1, MRR@10;
  - gen_synonyms (models with a seq2seq head) of 10 held-out clauses and of everyday queries, unedited.
Writes --out (JSON) and prints everything.

    python benchmarks/simbert_real.py --model template=checkpoints/simbert_demo \\
        --model real=checkpoints/simbert_real --out runs/simbert_real.json
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
# The first three are the issue's; the last two are ours (everyday questions outside the demo's templates).
EVERYDAY = ["银行卡丢了怎么办", "护照过期了怎么续办", "驾照到期了怎么换", "孩子发烧了怎么办", "快递一直没送到怎么办"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="NAME=FOLDER[:POOLING], repeatable")
    parser.add_argument("--data", default=os.path.join(ROOT, "data_cache", "real"))
    parser.add_argument("--out", default=None, help="JSON file for the results")
    parser.add_argument("--maxlen", type=int, default=32)
    parser.add_argument("--examples", type=int, default=10, help="held-out clauses to generate for")
    parser.add_argument("--n", type=int, default=50, help="gen_synonyms candidates")
    parser.add_argument("--k", type=int, default=5, help="gen_synonyms kept")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def model_spec(text):
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        sys.exit(f"simbert_real.py: --model {text!r} is not NAME=FOLDER[:POOLING]")
    folder, _, pooling = rest.partition(":")
    if not os.path.isfile(os.path.join(folder, "bert_config.json")):
        sys.exit(f"simbert_real.py: --model {name}: {folder} has no bert_config.json")
    return name, folder, pooling or "pooler"


def read_pairs(path):
    with open(path, encoding="utf-8") as f:
        pairs = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    bad = [i for i, p in enumerate(pairs, 1) if len(p) != 2]
    if bad:
        sys.exit(f"simbert_real.py: {path}:{bad[0]}: expected 2 tab-separated fields")
    return pairs


def retrieval(sim, queries, documents, gold, exclude=None):
    """recall@1 / MRR@10 of ``queries`` (gold[i] = index of query i's document) by exact cosine search.

    ``exclude[i]``: a document index query i may not retrieve (the query itself), or None.
    """
    import numpy as np

    from bert4sim.evaluation import retrieval_metrics

    q = sim.encode(queries, show_progress=False)
    d = sim.encode(documents, show_progress=False)
    scores = q @ d.T
    for row, column in enumerate(exclude or []):
        if column is not None:
            scores[row, column] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    metrics = retrieval_metrics({i: list(row) for i, row in enumerate(top)}, {i: [g] for i, g in enumerate(gold)})
    return {"recall@1": metrics["recall@1"], "mrr@10": metrics["mrr@10"]}


def main(argv=None):
    args = parse_args(argv)
    from bert4sim.similarity import SimilarityModel

    specs = [model_spec(m) for m in args.model]
    with open(os.path.join(args.data, "heldout_clauses.txt"), encoding="utf-8") as f:
        documents = [line.strip() for line in f if line.strip()]
    position = {text: i for i, text in enumerate(documents)}
    paraphrases = read_pairs(os.path.join(args.data, "paraphrase_test.tsv"))
    mined = read_pairs(os.path.join(args.data, "mined_test.tsv"))
    mined_docs = list(dict.fromkeys(s for pair in mined for s in pair))
    examples = [a for a, _ in paraphrases[: args.examples]]
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "queries": len(paraphrases),
              "documents": len(documents), "mined_pairs": len(mined), "models": {}}
    for name, folder, pooling in specs:
        sim = SimilarityModel.from_checkpoint(folder, pooling=pooling, maxlen=args.maxlen)
        entry = {"folder": folder, "pooling": pooling,
                 "paraphrase": retrieval(sim, [b for _, b in paraphrases], documents,
                                         [position[a] for a, _ in paraphrases]),
                 "mined": retrieval(sim, [a for a, _ in mined], mined_docs, [mined_docs.index(b) for _, b in mined],
                                    exclude=[mined_docs.index(a) for a, _ in mined])}
        if sim.seq2seq is not None:
            entry["gen_synonyms"] = {text: sim.gen_synonyms(text, n=args.n, k=args.k, seed=args.seed)
                                     for text in examples + EVERYDAY}
        report["models"][name] = entry
        print(f"\n== {name} ({folder}, {pooling} vectors)")
        print(f"paraphrase retrieval ({len(paraphrases)} rewritten held-out clauses vs {len(documents)}): "
              f"recall@1 {entry['paraphrase']['recall@1']:.3f}  MRR@10 {entry['paraphrase']['mrr@10']:.3f}")
        print(f"mined held-out pairs ({len(mined)} vs {len(mined_docs)} sentences): "
              f"recall@1 {entry['mined']['recall@1']:.3f}  MRR@10 {entry['mined']['mrr@10']:.3f}")
        for text, outputs in entry.get("gen_synonyms", {}).items():
            print(f"  {text} -> {outputs}")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1, ensure_ascii=False)
        print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
