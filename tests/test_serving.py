"""bert4sim serve: the HTTP service in-process (bad inputs, batching) and as a subprocess (endpoints, SIGTERM)."""
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from bert4sim.cli import main as cli_main  # noqa: E402
from bert4sim.serving import Limits, MicroBatcher, create_app, listen, request_timeout_protocol  # noqa: E402
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
    ("/synonyms", {"text": "好", "n": 4, "k": 2, "seed": -1}, 422, "seed must be between 0 and 9223372036854775807, got -1"),
    ("/synonyms", {"text": "好", "n": 4, "k": 2, "seed": 2 ** 70}, 422, "seed must be between 0 and"),
    ("/similar", b'{"text": "a", "topn": 1e400}', 422, "topn: Input should be a valid integer"),
    ("/similar", b'{"text": "a", "topn": NaN}', 422, "topn: Input should be a valid integer"),
    ("/similar", {"text": "\u0301\u0302\u20dd"}, 422, "text is empty"),  # combining marks alone
    ("/encode", b'{"texts": ["\\ud800abc"]}', 422, "texts[0] holds a lone surrogate"),
    ("/encode", {"texts": ["好"], "normalize": 1}, 422, "normalize: Input should be a valid boolean"),
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
        long = client.post("/similar", content=b'{"text": "a", "topn": ' + b"9" * 5000 + b"}")
        assert long.status_code == 422 and "integer of more than 4300 digits" in long.json()["error"]


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


def test_limits_and_batching_settings_are_checked(sim):
    with pytest.raises(ValueError, match="Limits.max_topn must be between 1 and 1048576, got 0"):
        Limits(max_topn=0)
    with pytest.raises(ValueError, match="Limits.max_body_bytes must be between 1 and 1073741824"):
        Limits(max_body_bytes=1 << 40)
    with pytest.raises(TypeError, match="Limits.max_n must be an integer, got float"):
        Limits(max_n=2.5)
    for bad in (float("nan"), float("inf"), -1.0, 1e9):
        with pytest.raises(ValueError, match="max_wait_ms must be"):
            create_app(sim, max_wait_ms=bad)
    with pytest.raises(TypeError, match="max_wait_ms must be a number, got str"):
        MicroBatcher(sim, max_wait_ms="2")
    with pytest.raises(ValueError, match="max_batch must be between 1 and 65536, got 0"):
        MicroBatcher(sim, max_batch=0)
    for bad in (0, -1, 1e9):
        with pytest.raises(ValueError, match="request_timeout must be"):
            request_timeout_protocol(bad)


def test_busy_port_is_one_clear_error(capsys):
    taken = listen("127.0.0.1", _free_port())
    try:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}: the port is in use"):
            listen("127.0.0.1", port)
        # The command finds it before loading any model (the folder does not even exist).
        assert cli_main(["serve", "--model", "no/such/model", "--port", str(port), "--blas-threads", "0"]) == 2
        assert capsys.readouterr().err == f"bert4sim: cannot listen on 127.0.0.1:{port}: the port is in use\n"
    finally:
        taken.close()


@pytest.mark.parametrize("flag, value, message", [
    ("--max-wait-ms", "nan", "must be a finite number, got 'nan'"),
    ("--max-wait-ms", "inf", "must be a finite number"),
    ("--max-wait-ms", "-1", "must be between 0 and 60000, got -1"),
    ("--port", "70000", "must be between 1 and 65535, got 70000"),
    ("--max-batch", "0", "must be between 1 and 65536, got 0"),
    ("--request-timeout", "0", "must be between 0.001 and 3600, got 0"),
    ("--max-topn", "1e3", "must be an integer, got '1e3'"),
])
def test_serve_flags_are_checked_before_anything_loads(capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit:
        cli_main(["serve", "--model", "no/such/model", flag, value])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"bert4sim serve: error: argument {flag}: {message}"), err


class _Server:
    """uvicorn in a thread on a free 127.0.0.1 port; stops when the block ends (bounded waits)."""

    def __init__(self, app, request_timeout=30.0):
        import uvicorn

        self.sock = listen("127.0.0.1", _free_port())
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, http=request_timeout_protocol(request_timeout), log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def _closed_by_server(sock, within):
    sock.settimeout(within)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_half_sent_requests_are_disconnected_after_the_request_timeout(sim):
    with _Server(create_app(sim, sim.index, LIMITS), request_timeout=0.5) as server:
        port = server.sock.getsockname()[1]
        half_headers = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        for s in half_headers:
            s.sendall(b"POST /similar HTTP/1.1\r\nHost: x\r\n")
        half_body = socket.create_connection(("127.0.0.1", port))
        half_body.sendall(b"POST /similar HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"text\":")
        silent = socket.create_connection(("127.0.0.1", port))  # connects, sends nothing
        started = time.monotonic()
        assert httpx.get(f"{server.base}/health", timeout=5).status_code == 200  # others are still served
        assert all(_closed_by_server(s, 5) for s in half_headers + [half_body, silent])
        assert time.monotonic() - started < 5
        for s in half_headers + [half_body, silent]:
            s.close()
        garbled = socket.create_connection(("127.0.0.1", port))
        garbled.sendall(b"POST /similar HTTP/1.1\r\nContent-Length: twelve\r\n\r\n")
        garbled.settimeout(5)
        reply = b""
        while chunk := garbled.recv(4096):  # until the server closes it
            reply += chunk
        garbled.close()
        assert reply.startswith(b"HTTP/1.1 400") and b'{"error": "malformed HTTP request' in reply, reply
        # A whole request on a kept-alive connection is not cut by the timer of its first request.
        with httpx.Client(base_url=server.base, timeout=5) as client:
            for _ in range(3):
                assert client.post("/similar", json={"text": "查询余额", "topn": 1}).status_code == 200
                time.sleep(0.3)


class _SlowSynonyms:
    """The tiny model, with a generation that takes 1 s: requests queue behind it."""

    def __init__(self, sim):
        self._sim = sim

    def __getattr__(self, name):
        return getattr(self._sim, name)

    def gen_synonyms(self, text, **options):
        time.sleep(1.0)
        return self._sim.gen_synonyms(text, **options)


def test_requests_whose_clients_left_are_dropped_before_they_run(sim):
    with _Server(create_app(_SlowSynonyms(sim))) as server:
        def abandoned(_):
            try:
                httpx.post(f"{server.base}/synonyms", json={"text": "查询余额", "n": 4, "k": 2}, timeout=0.3)
            except httpx.TimeoutException:
                return True
            return False

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            assert all(pool.map(abandoned, range(6)))
        deadline = time.monotonic() + 10
        while httpx.get(f"{server.base}/health").json()["batching"]["queued"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # The first ran (it was running when its client left); the five queued behind it were dropped.
        assert httpx.get(f"{server.base}/health").json()["batching"]["dropped"] == 5
        answer = httpx.post(f"{server.base}/synonyms", json={"text": "查询余额", "n": 4, "k": 2, "seed": 0}, timeout=30)
        assert answer.status_code == 200


def test_generation_argument_errors_of_the_library_are_422(sim):
    huge = Limits(max_n=1 << 14)
    with TestClient(create_app(_HugeCache(sim), limits=huge)) as client:
        response = client.post("/synonyms", json={"text": "查询余额", "n": 16, "k": 2})
        assert response.status_code == 422 and "decoding buffers" in response.json()["error"]


class _HugeCache(_SlowSynonyms):
    """gen_synonyms refusing as it does for an n whose buffers exceed memory (without needing such a machine)."""

    def gen_synonyms(self, text, **options):
        raise ValueError(f"n={options['n']} samples would need 9999.0 GiB of decoding buffers")


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
