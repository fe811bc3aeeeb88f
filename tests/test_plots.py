"""Plots are read back as images: the right shape, and the colours of what they claim to draw."""

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.image import imread

from nlp_lstm.plots import plot_attention, plot_confusion_matrix, plot_training_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# matplotlib's default line colours C0, C1 and the named ones the training curves use.
BLUE, ORANGE, GREEN, RED = (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)


def _assert_single_png(directory, name):
    """The only file in `directory` is a PNG; returns its (height, width, 3) RGB pixels, 0..255."""
    assert sorted(path.name for path in directory.iterdir()) == [name]  # no temp files left
    assert (directory / name).read_bytes().startswith(PNG_MAGIC)
    image = imread(directory / name)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    pixels = np.round(image[..., :3] * 255).astype(int)
    assert (pixels < 200).any(axis=-1).mean() > 0.01  # not blank: some ink on the white page
    return pixels


def _pixels_of(pixels, rgb, tolerance=3):
    """How many pixels have the colour `rgb` (0..255), up to `tolerance` per channel."""
    return int((np.abs(pixels - np.asarray(rgb)).max(axis=-1) <= tolerance).sum())


def _colormap(name, value):
    return tuple(round(255 * channel) for channel in matplotlib.colormaps[name](value)[:3])


def test_training_curves(tmp_path):
    rows = [
        {
            "epoch": epoch,
            "train_loss": 1.0 / epoch,
            "val_loss": 1.2 / epoch + 0.05 * epoch,
            "val_metric": [0.5, 0.7, 0.65][epoch - 1],
            "val_metric_name": "macro_f1",
        }
        for epoch in (1, 2, 3)
    ]
    rows.append({"step": 30, "loss": 0.2})  # a non-epoch row is ignored
    plot_training_curves(rows, tmp_path / "plots" / "training_curves.png")
    pixels = _assert_single_png(tmp_path / "plots", "training_curves.png")
    height, width = pixels.shape[:2]
    assert 2.0 < width / height < 3.2 and width > 800  # two panels side by side (11 x 4.2 in)
    # Train loss (C0), validation loss (C1), the metric (green) and its best epoch (red).
    for colour in (BLUE, ORANGE, GREEN, RED):
        assert _pixels_of(pixels, colour) > 30, colour


def test_training_curves_without_validation(tmp_path):
    plot_training_curves([{"epoch": 1, "train_loss": 0.9}], tmp_path / "curves.png")
    pixels = _assert_single_png(tmp_path, "curves.png")
    assert _pixels_of(pixels, BLUE) > 10  # the one train-loss marker
    assert _pixels_of(pixels, ORANGE) == _pixels_of(pixels, GREEN) == _pixels_of(pixels, RED) == 0
    with pytest.raises(ValueError, match="no rows"):
        plot_training_curves([], tmp_path / "never.png")


def test_confusion_matrix(tmp_path):
    matrix = torch.tensor([[50, 3, 2], [10, 30, 5], [0, 0, 0]])  # an empty row must not crash
    plot_confusion_matrix(matrix, ["negative", "neutral", "positive"], tmp_path / "cm.png")
    plot_confusion_matrix(
        matrix.tolist(), ["negative", "neutral", "positive"], tmp_path / "raw.svg", normalize=False
    )
    assert (tmp_path / "raw.svg").read_text().lstrip().startswith("<?xml")
    (tmp_path / "raw.svg").unlink()
    pixels = _assert_single_png(tmp_path, "cm.png")
    # Cells are coloured by their share of the true class (rows): 50/55, 30/45, 10/45, and the
    # empty row's zeros. Each cell is large, so its exact colour covers many pixels.
    for share in (50 / 55, 30 / 45, 10 / 45, 0.0):
        assert _pixels_of(pixels, _colormap("Blues", share), tolerance=1) > 300, share
    assert _pixels_of(pixels, _colormap("Blues", 50 / 50), tolerance=1) < 300  # raw shares, not rescaled
    with pytest.raises(ValueError, match="does not match 2 label names"):
        plot_confusion_matrix(matrix, ["a", "b"], tmp_path / "bad.png")


def test_attention_with_p_gen(tmp_path):
    source = [f"tok{index}" for index in range(60)]
    output = [f"out{index}" for index in range(12)]
    attention = torch.softmax(torch.randn(12, 60), dim=-1)
    p_gen = torch.rand(12).tolist()
    plot_attention(attention, source, output, tmp_path / "attention.png", p_gen=p_gen)
    pixels = _assert_single_png(tmp_path, "attention.png")
    assert pixels.shape[1] > pixels.shape[0]  # 60 source columns x 12 output rows
    # The largest weight is the top of the colour scale (viridis(1.0)); each p_gen cell of the strip
    # has the Oranges colour of its value.
    assert _pixels_of(pixels, _colormap("viridis", 1.0), tolerance=2) > 100
    for value in p_gen:
        assert _pixels_of(pixels, _colormap("Oranges", value), tolerance=2) > 100, value
    plot_attention(attention[:, :5], source[:5], output, tmp_path / "attention.png")
    pixels = _assert_single_png(tmp_path, "attention.png")
    assert _pixels_of(pixels, _colormap("Oranges", p_gen[0]), tolerance=2) < 100  # no strip asked for
    with pytest.raises(ValueError, match="does not match"):
        plot_attention(attention, source[:10], output, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="p_gen has 3 values"):
        plot_attention(attention, source, output, tmp_path / "bad.png", p_gen=[0.1, 0.2, 0.3])
