"""Corpora for the serving tests' tiny models (see conftest.py)."""

from __future__ import annotations

import random

SMALL = {"embedding_dim": 16, "hidden_size": 16, "dropout": 0.0}


def credit_rows(count: int, seed: int) -> list[dict]:
    """Documents that credit someone ("... by NAME ..."); the summary is "film by NAME"."""
    rng = random.Random(seed)
    filler, names = "the a movie was made in year and it is very long old".split(), "anna bob carl dora emil fay".split()
    rows = []
    for _ in range(count):
        name, words = rng.choice(names), rng.choices(filler, k=rng.randint(2, 6))
        words.insert(rng.randint(0, len(words)), f"by {name}")
        rows.append({"document": " ".join(words), "summary": f"film by {name}"})
    return rows
