"""One saver and several readers on the same VectorIndex and SimilarityModel folder for 10 s: threads, then processes.

Save number k writes an index whose texts all read ``k:i`` and whose vectors are a seeded function of
k (a SimilarityModel's index too, and its pooler bias is k), so a reader can tell whether what it
loaded is one complete version. Every load must succeed, be one version, and never go back to an
older one. BERT4SIM_STRESS_SECONDS changes the duration.
"""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECONDS = float(os.environ.get("BERT4SIM_STRESS_SECONDS", "10"))
DIM = 8


def index_of(k):
    from bert4sim.index import VectorIndex, unit_rows

    rows = 3 + k % 5  # the count changes too
    vectors = unit_rows(np.random.default_rng(k).standard_normal((rows, DIM)))
    return VectorIndex(DIM).add(vectors, [f"{k}:{i}" for i in range(rows)])


def check_index(index):
    """The save number of a loaded index, after checking that its texts, count and vectors are of that save."""
    k = int(index.texts[0].split(":")[0])
    expected = index_of(k)
    assert index.texts == expected.texts, index.texts
    np.testing.assert_allclose(index.vectors, expected.vectors, atol=1e-6)
    return k


def tiny_model():
    import keras

    from bert4sim.models import build_transformer_model
    from bert4sim.similarity import SimilarityModel
    from bert4sim.tokenizers import Tokenizer

    keras.utils.set_random_seed(0)
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("我想注销信用卡"))}
    base = build_transformer_model(vocab_size=len(vocab), hidden_size=DIM, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=16, with_pool="linear", max_position_embeddings=16)
    return SimilarityModel(Tokenizer(vocab), base, maxlen=8)


def save_model(sim, folder, k):
    """Save number k: pooler bias k, an index of save k built by this very model."""
    from bert4sim.similarity import SimilarityModel

    bias = sim.encoder.get_layer("Pooler-Dense").weights[1]
    bias.assign(np.full(bias.shape, float(k), "float32"))
    model = SimilarityModel(sim.tokenizer, sim.encoder, maxlen=8, precision="float32")  # model_id from the weights
    index = index_of(k)
    index.model_id = model.model_id
    model.index = index
    model.save(folder)


def check_model(model):
    from bert4sim.similarity import _fingerprint

    bias = np.asarray(model.encoder.get_layer("Pooler-Dense").weights[1])
    k = int(bias[0])
    assert np.all(bias == k), bias
    assert check_index(model.index) == k  # the index of the same save
    assert model.model_id == model.index.model_id == _fingerprint(model.encoder)  # meta and encoder of one save
    return k


def run_threads(save, load, check, readers=4):
    stop, saves, results = threading.Event(), [0], []

    def saver():
        while not stop.is_set():
            saves[0] += 1
            save(saves[0])

    def reader():
        loads, last, errors = 0, -1, []
        while not stop.is_set():
            try:
                k = check(load())
                if k < last:
                    errors.append(f"went back from save {last} to {k}")
                last, loads = k, loads + 1
            except Exception as error:  # every failure is recorded; none may happen
                errors.append(f"{type(error).__name__}: {error}")
        results.append({"loads": loads, "failures": len(errors), "errors": errors[:5]})

    threads = [threading.Thread(target=saver)] + [threading.Thread(target=reader) for _ in range(readers)]
    for thread in threads:
        thread.start()
    time.sleep(SECONDS)
    stop.set()
    for thread in threads:
        thread.join()
    return saves[0], results


def test_vector_index_one_saver_thread_and_reader_threads(tmp_path):
    from bert4sim.index import VectorIndex

    folder = str(tmp_path / "idx")
    index_of(0).save(folder)
    saves, readers = run_threads(lambda k: index_of(k).save(folder), lambda: VectorIndex.load(folder), check_index)
    print(f"VectorIndex, threads: {saves} saves, loads per reader {[r['loads'] for r in readers]} in {SECONDS:.0f} s")
    assert [r["failures"] for r in readers] == [0] * 4, readers
    assert saves > 20 and all(r["loads"] > 20 for r in readers), (saves, readers)


def test_similarity_model_one_saver_thread_and_reader_threads(tmp_path):
    from bert4sim.similarity import SimilarityModel

    folder, sim = str(tmp_path / "model"), tiny_model()
    save_model(sim, folder, 0)
    saves, readers = run_threads(lambda k: save_model(sim, folder, k), lambda: SimilarityModel.load(folder),
                                 check_model, readers=3)
    print(f"SimilarityModel, threads: {saves} saves, loads per reader {[r['loads'] for r in readers]} "
          f"in {SECONDS:.0f} s")
    assert [r["failures"] for r in readers] == [0] * 3, readers
    assert saves > 5 and all(r["loads"] > 2 for r in readers), (saves, readers)


CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[5])
import conftest  # noqa: F401  (quiet TensorFlow, precision pinned as in the suite)
from test_saves_concurrent import check_index, check_model, index_of, save_model, tiny_model
role, kind, folder, go = sys.argv[1:5]
if kind == "model":
    from bert4sim.similarity import SimilarityModel
    sim = tiny_model() if role == "saver" else None
    load, check = (lambda: SimilarityModel.load(folder)), check_model
    save = lambda k: save_model(sim, folder, k)
else:
    from bert4sim.index import VectorIndex
    load, check, save = (lambda: VectorIndex.load(folder)), check_index, (lambda k: index_of(k).save(folder))
open(go + "." + str(os.getpid()), "w").close()  # ready
while not os.path.exists(go):
    time.sleep(0.01)
until = float(open(go).read())
count, last, errors = 0, -1, []
while time.time() < until:
    try:
        if role == "saver":
            save(count + 1)
        else:
            k = check(load())
            if k < last:
                errors.append(f"went back from save {last} to {k}")
            last = k
        count += 1
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}")
print(json.dumps({"count": count, "failures": len(errors), "errors": errors[:5]}))
"""


def run_processes(kind, folder, go, readers):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    children = [subprocess.Popen([sys.executable, "-c", CHILD, role, kind, folder, go, HERE], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for role in ["saver"] + ["reader"] * readers]
    started = time.time()
    while len([n for n in os.listdir(os.path.dirname(go)) if n.startswith("go.")]) < len(children):
        assert time.time() - started < 300 and all(c.poll() is None for c in children), "a child did not start"
        time.sleep(0.1)
    with open(go + ".tmp", "w") as f:
        f.write(str(time.time() + SECONDS))
    os.replace(go + ".tmp", go)  # all children start together
    reports = []
    for child in children:
        out, err = child.communicate(timeout=SECONDS + 300)
        assert child.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports[0], reports[1:]


def test_vector_index_one_saver_process_and_reader_processes(tmp_path):
    folder = str(tmp_path / "idx")
    index_of(0).save(folder)
    saver, readers = run_processes("index", folder, str(tmp_path / "go"), readers=3)
    print(f"VectorIndex, processes: {saver['count']} saves, loads per reader {[r['count'] for r in readers]} "
          f"in {SECONDS:.0f} s")
    assert saver["failures"] == 0 and [r["failures"] for r in readers] == [0] * 3, (saver, readers)
    assert saver["count"] > 20 and all(r["count"] > 20 for r in readers), (saver, readers)


def test_similarity_model_one_saver_process_and_reader_processes(tmp_path):
    folder = str(tmp_path / "model")
    save_model(tiny_model(), folder, 0)
    saver, readers = run_processes("model", folder, str(tmp_path / "go"), readers=2)
    print(f"SimilarityModel, processes: {saver['count']} saves, loads per reader {[r['count'] for r in readers]} "
          f"in {SECONDS:.0f} s")
    assert saver["failures"] == 0 and [r["failures"] for r in readers] == [0] * 2, (saver, readers)
    assert saver["count"] > 5 and all(r["count"] > 2 for r in readers), (saver, readers)
