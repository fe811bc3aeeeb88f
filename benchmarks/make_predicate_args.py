"""Predicate-argument sequences from the Turkish treebank's gold dependencies: a syntactic proxy for
semantic role labelling, not SRL.

The BiLSTM formulation of SRL (He et al. 2017) tags one sequence per predicate: a binary feature marks
the predicate's position, and its arguments are BIO spans labelled with their roles. No annotated SRL
corpus is reachable here, so this script builds the same shape from gold dependency trees: every
token whose UPOS is VERB and that has at least one dependent other than `ig` (inflectional group) or
`p` (punctuation) is a predicate; each such dependent is an argument whose span is its subtree's
extent, labelled with its dependency relation (`B-dobj`, `I-dobj`, ...). A subtree whose extent holds
the predicate or overlaps an earlier argument (non-projective trees) is cut back to the dependent
alone. Sentences are split as `splits/turkish_pos` splits them (by `sent_id`).

    .venv/bin/python benchmarks/make_predicate_args.py --treebank ../shared/data/turkish_treebank \\
        --splits ../shared/data/splits/turkish_pos --output runs/predicate-args

writes `train/validation/test.jsonl.gz`, each row `{"sent_id", "predicate_index", "tokens",
"predicate": [0/1 per token], "tags": [BIO per token]}`, and prints counts per split.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path

SKIP = {"ig", "p"}


def read_conllu(path: Path):
    """Yield (sent_id, rows) with rows = [(form, upos, head, deprel)], multiword ranges and empty nodes skipped."""
    sent_id, rows = None, []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if line.startswith("# sent_id = "):
                sent_id = line.split("=", 1)[1].strip()
            elif not line:
                if rows:
                    yield sent_id, rows
                sent_id, rows = None, []
            elif not line.startswith("#"):
                cols = line.split("\t")
                if "-" in cols[0] or "." in cols[0]:
                    continue
                rows.append((cols[1], cols[3], int(cols[6]), cols[7]))
    if rows:
        yield sent_id, rows


def predicate_sequences(rows):
    """One (predicate index, BIO tags) per predicate of a sentence (indices from 0)."""
    children: dict[int, list[int]] = {}
    for i, (_, _, head, _) in enumerate(rows):
        children.setdefault(head - 1, []).append(i)

    def extent(node: int) -> tuple[int, int]:
        low = high = node
        stack = [node]
        while stack:
            current = stack.pop()
            low, high = min(low, current), max(high, current)
            stack.extend(children.get(current, []))
        return low, high

    for index, (_, upos, _, _) in enumerate(rows):
        arguments = [child for child in children.get(index, []) if rows[child][3] not in SKIP]
        if upos != "VERB" or not arguments:
            continue
        tags = ["O"] * len(rows)
        for child in arguments:
            low, high = extent(child)
            if low <= index <= high or any(tag != "O" for tag in tags[low:high + 1]):
                low = high = child
                if tags[child] != "O":
                    continue
            relation = rows[child][3]
            tags[low] = f"B-{relation}"
            for position in range(low + 1, high + 1):
                tags[position] = f"I-{relation}"
        yield index, tags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--treebank", type=Path, required=True, help="folder with web.conllu.gz and wiki.conllu.gz")
    parser.add_argument("--splits", type=Path, required=True, help="folder with the POS split's *.jsonl.gz (sent_id)")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    sentences = {}
    for name in ("web.conllu.gz", "wiki.conllu.gz"):
        sentences.update(dict(read_conllu(args.treebank / name)))
    args.output.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        with gzip.open(args.splits / f"{split}.jsonl.gz", "rt", encoding="utf-8") as handle:
            ids = [json.loads(line)["sent_id"] for line in handle if line.strip()]
        relations, count = Counter(), 0
        temporary = args.output / f".{split}.jsonl.gz.tmp"
        with gzip.open(temporary, "wt", encoding="utf-8") as out:
            for sent_id in ids:
                rows = sentences[sent_id]
                tokens = [form for form, _, _, _ in rows]
                for index, tags in predicate_sequences(rows):
                    predicate = [int(i == index) for i in range(len(rows))]
                    out.write(json.dumps({"sent_id": sent_id, "predicate_index": index, "tokens": tokens,
                                          "predicate": predicate, "tags": tags}, ensure_ascii=False) + "\n")
                    relations.update(tag[2:] for tag in tags if tag.startswith("B-"))
                    count += 1
        temporary.replace(args.output / f"{split}.jsonl.gz")
        top = ", ".join(f"{name} {n}" for name, n in relations.most_common(8))
        print(f"{split}: {len(ids)} sentences -> {count} predicate sequences; arguments: {top}")


if __name__ == "__main__":
    main()
