"""The classifier's linear part: word n-gram TF-IDF features (nlp_lstm/data/word_ngrams.py) against
scikit-learn's TfidfVectorizer, the linear layer against sums by hand, and its logistic-regression fit
(nlp_lstm/training/linear_fit.py) against scikit-learn's LogisticRegression on the same features."""

import warnings

import numpy as np
import pyarrow as pa
import pytest
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from nlp_lstm.data.word_ngrams import CHAR_PREFIX, TOKEN_PATTERN, fit_word_ngrams, load_word_ngrams
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.classifier import ClassifierConfig, TextClassifier
from nlp_lstm.nn.ngram_linear import NgramLinear
from nlp_lstm.training.linear_fit import fit_linear, sparse_rows

TEXTS = ["Not bad at all, I would buy it again!", "The plot was dull, dull and DULL.", "A wonderful film",
         "Café au lait, naïve résumé — déjà vu?", "not bad", ""]


def test_features_equal_scikit_learns_tfidf_with_the_same_settings():
    ngrams = fit_word_ngrams(TEXTS, order=2)
    reference = TfidfVectorizer(token_pattern=TOKEN_PATTERN, ngram_range=(1, 2), sublinear_tf=True)
    expected = reference.fit_transform(TEXTS).toarray()
    assert sorted(ngrams.vocabulary) == sorted(reference.vocabulary_)
    ids, values = ngrams.transform(TEXTS)
    for row, (row_ids, row_values) in enumerate(zip(ids, values)):
        ours = {ngrams.vocabulary[i]: v for i, v in zip(row_ids, row_values)}
        theirs = {gram: expected[row, j] for gram, j in reference.vocabulary_.items() if expected[row, j] > 0}
        assert ours.keys() == theirs.keys()
        for gram in ours:
            assert ours[gram] == pytest.approx(theirs[gram], abs=1e-6)
    assert "not bad" in ngrams.vocabulary and "dull" in ngrams.vocabulary and "!" in ngrams.vocabulary
    assert ids[-1] == [] and values[-1] == []  # an empty text has no features


def test_character_block_equals_scikit_learns_char_wb_and_each_block_is_normalised_alone():
    ngrams = fit_word_ngrams(TEXTS, order=2, char_order=5)
    words = TfidfVectorizer(token_pattern=TOKEN_PATTERN, ngram_range=(1, 2), sublinear_tf=True).fit(TEXTS)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True).fit(TEXTS)
    expected_words, expected_chars = words.transform(TEXTS).toarray(), chars.transform(TEXTS).toarray()
    ids, values = ngrams.transform(TEXTS)
    for row, (row_ids, row_values) in enumerate(zip(ids, values)):
        ours = {ngrams.vocabulary[i]: v for i, v in zip(row_ids, row_values)}
        theirs = {gram: expected_words[row, j] for gram, j in words.vocabulary_.items() if expected_words[row, j] > 0}
        theirs.update({CHAR_PREFIX + gram: expected_chars[row, j] for gram, j in chars.vocabulary_.items()
                       if expected_chars[row, j] > 0})
        assert ours.keys() == theirs.keys()
        for gram in ours:
            assert ours[gram] == pytest.approx(theirs[gram], abs=1e-6)
        if row_values:  # two unit blocks: squared values sum to 2
            assert sum(v * v for v in row_values) == pytest.approx(2.0, abs=1e-5)


def test_min_df_and_max_features_bound_the_vocabulary():
    texts = ["a b c", "a b d", "a e f"]
    assert set(fit_word_ngrams(texts, order=1, min_df=2).vocabulary) == {"a", "b"}
    assert fit_word_ngrams(texts, order=2, max_features=1).vocabulary == ["a"]  # the most frequent


def test_unknown_words_only_give_no_features_and_a_save_round_trip_is_exact(tmp_path):
    ngrams = fit_word_ngrams(TEXTS, order=2, char_order=4)
    assert ngrams.transform(["zzz qqq"]) == ([[]], [[]])
    ngrams.save(tmp_path)
    again = load_word_ngrams(tmp_path)
    assert again.vocabulary == ngrams.vocabulary and again.fingerprint == ngrams.fingerprint
    assert again.transform(TEXTS) == ngrams.transform(TEXTS)


def test_no_words_at_all_is_a_clear_error():
    with pytest.raises(NlpLstmError, match="no words"):
        fit_word_ngrams(["", "   "])


def test_linear_layer_sums_weighted_rows_and_the_bias():
    layer = NgramLinear(5, 2)
    with torch.no_grad():
        layer.table.copy_(torch.arange(10.0).view(5, 2))
        layer.bias.copy_(torch.tensor([0.5, -0.5]))
    ids = torch.tensor([[1, 3, 0], [4, 0, 0]])
    weights = torch.tensor([[0.5, 2.0, 0.0], [1.0, 0.0, 0.0]])  # 0 at padding
    expected = torch.tensor([[0.5 * 2 + 2.0 * 6 + 0.5, 0.5 * 3 + 2.0 * 7 - 0.5], [8 + 0.5, 9 - 0.5]])
    torch.testing.assert_close(layer(ids, weights), expected)
    assert list(layer.parameters()) == []  # buffers: no optimizer ever trains them


def test_classifier_adds_the_linear_parts_logits_and_needs_its_features():
    config = ClassifierConfig(vocab_size=12, num_labels=3, embedding_dim=4, hidden_size=4, dropout=0.0, ngram_features=7)
    model = TextClassifier(config).eval()
    with torch.no_grad():
        model.ngrams.table.normal_()
    ids, lengths, pad_mask = torch.tensor([[4, 5, 6]]), torch.tensor([3]), torch.zeros(1, 3, dtype=torch.bool)
    ngram_ids, ngram_weights = torch.tensor([[2, 6]]), torch.tensor([[0.6, 0.8]])
    lstm, linear = model(ids, lengths, pad_mask, ngram_ids, ngram_weights, parts=True)
    torch.testing.assert_close(linear, (0.6 * model.ngrams.table[2] + 0.8 * model.ngrams.table[6]).unsqueeze(0))
    torch.testing.assert_close(model(ids, lengths, pad_mask, ngram_ids, ngram_weights), lstm + linear)
    with pytest.raises(NlpLstmError, match="ngram_ids"):
        model(ids, lengths, pad_mask)
    assert TextClassifier(ClassifierConfig(vocab_size=12, embedding_dim=4, hidden_size=4, word_ngrams=0,
                                           ngram_features=7)).ngrams is None  # fmt: skip
    with pytest.raises(NlpLstmError, match="word_ngrams"):
        ClassifierConfig(word_ngrams=9)


def arrow(features):
    """`transform`'s lists as the Arrow list columns an encoded dataset holds."""
    ids, values = features
    return pa.array(ids, type=pa.list_(pa.int32())), pa.array(values, type=pa.list_(pa.float32()))


def _corpus(seed: int, rows: int, classes: int):
    """Texts whose label is signalled by a few words among noise words, not separably."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}" for i in range(60)]
    texts, labels = [], []
    for _ in range(rows):
        label = int(rng.integers(classes))
        words = list(rng.choice(vocabulary, size=8))
        if rng.random() < 0.8:
            words.append(f"cue{label}")
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.array(labels)


@pytest.mark.parametrize("classes", [2, 3])
def test_the_fit_is_scikit_learns_logistic_regression_with_c_chosen_on_validation(classes):
    train_texts, train_labels = _corpus(1, 300, classes)
    validation_texts, validation_labels = _corpus(2, 100, classes)
    ngrams = fit_word_ngrams(train_texts, order=2)
    train = sparse_rows(*arrow(ngrams.transform(train_texts)), len(ngrams))
    validation = sparse_rows(*arrow(ngrams.transform(validation_texts)), len(ngrams))
    task = "binary" if classes == 2 else "multiclass"
    fit = fit_linear(train, train_labels, validation, validation_labels, task=task, num_labels=classes)
    # The reference: one fresh fit at the chosen C (no warm start), to tight tolerance.
    with warnings.catch_warnings():  # at 1e-10 the line search runs into rounding, at the optimum
        warnings.simplefilter("ignore")
        reference = LogisticRegression(C=fit.c, solver="newton-cg", max_iter=5000, tol=1e-10).fit(train, train_labels)
    logits = torch.from_numpy(validation.toarray()).double() @ fit.table.double() + fit.bias.double()  # (N, outputs)
    expected = torch.from_numpy(reference.decision_function(validation)).double()
    if classes == 2:
        torch.testing.assert_close(logits.squeeze(-1), expected, atol=2e-3, rtol=0)
    else:  # softmax logits are defined up to a per-row constant
        torch.testing.assert_close(logits - logits.mean(1, keepdim=True), expected - expected.mean(1, keepdim=True),
                                   atol=2e-3, rtol=0)
    predicted = logits.argmax(1).numpy() if classes > 2 else (logits.squeeze(-1) > 0).long().numpy()
    assert (predicted == validation_labels).mean() > 0.7  # the cue words are learned


def test_a_label_missing_from_training_is_never_predicted():
    texts, labels = _corpus(3, 200, 2)
    ngrams = fit_word_ngrams(texts)
    rows = sparse_rows(*arrow(ngrams.transform(texts)), len(ngrams))
    fit = fit_linear(rows, labels, rows, labels, task="multiclass", num_labels=3)  # label 2 never seen
    logits = torch.from_numpy(rows.toarray()).float() @ fit.table + fit.bias
    assert (logits.argmax(1) != 2).all()
    assert (logits.argmax(1).numpy() == labels).mean() > 0.8


def test_a_vocabulary_far_past_the_json_cap_saves_and_loads(tmp_path):
    # A corpus of long texts gives up to 2 x 500,000 n-grams: more than the 16 MiB a JSON file may hold.
    from nlp_lstm.data.word_ngrams import WordNgrams

    vocabulary = [f"gram number {i} of a large vocabulary" for i in range(600_000)]
    idf = np.linspace(1.0, 9.0, len(vocabulary), dtype=np.float32)
    WordNgrams(vocabulary, idf, order=2, min_df=1, char_order=5).save(tmp_path)
    assert (tmp_path / "word_ngrams.tsv").stat().st_size > 16 * 2**20
    again = load_word_ngrams(tmp_path)
    assert again.vocabulary == vocabulary and np.array_equal(again.idf, idf) and again.char_order == 5
    (tmp_path / "word_ngrams.tsv").write_text("1.0\ta\n", encoding="utf-8")  # one line for 600,000 features
    with pytest.raises(NlpLstmError, match="not the word n-gram vocabulary"):
        load_word_ngrams(tmp_path)


def test_sparse_rows_read_a_filtered_encoded_split_row_for_row():
    # A filtered dataset is a view (an indices mapping over the table): its rows, not the table's.
    import datasets

    from nlp_lstm.data.collate import take_rows

    data = datasets.Dataset.from_dict({"ngram_ids": [[1, 2], [3], [], [4, 5, 6]],
                                       "ngram_weights": [[0.1, 0.2], [0.3], [], [0.4, 0.5, 0.6]]})
    view = data.select([1, 2, 3])
    columns = take_rows(view, np.arange(len(view)))
    matrix = sparse_rows(columns.column("ngram_ids"), columns.column("ngram_weights"), 8).toarray()
    expected = np.zeros((3, 8), dtype=np.float32)
    expected[0, 3] = 0.3
    expected[2, [4, 5, 6]] = [0.4, 0.5, 0.6]
    np.testing.assert_allclose(matrix, expected)
