"""CPU thread settings, chosen before torch is imported.

Torch's CPU kernels (ATen, MKL, oneDNN) share GNU OpenMP (libgomp). At the end of every parallel
region a thread that finishes early waits at a barrier, and by default it waits by spinning, about
300,000 turns of a loop, before it sleeps. An LSTM meets such a barrier at every time step. When
another process holds one of the cores, the thread it displaced finishes its share late, and its
peer spins meanwhile on the other core, taking the time the displaced thread needed: two threads then
ran 5-10x slower than one (NOTES.md). `OMP_WAIT_POLICY=PASSIVE` makes waiting threads sleep at once.
libgomp reads the variable once, when torch loads it, so it must be in the environment before the
first `import torch`: hence this module imports nothing from torch or the rest of the package.

Use (the command-line entry point, first thing):

    from nlp_lstm import threads
    threads.configure_before_torch()
    ...
    import torch
    torch.set_num_threads(requested or threads.default_threads())

Measured on the shared 2-core machine (`benchmarks/bench_contention.py`, a BiLSTM-256 classifier):
two spinning threads ran at 0.08-0.3x one thread whenever other processes held the cores, and no
spin count between sleep-at-once and the default avoided that; with PASSIVE, two threads were not
slower than one under contention. NOTES.md measured PASSIVE's cost on an idle machine at about 9%.
`default_threads` still leaves cores that other work holds to it (one thread on a busy 2-core
machine): one thread cannot lose to contention at a barrier, and on an idle machine every core is
used.
"""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping

__all__ = ["configure_before_torch", "default_threads", "usable_cores", "busy_cores"]

# More threads than this gained nothing measurable for our model sizes (hidden 128-256).
MAX_DEFAULT_THREADS = 4
# Variables with which a user (or a launcher such as torchrun) already chose how OpenMP waits.
WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def configure_before_torch(environ: MutableMapping[str, str] | None = None) -> bool:
    """Make OpenMP threads sleep, not spin, while they wait (module docstring).

    Leaves the environment alone when the user set `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT`. Child
    processes (torchrun workers, data-loader workers) inherit the setting.

    Args:
        environ: the environment to change; `os.environ` by default.
    Returns:
        True if it set `OMP_WAIT_POLICY=PASSIVE`; False if the user's choice stands.
    Note:
        Has no effect on a process that has already imported torch (libgomp read its settings then).
    """
    environ = os.environ if environ is None else environ
    if any(name in environ for name in WAIT_SETTINGS):
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return None


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity (taskset, cgroup cpusets), not the machine's."""
    cpus = _affinity()
    return max(1, len(cpus)) if cpus else max(1, os.cpu_count() or 1)


def busy_cores(*, sample_seconds: float = 0.05) -> float | None:
    """How many of this process's usable cores other work keeps busy now, from `/proc/stat`.

    The load average lags by a minute (it misses a job started just before us), so this reads the
    non-idle time of the usable cores twice, `sample_seconds` apart. This process sleeps meanwhile,
    so its own share is about nil. Returns None where `/proc/stat` cannot be read.
    """
    cpus = _affinity()
    first = _cpu_times(cpus=cpus)
    if first is None:
        return None
    time.sleep(sample_seconds)
    second = _cpu_times(cpus=cpus)
    if second is None:
        return None
    total, idle = second[0] - first[0], second[1] - first[1]
    if total <= 0:
        return None
    cores = len(cpus) if cpus else (os.cpu_count() or 1)
    return cores * (total - idle) / total


def _cpu_times(path: str = "/proc/stat", *, cpus: set[int] | None = None) -> tuple[int, int] | None:
    """(all jiffies, idle + iowait jiffies), summed over `cpus` (`cpuN` lines), or the machine's
    `cpu` line when None. Guest time is already inside user time, so only the first 8 fields count."""
    try:
        with open(path) as stat:
            lines = [line.split() for line in stat if line.startswith("cpu")]
    except OSError:
        return None
    wanted = [fields for fields in lines
              if (fields[0] == "cpu" if cpus is None else fields[0][3:].isdigit() and int(fields[0][3:]) in cpus)]  # fmt: skip
    if not wanted:
        return None
    total = idle = 0
    for fields in wanted:
        values = [int(value) for value in fields[1:9]]
        total += sum(values)
        idle += values[3] + (values[4] if len(values) > 4 else 0)
    return total, idle


def default_threads(environ: MutableMapping[str, str] | None = None) -> int:
    """Intra-op threads for torch when the user did not choose.

    - `OMP_NUM_THREADS` when set (by the user, or by torchrun: one per rank);
    - otherwise every usable core (at most `MAX_DEFAULT_THREADS`), less the cores that other work
      keeps busy right now (`busy_cores`), and at least 1.

    With waiting threads asleep (`configure_before_torch`), one thread too many costs little, so
    the count is rounded towards more threads: a core counts as busy only when more than 3/4 of it
    is taken.
    """
    environ = os.environ if environ is None else environ
    requested = environ.get("OMP_NUM_THREADS", "").strip()
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    cores = min(usable_cores(), MAX_DEFAULT_THREADS)
    busy = busy_cores()
    if busy is None:
        return cores
    return max(1, min(cores, usable_cores() - int(busy + 0.25)))
