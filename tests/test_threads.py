"""nlp_lstm.threads: OpenMP waiting set before torch loads, and the default thread count."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nlp_lstm import threads

ROOT = Path(__file__).resolve().parent.parent


def test_configure_sets_passive_waiting_unless_the_user_chose():
    environ = {}
    assert threads.configure_before_torch(environ) is True
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    for name, value in [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "10000")]:
        environ = {name: value}
        assert threads.configure_before_torch(environ) is False
        assert environ == {name: value}


def test_the_module_loads_without_torch_and_its_setting_reaches_child_processes():
    # It must run before `import torch` (libgomp reads the variable when torch loads it), so
    # importing it may not import torch; workers started afterwards (torchrun) inherit the setting.
    child = "import os; print(os.environ['OMP_WAIT_POLICY'])"
    code = (
        "import subprocess, sys; from nlp_lstm import threads; assert 'torch' not in sys.modules; "
        f"threads.configure_before_torch(); print(subprocess.run([sys.executable, '-c', {child!r}], "
        "capture_output=True, text=True).stdout.strip())"
    )
    environ = {key: value for key, value in os.environ.items() if key not in threads.WAIT_SETTINGS}
    environ["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "PASSIVE"


def test_default_threads_follows_omp_num_threads():
    assert threads.default_threads({"OMP_NUM_THREADS": "3"}) == 3
    assert threads.default_threads({"OMP_NUM_THREADS": " 1 "}) == 1


@pytest.mark.parametrize(
    "usable, busy, expected",
    [
        (2, 0.0, 2),  # idle: every core
        (2, 0.6, 2),  # a core less than 3/4 taken still counts as free
        (2, 1.0, 1),  # one busy loop on two cores
        (2, 2.0, 1),  # both taken: never fewer than one
        (8, 0.0, 4),  # at most MAX_DEFAULT_THREADS
        (8, 5.0, 3),
        (2, None, 2),  # no /proc/stat: trust the affinity
    ],
)
def test_default_threads_leaves_busy_cores_alone(monkeypatch, usable, busy, expected):
    monkeypatch.setattr(threads, "usable_cores", lambda: usable)
    monkeypatch.setattr(threads, "busy_cores", lambda **_: busy)
    assert threads.default_threads({}) == expected


def test_busy_cores_is_the_non_idle_share_of_the_usable_cores(monkeypatch):
    samples = iter([(1_000, 800), (1_200, 900)])  # 200 jiffies, 100 of them idle
    seen = []
    monkeypatch.setattr(threads, "_cpu_times", lambda cpus: seen.append(cpus) or next(samples))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert threads.busy_cores(sample_seconds=0.0) == pytest.approx(2.0)
    assert seen == [{0, 1, 2, 3}] * 2
    monkeypatch.setattr(threads, "_cpu_times", lambda cpus: None)
    assert threads.busy_cores(sample_seconds=0.0) is None


def test_cpu_times_reads_the_machine_line_or_the_usable_cores_of_proc_stat(tmp_path):
    # user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 20 300 7 1 2 3 50 0\ncpu0 50 2 10 150 3 0 1 1 25 0\n"
                    "cpu1 40 3 10 100 4 1 1 2 25 0\ncpu2 10 0 0 50 0 0 0 0 0 0\nintr 12 13\n")  # fmt: skip
    assert threads._cpu_times(str(stat)) == (100 + 5 + 20 + 300 + 7 + 1 + 2 + 3, 300 + 7)
    assert threads._cpu_times(str(stat), cpus={0, 2}) == (50 + 2 + 10 + 150 + 3 + 0 + 1 + 1 + 60, 150 + 3 + 50)
    assert threads._cpu_times(str(stat), cpus={7}) is None
    stat.write_text("intr 12 13\n")
    assert threads._cpu_times(str(stat)) is None
    assert threads._cpu_times(str(tmp_path / "missing")) is None


def test_usable_cores_is_the_affinity(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert threads.usable_cores() == 1
