"""Summarizer decode throughput: batched beam search (and greedy) against decoding one text at a time.

Target: batched beam search (beam 4, copy and coverage on, batch 32) >= 8x the summaries/s of
decoding the same texts one at a time, with identical outputs. Also greedy (beam 1), batch 32 vs 1.

Model: the trained pointer-generator `runs/descriptions/model` (`nlp-lstm run pipelines/descriptions.toml`;
embedding 128, hidden 192, additive attention, copy + coverage, source limit 100, max_length 16),
loaded with `nlp_lstm.load`, decoding real leads: the first `--texts` non-empty `extract`s of
`data/wiki_descriptions_en.jsonl.gz`. Each variant is one `SummarizerPredictor.summarize(texts, beam_size=...,
batch_size=...)` call over all the texts (tokenization included, the same in every variant; summarize
sorts by length before batching). Variants alternate round-robin; medians over rounds. Outputs of
batch 32 and batch 1 are asserted identical.

    .venv/bin/python benchmarks/bench_decode.py [--texts 256] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import warnings

import common

MODEL_DIR = common.ROOT / "runs" / "descriptions" / "model"


def read_texts(count: int) -> list[str]:
    texts = []
    with gzip.open(common.DATA / "wiki_descriptions_en.jsonl.gz", "rt") as file:
        for line in file:
            text = json.loads(line).get("extract") or ""
            if text.strip():
                texts.append(text)
                if len(texts) == count:
                    break
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256, help="texts decoded per variant per round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import torch

    import nlp_lstm

    torch.set_num_threads(args.threads)
    if not (MODEL_DIR / "config.json").exists():
        sys.exit(f"{MODEL_DIR} is missing: train it first with `.venv/bin/nlp-lstm run pipelines/descriptions.toml`")
    summarizer = nlp_lstm.load(str(MODEL_DIR))
    config = summarizer.model.config
    texts = read_texts(args.texts)
    max_length = summarizer.max_target_length

    outputs: dict[str, list[str]] = {}
    variants = {}
    for decoder, beam_size in (("beam 4", 4), ("greedy", 1)):
        for batch_size in (args.batch_size, 1):
            key = f"{decoder}, batch {batch_size}"

            def run(key=key, beam_size=beam_size, batch_size=batch_size):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # source truncation warnings: the same in every variant
                    outputs[key] = summarizer.summarize(texts, beam_size=beam_size, batch_size=batch_size,
                                                        max_length=max_length)  # fmt: skip
            variants[key] = run
    medians = common.race(variants, rounds=args.rounds, warmup=1)

    rows = []
    for decoder in ("beam 4", "greedy"):
        batched, single = f"{decoder}, batch {args.batch_size}", f"{decoder}, batch 1"
        differ = sum(a != b for a, b in zip(outputs[batched], outputs[single]))
        ratio = medians[single] / medians[batched]
        goal = common.verdict(ratio, 8.0, at_least=True) if decoder == "beam 4" else ""
        rows.append((batched, medians[batched], len(texts) / medians[batched], ratio, differ, goal))
        rows.append((single, medians[single], len(texts) / medians[single], 1.0, 0, ""))
        if differ:
            for a, b in list(zip(outputs[batched], outputs[single]))[:3]:
                if a != b:
                    print(f"  {decoder} differs: batched {a!r} vs single {b!r}")
    print(common.machine_line())
    print(f"model {MODEL_DIR.relative_to(common.ROOT)}: embedding {config.embedding_dim}, hidden {config.hidden_size}, "
          f"copy {config.copy}, coverage {config.coverage}, source limit {summarizer.max_source_length}, "
          f"max_length {max_length}; {len(texts)} texts; rounds {args.rounds}")  # fmt: skip
    common.print_table(f"Decode throughput, batch {args.batch_size} vs one at a time (target: beam 4 >= 8x, identical)",
                       rows, ("variant", "median s", "summaries/s", "speedup", "outputs differing", "goal"))  # fmt: skip
    for decoder in ("beam 4", "greedy"):
        batched, single = f"{decoder}, batch {args.batch_size}", f"{decoder}, batch 1"
        assert outputs[batched] == outputs[single], f"{decoder}: batched outputs differ from one-at-a-time outputs"
    print("outputs identical: batched == one at a time for beam 4 and greedy")


if __name__ == "__main__":
    main()
