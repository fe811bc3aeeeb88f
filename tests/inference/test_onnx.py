"""ONNX export and ONNX Runtime inference (nlp_lstm/inference/onnx*.py) against the PyTorch models.

The reference is always the PyTorch model (our LSTM with its exact time segments, our attention and
copy code); the ONNX side is torch.nn.LSTM -> ONNX's LSTM op with sequence_lens, run by onnxruntime.
"""

from __future__ import annotations

import json
import math
import random
import re
import sys

import numpy as np
import pytest
import torch

import nlp_lstm
from nlp_lstm.artifacts import load_tensors, save_tensors
from nlp_lstm.config import TrainConfig
from nlp_lstm.models.classifier import ClassifierConfig
from nlp_lstm.data.collate import classifier_arguments, collate_classification, collate_summarization
from nlp_lstm.data.sources import DataSource
from nlp_lstm.decoding.beam_search import DecodeConfig, beam_search
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.onnx import export_onnx, load_onnx
from nlp_lstm.inference.onnx_export import export_classifier, export_summarizer
from nlp_lstm.inference.onnx_runtime import OnnxGraph, OnnxSummarizer, OnnxTextClassifier
from nlp_lstm.models.classifier import TextClassifier
from nlp_lstm.models.summarizer import Summarizer, SummarizerConfig
from tests.helpers import assert_usage_error, invoke, sentiment_rows, write_csv, write_jsonl

SMALL = {"embedding_dim": 16, "hidden_size": 16, "dropout": 0.0}
VOCAB = 50
MAX_LENGTH = 23


def ragged_ids(batch: int, *, seed: int) -> list[list[int]]:
    """`batch` id lists whose lengths cover 1..MAX_LENGTH (all of them once batch >= MAX_LENGTH)."""
    rng = random.Random(seed)
    lengths = [1 + i % MAX_LENGTH for i in range(batch)] if batch > 1 else [rng.choice([1, MAX_LENGTH])]
    rng.shuffle(lengths)
    return [[rng.randrange(4, VOCAB) for _ in range(length)] for length in lengths]


def onnx_classifier(model: TextClassifier, path) -> OnnxTextClassifier:
    export_classifier(model, path)
    return OnnxTextClassifier(OnnxGraph(path, threads=1), model.config)


def assert_same_predictions(model, onnx_model, inputs, lengths, pad_mask):
    with torch.no_grad():
        expected = model.scores(model(inputs, lengths, pad_mask))
    got = onnx_model.scores(onnx_model(inputs, lengths, pad_mask))
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-4
    assert torch.equal(model.predict_labels(expected), onnx_model.predict_labels(got))


# ---------------------------------------------------------------------------------------------
# Classifier graph: every head and pooling, ragged batches
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["max", "mean", "last", "attention", "concat"])
@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_classifier_graph_matches_pytorch_on_ragged_batches(task, pooling, tmp_path):
    torch.manual_seed(1)
    config = ClassifierConfig(num_labels=2 if task == "binary" else 4, task=task, vocab_size=VOCAB, pooling=pooling,
                              **SMALL)  # fmt: skip
    model = TextClassifier(config).eval()
    with torch.no_grad():  # larger weights than at initialisation: confident, varied predictions
        model.head.weight.mul_(8)
    onnx_model = onnx_classifier(model, tmp_path / "classifier.onnx")
    for batch, seed in [(1, 0), (1, 1), (37, 2), (37, 3)]:
        collated = collate_classification([{"input_ids": ids} for ids in ragged_ids(batch, seed=seed)])
        assert_same_predictions(model, onnx_model, collated["input_ids"], collated["lengths"], collated["pad_mask"])


@pytest.mark.parametrize(("num_layers", "bidirectional"), [(2, True), (1, False), (2, False)])
def test_classifier_graph_matches_pytorch_for_stacked_and_unidirectional_encoders(num_layers, bidirectional, tmp_path):
    torch.manual_seed(2)
    model = TextClassifier(ClassifierConfig(num_labels=3, vocab_size=VOCAB, num_layers=num_layers, pooling="last",
                                            bidirectional=bidirectional, **SMALL)).eval()  # fmt: skip
    onnx_model = onnx_classifier(model, tmp_path / "classifier.onnx")
    collated = collate_classification([{"input_ids": ids} for ids in ragged_ids(37, seed=4)])
    assert_same_predictions(model, onnx_model, collated["input_ids"], collated["lengths"], collated["pad_mask"])


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_the_linear_part_is_exported(task, tmp_path):
    torch.manual_seed(7)
    model = TextClassifier(ClassifierConfig(num_labels=2 if task == "binary" else 4, task=task, vocab_size=VOCAB,
                                            ngram_features=97, **SMALL)).eval()  # fmt: skip
    with torch.no_grad():  # it starts at zero, where a graph without it would pass too
        model.ngrams.table.normal_(0.0, 2.0)
        model.ngrams.bias.normal_(0.0, 1.0)
    onnx_model = onnx_classifier(model, tmp_path / "classifier.onnx")
    generator = torch.Generator().manual_seed(3)
    for batch, seed in [(1, 8), (37, 9)]:
        examples = []
        for ids in ragged_ids(batch, seed=seed):  # ragged feature lists too, some empty
            count = int(torch.randint(0, 6, (1,), generator=generator))
            examples.append({"input_ids": ids, "ngram_ids": torch.randint(0, 97, (count,), generator=generator).tolist(),
                             "ngram_weights": torch.rand(count, generator=generator).tolist()})
        collated = collate_classification(examples)
        arguments = classifier_arguments(collated)
        with torch.no_grad():
            expected = model(*arguments)
        torch.testing.assert_close(onnx_model(*arguments), expected, rtol=1e-4, atol=1e-4)
        without = model(*arguments[:3], torch.zeros_like(arguments[3]), torch.zeros_like(arguments[4]))
        assert (expected - without).abs().max() > 0.1  # the features really moved the logits


def test_padding_past_the_longest_row_changes_nothing(tmp_path):
    torch.manual_seed(3)
    model = TextClassifier(ClassifierConfig(num_labels=3, vocab_size=VOCAB, pooling="max", **SMALL)).eval()
    onnx_model = onnx_classifier(model, tmp_path / "classifier.onnx")
    collated = collate_classification([{"input_ids": ids} for ids in ragged_ids(5, seed=5)])
    extra = torch.nn.functional.pad(collated["input_ids"], (0, 7))  # (B, T + 7), no row reaches the end
    pad_mask = torch.nn.functional.pad(collated["pad_mask"], (0, 7), value=True)
    tight = onnx_model(collated["input_ids"], collated["lengths"], collated["pad_mask"])
    torch.testing.assert_close(onnx_model(extra, collated["lengths"], pad_mask), tight, rtol=0, atol=1e-6)
    assert_same_predictions(model, onnx_model, extra, collated["lengths"], pad_mask)


def test_feature_sequence_classifier_graph(tmp_path):
    torch.manual_seed(4)
    model = TextClassifier(ClassifierConfig(num_labels=2, task="binary", input_size=3, hidden_size=8,
                                            bidirectional=False, pooling="last", dropout=0.0)).eval()  # fmt: skip
    onnx_model = onnx_classifier(model, tmp_path / "classifier.onnx")
    lengths = torch.tensor([4, 1, 6])
    features = torch.randn(3, 6, 3).masked_fill((torch.arange(6) >= lengths[:, None]).unsqueeze(-1), 0.0)
    assert_same_predictions(model, onnx_model, features, lengths, torch.arange(6) >= lengths[:, None])


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_diagonal_peepholes_are_exported(pooling, tmp_path):
    torch.manual_seed(6)
    model = TextClassifier(ClassifierConfig(num_labels=3, vocab_size=VOCAB, num_layers=2, peephole="diagonal",
                                            pooling=pooling, **SMALL)).eval()  # fmt: skip
    with torch.no_grad():  # they start at zero, where a graph without them would pass too
        for name, parameter in model.encoder.named_parameters():
            if name.startswith("peephole_"):
                parameter.normal_(0.0, 0.5)
    onnx_model = onnx_classifier(model, tmp_path / "classifier.onnx")
    collated = collate_classification([{"input_ids": ids} for ids in ragged_ids(37, seed=6)])
    assert_same_predictions(model, onnx_model, collated["input_ids"], collated["lengths"], collated["pad_mask"])


def test_full_peephole_encoders_are_refused_with_the_reason(tmp_path):
    model = TextClassifier(ClassifierConfig(num_labels=2, vocab_size=VOCAB, peephole="full", **SMALL))
    with pytest.raises(NlpLstmError, match="peephole='full'.*only diagonal.*PyTorch runtime"):
        export_classifier(model, tmp_path / "classifier.onnx")
    assert not (tmp_path / "classifier.onnx").exists()


# ---------------------------------------------------------------------------------------------
# A trained classifier, through export_onnx / load_onnx / predict
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_classifier")
    nlp_lstm.train(
        output_dir=root / "model", source=DataSource(train_file=str(write_csv(root / "train.csv", sentiment_rows(300, seed=1))),
                                                     validation_fraction=0.2),
        tokenizer_settings={"kind": "spacy", "min_freq": 1}, model=SMALL,
        training=TrainConfig(epochs=3, batch_size=16, learning_rate=1e-2, seed=3), progress=False,
    )  # fmt: skip
    export_onnx(root / "model")
    return root / "model"


TEXTS = [row["text"] for row in sentiment_rows(37, seed=11)] + ["Great!", "an unseen zyzzyva word", "awful " * 40]


@pytest.mark.parametrize("batch_size", [1, 64])
def test_onnx_predictor_gives_the_pytorch_predictions(trained, batch_size):
    expected = nlp_lstm.load(trained, device="cpu").predict(TEXTS, batch_size=batch_size)
    predictor = load_onnx(trained)
    assert predictor.kind == "classifier" and predictor.labels == ["neg", "pos"]
    assert isinstance(predictor.model, OnnxTextClassifier)
    got = predictor.predict(TEXTS, batch_size=batch_size)
    assert [row["text"] for row in got] == TEXTS
    assert [row["label"] for row in got] == [row["label"] for row in expected]
    # Scores are rounded to 4 decimals by the predictor: one rounding step apart at most.
    assert max(abs(a["score"] - b["score"]) for a, b in zip(got, expected)) <= 1e-4 + 1e-9


def test_onnx_json_describes_the_graph(trained):
    import onnxruntime

    manifest = json.loads((trained / "onnx" / "onnx.json").read_text())
    assert manifest["kind"] == "classifier" and manifest["opset"] == 17 and manifest["task"] == "binary"
    [graph] = manifest["graphs"].values()
    session = onnxruntime.InferenceSession(str(trained / "onnx" / graph["file"]), providers=["CPUExecutionProvider"])
    assert [i["name"] for i in graph["inputs"]] == [i.name for i in session.get_inputs()] == [
        "input_ids", "lengths", "ngram_ids", "ngram_weights"]  # the trained model has a linear part
    assert graph["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", 1]}]


def test_graph_runs_from_onnxruntime_alone_as_the_docs_say(trained):
    """docs/deploy-onnx.md: spaCy words, lowercased, looked up in tokenizer/vocab.txt (unknown -> 1)."""
    import onnxruntime
    import spacy

    vocab = (trained / "tokenizer" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    index = {token: i for i, token in enumerate(vocab) if i not in (0, 2, 3)}
    tokenizer = spacy.blank("en").tokenizer
    texts = TEXTS[:5]
    rows = [[index.get(t.lower_, 1) for t in tokenizer(text) if not t.is_space] for text in texts]
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    input_ids = np.zeros((len(rows), lengths.max()), dtype=np.int64)
    for i, r in enumerate(rows):
        input_ids[i, : len(r)] = r
    # The n-gram features as the docs spell them out, from word_ngrams.json and word_ngrams.tsv alone.
    ngrams = json.loads((trained / "word_ngrams.json").read_text(encoding="utf-8"))
    lines = (trained / "word_ngrams.tsv").read_text(encoding="utf-8").splitlines()
    ngrams["idf"] = [float(line.split("\t", 1)[0]) for line in lines]
    position = {line.split("\t", 1)[1]: i for i, line in enumerate(lines)}
    features = []
    for text in texts:
        tokens = re.findall(ngrams["token_pattern"], text.lower())
        words = [" ".join(tokens[i : i + n]) for n in range(1, ngrams["order"] + 1) for i in range(len(tokens) - n + 1)]
        chars = []
        for word in text.lower().split():
            padded = f" {word} "
            for n in range(ngrams["char_min"], ngrams["char_order"] + 1):
                if len(padded) <= n:
                    chars.append(ngrams["char_prefix"] + padded)
                    break
                chars += [ngrams["char_prefix"] + padded[i : i + n] for i in range(len(padded) - n + 1)]
        row = []
        for block in (words, chars):
            counts = {}
            for gram in block:
                if gram in position:
                    counts[position[gram]] = counts.get(position[gram], 0) + 1
            values = {i: (1 + math.log(c)) * ngrams["idf"][i] for i, c in counts.items()}
            norm = math.sqrt(sum(v * v for v in values.values())) or 1.0
            row += [(i, v / norm) for i, v in values.items()]
        features.append(row or [(0, 0.0)])
    width = max(len(f) for f in features)
    ngram_ids = np.zeros((len(texts), width), dtype=np.int64)
    ngram_weights = np.zeros((len(texts), width), dtype=np.float32)
    for row, pairs in enumerate(features):
        for column, (i, v) in enumerate(pairs):
            ngram_ids[row, column], ngram_weights[row, column] = i, v
    session = onnxruntime.InferenceSession(str(trained / "onnx" / "classifier.onnx"), providers=["CPUExecutionProvider"])
    [logits] = session.run(["logits"], {"input_ids": input_ids, "lengths": lengths, "ngram_ids": ngram_ids,
                                        "ngram_weights": ngram_weights})
    temperature = json.loads((trained / "config.json").read_text())["temperature"]
    positive = 0.5 * (1 + np.tanh(logits[:, 0] / temperature / 2))  # binary: P(labels[1]), the sigmoid without overflow
    expected = nlp_lstm.load(trained, device="cpu").predict(texts)
    assert [["neg", "pos"][int(p >= 0.5)] for p in positive] == [row["label"] for row in expected]
    assert np.allclose(np.maximum(positive, 1 - positive), [row["score"] for row in expected], atol=1e-4)


def test_missing_export_names_the_command(trained, tmp_path):
    with pytest.raises(NlpLstmError, match=r"no ONNX export.*nlp-lstm export --model .* --format onnx"):
        load_onnx(trained, onnx_dir=tmp_path / "nowhere")


def test_existing_output_is_refused_without_overwrite(trained, tmp_path):
    with pytest.raises(NlpLstmError, match="already exists.*--overwrite"):
        export_onnx(trained)
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "old.onnx").write_text("stale")
    with pytest.raises(NlpLstmError, match="already exists"):
        export_onnx(trained, target)
    assert export_onnx(trained, target, overwrite=True) == target
    assert not (target / "old.onnx").exists() and (target / "onnx.json").is_file()
    assert load_onnx(trained, onnx_dir=target).predict(TEXTS[:3]) == load_onnx(trained).predict(TEXTS[:3])


def test_graphs_of_other_weights_are_refused(trained, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(trained, copy)
    state = load_tensors(copy / "model.safetensors")
    state["head.bias"] = state["head.bias"] + 1.0  # retrained, not re-exported
    save_tensors(state, copy / "model.safetensors", metadata={"kind": "classifier"})
    with pytest.raises(NlpLstmError, match="other weights.*--overwrite"):
        load_onnx(copy)


def test_missing_onnxruntime_is_a_clear_error(trained, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    with pytest.raises(NlpLstmError, match=r"ONNX Runtime is not installed.*nlp-lstm\[onnx\]"):
        load_onnx(trained)


def test_cli_export_and_its_errors(trained, tmp_path):
    result = invoke("export", "--model", trained, "--format", "onnx", "--output", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "wrote ONNX graphs" in result.stdout and (tmp_path / "out" / "classifier.onnx").is_file()
    assert_usage_error(invoke("export", "--model", trained, "--output", tmp_path / "out"), "already exists", "--overwrite")
    assert invoke("export", "--model", trained, "--output", tmp_path / "out", "--overwrite").exit_code == 0
    assert_usage_error(invoke("export", "--model", trained, "--format", "tflite"), "tflite", "onnx")


def test_cli_refuses_a_full_peephole_model(tmp_path):
    model_dir = tmp_path / "peephole"
    nlp_lstm.train(
        output_dir=model_dir, source=DataSource(train_file=str(write_csv(tmp_path / "t.csv", sentiment_rows(60, seed=2))),
                                                validation_fraction=0.2),
        tokenizer_settings={"kind": "spacy", "min_freq": 1}, model={**SMALL, "peephole": "full"},
        training=TrainConfig(epochs=1, batch_size=16, seed=3), progress=False,
    )  # fmt: skip
    assert_usage_error(invoke("export", "--model", model_dir), "peephole='full'", "PyTorch runtime")
    assert not (model_dir / "onnx").exists()


# ---------------------------------------------------------------------------------------------
# Summarizer graphs: one decoder step, then whole beam searches
# ---------------------------------------------------------------------------------------------


def random_source_batch(examples: int, *, vocab_size: int, seed: int) -> dict:
    """Encoded sources with ragged lengths and some out-of-vocabulary words (extended ids)."""
    rng = random.Random(seed)
    encoded = []
    for _ in range(examples):
        ids, extended, oovs = [], [], []
        for _ in range(rng.randint(1, 9)):
            if rng.random() < 0.3:  # an OOV word: UNK for the encoder, its own extended id for copying
                oovs.append(f"w{len(oovs)}")
                ids.append(1)
                extended.append(vocab_size + len(oovs) - 1)
            else:
                ids.append(rng.randrange(4, vocab_size))
                extended.append(ids[-1])
        encoded.append({"src_ids": ids, "src_ext_ids": extended, "oovs": oovs, "length": len(ids)})
    return collate_summarization(encoded)


SUMMARIZER_VARIANTS = [
    {"attention": "additive", "copy": True, "coverage": True},
    {"attention": "general", "copy": True, "coverage": True, "encoder_layers": 2, "decoder_layers": 2},
    {"attention": "additive", "copy": False, "coverage": False, "peephole": "diagonal"},
]


@pytest.mark.parametrize("variant", SUMMARIZER_VARIANTS, ids=lambda v: f"{v['attention']}-copy{v['copy']}")
def test_decoder_step_graph_matches_pytorch_for_every_beam_layout(variant, tmp_path):
    torch.manual_seed(5)
    vocab_size = 30
    model = Summarizer(SummarizerConfig(vocab_size=vocab_size, embedding_dim=8, hidden_size=12, dropout=0.0,
                                        **variant)).eval()  # fmt: skip
    with torch.no_grad():  # both start at zero: make coverage and the peepholes count
        if variant["attention"] == "general":
            model.attention.coverage_weight.fill_(0.7)
        for name, parameter in model.encoder.named_parameters():
            if name.startswith("peephole_"):
                parameter.normal_(0.0, 0.5)
    export_summarizer(model, tmp_path)
    onnx_model = OnnxSummarizer(encoder=OnnxGraph(tmp_path / "encoder.onnx", threads=1),
                                decoder_step=OnnxGraph(tmp_path / "decoder_step.onnx", threads=1), config=model.config)
    copied = set()
    for examples, beams, seed in [(1, 1, 0), (4, 3, 1), (3, 4, 2)]:
        batch = random_source_batch(examples, vocab_size=vocab_size, seed=seed)
        args = (batch["src_ids"], batch["src_lengths"], batch["src_pad_mask"])
        with torch.no_grad():
            encoded, onnx_encoded = model.encode(*args), onnx_model.encode(*args)
            start = model.init_state(encoded)
            onnx_start = onnx_model.init_state(onnx_encoded)
            torch.testing.assert_close(onnx_encoded.outputs, encoded.outputs, rtol=0, atol=1e-5)
            torch.testing.assert_close(onnx_start.h, start.h, rtol=0, atol=1e-5)
            torch.testing.assert_close(onnx_start.c, start.c, rtol=0, atol=1e-5)
            rows = torch.arange(examples).repeat_interleave(beams)
            state = start.index_select(rows)
            state.coverage = torch.rand(state.coverage.shape) * batch["src_pad_mask"][rows].logical_not()
            state.input_feed = torch.randn(state.input_feed.shape)
            prev_ids = torch.randint(0, vocab_size + batch["max_oovs"], (examples * beams,))
            step_args = {"prev_ids": prev_ids, "state": state, "src_ext_ids": batch["src_ext_ids"],
                         "max_oovs": batch["max_oovs"], "beam_size": beams}
            expected = model.step(encoder_output=encoded, **step_args)
            got = onnx_model.step(encoder_output=onnx_encoded, **step_args)
        log_probs, onnx_log_probs = expected[0], got[0]
        assert onnx_log_probs.shape == log_probs.shape == (examples * beams, vocab_size + batch["max_oovs"])
        assert torch.equal(torch.isinf(onnx_log_probs), torch.isinf(log_probs))  # unreachable slots
        finite = torch.isfinite(log_probs)
        torch.testing.assert_close(onnx_log_probs[finite], log_probs[finite], rtol=0, atol=1e-4)
        for name in ("h", "c", "input_feed", "coverage"):
            torch.testing.assert_close(getattr(got[1], name), getattr(expected[1], name), rtol=0, atol=1e-5)
        torch.testing.assert_close(got[2], expected[2], rtol=0, atol=1e-5)  # attention
        torch.testing.assert_close(got[3], expected[3], rtol=0, atol=1e-5)  # p_gen
        beam_config = DecodeConfig(beam_size=beams, max_length=6, coverage_penalty=0.2)
        outputs = beam_search(model, batch, beam_config)
        assert beam_search(onnx_model, batch, beam_config) == outputs
        copied.update(i for ids in outputs for i in ids if i >= vocab_size)
    assert bool(copied) == variant["copy"]  # extended ids come out exactly when the model copies


FILLER = "the a movie was made in year and it is very long old new story".split()


def credit_rows(count: int, *, seed: int) -> list[dict]:
    """"... by NAME ..." -> "film by NAME", with made-up names that each appear about once, so the
    tokenizer (min_freq 2) leaves them out: the model must learn to copy them (See et al. 2017)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        name = "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(2))
        words = rng.choices(FILLER, k=rng.randint(2, 6))
        words.insert(rng.randint(0, len(words)), f"by {name}")
        rows.append({"document": " ".join(words), "summary": f"film by {name}"})
    return rows


@pytest.fixture(scope="module")
def trained_summarizer(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_summarizer")
    source = DataSource(train_file=str(write_jsonl(root / "train.jsonl", credit_rows(48, seed=1))),
                        text_column="document", summary_column="summary", label_column=None)  # fmt: skip
    nlp_lstm.train_summarizer(
        output_dir=root / "model", source=source, tokenizer_settings={"kind": "spacy", "vocab_size": 100, "min_freq": 2},
        model={"embedding_dim": 16, "hidden_size": 32, "dropout": 0.0, "copy": True, "coverage": True,
               "coverage_from_epoch": 4, "max_source_length": 40, "max_target_length": 6},
        training=TrainConfig(epochs=5, batch_size=4, learning_rate=0.01, patience=12, seed=3),
        decoding={"beam_size": 2}, progress=False, device="cpu",
    )  # fmt: skip
    export_onnx(root / "model")
    return root / "model"


def test_onnx_summarizer_gives_the_pytorch_summaries(trained_summarizer):
    texts = [row["document"] for row in credit_rows(12, seed=9)] + ["", "by " * 50]
    torch_model = nlp_lstm.load(trained_summarizer, device="cpu")
    predictor = load_onnx(trained_summarizer)
    assert predictor.kind == "summarizer" and isinstance(predictor.model, OnnxSummarizer)
    for settings in ({"beam_size": 4}, {"beam_size": 1}, {"beam_size": 3, "coverage_penalty": 0.5, "batch_size": 5}):
        with pytest.warns(UserWarning):  # the empty and the truncated text, as in PyTorch
            expected = torch_model.summarize(texts, **settings)
        with pytest.warns(UserWarning):
            assert predictor.summarize(texts, **settings) == expected
    # Copying is exercised: most names are out of vocabulary and still come out.
    copied = [s.split()[-1] for s in expected[:12] if s and predictor.tokenizer.token_to_id(s.split()[-1]) == 1]
    assert len(copied) >= 6, expected
    with pytest.raises(NlpLstmError, match="--shortlist is for the PyTorch runtime"):
        predictor.summarize(texts[:2], shortlist=5)  # the exported graph scores the whole vocabulary
    found, reference = predictor.attention(texts[0], beam_size=2), torch_model.attention(texts[0], beam_size=2)
    assert found["summary"] == reference["summary"]
    torch.testing.assert_close(found["attention"], reference["attention"], rtol=0, atol=1e-5)


def test_summarizer_graphs_run_from_onnxruntime_alone_as_the_docs_say(trained_summarizer):
    """docs/deploy-onnx.md's greedy loop, with the spaCy tokenizer, against nlp-lstm's greedy decoding."""
    import onnxruntime
    import spacy

    config = json.loads((trained_summarizer / "config.json").read_text())
    vocab = (trained_summarizer / "tokenizer" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    index = {token: i for i, token in enumerate(vocab) if i not in (0, 2, 3)}
    tokenizer = spacy.blank("en").tokenizer
    onnx_dir = trained_summarizer / "onnx"
    enc = onnxruntime.InferenceSession(str(onnx_dir / "encoder.onnx"), providers=["CPUExecutionProvider"])
    step = onnxruntime.InferenceSession(str(onnx_dir / "decoder_step.onnx"), providers=["CPUExecutionProvider"])
    V = config["model"]["vocab_size"]

    def summarize(text: str) -> str:
        pieces = [t.lower_ for t in tokenizer(text) if not t.is_space][: config["model"]["max_source_length"]]
        ids = [index.get(p, 1) for p in pieces]
        oovs = list(dict.fromkeys(p for p, i in zip(pieces, ids) if i == 1))
        ext = [V + oovs.index(p) if i == 1 else i for p, i in zip(pieces, ids)]
        src_ids, src_ext_ids = np.array([ids]), np.array([ext])
        outputs, keys, h, c = enc.run(None, {"src_ids": src_ids, "src_lengths": np.array([len(ids)])})
        feed = {"encoder_outputs": outputs, "attention_keys": keys, "src_pad_mask": np.zeros_like(src_ids, dtype=bool),
                "src_ext_ids": src_ext_ids, "h": h, "c": c, "input_feed": np.zeros((1, h.shape[-1]), np.float32),
                "coverage": np.zeros(src_ids.shape, np.float32), "prev_ids": np.array([2])}  # fmt: skip
        wanted = {i.name for i in step.get_inputs()}
        summary = []
        for t in range(30):
            log_probs, h, c, input_feed, coverage, _, _ = step.run(None, {k: v for k, v in feed.items() if k in wanted})
            log_probs = log_probs[:, : V + len(oovs)]
            log_probs[:, [0, 2]] = -np.inf
            if t == 0:
                log_probs[:, 3] = -np.inf
            token = int(log_probs.argmax())
            if token == 3:
                break
            summary.append(vocab[token] if token < V else oovs[token - V])
            feed.update(prev_ids=np.array([token]), h=h, c=c, input_feed=input_feed, coverage=coverage)
        return " ".join(summary)

    texts = [row["document"] for row in credit_rows(6, seed=21)]
    expected = nlp_lstm.load(trained_summarizer, device="cpu").summarize(texts, beam_size=1, no_repeat_ngram_size=0)
    assert [summarize(text) for text in texts] == expected
