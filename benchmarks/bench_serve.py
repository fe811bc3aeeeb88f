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
   request, and the server's batch function (no HTTP) over micro-batches of `--max-batch-size` in
   arrival order (how `batching.MicroBatcher` cuts them) and over drains of the texts `--clients`
   keep in flight, sorted by length and cut into batches (an alternative tried for issue 23);
4. `--buckets`: the batch function on the same micro-batches, in the buckets the server plans
   (`nlp_lstm.serve.buckets`) against sorted chunks of 64 (one pass) / 32 / 16 / 8, alternated.
Goals (issues 12 and 23): server texts/s >= 0.8x in-process sorted predict at 32 clients; idle p50
<= 15 ms for one short text; no errors; RSS does not grow.

Before and after in one run: `--baseline-tree DIR` (a checkout of the code to compare with, e.g.
`git archive <commit> | tar -x -C DIR`) starts a second server from that tree. The two servers run
side by side (one idle while the other is measured): idle latency and `--load-rounds` load phases
alternate between them, so load from other processes hits both alike.

Traffic goes to 127.0.0.1 only; every loop is bounded by count and time. Needs a classifier:
`runs/sentiment/model` (trained here with the repository's defaults, `nlp-lstm run
pipelines/sentiment.toml`, when absent) or `--model DIR`.

    .venv/bin/python benchmarks/bench_serve.py [--model DIR] [--clients 32] [--seconds 20] [--threads 1]
        [--max-batch-size 64] [--max-wait-ms 5] [--buckets] [--baseline-tree DIR] [--load-rounds 1]
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
    def __init__(self, model: Path, args, *, tree: Path = common.ROOT) -> None:
        path = os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(args.threads)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nlp_lstm.cli.main", "serve", "--model", f"bench={model}", "--host", "127.0.0.1",
             "--port", "0", "--threads", str(args.threads), "--max-batch-size", str(args.max_batch_size),
             "--max-wait-ms", str(args.max_wait_ms), "--device", "cpu"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tree)
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


def sorted_drains(texts: list[str], *, drain: int, size: int) -> list[list[str]]:
    """Consecutive drains of `drain` texts, each sorted by characters and cut into batches of `size`
    (what `batching.MicroBatcher` hands the model when `drain` texts are queued)."""
    batches = []
    for start in range(0, len(texts), drain):
        ordered = sorted(texts[start : start + drain], key=len)
        batches += micro_batches(ordered, size)
    return batches


def batch_function(classifier, *, bucket_rows: int | None = None):
    """What the server runs per batch (texts -> rows); `bucket_rows` N: sorted chunks of N instead of
    the planned buckets."""
    from nlp_lstm.serve import runners

    if hasattr(runners, "classify_batch"):
        return lambda texts: runners.classify_batch(classifier, texts, bucket_rows=bucket_rows)
    if bucket_rows is None:  # the batch function moved to the predictor (predict_batch)
        return runners.ServedModel(name="bench", model=classifier).run_batch
    from nlp_lstm.serve.buckets import fixed_buckets

    return lambda texts: classifier.predict_batch(texts, plan=lambda lengths: fixed_buckets(lengths, size=bucket_rows))


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


def in_process(classifier, requests: list[list[str]], *, max_batch_size: int, drain: int,
               rounds: int) -> dict[str, tuple[float, float]]:
    """(wall s, CPU s) over the texts of `requests`: predict on all of them (sorted, batch 64), predict
    once per request, and the server's batch function over micro-batches in arrival order and over
    length-sorted drains of `drain` texts."""
    run = batch_function(classifier)
    texts = [text for request in requests for text in request]
    arrival, drains = micro_batches(texts, max_batch_size), sorted_drains(texts, drain=drain, size=max_batch_size)
    return race_clocks({
        "predict": lambda: classifier.predict(texts, batch_size=64),
        "per request": lambda: [classifier.predict(request) for request in requests],
        "arrival batches": lambda: [run(batch) for batch in arrival],
        "sorted drains": lambda: [run(batch) for batch in drains],
    }, rounds=rounds)


def bucket_race(classifier, texts: list[str], *, max_batch_size: int, rounds: int) -> list[tuple]:
    """The batch function on the same micro-batches: the planned buckets against fixed sorted chunks."""
    from nlp_lstm.serve.buckets import step_rows

    batches = micro_batches(texts, max_batch_size)
    planned = batch_function(classifier)
    variants = {f"planned (K = {step_rows(classifier.model.config):.1f})": lambda: [planned(batch) for batch in batches]}
    for size in (max_batch_size, 32, 16, 8):
        variants[f"fixed {size}" + (" (one pass)" if size == max_batch_size else "")] = (
            lambda run=batch_function(classifier, bucket_rows=size): [run(batch) for batch in batches])
    medians = race_clocks(variants, rounds=rounds)
    wall, cpu = medians[f"fixed {max_batch_size} (one pass)"]
    return [(name, len(texts) / w, wall / w, 1000 * c / len(texts), cpu / c) for name, (w, c) in medians.items()]


# --------------------------------------------------------------------------------------------


def measure_load(server: ServerProcess, probe, plan: list[list[str]], *, clients: int, seconds: float) -> dict:
    """One load phase against `server`: the client's result plus the server's CPU seconds and queue counters."""
    queue_start, cpu_start, client_cpu = server.queue(probe), server.cpu_seconds(), time.process_time()
    result = asyncio.run(load(server.url, plan, clients=clients, seconds=seconds))
    queue_end = server.queue(probe)
    return {**result, "server_cpu": server.cpu_seconds() - cpu_start, "client_cpu": time.process_time() - client_cpu,
            "batches": queue_end["batches"] - queue_start["batches"], "model_texts": queue_end["texts"] - queue_start["texts"]}


def merged(phases: list[dict]) -> dict:
    """Load phases of one server added up."""
    total = {key: sum(phase[key] for phase in phases) for key in ("texts", "seconds", "server_cpu", "client_cpu",
                                                                    "batches", "model_texts")}
    total["latencies"] = [value for phase in phases for value in phase["latencies"]]
    total["errors"] = [error for phase in phases for error in phase["errors"]]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=common.ROOT / "runs/sentiment/model", help="saved classifier")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients in the load phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each load phase")
    parser.add_argument("--load-rounds", type=int, default=1, help="load phases per server (alternated with --baseline-tree)")
    parser.add_argument("--warmup-seconds", type=float, default=10.0,
                        help="load before the start RSS is read (oneDNN caches a primitive per batch shape)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, server and in-process alike")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--baseline-texts", type=int, default=4000, help="texts of the plan the in-process runs time")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each in-process measurement (before + after)")
    parser.add_argument("--idle-requests", type=int, default=300, help="requests of the idle latency phase, per server")
    parser.add_argument("--buckets", action="store_true", help="also race the forward-pass bucket sizes")
    parser.add_argument("--baseline-tree", type=Path, help="checkout of the code to compare with (a second server)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    if args.model == parser.get_default("model") and not (args.model / "config.json").exists():
        print("no runs/sentiment/model: training it with pipelines/sentiment.toml (the repository's defaults)", flush=True)
        subprocess.run([sys.executable, "-m", "nlp_lstm.cli.main", "run", "pipelines/sentiment.toml", "--quiet"],
                       cwd=common.ROOT, check=True, env={**os.environ, "PYTHONPATH": str(common.ROOT)})
    model = args.model.resolve()

    import httpx
    import torch

    import nlp_lstm

    torch.set_num_threads(args.threads)
    machine = common.machine_line(threads=args.threads)
    classifier = nlp_lstm.load(model, device="cpu")
    pool = vader_texts(20000, args.seed)
    plan = request_plan(pool, 50_000, args.seed)
    baseline_requests = first_requests(plan, args.baseline_texts)
    baseline_texts = [text for request in baseline_requests for text in request]
    drain = round(args.clients * len(baseline_texts) / len(baseline_requests))  # texts 32 clients keep in flight

    def measure_in_process():
        return in_process(classifier, baseline_requests, max_batch_size=args.max_batch_size, drain=drain, rounds=args.rounds)

    trees = {"server": common.ROOT} if args.baseline_tree is None else {
        "before": args.baseline_tree.resolve(), "after": common.ROOT}
    before = measure_in_process()
    servers: dict[str, ServerProcess] = {}
    idle: dict[str, list[float]] = {name: [] for name in trees}
    phases: dict[str, list[dict]] = {name: [] for name in trees}
    memory, probe = {}, httpx.Client(timeout=30)
    try:
        for name, tree in trees.items():
            servers[name] = ServerProcess(model, args, tree=tree)
            servers[name].wait_ready(probe)
        names = list(trees)
        for half in range(2):  # idle latency, alternated
            for name in names if half == 0 else names[::-1]:
                idle[name] += idle_latency(servers[name].url, requests=args.idle_requests // 2, seconds=8)
        for name in names:
            asyncio.run(load(servers[name].url, plan[-5000:], clients=args.clients, seconds=args.warmup_seconds))
            memory[name] = servers[name].memory_mb()
        for round_ in range(args.load_rounds):
            for name in names if round_ % 2 == 0 else names[::-1]:
                phases[name].append(measure_load(servers[name], probe, plan, clients=args.clients, seconds=args.seconds))
        for name in names:
            memory[name] += servers[name].memory_mb()
    finally:
        probe.close()
        codes = {name: server.stop() for name, server in servers.items()}
    after = measure_in_process()
    count = len(baseline_texts)
    wall = {name: count / statistics.median([before[name][0], after[name][0]]) for name in before}  # texts/s
    cpu = {name: 1000 * statistics.median([before[name][1], after[name][1]]) / count for name in before}  # ms/text

    print(machine)
    print(f"model {args.model}; server --threads {args.threads} --max-batch-size {args.max_batch_size} "
          f"--max-wait-ms {args.max_wait_ms}; {args.clients} clients, {args.load_rounds} x {args.seconds:g} s per server, "
          f"1-8 VADER texts per request; server exit codes {codes}; load(1m) {os.getloadavg()[0]:.2f} at the end")
    if args.baseline_tree:
        print(f"before: {trees['before']}; after: {trees['after']}")
    common.print_table("Idle server: one short text per request, one client", [
        (name, len(idle[name]), 1000 * percentile(idle[name], 50), 1000 * percentile(idle[name], 95),
         common.verdict(1000 * percentile(idle[name], 50), 15, at_least=False)) for name in trees
    ], ("server", "requests", "p50 ms", "p95 ms", "goal (p50 ms)"))
    totals = {name: merged(phases[name]) for name in trees}
    common.print_table(f"Load: {args.clients} concurrent clients", [
        (name, len(t["latencies"]), len(t["latencies"]) / t["seconds"], t["texts"] / t["seconds"],
         1000 * percentile(t["latencies"], 50), 1000 * percentile(t["latencies"], 95), 1000 * percentile(t["latencies"], 99),
         len(t["errors"]), t["model_texts"] / max(1, t["batches"]), t["server_cpu"] / t["seconds"],
         t["client_cpu"] / t["seconds"], f"{memory[name][0]:.0f} / {memory[name][2]:.0f}",
         f"{memory[name][1]:.0f} / {memory[name][3]:.0f}") for name, t in totals.items()
    ], ("server", "requests", "requests/s", "texts/s", "p50 ms", "p95 ms", "p99 ms", "errors", "texts per model call",
        "server CPU share", "client CPU share", "RSS MB warm / end", "peak RSS MB warm / end"))
    rows = [
        ("predict, all texts sorted, batch 64", wall["predict"], 1.0, cpu["predict"], 1.0),
        ("predict once per request (1-8 texts)", wall["per request"], wall["per request"] / wall["predict"],
         cpu["per request"], cpu["predict"] / cpu["per request"]),
        (f"batch function, arrival-order batches of {args.max_batch_size}", wall["arrival batches"],
         wall["arrival batches"] / wall["predict"], cpu["arrival batches"], cpu["predict"] / cpu["arrival batches"]),
        (f"batch function, sorted drains of {drain} in batches of {args.max_batch_size}", wall["sorted drains"],
         wall["sorted drains"] / wall["predict"], cpu["sorted drains"], cpu["predict"] / cpu["sorted drains"]),
    ]
    ratios = {}
    for name, t in totals.items():
        texts_per_s, server_cpu_ms = t["texts"] / t["seconds"], 1000 * t["server_cpu"] / max(1, t["texts"])
        ratios[name] = (texts_per_s / wall["predict"], cpu["predict"] / server_cpu_ms)
        rows.append((f"{name}, {args.clients} clients (HTTP, all threads)", texts_per_s, ratios[name][0], server_cpu_ms,
                     ratios[name][1]))
    common.print_table(f"Against in-process on the same {count} texts (median of before and after the load)", rows,
                       ("variant", "texts/s", "ratio", "CPU ms/text", "CPU ratio"))
    print()
    for name, t in totals.items():
        grew = memory[name][3] > memory[name][1] * 1.05
        print(f"goals ({name}): throughput {common.verdict(ratios[name][0], 0.8, at_least=True)} by wall clock, "
              f"{common.verdict(ratios[name][1], 0.8, at_least=True)} by CPU time per text; errors "
              f"{'met (0)' if not t['errors'] else 'NOT met (' + str(len(t['errors'])) + ')'}; peak RSS "
              f"{'NOT met (grew over 5%)' if grew else 'met (no growth over 5%)'}")
        for error in t["errors"][:5]:
            print(f"  error: {error}")
    if args.buckets:
        common.print_table(f"Forward passes within micro-batches of {args.max_batch_size} (the batch function)",
                           bucket_race(classifier, baseline_texts, max_batch_size=args.max_batch_size, rounds=args.rounds),
                           ("bucket", "texts/s", "vs one pass", "CPU ms/text", "CPU vs one pass"))


if __name__ == "__main__":
    main()
