"""bert4sim serve: the HTTP service in-process (bad inputs, batching) and as a subprocess (endpoints, SIGTERM)."""
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from bert4sim.serving import Limits, MicroBatcher, create_app  # noqa: E402
from bert4sim.similarity import SimilarityModel  # noqa: E402
from tiny_similarity import CORPUS, tiny_similarity_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMITS = Limits(max_text_chars=50, max_texts=8, max_topn=5, max_n=20, max_body_bytes=2000)


@pytest.fixture(scope="module")
def sim():
    model = tiny_similarity_model()
    model.build_index(CORPUS)
    return model


@pytest.fixture(scope="module")
def client(sim):
    with TestClient(create_app(sim, sim.index, LIMITS, max_wait_ms=1)) as client:
        yield client


def test_endpoints_answer_like_the_library(client, sim):
    vectors = client.post("/encode", json={"texts": CORPUS[:3]}).json()["vectors"]
    np.testing.assert_allclose(vectors, sim.encode(CORPUS[:3]), atol=1e-5)
    raw = client.post("/encode", json={"texts": CORPUS[:2], "normalize": False}).json()["vectors"]
    np.testing.assert_allclose(raw, sim.encode(CORPUS[:2], normalize=False), atol=1e-5)
    hits = client.post("/similar", json={"text": "查询余额", "topn": 3}).json()["results"]
    expected = sim.most_similar("查询余额", topn=3)
    assert [h["text"] for h in hits] == [t for t, _ in expected]
    np.testing.assert_allclose([h["score"] for h in hits], [s for _, s in expected], atol=1e-5)
    synonyms = client.post("/synonyms", json={"text": "我想注销信用卡", "n": 8, "k": 3, "seed": 1}).json()["synonyms"]
    assert synonyms == sim.gen_synonyms("我想注销信用卡", n=8, k=3, seed=1)
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["index_size"] == len(CORPUS) and health["limits"]["max_topn"] == 5


@pytest.mark.parametrize("path, body, status, message", [
    ("/similar", b"{\"text\": ", 400, "not valid JSON"),
    ("/encode", b"\xff\xfe", 400, "not valid JSON"),
    ("/encode", b"[" * 1999, 400, "not valid JSON"),
    ("/encode", b"", 400, "not valid JSON"),
    ("/similar", b"x" * 2001, 413, "over the limit of 2000"),
    ("/similar", {"text": "查" * 51}, 422, "51 characters, over the limit of 50"),
    ("/encode", {"texts": ["好", "查" * 51]}, 422, "texts[1] has 51 characters"),
    ("/encode", {"texts": ["好"] * 9}, 422, "number of texts must be between 1 and 8, got 9"),
    ("/encode", {"texts": []}, 422, "number of texts must be between 1 and 8, got 0"),
    ("/encode", {"texts": "查询余额"}, 422, "texts: Input should be a valid list"),
    ("/encode", {"texts": ["好", 3]}, 422, "texts.1: Input should be a valid string"),
    ("/encode", {"texts": ["好"], "normalize": "yes"}, 422, "normalize: Input should be a valid boolean"),
    ("/similar", {"text": "好", "topn": 6}, 422, "topn must be between 1 and 5, got 6"),
    ("/similar", {"text": "好", "topn": 0}, 422, "topn must be between 1 and 5, got 0"),
    ("/similar", {"text": "好", "topn": "3"}, 422, "topn: Input should be a valid integer"),
    ("/similar", {"text": "好", "topn": 2.5}, 422, "topn: Input should be a valid integer"),
    ("/similar", {"text": "好", "topk": 3}, 422, "topk: Extra inputs are not permitted"),
    ("/similar", {"text": " \n"}, 422, "text is empty or whitespace only"),
    ("/similar", {"text": "\u200b\x00"}, 422, "text is empty or whitespace only"),  # nothing the tokenizer keeps
    ("/similar", {}, 422, "text: Field required"),
    ("/similar", [1, 2], 422, "body: Input should be a valid dictionary"),
    ("/synonyms", {"text": "好", "n": 21}, 422, "n must be between 1 and 20, got 21"),
    ("/synonyms", {"text": "好", "n": 5, "k": 6}, 422, "k must be between 1 and 5, got 6"),
    ("/synonyms", {"text": "好", "seed": "x"}, 422, "seed: Input should be a valid integer"),
    ("/nowhere", {}, 404, "Not Found"),
])
def test_bad_input_is_4xx_with_a_json_error(client, path, body, status, message):
    response = client.post(path, content=body) if isinstance(body, bytes) else client.post(path, json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_endpoints_missing_parts_are_404(sim):
    encoder_only = SimilarityModel(sim.tokenizer, sim.encoder, maxlen=16)
    with TestClient(create_app(encoder_only)) as client:
        assert client.post("/similar", json={"text": "好"}).status_code == 404
        response = client.post("/synonyms", json={"text": "好"})
        assert response.status_code == 404 and "no seq2seq" in response.json()["error"]
        assert client.post("/encode", json={"texts": ["好"]}).status_code == 200
        deep = client.post("/encode", content=b"[" * 200_000)  # under the default 1 MiB body limit
        assert deep.status_code == 400 and "nested too deeply" in deep.json()["error"]


def test_batcher_batches_concurrent_jobs_and_finishes_them_on_stop(sim):
    batcher = MicroBatcher(sim, sim.index, max_batch=64, max_wait_ms=5000).start()  # stop() ends the wait
    futures = [batcher.submit("similar", [text], topn=2) for text in CORPUS[:4]]
    futures.append(batcher.submit("encode", CORPUS[4:], normalize=True))
    cancelled = batcher.submit("similar", ["查询余额"], topn=2)
    assert cancelled.cancel()  # a request that went away: skipped, the rest of its batch still answered
    batcher.stop()  # queued jobs still run
    assert not batcher._thread.is_alive()
    assert batcher.batches == 1 and batcher.batched_texts == len(CORPUS)
    assert [f.result()[0][0] for f in futures[:4]] == CORPUS[:4]
    np.testing.assert_allclose(futures[4].result(), sim.encode(CORPUS[4:]), atol=1e-5)
    late = batcher.submit("encode", ["好"])
    assert late.exception().status == 503


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="Limits.max_topn must be a positive integer, got 0"):
        Limits(max_topn=0)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_subprocess_endpoints_batching_and_sigterm(sim, tmp_path):
    sim.save(str(tmp_path / "model"))
    sim.index.save(str(tmp_path / "index"))
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="2")
    # A long batching wait makes "in flight at SIGTERM" and "batched together" certain, not timing luck.
    server = subprocess.Popen([sys.executable, "-m", "bert4sim.cli", "serve", "--model", str(tmp_path / "model"),
                               "--index", str(tmp_path / "index"), "--port", str(port), "--max-wait-ms", "1500",
                               "--max-text-chars", "100", "--log-level", "warning"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            similar = [pool.submit(httpx.post, f"{base}/similar", json={"text": t, "topn": 2}, timeout=30)
                       for t in CORPUS[:4]]
            encode = pool.submit(httpx.post, f"{base}/encode", json={"texts": CORPUS[:2]}, timeout=30)
            assert [f.result().json()["results"][0]["text"] for f in similar] == CORPUS[:4]
            np.testing.assert_allclose(encode.result().json()["vectors"], sim.encode(CORPUS[:2]), atol=1e-5)
        synonyms = httpx.post(f"{base}/synonyms", json={"text": "查询余额", "n": 5, "k": 2, "seed": 0}, timeout=30)
        assert synonyms.status_code == 200 and len(synonyms.json()["synonyms"]) <= 2
        batching = httpx.get(f"{base}/health").json()["batching"]
        assert batching["texts"] == 6 and batching["batches"] == 1  # five requests, one encoder call
        malformed = httpx.post(f"{base}/similar", content=b"{'text': 1}", headers={"content-type": "application/json"})
        assert malformed.status_code == 400 and "not valid JSON" in malformed.json()["error"]
        oversize = httpx.post(f"{base}/similar", json={"text": "查" * 101})
        assert oversize.status_code == 422 and "over the limit of 100" in oversize.json()["error"]

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(httpx.post, f"{base}/similar", json={"text": "查询余额"}, timeout=30)
            time.sleep(0.5)  # the request now waits in the batcher (1.5 s)
            server.send_signal(signal.SIGTERM)
            assert in_flight.result().status_code == 200
        output = server.communicate(timeout=20)[0]
        # uvicorn re-raises the signal after its graceful shutdown: the status says "ended by SIGTERM".
        assert server.returncode == -signal.SIGTERM and "Traceback" not in output
        assert "bert4sim serve: stopped (in-flight requests answered, batcher thread ended)" in output
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
