import pytest
import torch

from nlp_lstm.plots import plot_attention, plot_confusion_matrix, plot_training_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_single_png(directory, name):
    assert sorted(path.name for path in directory.iterdir()) == [name]  # no temp files left
    data = (directory / name).read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000


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
    _assert_single_png(tmp_path / "plots", "training_curves.png")


def test_training_curves_without_validation(tmp_path):
    plot_training_curves([{"epoch": 1, "train_loss": 0.9}], tmp_path / "curves.png")
    _assert_single_png(tmp_path, "curves.png")
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
    _assert_single_png(tmp_path, "cm.png")
    with pytest.raises(ValueError, match="does not match 2 label names"):
        plot_confusion_matrix(matrix, ["a", "b"], tmp_path / "bad.png")


def test_attention_with_p_gen(tmp_path):
    source = [f"tok{index}" for index in range(60)]
    output = [f"out{index}" for index in range(12)]
    attention = torch.softmax(torch.randn(12, 60), dim=-1)
    p_gen = torch.rand(12).tolist()
    plot_attention(attention, source, output, tmp_path / "attention.png", p_gen=p_gen)
    _assert_single_png(tmp_path, "attention.png")
    plot_attention(attention[:, :5], source[:5], output, tmp_path / "attention.png")
    _assert_single_png(tmp_path, "attention.png")
    with pytest.raises(ValueError, match="does not match"):
        plot_attention(attention, source[:10], output, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="p_gen has 3 values"):
        plot_attention(attention, source, output, tmp_path / "bad.png", p_gen=[0.1, 0.2, 0.3])
