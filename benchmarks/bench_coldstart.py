"""Cold start: wall time and peak RSS of one-shot commands against `python -c "import torch"`.

    .venv/bin/python benchmarks/bench_coldstart.py [--model DIR] [--summarizer DIR] [--rounds 5]

Each command runs `--rounds` times, interleaved with the torch import so that load changes hit both
alike; medians are reported with their ratio to the torch import. The classifier defaults to
`runs/sentiment/model` (made by `make demo`; sentencepiece) or, when absent, a tiny sentencepiece
classifier trained here; the summarizer to `tests/fixtures/format1/summarizer` (spaCy words: the
spaCy import, about 1.3 s, is part of its start-up). Peak RSS is the child's `ru_maxrss` (Linux: KiB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "format1"


def measured(command: list[str]) -> tuple[float, float]:
    """Wall and this command's own peak RSS, through a fresh wrapper process per run."""
    wrapper = [sys.executable, "-c", (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"), *command]
    out = subprocess.run(wrapper, check=True, capture_output=True, text=True, cwd=ROOT).stdout.split()
    return float(out[0]), int(out[1]) / 1024


def tiny_sentencepiece_classifier(root: Path) -> Path:
    import gzip
    import json

    import nlp_lstm
    from nlp_lstm.config import TrainConfig
    from nlp_lstm.data.sources import DataSource

    with gzip.open(ROOT / "data" / "vader_sentiment.jsonl.gz", "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for _, line in zip(range(2000), lines)]
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps({"text": r["text"], "label": "positive" if r["score"] > 0 else "negative"}) + "\n" for r in rows))
    nlp_lstm.train(output_dir=root / "model", source=DataSource(train_file=str(data)), progress=False,
                   tokenizer_settings={"kind": "sentencepiece", "vocab_size": 2000},
                   model={"embedding_dim": 32, "hidden_size": 32}, training=TrainConfig(epochs=1))
    return root / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--summarizer", type=Path, default=FIXTURES / "summarizer")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.model is None:
        args.model = ROOT / "runs" / "sentiment" / "model"
        if not args.model.is_dir():
            args.model = tiny_sentencepiece_classifier(Path(tempfile.mkdtemp()))
    cli = [sys.executable, "-m", "nlp_lstm.cli.main"]
    commands = {
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        "nlp-lstm --help": [*cli, "--help"],
        "nlp-lstm classify (1 text)": [*cli, "classify", "--model", str(args.model), "--quiet", "a lovely film"],
        "nlp-lstm summarize (1 text)": [*cli, "summarize", "--model", str(args.summarizer), "--quiet",
                                        "the movie was made by carl in year"],
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, command in commands.items():
            results[name].append(measured(command))
    base_wall = statistics.median(w for w, _ in results['python -c "import torch"'])
    base_rss = statistics.median(r for _, r in results['python -c "import torch"'])
    print(f"load {os.getloadavg()[0]:.1f}; {args.rounds} rounds, medians")
    print(f"{'command':<30} {'wall s':>7} {'x torch':>8} {'peak MiB':>9} {'x torch':>8}")
    for name, rows in results.items():
        wall = statistics.median(w for w, _ in rows)
        rss = statistics.median(r for _, r in rows)
        print(f"{name:<30} {wall:>7.2f} {wall / base_wall:>8.2f} {rss:>9.0f} {rss / base_rss:>8.2f}")


if __name__ == "__main__":
    main()
