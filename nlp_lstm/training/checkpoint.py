"""Training checkpoints as safetensors + JSON (never pickle).

A checkpoint is a directory `checkpoints/step-000123/` holding
- `model.safetensors`: the unwrapped module's state,
- `optimizer.safetensors`: every tensor of the optimizer state, keyed `state.<param index>.<name>`,
- `rng.safetensors`: the torch CPU (and CUDA) generator states,
- `trainer_state.json`: epoch, step, batch position, early-stopping state, optimizer param groups,
  scheduler counters and the Python / NumPy RNG states.
It is written into a temporary directory and renamed into place, so a reader sees all of it or none.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlp_lstm.artifacts import atomic_write_json, load_tensors, read_json, save_tensors

PREFIX = "step-"


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and plain data (for JSON)."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"param_groups": state["param_groups"], "scalars": {}}
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{name}"] = value
            else:
                plain["scalars"][f"{index}.{name}"] = value
    return tensors, plain


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for key, value in plain["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = plain["param_groups"]
    for group in groups:  # JSON turned tuples (e.g. Adam's betas) into lists
        for name, value in group.items():
            if isinstance(value, list) and name != "params":
                group[name] = tuple(value)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{index}"] = cuda_state
    version, keys, position, has_gauss, cached = np.random.get_state()
    python_version, python_state, python_gauss = random.getstate()
    plain = {
        "numpy": [version, keys.tolist(), position, has_gauss, cached],
        "python": [python_version, list(python_state), python_gauss],
    }
    return tensors, plain


def set_rng_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[key] for key in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, keys, position, has_gauss, cached = plain["numpy"]
    np.random.set_state((version, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    python_version, python_state, python_gauss = plain["python"]
    random.setstate((python_version, tuple(python_state), python_gauss))


def save_checkpoint(
    directory: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    trainer_state: dict[str, Any],
    best_state: dict[str, torch.Tensor] | None,
    keep: int,
) -> Path:
    """Write checkpoint `step-<step>` under `directory` atomically and keep the newest `keep`."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{PREFIX}{trainer_state['step']:09d}"
    staging = directory / f".tmp-{target.name}-{os.getpid()}"
    retired = directory / f".tmp-retired-{target.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        save_tensors(model.state_dict(), staging / "model.safetensors")
        if best_state is not None:
            save_tensors(best_state, staging / "best.safetensors")
        optimizer_tensors, optimizer_plain = optimizer_to_flat(optimizer)
        save_tensors(optimizer_tensors, staging / "optimizer.safetensors")
        rng_tensors, rng_plain = rng_state()
        save_tensors(rng_tensors, staging / "rng.safetensors")
        scheduler_state = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
        atomic_write_json(
            staging / "trainer_state.json",
            {"trainer": trainer_state, "optimizer": optimizer_plain, "scheduler": scheduler_state, "rng": rng_plain},
        )
        _fsync_directory(staging)
        if target.exists():  # the same step saved again (after a resume): move it aside in one rename, so
            # a kill never leaves a half-deleted step-N behind (training cleans up ".tmp-*" on start)
            os.replace(target, retired)
        os.replace(staging, target)
        _fsync_directory(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
    for old in list_checkpoints(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def load_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Restore model, optimizer, scheduler and RNGs in place; return (trainer_state, best_state)."""
    data = read_json(path / "trainer_state.json", what="checkpoint state")
    model.load_state_dict(load_tensors(path / "model.safetensors"))
    optimizer_from_flat(optimizer, load_tensors(path / "optimizer.safetensors"), data["optimizer"])
    scheduler_state = scheduler.state_dict()
    scheduler_state.update(data["scheduler"])
    scheduler.load_state_dict(scheduler_state)
    set_rng_state(load_tensors(path / "rng.safetensors"), data["rng"])
    best_path = path / "best.safetensors"
    best_state = load_tensors(best_path) if best_path.exists() else None
    return data["trainer"], best_state


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
