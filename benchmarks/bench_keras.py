"""The seed recipe in Keras against the same model through our library, alternated A B A B.

Seed recipe: `LSTM(128)` on 64 features -> `Dense(1, sigmoid)`, Adam, binary cross-entropy,
batch 32, T=100. Ours: `TextClassifier(ClassifierConfig(num_labels=2, task="binary", input_size=64,
hidden_size=128, bidirectional=False, pooling="last", dropout=0.0))`, trained by the loop's step
(forward, BCE, backward, Adam step). Goals: >= 2.0x Keras training throughput, >= 2.5x inference.

TensorFlow is never a project dependency: this script makes its own venv (default /tmp/keras-venv;
`pip install tensorflow-cpu`, about 30 s and 2.4 GB the first time) and runs the Keras side there as a
long-lived subprocess that answers "train N" / "infer N" on stdin with JSON timings on stdout. Our
side runs here, in the project venv. Each round times N steps of ours, then N steps of Keras, so both
see the same machine load.

    .venv/bin/python benchmarks/bench_keras.py [--venv /tmp/keras-venv] [--threads 1 2] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import textwrap
import time
from pathlib import Path

import common
import torch

from bench_classifier import BATCH, FEATURES, HIDDEN, TIME, feature_batches, seed_model, seed_steps

# The Keras side, run with the Keras venv's python. Steps run on pre-built numpy batches, so only
# the framework is timed: train_on_batch / predict_on_batch are Keras' per-batch compiled paths.
KERAS_WORKER = textwrap.dedent(f"""
    import json, os, sys, time
    threads = int(sys.argv[1])
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np, tensorflow as tf, keras
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal(({BATCH}, {TIME}, {FEATURES})).astype("float32"),
                rng.integers(0, 2, ({BATCH}, 1)).astype("float32")) for _ in range(16)]
    model = keras.Sequential([keras.Input(({TIME}, {FEATURES})), keras.layers.LSTM({HIDDEN}),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    for x, y in batches[:2]:  # warm-up: traces the tf.functions
        model.train_on_batch(x, y); model.predict_on_batch(x)
    print(json.dumps({{"tensorflow": tf.__version__, "keras": keras.__version__}}), flush=True)
    step = 0
    for line in sys.stdin:
        mode, count = line.split()
        start = time.perf_counter()
        for _ in range(int(count)):
            x, y = batches[step % len(batches)]; step += 1
            model.train_on_batch(x, y) if mode == "train" else model.predict_on_batch(x)
        print(json.dumps({{"seconds": time.perf_counter() - start}}), flush=True)
""")



class KerasWorker:
    def __init__(self, python: Path, threads: int) -> None:
        quiet = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}  # TensorFlow's C++ start-up notices
        self.process = subprocess.Popen([str(python), "-c", KERAS_WORKER, str(threads)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=quiet, text=True)  # fmt: skip
        first = self.process.stdout.readline()
        if not first:
            raise SystemExit(f"the Keras worker exited (code {self.process.wait()}); check {python} has tensorflow-cpu")
        self.versions = json.loads(first)

    def time(self, mode: str, steps: int) -> float:
        self.process.stdin.write(f"{mode} {steps}\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())["seconds"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def measure(python: Path, threads: int, rounds: int, steps: int) -> tuple[list[tuple], dict]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ours = dict(zip(("train", "infer"), seed_steps(seed_model(), feature_batches())))
    keras = KerasWorker(python, threads)
    try:
        for mode in ours:  # warm-up
            [ours[mode]() for _ in range(2)]
        samples = {(side, mode): [] for side in ("ours", "keras") for mode in ours}
        for _ in range(rounds):
            for mode, step in ours.items():
                start = time.perf_counter()
                for _ in range(steps):
                    step()
                samples["ours", mode].append((time.perf_counter() - start) / steps)
                samples["keras", mode].append(keras.time(mode, steps) / steps)
    finally:
        keras.close()
    medians = {key: statistics.median(values) for key, values in samples.items()}
    rows = []
    for mode, goal in (("train", 2.0), ("infer", 2.5)):
        ratio = medians["keras", mode] / medians["ours", mode]
        rows.append((mode, threads, 1e3 * medians["ours", mode], 1e3 * medians["keras", mode],
                     BATCH / medians["ours", mode], BATCH / medians["keras", mode], ratio,
                     common.verdict(ratio, goal, at_least=True)))  # fmt: skip
    return rows, keras.versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=Path("/tmp/keras-venv"), help="venv holding tensorflow-cpu")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="threads for both frameworks")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds")
    parser.add_argument("--steps", type=int, default=4, help="steps per timed sample")
    args = parser.parse_args()
    python = common.ensure_venv(args.venv, "tensorflow-cpu", "; about 30 s, 2.4 GB")
    rows, versions = [], {}
    for threads in args.threads:
        measured, versions = measure(python, threads, args.rounds, args.steps)
        rows += measured
    print(common.machine_line(threads=args.threads[0]))
    print(f"tensorflow {versions.get('tensorflow')}, keras {versions.get('keras')}; batch {BATCH}, time {TIME}, "
          f"features {FEATURES}, hidden {HIDDEN}; rounds {args.rounds} x {args.steps} steps; ratio = ours / Keras throughput")
    common.print_table("Seed recipe: ours vs Keras (target 1: train >= 2.0x, infer >= 2.5x)", rows,
                       ("mode", "threads", "ours ms", "keras ms", "ours ex/s", "keras ex/s", "ratio", "goal"))


if __name__ == "__main__":
    main()
