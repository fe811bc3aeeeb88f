"""Serving throughput and latency: `nlp-lstm serve` on loopback under a bounded load, against in-process predict.

One run, side by side on the same machine and the same VADER texts:
1. idle latency: one client, one short text per request, requests one after another;
2. load: `--clients` concurrent clients (asyncio + httpx, keep-alive) for `--seconds`, each request
   1-8 texts drawn from a fixed seeded plan; requests/s, texts/s, p50/p95/p99 latency, errors,
   the server's CPU seconds, and its RSS after a warm-up and at the end (peak and current);
3. in-process baselines on the first requests of the same plan, run before and after the load,
   timed by wall clock and by this process's CPU time (against the server's CPU time per text: on a
   shared machine the wall clock mostly measures the other jobs): `Classifier.predict(texts,
   batch_size=64)` on all their texts (sorted by length first: the best case), `predict` once per
   request, and `classify_batch` over consecutive micro-batches as the server forms them (no HTTP);
4. `--buckets`: classify_batch on the same micro-batches, in the buckets the server plans
   (`nlp_lstm.serve.buckets`) against sorted chunks of 64 (one pass) / 32 / 16 / 8, alternated.
Goals (issue 12): server texts/s >= 0.8x in-process predict at 32 clients; idle p50 <= 50 ms for
one short text; no errors; RSS does not grow.

Traffic goes to 127.0.0.1 only; every loop is bounded by count and time. Needs a classifier:
`runs/sentiment/model` (trained here with the repository's defaults, `nlp-lstm run
pipelines/sentiment.toml`, when absent) or `--model DIR`.

    .venv/bin/python benchmarks/bench_serve.py [--model DIR] [--clients 32] [--seconds 20] [--threads 1]
        [--max-batch-size 64] [--max-wait-ms 5] [--buckets]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import common

MAX_REQUESTS = 1_000_000  # a bound on every load loop besides its deadline
SHORT_TEXT = "What a wonderful, heartfelt film."


def vader_texts(limit: int, seed: int) -> list[str]:
    with gzip.open(common.DATA / "vader_sentiment.jsonl.gz", "rt", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle]
    random.Random(seed).shuffle(texts)
    return texts[:limit]


def request_plan(texts: list[str], count: int, seed: int, *, most: int = 8) -> list[list[str]]:
    """`count` requests of 1..`most` texts, taken in order from `texts` (cycled)."""
    rng, plan, position = random.Random(seed), [], 0
    for _ in range(count):
        size = rng.randint(1, most)
        plan.append([texts[(position + i) % len(texts)] for i in range(size)])
        position += size
    return plan


def first_requests(plan: list[list[str]], texts: int) -> list[list[str]]:
    """The longest head of `plan` holding at most `texts` texts."""
    taken, count = [], 0
    for request in plan:
        if count + len(request) > texts:
            break
        taken.append(request)
        count += len(request)
    return taken


# --------------------------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------------------------


class ServerProcess:
    def __init__(self, model: Path, args) -> None:
        path = os.pathsep.join(filter(None, [str(common.ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(args.threads)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nlp_lstm.cli.main", "serve", "--model", f"bench={model}", "--host", "127.0.0.1",
             "--port", "0", "--threads", str(args.threads), "--max-batch-size", str(args.max_batch_size),
             "--max-wait-ms", str(args.max_wait_ms), "--device", "cpu"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self.url: str | None = None
        found = threading.Event()

        def read():
            for line in self.process.stdout:
                self.lines.append(line)
                if self.url is None and (match := re.search(r"on (http://127\.0\.0\.1:\d+)", line)):
                    self.url = match.group(1)
                    found.set()
            found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(180) or self.url is None:
            self.stop()
            raise SystemExit("the server did not start:\n" + "".join(self.lines))

    def wait_ready(self, client) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if client.get(self.url + "/ready").status_code == 200:
                    return
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            time.sleep(0.1)
        raise SystemExit("the server never became ready:\n" + "".join(self.lines))

    def queue(self, client) -> dict:
        return client.get(self.url + "/v1/models").json()["models"][0]["queue"]

    def memory_mb(self) -> tuple[float, float]:
        """(current RSS, peak RSS) in MB, from /proc."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def cpu_seconds(self) -> float:
        stat = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


# --------------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------------


def idle_latency(url: str, *, requests: int, seconds: float) -> list[float]:
    import httpx

    latencies = []
    with httpx.Client(base_url=url, timeout=30) as client:
        deadline = time.monotonic() + seconds
        for _ in range(requests):
            if time.monotonic() > deadline:
                break
            start = time.perf_counter()
            response = client.post("/v1/classify", json={"texts": [SHORT_TEXT]})
            latencies.append(time.perf_counter() - start)
            response.raise_for_status()
    return latencies


async def load(url: str, plan: list[list[str]], *, clients: int, seconds: float) -> dict:
    """`clients` concurrent loops over `plan` (shared, in order) until `seconds` pass or the plan ends."""
    import httpx

    latencies, texts, errors, next_request = [], 0, [], iter(range(min(len(plan), MAX_REQUESTS)))
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def one_client():
            nonlocal texts
            for index in next_request:
                if time.monotonic() > deadline:
                    return
                start = time.perf_counter()
                try:
                    response = await client.post("/v1/classify", json={"texts": plan[index]})
                    ok = response.status_code == 200 and len(response.json()["results"]) == len(plan[index])
                    if not ok:
                        errors.append(f"{response.status_code} {response.text[:200]}")
                except httpx.HTTPError as error:
                    errors.append(repr(error))
                    continue
                latencies.append(time.perf_counter() - start)
                texts += len(plan[index])

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {"latencies": latencies, "texts": texts, "errors": errors, "seconds": elapsed}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


# --------------------------------------------------------------------------------------------
# In-process baselines
# --------------------------------------------------------------------------------------------


def micro_batches(texts: list[str], size: int) -> list[list[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def race_clocks(variants: dict, *, rounds: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per call of each variant: one warm-up, then variants round-robin."""
    for run in variants.values():
        run()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            samples[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
            for name, values in samples.items()}


def in_process(classifier, requests: list[list[str]], *, max_batch_size: int, rounds: int) -> dict[str, tuple[float, float]]:
    """(wall s, CPU s) over the texts of `requests`: predict on all of them (sorted, batch 64), predict
    once per request, and the server's batch function over micro-batches as the server forms them."""
    from nlp_lstm.serve.runners import classify_batch

    texts = [text for request in requests for text in request]
    batches = micro_batches(texts, max_batch_size)
    return race_clocks({
        "predict": lambda: classifier.predict(texts, batch_size=64),
        "per request": lambda: [classifier.predict(request) for request in requests],
        "classify_batch": lambda: [classify_batch(classifier, batch) for batch in batches],
    }, rounds=rounds)


def bucket_race(classifier, texts: list[str], *, max_batch_size: int, rounds: int) -> list[tuple]:
    """classify_batch on the same micro-batches: the planned buckets against fixed sorted chunks."""
    from nlp_lstm.serve.buckets import step_rows
    from nlp_lstm.serve.runners import classify_batch

    batches = micro_batches(texts, max_batch_size)
    variants = {f"planned (K = {step_rows(classifier.model.config):.1f})":
                lambda: [classify_batch(classifier, batch) for batch in batches]}
    for size in (max_batch_size, 32, 16, 8):
        variants[f"fixed {size}" + (" (one pass)" if size == max_batch_size else "")] = (
            lambda s=size: [classify_batch(classifier, batch, bucket_rows=s) for batch in batches])
    medians = race_clocks(variants, rounds=rounds)
    wall, cpu = medians[f"fixed {max_batch_size} (one pass)"]
    return [(name, len(texts) / w, wall / w, 1000 * c / len(texts), cpu / c) for name, (w, c) in medians.items()]


# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=common.ROOT / "runs/sentiment/model", help="saved classifier")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients in the load phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the load phase")
    parser.add_argument("--warmup-seconds", type=float, default=10.0,
                        help="load before the start RSS is read (oneDNN caches a primitive per batch shape)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, server and in-process alike")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--baseline-texts", type=int, default=4000, help="texts of the plan the in-process runs time")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each in-process measurement (before + after)")
    parser.add_argument("--buckets", action="store_true", help="also race the forward-pass bucket sizes")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    if args.model == parser.get_default("model") and not (args.model / "config.json").exists():
        print("no runs/sentiment/model: training it with pipelines/sentiment.toml (the repository's defaults)", flush=True)
        subprocess.run([sys.executable, "-m", "nlp_lstm.cli.main", "run", "pipelines/sentiment.toml", "--quiet"],
                       cwd=common.ROOT, check=True, env={**os.environ, "PYTHONPATH": str(common.ROOT)})

    import httpx
    import torch

    import nlp_lstm

    torch.set_num_threads(args.threads)
    machine = common.machine_line(threads=args.threads)
    classifier = nlp_lstm.load(args.model, device="cpu")
    pool = vader_texts(20000, args.seed)
    plan = request_plan(pool, 50_000, args.seed)
    baseline_requests = first_requests(plan, args.baseline_texts)
    baseline_texts = [text for request in baseline_requests for text in request]

    before = in_process(classifier, baseline_requests, max_batch_size=args.max_batch_size, rounds=args.rounds)
    server, probe = ServerProcess(args.model, args), httpx.Client(timeout=30)
    try:
        server.wait_ready(probe)
        idle = idle_latency(server.url, requests=300, seconds=15)
        asyncio.run(load(server.url, plan[-5000:], clients=args.clients, seconds=args.warmup_seconds))  # warm-up
        rss_start, peak_start = server.memory_mb()
        queue_start = server.queue(probe)
        cpu_start, client_cpu_start = server.cpu_seconds(), time.process_time()
        result = asyncio.run(load(server.url, plan, clients=args.clients, seconds=args.seconds))
        server_cpu, client_cpu = server.cpu_seconds() - cpu_start, time.process_time() - client_cpu_start
        rss_end, peak_end = server.memory_mb()
        queue_end = server.queue(probe)
    finally:
        probe.close()
        code = server.stop()
    after = in_process(classifier, baseline_requests, max_batch_size=args.max_batch_size, rounds=args.rounds)
    count = len(baseline_texts)
    wall = {name: count / statistics.median([before[name][0], after[name][0]]) for name in before}  # texts/s
    cpu = {name: 1000 * statistics.median([before[name][1], after[name][1]]) / count for name in before}  # ms/text

    latencies, seconds = result["latencies"], result["seconds"]
    texts_per_s = result["texts"] / seconds
    server_cpu_ms = 1000 * server_cpu / max(1, result["texts"])
    ratio, cpu_ratio = texts_per_s / wall["predict"], cpu["predict"] / server_cpu_ms
    print(machine)
    print(f"model {args.model}; server --threads {args.threads} --max-batch-size {args.max_batch_size} "
          f"--max-wait-ms {args.max_wait_ms}; {args.clients} clients for {seconds:.1f} s, 1-8 VADER texts per request; "
          f"server exit code {code}; load(1m) {os.getloadavg()[0]:.2f} at the end")
    common.print_table("Idle server: one short text per request, one client", [
        ("requests", len(idle)), ("p50 ms", 1000 * percentile(idle, 50)), ("p95 ms", 1000 * percentile(idle, 95)),
        ("goal", f"p50 {common.verdict(1000 * percentile(idle, 50), 50, at_least=False)}"),
    ], ("measure", "value"))
    common.print_table(f"Load: {args.clients} concurrent clients", [
        ("requests", len(latencies)), ("requests/s", len(latencies) / seconds), ("texts/s", texts_per_s),
        ("p50 ms", 1000 * percentile(latencies, 50)), ("p95 ms", 1000 * percentile(latencies, 95)),
        ("p99 ms", 1000 * percentile(latencies, 99)), ("errors", len(result["errors"])),
        ("mean texts per model call", (queue_end["texts"] - queue_start["texts"]) / max(1, queue_end["batches"] - queue_start["batches"])),
        ("server CPU share of wall", server_cpu / seconds), ("client CPU share of wall", client_cpu / seconds),
        ("RSS MB after warm-up / end", f"{rss_start:.0f} / {rss_end:.0f}"),
        ("peak RSS MB after warm-up / end", f"{peak_start:.0f} / {peak_end:.0f}"),
    ], ("measure", "value"))
    common.print_table(f"Against in-process on the same {count} texts (median of before and after the load)", [
        ("predict, all texts sorted, batch 64", wall["predict"], 1.0, cpu["predict"], 1.0),
        ("predict once per request (1-8 texts)", wall["per request"], wall["per request"] / wall["predict"],
         cpu["per request"], cpu["predict"] / cpu["per request"]),
        (f"classify_batch, micro-batches of {args.max_batch_size}", wall["classify_batch"],
         wall["classify_batch"] / wall["predict"], cpu["classify_batch"], cpu["predict"] / cpu["classify_batch"]),
        (f"server, {args.clients} clients (HTTP, all threads)", texts_per_s, ratio, server_cpu_ms, cpu_ratio),
    ], ("variant", "texts/s", "ratio", "CPU ms/text", "CPU ratio"))
    grew = peak_end > peak_start * 1.05
    print(f"\ngoals: throughput {common.verdict(ratio, 0.8, at_least=True)} by wall clock, "
          f"{common.verdict(cpu_ratio, 0.8, at_least=True)} by CPU time per text; errors "
          f"{'met (0)' if not result['errors'] else 'NOT met (' + str(len(result['errors'])) + ')'}; peak RSS "
          f"{'NOT met (grew over 5%)' if grew else 'met (no growth over 5%)'}")
    for error in result["errors"][:5]:
        print(f"  error: {error}")
    if args.buckets:
        common.print_table(f"Forward passes within micro-batches of {args.max_batch_size} (classify_batch)",
                           bucket_race(classifier, baseline_texts, max_batch_size=args.max_batch_size, rounds=args.rounds),
                           ("bucket", "texts/s", "vs one pass", "CPU ms/text", "CPU vs one pass"))


if __name__ == "__main__":
    main()
