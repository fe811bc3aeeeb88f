"""Encode stage throughput (text -> ids) and peak memory of encode + one epoch as the corpus grows.

Throughput (target 7: >= 300k tokens/s on 2 cores with sentencepiece): the embedded corpora
(`data/wiki_descriptions_en.jsonl.gz` extracts and `data/vader_sentiment.jsonl.gz` texts) through
- `tokenizer.encode_batch` alone, in batches of 1000 (the tokenizer's own ceiling),
- `nlp_lstm.data.encode.encode_classification` (datasets.map(batched=True)), num_proc 1 and 2,
for a sentencepiece tokenizer (`fit_tokenizer(kind="sentencepiece", vocab_size=8000)`) and spaCy's
rule-based tokenizer. Rows alternate round-robin; tokens = ids produced (no truncation).
`--profile` prints where one single-process sentencepiece encode spends its time.

Memory (target 9: peak RSS grows <= 1.2x from 1x to 50x, time per example flat): `--memory` runs, for
the VADER corpus replicated 1x, 10x and 50x (a larger jsonl.gz written to a temp dir), a fresh
subprocess per size and data path that goes through the library's own data path, as `nlp_lstm.train`
does: `load_splits` (the Arrow cache, or `streaming=True`), label names, `encode_classification` of
every split (sentencepiece, fitted once on 1x), then one full epoch of `nlp_lstm.training.loop.fit`
(a small model: memory, not speed, is measured; `--memory-steps N` caps the epoch). It reports
`ru_maxrss`, the anonymous / file-backed split of RSS (/proc/self/status), and load+encode and
training time per example.

    .venv/bin/python benchmarks/bench_encode.py [--rounds 3] [--spacy-rounds 1] [--profile]
    .venv/bin/python benchmarks/bench_encode.py --memory [--factors 1 10 50] [--memory-modes arrow stream]
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import json
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

CORPORA = {"wiki": ("wiki_descriptions_en.jsonl.gz", "extract"), "vader": ("vader_sentiment.jsonl.gz", "text")}


def read_texts(name: str) -> list[str]:
    file_name, column = CORPORA[name]
    with gzip.open(common.DATA / file_name, "rt") as file:
        return [json.loads(line)[column] or "" for line in file]


def fit_sentencepiece(texts: list[str]):
    from nlp_lstm.data.tokenizers import fit_tokenizer

    return fit_tokenizer(texts, kind="sentencepiece", vocab_size=8000)


def fit_spacy(texts: list[str]):
    from nlp_lstm.data.tokenizers import fit_tokenizer

    return fit_tokenizer(texts, kind="spacy", vocab_size=20000)


# ---------------------------------------------------------------------------------------------
# Throughput
# ---------------------------------------------------------------------------------------------


def runners(tokenizer, texts: list[str]):
    """name -> callable returning the number of ids produced."""
    import datasets

    from nlp_lstm.data.encode import encode_classification

    dataset = datasets.Dataset.from_dict({"text": texts})  # in memory: no cache file is reused

    def raw():
        return sum(len(ids) for start in range(0, len(texts), 1000) for ids in tokenizer.encode_batch(texts[start:start + 1000]))

    def mapped(num_proc):
        def run():
            encoded = encode_classification(dataset, tokenizer, text_column="text", label_column=None, label_names=[],
                                            max_length=10**9, num_proc=num_proc)  # fmt: skip
            return int(encoded.with_format("arrow")["length"].to_numpy().sum())
        return run

    return {"encode_batch only": raw, "encode_classification": mapped(None), "encode_classification num_proc=2": mapped(2)}


def throughput(rounds: int, spacy_rounds: int) -> None:
    import datasets

    datasets.disable_caching()
    datasets.disable_progress_bars()
    texts = read_texts("wiki") + read_texts("vader")
    tokenizers = {"sentencepiece": (fit_sentencepiece(texts), rounds)}
    if spacy_rounds:
        tokenizers["spacy"] = (fit_spacy(texts), spacy_rounds)  # ~10x slower: fewer rounds
    medians, tokens = {}, {}
    for kind, (tokenizer, kind_rounds) in tokenizers.items():
        variants = {}
        for name, run in runners(tokenizer, texts).items():
            key = f"{kind}: {name}"

            def timed(run=run, key=key):
                tokens[key] = run()
            variants[key] = timed
        medians.update(common.race(variants, rounds=kind_rounds, warmup=1 if kind == "sentencepiece" else 0))
    rows = [(key, tokens[key], seconds, tokens[key] / seconds,
             common.verdict(tokens[key] / seconds / 1e3, 300, at_least=True) if key.startswith("sentencepiece: encode_c") else "")
            for key, seconds in medians.items()]  # fmt: skip
    print(common.machine_line())
    print(f"{len(texts):,} texts ({sum(map(len, texts)) / 1e6:.1f} M characters); rounds {rounds} "
          f"(spaCy {spacy_rounds}); one torch thread, map workers as shown")
    common.print_table("Encode throughput (target 7: >= 300k tokens/s, goal column in k tokens/s)", rows,
                       ("stage", "tokens", "median s", "tokens/s", "goal"))


def profile() -> None:
    import datasets

    from nlp_lstm.data.encode import encode_classification

    datasets.disable_caching()
    datasets.disable_progress_bars()
    texts = read_texts("wiki") + read_texts("vader")
    tokenizer = fit_sentencepiece(texts)
    dataset = datasets.Dataset.from_dict({"text": texts})
    profiler = cProfile.Profile()
    profiler.enable()
    encode_classification(dataset, tokenizer, text_column="text", label_column=None, label_names=[], max_length=10**9)
    profiler.disable()
    print("\nProfile of one single-process sentencepiece encode_classification (top 15 by own time):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------


def rss_parts() -> dict[str, float]:
    """Current resident memory split into anonymous (heap: Python objects, tensors) and file-backed
    (memory-mapped Arrow cache files: reclaimable page cache the kernel counts in RSS) MiB."""
    parts = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmRSS"):
            parts[key] = int(value.split()[0]) / 1024
    return parts


def sample_peak_anon(peak: dict[str, float], interval: float = 0.05) -> None:
    """Start a daemon thread keeping `peak["anon"]` = the highest RssAnon MiB seen (the kernel keeps
    no high-water mark of anonymous memory alone; ru_maxrss also counts mapped file pages)."""
    import threading

    def run():
        while True:
            peak["anon"] = max(peak.get("anon", 0.0), rss_parts()["RssAnon"])
            time.sleep(interval)

    threading.Thread(target=run, daemon=True).start()


def memory_child(data_file: str, tokenizer_dir: str, mode: str, max_steps: str) -> None:
    """One size, in a fresh process, through the library's own data path (what `nlp_lstm.train` runs):
    `load_splits` (Arrow cache, or `streaming=True`), label names, `encode_classification` of every
    split, then one epoch of `fit` (at most `max_steps` steps when > 0). Prints peak RSS and timings as JSON."""
    import datasets
    import torch

    from nlp_lstm.config import TrainConfig
    from nlp_lstm.models.classifier import ClassifierConfig
    from nlp_lstm.data.columns import Binarize, label_names
    from nlp_lstm.data.sources import DataSource, load_splits
    from nlp_lstm.data.encode import encode_classification
    from nlp_lstm.data.tokenizers import load_tokenizer
    from nlp_lstm.models.classifier import TextClassifier
    from nlp_lstm.training.loop import fit
    from nlp_lstm.training.tasks import ClassificationTask

    datasets.disable_progress_bars()
    torch.set_num_threads(1)
    peak: dict[str, float] = {}
    sample_peak_anon(peak)
    started = time.perf_counter()
    tokenizer = load_tokenizer(tokenizer_dir)

    def prepare():  # a function, as in `nlp_lstm.api.train`: the raw splits are gone when it returns
        source = DataSource(train_file=data_file, label_column="label", binarize=Binarize(column="score"),
                            streaming=mode == "stream")
        splits = load_splits(source)
        names = label_names(splits["train"], "label")
        return {split: encode_classification(data, tokenizer, text_column="text", label_column="label",
                                             label_names=names, max_length=128)
                for split, data in splits.items()}  # fmt: skip

    encoded = prepare()
    encoded_at = time.perf_counter()
    rows = sum(len(split) for split in encoded.values())
    after_encode = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    parts_encode = rss_parts()
    model = TextClassifier(ClassifierConfig(num_labels=2, task="binary", vocab_size=tokenizer.vocab_size,
                                            embedding_dim=16, hidden_size=16, bidirectional=False, dropout=0.0))  # fmt: skip
    batch_size = 64
    train = encoded["train"]
    steps = -(-len(train) // batch_size)
    if int(max_steps) > 0:
        steps = min(steps, int(max_steps))
    result = fit(model, task=ClassificationTask(["negative", "positive"]), train_data=train,
                 validation_data=encoded["validation"].select(range(1000)), config=TrainConfig(epochs=1, batch_size=batch_size),
                 run_dir=Path(data_file).parent / f"run-{mode}", device=torch.device("cpu"), progress=False,
                 stop_after_steps=steps)  # fmt: skip
    trained_at = time.perf_counter()
    print(json.dumps({"rows": rows, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "after_encode_kib": after_encode, "seconds": trained_at - started,
                      "load_encode_s": encoded_at - started, "train_s": trained_at - encoded_at, "steps": steps,
                      "trained_examples": min(len(train), steps * batch_size),
                      "parts_encode": parts_encode, "parts_end": rss_parts(), "peak_anon": peak["anon"]}))  # fmt: skip


def memory(factors: list[int], max_steps: int, modes: list[str]) -> None:
    import os

    lines = gzip.open(common.DATA / "vader_sentiment.jsonl.gz", "rt").read().splitlines(keepends=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = fit_sentencepiece([json.loads(line)["text"] for line in lines])
        tokenizer.save(f"{tmp}/tokenizer")
        for factor in factors:
            data_file = f"{tmp}/x{factor}/vader_x{factor}.jsonl.gz"
            Path(data_file).parent.mkdir()
            with gzip.open(data_file, "wt", compresslevel=1) as file:
                for _ in range(factor):
                    file.writelines(lines)
            for mode in modes:
                cache = f"{tmp}/x{factor}/cache-{mode}"  # a fresh datasets cache: nothing is reused
                output = subprocess.run([sys.executable, __file__, "--memory-child", data_file, f"{tmp}/tokenizer",
                                         mode, str(max_steps)], check=True, capture_output=True, text=True,
                                        env={**os.environ, "HF_DATASETS_CACHE": cache}).stdout  # fmt: skip
                results[mode, factor] = json.loads(output.strip().splitlines()[-1])
                subprocess.run(["rm", "-rf", cache], check=True)
            subprocess.run(["rm", "-rf", f"{tmp}/x{factor}"], check=True)
    print(common.machine_line(threads=1))
    print("one full epoch of fit (batch 64) unless --memory-steps caps it; every split is loaded and encoded")
    rows = []
    for mode in modes:
        base = results[mode, factors[0]]
        base_encode = base["load_encode_s"] / base["rows"]
        base_train = base["train_s"] / base["trained_examples"]
        for factor in factors:
            r = results[mode, factor]
            ratio = r["peak_kib"] / base["peak_kib"]
            encode_us, train_us = r["load_encode_s"] / r["rows"] * 1e6, r["train_s"] / r["trained_examples"] * 1e6
            rows.append((mode, f"VADER x{factor}", r["rows"], r["steps"], r["after_encode_kib"] / 1024,
                         r["peak_kib"] / 1024, r["peak_anon"], r["peak_anon"] / base["peak_anon"],
                         r["parts_end"]["RssFile"], ratio, encode_us, encode_us / (base_encode * 1e6), train_us,
                         train_us / (base_train * 1e6),
                         "" if factor == factors[0] else f"RSS {common.verdict(ratio, 1.2, at_least=False)}; "
                         f"anon {common.verdict(r['peak_anon'] / base['peak_anon'], 1.2, at_least=False)}"))  # fmt: skip
    common.print_table(f"Peak RSS and time per example, encode + one training epoch, fresh process per size "
                       f"(target 9: peak <= 1.2x of x1 at x{factors[-1]}, time per example flat)", rows,
                       ("data", "corpus", "rows", "steps", "MiB after encode", "peak MiB", "peak anon MiB", "anon ratio",
                        "file MiB end", "peak ratio", "load+encode us/ex", "vs x1", "train us/ex", "vs x1", "goal"))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per variant")
    parser.add_argument("--spacy-rounds", type=int, default=1, help="rounds for the (slow) spaCy rows; 0 skips them")
    parser.add_argument("--profile", action="store_true", help="also profile one sentencepiece encode")
    parser.add_argument("--memory", action="store_true", help="measure peak RSS at 1x, 10x and 50x instead")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 10, 50], help="corpus sizes for --memory")
    parser.add_argument("--memory-steps", type=int, default=0,
                        help="cap on training steps per size (--memory; 0: a full epoch); the whole corpus is still encoded")
    parser.add_argument("--memory-modes", nargs="+", choices=["arrow", "stream"], default=["arrow", "stream"],
                        help="data paths for --memory: Arrow cache (default load) and/or --streaming")
    parser.add_argument("--memory-child", nargs=4, metavar=("DATA", "TOKENIZER", "MODE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
    elif args.memory:
        memory(args.factors, args.memory_steps, args.memory_modes)
    else:
        import torch

        torch.set_num_threads(1)
        throughput(args.rounds, spacy_rounds=args.spacy_rounds)
        if args.profile:
            profile()


if __name__ == "__main__":
    main()
