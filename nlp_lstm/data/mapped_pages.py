"""Keep the resident memory of a memory-mapped dataset bounded while an epoch reads it.

Reading rows of a memory-mapped Arrow file maps its pages into this process, and Linux counts them
in the resident set (RSS) until the mapping goes away, although they are clean page cache that the
kernel may drop at any time. Over an epoch of random batches that is the whole file: RSS then grows
with the corpus. `MappedPages(dataset).release()` advises the kernel that this process does not need
them now (`madvise(MADV_DONTNEED)`); the next read maps them back from the page cache (a minor fault,
no disk read while the file stays cached).

Only whole read-only mappings of `.arrow` files that hold the dataset's own Arrow buffers are
advised (found in /proc/self/maps): never heap memory, a writable mapping, or a shared library (whose
read-only relocated pages would come back from the file unrelocated). Elsewhere (other systems,
in-memory datasets) `release` does nothing.
"""

from __future__ import annotations

import bisect
import functools
import mmap
import os
import sys
from pathlib import Path


def _buffer_addresses(dataset) -> list[int]:
    """Start addresses of every Arrow buffer of the dataset (`Array.buffers()` includes children's)."""
    return sorted({
        buffer.address
        for column in dataset.data.table.columns
        for chunk in column.chunks
        for buffer in chunk.buffers()
        if buffer is not None and buffer.size
    })


def _read_only_arrow_mappings() -> list[tuple[int, int]]:
    mappings = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].endswith(".arrow") or "w" in fields[1]:
            continue  # anonymous, a library, another file, or writable: never advised
        start, end = (int(part, 16) for part in fields[0].split("-"))
        mappings.append((start, end))
    return mappings


class MappedPages:
    """The file mappings behind `dataset`'s Arrow buffers, found once; `release()` drops their pages."""

    def __init__(self, dataset) -> None:
        self.mappings: list[tuple[int, int]] = []
        self.pid = os.getpid()  # addresses mean nothing in another process (a copy sent to a worker)
        if not sys.platform.startswith("linux") or not hasattr(mmap, "MADV_DONTNEED"):
            return
        addresses = _buffer_addresses(dataset)  # sorted
        for start, end in _read_only_arrow_mappings():
            first = bisect.bisect_left(addresses, start)  # the first buffer at or after the mapping's start
            if first < len(addresses) and addresses[first] < end:
                self.mappings.append((start, end))

    def release(self) -> int:
        """Advise every mapping's pages away; returns the bytes advised."""
        if not self.mappings or os.getpid() != self.pid:
            return 0
        madvise = _madvise()
        advised = 0
        for start, end in self.mappings:
            if madvise(start, end - start, mmap.MADV_DONTNEED) == 0:
                advised += end - start
        return advised


def releasing(dataset, function):
    """`function` (a batched map's) that first drops the pages of `dataset` read so far: a map over a
    large memory-mapped table otherwise leaves the whole file in RSS."""
    pages = MappedPages(dataset)

    def wrapped(*args, **kwargs):
        pages.release()
        return function(*args, **kwargs)

    return wrapped


@functools.cache
def _madvise():
    """libc's madvise, looked up once (`release` runs after every training step)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc.madvise
