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


@pytest.mark.parametrize("usable, expected", [(1, 1), (2, 2), (4, 4), (16, 4)])
def test_default_threads_is_every_usable_core_up_to_the_cap(monkeypatch, usable, expected):
    monkeypatch.setattr(threads, "usable_cores", lambda: usable)
    assert threads.default_threads({}) == expected
    assert threads.default_threads({"OMP_NUM_THREADS": ""}) == expected  # empty: not a choice


def test_usable_cores_is_the_affinity_not_the_machine(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert threads.usable_cores() == 2
