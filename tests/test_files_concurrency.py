"""One saver and several readers on the same bert4sim folder for 10 s (threads, then processes).

Every version's two payload files carry the same save number; a reader checks they agree (one
complete version) and that the numbers it sees never go back. BERT4SIM_STRESS_SECONDS changes
the duration.
"""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from bert4sim.files import new_version, read_current

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = float(os.environ.get("BERT4SIM_STRESS_SECONDS", "10"))
CKPT = "bert_model.ckpt"
PADDING = "x" * 50_000  # big enough that a read takes a while


def write(folder, kind, number):
    with new_version(folder, kind, CKPT if kind == "checkpoint" else None) as path:
        for name in ("a.txt", "b.txt"):
            with open(os.path.join(path, name), "w") as f:
                f.write(f"{number}\n{PADDING}")


def read(path):
    with open(os.path.join(path, "a.txt")) as f:
        a = f.read()
    with open(os.path.join(path, "b.txt")) as f:
        b = f.read()
    if a != b:
        raise AssertionError(f"mixed versions in {path}: {a[:10]!r} vs {b[:10]!r}")
    return int(a.split("\n", 1)[0])


@pytest.mark.parametrize("kind", ["vector-index", "checkpoint"])
def test_one_saver_thread_and_reader_threads(tmp_path, kind):
    folder = str(tmp_path / "f")
    where = os.path.join(folder, CKPT) if kind == "checkpoint" else folder  # TF users pass the checkpoint's folder
    write(folder, kind, 0)
    stop, saves, results = threading.Event(), [0], []

    def saver():
        while not stop.is_set():
            saves[0] += 1
            write(folder, kind, saves[0])

    def reader():
        loads, last, errors = 0, -1, []
        while not stop.is_set():
            try:
                number = read_current(where, kind, read)
                if number < last:
                    errors.append(f"went back from {last} to {number}")
                last, loads = number, loads + 1
            except Exception as error:  # every failure is recorded, none may happen
                errors.append(repr(error))
        results.append((loads, errors))

    threads = [threading.Thread(target=saver)] + [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(SECONDS)
    stop.set()
    for thread in threads:
        thread.join()
    print(f"{kind}, threads: {saves[0]} saves, loads per reader {[loads for loads, _ in results]} in {SECONDS:.0f} s")
    assert [errors for _, errors in results] == [[]] * 4
    assert saves[0] > 50 and all(loads > 50 for loads, _ in results), (saves, results)
    assert sorted(n for n in os.listdir(os.path.dirname(os.path.join(where, "x"))) if n.startswith("v"))[-1] \
        == f"v{saves[0] + 1:06d}"


CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[4])
from test_files_concurrency import read, write
from bert4sim.files import read_current
role, folder, until = sys.argv[1], sys.argv[2], float(sys.argv[3])
if role == "saver":
    number = 0
    while time.time() < until:
        number += 1
        write(folder, "vector-index", number)
    print(json.dumps({"saves": number}))
else:
    loads, last, errors = 0, -1, []
    while time.time() < until:
        try:
            number = read_current(folder, "vector-index", read)
            if number < last:
                errors.append(f"went back from {last} to {number}")
            last, loads = number, loads + 1
        except Exception as error:
            errors.append(repr(error))
    print(json.dumps({"loads": loads, "errors": errors[:20], "failures": len(errors)}))
"""


def test_one_saver_process_and_reader_processes(tmp_path):
    folder = str(tmp_path / "f")
    write(folder, "vector-index", 0)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    until = time.time() + 2 + SECONDS  # the children start within 2 s
    children = [subprocess.Popen([sys.executable, "-c", CHILD, role, folder, str(until), os.path.dirname(__file__)],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for role in ["saver"] + ["reader"] * 3]
    reports = []
    for child in children:
        out, err = child.communicate(timeout=SECONDS + 120)
        assert child.returncode == 0, err
        reports.append(json.loads(out))
    saver, readers = reports[0], reports[1:]
    print(f"processes: {saver['saves']} saves, loads per reader {[r['loads'] for r in readers]} in {SECONDS:.0f} s")
    assert [r["failures"] for r in readers] == [0, 0, 0], readers
    assert saver["saves"] > 50 and all(r["loads"] > 50 for r in readers), reports
