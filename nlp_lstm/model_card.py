"""Model cards: the `README.md` every saved model directory carries, in the Hugging Face hub format.

YAML front matter (`library_name`, `pipeline_tag`, `license`, `datasets`, `metrics`), then what the
model is, the data and split it was trained on, its held-out metrics beside the baselines evaluation
computed (majority class for a classifier, lead-k for a summarizer), the settings, and how to run it.
The directory can be uploaded to the hub as it is (`huggingface-cli upload USER/NAME DIR`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from nlp_lstm.artifacts import atomic_write_text
from nlp_lstm.model_dir import ModelFile



def _yaml_list(values: list[str]) -> str:
    return "".join(f"\n- {json.dumps(value)}" for value in values) if values else " []"


def _held_out(metrics: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    split = "test" if "test" in metrics else "validation"
    return split, metrics.get(split, {})


def _classifier_table(scores: dict[str, Any]) -> list[str]:
    support = [values["support"] for values in scores.get("per_class", {}).values()]
    majority = max(support) / sum(support) if support and sum(support) else None
    rows = ["| metric | this model | majority-class baseline |", "|---|---|---|",
            f"| accuracy | {scores.get('accuracy', float('nan')):.4f} | "
            f"{'' if majority is None else f'{majority:.4f}'} |",
            f"| macro-F1 | {scores.get('macro_f1', float('nan')):.4f} | |"]
    for name in ("ece", "brier"):
        if name in scores:
            rows.append(f"| {name} | {scores[name]:.4f} | |")
    return rows


def _summarizer_table(scores: dict[str, Any]) -> list[str]:
    lead = scores.get("lead_baseline", {})
    rows = [f"| ROUGE (F1 x 100) | this model | lead-{lead.get('k', '?')} baseline |", "|---|---|---|"]
    for name in ("rouge1", "rouge2", "rougeL"):
        if name in scores:
            rows.append(f"| {name} | {scores[name]:.2f} | {lead.get(name, float('nan')):.2f} |")
    return rows


def _plain_table(scores: dict[str, Any]) -> list[str]:
    """Every numeric metric, one row each: the table of a kind with no baseline of its own here."""
    return ["| metric | value |", "|---|---|"] + [
        f"| {name} | {value:.3f} |" for name, value in scores.items() if isinstance(value, (int, float))]


def _tagger_table(scores: dict[str, Any]) -> list[str]:
    rows = ["| metric | this model |", "|---|---|", f"| token accuracy | {scores.get('token_accuracy', float('nan')):.4f} |"]
    if "span_f1" in scores:
        macro = scores.get("spans", {}).get("macro", {}).get("f1", float("nan"))
        rows += [f"| span precision (strict) | {scores['span_precision']:.4f} |",
                 f"| span recall (strict) | {scores['span_recall']:.4f} |",
                 f"| span F1 micro (strict) | {scores['span_f1']:.4f} |", f"| span F1 macro (strict) | {macro:.4f} |"]
    if "ece" in scores:
        rows.append(f"| ECE of token marginals | {scores['ece']:.4f} |")
    return rows


# A kind whose card sets its metrics beside a baseline registers its table here; others get `_plain_table`.
METRICS_TABLES = {"classifier": _classifier_table, "summarizer": _summarizer_table, "tagger": _tagger_table}


def model_card(model_file: ModelFile, metrics: dict[str, Any], *, data: str, hub_dataset: str | None = None,
               license: str = "other") -> str:
    """The card's text for a model directory whose config is `model_file` and metrics `metrics`.

    `data` describes the training data; `hub_dataset` (a hub name) also goes into the `datasets` field.
    """
    spec, config = model_file.spec, model_file.model
    split, scores = _held_out(metrics)
    hub_datasets = [hub_dataset] if hub_dataset else []
    what = spec.description.format(pooling=getattr(config, "pooling", ""),
                             ngrams=", stacked with a TF-IDF logistic regression over word n-grams"
                             if getattr(config, "word_ngrams", 0) else "",
                             coverage=" and coverage" if getattr(config, "coverage", False) else "")
    lines = [
        "---",
        "library_name: nlp-lstm",
        f"pipeline_tag: {spec.pipeline_tag}",
        f"license: {license}",
        f"datasets:{_yaml_list(hub_datasets)}",
        f"metrics:{_yaml_list(list(spec.metrics))}",
        "tags:\n- lstm\n- nlp-lstm",
        "---",
        "",
        f"# {spec.title} (nlp-lstm)",
        "",
        f"This is {what}, trained with [nlp-lstm](https://pypi.org/project/nlp-lstm/). "
        f"Weights are `model.safetensors`; `config.json` rebuilds the model; {spec.files}.",
        "",
        "## Data",
        "",
        f"Trained on {data or 'the data given to `nlp-lstm train`'}"
        + (f" (columns: {', '.join(f'{k} = `{v}`' for k, v in model_file.columns.items() if v)})" if model_file.columns else "")
        + ". Held-out splits are fixed and seeded: a missing validation or test file is cut from the training "
          "data by a hash of (split seed, row number).",
    ]
    if model_file.labels:
        lines += ["", f"Labels: {', '.join(f'`{label}`' for label in model_file.labels)}."]
    lines += ["", f"## Results ({split} split)", "", *METRICS_TABLES.get(spec.name, _plain_table)(scores)]
    if spec.labels and model_file.temperature != 1.0:
        lines += ["", f"Scores are temperature-scaled probabilities (T = {model_file.temperature:.3f}, fitted on the "
                      "validation split; Guo et al. 2017)."]
    lines += [
        "", "## Settings", "",
        "```json", json.dumps({"model": dataclasses.asdict(config), "training": dataclasses.asdict(model_file.training),
                               **({"decoding": dataclasses.asdict(model_file.decoding)} if model_file.decoding else {})},
                              indent=2), "```",
        "", "## How to use", "", spec.usage,
        "", "## Upload", "",
        "The directory is already in the hub's layout: `huggingface-cli upload USER/NAME DIR .`",
        "", "## Limitations", "",
        "Trained only on the data above; expect lower accuracy on other domains. Set `license` above to the "
        "licence of the training data before publishing.",
    ]
    return "\n".join(lines) + "\n"


def write_model_card(directory: Path, model_file: ModelFile, metrics: dict[str, Any], *, data: str,
                     hub_dataset: str | None = None) -> None:
    atomic_write_text(directory / "README.md", model_card(model_file, metrics, data=data, hub_dataset=hub_dataset))
