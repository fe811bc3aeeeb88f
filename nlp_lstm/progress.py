"""Progress bars on stderr (rich, as shipped with Typer); silent when disabled, datasets' own bars too."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class _Bar:
    def __init__(self, progress: Progress | None, task_id: int | None) -> None:
        self._progress, self._task_id = progress, task_id

    def advance(self, steps: int = 1, **fields: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task_id, advance=steps, **fields)


@contextmanager
def progress_bar(total: int, description: str, *, enabled: bool = True) -> Iterator[_Bar]:
    if not enabled:
        yield _Bar(None, None)
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    with progress:
        yield _Bar(progress, progress.add_task(description, total=total, info=""))


@contextmanager
def datasets_bars(enabled: bool) -> Iterator[None]:
    """The datasets library's own tqdm bars ("Generating train split", "Filter", "Encoding") off
    while the block runs unless `enabled`; afterwards as they were, since the switch is process-wide.
    An explicit `HF_DATASETS_DISABLE_PROGRESS_BARS=0` in the environment wins (datasets' rule)."""
    if enabled:
        yield
        return
    import datasets

    forced_on = datasets.config.HF_DATASETS_DISABLE_PROGRESS_BARS is False
    was_disabled = datasets.utils.are_progress_bars_disabled()
    if not forced_on:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not forced_on and not was_disabled:
            datasets.enable_progress_bars()
