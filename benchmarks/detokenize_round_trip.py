"""How often spaCy-word detokenization gives back the original text, on the shipped Wikipedia corpus.

Compares joining the words with single spaces (the old `detokenize`) with `SpacyTokenizer.detokenize`
on descriptions and on the first sentence of article leads (the sample tests/test_tokenize.py uses):

    PYTHONPATH=$PWD /work/main/.venv/bin/python benchmarks/detokenize_round_trip.py --count 200
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import time
from pathlib import Path

from nlp_lstm.data.tokenizers import fit_tokenizer

WIKI = Path(__file__).resolve().parents[1] / "data" / "wiki_descriptions_en.jsonl.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with gzip.open(WIKI, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    rows = random.Random(args.seed).sample(rows, 2 * args.count)
    groups = {
        "descriptions": [row["description"] for row in rows[: args.count]],
        "lead sentences": [re.split(r"(?<=\.) ", row["extract"])[0] for row in rows[args.count :]],
    }
    for lowercase in (False, True):
        tokenizer = fit_tokenizer(["x"], kind="spacy", vocab_size=10, min_freq=1, lowercase=lowercase)
        for name, texts in groups.items():
            targets = [text.lower() if lowercase else text for text in texts]
            words = tokenizer.tokenize_batch(texts)
            spaced = sum(" ".join(w) == t for w, t in zip(words, targets))
            start = time.perf_counter()
            restored = [tokenizer.detokenize(w) for w in words]
            seconds = time.perf_counter() - start
            exact = sum(r == t for r, t in zip(restored, targets))
            print(f"lowercase={lowercase!s:5} {name:14}: exact round trip {spaced}/{len(texts)} joined with "
                  f"spaces, {exact}/{len(texts)} detokenized ({1e6 * seconds / len(texts):.0f} us/text)")


if __name__ == "__main__":
    main()
