"""Exact resume: step-indexed SimBERT batches, and a run SIGKILLed at several steps ending with the weights of an
uninterrupted one (dropout and RoFormer-Sim noise on)."""
import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from bert4sim.data import interleave, to_dataset
from bert4sim.retromae import RetroMAECollator, retromae_batches, retromae_dataset
from bert4sim.roformer_sim import noisy_source
from bert4sim.simbert import simbert_batches
from bert4sim.tokenizers import Tokenizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
RUN = os.path.join(ROOT, "tests", "tiny_simbert_run.py")
CHARACTERS = list("甲乙丙丁戊己庚辛")
GROUPS = [[a + b, b + a, a + b + a] for a, b in zip(CHARACTERS, CHARACTERS[1:] + CHARACTERS[:1])]


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer({t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + CHARACTERS)})


def take(stream, count):
    return [next(stream) for _ in range(count)]


def test_batches_from_a_start_step_equal_the_stream_from_zero_after_that_many(tokenizer):
    noise = noisy_source(noise_probability=0.5, word_rate=0.5, pre_tokenize=list)
    make = lambda start: simbert_batches(GROUPS, tokenizer, 4, maxlen=8, seed=5, encode_source=noise,  # noqa: E731
                                         start_step=start)
    whole = take(make(0), 11)  # 4 steps a pass: crosses two pass boundaries
    for start in (1, 3, 4, 6, 9):
        for mine, expected in zip(take(make(start), 11 - start), whole[start:]):
            for a, b in zip(mine, expected):
                np.testing.assert_array_equal(a, b)
    masked = sum(int((batch[0] == 4).sum()) for batch in whole)
    assert masked > 0  # the noise was on, and replayed exactly
    other_seed = take(simbert_batches(GROUPS, tokenizer, 4, maxlen=8, seed=6, encode_source=noise), 4)
    assert any(a[0].shape != b[0].shape or (a[0] != b[0]).any() for a, b in zip(other_seed, whole))


def test_interleaved_general_pairs_resume_at_any_step_too(tokenizer):
    general = [["甲乙丙", "丙乙甲"], ["丁戊己", "己戊丁"], ["庚辛甲", "甲辛庚"]]
    make = lambda start: simbert_batches(GROUPS, tokenizer, 4, maxlen=8, seed=2, general=general,  # noqa: E731
                                         ratio=(2, 1), start_step=start)
    whole = take(make(0), 9)
    for start in (1, 4, 7):
        for mine, expected in zip(take(make(start), 9 - start), whole[start:]):
            np.testing.assert_array_equal(mine[0], expected[0])
    stream = interleave([list("abc"), list("xyzw")], ratio=(1, 2), seed=3)
    items = [next(stream) for _ in range(30)]
    for start in (2, 5, 13):
        later = interleave([list("abc"), list("xyzw")], ratio=(1, 2), seed=3, start=start)
        assert [next(later) for _ in range(30 - start)] == items[start:]


def test_retromae_batches_resume_at_any_step_too(tokenizer):
    texts = ["甲乙丙丁", "戊己庚辛", "乙丙丁戊己", "庚辛甲乙", "丙丁戊", "己庚辛甲乙丙"]
    collator = RetroMAECollator(tokenizer, maxlen=8, encoder_mask_rate=0.3, decoder_mask_rate=0.5, seed=0)
    whole = take(retromae_batches(texts, collator, 2, seed=4), 8)  # 3 steps a pass
    for start in (2, 3, 5):
        for mine, expected in zip(take(retromae_batches(texts, collator, 2, seed=4, start_step=start), 8 - start),
                                  whole[start:]):
            for a, b in zip(mine[0] + mine[1], expected[0] + expected[1]):
                np.testing.assert_array_equal(a, b)
    dataset = retromae_dataset(lambda step: retromae_batches(texts, collator, 2, seed=4, start_step=step),
                               start_step=lambda: 5)
    np.testing.assert_array_equal(next(iter(dataset))[0][3].numpy(), whole[5][0][3])  # the decoder mask


def test_to_dataset_restarts_a_step_indexed_stream_at_the_step_it_reads(tokenizer):
    position = {"step": 0}
    dataset = to_dataset(lambda step: simbert_batches(GROUPS, tokenizer, 4, maxlen=8, start_step=step),
                         start_step=lambda: position["step"])
    whole = take(simbert_batches(GROUPS, tokenizer, 4, maxlen=8), 6)
    first = [x[0].numpy() for (x,) in dataset.take(2)]
    position["step"] = 3  # read again when the dataset is iterated again (as after a restore)
    again = [x[0].numpy() for (x,) in dataset.take(2)]
    for got, expected in zip(first + again, whole[:2] + whole[3:5]):
        np.testing.assert_array_equal(got, expected[0])
    fixed = to_dataset(lambda step: simbert_batches(GROUPS, tokenizer, 4, maxlen=8, start_step=step), start_step=5)
    np.testing.assert_array_equal(next(iter(fixed))[0][0].numpy(), whole[5][0])


def test_stream_argument_errors(tokenizer):
    with pytest.raises(ValueError, match="start_step needs batches given as a function"):
        to_dataset(simbert_batches(GROUPS, tokenizer, 4), start_step=3)
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        next(simbert_batches(GROUPS, tokenizer, 4, seed=-1))
    with pytest.raises(ValueError, match="start_step must be a non-negative integer, got 1.5"):
        next(simbert_batches(GROUPS, tokenizer, 4, start_step=1.5))


def _start(out, weights, pause_at=0):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, RUN, out, weights, "--pause-at", str(pause_at)]
    log = open(f"{weights}.{pause_at}.log", "w+")  # stderr to a file: a full pipe cannot block the run
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=ROOT)
    process.log = log
    return process


def _errors(process):
    process.log.seek(0)
    return process.log.read()[-3000:]


def _kill_when_paused(process, step, timeout=240):
    """Wait for 'paused STEP', then SIGKILL the process (nothing flushed, nothing cleaned up)."""
    watchdog = threading.Timer(timeout, process.kill)  # a run that hangs is killed, and the test fails
    watchdog.start()
    paused = False
    try:
        for line in process.stdout:
            if line.strip() == f"paused {step}":
                paused = True
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=60)
    finally:
        watchdog.cancel()
    assert paused and process.returncode == -signal.SIGKILL, f"run did not reach step {step}: {_errors(process)}"


def _finish(process, timeout=240):
    try:
        stdout, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"training run did not finish in {timeout} s: {_errors(process)}") from None
    assert process.returncode == 0, _errors(process)
    return json.loads(stdout.strip().splitlines()[-1])


def test_run_killed_at_several_steps_ends_with_the_uninterrupted_weights(tmp_path):
    # 3 epochs x 3 steps, a backup every 2 steps (after steps 2, 4, 6, 8), dropout 0.1, noisy sources.
    # Killed after step 3 (last batch of epoch 0, one step past a backup), then, resumed, right after the
    # backup of step 4, then at step 7 (mid-epoch, one step past a backup); the last restart finishes.
    reference = _start(str(tmp_path / "reference"), str(tmp_path / "reference.npz"))
    out, weights = str(tmp_path / "killed"), str(tmp_path / "killed.npz")
    for step in (3, 4, 7):
        _kill_when_paused(_start(out, weights, pause_at=step), step)
        assert os.path.isfile(os.path.join(out, "backup", "latest.weights.h5"))
    resumed = _finish(_start(out, weights))
    assert resumed == {"start_step": 6, "steps": 9, "replicas": 1, "strategy": "_DefaultDistributionStrategy"}
    assert _finish(reference)["steps"] == 9
    expected, got = np.load(str(tmp_path / "reference.npz")), np.load(weights)
    assert len(expected.files) == len(got.files) > 10
    for name in expected.files:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-6, err_msg=name)


def test_backup_with_metadata_cut_short_by_a_kill_falls_back_to_the_previous_one(tmp_path):
    import keras

    from bert4sim.training import ExactResume, training_callbacks

    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations.value)) == 3:
                raise RuntimeError("crash")

    def fit(resume, extra=()):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.01), "mse")
        x, y = np.ones((8, 3), "float32"), np.ones((8, 1), "float32")
        model.fit(x, y, batch_size=2, epochs=2, verbose=0,
                  callbacks=training_callbacks(str(tmp_path), tensorboard=False, backup_every=1, resume=resume)
                  + list(extra))

    with pytest.raises(RuntimeError, match="crash"):
        fit(ExactResume(), [Crash()])  # backups after steps 1, 2, 3; the one of step 2 kept as *.bkp
    metadata = tmp_path / "backup" / "training_metadata.json"
    metadata.write_text("")  # what a kill while Keras rewrote it leaves
    resume = ExactResume()
    fit(resume)
    assert resume.start_step() == 2  # resumed from the previous backup, and finished
    assert not (tmp_path / "backup").exists()
    with pytest.raises(RuntimeError, match="crash"):
        fit(ExactResume(), [Crash()])
    metadata.write_text('{"epo')
    for stale in (tmp_path / "backup").glob("*.bkp"):
        stale.unlink()
    with pytest.raises(ValueError, match=r"training_metadata.json is damaged .* no previous backup .* delete"):
        fit(ExactResume())
