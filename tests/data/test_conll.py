"""Readers of tagged sentences: CoNLL, CoNLL-U, JSON Lines / parquet and ClassLabel datasets."""

import gzip
import json

import datasets
import pytest

from nlp_lstm.data.conll import from_dataset, read_conll, read_conllu, read_tagged_file
from nlp_lstm.errors import NlpLstmError

CONLL = """-DOCSTART- O

EU\tB-ORG
rejects\tO
German\tB-MISC

Peter\tB-PER
Blackburn\tI-PER


-DOCSTART- O
BRUSSELS\tB-LOC
"""

CONLLU = """# sent_id = s1
# text = Ali'nin evi var.
1-2\tAli'nin\t_\t_\t_\t_\t_\t_\t_\t_
1\tAli\tAli\tPROPN\tProp\t_\t3\tnmod\t_\tNER=B-PER
2\t'nin\t_\tADP\tPostp\t_\t1\tcase\t_\tNER=I-PER
3\tevi\tev\tNOUN\tNoun\t_\t4\tnsubj\t_\tNER=O|SpaceAfter=No
3.1\tgizli\t_\tX\t_\t_\t_\t_\t_\tNER=O
4\tvar\tvar\tVERB\tVerb\t_\t0\troot\t_\tNER=O

# sent_id = s2
1\tGel\tgel\tVERB\tVerb\t_\t0\troot\t_\tNER=O
"""


def _write(path, text, *, compress=False):
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_conll_sentences_docstart_and_blank_lines(tmp_path, compress):
    path = _write(tmp_path / ("a.conll.gz" if compress else "a.conll"), CONLL, compress=compress)
    corpus = read_conll(path)
    assert corpus.tokens == [["EU", "rejects", "German"], ["Peter", "Blackburn"], ["BRUSSELS"]]
    assert corpus.tags == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"], ["B-LOC"]]
    assert corpus.features is None


def test_conll_four_columns_take_the_last_as_tag(tmp_path):
    path = _write(tmp_path / "b.txt", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n")
    assert read_tagged_file(path).tags == [["B-ORG", "O"]]


@pytest.mark.parametrize("bad", ["EU\tB-ORG\tX", "EU"])
def test_conll_wrong_column_count_names_the_line(tmp_path, bad):
    path = _write(tmp_path / "c.conll", f"Peter\tB-PER\n\nEU\tO\n{bad}\n")
    with pytest.raises(NlpLstmError, match=r"line 4 has \d column"):
        read_conll(path)


@pytest.mark.parametrize(("column", "expected"), [
    ("upos", [["PROPN", "ADP", "NOUN", "VERB"], ["VERB"]]),
    ("xpos", [["Prop", "Postp", "Noun", "Verb"], ["Verb"]]),
    ("misc:NER", [["B-PER", "I-PER", "O", "O"], ["O"]]),
])
def test_conllu_columns_skip_ranges_and_empty_nodes(tmp_path, column, expected):
    path = _write(tmp_path / "d.conllu", CONLLU)
    corpus = read_conllu(path, column)
    assert corpus.tokens == [["Ali", "'nin", "evi", "var"], ["Gel"]]
    assert corpus.tags == expected
    assert read_tagged_file(path, conllu_column=column).tags == expected


def test_conllu_missing_column_or_key_names_the_line(tmp_path):
    path = _write(tmp_path / "e.conllu", CONLLU.replace("\tVERB\tVerb\t_\t0\troot\t_\tNER=O\n\n", "\tVERB\t_\t_\t0\troot\t_\t_\n\n"))
    with pytest.raises(NlpLstmError, match=r"line 8 has no XPOS"):
        read_conllu(path, "xpos")
    with pytest.raises(NlpLstmError, match=r"line 8 has no NER= in its MISC"):
        read_conllu(path, "misc:NER")
    with pytest.raises(NlpLstmError, match="unknown; use upos, xpos or misc:KEY"):
        read_conllu(path, "deprel")
    broken = _write(tmp_path / "f.conllu", "1\tAli\tAli\tPROPN\n")
    with pytest.raises(NlpLstmError, match="line 1 has 4 tab-separated columns"):
        read_conllu(broken)


def test_jsonl_and_parquet_with_token_and_tag_lists(tmp_path):
    rows = [{"words": ["a", "b"], "labels": ["O", "B-X"], "pred": [0, 1]}, {"words": ["c"], "labels": ["O"], "pred": [1]}]
    jsonl = tmp_path / "g.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    parquet = tmp_path / "g.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(parquet))
    for path in (jsonl, parquet):
        corpus = read_tagged_file(path, tokens_column="words", tags_column="labels", feature_column="pred")
        assert corpus.tokens == [["a", "b"], ["c"]]
        assert corpus.tags == [["O", "B-X"], ["O"]]
        assert corpus.features == [[0, 1], [1]]


def test_class_label_ids_become_names():
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    dataset = datasets.Dataset.from_dict({"tokens": [["John", "lives", "in", "New", "York"]],
                                          "ner_tags": [[1, 0, 0, 3, 4]]}, features=features)
    corpus = from_dataset(dataset, tags_column="ner_tags")
    assert corpus.tags == [["B-PER", "O", "O", "B-LOC", "I-LOC"]]


@pytest.mark.parametrize(("rows", "kwargs", "message"), [
    ([{"tokens": ["a", "b"], "tags": ["O"]}], {}, "row 0 .* 2 tokens but 1 tags"),
    ([{"tokens": ["a"], "tags": ["O"]}, {"tokens": [], "tags": []}], {}, "row 1 .* has no tokens"),
    ([{"text": "a b", "tags": ["O", "O"]}], {"tokens_column": "text"}, "holds string values, not token lists"),
    ([{"tokens": ["a"], "tags": ["O"]}], {"tags_column": "ner"}, "no tags column 'ner'; its columns are tokens, tags"),
    ([{"tokens": ["a", "b"], "tags": ["O", "O"], "p": [1]}], {"feature_column": "p"}, "needs one 0 or 1 per token"),
])
def test_bad_rows_are_named(rows, kwargs, message):
    with pytest.raises(NlpLstmError, match=message):
        from_dataset(datasets.Dataset.from_list(rows), **kwargs)
