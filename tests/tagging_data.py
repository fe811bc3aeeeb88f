"""Small tagging corpora for the tagger's stage and CLI tests: a slice of the shipped Turkish
treebank (data/turkish_pos, Apache-2.0) and a synthetic BIO corpus whose ambiguous names can only be
tagged from their context, and a most-frequent-tag baseline written independently of the library."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

TURKISH = Path(__file__).resolve().parents[1] / "data" / "turkish_pos"

# Names that are a person in one context and a place in another: a per-word tag cannot get both.
AMBIGUOUS = ["Jordan", "Georgia", "Chad", "Sydney", "Florence", "Victoria"]
PERSONS = ["Ali Yılmaz", "John Smith", "Mary", "Ayşe Demir", "Anna", *AMBIGUOUS]
PLACES = ["New York", "Ankara", "San Francisco", "Berlin", "İzmir", *AMBIGUOUS]
ORGS = ["Acme Corp", "United Nations", "Red Cross", "Google"]
TEMPLATES = [
    "{PER} said hello to everyone", "yesterday {PER} said nothing", "they flew to {LOC} last week",
    "we moved to {LOC} in May", "{PER} works for {ORG} in {LOC}", "{ORG} hired {PER} today",
    "the office of {ORG} is near {LOC}", "people in {LOC} like {PER}", "nothing happened here",
]


def read_conll_sentences(path: Path) -> list[list[tuple[str, str]]]:
    sentences, current = [], []
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if not line:
                if current:
                    sentences.append(current)
                current = []
            else:
                token, tag = line.split("\t")
                current.append((token, tag))
    if current:
        sentences.append(current)
    return sentences


def write_conll(path: Path, sentences) -> Path:
    text = "\n\n".join("\n".join(f"{t}\t{g}" for t, g in s) for s in sentences) + "\n"
    path.write_bytes(gzip.compress(text.encode()) if path.name.endswith(".gz") else text.encode())
    return path


def turkish_slice(directory: Path, *, train: int, validation: int, test: int, suffix: str = ".conll") -> dict[str, Path]:
    """The first sentences of each shipped split, as CoNLL files in `directory`."""
    counts = {"train": train, "validation": validation, "test": test}
    return {split: write_conll(directory / f"{split}{suffix}", read_conll_sentences(TURKISH / f"{split}.conll.gz")[:n])
            for split, n in counts.items()}


def bio_sentences(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        tokens, tags = [], []
        for word in rng.choice(TEMPLATES).split():
            if word.startswith("{"):
                kind = word[1:-1]
                name = rng.choice({"PER": PERSONS, "LOC": PLACES, "ORG": ORGS}[kind]).split()
                tokens += name
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
            else:
                tokens.append(word)
                tags.append("O")
        rows.append({"tokens": tokens, "tags": tags})
    return rows


def write_bio(directory: Path, *, train: int = 300, validation: int = 60, test: int = 120) -> dict[str, Path]:
    paths = {}
    for offset, (split, count) in enumerate({"train": train, "validation": validation, "test": test}.items()):
        paths[split] = directory / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps(row) + "\n" for row in bio_sentences(count, seed=offset)),
                                encoding="utf-8")
    return paths


def most_frequent_tag(train: list[tuple[list[str], list[str]]], tokens: list[list[str]]) -> list[list[str]]:
    """Each word's most frequent training tag; words never seen get the most frequent tag overall."""
    by_word: dict[str, Counter] = defaultdict(Counter)
    overall: Counter = Counter()
    for words, tags in train:
        for word, tag in zip(words, tags):
            by_word[word][tag] += 1
            overall[tag] += 1
    default = overall.most_common(1)[0][0]
    return [[by_word[word].most_common(1)[0][0] if word in by_word else default for word in words] for words in tokens]
