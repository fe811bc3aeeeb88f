"""Time nlp_lstm.nn.lstm.LSTM against the fused torch.nn.LSTM, side by side in one process.

Variants are alternated round-robin within each round, so machine noise (other processes on shared
cores) hits all of them alike; the table shows medians over rounds and ratios to the baseline named
in each row. "ragged" rows: a batch of 32 with lengths 10..200 (seeded), padded to the longest;
`nn.LSTM padded` runs through the padding (not exact for c_n or the backward direction: the cost of
the plain kernel), ours is exact ("no c" is the classifier's call, `need_cell_state=False`).

`--baseline-tree DIR` adds "before" rows: the same variants with `nlp_lstm/nn/lstm.py` of another
checkout (e.g. `git archive <commit> | tar -x -C DIR`), in the same process and rounds. `--clock cpu`
times thread CPU seconds instead of wall seconds (one thread: not the time spent waiting for a core).
The last table gives the bidirectional layer's cost over a unidirectional `nn.LSTM` layer (target:
<= 2.2x in training).

    .venv/bin/python benchmarks/bench_lstm.py [--threads 1] [--rounds 15] [--baseline-tree DIR] [--clock cpu]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from pathlib import Path

import torch

from nlp_lstm.nn.lstm import LSTM

BATCH, TIME, INPUT_SIZE, HIDDEN_SIZE = 32, 100, 64, 128


def _train_step(model, inputs, lengths=None, **kwargs):
    """Forward, a scalar loss, backward: what one training step costs the encoder."""
    outputs = model(inputs, lengths, **kwargs)[0] if lengths is not None else model(inputs)[0]
    outputs.square().mean().backward()


def _inference(model, inputs, lengths=None, **kwargs):
    with torch.no_grad():
        model(inputs, lengths, **kwargs) if lengths is not None else model(inputs)


def _load_lstm_class(tree: Path):
    """The `LSTM` class of another checkout's `nlp_lstm/nn/lstm.py`, as a module of its own."""
    spec = importlib.util.spec_from_file_location("lstm_before", tree / "nlp_lstm" / "nn" / "lstm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LSTM


def _variants(lengths_ragged: torch.Tensor, before_class=None):
    """name -> (callable, baseline name). Each callable runs one step of its variant."""
    inputs = torch.randn(BATCH, TIME, INPUT_SIZE)
    ragged_time = int(lengths_ragged.max())
    ragged_inputs = torch.randn(BATCH, ragged_time, INPUT_SIZE)
    ragged_inputs.masked_fill_(
        (torch.arange(ragged_time) >= lengths_ragged.unsqueeze(1)).unsqueeze(-1), 0.0
    )

    def torch_lstm(bidirectional=False):
        return torch.nn.LSTM(INPUT_SIZE, HIDDEN_SIZE, batch_first=True, bidirectional=bidirectional)

    def ours(peephole="none", bidirectional=False, cls=LSTM):
        return cls(INPUT_SIZE, HIDDEN_SIZE, peephole=peephole, bidirectional=bidirectional)

    models = {
        "nn.LSTM": torch_lstm(),
        "ours none": ours(),
        "ours diagonal": ours("diagonal"),
        "ours full": ours("full"),
        "nn.LSTM bi": torch_lstm(bidirectional=True),
        "ours none bi": ours(bidirectional=True),
        "ours diagonal bi": ours("diagonal", bidirectional=True),
    }
    if before_class is not None:
        models["before none"] = ours(cls=before_class)
        models["before none bi"] = ours(bidirectional=True, cls=before_class)
        models["before none"].load_state_dict(models["ours none"].state_dict())
        models["before none bi"].load_state_dict(models["ours none bi"].state_dict())
    variants = {}
    for mode, run in [("train", _train_step), ("infer", _inference)]:
        for name, model in models.items():
            uni = name.removesuffix(" bi")
            baseline = f"{mode} nn.LSTM" if uni == name else f"{mode} {uni}"
            variants[f"{mode} {name}"] = (lambda m=model, r=run: r(m, inputs), baseline)
        # Ragged batch: nn.LSTM padded to the longest row (not exact for c_n / backward direction,
        # the cost floor of any pad-then-fix approach) vs our exact handling.
        padded = f"{mode} ragged nn.LSTM padded"
        variants[padded] = (lambda r=run: r(models["nn.LSTM"], ragged_inputs), padded)
        variants[f"{mode} ragged nn.LSTM bi padded"] = (
            lambda r=run: r(models["nn.LSTM bi"], ragged_inputs), padded)  # fmt: skip
        ragged = [("ours none", {}), ("ours none bi", {}), ("ours none bi", {"need_cell_state": False}),
                  ("ours diagonal", {})]  # fmt: skip
        if before_class is not None:
            ragged += [("before none", {}), ("before none bi", {}), ("before none bi", {"need_cell_state": False})]
        for name, kwargs in ragged:
            label = f"{mode} ragged {name}" + (" no c" if kwargs else "")
            variants[label] = (lambda r=run, m=models[name], k=kwargs: r(m, ragged_inputs, lengths_ragged, **k), padded)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per variant")
    parser.add_argument("--baseline-tree", type=Path, help="checkout whose nlp_lstm/nn/lstm.py gives 'before' rows")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    load_start = os.getloadavg()[0]
    torch.manual_seed(0)
    lengths_ragged = torch.randint(10, 201, (BATCH,))
    before_class = _load_lstm_class(args.baseline_tree.resolve()) if args.baseline_tree else None
    variants = _variants(lengths_ragged, before_class)
    for run, _ in variants.values():  # warm-up: allocator, oneDNN primitive caches
        run()
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (run, _) in variants.items():
            start = clock()
            run()
            times[name].append(clock() - start)

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, rounds {args.rounds}, {args.clock} clock, "
          f"batch {BATCH}, time {TIME}, input {INPUT_SIZE}, hidden {HIDDEN_SIZE}, ragged lengths "
          f"{int(lengths_ragged.min())}..{int(lengths_ragged.max())} ({len(set(lengths_ragged.tolist()))} distinct); "
          f"load(1m) {load_start:.2f} at start, {os.getloadavg()[0]:.2f} at the end")  # fmt: skip
    print(f"{'variant':38} {'median ms':>10} {'ratio':>7}  vs")
    medians = {name: statistics.median(samples) for name, samples in times.items()}
    for name, (_, baseline) in variants.items():
        ratio = medians[name] / medians[baseline]
        print(f"{name:38} {1e3 * medians[name]:10.2f} {ratio:7.2f}  {baseline}")

    print("\nBidirectional layer / unidirectional nn.LSTM layer (target: training <= 2.2x)")
    rows = [("full length", "nn.LSTM bi", "nn.LSTM"), ("full length", "ours none bi", "nn.LSTM"),
            ("ragged", "ragged nn.LSTM bi padded", "ragged nn.LSTM padded"),
            ("ragged", "ragged ours none bi", "ragged nn.LSTM padded"),
            ("ragged", "ragged ours none bi no c", "ragged nn.LSTM padded"),
            ("ragged", "ragged ours none bi", "ragged ours none")]  # fmt: skip
    if before_class is not None:
        rows[2:2] = [("full length", "before none bi", "nn.LSTM")]
        rows += [("ragged", "ragged before none bi", "ragged nn.LSTM padded"),
                 ("ragged", "ragged before none bi no c", "ragged nn.LSTM padded"),
                 ("ragged", "ragged before none bi", "ragged before none")]  # fmt: skip
    print(f"{'batch':12} {'bidirectional':28} {'over':24} {'train':>7} {'infer':>7}")
    for batch, bi, uni in rows:
        ratios = [medians[f"{mode} {bi}"] / medians[f"{mode} {uni}"] for mode in ("train", "infer")]
        print(f"{batch:12} {bi:28} {uni:24} {ratios[0]:7.2f} {ratios[1]:7.2f}")


if __name__ == "__main__":
    main()
