"""Summarizer stage functions: train -> save -> load -> summarize / evaluate, and the bad-input rules."""

import json
from pathlib import Path

import pytest
import torch
from rouge_score import rouge_scorer

import nlp_lstm
from nlp_lstm.config import TrainConfig
from nlp_lstm.data.sources import DataSource
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.summarizer import SummarizerConfig
from nlp_lstm.stages.pipeline import load_pipeline
from nlp_lstm.stages.summarization import evaluate_summarizer, train_summarizer
from nlp_lstm.training.tasks import SummarizationTask
from tests.helpers import credit_rows, write_jsonl

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"



SMALL_MODEL = {"embedding_dim": 16, "hidden_size": 32, "dropout": 0.0, "max_source_length": 40, "max_target_length": 6}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("summarizer")
    train_file = write_jsonl(root / "train.jsonl", credit_rows(48, seed=1))
    source = DataSource(train_file=str(train_file), text_column="document", summary_column="summary",
                        label_column=None)
    metrics = train_summarizer(
        output_dir=root / "model", source=source, tokenizer_settings={"kind": "spacy", "vocab_size": 100, "min_freq": 1},
        model=SMALL_MODEL, training=TrainConfig(epochs=12, batch_size=4, learning_rate=0.01, patience=12, seed=3),
        decoding={"beam_size": 2}, progress=False, device="cpu",
    )
    return {"root": root, "model": root / "model", "metrics": metrics, "source": source}


def test_training_beats_the_lead_baseline(trained):
    metrics = trained["metrics"]
    test = metrics["test"]
    assert test["count"] == 5 and metrics["validation"]["count"] == 5
    assert test["lead_baseline"]["k"] == 3
    assert test["rougeL"] > test["lead_baseline"]["rougeL"] + 20, test
    assert test["rougeL"] >= 80, test
    assert metrics["best_epoch"] >= 1 and metrics["train_seconds"] > 0


def test_model_directory_holds_everything_to_rebuild(trained):
    config = json.loads((trained["model"] / "config.json").read_text())
    assert config["kind"] == "summarizer"
    assert config["columns"] == {"text": "document", "summary": "summary"}
    assert config["model"]["max_source_length"] == 40 and config["model"]["max_target_length"] == 6
    assert config["decoding"]["beam_size"] == 2 and config["decoding"]["max_length"] == 6
    for name in ("README.md", "model.safetensors", "tokenizer/tokenizer.json", "metrics.json", "train_log.jsonl",
                 "plots/training_curves.png", "plots/attention_example.png"):
        assert (trained["model"] / name).is_file(), name


def test_save_load_summarize_is_reproducible(trained):
    texts = ["the movie was made by carl in year", "a long story by ivan", "old new by kim story"]
    first = nlp_lstm.load(trained["model"], device="cpu")
    assert first.kind == "summarizer"
    summaries = first.summarize(texts, beam_size=4)
    assert summaries == first.summarize(texts, beam_size=4)
    assert summaries == nlp_lstm.load(trained["model"], device="cpu").summarize(texts, beam_size=4)
    assert summaries == ["film by carl", "film by ivan", "film by kim"]
    # Batching and order do not change outputs.
    assert first.summarize(texts[::-1], beam_size=4, batch_size=1) == summaries[::-1]
    rows = nlp_lstm.summarize(trained["model"], texts, beam_size=1, device="cpu")
    assert [row["text"] for row in rows] == texts and all(row["summary"].startswith("film by") for row in rows)


def test_empty_text_gives_empty_summary_with_a_warning(trained):
    model = nlp_lstm.load(trained["model"], device="cpu")
    with pytest.warns(UserWarning, match="empty"):
        summaries = model.summarize(["", "a story by anna", "   "], beam_size=2)
    assert summaries[0] == "" and summaries[2] == "" and summaries[1] == "film by anna"


def test_long_text_is_truncated_with_a_warning(trained):
    model = nlp_lstm.load(trained["model"], device="cpu")
    with pytest.warns(UserWarning, match="truncated"):
        [summary] = model.summarize(["by bob " + "very " * 100], beam_size=1)
    assert summary.startswith("film")


def test_attention_rows_are_distributions_and_p_gen_is_a_probability(trained):
    model = nlp_lstm.load(trained["model"], device="cpu")
    found = model.attention("the old movie by dora", beam_size=2)
    attention, p_gen = found["attention"], found["p_gen"]
    assert attention.shape == (len(found["output_tokens"]), len(found["source_tokens"]))
    assert torch.allclose(attention.sum(dim=1), torch.ones(attention.shape[0]), atol=1e-5)
    assert ((p_gen >= 0) & (p_gen <= 1)).all()
    assert found["output_tokens"] == ["film", "by", "dora"] and found["summary"] == "film by dora"
    # "dora" is copied: its step attends mostly to the source position of "dora".
    assert found["source_tokens"][int(attention[-1].argmax())] == "dora"


def test_evaluate_reports_rouge_beside_the_lead_baseline(trained, tmp_path):
    test_file = write_jsonl(tmp_path / "test.jsonl", credit_rows(12, seed=7))
    source = DataSource(test_file=str(test_file), text_column="document", summary_column="summary")
    metrics = nlp_lstm.evaluate(trained["model"], source, split="test", device="cpu", plots_dir=tmp_path / "plots",
                                beam_size=2)
    assert metrics["split"] == "test" and metrics["count"] == 12
    assert set(metrics["lead_baseline"]) == {"k", "rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert metrics["rougeL"] > metrics["lead_baseline"]["rougeL"]
    assert (tmp_path / "plots" / "attention_example.png").is_file()
    with pytest.raises(NlpLstmError, match="summary-column"):
        evaluate_summarizer(trained["model"], DataSource(test_file=str(test_file), text_column="document"))


def test_a_classifier_directory_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"kind": "classifier", "model": {}}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(NlpLstmError, match="holds a classifier model.*nlp-lstm classify"):
        nlp_lstm.summarize(tmp_path, ["some text"])


def test_a_summarizer_is_refused_by_classify(trained):
    with pytest.raises(NlpLstmError, match="holds a summarizer model.*nlp-lstm summarize"):
        nlp_lstm.classify(trained["model"], ["some text"])


def test_coverage_loss_is_switched_on_for_the_last_epochs():
    task = SummarizationTask(tokenizer=None, coverage_from_epoch=3, coverage_weight=0.5, max_length=5)
    model = torch.nn.Module()
    task.on_epoch_start(model, 2)
    assert model.coverage_weight == 0.0
    task.on_epoch_start(model, 3)
    assert model.coverage_weight == 0.5
    SummarizationTask(tokenizer=None, max_length=5).on_epoch_start(model, 9)
    assert model.coverage_weight == 0.0


def test_coverage_epochs_need_a_coverage_model(trained, tmp_path):
    with pytest.raises(NlpLstmError, match="coverage"):
        train_summarizer(output_dir=tmp_path / "m", source=trained["source"],
                         model={**SMALL_MODEL, "coverage_from_epoch": 1},
                         tokenizer_settings={"kind": "spacy", "vocab_size": 100, "min_freq": 1},
                         training=TrainConfig(epochs=1), progress=False, device="cpu")


def test_descriptions_pipeline_is_valid():
    pipeline = load_pipeline(PIPELINES / "descriptions.toml")
    assert pipeline.pipeline.task == "summarizer"
    assert not pipeline.data.label_column and pipeline.data.summary_column == "description"
    assert isinstance(pipeline.model, SummarizerConfig)
    assert pipeline.model.coverage_from_epoch <= pipeline.train.epochs and pipeline.model.coverage
    assert pipeline.decoding.max_length <= pipeline.model.max_target_length


def test_evaluate_scores_the_summaries_the_model_gives(trained, tmp_path):
    # ROUGE and the lead-k baseline recomputed from the outside: the loaded model's own summaries
    # (with the decoding settings evaluate reports) scored by rouge-score directly.
    rows = credit_rows(10, seed=11)
    test_file = write_jsonl(tmp_path / "test.jsonl", rows)
    source = DataSource(test_file=str(test_file), text_column="document", summary_column="summary")
    metrics = nlp_lstm.evaluate(trained["model"], source, split="test", device="cpu", beam_size=3)
    documents, references = [row["document"] for row in rows], [row["summary"] for row in rows]
    summaries = nlp_lstm.load(trained["model"], device="cpu").summarize(documents, **metrics["decoding"])
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)

    def mean_f1(predictions):
        scores = [scorer.score(reference, prediction) for prediction, reference in zip(predictions, references)]
        return {name: round(100 * sum(s[name].fmeasure for s in scores) / len(scores), 2) for name in scorer.rouge_types}

    assert metrics["decoding"]["beam_size"] == 3 and metrics["count"] == 10
    assert {name: metrics[name] for name in scorer.rouge_types} == mean_f1(summaries)
    k = round(sum(len(reference.split()) for reference in references) / len(references))  # 3 words each
    lead = [" ".join(document.split()[:k]) for document in documents]
    assert {key: metrics["lead_baseline"][key] for key in ("k", *scorer.rouge_types)} == {"k": k, **mean_f1(lead)}
    assert metrics["rougeL"] > metrics["lead_baseline"]["rougeL"]
