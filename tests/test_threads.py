"""nlp_lstm.threads: the thread count and OpenMP wait policy, chosen before torch loads."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nlp_lstm import threads

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh_sample(monkeypatch):
    """Each test starts as if configure_before_torch had not run in this process."""
    monkeypatch.setattr(threads, "_sampled", {})


def pretend(monkeypatch, *, usable, busy):
    monkeypatch.setattr(threads, "usable_cores", lambda: usable)
    monkeypatch.setattr(threads, "busy_cores", lambda **_: busy)


def test_the_module_loads_without_torch():
    # It must run before `import torch` (libgomp reads OMP_WAIT_POLICY when torch loads it).
    code = "import sys; from nlp_lstm import threads; assert 'torch' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_an_idle_machine_keeps_spinning_threads_on_every_core(monkeypatch):
    pretend(monkeypatch, usable=2, busy=0.2)
    environ = {}
    assert threads.configure_before_torch(environ) == 2
    assert environ == {}  # spinning: 1.26-1.73x one thread when idle


def test_a_busy_machine_gets_sleeping_waits_and_the_free_cores(monkeypatch):
    pretend(monkeypatch, usable=2, busy=1.0)  # one busy-loop process
    environ = {}
    assert threads.configure_before_torch(environ) == 1
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}


def test_the_users_wait_settings_stand(monkeypatch):
    pretend(monkeypatch, usable=2, busy=2.0)
    for name, value in [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "10000")]:
        environ = {name: value}
        threads.configure_before_torch(environ)
        assert environ == {name: value}


def test_default_threads_reuses_what_configure_saw(monkeypatch):
    pretend(monkeypatch, usable=2, busy=1.2)
    threads.configure_before_torch({})

    def refuse(**_):
        raise AssertionError("sampled again: torch's own threads would count as other work")

    monkeypatch.setattr(threads, "busy_cores", refuse)
    assert threads.default_threads({}) == 1


def test_default_threads_follows_omp_num_threads(monkeypatch):
    pretend(monkeypatch, usable=2, busy=2.0)
    assert threads.default_threads({"OMP_NUM_THREADS": "3"}) == 3
    assert threads.default_threads({"OMP_NUM_THREADS": " 2 "}) == 2


@pytest.mark.parametrize(
    "usable, busy, expected",
    [
        (2, 0.0, 2),
        (2, 0.45, 2),  # under half a core taken: still free
        (2, 0.6, 1),
        (2, 2.0, 1),  # never fewer than one
        (16, 0.0, 4),  # at most MAX_DEFAULT_THREADS
        (8, 5.2, 3),
        (2, None, 2),  # no /proc/stat: trust the affinity
    ],
)
def test_default_threads_uses_the_free_cores(monkeypatch, usable, busy, expected):
    pretend(monkeypatch, usable=usable, busy=busy)
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


def test_usable_cores_is_the_affinity_not_the_machine(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert threads.usable_cores() == 2
