"""examples/simbert.py end to end on a micro setting, and kill-and-resume training."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, os.path.join(ROOT, "examples"))


def test_simbert_example_micro_run(tmp_path, capsys):
    import simbert

    from bert4sim.models import build_transformer_model

    out = str(tmp_path / "simbert")
    # A backup left by a killed run with other flags is refused, not silently resumed; --fresh discards it.
    from bert4sim.files import claim

    claim(out, "checkpoint", "bert_model.ckpt")  # as the killed run did
    os.makedirs(os.path.join(out, "run", "backup"))
    open(os.path.join(out, "run", "backup", "latest.weights.h5"), "w").close()
    with open(os.path.join(out, "run", "run_settings.json"), "w") as f:
        json.dump({**vars(simbert.parse_args(["--micro", "--output", out])), "epochs": 7}, f)
    try:
        simbert.main(["--micro", "--output", out])
        raise AssertionError("resumed a run made with other settings")
    except SystemExit as exit:
        assert exit.code == 2
    refusal = capsys.readouterr().err.strip().splitlines()
    assert len(refusal) == 1 and refusal[0].startswith("simbert.py: the interrupted run in ")
    assert "epochs: 7 then, 200 now" in refusal[0] and "--fresh" in refusal[0]
    history = simbert.main(["--micro", "--output", out, "--fresh"])
    printed = capsys.readouterr().out
    assert printed.startswith("starting afresh: discarded the interrupted run in ")
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert {"seq2seq_loss", "similarity_loss"} <= set(history.history)
    for name in ("bert_config.json", "vocab.txt", "bert_model.ckpt/checkpoint", "checkpoint"):  # bert4keras's paths
        assert os.path.isfile(os.path.join(out, name))
    reloaded = build_transformer_model(os.path.join(out, "bert_config.json"), out, application="unilm",
                                       with_pool="linear")
    ids = np.array([[2, 10, 11, 3, 12, 3]])
    segments = np.array([[0, 0, 0, 0, 1, 1]])
    assert reloaded.predict([ids, segments], verbose=0)[0].shape == (1, 32)
    assert "gen_synonyms:" in printed and "most_similar:" in printed
    # The shell command on what the demo saved: the checkpoint folder (64 positions) and the model folder's index.
    from bert4sim.cli import main as cli_main

    assert cli_main(["synonyms", "信用卡怎么注销", "--model", out, "-n", "8", "-k", "3", "--seed", "0"]) == 0
    assert cli_main(["synonyms", "信用卡怎么注销", "--model", out, "-n", "8", "-k", "3", "--maxlen", "16"]) == 0
    assert cli_main(["similar", "信用卡怎么注销", "--model", os.path.join(out, "similarity_model"), "--topn", "1"]) == 0
    score, text = capsys.readouterr().out.strip().splitlines()[-1].split("\t")  # micro model: any corpus text
    assert -1 <= float(score) <= 1.0001 and text


def test_simbert_demo_in_bfloat16_gen_synonyms_returns_k_distinct(tmp_path):
    import simbert

    args = simbert.parse_args(["--micro", "--precision", "bfloat16", "--output", str(tmp_path / "s")])
    bert, tokenizer, history = simbert.train(args)
    assert bert.blocks[0].attention.query_dense.matmul_dtype == "bfloat16"
    assert bert.model.get_layer("Transformer-0").attention.query_dense.kernel.dtype == "float32"
    assert history.history["loss"][-1] < history.history["loss"][0]
    sim = simbert.save_and_demo(args, bert, tokenizer)
    assert sim.precision == "bfloat16"
    results = sim.gen_synonyms("信用卡怎么注销", n=20, k=3, seed=0, topk=50)
    assert len(results) == 3 and len(set(results)) == 3


KILLED_RUN = textwrap.dedent('''
    import json, os, sys
    import keras, numpy as np
    from bert4sim.data import to_dataset
    from bert4sim.simbert import simbert_batches, simbert_training_model
    from bert4sim.models import build_transformer_model
    from bert4sim.tokenizers import Tokenizer
    from bert4sim.training import make_optimizer, training_callbacks

    out, kill_at = sys.argv[1], int(sys.argv[2])
    keras.utils.set_random_seed(0)
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("甲乙丙丁戊己庚辛"))}
    groups = [["甲乙", "乙甲"], ["丙丁", "丁丙"], ["戊己", "己戊"], ["庚辛", "辛庚"]]
    tokenizer = Tokenizer(vocab)
    bert = build_transformer_model(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, application="unilm", with_pool="linear",
                                   return_keras_model=False)
    trainer = simbert_training_model(bert)
    trainer.compile(optimizer=make_optimizer(1e-3, total_steps=12))
    record = {"batches": 0}

    class Probe(keras.callbacks.Callback):  # runs after BackupAndRestore has restored the backup
        def on_train_begin(self, logs=None):
            record["start_step"] = int(self.model.optimizer.iterations.numpy())
            record["start_epoch"] = self.model._initial_epoch or 0

        def on_train_batch_end(self, batch, logs=None):
            record["batches"] += 1
            if kill_at and int(self.model.optimizer.iterations.numpy()) == kill_at:
                os._exit(3)  # a crash mid-epoch, nothing flushed

    trainer.fit(to_dataset(simbert_batches(groups, tokenizer, 4)), epochs=3, steps_per_epoch=4, verbose=0,
                callbacks=training_callbacks(out, tensorboard=False, backup_every=2) + [Probe()])
    record["steps"] = int(trainer.optimizer.iterations.numpy())
    print(json.dumps(record))
''')


def test_killed_training_resumes_from_the_step_backup(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN)
    out = str(tmp_path / "run")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    # killed after step 7, in the second epoch (4 steps each); the last backup was taken after step 6
    first = subprocess.run([sys.executable, str(script), out, "7"], capture_output=True, text=True, env=env)
    assert first.returncode == 3, first.stderr[-2000:]
    assert os.path.isfile(os.path.join(out, "backup", "latest.weights.h5"))
    second = subprocess.run([sys.executable, str(script), out, "0"], capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    record = json.loads(second.stdout.strip().splitlines()[-1])
    assert record["start_step"] == 6 and record["start_epoch"] == 1  # resumed from the backup, not from scratch
    assert record["batches"] == 6 and record["steps"] == 12  # the planned 3 x 4 steps, no more
    assert not os.path.exists(os.path.join(out, "backup"))
