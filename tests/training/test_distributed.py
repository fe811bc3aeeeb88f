"""DDP on CPU (gloo): 2 processes with batch b train the same weights as 1 process with batch 2b, and
`train classifier --nproc-per-node 2` writes a model that loads in one process and predicts like the
model one process trains with the doubled batch."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nlp_lstm.artifacts import load_tensors, save_tensors
from nlp_lstm.config import TrainConfig
from nlp_lstm.models.classifier import ClassifierConfig
from nlp_lstm.models.classifier import TextClassifier
from nlp_lstm.training import distributed
from nlp_lstm.training.loop import fit
from nlp_lstm.training.tasks import ClassificationTask
from tests.helpers import invoke, sentiment_rows, write_csv

datasets.disable_progress_bars()
ROOT = Path(__file__).resolve().parents[2]
VOCAB = 30
TOLERANCE = 1e-5
# name: (training examples, per-rank batch size). 57 = 7 x 8 + 1: the last global batch of 8 has one
# example, so rank 1's part is empty (weight 0). 57 = 9 x 6 + 3: the last global batch splits 2 + 1.
CASES = {"empty-part": (57, 4), "uneven-part": (57, 3)}


def encoded(count: int, seed: int) -> datasets.Dataset:
    """Random token ids whose label is whether token 3 occurs: learnable, varied lengths."""
    rng = random.Random(seed)
    ids = [[rng.randrange(2, VOCAB) for _ in range(rng.randint(1, 9))] for _ in range(count)]
    return datasets.Dataset.from_dict({
        "input_ids": ids, "length": [len(row) for row in ids], "labels": [int(3 in row) for row in ids],
    })


def train_case(run_dir: Path, *, count: int, batch_size: int, resume: bool = False, stop_after_steps: int | None = None):
    torch.manual_seed(0)
    model = TextClassifier(ClassifierConfig(num_labels=2, task="binary", vocab_size=VOCAB, embedding_dim=8,
                                            hidden_size=8, dropout=0.0))
    config = TrainConfig(epochs=2, batch_size=batch_size, learning_rate=0.02, patience=5, seed=3)
    result = fit(model, task=ClassificationTask(["no", "yes"]), train_data=encoded(count, seed=1),
                 validation_data=encoded(24, seed=2), config=config, run_dir=run_dir, device=torch.device("cpu"),
                 progress=False, resume=resume, stop_after_steps=stop_after_steps)
    return model, result


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        for name, (count, batch_size) in CASES.items():
            model, result = train_case(Path(out) / name, count=count, batch_size=batch_size)
            if rank == 0:
                save_tensors(model.state_dict(), Path(out) / name / "final.safetensors")
                save_tensors(result.best_state, Path(out) / name / "best.safetensors")
                (Path(out) / name / "result.json").write_text(json.dumps({"log": result.log, "best_epoch": result.best_epoch}))
        # Stopped mid-epoch 2, then resumed: every rank loads rank 0's checkpoint.
        count, batch_size = CASES["uneven-part"]
        train_case(Path(out) / "resumed", count=count, batch_size=batch_size, stop_after_steps=13)
        model, _ = train_case(Path(out) / "resumed", count=count, batch_size=batch_size, resume=True)
        if rank == 0:
            save_tensors(model.state_dict(), Path(out) / "resumed" / "final.safetensors")
    except BaseException:
        dist.destroy_process_group()
        raise
    distributed.leave_group()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def max_difference(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> float:
    assert left.keys() == right.keys()
    return max(float((left[name] - right[name]).abs().max()) for name in left)


@pytest.mark.slow
def test_two_ranks_with_batch_b_match_one_process_with_batch_2b(tmp_path):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for name, (count, batch_size) in CASES.items():
        model, result = train_case(tmp_path / f"{name}-single", count=count, batch_size=2 * batch_size)
        final = load_tensors(tmp_path / name / "final.safetensors")
        best = load_tensors(tmp_path / name / "best.safetensors")
        saved = json.loads((tmp_path / name / "result.json").read_text())
        difference = max(max_difference(model.state_dict(), final), max_difference(result.best_state, best))
        print(f"{name}: max abs difference DDP(2 x {batch_size}) vs 1 x {2 * batch_size}: {difference:.3g}")
        assert difference < TOLERANCE, name
        assert saved["best_epoch"] == result.best_epoch
        assert [row["step"] for row in saved["log"]] == [row["step"] for row in result.log]
        for ddp_row, row in zip(saved["log"], result.log):
            assert ddp_row["val_metric"] == pytest.approx(row["val_metric"])
            assert ddp_row["train_loss"] == pytest.approx(row["train_loss"], rel=1e-5)
        # Only rank 0 wrote the log and the checkpoints.
        assert (tmp_path / name / "train_log.jsonl").exists()
        assert len(list((tmp_path / name / "checkpoints").iterdir())) == 2
    # Resume under DDP is exact (dropout 0: no RNG in the step).
    resumed = load_tensors(tmp_path / "resumed" / "final.safetensors")
    assert max_difference(resumed, load_tensors(tmp_path / "uneven-part" / "final.safetensors")) == 0.0


@pytest.mark.slow
def test_cli_nproc_per_node_trains_what_one_process_trains_with_twice_the_batch(tmp_path):
    import nlp_lstm

    train_file = write_csv(tmp_path / "train.csv", sentiment_rows(200, seed=3))
    output = tmp_path / "model"
    # Dropout 0: no per-rank random stream, so 2 ranks x batch 8 train the weights of 1 x batch 16.
    common = ["--train-file", str(train_file), "--embedding-dim", "8", "--hidden-size", "8", "--epochs", "2",
              "--dropout", "0.0", "--quiet", "--threads", "1", "--device", "cpu"]
    args = [sys.executable, "-m", "nlp_lstm.cli.main", "train", "classifier", *common, "--output-dir", str(output),
            "--batch-size", "8", "--nproc-per-node", "2"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("saved model to") == 1, done.stdout  # rank 0 reports, once
    assert len((output / "train_log.jsonl").read_text().splitlines()) == 2
    single = invoke("train", "classifier", *common, "--output-dir", tmp_path / "single", "--batch-size", "16")
    assert single.exit_code == 0, single.output

    texts = ["what a great film", "a dull and awful plot", "the story was really quite lovely"]
    classifier = nlp_lstm.load(output, device="cpu")
    reference = nlp_lstm.load(tmp_path / "single", device="cpu")
    difference = max_difference(classifier.model.state_dict(), reference.model.state_dict())
    assert difference < TOLERANCE, difference
    predictions, expected = classifier.predict(texts), reference.predict(texts)
    assert [p["label"] for p in predictions] == [p["label"] for p in expected]
    assert [p["score"] for p in predictions] == pytest.approx([p["score"] for p in expected], abs=1e-5)
    assert all(p["label"] in classifier.labels for p in predictions)


def test_nproc_per_node_under_torchrun_is_a_clear_error(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from nlp_lstm.cli.main import app

    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(app, ["train", "classifier", "--output-dir", str(tmp_path), "--nproc-per-node", "2"])
    assert result.exit_code == 2
    assert "--nproc-per-node" in result.output


@pytest.mark.slow
def test_a_user_error_under_nproc_per_node_is_printed_once(tmp_path):
    train_file = write_csv(tmp_path / "train.csv", sentiment_rows(50, seed=3))
    args = [sys.executable, "-m", "nlp_lstm.cli.main", "train", "classifier", "--train-file", str(train_file),
            "--text-column", "body", "--output-dir", str(tmp_path / "model"), "--quiet", "--threads", "1",
            "--device", "cpu", "--nproc-per-node", "2"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: column 'body' not found"), done.stderr
    assert done.stderr.count("error: ") == 1 and "Traceback" not in done.stderr, done.stderr


def test_launch_exit_code_keeps_the_workers_meaning():
    from nlp_lstm.cli.launch import exit_code

    assert exit_code({2}) == 2  # every rank: the same usage or input error
    assert exit_code({2, -15}) == 2  # rank 0 exited first; torchrun stopped rank 1 with SIGTERM
    assert exit_code({-15}) == 1 and exit_code({-9}) == 1  # killed from outside: nothing to say
    assert exit_code({130, 1}) == 130 and exit_code({-2}) == 130  # Ctrl-C
    assert exit_code({1}) == 1 and exit_code({2, 1}) == 1
