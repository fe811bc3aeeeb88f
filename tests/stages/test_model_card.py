"""Model cards: hub-format front matter and the held-out metrics beside their baselines."""

import yaml

from nlp_lstm.config import TrainConfig
from nlp_lstm.decoding.beam_search import DecodeConfig
from nlp_lstm.model_card import model_card
from nlp_lstm.model_dir import ModelFile
from nlp_lstm.models.classifier import ClassifierConfig
from nlp_lstm.models.summarizer import SummarizerConfig


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_a_classifier_card_has_hub_fields_and_the_majority_baseline():
    model_file = ModelFile(kind="classifier", model=ClassifierConfig(num_labels=2, task="binary", vocab_size=9),
                           training=TrainConfig(epochs=3), labels=["neg", "pos"], temperature=1.7,
                           columns={"text": "text", "label": "label"})
    metrics = {"validation": {"accuracy": 0.5}, "test": {
        "accuracy": 0.8125, "macro_f1": 0.8, "ece": 0.0312,
        "per_class": {"neg": {"support": 30}, "pos": {"support": 10}}}}
    card = model_card(model_file, metrics, data="dataset 'imdb'", hub_dataset="imdb")
    meta = front_matter(card)
    assert meta["library_name"] == "nlp-lstm" and meta["pipeline_tag"] == "text-classification"
    assert meta["datasets"] == ["imdb"] and meta["license"] == "other" and "accuracy" in meta["metrics"]
    assert "## Results (test split)" in card
    assert "| accuracy | 0.8125 | 0.7500 |" in card  # 30 of 40 test rows are the majority class
    assert "| ece | 0.0312 |" in card and "T = 1.700" in card
    assert '"epochs": 3' in card and "nlp-lstm classify --model DIR" in card


def test_a_summarizer_card_sets_rouge_beside_the_lead_baseline():
    model_file = ModelFile(kind="summarizer", model=SummarizerConfig(vocab_size=50, coverage=True),
                           decoding=DecodeConfig(beam_size=4), columns={"text": "document", "summary": "summary"})
    metrics = {"validation": {"rouge1": 40.0, "rouge2": 20.0, "rougeL": 39.0,
                              "lead_baseline": {"k": 6, "rouge1": 30.0, "rouge2": 10.0, "rougeL": 28.5}}}
    card = model_card(model_file, metrics, data="train file d.jsonl")
    meta = front_matter(card)
    assert meta["pipeline_tag"] == "summarization" and meta["datasets"] == []
    assert "## Results (validation split)" in card and "| rougeL | 39.00 | 28.50 |" in card
    assert "lead-6 baseline" in card and "copy and coverage" in card and '"beam_size": 4' in card
