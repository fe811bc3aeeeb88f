"""Shared timing helpers for the benchmark scripts.

Every comparison is measured side by side in one process: variants run round-robin within each
round, so load from other processes on the shared cores hits them all alike, and the tables show
medians over rounds. Ratios, not absolute times, are what carry from one machine to another.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
if str(ROOT) not in sys.path:  # run as `python benchmarks/x.py` from the repository root
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(threads: int | None = None) -> str:
    """CPU model, cores, torch version, torch threads, and the 1-minute load (a shared machine shows)."""
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    threads = torch.get_num_threads() if threads is None else threads
    return (f"cpu {cpu_model()}, {os.cpu_count()} cores, python {platform.python_version()}, "
            f"torch {torch.__version__}, threads {threads}, load(1m) {load:.2f} at start")  # fmt: skip


def race(variants: dict[str, Callable[[], object]], *, rounds: int, warmup: int = 1,
         clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median seconds per call of each variant, variants alternated round-robin within each round.

    `clock` is wall time by default; `time.process_time` counts only this process's CPU seconds
    (on a shared machine, not the time spent waiting for a core)."""
    for _ in range(warmup):
        for run in variants.values():
            run()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            start = clock()
            run()
            samples[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def print_table(title: str, rows: list[tuple], headers: tuple[str, ...]) -> None:
    """A small fixed-width table; the first column is left-aligned, the rest right-aligned."""
    cells = [[str(c) for c in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if index == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def verdict(ratio: float, goal: float, *, at_least: bool) -> str:
    met = ratio >= goal if at_least else ratio <= goal
    return f"{'met' if met else 'NOT met'} ({'>=' if at_least else '<='} {goal})"


def ensure_venv(venv: Path, package: str, note: str = "") -> Path:
    """The python of `venv`, created with `package` installed on first use: peers in their own venv,
    never in the project's."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with {package} (once{note}) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", package], check=True)
    return python
