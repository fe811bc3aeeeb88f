"""`nlp-lstm explain`: the terminal view, JSON, the HTML file, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import re

import pytest

import nlp_lstm
from nlp_lstm.config import TrainConfig
from nlp_lstm.data.sources import DataSource
from nlp_lstm.errors import NlpLstmError
from tests.helpers import assert_usage_error, invoke, sentiment_rows, write_csv, write_jsonl
from tests.serve.corpora import SMALL, credit_rows


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    nlp_lstm.train(
        output_dir=root / "classifier",
        source=DataSource(train_file=str(write_csv(root / "train.csv", sentiment_rows(120, seed=2))), validation_fraction=0.25),
        tokenizer_settings={"kind": "spacy", "min_freq": 1}, model=SMALL,
        training=TrainConfig(epochs=2, batch_size=16, learning_rate=1e-2, seed=3), progress=False, device="cpu",
    )
    nlp_lstm.train_summarizer(
        output_dir=root / "summarizer",
        source=DataSource(train_file=str(write_jsonl(root / "docs.jsonl", credit_rows(16, seed=1))),
                          text_column="document", summary_column="summary", label_column=None),
        tokenizer_settings={"kind": "spacy", "vocab_size": 100, "min_freq": 1},
        model={**SMALL, "max_source_length": 12, "max_target_length": 6},
        training=TrainConfig(epochs=1, batch_size=8, learning_rate=0.01, seed=3),
        decoding={"beam_size": 2, "max_length": 5}, progress=False, device="cpu",
    )
    return root


def test_the_terminal_view_shows_each_word_with_a_signed_number(models):
    result = invoke("explain", "-m", models / "classifier", "--threads", "1", "the film was great, really.")
    assert result.exit_code == 0, result.output
    assert re.search(r"label (pos|neg) \(predicted\)", result.stdout)
    for word in ("film", "great", "really"):
        assert re.search(rf"│ {word} +│ [+-]\d\.\d{{3}} │", result.stdout), word
    assert "completeness" in result.stdout and "decided by" in result.stdout


def test_json_holds_the_numbers_and_html_is_one_offline_file(models, tmp_path):
    page = tmp_path / "why.html"
    result = invoke("explain", "-m", models / "classifier", "--format", "json", "--html", page, "--label", "neg",
                    "--steps", "16", "a bad plot", "great film")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["label"] for row in rows] == ["neg", "neg"]
    assert [w["word"] for w in rows[0]["words"]] == ["a", "bad", "plot"]
    for row in rows:
        lstm, linear = row["lstm"], row["linear"]
        assert lstm["steps"] <= 16
        assert row["score"] == pytest.approx(lstm["score"] + linear["score"])
        assert sum(w["total"] for w in row["words"]) == pytest.approx(
            lstm["score"] - lstm["baseline_score"] + linear["score"] - linear["bias"], abs=abs(lstm["residual"]) + 1e-6)
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "great" in html and "<style>" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing to fetch


def test_a_summarizer_explains_its_output_words(models):
    result = invoke("explain", "-m", models / "summarizer", "--format", "json", "the old movie by anna was long")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert [w["word"] for w in row["source_words"]] == "the old movie by anna was long".split()
    for output in row["outputs"]:
        assert len(output["attention"]) == 7 and sum(output["attention"]) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 <= output["p_gen"] <= 1.0 and 0.0 <= output["copy"] <= 1.0 + 1e-6
    view = invoke("explain", "-m", models / "summarizer", "the old movie by anna was long")
    assert view.exit_code == 0 and "p_gen" in view.stdout


@pytest.mark.parametrize(("args", "fragments"), [
    (["--label", "neutral", "great"], ["no label 'neutral'", "pos"]),
    (["  "], ["text 0 is empty"]),
    (["--steps", "0", "great"], ["steps=0 is invalid", "1 to 4096"]),
    (["--steps", "100000", "great"], ["steps=100000 is invalid"]),
])
def test_bad_input_is_one_line_and_exit_2(models, args, fragments):
    assert_usage_error(invoke("explain", "-m", models / "classifier", *args), *fragments)


def test_a_label_for_a_summarizer_is_refused(models):
    assert_usage_error(invoke("explain", "-m", models / "summarizer", "--label", "x", "a text"), "--label is for classifiers")


def test_a_kind_that_cannot_be_explained_is_refused(models, monkeypatch):
    class LanguageModel:
        kind = "language_model"

    monkeypatch.setattr("nlp_lstm.inference.predict.load", lambda *args, **kwargs: LanguageModel())
    with pytest.raises(NlpLstmError, match="holds a language_model, which explain cannot take apart"):
        nlp_lstm.explain(models / "classifier", ["a text"])


# --- taggers -------------------------------------------------------------------------------------

TAGGED_TEXT = "Anna Bob went to Paris , with Zyx"  # spaCy splits it at its spaces: tokens = TAGGED_TEXT.split()


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory):
    from tests.tagger_helpers import train_tagger_dir

    return train_tagger_dir(tmp_path_factory.mktemp("explain_tagger") / "ner", steps=60)


def enumerated(directory, tokens):
    """Every tag path of `tokens` and its probability under the saved CRF, by enumeration (float64),
    as tests/inference/test_tagger_predictor.py checks the marginals; and the tag names."""
    import itertools

    import numpy as np
    import torch

    predictor = nlp_lstm.load(directory, device="cpu")
    transitions, start, end = (s.detach().double().numpy() for s in predictor.model.crf.constrained_scores())
    with torch.no_grad():
        emissions = predictor.model(predictor.vocab.encode([tokens]))[0].double().numpy()  # (T, K)
    length, count = emissions.shape
    paths = list(itertools.product(range(count), repeat=length))
    scores = np.array([start[p[0]] + sum(emissions[t, p[t]] for t in range(length))
                       + sum(transitions[p[t - 1], p[t]] for t in range(1, length)) + end[p[-1]] for p in paths])
    probabilities = np.exp(scores - scores.max())
    return paths, probabilities / probabilities.sum(), predictor.labels


def expected_tokens(directory, tokens):
    """Per token by enumeration: (tag of the most probable path, its marginal, runner-up, its
    marginal); and the spans of that path read by hand (BIO) with their exact probability."""
    paths, probability, labels = enumerated(directory, tokens)
    best = paths[max(range(len(paths)), key=probability.__getitem__)]
    rows = []
    for t, chosen in enumerate(best):
        marginal = [sum(p for path, p in zip(paths, probability) if path[t] == k) for k in range(len(labels))]
        runner = max((k for k in range(len(labels)) if k != chosen), key=marginal.__getitem__)
        rows.append((labels[chosen], marginal[chosen], labels[runner], marginal[runner]))
    tags, spans, t = [labels[k] for k in best], [], 0
    while t < len(tags):
        if tags[t].startswith("B-"):
            end = t + 1
            while end < len(tags) and tags[end] == "I-" + tags[t][2:]:
                end += 1
            after = labels.index("I-" + tags[t][2:]) if "I-" + tags[t][2:] in labels else None
            exact = sum(p for path, p in zip(paths, probability) if list(path[t:end]) == list(best[t:end])
                        and not (end < len(tags) and path[end] == after))
            spans.append((tags[t][2:], t, end, exact))
            t = end
        else:
            t += 1
    return rows, spans


def test_a_tagger_shows_each_tokens_tag_marginal_and_runner_up(tagger_dir):
    tokens = TAGGED_TEXT.split()
    rows, spans = expected_tokens(tagger_dir, tokens)
    result = invoke("explain", "-m", tagger_dir, "--threads", "1", TAGGED_TEXT)
    assert result.exit_code == 0, result.output
    low = [token for token, row in zip(tokens, rows) if row[1] < 0.7]
    assert low and len(low) < len(tokens)  # the text has tokens of both kinds, so the marks are tested
    for index, (token, (tag, p, runner, q)) in enumerate(zip(tokens, rows)):
        line = rf"│ +{index} │ {re.escape(token)} +│ {tag} +│ (\d\.\d{{3}}) ([█·]{{10}})( \? low)? *│ {runner} (\d\.\d{{3}}) +│"
        found = re.search(line, result.stdout)
        assert found, (token, line)
        shown, bar, mark, shown_runner = found.groups()
        assert abs(float(shown) - p) < 6e-4 and abs(float(shown_runner) - q) < 6e-4  # printed to 3 places
        assert abs(bar.count("█") - 10 * p) <= 0.5 + 1e-3 and bar.count("█") + bar.count("·") == 10
        assert bool(mark) == (p < 0.7)
    # Inline: spans in brackets with their type; a token of low confidence carries a "?", also inside a span.
    marked = [token + ("?" if row[1] < 0.7 else "") for token, row in zip(tokens, rows)]
    for kind, start, end, exact in spans:
        assert f"[{' '.join(marked[start:end])}]{kind}" in result.stdout
        found = re.search(rf"│ {kind} +│ {re.escape(' '.join(tokens[start:end]))} +│ ([\d-]+) +│ +(\d\.\d{{3}}) │", result.stdout)
        assert found and found.group(1) == (str(start) if end == start + 1 else f"{start}-{end - 1}")
        assert abs(float(found.group(2)) - exact) < 6e-4
    assert f"{len(tokens)} tokens, {len(spans)} spans; {len(low)} of low confidence" in result.stdout


def test_a_taggers_json_and_html(tagger_dir, tmp_path):
    page = tmp_path / "tags.html"
    tokens = TAGGED_TEXT.split()
    rows, spans = expected_tokens(tagger_dir, tokens)
    result = invoke("explain", "-m", tagger_dir, "-f", "json", "--html", page, TAGGED_TEXT, "Anna  went")
    assert result.exit_code == 0, result.output
    first, second = json.loads(result.stdout)
    assert first["kind"] == "tagger" and first["tokens"] == tokens and first["truncated"] is False
    for word, (tag, p, runner, q) in zip(first["words"], rows):
        assert (word["tag"], word["runner_up"]) == (tag, runner)
        assert word["probability"] == pytest.approx(p, abs=1e-4) and word["runner_up_probability"] == pytest.approx(q, abs=1e-4)
        assert TAGGED_TEXT[word["start"] : word["end"]] == word["token"]
    assert [(s["type"], s["start"], s["end"]) for s in first["spans"]] == [s[:3] for s in spans]
    assert [s["confidence"] for s in first["spans"]] == pytest.approx([s[3] for s in spans], abs=1e-4)
    assert [(w["token"], w["start"], w["end"]) for w in second["words"]] == [("Anna", 0, 4), ("went", 6, 10)]
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "<style>" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing to fetch
    titles = re.findall(r'<span class="tok( low)?" tabindex="0" title="([^"]*)">([^<]*)</span>', html)
    assert [token for _, _, token in titles] == tokens + ["Anna", "went"]
    for (low, title, token), (tag, p, runner, q) in zip(titles, rows):
        found = re.match(rf"{re.escape(token)}: {tag} (\d\.\d{{3}}); runner-up {runner} (\d\.\d{{3}})", title)
        assert found and abs(float(found.group(1)) - p) < 6e-4 and abs(float(found.group(2)) - q) < 6e-4
        assert bool(low) == (p < 0.7) and ("(low confidence)" in title) == (p < 0.7)
    for kind, start, end, _ in spans:  # one highlight per span, its type written after its tokens
        assert re.search(r'<mark class="ent t\d+">' + "".join(
            (" " if i > start else "") + rf'<span class="tok[ a-z]*" tabindex="0" title="[^"]*">{re.escape(tokens[i])}</span>'
            for i in range(start, end)) + rf'<span class="type">{kind}</span></mark>', html), kind


def test_a_plain_tag_set_shows_word_slash_tag(tmp_path):
    from tests.tagger_helpers import ner_sentences, train_tagger_dir

    sentences = [(tokens, ["NAME" if tag != "O" else "WORD" for tag in tags]) for tokens, tags in ner_sentences(200)]
    directory = train_tagger_dir(tmp_path / "pos", steps=40, sentences=sentences)
    rows, _ = expected_tokens(directory, ["Anna", "went", "to", "Rome"])
    result = invoke("explain", "-m", directory, "--threads", "1", "Anna went to Rome")
    assert result.exit_code == 0, result.output
    shown = " ".join(f"{token}{'?' if p < 0.7 else ''}/{tag}" for token, (tag, p, _, _) in zip(["Anna", "went", "to", "Rome"], rows))
    assert shown in result.stdout and "spans" not in result.stdout.splitlines()[1]


def test_pretokenized_results_are_shown_with_spaces(tagger_dir):
    from rich.console import Console

    from nlp_lstm.inference.explain_html import explanations_html
    from nlp_lstm.inference.explain_terminal import print_explanations

    results = nlp_lstm.load(tagger_dir, device="cpu").explain([["Anna", "Bob", "went"]])
    console = Console(record=True, width=100, color_system=None)
    print_explanations(results, console=console)
    assert "Anna Bob went" in console.export_text()
    assert ">Anna</span> <span" in explanations_html(results)


@pytest.mark.parametrize(("kind", "args", "fragment"), [
    ("tagger", ["--label", "B-PER"], "--label is for classifiers; a tagger explains every token's own tag"),
    ("tagger", ["--steps", "16"], "--steps is for classifiers"),
    ("summarizer", ["--steps", "16"], "--steps is for classifiers; a summarizer has no labels"),
])
def test_label_and_steps_are_refused_where_there_is_nothing_to_attribute(kind, args, fragment, tagger_dir, models):
    directory = tagger_dir if kind == "tagger" else models / "summarizer"
    assert_usage_error(invoke("explain", "-m", directory, *args, "Anna went"), fragment)
