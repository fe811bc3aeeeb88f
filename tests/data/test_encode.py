import datasets
import pytest

from nlp_lstm.data.encode import encode_classification, encode_summarization, extend_with_oovs
from nlp_lstm.data.specials import EOS_ID, UNK_ID
from nlp_lstm.data.tokenizers import fit_tokenizer
from nlp_lstm.errors import NlpLstmError

datasets.disable_progress_bars()


@pytest.fixture(scope="module")
def words():
    return fit_tokenizer(["the cat sat on the mat", "the dog sat", "a cat and a dog"], kind="spacy", vocab_size=50, min_freq=1)


def test_classification_ids_lengths_labels(words):
    ds = datasets.Dataset.from_dict({"text": ["the cat sat", "", None, "the dog " * 10], "label": ["b", "a", "b", "a"]})
    encoded = encode_classification(ds, words, text_column="text", label_column="label", label_names=["a", "b"], max_length=5)
    assert encoded.column_names == ["input_ids", "length", "labels"]
    assert encoded[0]["input_ids"] == words.encode("the cat sat")
    assert encoded["input_ids"][1] == [UNK_ID] and encoded["input_ids"][2] == [UNK_ID]  # never zero-length
    assert encoded["length"] == [3, 1, 1, 5]
    assert encoded["labels"] == [1, 0, 1, 0]
    unlabeled = encode_classification(ds, words, text_column="text", label_column=None, label_names=["a", "b"])
    assert unlabeled.column_names == ["input_ids", "length"]


def test_classification_int_and_multi_labels(words):
    ds = datasets.Dataset.from_dict({"text": ["cat", "dog"], "label": [10, 2]})
    encoded = encode_classification(ds, words, text_column="text", label_column="label", label_names=["2", "10"])
    assert encoded["labels"] == [1, 0]
    multi = datasets.Dataset.from_dict({"text": ["cat", "dog", "mat"], "tags": [["x", "z"], [], ["y"]]})
    encoded = encode_classification(
        multi, words, text_column="text", label_column="tags", label_names=["x", "y", "z"], multi_label=True
    )
    assert encoded["labels"] == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_unseen_label_names_it_and_the_known_ones(words):
    ds = datasets.Dataset.from_dict({"text": ["cat"], "label": ["neutral"]})
    with pytest.raises(NlpLstmError, match=r"'neutral'.*negative, positive"):
        encode_classification(ds, words, text_column="text", label_column="label", label_names=["negative", "positive"])
    with pytest.raises(NlpLstmError, match="available columns: text, label"):
        encode_classification(ds, words, text_column="body", label_column="label", label_names=["a"])


def test_encoding_is_cached_by_fingerprint(words, tmp_path):
    ds = datasets.Dataset.from_dict({"text": ["the cat", "a dog"], "label": ["a", "b"]})
    kwargs = dict(text_column="text", label_column="label", label_names=["a", "b"])
    first = encode_classification(ds, words, **kwargs)
    assert encode_classification(ds, words, **kwargs)._fingerprint == first._fingerprint
    assert encode_classification(ds, words, max_length=1, **kwargs)._fingerprint != first._fingerprint
    other = fit_tokenizer(["the cat"], kind="spacy", vocab_size=50, min_freq=1)
    assert encode_classification(ds, other, **kwargs)._fingerprint != first._fingerprint


def test_extend_with_oovs():
    ids, oovs = extend_with_oovs(["a", "Zed", "b", "Kim", "Zed"], [5, UNK_ID, 6, UNK_ID, UNK_ID], unk_id=UNK_ID, vocab_size=100)
    assert ids == [5, 100, 6, 101, 100] and oovs == ["Zed", "Kim"]


def test_summarization_copy_ids(words):
    vocab_size = words.vocab_size
    ds = datasets.Dataset.from_dict(
        {
            "text": ["kubrick made the film odyssey with kubrick", "", "the cat"],
            "summary": ["film by kubrick about zorro", "the dog", ""],
        }
    )
    encoded = encode_summarization(ds, words, text_column="text", summary_column="summary", max_source_length=6, max_target_length=4)
    first = encoded[0]
    # Source truncated to 6 tokens: the second "kubrick" is cut, so oovs come from the kept tokens only.
    assert first["oovs"] == ["kubrick", "made", "film", "odyssey", "with"]
    assert first["src_ids"] == words.encode("kubrick made the film odyssey with")
    assert first["src_ext_ids"] == [vocab_size, vocab_size + 1, words.token_to_id("the"), vocab_size + 2, vocab_size + 3, vocab_size + 4]
    assert first["length"] == 6
    # Target truncated to 4 (so no EOS: See et al. do not teach a model to stop where a reference was cut);
    # "film"/"kubrick" are copyable source OOVs, "by" is an OOV absent from the source.
    assert first["tgt_ids"] == [UNK_ID] * 4
    assert first["tgt_ext_ids"] == [vocab_size + 2, UNK_ID, vocab_size, UNK_ID]
    assert first["tgt_length"] == 4
    empty = encoded[1]
    assert empty["src_ids"] == [UNK_ID] and empty["src_ext_ids"] == [UNK_ID] and empty["oovs"] == []
    assert empty["tgt_ids"] == words.encode("the dog") + [EOS_ID]  # complete references end with EOS
    assert encoded[2]["tgt_ids"] == [EOS_ID] and encoded[2]["tgt_length"] == 1
    sources_only = encode_summarization(ds, words, text_column="text", summary_column=None)
    assert sources_only.column_names == ["src_ids", "src_ext_ids", "oovs", "length"]


def test_summarization_with_sentencepiece_pieces():
    spm = fit_tokenizer(["the cat sat on the mat"] * 20, kind="sentencepiece", vocab_size=40, lowercase=False)
    ds = datasets.Dataset.from_dict({"text": ["the Zulu cat"], "summary": ["Zulu"]})
    row = encode_summarization(ds, spm, text_column="text", summary_column="summary")[0]
    assert row["oovs"] and all(spm.token_to_id(piece) == UNK_ID for piece in row["oovs"])
    target_pieces = spm.tokenize("Zulu")
    assert row["tgt_ids"][-1] == EOS_ID and len(row["tgt_ids"]) == len(target_pieces) + 1
    for piece, tgt_id, ext_id in zip(target_pieces, row["tgt_ids"], row["tgt_ext_ids"]):
        assert ext_id == (spm.vocab_size + row["oovs"].index(piece) if tgt_id == UNK_ID else tgt_id)
    assert UNK_ID in row["tgt_ids"] and UNK_ID not in row["tgt_ext_ids"]  # every target OOV is copyable
    pieces = spm.tokenize("the Zulu cat")
    copied = [row["oovs"][i - spm.vocab_size] if i >= spm.vocab_size else spm.id_to_token(i) for i in row["src_ext_ids"]]
    assert spm.detokenize(copied) == spm.detokenize(pieces) == "the Zulu cat"


def test_encode_multiprocess(words):
    ds = datasets.Dataset.from_dict({"text": ["the cat", "a dog", "the mat", "sat"] * 5, "label": ["a", "b"] * 10})
    kwargs = dict(text_column="text", label_column="label", label_names=["a", "b"])
    assert encode_classification(ds, words, num_proc=2, **kwargs)["input_ids"] == encode_classification(ds, words, **kwargs)["input_ids"]


def test_training_and_prediction_turn_the_same_texts_into_the_same_ids():
    """`Dataset.map` encoding (training) and the predictors (serving) share one text -> ids path."""
    from nlp_lstm.inference.classifier import ClassifierPredictor
    from nlp_lstm.inference.summarizer import SummarizerPredictor
    from nlp_lstm.models.classifier import ClassifierConfig, TextClassifier
    from nlp_lstm.models.summarizer import Summarizer, SummarizerConfig

    texts = ["The cat sat on the mat.", "", "   ", "zyzzyva qux the cat " * 5, "Ünïcödé wörds, and the cat!"]
    for kind in ("spacy", "sentencepiece"):
        tokenizer = fit_tokenizer(["the cat sat on the mat", "a dog and the cat"] * 20, kind=kind, vocab_size=30,
                                  min_freq=1)
        ds = datasets.Dataset.from_dict({"text": texts, "summary": ["the cat", "", "qux", "zyzzyva cat", "wörds"]})
        trained = encode_classification(ds, tokenizer, text_column="text", label_column=None, label_names=[],
                                        max_length=7)
        classifier = ClassifierPredictor(TextClassifier(ClassifierConfig(vocab_size=tokenizer.vocab_size, max_length=7)),
                                         tokenizer, labels=["a", "b"])
        served = {}
        for indices, batch in classifier.batches(texts, warn=False):
            for row, index in enumerate(indices):
                served[index] = batch["input_ids"][row, : batch["lengths"][row]].tolist()
        assert [served[i] for i in range(len(texts))] == trained["input_ids"], kind

        trained = encode_summarization(ds, tokenizer, text_column="text", summary_column=None, max_source_length=6,
                                       max_target_length=4)
        summarizer = SummarizerPredictor(Summarizer(SummarizerConfig(vocab_size=tokenizer.vocab_size,
                                                                     max_source_length=6)), tokenizer)
        served = summarizer.encode_texts(texts, warn=False)
        for name in ("src_ids", "src_ext_ids", "oovs", "length"):
            assert [example[name] for example in served] == trained[name], (kind, name)
