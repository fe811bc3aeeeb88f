"""Token-level data for the sequence tagger: the word, character and tag vocabularies, and padded
batches of sentences (`TagBatch`).

A sentence is already split into words (`data/conll.py` reads them). Two views of each word:
- the word lookup key: lower-cased (by default) with digits mapped to 0 (Lample et al. 2016, sec.
  4), so "Paris"/"paris" and "1999"/"2005" share a row; words seen fewer than `min_count` times in
  training map to `<unk>`, which the model also learns from word dropout;
- its characters, case kept: they carry capitalisation, morphology and out-of-vocabulary words
  (Lample et al. 2016, sec. 4.1; Plank et al. 2016). Long words keep their first and last
  `MAX_WORD_CHARS // 2` characters, since prefixes and suffixes carry the morphology.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nlp_lstm.artifacts import atomic_write_json, read_json
from nlp_lstm.data.specials import PAD, PAD_ID, SPECIALS, UNK, UNK_ID
from nlp_lstm.data.vectors import Coverage, load_pretrained_embedding
from nlp_lstm.errors import NlpLstmError

MAX_WORD_CHARS = 24
VOCAB_FILE = "tagging_vocab.json"  # in a tagger's model directory, beside config.json
_DIGIT = re.compile(r"\d")


@dataclass
class TagBatch:
    """A padded batch of sentences, row-major, real tokens first.

    Attributes:
        word_ids: `(B, T)` word ids (PAD_ID at padding).
        char_ids: `(B, T, L)` character ids, L the batch's longest (clipped) word.
        lengths: `(B,)` tokens per sentence.
        pad_mask: `(B, T)` True at padding.
        tag_ids: `(B, T)` gold tag ids (0 at padding), or None when predicting.
        features: `(B, T)` long 0/1 per-token feature (such as a predicate indicator), or None.
    """

    word_ids: torch.Tensor
    char_ids: torch.Tensor
    lengths: torch.Tensor
    pad_mask: torch.Tensor
    tag_ids: torch.Tensor | None = None
    features: torch.Tensor | None = None

    def to(self, device) -> TagBatch:
        move = lambda tensor: None if tensor is None else tensor.to(device)  # noqa: E731
        return TagBatch(move(self.word_ids), move(self.char_ids), move(self.lengths), move(self.pad_mask),
                        move(self.tag_ids), move(self.features))


def clip_word(word: str) -> str:
    if len(word) <= MAX_WORD_CHARS:
        return word
    half = MAX_WORD_CHARS // 2
    return word[:half] + word[-half:]


@dataclass
class TaggingVocab:
    """Words (ids follow `SPECIALS`' first two: 0 `<pad>`, 1 `<unk>`), characters (same two first),
    and tags (no padding tag: padded positions are masked)."""

    words: list[str]
    chars: list[str]
    tags: list[str]
    lowercase: bool = True
    _word_index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _char_index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _tag_index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.words[:2] != [PAD, UNK] or self.chars[:2] != [PAD, UNK]:
            raise NlpLstmError(f"a tagging vocabulary starts with {PAD} and {UNK}; the file is damaged: train again")
        self._word_index = {word: index for index, word in enumerate(self.words)}
        self._char_index = {char: index for index, char in enumerate(self.chars)}
        self._tag_index = {tag: index for index, tag in enumerate(self.tags)}

    @classmethod
    def fit(cls, sentences: Iterable[tuple[Sequence[str], Sequence[str]]], *, min_count: int = 2,
            lowercase: bool = True, extra_words: Iterable[str] = ()) -> TaggingVocab:
        """From training `(tokens, tags)` pairs. Words seen fewer than `min_count` times are left out
        (they reach the model as `<unk>` plus their characters); `extra_words` (such as the words of
        pretrained vectors) are added whatever their count. Tags are sorted, so ids do not depend on
        the order of the data."""
        word_counts: Counter[str] = Counter()
        char_counts: Counter[str] = Counter()
        tags: set[str] = set()
        for tokens, sentence_tags in sentences:
            word_counts.update(word_key(token, lowercase=lowercase) for token in tokens)
            for token in tokens:
                char_counts.update(clip_word(token))
            tags.update(sentence_tags)
        if not tags:
            raise NlpLstmError("the training data has no tagged tokens; check the tokens and tags columns")
        words = [word for word, count in sorted(word_counts.items(), key=lambda item: (-item[1], item[0]))
                 if count >= min_count and word not in (PAD, UNK)]
        known = set(words)
        words += [key for key in dict.fromkeys(word_key(word, lowercase=lowercase) for word in extra_words)
                  if key not in known and key not in (PAD, UNK)]
        chars = sorted(char_counts)
        return cls(words=[PAD, UNK, *words], chars=[PAD, UNK, *chars], tags=sorted(tags), lowercase=lowercase)

    def word_id(self, token: str) -> int:
        return self._word_index.get(word_key(token, lowercase=self.lowercase), UNK_ID)

    def tag_index(self, tag: str) -> int | None:
        """A tag's id, or None for a tag the training data never used (a gold tag of held-out data)."""
        return self._tag_index.get(tag)

    def tag_ids(self, tags: Sequence[str], *, row: int = 0) -> list[int]:
        ids = []
        for tag in tags:
            index = self._tag_index.get(tag)
            if index is None:
                raise NlpLstmError(f"row {row} has tag {tag!r}, which the training data never uses; "
                                   f"the model knows {', '.join(self.tags[:12])}{' ...' if len(self.tags) > 12 else ''}")
            ids.append(index)
        return ids

    def encode(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]] | None = None,
               features: Sequence[Sequence[int]] | None = None) -> TagBatch:
        """A padded `TagBatch` of these sentences (each at least one token)."""
        lengths = [len(tokens) for tokens in sentences]
        if not sentences or min(lengths) == 0:
            raise NlpLstmError("an empty sentence reached the tagger; drop sentences without tokens")
        batch, time = len(sentences), max(lengths)
        clipped = [[clip_word(token) for token in tokens] for tokens in sentences]
        width = max(max(len(word) for words in clipped for word in words), 1)
        # Padded Python lists, then one tensor each: a tensor per token costs more than the model.
        word_rows = [[self.word_id(token) for token in tokens] + [PAD_ID] * (time - len(tokens)) for tokens in sentences]
        blank_word = [PAD_ID] * width
        char_rows = [[self._char_ids(word, width) for word in words] + [blank_word] * (time - len(words)) for words in clipped]
        word_ids = torch.tensor(word_rows, dtype=torch.long)  # (B, T)
        char_ids = torch.tensor(char_rows, dtype=torch.long)  # (B, T, L)
        lengths_tensor = torch.tensor(lengths)
        pad_mask = torch.arange(time).unsqueeze(0) >= lengths_tensor.unsqueeze(1)
        for name, lists in (("tags", tags), ("features", features)):
            for row, values in enumerate(lists or []):
                if len(values) != lengths[row]:
                    raise NlpLstmError(f"row {row} has {lengths[row]} tokens but {len(values)} {name}; give one per token")
        tag_ids = None
        if tags is not None:
            tag_ids = torch.zeros(batch, time, dtype=torch.long)
            for row, sentence_tags in enumerate(tags):
                tag_ids[row, : len(sentence_tags)] = torch.tensor(self.tag_ids(sentence_tags, row=row))
        feature_ids = None
        if features is not None:
            feature_ids = torch.zeros(batch, time, dtype=torch.long)
            for row, values in enumerate(features):
                feature_ids[row, : len(values)] = torch.tensor([int(bool(value)) for value in values])
        return TagBatch(word_ids, char_ids, lengths_tensor, pad_mask, tag_ids, feature_ids)

    def _char_ids(self, word: str, width: int) -> list[int]:
        """A clipped word's character ids padded to `width`; an empty token gets one `<unk>`
        character, so that every real word has a character to pool over."""
        ids = [self._char_index.get(char, UNK_ID) for char in word] or [UNK_ID]
        return ids + [PAD_ID] * (width - len(ids))

    def to_dict(self) -> dict:
        return {"words": self.words, "chars": self.chars, "tags": self.tags, "lowercase": self.lowercase}

    @classmethod
    def from_dict(cls, data: dict) -> TaggingVocab:
        return cls(words=list(data["words"]), chars=list(data["chars"]), tags=list(data["tags"]),
                   lowercase=bool(data["lowercase"]))


def word_key(token: str, *, lowercase: bool) -> str:
    """The form a word is looked up by: digits as 0, lower-cased when `lowercase`."""
    key = _DIGIT.sub("0", token)
    return key.lower() if lowercase else key


def length_batches(lengths: Sequence[int], batch_size: int, *, generator: torch.Generator | None = None) -> list[list[int]]:
    """Row indices grouped into batches of similar lengths (sorted within shuffled pools of 50
    batches), the batches in random order when a generator is given: padding stays small without
    the data being seen in the same order every epoch."""
    order = torch.randperm(len(lengths), generator=generator).tolist() if generator is not None else list(range(len(lengths)))
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda index: lengths[index])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    if generator is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def fit_with_vectors(sentences: Sequence[tuple[Sequence[str], Sequence[str]]], vectors_path, *, min_count: int = 2,
                     lang: str = "en", seed: int = 0) -> tuple[TaggingVocab, torch.Tensor, Coverage]:
    """A vocabulary over the training words and the vectors' most frequent words (`data/vectors.py`:
    test words never seen in training keep their pretrained vector), and the embedding table to
    start from, `(len(vocab.words), dim)`: a word's vector where the file has one (looked up by its
    key), else a random row of the vectors' own spread; `<pad>` zero.

    The vectors decide the case: the word keys are lower-cased when the vectors are (GloVe 6B)."""
    pretrained = load_pretrained_embedding(vectors_path, (" ".join(tokens) for tokens, _ in sentences), lang=lang,
                                           seed=seed)
    tokenizer = pretrained.tokenizer
    vector_words = [tokenizer.id_to_token(index) for index in range(len(SPECIALS), tokenizer.vocab_size)]
    lowercase = all(word == word.lower() for word in vector_words[:10_000])
    vocab = TaggingVocab.fit(sentences, min_count=min_count, lowercase=lowercase, extra_words=vector_words)
    source = torch.from_numpy(pretrained.weight)
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(len(vocab.words), source.shape[1], generator=generator) * float(source[len(SPECIALS):].std())
    for index, word in enumerate(vocab.words[2:], start=2):  # after <pad>, <unk>
        row = tokenizer.token_to_id(word)
        if row != UNK_ID:
            weight[index] = source[row]
    weight[PAD_ID] = 0.0
    return vocab, weight, pretrained.coverage


def save_vocab(directory, vocab: TaggingVocab) -> None:
    """Write `vocab` as `directory/tagging_vocab.json` (atomically)."""
    atomic_write_json(Path(directory) / VOCAB_FILE, vocab.to_dict())


def load_vocab(directory) -> TaggingVocab:
    """The `TaggingVocab` of a tagger's model directory; a missing or damaged file is one line."""
    path = Path(directory) / VOCAB_FILE
    if not path.is_file():
        raise NlpLstmError(f"{directory} has no {VOCAB_FILE}; copy the whole model directory or train again")
    data = read_json(path, what="tagging vocabulary")
    try:
        return TaggingVocab.from_dict(data)
    except (KeyError, TypeError, ValueError):
        raise NlpLstmError(f"{path} is not a tagging vocabulary (words, chars, tags, lowercase); train again") from None
