"""SequenceTagger: overfits a batch, learns a real slice beyond the most-frequent-tag baseline,
decodes the same with and without padding, and its parts (vocabulary, char CNN) behave."""

import dataclasses
import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from nlp_lstm.data.conll import read_conll
from nlp_lstm.data.specials import PAD_ID, UNK_ID
from nlp_lstm.data.tagging import MAX_WORD_CHARS, TaggingVocab, clip_word, length_batches
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.metrics.spans import TokenCounts
from nlp_lstm.models.tagger import SequenceTagger, TaggerConfig

TURKISH = Path(__file__).resolve().parents[2] / "data" / "turkish_pos"  # Apache-2.0, see its LICENSE
SENTENCES = [["John", "lives", "in", "New", "York"], ["Mary", "visited", "Paris", "in", "1999"], ["Hi"]]
TAGS = [["B-PER", "O", "O", "B-LOC", "I-LOC"], ["B-PER", "O", "B-LOC", "O", "O"], ["O"]]


def _model(vocab, **overrides):
    settings = {"embedding_dim": 16, "char_embedding_dim": 8, "char_filters": 8, "hidden_size": 16, "dropout": 0.0,
                "word_dropout": 0.0} | overrides
    return SequenceTagger(TaggerConfig(tags=vocab.tags, vocab_size=len(vocab.words), char_vocab_size=len(vocab.chars),
                                       **settings))


def _train(model, vocab, tokens, tags, *, epochs, batch_size=8, features=None, lr=1e-2):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(epochs):
        model.train()
        for indices in length_batches([len(t) for t in tokens], batch_size, generator=generator):
            batch = vocab.encode([tokens[i] for i in indices], [tags[i] for i in indices],
                                 None if features is None else [features[i] for i in indices])
            loss = model.loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    model.eval()
    return losses


@pytest.mark.parametrize("decoder", ["crf", "softmax"])
def test_overfits_a_small_batch(decoder):
    vocab = TaggingVocab.fit(zip(SENTENCES, TAGS), min_count=1)
    model = _model(vocab, decoder=decoder)
    losses = _train(model, vocab, SENTENCES, TAGS, epochs=60)
    assert losses[-1] < 0.05 * losses[0]
    batch = vocab.encode(SENTENCES)
    assert [[vocab.tags[i] for i in path] for path in model.decode(batch)] == TAGS
    marginals = model.marginals(batch)
    torch.testing.assert_close(marginals.sum(-1), (~batch.pad_mask).float())
    gold = vocab.encode(SENTENCES, TAGS).tag_ids
    assert marginals.gather(2, gold.unsqueeze(-1)).squeeze(-1)[~batch.pad_mask].min() > 0.5


def test_reloads_from_json_config_and_safetensors(tmp_path):
    vocab = TaggingVocab.fit(zip(SENTENCES, TAGS), min_count=1)
    model = _model(vocab)
    _train(model, vocab, SENTENCES, TAGS, epochs=20)
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"model": dataclasses.asdict(model.config),
                                                      "vocab": vocab.to_dict()}))
    saved = json.loads((tmp_path / "config.json").read_text())
    reloaded_vocab = TaggingVocab.from_dict(saved["vocab"])
    reloaded = SequenceTagger(TaggerConfig(**saved["model"]))
    reloaded.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    reloaded.eval()
    batch = vocab.encode(SENTENCES)
    assert reloaded.decode(reloaded_vocab.encode(SENTENCES)) == model.decode(batch)
    torch.testing.assert_close(reloaded.marginals(batch), model.marginals(batch))


def test_padding_does_not_change_decoding_or_marginals():
    vocab = TaggingVocab.fit(zip(SENTENCES, TAGS), min_count=1)
    model = _model(vocab).eval()
    together = vocab.encode(SENTENCES)
    paths, marginals = model.decode(together), model.marginals(together)
    for row, sentence in enumerate(SENTENCES):
        alone = vocab.encode([sentence])
        assert model.decode(alone) == [paths[row]]
        torch.testing.assert_close(model.marginals(alone)[0], marginals[row, : len(sentence)], atol=1e-5, rtol=1e-4)


def test_feature_column_reaches_the_model():
    # The tag depends only on the feature: without it no model could tell the two rows apart.
    tokens = [["a", "b", "c"], ["a", "b", "c"]]
    tags = [["B-V", "O", "O"], ["O", "O", "B-V"]]
    features = [[1, 0, 0], [0, 0, 1]]
    vocab = TaggingVocab.fit(zip(tokens, tags), min_count=1)
    model = _model(vocab, feature_embedding_dim=4)
    _train(model, vocab, tokens, tags, epochs=60, features=features)
    assert model.decode(vocab.encode(tokens, features=features)) == [vocab.tag_ids(t) for t in tags]
    with pytest.raises(NlpLstmError, match="per-token feature column"):
        model(vocab.encode(tokens))


def _read(path, count):
    corpus = read_conll(path)
    return corpus.tokens[:count], corpus.tags[:count]


@pytest.mark.slow
def test_beats_the_most_frequent_tag_baseline_on_a_real_slice():
    train_tokens, train_tags = _read(TURKISH / "train.conll.gz", 400)
    test_tokens, test_tags = _read(TURKISH / "test.conll.gz", 120)
    # the baseline, computed here: each word's most frequent training tag, else the most frequent tag
    by_word = defaultdict(Counter)
    for tokens, tags in zip(train_tokens, train_tags):
        for token, tag in zip(tokens, tags):
            by_word[token][tag] += 1
    overall = Counter(tag for tags in train_tags for tag in tags).most_common(1)[0][0]
    baseline = TokenCounts()
    for tokens, tags in zip(test_tokens, test_tags):
        baseline.update(tags, [by_word[t].most_common(1)[0][0] if t in by_word else overall for t in tokens])
    vocab = TaggingVocab.fit(zip(train_tokens, train_tags), min_count=1)
    model = _model(vocab, embedding_dim=32, char_embedding_dim=16, char_filters=32, hidden_size=32, dropout=0.3,
                   word_dropout=0.05)
    _train(model, vocab, train_tokens, train_tags, epochs=12, batch_size=16, lr=5e-3)
    tagged = TokenCounts()
    for start in range(0, len(test_tokens), 32):
        paths = model.decode(vocab.encode(test_tokens[start : start + 32]))
        for tags, path in zip(test_tags[start : start + 32], paths):
            tagged.update(tags, [vocab.tags[i] for i in path])
    assert tagged.accuracy > baseline.accuracy + 0.02, (tagged.accuracy, baseline.accuracy)


def test_vocabulary_keys_unknown_words_and_chars():
    vocab = TaggingVocab.fit([(["Paris", "paris", "1999", "rare"], ["A", "A", "B", "A"])], min_count=2)
    assert vocab.words == ["<pad>", "<unk>", "paris"]  # "0000" and "rare" were seen once
    assert vocab.tags == ["A", "B"]
    batch = vocab.encode([["PARIS", "2024", "x"], ["é"]])
    assert batch.word_ids.tolist() == [[2, UNK_ID, UNK_ID], [UNK_ID, PAD_ID, PAD_ID]]
    assert batch.pad_mask.tolist() == [[False, False, False], [False, True, True]]
    assert batch.char_ids[1, 0, 0].item() == UNK_ID  # a character never seen in training
    assert vocab.chars.index("P") == batch.char_ids[0, 0, 0].item()  # characters keep their case
    with pytest.raises(NlpLstmError, match="row 0 has tag 'C'"):
        vocab.encode([["a"]], [["C"]])
    with pytest.raises(NlpLstmError, match="empty sentence"):
        vocab.encode([["a"], []])
    with pytest.raises(NlpLstmError, match="row 1 has 1 tokens but 2 tags"):
        vocab.encode([["a"], ["b"]], [["A"], ["A", "B"]])
    assert vocab.encode([["", "ab"]]).char_ids[0, 0].tolist() == [UNK_ID, PAD_ID]  # an empty token: one <unk> char
    assert vocab == TaggingVocab.from_dict(json.loads(json.dumps(vocab.to_dict())))
    long = "a" * 20 + "b" * 20
    assert clip_word(long) == "a" * (MAX_WORD_CHARS // 2) + "b" * (MAX_WORD_CHARS // 2)


@pytest.mark.parametrize("char_encoder", ["cnn", "lstm"])
def test_char_features_ignore_padding_characters(char_encoder):
    vocab = TaggingVocab.fit([(["ab", "abcdefgh"], ["A", "A"])], min_count=1)
    model = _model(vocab, char_encoder=char_encoder).eval()
    short = model.chars(vocab.encode([["ab"]]).char_ids[0])
    padded = model.chars(vocab.encode([["ab", "abcdefgh"]]).char_ids[0])[:1]
    torch.testing.assert_close(short, padded)


def test_char_lstm_joins_last_forward_and_first_backward_states():
    """Against torch.nn.LSTM run on each word alone (no padding): the same parameter names."""
    torch.manual_seed(0)
    vocab = TaggingVocab.fit([(["ab", "abcdefgh", "c"], ["A", "A", "A"])], min_count=1)
    model = _model(vocab, char_encoder="lstm", char_hidden_size=5).eval()
    char_ids = vocab.encode([["ab", "abcdefgh", "c"]]).char_ids[0]  # (3, 8)
    features = model.chars(char_ids)
    assert features.shape == (3, 10)
    reference = torch.nn.LSTM(8, 5, bidirectional=True, batch_first=True)
    reference.load_state_dict(model.chars.encoder.state_dict())
    for row, word in enumerate(["ab", "abcdefgh", "c"]):
        embedded = model.chars.embedding(char_ids[row, : len(word)]).unsqueeze(0)  # (1, L, 8)
        outputs, (h_n, _) = reference(embedded)
        torch.testing.assert_close(features[row], torch.cat([h_n[0, 0], h_n[1, 0]]))
        # the forward state after the last character, the backward state after the first
        torch.testing.assert_close(features[row, :5], outputs[0, -1, :5])
        torch.testing.assert_close(features[row, 5:], outputs[0, 0, 5:])


def test_char_lstm_tagger_learns_and_pads_consistently():
    vocab = TaggingVocab.fit(zip(SENTENCES, TAGS), min_count=1)
    torch.manual_seed(0)
    model = _model(vocab, char_encoder="lstm", char_hidden_size=8)
    _train(model, vocab, SENTENCES, TAGS, epochs=60)
    model.eval()
    alone = [model.decode(vocab.encode([sentence]))[0] for sentence in SENTENCES]
    assert model.decode(vocab.encode(SENTENCES)) == alone  # padding words change nothing
    assert [[vocab.tags[i] for i in path] for path in alone] == TAGS


def test_config_refuses_mixed_schemes_and_bad_decoder():
    with pytest.raises(NlpLstmError, match="mix span tags"):
        TaggerConfig(tags=["B-PER", "NOUN"])
    with pytest.raises(NlpLstmError, match="decoder must be one of crf, softmax"):
        TaggerConfig(tags=["A"], decoder="hmm")
    with pytest.raises(NlpLstmError, match="char_encoder must be one of cnn, lstm"):
        TaggerConfig(tags=["A"], char_encoder="gru")
