"""transformers ↔ Google conversion (bert4sim.convert) on folders that transformers itself saved.

Fixtures: tests/fixtures/transformers/ (made by tests/fixtures/make_transformers_fixtures.py with torch,
transformers and sentence-transformers; these tests need none of them).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from bert4sim.convert import convert, detect, is_transformers_folder, main, read_google_folder, read_transformers_folder
from bert4sim.heads import Pooling
from bert4sim.models import build_transformer_model
from bert4sim.safetensors_io import read_safetensors, write_safetensors
from bert4sim.checkpoints import resolve_checkpoint_path
from bert4sim.tensor_bundle import read_bundle

HERE = os.path.join(os.path.dirname(__file__), "fixtures")
FIXTURES = os.path.join(HERE, "transformers")
REFERENCE = np.load(os.path.join(FIXTURES, "reference.npz"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fixture(name):
    return os.path.join(FIXTURES, name)


def google_outputs(folder, model_type, with_pool=False, with_mlm=False):
    built = build_transformer_model(os.path.join(folder, "bert_config.json"), folder, model=model_type,
                                    with_pool=with_pool, with_mlm=with_mlm, return_keras_model=False)
    outputs = [built.blocks[-1].output] + list(built.model.outputs if (with_pool or with_mlm) else [])
    model = keras.Model(built.model.inputs, outputs)
    return model.predict([REFERENCE["token_ids"], REFERENCE["segment_ids"]], verbose=0)


@pytest.mark.parametrize("name,model_type,heads", [
    ("bert_model", "bert", {"with_pool": True}),
    ("bert_mlm", "bert", {"with_mlm": "linear"}),
    ("roformer_model", "roformer", {}),
    ("roformer_mlm", "roformer", {"with_mlm": "linear"}),
])
def test_converted_folder_gives_transformers_outputs(tmp_path, name, model_type, heads):
    kind, prefix = convert(fixture(name), tmp_path / "google")
    assert kind == "google" and prefix == str(tmp_path / "google" / "bert_model.ckpt")
    config = json.loads((tmp_path / "google" / "bert_config.json").read_text())
    assert config["model_type"] == model_type
    assert set(read_bundle(resolve_checkpoint_path(prefix))) >= {"bert/embeddings/word_embeddings"}  # bert/ scope, as released
    outputs = google_outputs(str(tmp_path / "google"), model_type, **heads)
    if not isinstance(outputs, list):
        outputs = [outputs]
    hidden = outputs[0]
    key = name
    np.testing.assert_allclose(hidden, REFERENCE[f"{key}_hidden"], atol=1e-5, rtol=0)
    if heads.get("with_pool"):
        np.testing.assert_allclose(outputs[1], REFERENCE[f"{key}_pooled"], atol=1e-5, rtol=0)
    if heads.get("with_mlm"):
        np.testing.assert_allclose(outputs[1], REFERENCE[f"{key}_logits"], atol=1e-5, rtol=0)
    assert len((tmp_path / "google" / "vocab.txt").read_text(encoding="utf-8").splitlines()) == config["vocab_size"]


@pytest.mark.parametrize("name", ["bert_model", "bert_mlm", "roformer_model", "roformer_mlm"])
def test_round_trip_gives_back_what_transformers_saved(tmp_path, name):
    convert(fixture(name), tmp_path / "google")
    kind, folder = convert(tmp_path / "google", tmp_path / "hf")
    assert kind == "transformers"
    original = read_safetensors(os.path.join(fixture(name), "model.safetensors"))
    again = read_safetensors(os.path.join(folder, "model.safetensors"))
    assert sorted(again) == sorted(original)
    for tensor in original:
        np.testing.assert_array_equal(again[tensor], original[tensor], err_msg=tensor)
    theirs = json.loads(open(os.path.join(fixture(name), "config.json")).read())
    ours = json.loads(open(os.path.join(folder, "config.json")).read())
    for key in ("model_type", "architectures", "vocab_size", "hidden_size", "num_hidden_layers",
                "num_attention_heads", "intermediate_size", "hidden_act", "max_position_embeddings",
                "type_vocab_size", "layer_norm_eps", "pad_token_id", "rotary_value", "embedding_size"):
        assert ours.get(key) == theirs.get(key), key
    vocab = open(os.path.join(folder, "vocab.txt"), encoding="utf-8").read().splitlines()
    assert vocab == list(json.load(open(os.path.join(fixture(name), "tokenizer.json")))["model"]["vocab"])
    tokenizer = json.load(open(os.path.join(folder, "tokenizer_config.json")))
    assert tokenizer["tokenizer_class"] == "BertTokenizer" and tokenizer["do_lower_case"] is True


@pytest.mark.parametrize("name", ["tiny_simbert", "tiny_roformer_sim"])
def test_google_round_trip_keeps_every_variable(tmp_path, name):
    google = tmp_path / "src"
    shutil.copytree(os.path.join(HERE, name), google)
    (google / "vocab.txt").write_text("".join(f"[t{i}]\n" for i in range(120)), encoding="utf-8")
    convert(google, tmp_path / "hf")
    convert(tmp_path / "hf", tmp_path / "back")
    config, arrays, _, model_type, scope = read_google_folder(str(google))
    config2, arrays2, _, model_type2, _ = read_google_folder(str(tmp_path / "back"))
    assert (model_type, model_type2) == ({"tiny_simbert": "bert"}.get(name, "roformer"),) * 2
    assert sorted(arrays2) == sorted(arrays)
    for variable in arrays:
        np.testing.assert_array_equal(arrays2[variable], arrays[variable], err_msg=variable)
    assert {k: config2[k] for k in config} == config


def test_bert4keras_numbers_through_transformers(tmp_path):
    """transformers, run on our conversion of bert4keras's tiny RoFormer-Sim, gave bert4keras's outputs.

    The recorded run is tied to today's converter by the digest of the tensors it wrote."""
    recorded = np.load(os.path.join(HERE, "bert4keras_roformer.npz"))
    google = tmp_path / "src"
    shutil.copytree(os.path.join(HERE, "tiny_roformer_sim"), google)
    (google / "vocab.txt").write_text("".join(t + "\n" for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                                              + [f"[unused{i}]" for i in range(5, 120)]), encoding="utf-8")
    convert(google, tmp_path / "hf")
    tensors = read_safetensors(str(tmp_path / "hf" / "model.safetensors"))
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode() + b"\0" + np.ascontiguousarray(tensors[name], "<f4").tobytes())
    assert digest.hexdigest() == str(recorded["digest"])
    bert4keras = np.load(os.path.join(HERE, "bert4keras_reference.npz"))
    for ours, theirs in (("encoder_pooled_tanh", "encoder_pooled_tanh"), ("unilm_pooled_linear", "pooled"),
                         ("unilm_mlm", "mlm")):
        np.testing.assert_allclose(recorded[ours], bert4keras[f"tiny_roformer_sim_{theirs}"], atol=1e-5, rtol=0)


def test_sentence_transformers_folder_keeps_its_pooling(tmp_path):
    info = detect(fixture("st_bert"))
    assert info["kind"] == "sentence-transformers" and info["pooling"] == "mean"
    convert(fixture("st_bert"), tmp_path / "google")
    config = json.loads((tmp_path / "google" / "bert_config.json").read_text())
    assert config["pooling"] == "mean" and config["max_seq_length"] == 16
    built = build_transformer_model(str(tmp_path / "google" / "bert_config.json"), str(tmp_path / "google"),
                                    return_keras_model=False)
    ids = REFERENCE["st_token_ids"]
    vectors = Pooling(config["pooling"])([built.blocks[-1].output, built.model.inputs[0]])
    encoder = keras.Model(built.model.inputs, vectors)
    got = encoder.predict([ids, np.zeros_like(ids)], verbose=0)
    np.testing.assert_allclose(got, REFERENCE["st_embeddings"], atol=1e-5, rtol=0)
    from bert4sim.tokenizers import Tokenizer

    tokenizer = Tokenizer(str(tmp_path / "google" / "vocab.txt"), do_lower_case=True)
    for text, row in zip(REFERENCE["texts"], ids):
        assert tokenizer.encode(str(text))[0] == [int(i) for i in row if i != 0]
    # and back: a sentence-transformers layout with the same pooling
    convert(tmp_path / "google", tmp_path / "st")
    pooling = json.loads((tmp_path / "st" / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] is True and pooling["pooling_mode_cls_token"] is False
    assert detect(str(tmp_path / "st"))["pooling"] == "mean"


def test_pytorch_bin_needs_torch_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(ImportError, match=r"pytorch_model.bin is a PyTorch pickle and torch is not installed: "
                                          r"pip install torch, or save the model as model.safetensors"):
        convert(fixture("bert_mlm_bin"), tmp_path / "google")
    assert not (tmp_path / "google").exists()


def test_pytorch_bin_with_torch(tmp_path):
    pytest.importorskip("torch")
    _, arrays, _ = read_transformers_folder(fixture("bert_mlm_bin"))
    _, expected, _ = read_transformers_folder(fixture("bert_mlm"))
    assert sorted(arrays) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(arrays[name], expected[name])


def _copy_with(tmp_path, name, config_changes=None, tensor_changes=None):
    folder = tmp_path / name
    shutil.copytree(fixture(name), folder)
    if config_changes:
        config = json.loads((folder / "config.json").read_text())
        config.update(config_changes)
        (folder / "config.json").write_text(json.dumps(config))
    if tensor_changes:
        tensors = read_safetensors(str(folder / "model.safetensors"))
        tensors.update(tensor_changes(tensors))
        write_safetensors(str(folder / "model.safetensors"), tensors)
    return folder


@pytest.mark.parametrize("name,changes,message", [
    ("roformer_model", {"rotary_value": True}, "rotary_value is true"),
    ("roformer_model", {"embedding_size": 8}, "embedding_size 8 differs from hidden_size 16"),
    ("bert_model", {"layer_norm_eps": 1e-5}, r"layer_norm_eps 1e-05 is not supported"),
    ("bert_model", {"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key'"),
    ("bert_model", {"model_type": "xlm-roberta"}, "model_type 'xlm-roberta' is not supported"),
    ("bert_model", {"hidden_act": "gelu_fast"}, "hidden_act 'gelu_fast' is not supported"),
    ("bert_model", {"num_hidden_layers": 3}, r"num_hidden_layers is 3, the weights have layers \[0, 1\]"),
])
def test_what_bert4sim_cannot_represent_is_refused(tmp_path, name, changes, message):
    folder = _copy_with(tmp_path, name, config_changes=changes)
    with pytest.raises(ValueError, match=message):
        convert(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_causal_lm_stays_one(tmp_path):
    folder = _copy_with(tmp_path, "roformer_mlm", config_changes={"is_decoder": True,
                                                                  "architectures": ["RoFormerForCausalLM"]})
    convert(folder, tmp_path / "google")
    assert json.loads((tmp_path / "google" / "bert_config.json").read_text())["is_decoder"] is True
    convert(tmp_path / "google", tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["is_decoder"] is True and config["architectures"] == ["RoFormerForCausalLM"]


def test_untied_decoder_and_foreign_rotary_table_are_refused(tmp_path):
    folder = _copy_with(tmp_path, "bert_mlm", tensor_changes=lambda t: {
        "cls.predictions.decoder.weight": t["bert.embeddings.word_embeddings.weight"] + 1})
    with pytest.raises(ValueError, match="cls.predictions.decoder.weight differs from the word embeddings"):
        convert(folder, tmp_path / "out")
    folder = _copy_with(tmp_path, "roformer_model", tensor_changes=lambda t: {
        "encoder.embed_positions.weight": t["encoder.embed_positions.weight"] * 2})
    with pytest.raises(ValueError, match="encoder.embed_positions.weight .* is not the sinusoidal rotary table"):
        convert(folder, tmp_path / "out2")


def test_names_from_files_never_become_paths(tmp_path):
    folder = _copy_with(tmp_path, "bert_model", tensor_changes=lambda t: {"../../evil": np.zeros(2, "float32")})
    with pytest.raises(ValueError, match=r"unknown BERT parameter\(s\), not converted: \.\./\.\./evil"):
        convert(folder, tmp_path / "out")
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out").exists()
    shard = _copy_with(tmp_path / "s", "bert_model")
    os.rename(shard / "model.safetensors", shard / "part.safetensors")
    (shard / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "../part.safetensors"}}))
    with pytest.raises(ValueError, match=r"'\.\./part\.safetensors' is not a plain file name in the folder"):
        convert(shard, tmp_path / "out")
    st = tmp_path / "st"
    shutil.copytree(fixture("st_bert"), st)
    modules = json.loads((st / "modules.json").read_text())
    modules[1]["path"] = "../../1_Pooling"
    (st / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="module path '../../1_Pooling' leaves the model folder"):
        convert(st, tmp_path / "out")


def test_sharded_safetensors(tmp_path):
    folder = _copy_with(tmp_path, "bert_mlm")
    tensors = read_safetensors(str(folder / "model.safetensors"))
    os.remove(folder / "model.safetensors")
    names = sorted(tensors)
    half = len(names) // 2
    write_safetensors(str(folder / "model-00001-of-00002.safetensors"), {n: tensors[n] for n in names[:half]})
    write_safetensors(str(folder / "model-00002-of-00002.safetensors"), {n: tensors[n] for n in names[half:]})
    weight_map = {n: f"model-0000{1 + (i >= half)}-of-00002.safetensors" for i, n in enumerate(names)}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    _, arrays, _ = read_transformers_folder(str(folder))
    _, expected, _ = read_transformers_folder(fixture("bert_mlm"))
    assert sorted(arrays) == sorted(expected)


def test_bfloat16_and_float16_weights_are_widened(tmp_path):
    import ml_dtypes

    folder = _copy_with(tmp_path, "bert_model", tensor_changes=lambda t: {
        name: value.astype(ml_dtypes.bfloat16 if "layer.0" in name else np.float16) for name, value in t.items()})
    _, arrays, _ = read_transformers_folder(str(folder))
    _, exact, _ = read_transformers_folder(fixture("bert_model"))
    for name, value in arrays.items():
        assert value.dtype == np.float32
        low = ml_dtypes.bfloat16 if "layer_0" in name else np.float16
        np.testing.assert_array_equal(value, exact[name].astype(low).astype(np.float32), err_msg=name)


def test_sentence_transformers_modules_bert4sim_lacks_are_refused(tmp_path):
    st = tmp_path / "st"
    shutil.copytree(fixture("st_bert"), st)
    (st / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "weightedmean"}))
    with pytest.raises(ValueError, match="pooling weightedmean is not supported"):
        detect(str(st))
    (st / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert detect(str(st))["pooling"] == "cls"  # the sentence-transformers 2-5 keys
    modules = json.loads((st / "modules.json").read_text())
    modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (st / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="module 'sentence_transformers.models.Dense' has no bert4sim equivalent"):
        detect(str(st))


def test_detect_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a model folder"):
        detect(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tf_model.h5").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"no model.safetensors or pytorch_model.bin \(it has tf_model.h5"):
        detect(str(tmp_path))
    assert detect(fixture("bert_model"))["kind"] == "transformers"
    assert is_transformers_folder(fixture("bert_model")) and is_transformers_folder(fixture("st_bert"))
    assert not is_transformers_folder(os.path.join(HERE, "tiny_simbert")) and not is_transformers_folder(str(tmp_path))
    assert detect(os.path.join(HERE, "tiny_simbert"))["kind"] == "google"


def test_cli_imports_no_tensorflow_and_errors_in_one_line(tmp_path):
    code = ("import sys; from bert4sim.convert import main; rc = main(sys.argv[1:3]); "
            "print(rc, sorted(m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=ROOT)
    run = subprocess.run([sys.executable, "-c", code, fixture("roformer_mlm"), str(tmp_path / "out")],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert run.stdout.strip().splitlines()[-1] == "0 []", run.stdout + run.stderr
    assert "wrote a Google-format checkpoint" in run.stdout
    run = subprocess.run([sys.executable, "-m", "bert4sim.convert", str(tmp_path / "nothing"), str(tmp_path / "x")],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.strip().count("\n") == 0 and "model folder not found" in run.stderr
    assert main([fixture("roformer_mlm"), str(tmp_path / "out")]) == 0  # an earlier conversion is replaced
    code = ("import sys; from bert4sim.cli import main; rc = main(['convert'] + sys.argv[1:3]); "
            "print(rc, sorted(m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out"), str(tmp_path / "hf")],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert run.stdout.strip().splitlines()[-1] == "0 []", run.stdout + run.stderr  # `bert4sim convert` too
