"""`bert4sim serve` under load: /similar latency and throughput over a 100k-text index.

Builds (once, cached under --workdir) a 100k-text index with the demo SimBERT model: the 732 demo
passages of examples/data/corpus.txt (43-119 characters) plus distinct pairs of them joined by "，"
(the encoder reads the first maxlen tokens of each; search cost depends only on count x dim). Then
starts `bert4sim serve` in a subprocess, lets --clients threads (keep-alive httpx clients) send
/similar requests (topn 10, queries from the demo dev set) back to back for --seconds after a
warm-up, and prints p50/p99 latency, requests/s and the server's average batch. Next to it: the
same query through SimilarityModel.most_similar in this process, one call at a time, and the wall
time of one `bert4sim similar` shell call (TensorFlow start-up + model load each time).
Clients and server share this machine's cores.

Usage: python benchmarks/serve.py [--model checkpoints/simbert_demo] [--n 100000] [--clients 8]
       [--seconds 20] [--max-wait-ms 2] [--max-batch 64]
       (numpy BLAS threads: OPENBLAS_NUM_THREADS, 1 unless set, as `bert4sim serve --blas-threads`)
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

# As `bert4sim serve --blas-threads 1` (its default) does, for the in-process column too; set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "examples", "data")


def make_corpus(n, seed=0):
    """The demo passages plus distinct "a，b" pairs of them, ``n`` in all."""
    with open(os.path.join(DATA, "corpus.txt"), encoding="utf-8") as f:
        base = list(dict.fromkeys(line.strip() for line in f if line.strip()))
    rng, corpus, seen = random.Random(seed), list(base), set(base)
    if n > len(base) ** 2:
        raise ValueError(f"--n {n} is more than the {len(base) ** 2} pairs of the demo corpus")
    while len(corpus) < n:
        text = f"{rng.choice(base)}，{rng.choice(base)}"
        if text not in seen:
            seen.add(text)
            corpus.append(text)
    return corpus[:n]


def queries():
    with open(os.path.join(DATA, "simbert_dev.json"), encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def load_model(model_dir, precision):
    from bert4sim.similarity import SimilarityModel

    if os.path.isfile(os.path.join(model_dir, "bert_config.json")):
        return SimilarityModel.from_checkpoint(model_dir, **({"precision": precision} if precision else {}))
    model = SimilarityModel.load(model_dir)
    if precision and precision != model.precision:
        model = SimilarityModel(model.tokenizer, model.encoder, model.seq2seq, model.maxlen, model.model_id,
                                precision=precision)
    return model


def percentiles(seconds):
    ms = np.asarray(seconds) * 1000
    return np.percentile(ms, 50), np.percentile(ms, 99)


def build_index(args, model):
    from bert4sim.index import VectorIndex

    folder = os.path.join(args.workdir, f"index_{args.n}_{model.model_id}")
    if os.path.isdir(folder):
        return folder, VectorIndex.load(folder)
    start = time.perf_counter()
    index = model.build_index(make_corpus(args.n), batch_size=128, show_progress=False)
    index.save(folder)
    print(f"built the {len(index)}-text index in {time.perf_counter() - start:.0f} s -> {folder}")
    return folder, index


def in_process(model, index, texts, seconds):
    model.use_index(index)
    for text in texts[:5]:
        model.most_similar(text, topn=10)
    latencies, start, i = [], time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        model.most_similar(texts[i % len(texts)], topn=10)
        latencies.append(time.perf_counter() - t)
        i += 1
    return latencies, len(latencies) / (time.perf_counter() - start)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, index_dir, port):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "bert4sim.cli", "serve", "--model", args.model, "--index", index_dir,
               "--port", str(port), "--max-wait-ms", str(args.max_wait_ms), "--max-batch", str(args.max_batch),
               "--blas-threads", os.environ["OPENBLAS_NUM_THREADS"], "--log-level", "warning"]
    if args.precision:
        command += ["--precision", args.precision]
    server = subprocess.Popen(command, env=env)
    start = time.perf_counter()
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server, time.perf_counter() - start
        except httpx.TransportError:
            time.sleep(0.2)


def load(url, texts, clients, seconds, warmup):
    """Closed-loop clients; latencies of the requests that started after ``warmup`` s, and requests/s."""
    latencies, errors, lock = [], [], threading.Lock()
    begin = time.perf_counter()
    measure_from, stop_at = begin + warmup, begin + warmup + seconds

    def client(k):
        with httpx.Client(timeout=30) as http:
            i = k
            while True:
                t = time.perf_counter()
                if t >= stop_at:
                    return
                response = http.post(url, json={"text": texts[i % len(texts)], "topn": 10})
                done = time.perf_counter()
                i += clients
                with lock:
                    if response.status_code != 200:
                        errors.append(response.status_code)
                    elif t >= measure_from:
                        latencies.append(done - t)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, statuses {sorted(set(errors))}")
    return latencies, len(latencies) / seconds


def cli_call(args, index_dir, text):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bert4sim.cli", "similar", text, "--model", args.model, "--index",
                    index_dir, "--topn", "10"], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.path.join(ROOT, "checkpoints", "simbert_demo"))
    parser.add_argument("--precision", default=None, choices=["float32", "bfloat16"])
    parser.add_argument("--n", type=int, default=100_000, help="indexed sentences")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20, help="measured load per run")
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--workdir", default=os.path.join(ROOT, "checkpoints", "serve_benchmark"))
    parser.add_argument("--no-cli", action="store_true", help="skip timing one `bert4sim similar` shell call")
    args = parser.parse_args()
    if not os.path.isdir(args.model):
        raise SystemExit(f"model folder {args.model} not found: train it with `python examples/simbert.py`")

    model = load_model(args.model, args.precision)
    index_dir, index = build_index(args, model)
    texts = queries()
    print(f"model {args.model} ({model.model_id}, precision {model.precision}); index {len(index)} texts, "
          f"{index.dim}-d; /similar topn 10; {os.cpu_count()} CPUs; OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")

    latencies, rate = in_process(model, index, texts, min(args.seconds, 10))
    p50, p99 = percentiles(latencies)
    print(f"in-process most_similar, one call at a time:   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   {rate:7.1f} calls/s")
    del model

    port = free_port()
    server, startup = start_server(args, index_dir, port)
    try:
        latencies, rate = load(f"http://127.0.0.1:{port}/similar", texts, args.clients, args.seconds, args.warmup)
        batching = httpx.get(f"http://127.0.0.1:{port}/health").json()["batching"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    p50, p99 = percentiles(latencies)
    print(f"bert4sim serve, {args.clients} concurrent clients:       p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   "
          f"{rate:7.1f} requests/s")
    print(f"  server start-up (TensorFlow import, model load, warm-up) {startup:.1f} s; "
          f"average batch {batching['texts'] / max(batching['batches'], 1):.1f} texts "
          f"(max_batch {args.max_batch}, max_wait {args.max_wait_ms} ms)")
    if not args.no_cli:
        print(f"one `bert4sim similar` shell call (start-up + load + query): {cli_call(args, index_dir, texts[0]):.1f} s")


if __name__ == "__main__":
    main()
