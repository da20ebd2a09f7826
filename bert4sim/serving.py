"""An HTTP JSON service over a SimilarityModel: ``/encode``, ``/similar``, ``/synonyms``, ``/health``.

Needs the ``serve`` extra (``pip install "bert4sim[serve]"``: FastAPI + uvicorn). The model is
loaded once; one worker thread owns it. Requests wait in a queue; the worker takes the first
one, then keeps collecting for at most ``max_wait_ms`` milliseconds or until ``max_batch`` texts,
encodes all their texts in one ``encode`` call and, for ``/similar``, searches the index with all
query vectors in one pass. ``/synonyms`` requests run on the same thread, one at a time (each is
already a batch of ``n`` samples). Bad input is answered 4xx with ``{"error": "..."}``: 400 for a
body that is not JSON, 413 for a body over ``max_body_bytes``, 422 for wrong types, unknown fields
or values out of range (the library's own argument checks, and the :class:`Limits`). A request
whose client disconnects while it waits is dropped before it runs. :func:`serve` binds its port
before anything else (a busy port is one ``OSError``) and closes a connection that has not sent
a whole request within ``request_timeout`` seconds (half-sent headers or body).

    bert4sim serve --model checkpoints/simbert_demo --index indexes/faq --port 8000
    curl -s localhost:8000/similar -d '{"text": "信用卡怎么注销", "topn": 3}'

Example (in-process, as the tests do):
    >>> from fastapi.testclient import TestClient
    >>> with TestClient(create_app(sim, index)) as client:
    ...     client.post("/similar", json={"text": "信用卡怎么注销", "topn": 3}).json()
"""
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import queue
import socket
import threading
import time

import numpy as np

from bert4sim.checks import check_int, check_number, check_text
from bert4sim.index import unit_rows

try:
    import fastapi
    import pydantic
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("bert4sim serve needs FastAPI and uvicorn: pip install 'bert4sim[serve]'") from error


@dataclasses.dataclass(frozen=True)
class Limits:
    """Input limits of the service (each over-limit request is answered 422, a too large body 413).

    Example:
        >>> create_app(sim, limits=Limits(max_texts=16, max_text_chars=200))
    """

    max_text_chars: int = 1000  # characters of one text (the tokenizer keeps maxlen tokens anyway)
    max_texts: int = 64  # texts in one /encode request
    max_topn: int = 100  # /similar topn
    max_n: int = 256  # /synonyms samples drawn
    max_body_bytes: int = 1 << 20  # whole request body

    # The largest value each limit may be set to (a larger one is a typo, or a way to exhaust memory).
    CEILINGS = {"max_text_chars": 10 ** 7, "max_texts": 1 << 16, "max_topn": 1 << 20, "max_n": 1 << 14,
                "max_body_bytes": 1 << 30}

    def __post_init__(self):
        for field in dataclasses.fields(self):
            check_int(getattr(self, field.name), f"Limits.{field.name}", minimum=1, maximum=self.CEILINGS[field.name])


class BadRequest(Exception):
    """An input problem answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


_STOP = object()
MAX_BATCH = 1 << 16  # the largest --max-batch
MAX_WAIT_MS = 60_000.0  # the longest --max-wait-ms
MAX_SEED = 2 ** 63 - 1


@dataclasses.dataclass
class _Job:
    kind: str  # "encode" (texts -> vectors), "similar" (one text -> top hits), "synonyms"
    texts: list
    options: dict
    future: concurrent.futures.Future = dataclasses.field(default_factory=concurrent.futures.Future)


class MicroBatcher:
    """One worker thread that runs every model call, batching concurrent encode/similar requests.

    ``submit`` queues a job and returns a ``concurrent.futures.Future``. The worker waits for a
    first job, then gathers more for up to ``max_wait_ms`` or until ``max_batch`` texts, and runs
    them as one batch. ``stop`` lets queued jobs finish, then ends the thread.

    Example:
        >>> batcher = MicroBatcher(sim, index, max_batch=64, max_wait_ms=2).start()
        >>> batcher.submit("encode", ["你好"], normalize=True).result()   # (1, dim) vectors
        >>> batcher.stop()
    """

    def __init__(self, model, index=None, max_batch=64, max_wait_ms=2.0):
        check_int(max_batch, "max_batch", minimum=1, maximum=MAX_BATCH)
        check_number(max_wait_ms, "max_wait_ms", minimum=0, maximum=MAX_WAIT_MS)
        self.model, self.index = model, index
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self._queue = queue.Queue()
        self._held = None  # a job taken from the queue that did not fit in the last batch
        self._thread = None
        self._stopping = False
        self._lock = threading.Lock()  # no job queued behind the stop marker
        self.batches = 0  # statistics for /health
        self.batched_texts = 0
        self.dropped = 0  # requests whose client went away before they ran

    def start(self):
        self._thread = threading.Thread(target=self._work, name="bert4sim-batcher", daemon=True)
        self._thread.start()
        return self

    def submit(self, kind, texts, **options):
        job = _Job(kind, list(texts), options)
        with self._lock:
            if self._stopping:
                job.future.set_exception(BadRequest(503, "the server is shutting down"))
            else:
                self._queue.put(job)
        return job.future

    def stop(self, timeout=30):
        """Finish the queued jobs, then end the worker thread."""
        with self._lock:
            self._stopping = True
            self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def pending(self):
        return self._queue.qsize()

    def _next(self, timeout=None):
        if self._held is not None:
            job, self._held = self._held, None
            return job
        return self._queue.get(timeout=timeout)

    def _work(self):
        while True:
            job = self._next()
            if job is _STOP:
                return
            if job.kind == "synonyms":
                self._run([job], self._synonyms)
                continue
            batch, count = [job], len(job.texts)
            deadline = time.monotonic() + self.max_wait
            while count < self.max_batch:
                try:
                    more = self._next(timeout=max(deadline - time.monotonic(), 0))
                except queue.Empty:
                    break
                if more is _STOP or more.kind == "synonyms" or count + len(more.texts) > self.max_batch:
                    self._held = more  # runs next, after this batch
                    break
                batch.append(more)
                count += len(more.texts)
            self._run(batch, self._encode_batch)

    def _run(self, jobs, fn):
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]  # drop cancelled requests
        self.dropped += len(jobs) - len(live)
        jobs = live
        if not jobs:
            return
        try:
            results = fn(jobs)
        except Exception as error:  # noqa: BLE001 - handed to the waiting requests
            for job in jobs:
                job.future.set_exception(error)
        else:
            for job, result in zip(jobs, results):
                job.future.set_result(result)

    def _encode_batch(self, jobs):
        texts = [text for job in jobs for text in job.texts]
        vectors = self.model.encode(texts, batch_size=self.max_batch, normalize=False, show_progress=False)
        self.batches += 1
        self.batched_texts += len(texts)
        results, start = [], 0
        for job in jobs:
            own = vectors[start : start + len(job.texts)]
            start += len(job.texts)
            results.append(unit_rows(own) if job.options.get("normalize", True) else own)
        similar = [i for i, job in enumerate(jobs) if job.kind == "similar"]
        if similar:
            topn = max(jobs[i].options["topn"] for i in similar)
            scores, indices = self.index.search(np.stack([results[i][0] for i in similar]), topn)
            for row, i in enumerate(similar):
                n = jobs[i].options["topn"]
                results[i] = [(self.index.texts[j], float(s)) for s, j in zip(scores[row][:n], indices[row][:n])]
        return results

    def _synonyms(self, jobs):
        (job,) = jobs
        return [self.model.gen_synonyms(job.texts[0], **job.options)]


# -- request bodies ------------------------------------------------------------------------

_STRICT = pydantic.ConfigDict(extra="forbid", strict=True)


class EncodeRequest(pydantic.BaseModel):
    model_config = _STRICT
    texts: list[str]
    normalize: bool = True


class SimilarRequest(pydantic.BaseModel):
    model_config = _STRICT
    text: str
    topn: int = 10


class SynonymsRequest(pydantic.BaseModel):
    model_config = _STRICT
    text: str
    n: int = 100
    k: int = 20
    seed: int | None = None


async def _read(request, model, limits):
    """The request body parsed as JSON and validated into ``model``; BadRequest otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise BadRequest(413, f"request body of {declared} bytes is over the limit of {limits.max_body_bytes}")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limits.max_body_bytes:
                raise BadRequest(413, f"request body is over the limit of {limits.max_body_bytes} bytes")
    except ClientDisconnect:
        raise BadRequest(499, "the client closed the connection before sending its whole request") from None
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(400, f"request body is not valid JSON: {error}") from None
    except RecursionError:
        raise BadRequest(400, "request body is not valid JSON: nested too deeply") from None
    except ValueError:  # Python's guard against quadratic int parsing: over 4300 digits
        raise BadRequest(422, "request body holds an integer of more than 4300 digits: out of range for every "
                              "field") from None
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors())
        raise BadRequest(422, problems) from None


def _check_text(text, limits, name="text"):
    if len(text) > limits.max_text_chars:
        raise BadRequest(422, f"{name} has {len(text)} characters, over the limit of {limits.max_text_chars}")
    try:
        check_text(text, name)  # the library's rule: content after normalisation, valid Unicode
    except (TypeError, ValueError) as error:
        raise BadRequest(422, str(error)) from None


def _check_range(name, value, low, high):
    if not low <= value <= high:
        raise BadRequest(422, f"{name} must be between {low} and {high}, got {value}")


async def _disconnected(request):
    """Returns when the client of ``request`` (whose body was read) has gone away."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_app(model, index=None, limits=None, max_batch=64, max_wait_ms=2.0, announce=False):
    """A FastAPI app serving ``model`` (a SimilarityModel) and, for ``/similar``, ``index``.

    The micro-batcher's thread starts with the app (its lifespan) and stops after the last
    in-flight request when the server shuts down (uvicorn does that on SIGTERM / SIGINT);
    ``announce`` (True, or the address served) prints a line when it is ready and when it has stopped.

    Example:
        >>> app = create_app(SimilarityModel.load("models/faq"), VectorIndex.load("indexes/faq"))
        >>> uvicorn.run(app, host="127.0.0.1", port=8000)
    """
    limits = limits or Limits()
    if index is not None:
        model.use_index(index)  # checks dimension and model id
    batcher = MicroBatcher(model, index, max_batch=max_batch, max_wait_ms=max_wait_ms)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        for texts in (["预热"], ["预热", "warm up the compiled encoder"]):  # trace before the first request
            model.encode(texts, show_progress=False)
        batcher.start()
        if announce:
            where = f" on {announce}" if isinstance(announce, str) else ""
            print(f"bert4sim serve: ready{where} ({'no index' if index is None else f'{len(index)} indexed texts'})",
                  flush=True)
        yield
        await asyncio.get_running_loop().run_in_executor(None, batcher.stop)
        if announce:
            print("bert4sim serve: stopped (in-flight requests answered, batcher thread ended)", flush=True)

    app = fastapi.FastAPI(title="bert4sim", lifespan=lifespan)
    app.state.batcher = batcher

    @app.exception_handler(BadRequest)
    async def bad_request(request, error):
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, error):  # unknown path, wrong method
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(Exception)
    async def server_error(request, error):  # a bug or a model failure, never bad input
        return JSONResponse({"error": f"internal error: {type(error).__name__}: {error}"},
                                              status_code=500)

    async def run(request, kind, texts, **options):
        """The batcher's answer, or, when the client disconnects first, the job dropped before it runs."""
        future = batcher.submit(kind, texts, **options)
        answer, gone = asyncio.wrap_future(future), asyncio.ensure_future(_disconnected(request))
        await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
        if answer.done():
            gone.cancel()
            try:
                return answer.result()
            except (ValueError, TypeError) as error:
                if kind != "synonyms":  # encode / similar inputs were checked before: this is the server's
                    raise
                raise BadRequest(422, str(error)) from None  # gen_synonyms' own argument checks (one job, alone)
        future.cancel()  # still queued: the batcher skips it (a running one finishes; nobody reads it)
        answer.cancel()
        raise BadRequest(499, "the client closed the connection before the answer")

    @app.post("/encode")
    async def encode(request: fastapi.Request):
        """``{"texts": [...], "normalize": true}`` -> ``{"vectors": [[...], ...], "dim": d}``."""
        body = await _read(request, EncodeRequest, limits)
        _check_range("number of texts", len(body.texts), 1, limits.max_texts)
        for i, text in enumerate(body.texts):
            _check_text(text, limits, f"texts[{i}]")
        vectors = await run(request, "encode", body.texts, normalize=body.normalize)
        return {"vectors": vectors.tolist(), "dim": int(vectors.shape[1])}

    @app.post("/similar")
    async def similar(request: fastapi.Request):
        """``{"text": "...", "topn": 10}`` -> ``{"results": [{"text": ..., "score": ...}, ...]}``."""
        body = await _read(request, SimilarRequest, limits)
        if index is None:
            raise BadRequest(404, "this server has no index: start it with --index DIR for /similar")
        _check_text(body.text, limits)
        _check_range("topn", body.topn, 1, limits.max_topn)
        hits = await run(request, "similar", [body.text], topn=body.topn)
        return {"results": [{"text": text, "score": score} for text, score in hits]}

    @app.post("/synonyms")
    async def synonyms(request: fastapi.Request):
        """``{"text": "...", "n": 100, "k": 20, "seed": null}`` -> ``{"synonyms": [...]}``."""
        body = await _read(request, SynonymsRequest, limits)
        if model.seq2seq is None:
            raise BadRequest(404, "this model has no seq2seq part: /synonyms needs SimBERT / RoFormer-Sim")
        _check_text(body.text, limits)
        _check_range("n", body.n, 1, limits.max_n)
        _check_range("k", body.k, 1, body.n)
        if body.seed is not None:
            _check_range("seed", body.seed, 0, MAX_SEED)
        return {"synonyms": await run(request, "synonyms", [body.text], n=body.n, k=body.k, seed=body.seed)}

    @app.get("/health")
    async def health():
        return {"status": "ok", "model_id": model.model_id, "precision": model.precision,
                "synonyms": model.seq2seq is not None, "index_size": None if index is None else len(index),
                "limits": dataclasses.asdict(limits),
                "batching": {"max_batch": max_batch, "max_wait_ms": max_wait_ms, "queued": batcher.pending,
                             "batches": batcher.batches, "texts": batcher.batched_texts,
                             "dropped": batcher.dropped}}

    return app


def listen(host="127.0.0.1", port=8000):
    """A socket bound to ``host:port`` and listening; an ``OSError`` naming the address when it cannot be.

    :func:`serve` takes it, so a busy port is found before the model loads.

    Example:
        >>> sock = listen("127.0.0.1", 8000)
    """
    port = check_int(port, "port", minimum=1, maximum=65535)
    if not isinstance(host, str) or not host:
        raise TypeError(f"host must be a host name or address, got {type(host).__name__} {host!r}")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise OSError(f"cannot listen on {host}:{port}: unknown host ({error})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        reason = "the port is in use" if error.errno == 98 else error.strerror or str(error)
        raise OSError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock


def request_timeout_protocol(timeout):
    """uvicorn's h11 protocol, closing a connection whose request (headers and body) takes over ``timeout`` s.

    uvicorn times out idle keep-alive connections but not a request that is
    being sent: a client that sends half a header would hold its connection
    open for ever. The timer runs from the connection's start, or from the
    first byte of a later request, until the request's last byte.

    Example:
        >>> uvicorn.Config(app, http=request_timeout_protocol(10.0))
    """
    timeout = check_number(timeout, "request_timeout", above=0, maximum=3600)
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class RequestTimeoutProtocol(H11Protocol):
        _read_timer = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc):
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data):
            if self.cycle is None or self.cycle.response_complete:  # bytes of a new request
                self._arm()
            super().data_received(data)

        def handle_events(self):
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete and not self.cycle.more_body:
                self._disarm()  # the whole request is in

        def _arm(self):
            if self._read_timer is None:
                self._read_timer = self.loop.call_later(timeout, self._timed_out)

        def _disarm(self):
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def send_400_response(self, msg):  # malformed HTTP (h11's verdict): a JSON error like every other
            import h11

            body = json.dumps({"error": f"malformed HTTP request: {msg}"}).encode()
            headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                       (b"content-length", str(len(body)).encode())]
            for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                          h11.EndOfMessage()):
                self.transport.write(self.conn.send(event))
            self.transport.close()

        def _timed_out(self):
            self._read_timer = None
            if not self.transport.is_closing():
                self.logger.info("closed a connection that sent no whole request within %s s", timeout)
                self.transport.close()

    return RequestTimeoutProtocol


def serve(model, index=None, host="127.0.0.1", port=8000, limits=None, max_batch=64, max_wait_ms=2.0,
          log_level="info", request_timeout=10.0, keep_alive_timeout=5.0, sock=None):
    """Run the service until SIGTERM / SIGINT (in-flight requests finish first).

    ``sock`` (from :func:`listen`) is used instead of binding ``host:port``.
    A connection must send each whole request within ``request_timeout``
    seconds and is closed after ``keep_alive_timeout`` idle seconds. After a
    graceful shutdown uvicorn re-raises the signal, so the process ends as
    killed by it (exit status 143 / -15 for SIGTERM), the convention
    supervisors expect.

    Example:
        >>> serve(SimilarityModel.load("models/faq"), VectorIndex.load("indexes/faq"), port=8000)
    """
    import uvicorn

    protocol = request_timeout_protocol(request_timeout)
    keep_alive_timeout = check_number(keep_alive_timeout, "keep_alive_timeout", above=0, maximum=3600)
    sock = sock or listen(host, port)
    address = sock.getsockname()
    app = create_app(model, index, limits, max_batch=max_batch, max_wait_ms=max_wait_ms,
                     announce=f"http://{address[0]}:{address[1]}")
    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=30, http=protocol,
                            timeout_keep_alive=keep_alive_timeout)
    uvicorn.Server(config).run(sockets=[sock])
