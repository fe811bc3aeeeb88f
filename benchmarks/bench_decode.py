"""Summarizer decode throughput: batched beam search (and greedy) against decoding one text at a time.

Target: batched beam search (beam 4, copy and coverage on, batch 32) >= 8x the summaries/s of
decoding the same texts one at a time, with identical outputs. Also greedy (beam 1), batch 32 vs 1.

Model: a trained pointer-generator, by default `runs/descriptions/model` (`nlp-lstm run
pipelines/descriptions.toml`; `--model` picks another), loaded with `nlp_lstm.load`, decoding real
leads: the first `--texts` non-empty `extract`s of `data/wiki_descriptions_en.jsonl.gz`. Each
variant is one `SummarizerPredictor.summarize(texts, beam_size=..., batch_size=...)` call over all the
texts (tokenization included, the same in every variant; summarize sorts by length before batching).
Outputs of batch 32 and batch 1 are asserted identical.

Before and after in one run: `--baseline-tree DIR` (a checkout of the code to compare with, e.g.
`git archive <commit> | tar -x -C DIR`) runs the same variants with that tree's library. Each tree
lives in its own long-lived worker process; the parent alternates every (tree, variant) pair
round-robin, so load from other processes hits them alike; medians over rounds. Then both trees
decode all texts once more with `beam_search_hypotheses` at both batch sizes, and the script asserts
that the best hypotheses and their float scores are equal between the trees, bit for bit.

Two models in one run: `--baseline-model DIR` (e.g. the same sizes with the other attention kind)
runs the same variants on that model with this tree's library, alternated round-robin with `--model`
the same way; only the speeds are compared, since the two models' summaries differ. `--bf16-output`
decodes `--model` with its output layer in bfloat16 (`nlp_lstm.inference.bfloat16`), and `--shortlist N`
over N shortlisted pieces (`nlp_lstm.decoding.shortlist`); with `--baseline-model` set to the same
directory they are measured against the plain float32 model.

    .venv/bin/python benchmarks/bench_decode.py [--texts 256] [--rounds 3] [--threads 1]
        [--model DIR] [--baseline-tree DIR | --baseline-model DIR] [--bf16-output] [--shortlist N] [--clock wall|cpu]

`--clock cpu` times the worker's CPU seconds instead of wall seconds: on a machine whose other jobs
take the cores, one-thread CPU time does not count the time the worker waits for a core.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

import common

MODEL_DIR = common.ROOT / "runs" / "descriptions" / "model"
DECODERS = (("beam 4", 4), ("greedy", 1))


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


def serve(tree: str, model_dir: str, texts_count: int, threads: int, bf16_output: bool, shortlist: int) -> None:
    """Worker: load the model with `tree`'s library, then answer one JSON request per stdin line."""
    sys.path.insert(0, tree)
    for name in [name for name in sys.modules if name == "nlp_lstm" or name.startswith("nlp_lstm.")]:
        del sys.modules[name]
    import time

    import torch

    import nlp_lstm
    from nlp_lstm.data.collate import collate_summarization
    from nlp_lstm.decoding.beam_search import DecodeConfig, beam_search_hypotheses

    assert Path(nlp_lstm.__file__).resolve().is_relative_to(Path(tree).resolve()), nlp_lstm.__file__
    torch.set_num_threads(threads)
    summarizer = nlp_lstm.load(model_dir)
    if bf16_output:
        from nlp_lstm.inference.bfloat16 import bfloat16_output

        summarizer = bfloat16_output(summarizer)
    texts = read_texts(texts_count)
    max_length = summarizer.max_target_length
    extra = {"shortlist": shortlist} if shortlist else {}  # a baseline tree may predate the setting

    def hypotheses(batch_size: int) -> list:
        """Best hypothesis and score per text, batched as `summarize` batches."""
        examples = summarizer.encode_texts(texts, warn=False)
        order = sorted(range(len(examples)), key=lambda i: examples[i]["length"])
        config = DecodeConfig(beam_size=4, max_length=max_length)
        found = [None] * len(examples)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = collate_summarization([examples[i] for i in chunk])
            for position, best in zip(chunk, beam_search_hypotheses(summarizer.model, batch, config)):
                found[position] = [best.tokens, best.score]
        return found

    print(json.dumps({"ready": True, "config": summarizer.model.config.__dict__,
                      "max_source_length": summarizer.max_source_length, "max_length": max_length}), flush=True)  # fmt: skip
    for line in sys.stdin:
        request = json.loads(line)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # source truncation warnings: the same in every variant
            start, cpu_start = time.perf_counter(), time.process_time()
            if request["what"] == "summarize":
                result = summarizer.summarize(texts, beam_size=request["beam_size"], batch_size=request["batch_size"],
                                              max_length=max_length, **extra)  # fmt: skip
            else:
                result = hypotheses(request["batch_size"])
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "result": result}), flush=True)


class Worker:
    def __init__(self, tree: Path, model: Path, args, *, bf16_output: bool = False, shortlist: int = 0) -> None:
        command = [sys.executable, __file__, "--serve", str(tree), "--model", str(model),
                   "--texts", str(args.texts), "--threads", str(args.threads)]  # fmt: skip
        if bf16_output:
            command.append("--bf16-output")
        if shortlist:
            command += ["--shortlist", str(shortlist)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self.process.stdout.readline())

    def ask(self, **request) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256, help="texts decoded per variant per round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", type=Path, default=MODEL_DIR, help="trained summarizer directory")
    parser.add_argument("--baseline-tree", type=Path, help="checkout of the code to compare with")
    parser.add_argument("--baseline-model", type=Path, help="a second summarizer to compare speeds with")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall seconds, or the worker's CPU seconds (with 1 thread: not the time it waits for a core)")
    parser.add_argument("--bf16-output", action="store_true",
                        help="decode --model with its output layer in bfloat16 (the baseline stays float32)")
    parser.add_argument("--shortlist", type=int, default=0,
                        help="decode --model over a shortlist of N pieces (nlp_lstm.decoding.shortlist); the baseline: all")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, str(args.model), args.texts, args.threads, args.bf16_output, args.shortlist)
        return
    if not (args.model / "config.json").exists():
        sys.exit(f"{args.model} is missing: train it first with `.venv/bin/nlp-lstm run pipelines/descriptions.toml`")
    if args.baseline_tree and args.baseline_model:
        sys.exit("use --baseline-tree or --baseline-model, not both")
    if args.baseline_model and not (args.baseline_model / "config.json").exists():
        sys.exit(f"{args.baseline_model} is not a model directory (no config.json)")

    print(common.machine_line(threads=args.threads), flush=True)
    # The sides compared: name -> (library tree, model directory).
    trees = {"after": (common.ROOT, args.model)}
    if args.baseline_tree:
        trees = {"before": (args.baseline_tree.resolve(), args.model), **trees}
    if args.baseline_model:
        trees = {"before": (common.ROOT, args.baseline_model), **trees}
    workers = {name: Worker(tree, model, args, bf16_output=args.bf16_output and name == "after",
                            shortlist=args.shortlist if name == "after" else 0)
               for name, (tree, model) in trees.items()}
    try:
        variants = [(tree, decoder, beam_size, batch_size) for tree in trees for decoder, beam_size in DECODERS
                    for batch_size in (args.batch_size, 1)]  # fmt: skip
        outputs, samples = {}, {variant: [] for variant in variants}
        for round_index in range(args.rounds + 1):  # round 0 warms up
            for variant in variants:
                tree, _, beam_size, batch_size = variant
                answer = workers[tree].ask(what="summarize", beam_size=beam_size, batch_size=batch_size)
                outputs[variant] = answer["result"]
                if round_index:
                    samples[variant].append(answer["cpu_seconds" if args.clock == "cpu" else "seconds"])
        # Bit-for-bit equality is checked between code trees only: two models' hypotheses differ anyway.
        hypotheses = {(tree, batch_size): workers[tree].ask(what="hypotheses", batch_size=batch_size)["result"]
                      for tree in trees for batch_size in (args.batch_size, 1)} if args.baseline_tree else {}  # fmt: skip
        info = workers["after"].info
        if args.baseline_model:
            baseline_config = workers["before"].info["config"]
    finally:
        for worker in workers.values():
            worker.close()

    medians = {variant: statistics.median(values) for variant, values in samples.items()}
    texts = args.texts
    print(f"load(1m) {os.getloadavg()[0]:.2f} at the end")
    config = info["config"]
    print(f"model {args.model}: embedding {config['embedding_dim']}, hidden {config['hidden_size']}, vocab "
          f"{config['vocab_size']}, copy {config['copy']}, coverage {config['coverage']}, source limit "
          f"{info['max_source_length']}, max_length {info['max_length']}; {texts} texts; rounds {args.rounds}; "
          f"{args.clock} clock")  # fmt: skip
    if args.baseline_model:
        print(f"before = {args.baseline_model}: hidden {baseline_config['hidden_size']}, attention "
              f"{baseline_config['attention']}; after = {args.model}: attention {config['attention']}")
    rows = []
    for tree in trees:
        for decoder, _ in DECODERS:
            batched = (tree, decoder, 4 if decoder == "beam 4" else 1, args.batch_size)
            single = (tree, decoder, batched[2], 1)
            differ = sum(a != b for a, b in zip(outputs[batched], outputs[single]))
            ratio = medians[single] / medians[batched]
            goal = common.verdict(ratio, 8.0, at_least=True) if decoder == "beam 4" else ""
            rows.append((f"{tree}: {decoder}, batch {args.batch_size}", medians[batched], texts / medians[batched],
                         ratio, differ, goal))  # fmt: skip
            rows.append((f"{tree}: {decoder}, batch 1", medians[single], texts / medians[single], 1.0, 0, ""))
    common.print_table(f"Decode throughput, batch {args.batch_size} vs one at a time (target: beam 4 >= 8x, identical)",
                       rows, ("variant", "median s", "summaries/s", "speedup", "outputs differing", "goal"))  # fmt: skip
    if "before" in trees:
        change = []
        for decoder, beam_size in DECODERS:
            for batch_size in (args.batch_size, 1):
                before = medians[("before", decoder, beam_size, batch_size)]
                after = medians[("after", decoder, beam_size, batch_size)]
                change.append((f"{decoder}, batch {batch_size}", texts / before, texts / after, before / after))
        common.print_table("Before and after (summaries/s)", change, ("variant", "before", "after", "after / before"))
    for tree in trees:
        for decoder, beam_size in DECODERS:
            batched, single = (tree, decoder, beam_size, args.batch_size), (tree, decoder, beam_size, 1)
            assert outputs[batched] == outputs[single], f"{tree} {decoder}: batched outputs differ from one at a time"
    print("outputs identical: batched == one at a time for beam 4 and greedy")
    if args.baseline_tree:
        for variant in variants:
            if variant[0] == "after":
                assert outputs[variant] == outputs[("before", *variant[1:])], f"summaries differ: {variant}"
        for batch_size in (args.batch_size, 1):
            before, after = hypotheses[("before", batch_size)], hypotheses[("after", batch_size)]
            assert before == after, f"batch {batch_size}: hypotheses or scores differ between the trees"
        print(f"before == after: every summary, and at batch {args.batch_size} and 1 every best hypothesis and its "
              f"float score (beam 4), for all {texts} texts")  # fmt: skip


if __name__ == "__main__":
    main()
