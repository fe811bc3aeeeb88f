"""Multi-process training with PyTorch's own engine: `torchrun` + `DistributedDataParallel` (DESIGN section 7).

`torchrun` starts one process per device and sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT; `process_group` reads them (gloo on CPU, NCCL on GPU). Without those variables, or with
WORLD_SIZE=1, every helper here is a no-op, so the same code runs in one plain process.

Conventions: rank 0 is the main rank; only it prints progress and writes files. Metrics travel as
counts (`ClassificationCounts`, `RougeCounts`: `as_tensor` -> all-reduce SUM -> `from_tensor`), so
every rank computes the same ratios and takes the same early-stopping decision.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def launched_by_torchrun() -> bool:
    """True in a process started by torchrun (or any launcher that sets the env:// variables)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_distributed() -> bool:
    """A process group with more than one rank is up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def launch_rank() -> int:
    """The rank torchrun gave this process (RANK), known before and after the process group is up:
    for a caller that prints results after training."""
    return int(os.environ.get("RANK", 0))


def local_rank() -> int:
    """This process's index on its machine (which GPU it drives)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    """Rank 0: the one rank that logs and saves."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def _group_device() -> torch.device:
    # NCCL reduces CUDA tensors only; gloo reduces CPU tensors.
    if dist.get_backend() == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of `tensor` over all ranks (a new CPU tensor; `tensor` is unchanged)."""
    if not is_distributed():
        return tensor
    reduced = tensor.detach().to(_group_device(), copy=True)
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced.cpu()


def all_reduce_counts(counts: Any) -> Any:
    """Metric counts summed over ranks: `ClassificationCounts` or `RougeCounts` (anything with
    `as_tensor()` / `from_tensor()`). Ratios computed from the result are the whole split's."""
    if not is_distributed():
        return counts
    reduced = all_reduce_sum(counts.as_tensor())
    extra = {"num_classes": counts.num_classes} if hasattr(counts, "num_classes") else {}
    return type(counts).from_tensor(reduced, **extra)


def any_rank(flags: list[bool]) -> list[bool]:
    """For each flag, True on every rank if it is True on any rank (one all-reduce for all of them):
    a Ctrl-C that reached one rank first, a loss that became NaN on one rank."""
    if not is_distributed():
        return list(flags)
    summed = all_reduce_sum(torch.tensor([int(flag) for flag in flags], dtype=torch.int64))
    return [bool(value) for value in summed.tolist()]


def broadcast_object(value: T) -> T:
    """Rank 0's `value` on every rank (picklable objects only)."""
    if not is_distributed():
        return value
    box = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0, device=_group_device())
    return box[0]


def main_first(action: Callable[[], T]) -> T:
    """Run `action` on rank 0, then on the other ranks; return each rank's own result.

    For work with side effects on shared files (clearing the output directory, fitting and saving a
    tokenizer, filling the `datasets` cache): the other ranks then find rank 0's files. If rank 0
    raises, every rank raises the same error instead of waiting forever at the barrier.
    """
    if not is_distributed():
        return action()
    error: BaseException | None = None
    result: Any = None
    if is_main():
        try:
            result = action()
        except Exception as caught:  # noqa: BLE001 - re-raised below on every rank
            error = caught
    error = broadcast_object(error)  # also the barrier: the others wait for rank 0's files
    if error is not None:
        if not is_main():
            error.shown_by_rank_0 = True  # the CLI prints a user error once, on rank 0
        raise error
    return result if is_main() else action()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (what is saved and evaluated)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` in DistributedDataParallel when a process group is up, else `model` itself.

    DDP broadcasts rank 0's weights at construction and averages gradients over ranks in `backward`.
    """
    if not is_distributed():
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


@contextmanager
def process_group(device: torch.device) -> Iterator[torch.device]:
    """Join the torchrun process group for the duration of the block; yield this rank's device.

    Outside torchrun (or with WORLD_SIZE=1) nothing happens and `device` is yielded unchanged. On a
    GPU, rank `LOCAL_RANK` takes `cuda:LOCAL_RANK` and the backend is NCCL; on CPU it is gloo. A
    group that is already up (a test that called `init_process_group` itself) is used as it is and
    left up.
    """
    started = False
    if launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1 and not dist.is_initialized():
        if device.type == "cuda":
            device = torch.device("cuda", local_rank())
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", init_method="env://")
        started = True
    elif is_distributed() and device.type == "cuda":
        device = torch.device("cuda", local_rank())
        torch.cuda.set_device(device)
    try:
        yield device
    except BaseException:
        if started:  # no barrier: the other ranks may be inside a collective this rank will never join
            dist.destroy_process_group()
        raise
    if started:
        leave_group()


def leave_group() -> None:
    """After a run that succeeded on every rank: tear the group down together. A rank that destroys
    its gloo context while a peer is still tearing down can abort the peer ("terminate called
    without an active exception", seen once in a CI run of the DDP test)."""
    dist.barrier()
    dist.destroy_process_group()
