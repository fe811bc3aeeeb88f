"""`pretrain` -> a language model directory -> `train classifier --init-from`, and the bad-input rules."""

import json

import pytest
import torch

import nlp_lstm
from nlp_lstm.config import TrainConfig
from nlp_lstm.data.sources import DataSource
from nlp_lstm.errors import NlpLstmError
from tests.helpers import assert_usage_error, invoke, write_csv

WORDS = {"kind": "spacy", "vocab_size": 60, "min_freq": 1}
SIZES = {"embedding_dim": 16, "hidden_size": 16}


def template_rows(count: int, seed: int = 0) -> list[dict]:
    """ "<det> <noun> was <adverb> <adjective>": word order a language model can learn, a unigram cannot."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        adjective = rng.choice(["good", "great", "lovely", "bad", "awful", "boring"])
        words = [rng.choice(["the", "a", "this"]), rng.choice(["film", "story", "product", "plot"]), "was",
                 rng.choice(["really", "very", "quite"]), adjective]
        rows.append({"text": " ".join(words), "label": "pos" if adjective in ("good", "great", "lovely") else "neg"})
    return rows


def unigram_perplexity(rows: list[dict]) -> float:
    """exp(entropy) of the word + end-of-text distribution: what a model without context can reach."""
    import collections
    import math

    counts = collections.Counter(word for row in rows for word in row["text"].split() + ["</s>"])
    total = sum(counts.values())
    return math.exp(-sum(c / total * math.log(c / total) for c in counts.values()))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    return root, write_csv(root / "train.csv", template_rows(300, seed=1))


@pytest.fixture(scope="module")
def language_model(corpus):
    root, train = corpus
    metrics = nlp_lstm.pretrain(output_dir=root / "lm", source=DataSource(train_file=str(train)),
                                tokenizer_settings=WORDS, model=SIZES, progress=False, device="cpu",
                                training=TrainConfig(epochs=6, batch_size=16, learning_rate=0.02, seed=3))
    return root / "lm", metrics


def test_the_language_model_learns_far_below_the_unigram_perplexity(language_model, corpus):
    lm_dir, metrics = language_model
    unigram = unigram_perplexity(template_rows(300, seed=1))  # about 11 here; the best in-context model ~3.1
    assert metrics["validation"]["perplexity"] < 0.6 * unigram, (metrics, unigram)
    log = [json.loads(line) for line in (lm_dir / "train_log.jsonl").read_text().splitlines()]
    assert [row["val_metric_name"] for row in log] == ["perplexity"] * 6
    assert log[-1]["val_metric"] < log[0]["val_metric"]  # perplexity falls
    for name in ("README.md", "config.json", "model.safetensors", "tokenizer/tokenizer.json", "plots/training_curves.png"):
        assert (lm_dir / name).is_file(), name
    assert json.loads((lm_dir / "config.json").read_text())["kind"] == "language_model"


def test_a_loaded_language_model_scores_and_samples(language_model):
    lm = nlp_lstm.load(language_model[0], device="cpu")
    assert lm.kind == "language_model"
    fluent = lm.perplexity(["the film was really good", "this product was quite bad"])
    shuffled = lm.perplexity(["good really was film the", "bad quite was product this"])
    assert lm.perplexity(["the film was really good"], direction="backward") < lm.perplexity(
        ["good really was film the"], direction="backward")
    assert fluent < shuffled
    assert lm.sample("the film", max_new_tokens=6, seed=1) == lm.sample("the film", max_new_tokens=6, seed=1)


def test_init_from_starts_the_classifier_from_the_language_model(language_model, corpus, tmp_path):
    from nlp_lstm.artifacts import load_tensors

    lm_dir, _ = language_model
    root, train = corpus
    nlp_lstm.train(output_dir=tmp_path / "clf", source=DataSource(train_file=str(train)), model={"init_from": str(lm_dir)},
                   training=TrainConfig(epochs=1, batch_size=16, learning_rate=1e-12, layer_lr_decay=2.6),
                   progress=False, device="cpu")
    saved = json.loads((tmp_path / "clf" / "config.json").read_text())
    assert saved["model"]["embedding_dim"] == 16 and saved["model"]["init_from"] == str(lm_dir)
    # A learning rate of ~0: the weights are still the language model's.
    lm, clf = load_tensors(lm_dir / "model.safetensors"), load_tensors(tmp_path / "clf" / "model.safetensors")
    assert torch.allclose(clf["embedding.weight"], lm["embedding.weight"], atol=1e-6)
    assert torch.allclose(clf["encoder.weight_hh_l0_reverse"], lm["backward_layers.0.weight_hh_l0"], atol=1e-6)
    assert (tmp_path / "clf" / "tokenizer" / "vocab.txt").read_text() == (lm_dir / "tokenizer" / "vocab.txt").read_text()


def test_gradual_unfreezing_trains_the_head_alone_in_the_first_epoch(language_model, corpus, tmp_path):
    from nlp_lstm.artifacts import load_tensors

    lm_dir, _ = language_model
    root, train = corpus
    nlp_lstm.train(output_dir=tmp_path / "clf", source=DataSource(train_file=str(train)), model={"init_from": str(lm_dir)},
                   training=TrainConfig(epochs=1, batch_size=16, learning_rate=0.05, gradual_unfreezing=True),
                   progress=False, device="cpu")
    lm, clf = load_tensors(lm_dir / "model.safetensors"), load_tensors(tmp_path / "clf" / "model.safetensors")
    # A large learning rate, yet after one epoch the embedding and both directions are the LM's, bit for bit.
    assert torch.equal(clf["embedding.weight"], lm["embedding.weight"])
    assert torch.equal(clf["encoder.weight_ih_l0"], lm["forward_layers.0.weight_ih_l0"])
    assert torch.equal(clf["encoder.weight_hh_l0_reverse"], lm["backward_layers.0.weight_hh_l0"])
    # Epoch 2 opens the (only) encoder layer, both directions; the embedding waits for epoch 3.
    from nlp_lstm.models.classifier import ClassifierConfig, TextClassifier
    from nlp_lstm.training.tasks import ClassificationTask

    model = TextClassifier(ClassifierConfig(num_labels=2, vocab_size=30, **SIZES))
    task = ClassificationTask(["neg", "pos"])
    task.parameter_groups(model, TrainConfig(gradual_unfreezing=True))
    top = ("head.", "ngrams.")  # the n-gram bag sits in the top group with the head
    for epoch, open_prefixes in ((1, top), (2, (*top, "encoder.")), (3, (*top, "encoder.", "embedding."))):
        task.on_epoch_start(model, epoch)
        for name, parameter in model.named_parameters():
            assert parameter.requires_grad == name.startswith(open_prefixes), (epoch, name)


def test_bad_inputs_are_one_line_errors(language_model, corpus, tmp_path):
    lm_dir, _ = language_model
    root, train = corpus
    empty = tmp_path / "empty.txt"
    empty.write_text("\n   \n\n", encoding="utf-8")
    assert_usage_error(invoke("pretrain", "--train-file", empty, "--output-dir", tmp_path / "e", "--quiet"), "empty")
    assert_usage_error(invoke("pretrain", "--train-file", train, "--text-column", "body", "--output-dir",
                              tmp_path / "c", "--quiet"), "'body'", "--text-column")
    assert_usage_error(invoke("train", "classifier", "--train-file", train, "--output-dir", tmp_path / "m",
                              "--init-from", lm_dir, "--hidden-size", "8", "--quiet"), "hidden_size 16", "8")
    assert_usage_error(invoke("train", "classifier", "--train-file", train, "--output-dir", tmp_path / "n",
                              "--init-from", root / "train.csv", "--quiet"), "train.csv")
    classifier = tmp_path / "clf"
    nlp_lstm.train(output_dir=classifier, source=DataSource(train_file=str(train)), tokenizer_settings=WORDS,
                   model={"embedding_dim": 8, "hidden_size": 8}, training=TrainConfig(epochs=1), progress=False,
                   device="cpu")
    assert_usage_error(invoke("train", "classifier", "--train-file", train, "--output-dir", tmp_path / "o",
                              "--init-from", classifier, "--quiet"), "holds a classifier model, not a language model")


def test_a_failed_pretraining_run_leaves_the_earlier_language_model_intact(language_model, tmp_path, corpus):
    import shutil

    lm_dir, _ = language_model
    copy = tmp_path / "lm"
    shutil.copytree(lm_dir, copy)
    before = (copy / "model.safetensors").read_bytes()
    empty = tmp_path / "empty.csv"
    empty.write_text("text\n \n", encoding="utf-8")
    with pytest.raises(NlpLstmError):
        nlp_lstm.pretrain(output_dir=copy, source=DataSource(train_file=str(empty), validation_fraction=0,
                                                             test_fraction=0),
                          overwrite=True, progress=False, device="cpu")
    assert (copy / "model.safetensors").read_bytes() == before


def test_a_too_small_vocabulary_is_a_clear_error(corpus, tmp_path):
    root, train = corpus
    with pytest.raises(NlpLstmError, match="vocab_size"):
        nlp_lstm.pretrain(output_dir=tmp_path / "v", source=DataSource(train_file=str(train)),
                          tokenizer_settings={"kind": "spacy", "vocab_size": 4}, progress=False, device="cpu")


def test_a_language_model_is_refused_by_export_and_evaluate_in_one_line(language_model, corpus, tmp_path):
    """A kind without an ONNX export or an evaluation says so (export used to treat it as a summarizer)."""
    lm_dir, _ = language_model
    _, train = corpus
    assert_usage_error(invoke("export", "--model", lm_dir, "--format", "onnx", "--output", tmp_path / "onnx"),
                       "holds a language_model model, which has no ONNX export", "classifier, summarizer")
    assert not (tmp_path / "onnx").exists()
    assert_usage_error(invoke("evaluate", "--model", lm_dir, "--train-file", train),
                       "holds a language_model model", "nlp-lstm train classifier --init-from")
