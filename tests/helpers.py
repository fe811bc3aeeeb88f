"""Small learnable corpora written to temporary files."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository

POSITIVE = ["good", "great", "lovely", "excellent", "superb", "fine", "happy", "wonderful"]
NEGATIVE = ["bad", "awful", "terrible", "poor", "dreadful", "sad", "horrible", "boring"]
FILLER = ["the", "film", "was", "really", "a", "plot", "and", "story", "it", "very", "this", "product", "quite"]


def sentiment_rows(count: int, seed: int = 0) -> list[dict]:
    """Texts whose label is decided by a sentiment word among filler words."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        label = rng.choice(["pos", "neg"])
        words = rng.choices(FILLER, k=rng.randint(3, 12))
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label == "pos" else NEGATIVE))
        rows.append({"text": " ".join(words), "label": label})
    return rows


CREDIT_FILLER = "the a movie was made in year and it is very long old new story".split()
CREDIT_NAMES = "anna bob carl dora emil fay gus hana ivan jon kim lou".split()


def credit_rows(count: int, seed: int = 0) -> list[dict]:
    """Documents that credit someone somewhere ("... by NAME ..."); the summary is "film by NAME".

    Lead-1 scores low (the name is rarely first); a model must find the cue and copy the name.
    """
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        name = rng.choice(CREDIT_NAMES)
        words = rng.choices(CREDIT_FILLER, k=rng.randint(2, 6))
        words.insert(rng.randint(0, len(words)), f"by {name}")
        rows.append({"document": " ".join(words), "summary": f"film by {name}"})
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def invoke(*args, input=None):
    """Run `nlp-lstm ARGS` in-process; every argument is turned into a string."""
    from typer.testing import CliRunner

    from nlp_lstm.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def assert_usage_error(result, *fragments):
    """Exit code 2 and exactly one `error: ...` line on stderr holding every fragment, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output
    print(lines[0])  # `pytest -s` shows every message (docs/errors.md quotes them)


def add_copy_half_targets(batch: dict, sources: list[list[int]], vocab_size: int) -> dict:
    """Teacher-forcing fields for the toy task "summary = the first half of the source" (ids of the
    extended vocabulary, so OOV copies are targets too): `dec_input_ids` (BOS + target, OOVs read as
    UNK), `target_ids` (target + EOS) and `tgt_pad_mask`, added to `batch`."""
    import torch

    from nlp_lstm.data.specials import BOS_ID, EOS_ID, PAD_ID, UNK_ID

    targets = [source[: (len(source) + 1) // 2] for source in sources]
    lengths = torch.tensor([len(target) + 1 for target in targets])
    dec_input_ids = torch.full((len(targets), int(lengths.max())), PAD_ID)
    target_ids = dec_input_ids.clone()
    for row, target in enumerate(targets):
        dec_input_ids[row, : len(target) + 1] = torch.tensor([BOS_ID, *target])
        target_ids[row, : len(target) + 1] = torch.tensor([*target, EOS_ID])
    batch["dec_input_ids"] = dec_input_ids.masked_fill(dec_input_ids >= vocab_size, UNK_ID)
    batch["target_ids"] = target_ids
    batch["tgt_pad_mask"] = torch.arange(dec_input_ids.shape[1]) >= lengths.unsqueeze(1)
    return batch
