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

Measured on the shared 2-core machine (`benchmarks/bench_contention.py`, a BiLSTM-256 classifier,
other jobs holding about 5 cores' worth of load throughout): two spinning threads ran at 0.07-0.34x
one thread; with PASSIVE, two threads ran at 1.03-1.47x one thread, idle or with one or two
busy-loop processes. NOTES.md measured PASSIVE's cost on an idle machine at about 9%, so
`default_threads` uses every usable core, busy machine or not.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

__all__ = ["configure_before_torch", "default_threads", "usable_cores"]

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


def default_threads(environ: MutableMapping[str, str] | None = None) -> int:
    """Intra-op threads for torch when the user did not choose.

    `OMP_NUM_THREADS` when set (by the user, or by torchrun: one per rank); otherwise every usable
    core (`usable_cores`), at most `MAX_DEFAULT_THREADS`, busy machine or not: with waiting threads
    asleep (`configure_before_torch`), two threads ran no slower than one while other processes
    held one or both cores (module docstring), and every core is the right choice on an idle one.
    """
    environ = os.environ if environ is None else environ
    requested = environ.get("OMP_NUM_THREADS", "").strip()
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    return min(usable_cores(), MAX_DEFAULT_THREADS)
