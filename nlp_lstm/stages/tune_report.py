"""What `tune` writes at the end: the table of trials, the best settings as a pipeline TOML file that
`nlp-lstm run` reruns, and a plot (validation score over time; the importance of each setting)."""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nlp_lstm.artifacts import atomic_write_bytes
from nlp_lstm.data.sources import DataSource
from nlp_lstm.stages.search_space import FIXED

STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "stopped"}
TOKENIZER_KEYS = {"kind": "kind", "vocab_size": "vocab_size", "min_freq": "min_freq", "lowercase": "lowercase",
                  "model_type": "model_type", "lang": "language"}


def trial_rows(study, *, origin: float) -> list[dict[str, Any]]:
    """One row per finished trial (complete, pruned, stopped or failed), in the order they started.

    `origin` is the search's start (a `time.time()`); `minutes` is when each trial ended after it.
    """
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state.name not in STATES or trial.datetime_complete is None:
            continue
        stopped = trial.user_attrs.get("stopped", "")
        state = STATES[trial.state.name]
        if stopped.startswith("failed"):
            state = "failed"
        steps = trial.intermediate_values
        rows.append({
            "number": trial.number, "state": state, "reason": stopped, "value": trial.value,
            "last_epoch_score": steps[max(steps)] if steps else None, "epochs": len(steps),
            "params": dict(trial.params), "seconds": trial.user_attrs.get("seconds"),
            "minutes": (trial.datetime_complete.timestamp() - origin) / 60,
            "validation": trial.user_attrs.get("validation", {}), "worker": trial.user_attrs.get("worker", 0),
        })
    return rows


def importances(study, *, seed: int) -> dict[str, float]:
    """fANOVA importance of each searched setting (Hutter et al. 2014, Optuna's default evaluator)
    over the complete trials; empty below 3 of them, or when no setting or no score varied."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 3 or len({t.value for t in complete}) < 2:  # fANOVA needs a score that varies
        return {}
    varied = [name for name in complete[0].params if len({repr(t.params.get(name)) for t in complete}) > 1]
    if not varied:
        return {}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    return dict(optuna.importance.get_param_importances(study, evaluator=evaluator, params=varied))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_report(rows: list[dict], *, kind: str, metric: str, best: dict | None, summary: dict[str, Any],
                    weights: dict[str, float]) -> str:
    names = sorted({name for row in rows for name in row["params"]})
    lines = [f"# tune {kind}: {len(rows)} trials", ""]
    if best is not None:
        lines += [f"Best: trial {best['number']}, validation {metric} {best['value']:.4f}."
                  + (f" ({best['note'][0].upper()}{best['note'][1:]}.)" if best.get("note") else "")]
        test = summary.get("test")
        if test:
            scores = ", ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float))
            lines += [f"Test split (read once, by the best model): {scores}."]
    seconds = summary["seconds"]
    lines += ["", "Time (seconds): " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()) + ".",
              f"Search overhead (all that is not training or data preparation): {summary['overhead_share']:.1%} "
              "of the process time.", "",
              f"| trial | state | validation {metric} | seconds | epochs | " + " | ".join(names) + " |",
              "|---" * (5 + len(names)) + "|"]
    for row in rows:
        value = "" if row["value"] is None else f"{row['value']:.4f}"
        state = row["state"] + (f" ({row['reason']})" if row["reason"] and row["state"] != "pruned" else "")
        if row["reason"] == "too slow":
            state = "pruned (too slow)"
        cells = [str(row["number"]), state, value, _cell(row["seconds"]), str(row["epochs"])]
        cells += [_cell(row["params"].get(name, "")) for name in names]
        lines.append("| " + " | ".join(cells) + " |")
    if weights:
        lines += ["", "Importance of each setting (fANOVA over the complete trials):", ""]
        lines += [f"- {name}: {share:.2f}" for name, share in weights.items()]
    lines += ["", "Rerun the best settings: `nlp-lstm run best.toml` (from the directory tune was run in).", ""]
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else json.dumps(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {_toml_value(item)}" for key, item in value.items() if item is not None) + " }"
    return json.dumps(str(value), ensure_ascii=False)


def _table(name: str, values: dict[str, Any]) -> list[str]:
    return [f"[{name}]", *(f"{key} = {_toml_value(value)}" for key, value in values.items() if value is not None), ""]


def plain_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "tuned"


def pipeline_toml(*, kind: str, name: str, source: DataSource, tokenizer_settings: dict[str, Any], model: Any,
                  training: Any, metric: str, value: float, note: str = "") -> str:
    """The best trial's settings as a pipeline file (`stages/pipeline.py`): `nlp-lstm run` trains it again."""
    defaults = DataSource()
    data = {item.name: getattr(source, item.name) for item in fields(DataSource)
            if getattr(source, item.name) != getattr(defaults, item.name)}
    if data.get("binarize") is not None:
        data["binarize"] = asdict(data["binarize"])
    tokenizer = {"name": name, **{TOKENIZER_KEYS[k]: v for k, v in tokenizer_settings.items() if k in TOKENIZER_KEYS}}
    model_values = {k: v for k, v in asdict(model).items()
                    if k not in FIXED["model"] or (k in ("init_from", "embeddings", "language") and v is not None)}
    lines = [f"# Found by `nlp-lstm tune {kind}`: validation {metric} {value:.4f}.",
             "# Paths are relative to the directory `nlp-lstm run` is run from, as in every pipeline file."]
    lines += [f"# {note}"] if note else []
    lines += ["", *_table("pipeline", {"name": name, "task": kind}), *_table("data", data),
              *(_table("tokenizer", tokenizer) if tokenizer_settings else []), *_table("model", model_values), *_table("train", asdict(training)),
              *_table("evaluate", {"split": "test"})]
    return "\n".join(lines)


def plot_search(rows: list[dict], weights: dict[str, float], path: str | Path, *, metric: str) -> None:
    """Left: each trial's validation score by the minute it ended (complete: dots; pruned: crosses at
    their last epoch's score, which for a classifier is the BiLSTM's alone, before the linear part is
    stacked), and the best so far. Right: the importance of each setting."""
    figure = Figure(figsize=(11, 4.2))
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    complete = [row for row in rows if row["state"] == "complete"]
    pruned = [row for row in rows if row["state"] == "pruned" and row["last_epoch_score"] is not None]
    left.scatter([r["minutes"] for r in complete], [r["value"] for r in complete], color="tab:blue", label="complete")
    left.scatter([r["minutes"] for r in pruned], [r["last_epoch_score"] for r in pruned], color="tab:gray",
                 marker="x", label="pruned (its last epoch's score)")
    best, xs, ys = -math.inf, [], []
    for row in sorted(complete, key=lambda r: r["minutes"]):
        best = max(best, row["value"])
        xs.append(row["minutes"])
        ys.append(best)
    if xs:  # the best so far, held to the last trial's end
        end = max(row["minutes"] for row in rows)
        left.step(xs + [end], ys + ys[-1:], where="post", color="tab:orange", label="best so far")
    left.set_xlabel("minutes since the search started")
    left.set_ylabel(f"validation {metric}")
    left.set_title("score over time")
    left.legend(loc="best", fontsize=8)
    left.grid(alpha=0.3)
    if weights:
        names = list(weights)[::-1]
        right.barh(names, [weights[name] for name in names], color="tab:green")
        right.set_xlabel("importance (fANOVA)")
    else:
        right.text(0.5, 0.5, "importance needs 3 or more complete trials\nwith settings and scores that varied",
                   ha="center", va="center", transform=right.transAxes)
        right.set_xticks([])
        right.set_yticks([])
    right.set_title("importance of each setting")
    figure.tight_layout()
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())
