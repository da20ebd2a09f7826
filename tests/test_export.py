"""bert4sim export: the encoder as a TensorFlow SavedModel gives the same vectors after tf.saved_model.load."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert4sim.cli import main as cli_main
from bert4sim.export import export_saved_model
from bert4sim.models import build_transformer_model, save_checkpoint
from bert4sim.similarity import SimilarityModel
from bert4sim.snippets import sequence_padding
from bert4sim.tokenizers import Tokenizer

CHARS = "我想注销信用卡怎么办理银行开户查询余额今天天气很好明天下雨吗手机充电慢"
TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(CHARS))
CORPUS = ["我想注销信用卡", "信用卡怎么注销", "怎么办理银行开户", "查询余额", "今天天气很好", "明天下雨吗", "手机充电慢"]


def _batch(tokenizer, texts, second=None):
    pairs = [tokenizer.encode(t, second, maxlen=16) for t in texts]
    return (tf.constant(sequence_padding([p[0] for p in pairs]), tf.int32),
            tf.constant(sequence_padding([p[1] for p in pairs]), tf.int32))


@pytest.mark.parametrize("model_type, pooling", [("bert", "pooler"), ("roformer", "mean")])
def test_saved_model_round_trip_gives_the_same_vectors(tmp_path, model_type, pooling):
    keras.utils.set_random_seed(1)
    base = build_transformer_model(vocab_size=len(TOKENS), model=model_type, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=4, intermediate_size=64, with_pool="linear")
    save_checkpoint(base, str(tmp_path / "ckpt" / "bert_model.ckpt"))
    (tmp_path / "ckpt" / "vocab.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    sim = SimilarityModel.from_checkpoint(str(tmp_path / "ckpt"), pooling=pooling, model=model_type,
                                          precision="float32")
    out = export_saved_model(sim, str(tmp_path / "exported"))
    serve = tf.saved_model.load(out).signatures["serving_default"]
    token_ids, segment_ids = _batch(sim.tokenizer, CORPUS)
    result = serve(token_ids=token_ids, segment_ids=segment_ids)
    np.testing.assert_allclose(result["vectors"].numpy(), sim.encode(CORPUS, normalize=False), atol=1e-6, rtol=0)
    np.testing.assert_allclose(result["unit_vectors"].numpy(), sim.encode(CORPUS), atol=1e-6, rtol=0)
    pair_ids, pair_segments = _batch(sim.tokenizer, CORPUS[:2], "查询余额")  # segment ids reach the encoder
    direct = sim.encoder([pair_ids, pair_segments], training=False)
    np.testing.assert_allclose(serve(token_ids=pair_ids, segment_ids=pair_segments)["vectors"].numpy(), direct,
                               atol=1e-6, rtol=0)
    meta = json.load(open(os.path.join(out, "assets.extra", "bert4sim.json"), encoding="utf-8"))
    assert meta["model_id"] == sim.model_id and meta["maxlen"] == sim.maxlen
    assert Tokenizer(os.path.join(out, "assets.extra", "vocab.txt")).token_dict == sim.tokenizer.token_dict


def test_export_from_the_shell_refuses_a_non_empty_folder(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    base = build_transformer_model(vocab_size=len(TOKENS), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=64, with_pool="linear")
    save_checkpoint(base, str(tmp_path / "ckpt" / "bert_model.ckpt"))
    (tmp_path / "ckpt" / "vocab.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    out = tmp_path / "exported"
    assert cli_main(["export", "--model", str(tmp_path / "ckpt"), "--out", str(out)]) == 0
    assert "exported the encoder" in capsys.readouterr().out
    assert "serving_default" in tf.saved_model.load(str(out)).signatures
    # float32 products unless asked, whatever precision="auto" picks on this CPU
    assert json.load(open(out / "assets.extra" / "bert4sim.json"))["precision"] == "float32"
    assert cli_main(["export", "--model", str(tmp_path / "ckpt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bert4sim: ") and "exists and is not empty" in err
    assert [p for p in os.listdir(tmp_path) if p.startswith(".export-")] == []
