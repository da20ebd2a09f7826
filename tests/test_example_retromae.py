"""examples/retromae_pretrain.py end to end on a micro setting, from scratch and from a checkpoint."""
import os
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, os.path.join(ROOT, "examples"))


def cls_inputs(tokenizer):
    from bert4sim.snippets import sequence_padding

    ids = sequence_padding([tokenizer.encode(t, maxlen=32)[0] for t in ["信用卡怎么注销", "火车票如何改签呢", "好"]])
    return ids, np.zeros_like(ids)


def test_retromae_example_micro_run(tmp_path, capsys):
    import retromae_pretrain

    from bert4sim.models import build_transformer_model
    from bert4sim.tokenizers import load_vocab

    out = str(tmp_path / "retromae")
    args = retromae_pretrain.parse_args(["--micro", "--output", out])
    retromae, tokenizer, history = retromae_pretrain.pretrain(args)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert history.history["decoder_loss"][-1] < history.history["decoder_loss"][0]
    assert {"encoder_loss", "decoder_loss"} <= set(history.history)
    retromae_pretrain.save_encoder(args, retromae, tokenizer)
    folder = os.path.join(out, "encoder")
    for name in ("bert_config.json", "vocab.txt", "bert_model.ckpt/checkpoint", "checkpoint"):  # bert4keras's paths
        assert os.path.isfile(os.path.join(folder, name))
    # The exported encoder alone gives the [CLS] vectors of the pre-training model.
    ids, segments = cls_inputs(tokenizer)
    mask = np.ones(ids.shape + ids.shape[1:], bool)
    inside = retromae.model.predict([ids, segments, ids, mask], verbose=0)[0]
    reloaded = build_transformer_model(os.path.join(folder, "bert_config.json"), folder)
    np.testing.assert_allclose(reloaded.predict([ids, segments], verbose=0)[:, 0], inside, atol=1e-6)
    assert "reloaded encoder: max |[CLS] difference|" in capsys.readouterr().out
    # What examples/simbert.py builds from it: unilm, linear pooler, simplified vocab (keep_tokens).
    token_dict, keep_tokens = load_vocab(os.path.join(folder, "vocab.txt"), simplified=True,
                                         startswith=["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    simbert = build_transformer_model(os.path.join(folder, "bert_config.json"), folder, application="unilm",
                                      with_pool="linear", keep_tokens=keep_tokens)
    assert simbert.outputs[1].shape[-1] == len(keep_tokens)


def test_retromae_example_starts_from_a_checkpoint(tmp_path):
    import retromae_pretrain

    from bert4sim.models import build_transformer_model, save_checkpoint
    from bert4sim.tokenizers import load_vocab

    vocab = os.path.join(ROOT, "examples", "data", "vocab.txt")
    released = str(tmp_path / "released")
    bert = build_transformer_model(vocab_size=len(load_vocab(vocab)), hidden_size=16, num_hidden_layers=1,
                                   num_attention_heads=2, intermediate_size=32, max_position_embeddings=40,
                                   with_pool=True, with_mlm=True)
    save_checkpoint(bert, os.path.join(released, "bert_model.ckpt"))
    out = str(tmp_path / "out")
    history = retromae_pretrain.main(["--micro", "--epochs", "1", "--steps-per-epoch", "2", "--output", out,
                                      "--config", os.path.join(released, "bert_config.json"),
                                      "--checkpoint", released, "--vocab", vocab, "--maxlen", "24"])
    assert len(history.history["loss"]) == 1
    # The saved encoder keeps the released pooler (RetroMAE does not train it) and loads back.
    folder = os.path.join(out, "encoder")
    saved = build_transformer_model(os.path.join(folder, "bert_config.json"), folder, with_pool=True)
    np.testing.assert_array_equal(saved.get_layer("Pooler-Dense").get_weights()[0],
                                  bert.get_layer("Pooler-Dense").get_weights()[0])
    assert not np.array_equal(saved.get_layer("Transformer-0").get_weights()[0],
                              bert.get_layer("Transformer-0").get_weights()[0])
