"""Two worker processes on localhost (MultiWorkerMirroredStrategy from TF_CONFIG via get_strategy) train SimBERT
like one process with two replicas on the same global batches."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
RUN = os.path.join(ROOT, "tests", "tiny_simbert_run.py")
# 2 epochs x 2 steps of global batches of 8 rows (4 per worker), dropout and noisy sources on, step backups
ARGS = ["--batch-size", "8", "--epochs", "2", "--steps-per-epoch", "2", "--backup-every", "2"]
TIMEOUT = 300  # seconds for the whole group; a worker waiting for a dead peer must not hang the suite


def free_ports(count):
    """Ports free on 127.0.0.1 now (the OS picks them; nothing listens beyond this machine)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_two_workers_end_with_the_weights_of_one_process_on_the_same_global_batches(tmp_path):
    try:
        ports = free_ports(2)
    except OSError as error:
        pytest.skip(f"cannot open TCP sockets on 127.0.0.1 here ({error}): two workers cannot talk")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    base = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    base.pop("TF_CONFIG", None)
    runs = {}
    for index in range(2):
        env = dict(base, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        runs[f"worker{index}"] = env
    runs["one_process"] = base  # MirroredStrategy over 2 logical CPUs of one process
    processes = {}
    for name, env in runs.items():
        extra = ["--logical-cpus", "2"] if name == "one_process" else []
        log = open(tmp_path / f"{name}.log", "w+")
        command = [sys.executable, RUN, str(tmp_path / name), str(tmp_path / f"{name}.npz"), *ARGS, *extra]
        processes[name] = (subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env,
                                            cwd=ROOT), log)
    results = {}
    try:
        for name, (process, log) in processes.items():
            try:
                stdout, _ = process.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{name} did not finish in {TIMEOUT} s") from None
            log.seek(0)
            assert process.returncode == 0, f"{name} failed:\n{log.read()[-3000:]}"
            results[name] = json.loads(stdout.strip().splitlines()[-1])
    finally:
        for process, log in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    for index in range(2):
        assert results[f"worker{index}"] == {"start_step": 0, "steps": 4, "replicas": 2,
                                             "strategy": "MultiWorkerStrategy"}
    assert results["one_process"]["replicas"] == 2 and results["one_process"]["strategy"] == "MirroredStrategy"
    weights = {name: np.load(str(tmp_path / f"{name}.npz")) for name in processes}
    names = weights["one_process"].files
    assert len(names) > 10 and all(weights[w].files == names for w in weights)
    for name in names:
        np.testing.assert_array_equal(weights["worker0"][name], weights["worker1"][name], err_msg=name)
        np.testing.assert_allclose(weights["worker0"][name], weights["one_process"][name], rtol=0, atol=1e-5,
                                   err_msg=name)
    initial = np.load(str(tmp_path / "one_process.npz.initial.npz"))
    assert max(float(np.abs(weights["worker0"][n] - initial[n]).max()) for n in names) > 1e-3  # it trained
