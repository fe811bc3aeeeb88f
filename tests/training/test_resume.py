"""Resumable training: an interrupted run (step limit, crash, SIGKILL, Ctrl-C) that is resumed reaches
bit-identical weights to an uninterrupted one, including the early-stopping best weights."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
import torch

from nlp_lstm.artifacts import load_tensors
from nlp_lstm.config import TrainConfig
from nlp_lstm.errors import NlpLstmError, TrainingInterrupted
from nlp_lstm.models.classifier import ClassifierConfig, TextClassifier
from nlp_lstm.stages.run import run_work_dir
from nlp_lstm.training.checkpoint import list_checkpoints
from nlp_lstm.training.loop import fit
from nlp_lstm.training.tasks import ClassificationTask
from tests.helpers import ROOT, sentiment_rows, write_csv

datasets.disable_progress_bars()
VOCAB = 30


def encoded(count: int, seed: int) -> datasets.Dataset:
    """Random token ids whose label is whether token 3 occurs: learnable, varied lengths."""
    rng = random.Random(seed)
    ids = [[rng.randrange(2, VOCAB) for _ in range(rng.randint(1, 9))] for _ in range(count)]
    return datasets.Dataset.from_dict({
        "input_ids": ids, "length": [len(row) for row in ids], "labels": [int(3 in row) for row in ids],
    })


TRAIN, VALIDATION = encoded(64, seed=1), encoded(24, seed=2)


def new_model(seed: int = 0) -> TextClassifier:
    torch.manual_seed(seed)
    return TextClassifier(ClassifierConfig(num_labels=2, task="binary", vocab_size=VOCAB, embedding_dim=8,
                                           hidden_size=8, dropout=0.3))


def train(run_dir: Path, *, resume=False, stop_after_steps=None, task=None, model_seed=0, **config):
    settings = {"epochs": 3, "batch_size": 8, "learning_rate": 0.02, "patience": 5, **config}
    model = new_model(model_seed)
    result = fit(model, task=task or ClassificationTask(["no", "yes"]), train_data=TRAIN, validation_data=VALIDATION,
                 config=TrainConfig(**settings), run_dir=run_dir, device=torch.device("cpu"), resume=resume,
                 progress=False, stop_after_steps=stop_after_steps)
    return model, result


def assert_same_tensors(left: dict, right: dict) -> None:
    assert left.keys() == right.keys()
    for name in left:
        assert torch.equal(left[name], right[name]), name


def assert_same_run(reference, resumed) -> None:
    (model_a, result_a), (model_b, result_b) = reference, resumed
    assert_same_tensors(model_a.state_dict(), model_b.state_dict())
    assert_same_tensors(result_a.best_state, result_b.best_state)
    assert (result_a.best_epoch, result_a.stop_reason, result_a.log) == (result_b.best_epoch, result_b.stop_reason, result_b.log)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return train(tmp_path_factory.mktemp("reference"))  # 8 steps per epoch, 24 in all


@pytest.mark.parametrize("stop", [3, 8, 13], ids=["mid-epoch-1", "epoch-end", "mid-epoch-2"])
def test_stop_then_resume_is_bit_identical(reference, tmp_path, stop):
    _, partial = train(tmp_path, stop_after_steps=stop)
    assert partial.stop_reason == "step limit"
    # A different initialisation proves the weights come from the checkpoint, not from the seed.
    assert_same_run(reference, train(tmp_path, resume=True, model_seed=99))


def test_crash_after_periodic_checkpoint_resumes_bit_identical(reference, tmp_path):
    # Checkpoints every 3 steps; the run "crashes" after step 7: only steps 3 and 6 are on disk.
    train(tmp_path, stop_after_steps=7, checkpoint_every=3)
    found = list_checkpoints(tmp_path / "checkpoints")
    shutil.rmtree(found[-1])
    assert list_checkpoints(tmp_path / "checkpoints")[-1].name == "step-000000006"
    assert_same_run(reference, train(tmp_path, resume=True, checkpoint_every=3))


def test_early_stopping_best_weights_agree_after_resume(tmp_path):
    # A huge learning rate makes the metric stall, so patience 0 stops early and the best epoch is
    # not the last: the kept best weights must survive the checkpoint too.
    settings = {"epochs": 6, "patience": 0, "learning_rate": 0.5}
    reference = train(tmp_path / "a", **settings)
    train(tmp_path / "b", stop_after_steps=11, **settings)
    assert_same_run(reference, train(tmp_path / "b", resume=True, **settings))


class ScriptedMetric(ClassificationTask):
    """Validation reports the next of `values` as macro-F1, whatever the model learnt."""

    def __init__(self, values: list[float]) -> None:
        super().__init__(["no", "yes"])
        self.values = iter(values)

    def evaluate(self, model, batches, *, all_reduce=False):
        return {"macro_f1": next(self.values), "loss": 0.0}


@pytest.mark.parametrize("patience, epochs_run", [(1, 3), (2, 4), (0, 3)])
def test_patience_stops_after_that_many_epochs_without_improvement(tmp_path, patience, epochs_run):
    # Metric per epoch: 0.5, 0.6 (best), then no better. As in Keras and Lightning, patience N stops
    # after N epochs without improvement (0 behaves as 1).
    _, result = train(tmp_path, task=ScriptedMetric([0.5, 0.6, 0.55, 0.6, 0.58, 0.9]), epochs=6, patience=patience)
    assert [row["epoch"] for row in result.log] == list(range(1, epochs_run + 1))
    assert result.best_epoch == 2 and result.stop_reason.startswith("early stop")


def test_the_loop_leaves_an_ignored_sigint_ignored(tmp_path):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        train(tmp_path, epochs=1)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(NlpLstmError, match="no checkpoint.*without --resume"):
        train(tmp_path, resume=True)


def test_checkpoints_are_pruned_to_keep(tmp_path):
    train(tmp_path, checkpoint_every=2, keep_checkpoints=2)
    names = [path.name for path in list_checkpoints(tmp_path / "checkpoints")]
    assert names == ["step-000000022", "step-000000024"]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".tmp")]


def test_saving_a_step_again_never_leaves_it_half_deleted(tmp_path, monkeypatch):
    # A resumed run saves the step it resumed from again. A writer killed while the old copy is being
    # deleted must leave step-N whole (it once deleted it in place: a kill left it without weights).
    from nlp_lstm.training import checkpoint

    model = TextClassifier(ClassifierConfig(num_labels=2, vocab_size=VOCAB, embedding_dim=4, hidden_size=4))
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    save = lambda: checkpoint.save_checkpoint(tmp_path, model=model, optimizer=optimizer, scheduler=scheduler,  # noqa: E731
                                              trainer_state={"step": 7}, best_state=None, keep=2)
    save()

    def killed_while_deleting(path, ignore_errors=False):  # deletes one file, then the process "dies"
        files = sorted(Path(path).glob("*")) if Path(path).exists() else []
        if files:
            files[0].unlink()
            raise OSError("killed")

    monkeypatch.setattr(checkpoint.shutil, "rmtree", killed_while_deleting)
    with pytest.raises(OSError, match="killed"):
        save()
    [step] = list_checkpoints(tmp_path)
    assert sorted(p.name for p in step.iterdir()) == [
        "model.safetensors", "optimizer.safetensors", "rng.safetensors", "trainer_state.json"]
    model.load_state_dict(load_tensors(step / "model.safetensors"))


class SigintAtStep(ClassificationTask):
    """Sends this process SIGINT in the middle of step `step` (after dropout drew from the RNG)."""

    def __init__(self, step: int) -> None:
        super().__init__(["no", "yes"])
        self.step, self.calls = step, 0

    def loss(self, model, batch):
        self.calls += 1
        if self.calls == self.step:
            os.kill(os.getpid(), signal.SIGINT)
        return super().loss(model, batch)


@pytest.fixture
def default_sigint():
    """Python's own Ctrl-C handler, whatever the shell gave: a background job of a non-interactive
    shell (`nohup make test &`, some CI runners) starts with SIGINT ignored, and then Python installs
    no handler. The loop rightly leaves an ignored SIGINT alone, so this test sets the state it needs."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_finishes_the_step_checkpoints_and_resumes_bit_identical(reference, tmp_path, default_sigint):
    with pytest.raises(TrainingInterrupted, match=r"at step 5;.*--resume"):
        train(tmp_path, task=SigintAtStep(5))
    assert list_checkpoints(tmp_path / "checkpoints")[-1].name == "step-000000005"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    assert_same_run(reference, train(tmp_path, resume=True))


class NanAtStep(ClassificationTask):
    def __init__(self, step: int) -> None:
        super().__init__(["no", "yes"])
        self.step, self.calls = step, 0

    def loss(self, model, batch):
        self.calls += 1
        loss = super().loss(model, batch)
        return loss * float("nan") if self.calls == self.step else loss


def test_nan_loss_stops_with_the_step_number(tmp_path):
    with pytest.raises(NlpLstmError, match=r"training loss became nan at step 4; lower the learning rate"):
        train(tmp_path, task=NanAtStep(4))


# --- the command line, in a subprocess ---------------------------------------------------------------------

CLI = [sys.executable, "-m", "nlp_lstm.cli.main", "train", "classifier"]
TINY = ["--embedding-dim", "8", "--hidden-size", "8", "--epochs", "3", "--batch-size", "16", "--learning-rate", "0.01",
        "--checkpoint-every", "5", "--quiet", "--threads", "1", "--device", "cpu"]


def cli_args(train_file: Path, output: Path) -> list[str]:
    return [*CLI, "--train-file", str(train_file), "--output-dir", str(output), *TINY]


def run_cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, **kwargs)


def start_cli(args: list[str]) -> subprocess.Popen:
    """The CLI as a terminal starts it: SIGINT at its default even when these tests run as a background
    job (SIGINT ignored, inherited by children, and then Python installs no KeyboardInterrupt)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_checkpoint(process: subprocess.Popen, checkpoints: Path, newer_than: str = "") -> bool:
    """Poll until a checkpoint newer than `newer_than` appears; False if the process ends first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list_checkpoints(checkpoints)
        if found and found[-1].name > newer_than:
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.005)
    raise AssertionError("no checkpoint appeared within 120 s")


def final_tensors(output: Path) -> dict[str, torch.Tensor]:
    return load_tensors(output / "model.safetensors")


@pytest.fixture(scope="module")
def cli_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    train_file = write_csv(root / "train.csv", sentiment_rows(300, seed=3))
    output = root / "reference"
    done = run_cli(cli_args(train_file, output))
    assert done.returncode == 0, done.stderr
    return train_file, final_tensors(output)


@pytest.mark.slow
def test_two_uninterrupted_runs_are_identical(cli_reference, tmp_path):
    train_file, _ = cli_reference
    for name in ("a", "b"):
        assert run_cli(cli_args(train_file, tmp_path / name)).returncode == 0
    assert_same_tensors(final_tensors(tmp_path / "a"), final_tensors(tmp_path / "b"))


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_is_bit_identical(cli_reference, tmp_path):
    train_file, expected = cli_reference
    output = tmp_path / "run"
    rng = random.Random(0)
    kills, resumed = 0, False
    for _ in range(12):
        args = cli_args(train_file, output) + (["--resume"] if resumed else ["--overwrite"])
        process = start_cli(args)
        latest = max((p.name for p in list_checkpoints(run_work_dir(output) / "checkpoints")), default="")
        if wait_for_checkpoint(process, run_work_dir(output) / "checkpoints", newer_than=latest):
            time.sleep(rng.uniform(0.0, 0.05))  # somewhere in the next few steps, maybe mid-write
        if process.poll() is None:
            process.kill()  # SIGKILL
            process.communicate()
            kills += 1
            resumed = bool(list_checkpoints(run_work_dir(output) / "checkpoints"))
            continue
        _, stderr = process.communicate()
        assert process.returncode == 0, stderr
        break
    else:
        pytest.fail("the run never finished")
    assert kills >= 3, kills
    print(f"survived {kills} SIGKILLs")
    assert_same_tensors(expected, final_tensors(output))
    assert not list(output.glob(".*tmp*")) and not list((output / "checkpoints").glob(".tmp-*"))
    assert not run_work_dir(output).exists()  # its checkpoints moved into the model directory


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(cli_reference, tmp_path):
    train_file, expected = cli_reference
    output = tmp_path / "run"
    process = start_cli(cli_args(train_file, output))
    assert wait_for_checkpoint(process, run_work_dir(output) / "checkpoints")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "checkpoint saved" in lines[0] and "--resume" in lines[0], stderr
    assert "Traceback" not in stderr
    assert process.returncode == 130
    done = run_cli(cli_args(train_file, output) + ["--resume"])
    assert done.returncode == 0, done.stderr
    assert_same_tensors(expected, final_tensors(output))
