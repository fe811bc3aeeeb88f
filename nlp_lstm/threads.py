"""CPU thread settings, chosen before torch is imported.

Torch's CPU kernels (ATen, MKL, oneDNN) share GNU OpenMP (libgomp). At the end of every parallel
region a thread that finishes early waits at a barrier, by default spinning about 300,000 turns of a
loop before it sleeps. An LSTM meets such a barrier at every time step. When another process holds
one of the cores, the thread it displaced finishes its share late while its peer spins, taking the
time the displaced thread needed. `OMP_WAIT_POLICY=PASSIVE` makes waiting threads sleep at once.
libgomp reads the variable once, when torch loads it, so it must be in the environment before the
first `import torch`: hence this module imports nothing from torch or the rest of the package.

Measured on the 2-core machine (`benchmarks/bench_contention.py`: a BiLSTM-256 classifier, training
steps/s and inference texts/s, two threads against one):

    idle machine        spinning 1.26-1.73x   PASSIVE 0.81-1.11x   spin count 3,000-100,000 0.84-1.51x
    one busy process    spinning 0.42-0.54x   PASSIVE 0.78-0.93x   spin count 3,000-100,000 0.19-0.71x

No wait policy gives two threads both the idle gain and safety under contention, and under
contention one thread beats two however they wait. So the choice is made by looking first:
`configure_before_torch` samples how busy the usable cores are (`busy_cores`, 50 ms of
`/proc/stat`); on an idle machine it leaves OpenMP spinning and `default_threads` uses every core; on
a busy one it sets PASSIVE (which also softens an explicit `--threads 2`) and `default_threads` uses
the cores that are free, at least one. The remaining risk: a machine idle at start that gets busy
later keeps spinning threads (then 0.4-0.5x of one thread, as before this module); pass
`--threads 1`, or set `OMP_WAIT_POLICY=PASSIVE` yourself, on machines shared that way.

Use (the command-line entry point, first thing):

    from nlp_lstm import threads
    threads.configure_before_torch()
    ...
    import torch
    torch.set_num_threads(requested or threads.default_threads())
"""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping

__all__ = ["busy_cores", "configure_before_torch", "default_threads", "usable_cores"]

# More threads than this gained nothing measurable for our model sizes (hidden 128-256).
MAX_DEFAULT_THREADS = 4
# A core counts as taken when other work keeps more than half of it busy.
BUSY_CORE_SHARE = 0.5
# Variables with which a user (or a launcher such as torchrun) already chose how OpenMP waits.
WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

_sampled: dict[str, float | None] = {}  # busy cores seen by configure_before_torch, for default_threads


def configure_before_torch(environ: MutableMapping[str, str] | None = None) -> int:
    """Look at how busy the machine is, and on a busy one make OpenMP threads sleep while they wait.

    Call it before the first `import torch`. Leaves the wait policy alone when the user set
    `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT`. Child processes (torchrun workers) inherit the setting.

    Args:
        environ: the environment to change; `os.environ` by default.
    Returns:
        the thread count `default_threads` will give (module docstring).
    """
    environ = os.environ if environ is None else environ
    busy = busy_cores()
    _sampled["busy"] = busy
    if busy is not None and busy > BUSY_CORE_SHARE and not any(name in environ for name in WAIT_SETTINGS):
        environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return default_threads(environ)


def default_threads(environ: MutableMapping[str, str] | None = None) -> int:
    """Intra-op threads for torch when the user did not choose.

    `OMP_NUM_THREADS` when set (by the user, or by torchrun: one per rank); otherwise the usable
    cores that other work leaves free (a core counts as taken above `BUSY_CORE_SHARE` of it), at
    least 1 and at most `MAX_DEFAULT_THREADS`. Busyness is what `configure_before_torch` saw, or a
    fresh 50 ms sample when it was not called.
    """
    environ = os.environ if environ is None else environ
    requested = environ.get("OMP_NUM_THREADS", "").strip()
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    cores = usable_cores()
    busy = _sampled["busy"] if "busy" in _sampled else busy_cores()
    free = cores if busy is None else int(cores - busy + (1 - BUSY_CORE_SHARE))
    return max(1, min(free, MAX_DEFAULT_THREADS))


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
