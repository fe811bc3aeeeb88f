"""Thread defaults under CPU contention: the default setting against 1 thread, idle and with busy cores.

Model: a sentiment-sized classifier (`TextClassifier`: embedding 256, BiLSTM hidden 256, mean pooling,
binary head, vocabulary 8000) on synthetic batches of 64 texts of 15-35 pieces (about 25, as VADER's
texts). Figures: training steps/s (forward, loss, backward, gradient clipping, AdamW step) and
inference texts/s (forward without autograd), each over `--seconds` after a warm-up.

Settings, each run in a fresh subprocess so that the OpenMP environment takes effect at torch's load:
- "default": what the command line does: `nlp_lstm.threads.configure_before_torch()` (it looks at
  how busy the cores are; on a busy machine waiting OpenMP threads sleep) and
  `torch.set_num_threads(nlp_lstm.threads.default_threads())` (the free cores, at least one);
- "1 thread": one thread (no barrier, so the wait policy does not matter);
- "before": the command line's old rule, for comparison: no OpenMP setting, 1 thread when the
  1-minute load average is over 0.5, else every core up to 4;
- "2 spin": two threads with OpenMP's default (spinning) wait, the case NOTES.md measured;
- "2 passive": two threads, waiting threads asleep (`OMP_WAIT_POLICY=PASSIVE`).
Contention: 0, 1 and 2 processes running `while True: pass`, started by this script before the
settings' runs and always killed after them. Settings alternate round-robin within each round; the
table shows medians over rounds and each setting's ratio to "1 thread" under the same contention.
Goals: with busy cores "default" >= 0.9x "1 thread"; idle, on 2 cores, >= 1.4x.

    .venv/bin/python benchmarks/bench_contention.py [--seconds 4] [--rounds 3] [--busy 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ("default", "1 thread", "before", "2 spin", "2 passive")
BATCH, VOCAB, EMBEDDING, HIDDEN = 64, 8000, 256, 256


def worker(setting: str, seconds: float) -> dict:
    """Run in a fresh process: choose threads as `setting` says, then time training and inference."""
    sys.path.insert(0, str(ROOT))
    from nlp_lstm import threads

    if setting == "default":
        threads.configure_before_torch()
    elif setting == "2 passive":
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    import torch

    if setting == "default":
        count = threads.default_threads()
    elif setting == "before":
        busy = os.getloadavg()[0] > 0.5
        count = 1 if busy else min(os.cpu_count() or 1, 4)
    else:
        count = 1 if setting == "1 thread" else 2
    torch.set_num_threads(count)

    from nlp_lstm.models.classifier import ClassifierConfig
    from nlp_lstm.models.classifier import TextClassifier

    torch.manual_seed(0)
    model = TextClassifier(ClassifierConfig(num_labels=2, task="binary", vocab_size=VOCAB, embedding_dim=EMBEDDING,
                                            hidden_size=HIDDEN, bidirectional=True, pooling="mean", dropout=0.5))  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = []
    for _ in range(8):
        lengths = torch.randint(15, 36, (BATCH,))
        ids = torch.randint(4, VOCAB, (BATCH, int(lengths.max())))
        pad_mask = torch.arange(ids.shape[1]) >= lengths.unsqueeze(1)
        batches.append((ids.masked_fill(pad_mask, 0), lengths, pad_mask, torch.randint(0, 2, (BATCH,))))

    def train_step(batch):
        ids, lengths, pad_mask, labels = batch
        optimizer.zero_grad()
        loss = model.loss(model(ids, lengths, pad_mask), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    def infer(batch):
        with torch.no_grad():
            model(batch[0], batch[1], batch[2])

    def rate(step, *, training: bool) -> float:
        model.train(training)
        for batch in batches[:2]:  # warm-up: allocator, oneDNN primitives
            step(batch)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            step(batches[done % len(batches)])
            done += 1
        return done / (time.perf_counter() - start)

    return {
        "threads": count,
        "wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "train_steps_per_s": rate(train_step, training=True),
        "infer_texts_per_s": BATCH * rate(infer, training=False),
    }


def run_setting(setting: str, seconds: float) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", setting, "--seconds", str(seconds)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"worker {setting!r} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_busy_loops(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
    for process in processes:
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per figure")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every setting per contention level")
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2], help="busy-loop processes per level")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--worker", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.seconds)))
        return

    print(f"{os.cpu_count()} cores, affinity {len(os.sched_getaffinity(0))}, python {sys.version.split()[0]}; "
          f"load(1m) {os.getloadavg()[0]:.2f} at start; {args.rounds} rounds of {args.seconds:g} s per figure")  # fmt: skip
    results: dict[tuple[int, str], list[dict]] = {}
    loads = {}
    for busy in args.busy:
        loops = start_busy_loops(busy)
        try:
            time.sleep(1.0)  # let the loops take their cores
            loads[busy] = os.getloadavg()[0]
            for _ in range(args.rounds):
                for setting in args.settings:
                    results.setdefault((busy, setting), []).append(run_setting(setting, args.seconds))
        finally:
            stop(loops)

    print(f"\n{'busy loops':>10}  {'setting':10} {'threads':>7} {'train steps/s':>13} {'x 1 thread':>10} "
          f"{'infer texts/s':>13} {'x 1 thread':>10}  load(1m)")  # fmt: skip
    for busy in args.busy:
        base = results.get((busy, "1 thread"))
        for setting in args.settings:
            runs = results[(busy, setting)]
            train = statistics.median(run["train_steps_per_s"] for run in runs)
            infer = statistics.median(run["infer_texts_per_s"] for run in runs)
            threads_used = "/".join(sorted({str(run["threads"]) for run in runs}))
            if base:
                train_ratio = train / statistics.median(run["train_steps_per_s"] for run in base)
                infer_ratio = infer / statistics.median(run["infer_texts_per_s"] for run in base)
                ratios = f"{train_ratio:10.2f} {infer:13.1f} {infer_ratio:10.2f}"
            else:
                ratios = f"{'':10} {infer:13.1f} {'':10}"
            print(f"{busy:>10}  {setting:10} {threads_used:>7} {train:13.2f} {ratios}  {loads[busy]:.2f}")
    print(f"load(1m) {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
