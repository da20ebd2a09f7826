"""A fixed list of bad inputs and damaged files through the API and the `bert4sim` command.

Each case asserts its specific clear error (API: exception type + message naming the
problem, file and line where there is one; CLI: exit status 2 and exactly one line on
stderr, no traceback) or its defined behaviour. Nothing is accepted silently.
"""
import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from bert4sim.cli import main as cli_main
from bert4sim.files import current_version
from bert4sim.simbert import read_synonym_groups
from bert4sim.models import ConfigError, build_transformer_model, save_checkpoint
from bert4sim.similarity import SimilarityModel, VectorIndex
from bert4sim.tokenizers import Tokenizer, load_vocab

CHARS = "我想注销信用卡怎么办理银行开户查询余额今天天气很好明天下雨吗"
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(CHARS))
CORPUS = ["我想注销信用卡", "信用卡怎么注销", "怎么办理银行开户", "查询余额", "今天天气很好", "明天下雨吗"]
TINY = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=32)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Made once: a BERT and a RoFormer checkpoint folder, a SimilarityModel folder with index, a corpus."""
    root = tmp_path_factory.mktemp("bad_inputs")
    keras.utils.set_random_seed(0)
    vocab = {t: i for i, t in enumerate(VOCAB)}
    for kind in ("bert", "roformer"):
        model = build_transformer_model(vocab_size=len(VOCAB), model=kind, application="unilm",
                                        with_pool="linear", **TINY)
        save_checkpoint(model, str(root / kind / "bert_model.ckpt"), vocab=vocab)
    sim = SimilarityModel.from_checkpoint(str(root / "bert"))
    sim.build_index(CORPUS)
    sim.save(str(root / "model"))
    sim.index.save(str(root / "index"))
    (root / "corpus.txt").write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    return root, sim


class Ctx:
    """What a case works with: the shared tiny models and a private copy of any folder it damages."""

    def __init__(self, root, sim, tmp):
        self.root, self.sim, self.tmp = root, sim, tmp

    def copy(self, name):
        target = self.tmp / name
        if not target.exists() and name in (B, R):  # a checkpoint folder as others ship it: its files at the top
            shutil.copytree(current_version(str(self.root / name), "checkpoint"), target)
        elif not target.exists():
            shutil.copytree(self.root / name, target)
        return target

    def inner(self, name):
        """The files of the copy's current version (the folder a save wrote), to damage."""
        return Path(current_version(str(self.copy(name)), {"index": "vector-index", "model": "similarity-model"}[name]))

    def edit_json(self, path, change):
        value = json.loads(path.read_text(encoding="utf-8"))
        change(value)
        path.write_text(json.dumps(value), encoding="utf-8")


# -- expectations -----------------------------------------------------------------------------

class Raises:
    def __init__(self, kind, pattern):
        self.kind, self.pattern = kind, pattern


class Exit2:
    def __init__(self, pattern, after=None):
        self.pattern, self.after = pattern, after


class Works:
    def __init__(self, check):
        self.check = check


def cli(*argv):
    return list(argv)


# -- damaging helpers ---------------------------------------------------------------------------

def ckpt_with(c, change=None, write=None, name="bert"):
    folder = c.copy(name)
    if change:
        c.edit_json(folder / "bert_config.json", change)
    if write:
        write(folder)
    return str(folder)


def truncate(path, keep=None):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2 if keep is None else keep)


def vocab_lines(c, lines, raw=None):
    folder = c.copy("bert")
    path = folder / "vocab.txt"
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(folder)


def index_with(c, vectors=None, texts=None, meta=None, raw=None):
    folder, where = c.copy("index"), c.inner("index")
    if vectors is not None:
        np.save(where / "vectors.npy", vectors, allow_pickle=True)
    if texts is not None:
        (where / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    if meta is not None:
        c.edit_json(where / "meta.json", meta)
    if raw is not None:
        for name, data in raw.items():
            (where / name).write_bytes(data)
    return str(folder)


def model_with_vocab(c, lines):
    folder, where = c.copy("model"), c.inner("model")
    (where / "vocab.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(folder)


def unit_rows(n=6, dim=16, scale=1.0):
    rows = np.random.default_rng(0).standard_normal((n, dim)).astype("float32")
    return rows / np.linalg.norm(rows, axis=1, keepdims=True) * scale


def foreign_folder(c, name="user"):
    folder = c.tmp / name
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "a.txt").write_text("keep")
    return str(folder)


def corpus_file(c, data):
    path = c.tmp / "corpus_case.txt"
    path.write_bytes(data)
    return str(path)


def still_there(c):
    assert (c.tmp / "user" / "a.txt").read_text() == "keep" and (c.tmp / "user" / "sub").is_dir()


def sim_loaded_with_bom(c):
    folder = vocab_lines(c, None, raw=b"\xef\xbb\xbf" + ("\n".join(VOCAB) + "\n").encode())
    return load_vocab(os.path.join(folder, "vocab.txt"))


def index_after_bom_corpus(c):
    path = corpus_file(c, b"\xef\xbb\xbf" + "\n".join(CORPUS).encode())
    out = str(c.tmp / "bom_index")
    assert cli_main(["index", "build", path, "--model", str(c.root / "bert"), "--out", out]) == 0
    return VectorIndex.load(out)


B, R = "bert", "roformer"
LONG = "今天天气很好，" * 150_000  # 1,050,000 characters

CASES = [
    # --- saves that never destroy data
    ("index-save-foreign-folder", lambda c: c.sim.index.save(foreign_folder(c)),
     Raises(FileExistsError, r"not a bert4sim folder \(no .bert4sim.json\) and not empty \(a.txt, sub\)")),
    ("index-save-onto-file", lambda c: c.sim.index.save(str(c.root / "corpus.txt")),
     Raises(FileExistsError, "corpus.txt is a file, not a folder")),
    ("model-save-foreign-folder", lambda c: c.sim.save(foreign_folder(c)), Raises(FileExistsError, "not a bert4sim folder")),
    ("model-save-into-index-folder", lambda c: c.sim.save(str(c.copy("index"))),
     Raises(FileExistsError, "holds a bert4sim vector-index, not a similarity-model")),
    ("index-save-into-model-folder", lambda c: c.sim.index.save(str(c.copy("model"))),
     Raises(FileExistsError, "holds a bert4sim similarity-model, not a vector-index")),
    ("checkpoint-save-under-a-file", lambda c: save_checkpoint(c.sim.encoder, str(c.root / "corpus.txt" / "m.ckpt")),
     Raises(FileExistsError, "is a file, not a folder")),
    ("cli-out-foreign-folder", lambda c: cli("index", "build", str(c.root / "corpus.txt"), "--model",
                                             str(c.root / B), "--out", foreign_folder(c)),
     Exit2("not a bert4sim folder", after=still_there)),
    ("cli-out-is-a-file", lambda c: cli("index", "build", str(c.root / "corpus.txt"), "--model", str(c.root / B),
                                        "--out", str(c.root / "corpus.txt")), Exit2("is a file, not a folder")),
    # --- checkpoint folders
    ("config-missing-key", lambda c: build_transformer_model(
        ckpt_with(c, lambda v: v.pop("num_attention_heads")) + "/bert_config.json"),
     Raises(ConfigError, r"bert_config.json lacks required key\(s\): num_attention_heads")),
    ("cli-config-missing-key", lambda c: cli("synonyms", "查询", "--model",
                                             ckpt_with(c, lambda v: v.pop("vocab_size"))),
     Exit2(r"bert_config.json lacks required key\(s\): vocab_size")),
    ("config-not-json", lambda c: build_transformer_model(ckpt_with(
        c, write=lambda f: (f / "bert_config.json").write_text('{"vocab_size": 3,\n oops')) + "/bert_config.json"),
     Raises(ValueError, r"bert_config.json:2: not valid JSON")),
    ("cli-config-truncated", lambda c: cli("synonyms", "查询", "--model", ckpt_with(
        c, write=lambda f: truncate(f / "bert_config.json"))), Exit2(r"bert_config.json:\d+: not valid JSON")),
    ("config-not-utf8", lambda c: build_transformer_model(ckpt_with(
        c, write=lambda f: (f / "bert_config.json").write_bytes(b'{"a": "\xff"}')) + "/bert_config.json"),
     Raises(ValueError, "bert_config.json: not UTF-8")),
    ("config-bad-value", lambda c: build_transformer_model(
        ckpt_with(c, lambda v: v.update(hidden_size="16")) + "/bert_config.json"),
     Raises(ValueError, r"bert_config.json: hidden_size must be an integer, got str '16'")),
    ("config-zero-layers", lambda c: build_transformer_model(
        ckpt_with(c, lambda v: v.update(num_hidden_layers=0)) + "/bert_config.json"),
     Raises(ValueError, "num_hidden_layers must be between 1 and 1024, got 0")),
    ("config-fewer-layers", lambda c: build_transformer_model(
        ckpt_with(c, lambda v: v.update(num_hidden_layers=1)) + "/bert_config.json", str(c.tmp / B)),
     Raises(ValueError, r"holds variables this model does not use: bert/encoder/layer_1/")),
    ("cli-model-folder-missing", lambda c: cli("similar", "查询", "--model", str(c.tmp / "none"),
                                               "--index", str(c.root / "index")), Exit2("model folder not found")),
    ("cli-fewer-layers", lambda c: cli("synonyms", "查询", "--model",
                                       ckpt_with(c, lambda v: v.update(num_hidden_layers=1))),
     Exit2("does not use: bert/encoder/layer_1")),
    ("fewer-layers-allowed-when-asked", lambda c: build_transformer_model(
        ckpt_with(c, lambda v: v.update(num_hidden_layers=1)) + "/bert_config.json", str(c.tmp / B),
        allow_unused=True, application="unilm", with_pool="linear"),
     Works(lambda model: len([l for l in model.layers if l.name.startswith("Transformer-")]) == 1)),
    ("more-layers-than-checkpoint", lambda c: build_transformer_model(
        ckpt_with(c, lambda v: v.update(num_hidden_layers=3)) + "/bert_config.json", str(c.tmp / B)),
     Raises(ValueError, "variable bert/encoder/layer_2/attention/self/query/kernel is missing")),
    ("hidden-size-mismatch", lambda c: build_transformer_model(
        ckpt_with(c, lambda v: v.update(hidden_size=8, num_attention_heads=2)) + "/bert_config.json",
        str(c.tmp / B)), Raises(ValueError, r"shape mismatch for bert/embeddings/word_embeddings")),
    ("data-file-missing", lambda c: SimilarityModel.from_checkpoint(ckpt_with(
        c, write=lambda f: os.remove(f / "bert_model.ckpt.data-00000-of-00001"))),
     Raises(ValueError, r"cannot read bert/.*its .data file is missing or truncated")),
    ("cli-data-file-missing", lambda c: cli("synonyms", "查询", "--model", ckpt_with(
        c, write=lambda f: os.remove(f / "bert_model.ckpt.data-00000-of-00001"))),
     Exit2(r"bert_model.ckpt: cannot read .*missing or truncated")),
    ("cli-data-file-truncated", lambda c: cli("synonyms", "查询", "--model", ckpt_with(
        c, write=lambda f: truncate(f / "bert_model.ckpt.data-00000-of-00001"))),
     Exit2("missing or truncated")),
    ("index-file-truncated", lambda c: SimilarityModel.from_checkpoint(ckpt_with(
        c, write=lambda f: truncate(f / "bert_model.ckpt.index"))), Raises(ValueError, r"bert_model.ckpt.index is damaged")),
    ("no-checkpoint-files", lambda c: SimilarityModel.from_checkpoint(ckpt_with(c, write=lambda f: [
        os.remove(f / n) for n in os.listdir(f) if n.startswith("bert_model.ckpt") or n == "checkpoint"])),
     Raises(FileNotFoundError, r"no TF checkpoint \(\*.index\) in folder")),
    ("roformer-loaded-as-bert", lambda c: build_transformer_model(str(c.root / R / "bert_config.json"),
                                                                  str(c.root / R), model="bert"),
     Raises(ValueError, "a RoFormer checkpoint.*use model='roformer'")),
    ("roformer-detected-by-cli", lambda c: cli("synonyms", "查询", "--model", str(c.root / R), "-n", "4", "-k", "2"),
     Works(lambda code: code == 0)),
    ("roformer-detected-by-api", lambda c: SimilarityModel.from_checkpoint(str(c.root / R)),
     Works(lambda sim: "Embedding-Position" not in [layer.name for layer in sim.encoder.layers])),
    ("config-model-type-unknown", lambda c: SimilarityModel.from_checkpoint(
        ckpt_with(c, lambda v: v.update(model_type="gpt"))), Raises(ValueError, "config model_type 'gpt'")),
    # --- vocab files
    ("vocab-longer-than-embedding", lambda c: SimilarityModel.from_checkpoint(vocab_lines(c, VOCAB + ["额外"])),
     Raises(ValueError, r"vocab.txt has 34 tokens .* 33 rows: vocab and checkpoint do not belong together")),
    ("cli-vocab-longer", lambda c: cli("synonyms", "查询", "--model", vocab_lines(c, VOCAB + ["额外", "词"])),
     Exit2("do not belong together")),
    ("vocab-shorter-than-embedding", lambda c: SimilarityModel.from_checkpoint(vocab_lines(c, VOCAB[:-3])),
     Raises(ValueError, "has 30 tokens .* 33 rows")),
    ("vocab-bom-dropped", sim_loaded_with_bom, Works(lambda vocab: vocab["[PAD]"] == 0 and len(vocab) == len(VOCAB))),
    ("vocab-duplicate-token", lambda c: load_vocab(vocab_lines(c, VOCAB + ["查"]) + "/vocab.txt"),
     Raises(ValueError, r"vocab.txt:34: duplicate token '查' \(first on line \d+\)")),
    ("vocab-not-utf8", lambda c: load_vocab(vocab_lines(c, None, raw=b"[PAD]\n[UNK]\n\xff\xfe\n") + "/vocab.txt"),
     Raises(ValueError, r"vocab.txt:3: not UTF-8")),
    ("cli-vocab-not-utf8", lambda c: cli("synonyms", "查询", "--model",
                                         vocab_lines(c, None, raw=b"[PAD]\n\xc3\x28\n")), Exit2(r"vocab.txt:2: not UTF-8")),
    ("vocab-empty-line", lambda c: load_vocab(vocab_lines(c, VOCAB[:3] + [""] + VOCAB[3:]) + "/vocab.txt"),
     Raises(ValueError, r"vocab.txt:4: empty line")),
    ("vocab-empty-file", lambda c: load_vocab(vocab_lines(c, None, raw=b"") + "/vocab.txt"),
     Raises(ValueError, "vocab.txt is empty")),
    ("vocab-missing", lambda c: Tokenizer(str(c.tmp / "none.txt")), Raises(FileNotFoundError, "vocab file not found")),
    ("vocab-without-cls", lambda c: Tokenizer({"[PAD]": 0, "[UNK]": 1, "[SEP]": 2}),
     Raises(ValueError, r"lacks required special token\(s\): \[CLS\]")),
    # --- index folders
    ("index-meta-truncated", lambda c: VectorIndex.load(index_with(c, raw={"meta.json": b'{"dim": 16,\n "cou'})),
     Raises(ValueError, r"meta.json:2: not valid JSON")),
    ("cli-index-texts-truncated", lambda c: cli("similar", "查询", "--model", str(c.root / B), "--index",
                                                index_with(c, raw={"texts.json": b'["a", "b'})),
     Exit2(r"texts.json:1: not valid JSON")),
    ("index-texts-not-utf8", lambda c: VectorIndex.load(index_with(c, raw={"texts.json": b'["\xff"]'})),
     Raises(ValueError, r"texts.json: not UTF-8")),
    ("index-texts-not-strings", lambda c: VectorIndex.load(index_with(c, texts=["a", 2, "c", "d", "e", "f"])),
     Raises(ValueError, r"texts.json: entry 1 is int, not a string")),
    ("index-texts-not-a-list", lambda c: VectorIndex.load(index_with(c, raw={"texts.json": b'{"a": 1}'})),
     Raises(ValueError, "texts.json must hold a JSON list")),
    ("index-nan-row", lambda c: VectorIndex.load(index_with(c, vectors=np.where(
        np.arange(6)[:, None] == 2, np.nan, unit_rows()).astype("float32"))),
     Raises(ValueError, r"vectors.npy: row 2 holds NaN")),
    ("index-not-unit", lambda c: VectorIndex.load(index_with(c, vectors=unit_rows(scale=2.2))),
     Raises(ValueError, r"vectors.npy: row 0 has norm 2.2, an index holds unit vectors")),
    ("index-count-mismatch", lambda c: VectorIndex.load(index_with(c, vectors=unit_rows(n=5))),
     Raises(ValueError, r"is inconsistent: \(5, 16\) vectors, 6 texts")),
    ("index-vectors-missing", lambda c: VectorIndex.load(index_with(c, raw={}) if not os.remove(
        c.inner("index") / "vectors.npy") else None), Raises(FileNotFoundError, "vectors.npy not found")),
    ("index-vectors-truncated", lambda c: VectorIndex.load(index_with(c, raw={}) if not truncate(
        c.inner("index") / "vectors.npy", keep=100) else None), Raises(ValueError, "vectors.npy is not a readable")),
    ("index-vectors-pickled", lambda c: VectorIndex.load(index_with(c, vectors=np.array([{"a": 1}] * 6)[:, None]))
     , Raises(ValueError, "vectors.npy is not a readable .npy array")),
    ("index-meta-dim-string", lambda c: VectorIndex.load(index_with(c, meta=lambda m: m.update(dim="16"))),
     Raises(ValueError, r"meta.json: dim must be an integer, got str '16'")),
    ("index-dtype-mismatch", lambda c: VectorIndex.load(index_with(c, meta=lambda m: m.update(dtype="float16"))),
     Raises(ValueError, "holds float32 vectors, .*meta.json says float16")),
    ("cli-index-folder-missing", lambda c: cli("similar", "查询", "--model", str(c.root / B), "--index",
                                               str(c.tmp / "nowhere")), Exit2("index folder not found")),
    ("index-of-other-dimension", lambda c: c.sim.use_index(VectorIndex(8).add(np.ones((1, 8)), ["x"])),
     Raises(ValueError, "index vectors have dimension 8, this model produces 16")),
    ("index-add-zero-vector", lambda c: VectorIndex(4).add(np.zeros((2, 4)), ["a", "b"]),
     Raises(ValueError, "vectors row 0 is all zeros: it has no direction")),
    ("index-add-nan-vector", lambda c: VectorIndex(4).add(np.array([[1, 0, 0, 0], [np.nan, 0, 0, 0]]), ["a", "b"]),
     Raises(ValueError, "vectors row 1 holds NaN or infinity")),
    # --- SimilarityModel folders
    ("model-meta-missing-key", lambda c: SimilarityModel.load(str(c.copy("model")) if not c.edit_json(
        c.inner("model") / "similarity_model.json", lambda m: m.pop("maxlen")) else None),
     Raises(ValueError, r"similarity_model.json lacks required key\(s\): maxlen")),
    ("model-meta-truncated", lambda c: SimilarityModel.load(str(c.copy("model")) if not truncate(
        c.inner("model") / "similarity_model.json") else None), Raises(ValueError, r"similarity_model.json:\d+: not valid JSON")),
    ("model-encoder-damaged", lambda c: SimilarityModel.load(str(c.copy("model")) if not truncate(
        c.inner("model") / "encoder.keras") else None), Raises(ValueError, "encoder.keras is not a loadable Keras model")),
    ("cli-model-vocab-longer", lambda c: cli("similar", "查询", "--model", model_with_vocab(c, VOCAB + ["多"])),
     Exit2("do not belong together")),
    ("cli-model-without-index", lambda c: cli("similar", "查询", "--model", str(c.copy("model")) if not shutil.rmtree(
        c.inner("model") / "index") else None), Exit2("holds no index: pass --index")),
    # --- corpus files
    ("cli-corpus-not-utf8", lambda c: cli("index", "build", corpus_file(c, "一\n".encode() + b"\xff\xfe\n"),
                                          "--model", str(c.root / B), "--out", str(c.tmp / "o")),
     Exit2(r"corpus_case.txt:2: not UTF-8")),
    ("cli-corpus-missing", lambda c: cli("index", "build", str(c.tmp / "none.txt"), "--model", str(c.root / B),
                                         "--out", str(c.tmp / "o")), Exit2("corpus file not found")),
    ("cli-corpus-blank", lambda c: cli("index", "build", corpus_file(c, b"\n \n\t\n"), "--model", str(c.root / B),
                                       "--out", str(c.tmp / "o")), Exit2("has no non-empty lines")),
    ("cli-corpus-zero-width-only", lambda c: cli("index", "build", corpus_file(c, "\u200b\n\u200d\ufeff\n".encode()),
                                                 "--model", str(c.root / B), "--out", str(c.tmp / "o")),
     Exit2("has no non-empty lines")),
    ("cli-corpus-is-folder", lambda c: cli("index", "build", str(c.root), "--model", str(c.root / B), "--out",
                                           str(c.tmp / "o")), Exit2("is a folder, not a file")),
    ("corpus-bom-dropped", index_after_bom_corpus, Works(lambda index: index.texts == CORPUS)),
    ("synonym-corpus-not-utf8", lambda c: read_synonym_groups(corpus_file(c, b'{"text": "\xff"}\n')),
     Raises(ValueError, r"corpus_case.txt:1: not UTF-8")),
    ("synonym-corpus-bad-json", lambda c: read_synonym_groups(corpus_file(c, b'{"text": "a", "synonyms": ["b"]}\n{\n')),
     Raises(ValueError, r"corpus_case.txt:2: not valid JSON")),
    # --- text and argument checks
    ("text-zero-width-only", lambda c: c.sim.encode("\u200b\u200c\u200d\ufeff"),
     Raises(ValueError, "text is empty or whitespace only")),
    ("text-control-only", lambda c: c.sim.encode(["好", "\x00\x01\x7f"]), Raises(ValueError, r"texts\[1\] is empty")),
    ("query-zero-width", lambda c: c.sim.most_similar("\u2060\u200b "), Raises(ValueError, "text is empty")),
    ("cli-query-zero-width", lambda c: cli("similar", "\u200b", "--model", str(c.root / "model")),
     Exit2("text is empty")),
    ("text-bytes", lambda c: c.sim.encode(b"abc"), Raises(TypeError, "texts must be a list of strings, got bytes")),
    ("text-none-in-list", lambda c: c.sim.encode(["好", None]), Raises(TypeError, r"texts\[1\] must be a str, got NoneType")),
    ("batch-size-string", lambda c: c.sim.encode(["好"], batch_size="8"),
     Raises(TypeError, "batch_size must be an integer, got str '8'")),
    ("batch-size-float", lambda c: c.sim.encode(["好"], batch_size=2.5), Raises(TypeError, "batch_size must be an integer")),
    ("batch-size-zero", lambda c: c.sim.encode(["好"], batch_size=0), Raises(ValueError, "batch_size must be at least 1")),
    ("topn-string", lambda c: c.sim.most_similar("查询", topn="3"), Raises(TypeError, "topn must be an integer")),
    ("topn-zero", lambda c: c.sim.most_similar("查询", topn=0), Raises(ValueError, "topn must be at least 1, got 0")),
    ("topn-numpy-int-works", lambda c: c.sim.most_similar("查询", topn=np.int64(2)), Works(lambda r: len(r) == 2)),
    ("seed-string", lambda c: c.sim.gen_synonyms("查询", n=4, k=2, seed="1"), Raises(TypeError, "seed must be an integer")),
    ("seed-negative", lambda c: c.sim.gen_synonyms("查询", n=4, k=2, seed=-1), Raises(ValueError, "seed must be at least 0")),
    ("n-bool", lambda c: c.sim.gen_synonyms("查询", n=True, k=1), Raises(TypeError, "n must be an integer, got bool")),
    ("k-float", lambda c: c.sim.gen_synonyms("查询", n=4, k=2.0), Raises(TypeError, "k must be an integer")),
    ("topp-zero", lambda c: c.sim.gen_synonyms("查询", n=4, k=2, topp=0), Raises(ValueError, r"topp must be in \(0, 1\]")),
    ("topp-above-one", lambda c: c.sim.gen_synonyms("查询", n=4, k=2, topp=1.5), Raises(ValueError, "got 1.5")),
    ("topp-string", lambda c: c.sim.gen_synonyms("查询", n=4, k=2, topp="0.9"), Raises(TypeError, "topp must be a number")),
    ("gen-maxlen-zero", lambda c: c.sim.gen_synonyms("查询", n=4, k=2, maxlen=0), Raises(ValueError, "maxlen must be at least 1")),
    ("model-maxlen-zero", lambda c: SimilarityModel(c.sim.tokenizer, c.sim.encoder, maxlen=0),
     Raises(ValueError, "maxlen must be at least 2, got 0")),
    ("model-maxlen-over-positions", lambda c: SimilarityModel(c.sim.tokenizer, c.sim.encoder, maxlen=33),
     Raises(ValueError, "maxlen 33 exceeds the model's 32 positions")),
    ("tokenizer-maxlen-string", lambda c: c.sim.tokenizer.encode("查询", maxlen="8"),
     Raises(TypeError, "maxlen must be an integer, got str")),
    ("cli-maxlen-zero", lambda c: cli("synonyms", "查询", "--model", str(c.root / B), "--maxlen", "0"),
     Exit2("maxlen must be at least 2, got 0")),
    ("cli-model-folder-maxlen-zero", lambda c: cli("similar", "查询", "--model", str(c.root / "model"), "--maxlen", "0"),
     Exit2("maxlen must be at least 2, got 0")),
    ("cli-maxlen-over-positions", lambda c: cli("synonyms", "查询", "--model", str(c.root / B), "--maxlen", "100"),
     Exit2("maxlen 100 exceeds the model's 32 positions")),
    ("cli-k-above-n", lambda c: cli("synonyms", "查询", "--model", str(c.root / B), "-n", "3", "-k", "5"),
     Exit2("k must be between 1 and n=3")),
    ("cli-maxlen-sets-the-model", lambda c: cli("synonyms", "查询", "--model", str(c.root / B), "--maxlen", "8",
                                                "-n", "4", "-k", "2"), Works(lambda code: code == 0)),
    # --- issue 23: raw errors, silent results and sizes before allocation
    ("use-index-none", lambda c: c.sim.use_index(None), Raises(TypeError, "index must be a VectorIndex, got NoneType")),
    ("use-index-path", lambda c: c.sim.use_index(str(c.root / "index")),
     Raises(TypeError, r"got str \(load a folder with VectorIndex.load\(path\)\)")),
    ("model-tokenizer-none", lambda c: SimilarityModel(None, c.sim.encoder),
     Raises(TypeError, "tokenizer must be a bert4sim.tokenizers.Tokenizer, got NoneType")),
    ("model-encoder-string", lambda c: SimilarityModel(c.sim.tokenizer, "encoder.keras"),
     Raises(TypeError, "encoder must be a Keras model")),
    ("save-checkpoint-string-model", lambda c: save_checkpoint("model", str(c.tmp / "m" / "bert_model.ckpt")),
     Raises(TypeError, r"model must be a bert4sim Keras model or builder \(build_transformer_model\), got str")),
    ("save-checkpoint-vocab-string", lambda c: save_checkpoint(c.sim.encoder, str(c.tmp / "m" / "bert_model.ckpt"),
                                                               vocab="x"),
     Raises(TypeError, r"vocab must be a \{token: id\} dict, got str")),
    ("save-checkpoint-vocab-gaps", lambda c: save_checkpoint(c.sim.encoder, str(c.tmp / "m" / "bert_model.ckpt"),
                                                             vocab={"a": 0, "b": 2}),
     Raises(ValueError, "ids must be 0 .. 1, each once")),
    ("decode-string", lambda c: c.sim.tokenizer.decode("abc"),
     Raises(TypeError, "ids must be a sequence of integer token ids, got str")),
    ("decode-none", lambda c: c.sim.tokenizer.decode(None), Raises(TypeError, "ids must be a sequence .* got NoneType")),
    ("decode-float-id", lambda c: c.sim.tokenizer.decode([2, 5.0]), Raises(TypeError, r"ids\[1\] must be an integer")),
    ("decode-numpy-ids-work", lambda c: c.sim.tokenizer.decode(np.array([2, 10, 3])), Works(lambda t: isinstance(t, str))),
    ("encode-0d-array", lambda c: c.sim.encode(np.array("abc")),
     Raises(TypeError, "texts must be a list of strings, got a 0-dimensional array")),
    ("encode-1d-array-works", lambda c: c.sim.encode(np.array(["查询", "余额"])), Works(lambda v: v.shape == (2, 16))),
    ("encode-normalize-string", lambda c: c.sim.encode(["查询"], normalize="false"),
     Raises(TypeError, "normalize must be True or False, got str 'false'")),
    ("encode-combining-marks-only", lambda c: c.sim.encode(["查询", "\u0301\u0302"]),
     Raises(ValueError, r"texts\[1\] is empty .*combining")),
    ("add-lone-surrogate", lambda c: c.sim.add(["查询", "好\ud800"]),
     Raises(ValueError, r"texts\[1\] holds a lone surrogate '\\ud800' at character 1")),
    ("search-chunk-zero", lambda c: c.sim.index.search(unit_rows(1), chunk_size=0),
     Raises(ValueError, "chunk_size must be at least 1, got 0")),
    ("search-chunk-negative", lambda c: c.sim.index.search(unit_rows(1), chunk_size=-1),
     Raises(ValueError, "chunk_size must be at least 1, got -1")),
    ("search-nan-query", lambda c: c.sim.index.search(np.full((1, 16), np.nan)),
     Raises(ValueError, "queries row 0 holds NaN or infinity")),
    ("search-zero-query", lambda c: c.sim.index.search(np.zeros((2, 16))), Raises(ValueError, "queries row 0 is all zeros")),
    ("search-string-query", lambda c: c.sim.index.search(np.array([["a"] * 16])), Raises(TypeError, "queries must hold numbers")),
    ("index-dim-none", lambda c: VectorIndex(dim=None), Raises(TypeError, "dim must be an integer, got NoneType")),
    ("index-dim-string", lambda c: VectorIndex(dim="8"), Raises(TypeError, "dim must be an integer, got str '8'")),
    ("index-dim-float", lambda c: VectorIndex(dim=1.7), Raises(TypeError, "dim must be an integer, got float 1.7")),
    ("index-breadth-zero", lambda c: VectorIndex(8, search_breadth=0), Raises(ValueError, "search_breadth must be")),
    ("config-huge-vocab", lambda c: build_transformer_model(
        ckpt_with(c, lambda v: v.update(vocab_size=10 ** 12)) + "/bert_config.json"),
     Raises(ValueError, r"bert_config.json: vocab_size must be between 1 and 16777216, got 1000000000000")),
    ("config-huge-positions", lambda c: SimilarityModel.from_checkpoint(
        ckpt_with(c, lambda v: v.update(max_position_embeddings=10 ** 9))),
     Raises(ValueError, r"bert_config.json: max_position_embeddings must be between 1 and 1048576")),
    ("config-over-memory", lambda c: build_transformer_model(
        vocab_size=4_000_000, hidden_size=65536, num_hidden_layers=1, num_attention_heads=1, intermediate_size=1),
     Raises(ValueError, r"would need .* GiB of float32 weights \(mostly vocab_size 4000000 x hidden_size 65536\), "
                        "more than this machine's")),
    ("cli-config-huge-vocab", lambda c: cli("similar", "查询", "--model", ckpt_with(c, lambda v: v.update(
        vocab_size=10 ** 12)), "--index", str(c.root / "index")), Exit2("vocab_size must be between 1 and 16777216")),
    ("config-dropout-string", lambda c: build_transformer_model(
        ckpt_with(c, lambda v: v.update(hidden_dropout_prob="0.1")) + "/bert_config.json"),
     Raises(ValueError, "hidden_dropout_prob must be a number, got str '0.1'")),
    ("config-dropout-one", lambda c: build_transformer_model(
        ckpt_with(c, lambda v: v.update(attention_probs_dropout_prob=1)) + "/bert_config.json"),
     Raises(ValueError, "attention_probs_dropout_prob must be less than 1, got 1")),
    ("config-heads-not-dividing", lambda c: build_transformer_model(
        ckpt_with(c, lambda v: v.update(num_attention_heads=3)) + "/bert_config.json"),
     Raises(ValueError, "hidden_size 16 is not a multiple of num_attention_heads 3")),
    ("config-pooling-unknown", lambda c: SimilarityModel.from_checkpoint(ckpt_with(c, lambda v: v.update(pooling="avg"))),
     Raises(ValueError, "bert_config.json: pooling must be one of 'pooler', 'cls', 'mean', 'max', got str 'avg'")),
    ("model-meta-lower-case-string", lambda c: SimilarityModel.load(str(c.copy("model")) if not c.edit_json(
        c.inner("model") / "similarity_model.json", lambda m: m.update(do_lower_case="false")) else None),
     Raises(ValueError, "similarity_model.json: do_lower_case must be True or False, got str 'false'")),
    ("model-meta-maxlen-float", lambda c: SimilarityModel.load(str(c.copy("model")) if not c.edit_json(
        c.inner("model") / "similarity_model.json", lambda m: m.update(maxlen=16.5)) else None),
     Raises(ValueError, "similarity_model.json: maxlen must be an integer, got float 16.5")),
    ("model-meta-precision-unknown", lambda c: SimilarityModel.load(str(c.copy("model")) if not c.edit_json(
        c.inner("model") / "similarity_model.json", lambda m: m.update(precision="fp8")) else None),
     Raises(ValueError, "similarity_model.json: precision must be one of")),
    ("model-folder-index-of-other-model", lambda c: SimilarityModel.load(str(c.copy("model")) if not c.edit_json(
        c.inner("model") / "index" / "meta.json", lambda m: m.update(model_id="someone-else")) else None),
     Raises(ValueError, r"index: index was built by model someone-else, this model is")),
    ("index-meta-breadth-string", lambda c: VectorIndex.load(index_with(c, meta=lambda m: m.update(search_breadth="64"))),
     Raises(ValueError, r"meta.json: search_breadth must be an integer, got str '64'")),
    ("index-meta-backend-unknown", lambda c: VectorIndex.load(index_with(c, meta=lambda m: m.update(backend="annoy"))),
     Raises(ValueError, r"meta.json: backend must be one of 'numpy', 'faiss'")),
    ("from-checkpoint-pooling-typo", lambda c: SimilarityModel.from_checkpoint(str(c.root / B), pooling="avg"),
     Raises(ValueError, "pooling must be one of 'pooler', 'cls', 'mean', 'max', got str 'avg'")),
    ("from-checkpoint-lower-case-string", lambda c: SimilarityModel.from_checkpoint(str(c.root / B), do_lower_case="no"),
     Raises(TypeError, "do_lower_case must be True or False, got str 'no'")),
    ("tokenizer-lower-case-string", lambda c: Tokenizer(c.sim.tokenizer.token_dict, do_lower_case="false"),
     Raises(TypeError, "do_lower_case must be True or False, got str 'false'")),
    ("gen-n-over-memory", lambda c: c.sim.gen_synonyms("查询", n=10 ** 10, k=1),
     Raises(ValueError, r"n=10000000000 samples would need .* GiB of decoding buffers, more than half")),
    ("cli-n-over-memory", lambda c: cli("synonyms", "查询", "--model", str(c.root / B), "-n", str(10 ** 10), "-k", "1"),
     Exit2("decoding buffers")),
    ("million-character-text", lambda c: c.sim.encode(LONG), Works(lambda v: v.shape == (16,))),
    ("million-character-query-synonyms", lambda c: c.sim.gen_synonyms(LONG, n=4, k=2, seed=0),
     Works(lambda r: isinstance(r, list) and len(r) <= 2)),
]


def test_case_list_is_long_enough():
    names = [name for name, _, _ in CASES]
    assert len(names) == len(set(names)) and len(names) >= 60


@pytest.mark.parametrize("name, action, expect", CASES, ids=[case[0] for case in CASES])
def test_bad_input(built, tmp_path, capsys, name, action, expect):
    root, sim = built
    ctx = Ctx(root, sim, tmp_path)
    if isinstance(expect, Raises):
        with pytest.raises(expect.kind, match=expect.pattern):
            action(ctx)
        return
    if isinstance(expect, Exit2):
        argv = action(ctx)
        capsys.readouterr()
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("bert4sim: "), err
        assert "Traceback" not in err and "unexpected" not in err, err
        import re

        assert re.search(expect.pattern, lines[0]), lines[0]
        if expect.after:
            expect.after(ctx)
        return
    result = action(ctx)
    if isinstance(result, list) and result and isinstance(result[0], str) and result[0] in ("synonyms", "similar",
                                                                                            "index"):
        result = cli_main(result)
    assert expect.check(result), result
