"""`make demo` end to end, on an idle machine and with busy cores, side by side in one run.

Each round runs the demo's commands (the Makefile's `demo` target) in a scratch copy of the
repository's pipelines and data, so the runs never touch `runs/` here and every run trains from
scratch (the committed tokenizers are reused, as on a fresh clone). Contention: 0, 1 or 2 processes
running `while True: pass`, started before a run and killed after it. The issue's goal: with busy
cores the demo finishes within 1.5x of its idle time.

    .venv/bin/python benchmarks/bench_demo.py [--busy 0 2] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("pipelines", "data", "vocab", "Makefile", "pyproject.toml", "constraints.txt")


def busy_loops(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def demo_seconds(venv: Path) -> float:
    """Wall seconds of the Makefile's demo commands in a fresh scratch copy."""
    with tempfile.TemporaryDirectory(prefix="demo-") as scratch:
        for name in COPIED:
            source = ROOT / name
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, Path(scratch) / name)
        # The environment exists already: point make at it and mark it installed.
        (Path(scratch) / ".venv").symlink_to(venv)
        started = time.perf_counter()
        subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed-stamp", "demo"], cwd=scratch,
                       check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    venv = (ROOT / ".venv").resolve()
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    seconds: dict[int, list[float]] = {busy: [] for busy in args.busy}
    for _ in range(args.rounds):
        for busy in args.busy:
            loops = busy_loops(busy)
            try:
                seconds[busy].append(demo_seconds(venv))
            finally:
                for loop in loops:
                    loop.kill()
                    loop.wait()
            print(f"{busy} busy loops: {seconds[busy][-1]:.0f} s", flush=True)
    idle = min(seconds[args.busy[0]])
    print(f"\n| busy loops | make demo s (best of {args.rounds}) | x {args.busy[0]} busy |\n|---|---|---|")
    for busy in args.busy:
        best = min(seconds[busy])
        print(f"| {busy} | {best:.0f} | {best / idle:.2f} |")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
