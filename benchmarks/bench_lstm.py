"""Time nlp_lstm.nn.lstm.LSTM against the fused torch.nn.LSTM, side by side in one process.

Variants are alternated round-robin within each round, so machine noise (other processes on shared
cores) hits all of them alike; the table shows medians over rounds and ratios to the baseline named
in each row.

    .venv/bin/python benchmarks/bench_lstm.py [--threads 1] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nlp_lstm.nn.lstm import LSTM

BATCH, TIME, INPUT_SIZE, HIDDEN_SIZE = 32, 100, 64, 128


def _train_step(model, inputs, lengths=None):
    """Forward, a scalar loss, backward: what one training step costs the encoder."""
    outputs = model(inputs, lengths)[0] if lengths is not None else model(inputs)[0]
    outputs.square().mean().backward()


def _inference(model, inputs, lengths=None):
    with torch.no_grad():
        model(inputs, lengths) if lengths is not None else model(inputs)


def _variants(lengths_ragged: torch.Tensor):
    """name -> (callable, baseline name). Each callable runs one step of its variant."""
    inputs = torch.randn(BATCH, TIME, INPUT_SIZE)
    ragged_time = int(lengths_ragged.max())
    ragged_inputs = torch.randn(BATCH, ragged_time, INPUT_SIZE)
    ragged_inputs.masked_fill_(
        (torch.arange(ragged_time) >= lengths_ragged.unsqueeze(1)).unsqueeze(-1), 0.0
    )

    def torch_lstm(bidirectional=False):
        return torch.nn.LSTM(INPUT_SIZE, HIDDEN_SIZE, batch_first=True, bidirectional=bidirectional)

    def ours(peephole="none", bidirectional=False):
        return LSTM(INPUT_SIZE, HIDDEN_SIZE, peephole=peephole, bidirectional=bidirectional)

    models = {
        "nn.LSTM": torch_lstm(),
        "ours none": ours(),
        "ours diagonal": ours("diagonal"),
        "ours full": ours("full"),
        "nn.LSTM bi": torch_lstm(bidirectional=True),
        "ours none bi": ours(bidirectional=True),
        "ours diagonal bi": ours("diagonal", bidirectional=True),
    }
    variants = {}
    for mode, run in [("train", _train_step), ("infer", _inference)]:
        for name, model in models.items():
            uni = name.removesuffix(" bi")
            baseline = f"{mode} nn.LSTM" if uni == name else f"{mode} {uni}"
            variants[f"{mode} {name}"] = (lambda m=model, r=run: r(m, inputs), baseline)
        # Ragged batch, lengths 10..200: nn.LSTM padded to max (not exact for c_n / backward
        # direction, the cost floor of any pad-then-fix approach) vs our exact segmented handling.
        padded = f"{mode} ragged nn.LSTM padded"
        variants[padded] = (lambda r=run: r(models["nn.LSTM"], ragged_inputs), padded)
        variants[f"{mode} ragged ours none"] = (
            lambda r=run: r(models["ours none"], ragged_inputs, lengths_ragged), padded)  # fmt: skip
        variants[f"{mode} ragged ours none bi"] = (
            lambda r=run: r(models["ours none bi"], ragged_inputs, lengths_ragged), padded)  # fmt: skip
        variants[f"{mode} ragged ours diagonal"] = (
            lambda r=run: r(models["ours diagonal"], ragged_inputs, lengths_ragged), padded)  # fmt: skip
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per variant")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lengths_ragged = torch.randint(10, 201, (BATCH,))
    variants = _variants(lengths_ragged)
    for run, _ in variants.values():  # warm-up: allocator, oneDNN primitive caches
        run()
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (run, _) in variants.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, rounds {args.rounds}, "
          f"batch {BATCH}, time {TIME}, input {INPUT_SIZE}, hidden {HIDDEN_SIZE}, "
          f"ragged lengths {int(lengths_ragged.min())}..{int(lengths_ragged.max())}")  # fmt: skip
    print(f"{'variant':34} {'median ms':>10} {'ratio':>7}  vs")
    medians = {name: statistics.median(samples) for name, samples in times.items()}
    for name, (_, baseline) in variants.items():
        ratio = medians[name] / medians[baseline]
        print(f"{name:34} {1e3 * medians[name]:10.2f} {ratio:7.2f}  {baseline}")


if __name__ == "__main__":
    main()
