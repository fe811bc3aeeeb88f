"""Plots for a run: training curves, a confusion matrix, attention heatmaps, and a reliability diagram.

Headless by construction: figures are `matplotlib.figure.Figure` objects drawn on the Agg canvas
directly, and `pyplot` is never imported. That is what "set the Agg backend before importing
pyplot" aims at, without switching the backend of a user's notebook or GUI session, and without
pyplot's global registry of open figures (nothing to close, nothing leaks in a long run).

Every plot is rendered into memory and written atomically (`artifacts.atomic_write_bytes`: temp
file in the same directory, then `os.replace`); the format follows the path's suffix (.png, .pdf,
.svg), PNG when there is none.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nlp_lstm.artifacts import atomic_write_bytes

_DPI = 120
_FORMATS = {"png", "pdf", "svg"}

# Display names for metric keys logged in train_log.jsonl.
_METRIC_NAMES = {
    "macro_f1": "macro-F1",
    "accuracy": "accuracy",
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
    "val_loss": "validation loss",
}


def _save(figure: Figure, path: str | os.PathLike) -> None:
    path = Path(path)
    file_format = path.suffix.lstrip(".").lower() or "png"
    if file_format not in _FORMATS:
        raise ValueError(f"cannot save a plot as {path.suffix!r}; use one of .png, .pdf, .svg")
    FigureCanvasAgg(figure)  # attaches itself to the figure
    buffer = io.BytesIO()
    figure.savefig(buffer, format=file_format, dpi=_DPI, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def _to_numpy(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, without importing torch here
        values = values.detach().cpu().float().numpy()
    return np.asarray(values, dtype=np.float64)


def _lower_is_better(metric_name: str) -> bool:
    return "loss" in metric_name or "perplexity" in metric_name


# --------------------------------------------------------------------------------------------
# Training curves
# --------------------------------------------------------------------------------------------


def plot_training_curves(log_rows: list[dict], path: str | os.PathLike) -> None:
    """Loss per epoch (train and validation) and the validation metric per epoch, best marked.

    Args:
        log_rows: rows of train_log.jsonl: {"epoch", "train_loss", "val_loss" (optional),
            "val_metric" (optional), "val_metric_name" (e.g. "macro_f1", "rougeL")}. Rows
            without "epoch" are ignored; for a repeated epoch (a resumed run) the last row wins.
        path: where to write the image.
    """
    by_epoch: dict[int, dict] = {}
    for row in log_rows:
        if row.get("epoch") is not None:
            by_epoch[int(row["epoch"])] = row
    if not by_epoch:
        raise ValueError("no rows with an 'epoch' to plot; has training finished an epoch?")
    epochs = sorted(by_epoch)
    rows = [by_epoch[epoch] for epoch in epochs]

    def series(key: str) -> tuple[list[int], list[float]]:
        points = [(epoch, row[key]) for epoch, row in zip(epochs, rows) if row.get(key) is not None]
        return [epoch for epoch, _ in points], [float(value) for _, value in points]

    metric_key = next((row["val_metric_name"] for row in rows if row.get("val_metric_name")), None)
    metric_label = _METRIC_NAMES.get(metric_key, metric_key) if metric_key else "metric"

    figure = Figure(figsize=(11, 4.2), layout="constrained")
    loss_axes, metric_axes = figure.subplots(1, 2)

    for key, label, style in (("train_loss", "train", "o-"), ("val_loss", "validation", "s--")):
        xs, ys = series(key)
        if xs:
            loss_axes.plot(xs, ys, style, label=label, markersize=4)
    loss_axes.set_title("Loss per epoch")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("loss")
    if loss_axes.get_legend_handles_labels()[0]:
        loss_axes.legend()

    xs, ys = series("val_metric")
    metric_axes.set_title(f"Validation {metric_label} per epoch")
    metric_axes.set_xlabel("epoch")
    metric_axes.set_ylabel(f"validation {metric_label}")
    if xs:
        metric_axes.plot(xs, ys, "o-", color="tab:green", markersize=4, label=metric_label)
        pick = np.argmin if _lower_is_better(metric_key or "") else np.argmax
        best = int(pick(ys))  # the first best epoch, as early stopping keeps it
        metric_axes.axvline(xs[best], color="tab:red", linestyle=":", linewidth=1)
        metric_axes.plot(
            [xs[best]],
            [ys[best]],
            marker="*",
            markersize=14,
            color="tab:red",
            linestyle="none",
            label=f"best: {ys[best]:.4g} (epoch {xs[best]})",
        )
        metric_axes.legend(loc="best")
        loss_axes.axvline(xs[best], color="tab:red", linestyle=":", linewidth=1)
    else:
        metric_axes.text(
            0.5,
            0.5,
            "no validation metric logged",
            ha="center",
            va="center",
            transform=metric_axes.transAxes,
            color="gray",
        )
        metric_axes.set_yticks([])

    for axes in (loss_axes, metric_axes):
        if epochs[-1] - epochs[0] <= 20:
            axes.set_xticks(range(epochs[0], epochs[-1] + 1))  # every epoch, whole numbers only
        else:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
        axes.grid(alpha=0.3)
    _save(figure, path)


# --------------------------------------------------------------------------------------------
# Confusion matrix
# --------------------------------------------------------------------------------------------


def plot_confusion_matrix(
    matrix: Any,
    label_names: list[str],
    path: str | os.PathLike,
    *,
    normalize: bool = True,
    title: str | None = None,
) -> None:
    """A (C, C) confusion matrix (rows = true, columns = predicted), each cell annotated.

    Args:
        matrix: (C, C) counts (nested lists, numpy array or tensor).
        label_names: C names, in class-id order.
        normalize: colour each cell by its share of the true class (row-normalised, so rare
            classes are as visible as common ones) and annotate "count\\n(share%)"; otherwise
            colour by raw count.
        title: plot title; "Confusion matrix" when None.
    """
    counts = _to_numpy(matrix)
    num_classes = len(label_names)
    if counts.shape != (num_classes, num_classes):
        raise ValueError(
            f"confusion matrix of shape {counts.shape} does not match {num_classes} label names"
        )
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros_like(counts), where=row_totals > 0)
    colours = shares if normalize else counts

    cell = 0.55 if num_classes <= 12 else 0.32
    side = min(max(4.5, cell * num_classes + 2.5), 30.0)
    figure = Figure(figsize=(side + 1.2, side), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(
        colours, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None, aspect="equal"
    )
    colorbar = figure.colorbar(image, ax=axes, shrink=0.8)
    colorbar.set_label("share of the true class" if normalize else "count")

    if num_classes <= 30:  # beyond that, numbers no longer fit in a cell
        font_size = 10 if num_classes <= 6 else 8 if num_classes <= 12 else 6
        dark = colours.max() * 0.55 if colours.size else 0.0
        for true_index in range(num_classes):
            for predicted_index in range(num_classes):
                count = int(round(counts[true_index, predicted_index]))
                text = f"{count:,}"
                if normalize and num_classes <= 12:
                    text += f"\n({shares[true_index, predicted_index]:.0%})"
                value = colours[true_index, predicted_index]
                axes.text(
                    predicted_index,
                    true_index,
                    text,
                    ha="center",
                    va="center",
                    fontsize=font_size,
                    color="white" if value > dark and value > 0 else "black",
                )

    label_font = 10 if num_classes <= 12 else 7
    axes.set_xticks(range(num_classes))
    axes.set_yticks(range(num_classes))
    longest = max((len(name) for name in label_names), default=0)
    rotation = 45 if longest * num_classes > 40 else 0
    axes.set_xticklabels(
        label_names,
        rotation=rotation,
        ha="right" if rotation else "center",
        rotation_mode="anchor",
        fontsize=label_font,
    )
    axes.set_yticklabels(label_names, fontsize=label_font)
    axes.set_xlabel("predicted label")
    axes.set_ylabel("true label")
    # No accuracy in the title: for multi-label counts (documents with true label i predicted as
    # label j) the trace over the sum is not the accuracy.
    axes.set_title(title or "Confusion matrix")
    _save(figure, path)


# --------------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------------


def plot_attention(
    attention: Any,
    source_tokens: list[str],
    output_tokens: list[str],
    path: str | os.PathLike,
    *,
    p_gen: list[float] | None = None,
) -> None:
    """Heatmap of decoder attention over the source, one row per generated token.

    Args:
        attention: (T_out, S) weights, row t = attention while producing output_tokens[t].
        source_tokens: S source tokens (columns).
        output_tokens: T_out generated tokens (rows).
        p_gen: optional (T_out,) generation probabilities of the pointer-generator (See et al.
            2017, eq. 8), drawn as a strip labelled "p_gen" right of the heatmap; the copy
            probability is 1 - p_gen.
    """
    weights = _to_numpy(attention)
    output_length, source_length = len(output_tokens), len(source_tokens)
    if weights.shape != (output_length, source_length):
        raise ValueError(
            f"attention of shape {weights.shape} does not match {output_length} output tokens "
            f"x {source_length} source tokens"
        )
    generation = None
    if p_gen is not None:
        generation = _to_numpy(p_gen).reshape(-1)
        if generation.shape != (output_length,):
            raise ValueError(
                f"p_gen has {generation.size} values for {output_length} output tokens"
            )

    # Size the figure by token counts so ~60 source tokens stay legible.
    column_inches = 0.2 if source_length <= 80 else 0.14
    row_inches = 0.25 if output_length <= 60 else 0.16
    width = min(max(5.0, column_inches * source_length + 2.5), 60.0)
    height = min(max(3.0, row_inches * output_length + 2.0), 60.0)
    tick_font = 8 if max(source_length, output_length) <= 40 else 7 if source_length <= 80 else 5

    figure = Figure(figsize=(width + (1.0 if generation is not None else 0.0), height))
    figure.set_layout_engine("constrained")
    if generation is not None:
        # About half an inch: room for "0.86" whatever the number of source columns.
        strip_ratio = 0.5 / column_inches
        axes, strip = figure.subplots(
            1, 2, sharey=True, gridspec_kw={"width_ratios": [source_length, strip_ratio]}
        )
    else:
        axes, strip = figure.subplots(), None

    image = axes.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, interpolation="nearest")
    axes.set_xticks(range(source_length))
    axes.set_xticklabels(source_tokens, rotation=90, fontsize=tick_font)
    axes.set_yticks(range(output_length))
    axes.set_yticklabels(output_tokens, fontsize=tick_font)
    axes.set_xlabel("source tokens")
    axes.set_ylabel("output tokens")
    axes.set_title("Attention over the source for each output token")
    colorbar = figure.colorbar(image, ax=[axes] if strip is None else [axes, strip], pad=0.01)
    colorbar.set_label("attention weight")

    if strip is not None:
        strip.imshow(
            generation[:, None], cmap="Oranges", vmin=0.0, vmax=1.0, aspect="auto",
            interpolation="nearest",
        )
        strip.set_xticks([0])
        strip.set_xticklabels(["p_gen"], fontsize=tick_font + 1)
        strip.tick_params(axis="y", left=False, labelleft=False)
        strip.set_title("p_gen\n(copy = 1 − p_gen)", fontsize=tick_font + 1)
        if output_length <= 80:
            for row, value in enumerate(generation):
                strip.text(
                    0, row, f"{value:.2f}", ha="center", va="center",
                    fontsize=max(tick_font - 1, 5),
                    color="white" if value > 0.6 else "black",
                )
    _save(figure, path)


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


def _bin_field(bins: Any, name: str) -> np.ndarray:
    value = bins[name] if isinstance(bins, dict) else getattr(bins, name)
    return _to_numpy(value).reshape(-1)


def plot_reliability_diagram(bins: Any, path: str | os.PathLike, *, title: str | None = None) -> None:
    """Reliability diagram (Guo et al. 2017, fig. 1): accuracy per confidence bin against the diagonal,
    the gap to each bin's mean confidence, and below it the share of examples per bin.

    Args:
        bins: `metrics.calibration.ReliabilityBins` (or its `to_dict()`): `edges` (M + 1), and per bin
            `confidence`, `accuracy`, `count` (M each).
        path: where to write the image.
        title: the title's start, "Reliability diagram" when None; the ECE is appended.
    """
    edges, confidence = _bin_field(bins, "edges"), _bin_field(bins, "confidence")
    accuracy, count = _bin_field(bins, "accuracy"), _bin_field(bins, "count")
    num_bins = len(count)
    if edges.shape != (num_bins + 1,) or confidence.shape != (num_bins,) or accuracy.shape != (num_bins,):
        raise ValueError(
            f"reliability bins need M + 1 edges and M confidences, accuracies and counts; got "
            f"{edges.size}, {confidence.size}, {accuracy.size}, {count.size}"
        )
    total = count.sum()
    if total <= 0:
        raise ValueError("reliability bins hold no examples; nothing to plot")
    ece = float(np.sum(count * np.abs(accuracy - confidence)) / total)
    mean_accuracy = float(np.sum(count * accuracy) / total)
    mean_confidence = float(np.sum(count * confidence) / total)
    left, width = edges[:-1], np.diff(edges)
    filled = count > 0

    # No equal aspect on the top axes: with sharex it would shrink them and misalign the two x axes.
    figure = Figure(figsize=(6.0, 6.8), layout="constrained")
    axes, histogram = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    axes.bar(left[filled], accuracy[filled], width=width[filled], align="edge", color="tab:blue",
             edgecolor="navy", linewidth=0.8, label="accuracy")  # fmt: skip
    # Hatched, not filled: an underconfident bin's gap lies inside its accuracy bar, and a translucent
    # red over the blue would read as a third colour.
    axes.bar(left[filled], (confidence - accuracy)[filled], bottom=accuracy[filled], width=width[filled],
             align="edge", fill=False, edgecolor="tab:red", hatch="///", linewidth=0.8,
             label="gap to mean confidence")  # fmt: skip
    axes.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="perfect calibration")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_ylabel("accuracy")
    axes.set_title(f"{title or 'Reliability diagram'} (ECE {ece:.3f})")
    axes.legend(loc="upper left")
    axes.grid(alpha=0.3)

    shares = count / total
    histogram.bar(left, shares, width=width, align="edge", color="tab:gray", edgecolor="black", linewidth=0.6)
    histogram.axvline(mean_accuracy, color="tab:blue", linestyle="-", linewidth=1.2,
                      label=f"accuracy {mean_accuracy:.3f}")  # fmt: skip
    histogram.axvline(mean_confidence, color="tab:red", linestyle="--", linewidth=1.2,
                      label=f"mean confidence {mean_confidence:.3f}")  # fmt: skip
    if num_bins <= 20:
        for x, share, n in zip(left + width / 2, shares, count):
            if n > 0:
                histogram.text(x, share, f"{int(n):,}", ha="center", va="bottom", fontsize=6)
    histogram.set_ylim(0, max(shares.max() * 1.25, 0.05))
    histogram.set_xlabel("confidence (top-class probability)")
    histogram.set_ylabel("share of examples")
    histogram.legend(loc="upper left", fontsize=8)
    histogram.grid(alpha=0.3)
    _save(figure, path)
