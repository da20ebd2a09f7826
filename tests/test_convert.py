"""transformers → Google checkpoint conversion: safetensors reader, name mapping, errors."""
import json
import struct

import numpy as np
import pytest

from bert4sim.convert import convert_transformers_bert, read_safetensors, to_google_names
from bert4sim.models import build_transformer_model
from numpy_reference import forward

H, LAYERS, VOCAB, INTER = 8, 1, 12, 16


def write_safetensors(path, tensors, dtype_override=None):
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array).astype("<f4").tobytes()
        dtype = "F32"
        if dtype_override == "BF16":
            raw = (np.ascontiguousarray(array, "<f4").view("<u4") >> 16).astype("<u2").tobytes()
            dtype = "BF16"
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def hf_state_dict(seed=0, prefix="bert."):
    rng = np.random.default_rng(seed)
    n = lambda *s: (rng.standard_normal(s) * 0.3).astype("float32")  # noqa: E731
    sd = {
        "embeddings.word_embeddings.weight": n(VOCAB, H),
        "embeddings.position_embeddings.weight": n(16, H),
        "embeddings.token_type_embeddings.weight": n(2, H),
        "embeddings.LayerNorm.weight": 1 + n(H), "embeddings.LayerNorm.bias": n(H),
        "embeddings.position_ids": np.arange(16, dtype="float32")[None],
        "pooler.dense.weight": n(H, H), "pooler.dense.bias": n(H),
    }
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            sd[p + part + ".weight"], sd[p + part + ".bias"] = n(H, H), n(H)
        sd[p + "intermediate.dense.weight"], sd[p + "intermediate.dense.bias"] = n(INTER, H), n(INTER)
        sd[p + "output.dense.weight"], sd[p + "output.dense.bias"] = n(H, INTER), n(H)
        for part in ("attention.output.LayerNorm", "output.LayerNorm"):
            sd[p + part + ".weight"], sd[p + part + ".bias"] = 1 + n(H), n(H)
    return {prefix + k: v for k, v in sd.items()}


def make_folder(folder, state_dict):
    folder.mkdir(exist_ok=True)
    write_safetensors(str(folder / "model.safetensors"), state_dict)
    config = dict(vocab_size=VOCAB, hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=2,
                  intermediate_size=INTER, max_position_embeddings=16, type_vocab_size=2, hidden_act="gelu",
                  model_type="bert")
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + [f"t{i}" for i in range(8)]))
    return config


def test_read_safetensors_f32_and_bf16(tmp_path):
    arrays = {"a": np.arange(6, dtype="float32").reshape(2, 3), "b": np.array([1.5, -2.0], "float32")}
    write_safetensors(str(tmp_path / "x.safetensors"), arrays)
    out = read_safetensors(str(tmp_path / "x.safetensors"))
    np.testing.assert_array_equal(out["a"], arrays["a"])
    write_safetensors(str(tmp_path / "y.safetensors"), arrays, dtype_override="BF16")
    np.testing.assert_array_equal(read_safetensors(str(tmp_path / "y.safetensors"))["b"], arrays["b"])


def test_mapping_transposes_kernels_and_drops_position_ids():
    sd = hf_state_dict(prefix="")
    arrays = to_google_names(sd)
    np.testing.assert_array_equal(arrays["bert/encoder/layer_0/intermediate/dense/kernel"],
                                  sd["encoder.layer.0.intermediate.dense.weight"].T)
    assert arrays["bert/encoder/layer_0/attention/output/LayerNorm/gamma"].shape == (H,)
    assert not any("position_ids" in name for name in arrays)


def test_converted_model_matches_numpy_forward(tmp_path):
    config = make_folder(tmp_path / "hf", hf_state_dict())
    checkpoint = convert_transformers_bert(str(tmp_path / "hf"), str(tmp_path / "google"))
    model = build_transformer_model(str(tmp_path / "google" / "bert_config.json"), checkpoint, with_pool=True)
    tokens, segments = np.array([[2, 5, 6, 3, 0]]), np.zeros((1, 5), "int32")
    weights = to_google_names(hf_state_dict())
    expected = forward(weights, config, tokens, segments, with_pool=True)
    np.testing.assert_allclose(model.predict([tokens, segments], verbose=0), expected, atol=1e-5)
    assert (tmp_path / "google" / "vocab.txt").read_text().startswith("[PAD]")


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        convert_transformers_bert(str(tmp_path), str(tmp_path / "out"))
    (tmp_path / "bad.safetensors").write_bytes(struct.pack("<Q", 5) + b"{nope")
    with pytest.raises(ValueError, match="header is not valid JSON"):
        read_safetensors(str(tmp_path / "bad.safetensors"))
    (tmp_path / "short.safetensors").write_bytes(struct.pack("<Q", 999))
    with pytest.raises(ValueError, match="runs past the end"):
        read_safetensors(str(tmp_path / "short.safetensors"))
    with pytest.raises(ValueError, match="unknown BERT parameter.*encoder.layer.0.crossattention.weight"):
        to_google_names({**hf_state_dict(), "encoder.layer.0.crossattention.weight": np.zeros(1, "float32")})
    sd = hf_state_dict()
    sd["bert.embeddings.word_embeddings.weight"] = np.zeros((VOCAB + 1, H), "float32")
    make_folder(tmp_path / "hf", sd)
    with pytest.raises(ValueError, match=r"word_embeddings has shape \(13, 8\), config says \(12, 8\)"):
        convert_transformers_bert(str(tmp_path / "hf"), str(tmp_path / "out"))
