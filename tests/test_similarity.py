"""SimilarityModel and VectorIndex on a tiny model (the bert4sim command: test_cli.py)."""
import json
import os

import keras
import numpy as np
import pytest

from bert4sim.files import current_version
from bert4sim.heads import Pooling
from bert4sim.models import build_transformer_model, save_checkpoint
from bert4sim.similarity import SimilarityModel, VectorIndex

from tiny_similarity import CORPUS, VOCAB, tiny_similarity_model


@pytest.fixture(scope="module")
def sim():
    return tiny_similarity_model()


def test_encode_order_normalisation_and_batching(sim):
    together = sim.encode(CORPUS, batch_size=3)
    one_by_one = np.stack([sim.encode(text) for text in CORPUS])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    raw = sim.encode(CORPUS, normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_progress_bar_only_when_asked_or_long(sim, capsys):
    sim.encode(CORPUS, batch_size=3, show_progress=True)
    shown = capsys.readouterr()
    assert shown.out == "" and "7/7" in shown.err  # keras.utils.Progbar's counter, on stderr
    assert "\x1b" not in shown.err and "\b" not in shown.err  # not a terminal: one plain summary line
    sim.encode(CORPUS, batch_size=3)  # default: shown from 10000 texts on
    sim.encode(CORPUS, batch_size=3, show_progress=False)
    assert capsys.readouterr() == ("", "")


def test_most_similar_ranks_itself_first_and_respects_topn(sim):
    sim.build_index(CORPUS)
    results = sim.most_similar("信用卡怎么注销", topn=3)
    assert len(results) == 3 and results[0][0] == "信用卡怎么注销"
    assert results[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in results] == sorted((s for _, s in results), reverse=True)
    assert len(sim.most_similar("查询余额", topn=100)) == len(CORPUS)
    sim.add(["手机充电很慢"])
    assert len(sim.index) == len(CORPUS) + 1


def test_gen_synonyms_dedupes_and_excludes_the_query(sim):
    results = sim.gen_synonyms("我想注销信用卡", n=30, k=5, seed=0)
    assert 0 < len(results) <= 5
    assert len(set(results)) == len(results) and "我想注销信用卡" not in results
    vectors = sim.encode(["我想注销信用卡"] + results)
    scores = vectors[1:] @ vectors[0]
    assert list(scores) == sorted(scores, reverse=True)


def test_index_persistence_round_trip(sim, tmp_path):
    index = sim.build_index(CORPUS)
    index.save(str(tmp_path / "index"))
    assert sorted(os.listdir(current_version(str(tmp_path / "index"), "vector-index"))) == [
        "meta.json", "texts.json", "vectors.npy"]
    loaded = VectorIndex.load(str(tmp_path / "index"))
    assert loaded.texts == CORPUS and loaded.model_id == sim.model_id
    np.testing.assert_array_equal(loaded.vectors, index.vectors)
    index.save(str(tmp_path / "index"))  # overwriting keeps a valid index
    assert VectorIndex.load(str(tmp_path / "index")).texts == CORPUS


def test_model_save_load_round_trip(sim, tmp_path):
    sim.build_index(CORPUS)
    sim.save(str(tmp_path / "model"))
    loaded = SimilarityModel.load(str(tmp_path / "model"))
    np.testing.assert_allclose(loaded.encode(CORPUS), sim.encode(CORPUS), atol=1e-6)
    assert loaded.most_similar("查询余额", topn=1)[0][0] == "查询余额"
    assert loaded.gen_synonyms("我想注销信用卡", n=10, k=3, seed=1) == sim.gen_synonyms("我想注销信用卡", n=10, k=3, seed=1)


def test_float16_index_and_chunked_search_match_exact():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((500, 16)).astype("float32")
    texts = [f"t{i}" for i in range(500)]
    exact = VectorIndex(16).add(vectors, texts)
    scores, indices = exact.search(vectors[:5], topn=7, chunk_size=64)
    full = (vectors[:5] / np.linalg.norm(vectors[:5], axis=1, keepdims=True)) @ exact.vectors.T
    np.testing.assert_array_equal(indices, np.argsort(-full, axis=1)[:, :7])
    half = VectorIndex(16, dtype="float16").add(vectors, texts)
    assert half.vectors.dtype == np.float16
    assert (half.search(vectors[:5], topn=1)[1][:, 0] == np.arange(5)).all()


def test_faiss_backend_if_available():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((300, 8)).astype("float32")
    index = VectorIndex(8, backend="faiss").add(vectors[:200], [str(i) for i in range(200)])
    index.add(vectors[200:], [str(i) for i in range(200, 300)])
    assert index._faiss.ntotal == len(index) == 300  # each vector indexed once
    assert (index.search(vectors[:10], topn=1)[1][:, 0] == np.arange(10)).all()
    exact = VectorIndex(8).add(vectors, [str(i) for i in range(300)])
    np.testing.assert_array_equal(index.search(vectors[:20], topn=5)[1], exact.search(vectors[:20], topn=5)[1])


def test_faiss_index_is_saved_and_ivf_trains_on_first_add(tmp_path):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((400, 8)).astype("float32")
    texts = [str(i) for i in range(400)]
    ivf = VectorIndex(8, backend="faiss", faiss_factory="IVF4,Flat", search_breadth=4).add(vectors, texts)
    exact = VectorIndex(8).add(vectors, texts)
    # nprobe = all 4 lists: the IVF search is exhaustive, so it equals the exact one
    np.testing.assert_array_equal(ivf.search(vectors[:20], topn=5)[1], exact.search(vectors[:20], topn=5)[1])
    ivf.save(str(tmp_path / "ivf"))
    assert "faiss.index" in os.listdir(current_version(str(tmp_path / "ivf"), "vector-index"))
    loaded = VectorIndex.load(str(tmp_path / "ivf"))
    assert loaded._faiss is not None and loaded.faiss_factory == "IVF4,Flat" and loaded.search_breadth == 4
    np.testing.assert_array_equal(loaded.search(vectors[:20], topn=5)[1], exact.search(vectors[:20], topn=5)[1])
    with pytest.raises(ValueError, match="needs at least 64 vectors, got 10"):
        VectorIndex(8, backend="faiss", faiss_factory="IVF64,Flat").add(vectors[:10], texts[:10])
    with pytest.raises(ValueError, match="not a faiss index-factory string"):
        VectorIndex(8, backend="faiss", faiss_factory="NoSuchIndex").add(vectors[:10], texts[:10])


def test_pooling_excludes_padding():
    sequence = np.random.default_rng(2).standard_normal((1, 4, 3)).astype("float32")
    token_ids = np.array([[2, 5, 3, 0]])
    padded = np.concatenate([sequence, np.full((1, 2, 3), 99.0, "float32")], 1)
    padded_ids = np.array([[2, 5, 3, 0, 0, 0]])
    for mode in ("cls", "mean", "max"):
        a = keras.ops.convert_to_numpy(Pooling(mode)([sequence, token_ids]))
        b = keras.ops.convert_to_numpy(Pooling(mode)([padded, padded_ids]))
        np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(Pooling("mean")([sequence, token_ids])),
                               sequence[:, :3].mean(1), atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(Pooling("max")([sequence, token_ids])),
                               sequence[:, :3].max(1), atol=1e-6)


@pytest.mark.parametrize("model, pooling", [("bert", "pooler"), ("roformer", "mean"), ("bert", "max")])
def test_bfloat16_encoder_agrees_with_float32(tmp_path, model, pooling):
    keras.utils.set_random_seed(4)
    built = build_transformer_model(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=64, model=model, with_pool="linear")
    save_checkpoint(built, str(tmp_path / "bert_model.ckpt"))
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    exact = SimilarityModel.from_checkpoint(str(tmp_path), pooling=pooling, model=model, maxlen=16)
    fast = SimilarityModel.from_checkpoint(str(tmp_path), pooling=pooling, model=model, maxlen=16,
                                           precision="bfloat16")
    a, b = exact.encode(CORPUS), fast.encode(CORPUS)  # sorted by length: batches with padding
    assert (a * b).sum(1).min() > 0.999
    fast.build_index(CORPUS)
    assert fast.most_similar("查询余额", topn=1)[0][0] == "查询余额"
    fast.save(str(tmp_path / "saved"))
    assert SimilarityModel.load(str(tmp_path / "saved")).precision == "bfloat16"
    # Kernels are cast once per encode() call: weights changed in between are used.
    dense = fast.encoder.get_layer("Transformer-0").feed_forward.inner_dense
    dense.kernel.assign(dense.kernel * -3.0)
    changed = fast.encode(CORPUS)
    assert np.abs(changed - b).max() > 1e-3  # a stale copy would give b again
    np.testing.assert_allclose(changed, SimilarityModel(fast.tokenizer, fast.encoder, maxlen=16,
                                                        precision="bfloat16").encode(CORPUS), atol=1e-6)


def test_bfloat16_switches_bert4sim_layers_and_refuses_other_encoders(sim):
    inputs = [keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32")]
    foreign = keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 8)(inputs[0])),
                          name="foreign")
    with pytest.raises(ValueError, match="needs an encoder made of bert4sim layers; 'foreign'"):
        SimilarityModel(sim.tokenizer, foreign, precision="bfloat16")
    projected = keras.Model(sim.encoder.inputs, keras.layers.Dense(8, name="Projection")(sim.encoder.outputs[0]))
    exact = SimilarityModel(sim.tokenizer, projected).encode(CORPUS)
    fast = SimilarityModel(sim.tokenizer, projected, precision="bfloat16")
    assert projected.get_layer("Transformer-0").attention.query_dense.matmul_dtype == "bfloat16"
    assert (fast.encode(CORPUS) * exact).sum(1).min() > 0.999
    SimilarityModel(sim.tokenizer, projected, precision="float32")  # switches the layers back
    assert projected.get_layer("Transformer-0").attention.query_dense.matmul_dtype is None
    with pytest.raises(ValueError, match=r"precision must be one of \('auto', 'float32', 'bfloat16'\)"):
        SimilarityModel(sim.tokenizer, sim.encoder, precision="float16")


def test_auto_precision_is_the_default_and_is_decided_again_where_loaded(sim, tmp_path, monkeypatch):
    from bert4sim import precision

    monkeypatch.setattr(precision, "_CHOSEN", {})
    monkeypatch.setenv(precision.PIN_VARIABLE, "bfloat16")  # stands for a machine where bfloat16 is faster
    fast = SimilarityModel(sim.tokenizer, sim.encoder, maxlen=16)
    assert (fast.requested_precision, fast.precision) == ("auto", "bfloat16")
    assert sim.encoder.get_layer("Transformer-0").attention.query_dense.matmul_dtype == "bfloat16"
    fast.save(str(tmp_path / "saved"))
    meta = json.loads(open(os.path.join(current_version(str(tmp_path / "saved"), "similarity-model"),
                                        "similarity_model.json"), encoding="utf-8").read())
    assert meta["precision"] == "auto"
    monkeypatch.setenv(precision.PIN_VARIABLE, "float32")  # loaded where float32 is faster
    assert SimilarityModel.load(str(tmp_path / "saved")).precision == "float32"
    inputs = [keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32")]
    foreign = keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 8)(inputs[0])))
    monkeypatch.setenv(precision.PIN_VARIABLE, "bfloat16")
    assert SimilarityModel(sim.tokenizer, foreign).precision == "float32"  # nothing it could switch
    SimilarityModel(sim.tokenizer, sim.encoder, precision="float32")  # the shared fixture back as it was


def test_bad_inputs_are_named(sim, tmp_path):
    with pytest.raises(ValueError, match=r"texts\[1\] is empty or whitespace only"):
        sim.encode(["好", "  "])
    with pytest.raises(TypeError, match=r"texts\[0\] must be a str, got NoneType"):
        sim.encode([None])
    with pytest.raises(ValueError, match="texts is empty"):
        sim.encode([])
    with pytest.raises(ValueError, match="corpus is empty"):
        sim.build_index([])
    with pytest.raises(ValueError, match="n must be at least 1"):
        sim.gen_synonyms("你好", n=0)
    with pytest.raises(ValueError, match="k must be between 1 and n=5"):
        sim.gen_synonyms("你好", n=5, k=6)
    with pytest.raises(TypeError, match="text must be a str"):
        sim.most_similar(3)
    other = VectorIndex(8).add(np.ones((1, 8)), ["x"])
    with pytest.raises(ValueError, match="index vectors have dimension 8, this model produces 32"):
        sim.use_index(other)
    wrong_model = VectorIndex(32, model_id="someone-else").add(np.ones((1, 32)), ["x"])
    with pytest.raises(ValueError, match="index was built by model someone-else"):
        sim.use_index(wrong_model)
    with pytest.raises(FileNotFoundError, match="not a bert4sim index folder"):
        VectorIndex.load(str(tmp_path))
