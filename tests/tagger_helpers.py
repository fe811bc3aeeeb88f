"""Tagger model directories for tests, written as the training stage writes them (`config.json` of
kind "tagger", `model.safetensors`, `tagging_vocab.json`), from tiny models trained for a few steps."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from nlp_lstm.data.tagging import VOCAB_FILE, TaggingVocab, save_vocab  # noqa: F401 - VOCAB_FILE for tests
from nlp_lstm.model_dir import ModelFile, save_model
from nlp_lstm.models.tagger import SequenceTagger, TaggerConfig

PEOPLE = ["Anna", "Bob", "Carl", "Dora", "Emil"]
PLACES = ["Paris", "Rome", "Oslo", "Lima"]
FILLER = ["the", "a", "went", "to", "with", "and", "saw", "today", "in", "met"]


def ner_sentences(count: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Sentences with PER (one or two words) and LOC spans among filler words, BIO tags."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        tokens, tags = [], []
        for _ in range(rng.randint(2, 8)):
            choice = rng.random()
            if choice < 0.2:
                words = [rng.choice(PEOPLE)] + ([rng.choice(PEOPLE)] if rng.random() < 0.4 else [])
                tokens += words
                tags += ["B-PER"] + ["I-PER"] * (len(words) - 1)
            elif choice < 0.35:
                tokens.append(rng.choice(PLACES))
                tags.append("B-LOC")
            else:
                tokens.append(rng.choice(FILLER))
                tags.append("O")
        rows.append((tokens, tags))
    return rows


def save_tagger(directory: Path, model: SequenceTagger, vocab: TaggingVocab) -> Path:
    """A model directory as `nlp-lstm train tagger` writes it."""
    model_file = ModelFile(kind="tagger", model=model.config, labels=list(model.config.tags),
                           columns={"tokens": "tokens", "tags": "tags"})
    save_model(Path(directory), model_file=model_file, state=model.state_dict(), tokenizer=None)
    save_vocab(directory, vocab)
    return Path(directory)


def train_tagger_dir(directory: Path, *, decoder: str = "crf", steps: int = 60, seed: int = 0,
                     sentences: list | None = None, language: str = "en", **model) -> Path:
    """Fit a tiny tagger on `sentences` (default: `ner_sentences`) for `steps` Adam steps and save it."""
    sentences = sentences or ner_sentences(200, seed=seed)
    torch.manual_seed(seed)
    vocab = TaggingVocab.fit(sentences, min_count=1)
    config = TaggerConfig(tags=vocab.tags, vocab_size=len(vocab.words), char_vocab_size=len(vocab.chars),
                          decoder=decoder, language=language, **{"embedding_dim": 16, "char_embedding_dim": 8,
                                                                 "char_filters": 8, "hidden_size": 16, **model})
    tagger = SequenceTagger(config)
    optimizer = torch.optim.Adam(tagger.parameters(), lr=0.02)
    rng = random.Random(seed)
    for _ in range(steps):
        chunk = rng.sample(sentences, 16)
        features = [[index % 2 for index in range(len(t))] for t, _ in chunk] if config.feature_embedding_dim else None
        loss = tagger.loss(vocab.encode([t for t, _ in chunk], [g for _, g in chunk], features))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return save_tagger(directory, tagger.eval(), vocab)
