"""`explain` on a trained classifier: time per text and completeness residual by step count.

For the first `--texts` texts of a test file, at each step budget (most gradient evaluations): seconds per text (wall and process
CPU, one torch thread, the step counts round-robin per text so load from other processes hits all
alike) and the completeness residual of the BiLSTM's integrated gradients relative to the score
difference from the baseline (median, 95th percentile, largest, and the share of texts under 1%).
Goal (issue 25): under 1 s per text at the default step count, residual under 1% of the difference.

    .venv/bin/python benchmarks/bench_explain.py --model runs/vader --test-file ../shared/data/splits/vader/test.jsonl.gz
        [--texts 100] [--steps 64 128 256]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
import warnings

from common import machine_line  # noqa: F401 (sets sys.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--test-file", required=True)
    parser.add_argument("--texts", type=int, default=100)
    parser.add_argument("--steps", type=int, nargs="+", default=[64, 128, 256])
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    import nlp_lstm

    predictor = nlp_lstm.load(args.model, device="cpu")
    with gzip.open(args.test_file, "rt", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle][: args.texts]
    warnings.simplefilter("ignore")
    predictor.explain(texts[0], steps=args.steps[0])  # imports and first-call costs out of the timings
    wall = {steps: [] for steps in args.steps}
    cpu = {steps: [] for steps in args.steps}
    relative = {steps: [] for steps in args.steps}
    for text in texts:
        for steps in args.steps:
            started, started_cpu = time.perf_counter(), time.process_time()
            [result] = predictor.explain(text, steps=steps)
            wall[steps].append(time.perf_counter() - started)
            cpu[steps].append(time.process_time() - started_cpu)
            relative[steps].append(result["lstm"]["relative_residual"])
    print(machine_line(1))
    print(f"{len(texts)} texts from {args.test_file}; model {args.model}")
    print("steps | wall s/text median  max | cpu s/text median  max | residual/difference median  p95  max | under 1%")
    for steps in args.steps:
        ranked = sorted(relative[steps])
        p95 = ranked[min(len(ranked) - 1, round(0.95 * (len(ranked) - 1)))]
        under = sum(r < 0.01 for r in ranked) / len(ranked)
        print(f"{steps:5d} | {statistics.median(wall[steps]):.3f} {max(wall[steps]):.3f} | "
              f"{statistics.median(cpu[steps]):.3f} {max(cpu[steps]):.3f} | "
              f"{100 * statistics.median(ranked):.3f}% {100 * p95:.3f}% {100 * ranked[-1]:.3f}% | {100 * under:.0f}%")


if __name__ == "__main__":
    main()
