"""Summarizer ablation on the descriptions pipeline: attention only, + copy, + copy + coverage.

Each variant trains with pipelines/descriptions.toml's settings (6 epochs, about 8-9 minutes each on 2
cores) into runs/ablation/<variant>/ and prints one JSON line with its test ROUGE, the lead baseline and
the training time.

    .venv/bin/python benchmarks/ablation_summarizer.py [attention] [copy] [copy+coverage]
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import nlp_lstm
from nlp_lstm.stages.pipeline import load_pipeline

VARIANTS = {  # model overrides, and the epoch from which the coverage loss is on (0: off)
    "attention": ({"copy": False, "coverage": False}, 0),
    "copy": ({"copy": True, "coverage": False}, 0),
    "copy+coverage": ({"copy": True, "coverage": True}, None),  # None: the pipeline's own setting
}


def main(names: list[str]) -> None:
    pipe = load_pipeline("pipelines/descriptions.toml")
    for name in names or list(VARIANTS):
        overrides, coverage_from = VARIANTS[name]
        model = replace(pipe.model, **overrides)
        if coverage_from is not None:
            model = replace(model, coverage_from_epoch=coverage_from)
        started = time.perf_counter()
        metrics = nlp_lstm.train_summarizer(
            output_dir=f"runs/ablation/{name}", source=pipe.data, tokenizer_dir=f"vocab/{pipe.tokenizer.name}",
            model=model, training=pipe.train, decoding=pipe.decoding, overwrite=True, progress=False,
        )
        test = metrics["test"]
        print(json.dumps({
            "variant": name, "seconds": round(time.perf_counter() - started), "train_seconds": metrics["train_seconds"],
            "best_epoch": metrics["best_epoch"], "rouge1": test["rouge1"], "rouge2": test["rouge2"],
            "rougeL": test["rougeL"], "lead": test["lead_baseline"],
        }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
