import sys
from pathlib import Path

import datasets
import pytest

from nlp_lstm.data.mapped_pages import MappedPages

datasets.disable_progress_bars()
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc/self/maps are Linux's")


def _resident_kib(start: int) -> int:
    """Rss of the mapping starting at `start`, from /proc/self/smaps."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.split("-", 1)[0] == f"{start:x}":
            return next(int(entry.split()[1]) for entry in lines[i + 1:] if entry.startswith("Rss:"))
    raise AssertionError("mapping not found")


def test_release_drops_the_resident_pages_and_the_data_reads_the_same(tmp_path):
    rows = {"input_ids": [list(range(i % 200)) for i in range(20_000)], "length": [i % 200 for i in range(20_000)]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "d"))
    mapped = datasets.load_from_disk(str(tmp_path / "d"))
    first = mapped.with_format("numpy")[:]
    pages = MappedPages(mapped)
    assert len(pages.mappings) == 1
    start = pages.mappings[0][0]
    before = _resident_kib(start)
    assert before > 4_000  # reading every row mapped the file in (about 8 MB)
    assert pages.release() > 0
    assert _resident_kib(start) < before / 10
    again = mapped.with_format("numpy")[:]
    assert all((a == b).all() for a, b in zip(first["input_ids"], again["input_ids"]))
    assert (first["length"] == again["length"]).all()


def test_in_memory_data_is_never_advised():
    in_memory = datasets.Dataset.from_dict({"input_ids": [[1, 2, 3]] * 1000})
    pages = MappedPages(in_memory)
    assert pages.mappings == [] and pages.release() == 0
    assert in_memory[999]["input_ids"] == [1, 2, 3]
