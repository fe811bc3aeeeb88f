"""Mutation score of the fast maths tests: do they notice a broken formula?

Each mutant changes one token of one source line of `nlp_lstm/nn/*.py`, `nlp_lstm/decoding/*.py` or
`nlp_lstm/metrics/*.py`:
    arithmetic   + <-> -, * <-> /  (also the augmented forms += -= *= /=)
    comparison   < <-> >=, > <-> <=, == <-> !=
    constant     0 <-> 1 (and 0.0 <-> 1.0)
    builtin      min <-> max (names and attributes: `torch.minimum`, `.amax`, `clamp(min=...)` keep
                 their own spelling: only the bare names `min` / `max` / `minimum` / `maximum` swap)
    boolean      `not x` -> `x` (dropping a `not`, including `not in` -> `in`, `is not` -> `is`)
Tokens inside strings and comments are never touched (the line is tokenized). A mutant that does not
compile is skipped.

Mutants run one at a time in a temporary copy of the package and tests (never in place), with
`OMP_NUM_THREADS=1` and bytecode writing off (a same-size mutant written within one second could
otherwise be served from a stale .pyc). The tests that exercise the mutated file run with `-x -q` and
a per-mutant timeout; a failing (or timed-out) run kills the mutant.

Sampling is stable: a mutant is kept when a hash of (seed, file, the line's text, the token's
occurrence on that line, the replacement) falls under `--fraction`; so editing one file leaves the
sample of the others unchanged, and before/after runs can be compared file by file. `--max-mutants`
caps the sample (lowest hashes first).

    PYTHONPATH=$PWD /work/main/.venv/bin/python benchmarks/mutation_score.py \
        --root . --fraction 0.22 --max-mutants 160 --seed 13 --json /tmp/mutants.json

`--root` is the checkout whose `nlp_lstm/` and `tests/` are copied (e.g. an exported older commit).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
from dataclasses import asdict, dataclass
from pathlib import Path

TARGETS = ("nlp_lstm/nn", "nlp_lstm/decoding", "nlp_lstm/metrics")

# Tests run for a mutant of each package, in the order most likely to fail first (-x stops there).
TESTS_FOR = {
    "nlp_lstm/nn/lstm.py": ["test_lstm.py", "test_properties.py", "test_summarizer.py", "test_decoding.py"],
    "nlp_lstm/nn/pooling.py": ["test_properties.py", "test_lstm.py"],
    "nlp_lstm/nn": ["test_summarizer.py", "test_decoding.py", "test_properties.py"],
    "nlp_lstm/decoding": ["test_decoding.py", "test_summarizer.py", "test_properties.py"],
    "nlp_lstm/metrics": ["test_metrics.py"],
}
# Extra test files (added later) that exercise a package; picked up when they exist.
EXTRA_TESTS_FOR = {
    "nlp_lstm/nn": ["test_maths_reference.py"],
    "nlp_lstm/decoding": ["test_maths_reference.py"],
    "nlp_lstm/metrics": [],
}

SWAPS = {
    "+": "-", "-": "+", "*": "/", "/": "*",
    "+=": "-=", "-=": "+=", "*=": "/=", "/=": "*=",
    "<": ">=", ">=": "<", ">": "<=", "<=": ">", "==": "!=", "!=": "==",
}
COMPARISONS = {"<", ">=", ">", "<=", "==", "!="}
NAME_SWAPS = {"min": "max", "max": "min", "minimum": "maximum", "maximum": "minimum", "True": "False",
              "False": "True"}
NUMBER_SWAPS = {"0": "1", "1": "0", "0.0": "1.0", "1.0": "0.0"}


@dataclass
class Mutant:
    path: str  # relative to the root
    line: int  # 1-based
    col: int
    original: str  # the token
    replacement: str  # "" drops the token (and the space after it)
    kind: str
    source_line: str
    key: float = 0.0
    outcome: str = ""  # killed | survived | timeout
    seconds: float = 0.0
    failed_test: str = ""

    def describe(self) -> str:
        change = f"{self.original!r} -> {self.replacement!r}" if self.replacement else f"drop {self.original!r}"
        return f"{self.path}:{self.line}: {change}: {self.source_line.strip()}"


def tests_for(path: str, tests_dir: Path) -> list[str]:
    package = str(Path(path).parent)
    names = list(TESTS_FOR.get(path, TESTS_FOR[package]))
    names += [name for name in EXTRA_TESTS_FOR[package] if (tests_dir / name).is_file() and name not in names]
    return [f"tests/{name}" for name in names if (tests_dir / name).is_file()]


def mutants_of(path: Path, relative: str, seed: int) -> list[Mutant]:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    found: list[Mutant] = []
    occurrences: dict[tuple[int, str], int] = {}
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        kind = None
        replacement = None
        if token.type == tokenize.OP and token.string in SWAPS:
            kind = "comparison" if token.string in COMPARISONS else "arithmetic"
            replacement = SWAPS[token.string]
        elif token.type == tokenize.NUMBER and token.string in NUMBER_SWAPS:
            kind, replacement = "constant", NUMBER_SWAPS[token.string]
        elif token.type == tokenize.NAME and token.string in NAME_SWAPS:
            # Keyword arguments such as clamp(min=...) are names too: swapping them is a real change.
            kind, replacement = ("boolean" if token.string in ("True", "False") else "builtin"), NAME_SWAPS[token.string]
        elif token.type == tokenize.NAME and token.string == "not":
            kind, replacement = "boolean", ""
        if kind is None:
            continue
        line_number, col = token.start
        if token.end[0] != line_number:
            continue
        source_line = lines[line_number - 1]
        ordinal_key = (line_number, token.string)
        ordinal = occurrences.get(ordinal_key, 0)
        occurrences[ordinal_key] = ordinal + 1
        digest = hashlib.sha256(
            f"{seed}|{relative}|{source_line.strip()}|{token.string}|{ordinal}|{replacement}".encode()
        ).hexdigest()
        found.append(Mutant(path=relative, line=line_number, col=col, original=token.string,
                            replacement=replacement, kind=kind, source_line=source_line,
                            key=int(digest[:12], 16) / float(16**12)))
    return found


def apply(text: str, mutant: Mutant) -> str:
    lines = text.splitlines(keepends=True)
    line = lines[mutant.line - 1]
    end = mutant.col + len(mutant.original)
    assert line[mutant.col:end] == mutant.original, (mutant, line)
    tail = line[end:]
    if not mutant.replacement and tail.startswith(" "):
        tail = tail[1:]  # "not x" -> "x"
    lines[mutant.line - 1] = line[: mutant.col] + mutant.replacement + tail
    return "".join(lines)


def compiles(text: str, filename: str) -> bool:
    try:
        compile(text, filename, "exec")
    except SyntaxError:
        return False
    return True


def run_tests(work: Path, tests: list[str], timeout: float) -> tuple[str, float, str]:
    env = {**os.environ, "PYTHONPATH": str(work), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow",
               "--no-header", "-o", "addopts=", *tests]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, ""
    seconds = time.perf_counter() - start
    failed = ""
    for line in done.stdout.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            failed = line.split(" ", 1)[1].split(" - ")[0]
            break
    # Exit code 5: no tests collected (all deselected); counts as nothing run, not a kill.
    if done.returncode == 0 or done.returncode == 5:
        return "survived", seconds, ""
    if not failed:
        tail = done.stdout.strip().splitlines()
        failed = tail[-1] if tail else f"exit code {done.returncode}"
    return "killed", seconds, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--fraction", type=float, default=0.22)
    parser.add_argument("--max-mutants", type=int, default=160)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    parser.add_argument("--only", default="", help="run only mutants whose description contains this")
    parser.add_argument("--list", action="store_true", help="list the sample and exit")
    parser.add_argument("--json", type=Path, help="write every mutant's outcome here")
    args = parser.parse_args()

    root = args.root.resolve()
    all_mutants: list[Mutant] = []
    for target in TARGETS:
        for path in sorted((root / target).glob("*.py")):
            all_mutants += mutants_of(path, str(path.relative_to(root)), args.seed)
    sample = sorted((m for m in all_mutants if m.key < args.fraction), key=lambda m: m.key)[: args.max_mutants]
    sample.sort(key=lambda m: (m.path, m.line, m.col))
    if args.only:
        sample = [m for m in sample if args.only in m.describe()]
    print(f"{len(all_mutants)} mutants in {', '.join(TARGETS)}; sampled {len(sample)} "
          f"(fraction {args.fraction}, seed {args.seed}, cap {args.max_mutants})", flush=True)
    if args.list:
        for mutant in sample:
            print("  " + mutant.describe())
        return

    with tempfile.TemporaryDirectory(prefix="mutants-") as scratch:
        work = Path(scratch)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(root / "nlp_lstm", work / "nlp_lstm", ignore=ignore)
        shutil.copytree(root / "tests", work / "tests", ignore=ignore)
        for name in ("pyproject.toml", "pipelines"):
            source = root / name
            if source.is_dir():
                shutil.copytree(source, work / name, ignore=ignore)
            elif source.is_file():
                shutil.copy2(source, work / name)

        # The unmutated code must pass the very tests that judge its mutants.
        for tests in sorted({tuple(tests_for(m.path, work / "tests")) for m in sample}):
            outcome, seconds, failed = run_tests(work, list(tests), args.timeout * 2)
            print(f"baseline {' '.join(tests)}: {outcome} in {seconds:.0f} s {failed}", flush=True)
            if outcome != "survived":
                raise SystemExit("the unmutated code fails its tests: fix that first")

        skipped = 0
        for index, mutant in enumerate(sample, 1):
            target = work / mutant.path
            original = target.read_text(encoding="utf-8")
            mutated = apply(original, mutant)
            if not compiles(mutated, str(target)):
                mutant.outcome = "skipped"
                skipped += 1
                continue
            target.write_text(mutated, encoding="utf-8")
            try:
                mutant.outcome, mutant.seconds, mutant.failed_test = run_tests(
                    work, tests_for(mutant.path, work / "tests"), args.timeout
                )
            finally:
                target.write_text(original, encoding="utf-8")
            print(f"[{index}/{len(sample)}] {mutant.outcome:8s} {mutant.seconds:5.0f} s  {mutant.describe()}"
                  + (f"  <- {mutant.failed_test}" if mutant.failed_test else ""), flush=True)

    ran = [m for m in sample if m.outcome != "skipped"]
    killed = [m for m in ran if m.outcome in ("killed", "timeout")]
    survived = [m for m in ran if m.outcome == "survived"]
    print(f"\nmutation score: {len(killed)}/{len(ran)} killed = {100.0 * len(killed) / max(len(ran), 1):.1f}% "
          f"({sum(m.outcome == 'timeout' for m in ran)} by timeout; {skipped} did not compile)")
    for package in TARGETS:
        mine = [m for m in ran if m.path.startswith(package)]
        if mine:
            dead = sum(m.outcome in ("killed", "timeout") for m in mine)
            print(f"  {package}: {dead}/{len(mine)}")
    print("survivors:")
    for mutant in survived:
        print("  " + mutant.describe())
    if args.json:
        args.json.write_text(json.dumps([asdict(m) for m in sample], indent=1))


if __name__ == "__main__":
    main()
