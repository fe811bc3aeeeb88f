"""Text -> tokens -> ids: a word tokenizer (spaCy's rule-based tokenizer) or subwords (sentencepiece).

Both kinds share one interface (`Tokenizer`) and one on-disk layout, `vocab/<name>/`:

- `tokenizer.json`: kind, settings (what `fit_tokenizer` was called with), special tokens, vocab size;
- `vocab.txt` (spaCy: one token per line, line number = id) or `spm.model` (sentencepiece proto).

Every vocabulary starts with the specials of `specials.py` at ids 0..3 (PAD, UNK, BOS, EOS), so models
and batches never need to ask the tokenizer where padding is.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from nlp_lstm.artifacts import atomic_write_bytes
from nlp_lstm.data.specials import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK, UNK_ID
from nlp_lstm.data.spacy_rules import bound_chunks, spacy_tokenizer, word_joins
from nlp_lstm.errors import NlpLstmError

TOKENIZER_KINDS = ("spacy", "sentencepiece")
SPM_MODEL_TYPES = ("unigram", "bpe")
TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "vocab.txt"
SPM_FILE = "spm.model"
FORMAT_VERSION = 1


# Texts per spaCy `tokenizer.pipe` batch; larger batches gain nothing for the rule-based tokenizer.
_PIPE_BATCH_SIZE = 1000
# Versions the rules every text goes through before a tokenizer sees it (`clean_text`,
# `bound_chunks`); part of `fingerprint`, so data encoded under older rules is not reused.
_TEXT_RULES_VERSION = 2
# A lone surrogate (JSON allows "\ud800"; Python keeps undecodable argv bytes as surrogates) is not
# a character: spaCy raises UnicodeEncodeError and sentencepiece TypeError on it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str | None) -> str:
    """What every tokenizer is given: None -> "", each lone surrogate -> U+FFFD (the replacement
    character), so that no text can make tokenization raise."""
    if text is None:
        return ""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


class Tokenizer:
    """Shared interface of the spaCy and sentencepiece tokenizers.

    Attributes:
        kind: "spacy" or "sentencepiece".
        settings: the keyword arguments of `fit_tokenizer` that shape this tokenizer; saved in
            `tokenizer.json` and given back unchanged by `load_tokenizer`.
        vocab_size: number of ids, the 4 specials included (ids are 0..vocab_size-1).
        pad_id, unk_id, bos_id, eos_id: 0, 1, 2, 3.
    """

    kind: str = ""
    pad_id = PAD_ID
    unk_id = UNK_ID
    bos_id = BOS_ID
    eos_id = EOS_ID

    def __init__(self, settings: dict):
        self.settings = dict(settings)

    # --- subclass hooks -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def tokenize_batch(self, texts: list[str]) -> list[list[str]]:
        """Surface pieces of many texts at once (the fast path of `tokenize`)."""
        raise NotImplementedError

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Ids of many texts at once; equal to `[self.encode(t) for t in texts]`, only faster."""
        raise NotImplementedError

    def token_to_id(self, token: str) -> int:
        """Id of a token (a word or a piece); `unk_id` when it is not in the vocabulary."""
        raise NotImplementedError

    def tokenize_and_encode_batch(self, texts: list[str]) -> list[tuple[list[str], list[int]]]:
        """(pieces, ids) of many texts, aligned one to one; what a copy mechanism needs."""
        return list(zip(self.tokenize_batch(texts), self.encode_batch(texts)))

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans `(start, end)` in `text` of each id of `encode(text)`, in order: where each
        token came from, so a value per token can be shown on the words the user typed (`explain`)."""
        raise NotImplementedError

    def id_to_token(self, index: int) -> str:
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        """Ids -> text. PAD, BOS and EOS are skipped; UNK is written as `<unk>`."""
        raise NotImplementedError

    def detokenize(self, tokens: list[str]) -> str:
        """Pieces (as from `tokenize`, possibly out of vocabulary) -> text."""
        raise NotImplementedError

    def _model_files(self) -> dict[str, bytes]:
        """File name -> content of the vocabulary file(s) written next to tokenizer.json."""
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """Surface pieces of one text: words for spaCy, subword pieces (with "▁") for sentencepiece."""
        return self.tokenize_batch([text])[0]

    def encode(self, text: str) -> list[int]:
        """Ids of one text, without BOS/EOS. Empty or whitespace-only text gives []."""
        return self.encode_batch([text])[0]

    def _tokenizer_json(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "settings": self.settings,
            "special_tokens": {token: index for index, token in enumerate(SPECIALS)},
            "vocab_size": self.vocab_size,
        }

    @property
    def fingerprint(self) -> str:
        """A hash of everything that decides the ids; `datasets` caches encoded data under it."""
        if getattr(self, "_fingerprint", None) is None:
            digest = hashlib.sha256(json.dumps(self._tokenizer_json(), sort_keys=True).encode())
            digest.update(f"text rules {_TEXT_RULES_VERSION}".encode())
            for name, content in sorted(self._model_files().items()):
                digest.update(name.encode())
                digest.update(content)
            self._fingerprint = digest.hexdigest()[:32]
        return self._fingerprint

    def save(self, directory) -> None:
        """Write tokenizer.json and vocab.txt | spm.model into `directory` (created if missing).

        Each file is written to a temporary file in the same directory and renamed over the old one,
        and tokenizer.json goes last, so a reader never sees a half-written tokenizer.
        """
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise NlpLstmError(f"cannot save the tokenizer to {directory}: it is a file; give a directory path")
        directory.mkdir(parents=True, exist_ok=True)
        files = dict(self._model_files())
        files[TOKENIZER_FILE] = (json.dumps(self._tokenizer_json(), indent=2, ensure_ascii=False) + "\n").encode()
        for name in [n for n in files if n != TOKENIZER_FILE] + [TOKENIZER_FILE]:
            atomic_write_bytes(directory / name, files[name])

    def __getstate__(self):
        # Picklable by value (datasets' multiprocess map ships the tokenizer to workers);
        # spaCy and sentencepiece objects are rebuilt on the other side.
        return {"kind": self.kind, "settings": self.settings, "files": self._model_files()}

    def __setstate__(self, state):
        rebuilt = from_files(state["kind"], state["settings"], state["files"], where="pickled tokenizer")
        self.__dict__.update(rebuilt.__dict__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, settings={self.settings})"


# --- spaCy: words ------------------------------------------------------------------------------
class SpacyTokenizer(Tokenizer):
    """Words from spaCy's rule-based tokenizer; vocabulary = specials + frequent words.

    Whitespace tokens spaCy emits (runs of spaces, newlines) are dropped. With `lowercase`, words are
    lowercased after tokenization (spaCy's exceptions such as "Don't" -> "Do", "n't" see the original case).
    """

    kind = "spacy"

    def __init__(self, tokens: list[str], settings: dict):
        super().__init__(settings)
        if list(tokens[: len(SPECIALS)]) != list(SPECIALS):
            raise ValueError(f"a vocabulary must start with {SPECIALS}")
        self._itos = list(tokens)
        self._stoi = {token: index for index, token in enumerate(self._itos)}
        # Text never maps to PAD/BOS/EOS: a literal "<pad>" in the input is an unknown word.
        self._text_stoi = {t: i for t, i in self._stoi.items() if i not in (PAD_ID, BOS_ID, EOS_ID)}
        self._lowercase = bool(settings.get("lowercase", True))
        self._tokenizer = spacy_tokenizer(settings.get("lang", "en"))
        self._split_cache: dict[tuple[str, ...], bool] = {}  # words -> spaCy splits their join back

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    def _words(self, doc) -> list[str]:
        if self._lowercase:
            return [token.lower_ for token in doc if not token.is_space]
        return [token.text for token in doc if not token.is_space]

    def _iter_tokenized(self, texts: Iterable[str]) -> Iterator[list[str]]:
        texts = (bound_chunks(clean_text(text)) for text in texts)
        for doc in self._tokenizer.pipe(texts, batch_size=_PIPE_BATCH_SIZE):
            yield self._words(doc)

    def tokenize_batch(self, texts: list[str]) -> list[list[str]]:
        return list(self._iter_tokenized(texts))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        stoi, unk = self._text_stoi, UNK_ID
        return [[stoi.get(word, unk) for word in words] for words in self._iter_tokenized(texts)]

    def tokenize_and_encode_batch(self, texts: list[str]) -> list[tuple[list[str], list[int]]]:
        stoi, unk = self._text_stoi, UNK_ID
        return [(words, [stoi.get(word, unk) for word in words]) for words in self._iter_tokenized(texts)]

    def spans(self, text: str) -> list[tuple[int, int]]:
        # spaCy saw `bound_chunks(text)`, which only inserts spaces: each word is found in the text in order.
        text = clean_text(text)
        spans, cursor = [], 0
        for token in self._tokenizer(bound_chunks(text)):
            if token.is_space:
                continue
            start = text.find(token.text, cursor)
            if start < 0:  # not expected; keep the alignment (one span per id) all the same
                start = cursor
            cursor = start + len(token.text)
            spans.append((start, cursor))
        return spans

    def token_to_id(self, token: str) -> int:
        return self._stoi.get(token, UNK_ID)

    def id_to_token(self, index: int) -> str:
        if not 0 <= index < len(self._itos):
            raise IndexError(f"token id {index} is outside the vocabulary (size {len(self._itos)})")
        return self._itos[index]

    def decode(self, ids: list[int]) -> str:
        return self.detokenize([self.id_to_token(int(i)) for i in ids if int(i) not in (PAD_ID, BOS_ID, EOS_ID)])

    def detokenize(self, tokens: list[str]) -> str:
        """Words -> text, with the spaces spaCy's rules imply: "do", "n't" -> "don't" (see
        `spacy_rules.word_joins`). The ids keep no `whitespace_`, so a join happens only where spaCy would
        split the joined text back into exactly these words: `tokenize` of the result gives them back."""
        tokens = list(tokens)
        joins = word_joins(tokens, self._splits_into)
        return "".join(
            token if join or index == 0 else " " + token
            for index, (token, join) in enumerate(zip(tokens, joins))
        )

    def _splits_into(self, *words: str) -> bool:
        """Whether spaCy tokenizes the words joined without spaces into exactly `words`."""
        if words not in self._split_cache:
            if len(self._split_cache) > 100_000:
                self._split_cache.clear()
            self._split_cache[words] = [t.text for t in self._tokenizer(bound_chunks(clean_text("".join(words))))] == list(words)
        return self._split_cache[words]

    def _model_files(self) -> dict[str, bytes]:
        return {VOCAB_FILE: ("\n".join(self._itos) + "\n").encode("utf-8")}


def fit_spacy(texts: Iterable[str], *, vocab_size: int, min_freq: int, lowercase: bool, lang: str) -> SpacyTokenizer:
    settings = {"vocab_size": vocab_size, "min_freq": min_freq, "lowercase": lowercase, "lang": lang}
    counter_source = SpacyTokenizer(list(SPECIALS), settings)  # tokenizes; its vocabulary is not used
    counts: Counter[str] = Counter()
    for words in counter_source._iter_tokenized(texts):  # streams: only the counts are held
        counts.update(words)
    # Newlines would break vocab.txt's one-token-per-line format; spaCy only puts them in space tokens.
    candidates = [
        (token, count)
        for token, count in counts.items()
        if count >= min_freq and token not in SPECIALS and "\n" not in token and "\r" not in token
    ]
    candidates.sort(key=lambda item: (-item[1], item[0]))  # by frequency, ties alphabetical: reproducible
    tokens = list(SPECIALS) + [token for token, _ in candidates[: vocab_size - len(SPECIALS)]]
    return SpacyTokenizer(tokens, settings)


# --- sentencepiece: subwords -------------------------------------------------------------------
class SentencePieceTokenizer(Tokenizer):
    """Subword pieces from a sentencepiece model (unigram or BPE) whose ids 0..3 are our specials.

    Text is NFKC-normalised (and case-folded with `lowercase`) by the model itself, so `decode`
    gives back the normalised text: `decode(encode(x)) == x` for NFKC text with single spaces.
    """

    kind = "sentencepiece"

    def __init__(self, model_proto: bytes, settings: dict):
        import sentencepiece

        super().__init__(settings)
        self._model_proto = bytes(model_proto)
        self._processor = sentencepiece.SentencePieceProcessor(model_proto=self._model_proto)
        for index, token in enumerate(SPECIALS):
            if self._processor.id_to_piece(index) != token:
                raise ValueError(f"sentencepiece id {index} is {self._processor.id_to_piece(index)!r}, not {token!r}")

    @property
    def vocab_size(self) -> int:
        return self._processor.get_piece_size()

    def tokenize_batch(self, texts: list[str]) -> list[list[str]]:
        return self._processor.encode([clean_text(t) for t in texts], out_type=str)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self._processor.encode([clean_text(t) for t in texts], out_type=int)

    def spans(self, text: str) -> list[tuple[int, int]]:
        # sentencepiece reports each piece's UTF-8 byte offsets in the text it was given (before its
        # NFKC normalisation), the space a piece starts with ("▁") included; bytes -> characters here.
        text = clean_text(text)
        try:
            proto = self._processor.encode(text, return_type="proto")
        except (TypeError, ValueError):  # sentencepiece before 0.2.1
            proto = self._processor.encode(text, out_type="immutable_proto")
        char_at = [0] * (len(text.encode("utf-8")) + 1)
        offset = 0
        for index, character in enumerate(text):
            width = len(character.encode("utf-8"))
            char_at[offset : offset + width] = [index] * width
            offset += width
        char_at[offset] = len(text)
        return [(char_at[piece.begin], char_at[piece.end]) for piece in proto.pieces]

    def token_to_id(self, token: str) -> int:
        return self._processor.piece_to_id(token)  # unk_id for unknown pieces

    def id_to_token(self, index: int) -> str:
        if not 0 <= index < self.vocab_size:
            raise IndexError(f"token id {index} is outside the vocabulary (size {self.vocab_size})")
        return self._processor.id_to_piece(index)

    def decode(self, ids: list[int]) -> str:
        # PAD/BOS/EOS are control pieces, which sentencepiece already decodes to "";
        # UNK decodes to its surface, set to "<unk>" at training time.
        ids = [int(i) for i in ids]
        for index in ids:
            if not 0 <= index < self.vocab_size:
                raise IndexError(f"token id {index} is outside the vocabulary (size {self.vocab_size})")
        return self._processor.decode(ids)

    def detokenize(self, tokens: list[str]) -> str:
        return self._processor.decode_pieces(list(tokens))

    def _model_files(self) -> dict[str, bytes]:
        return {SPM_FILE: self._model_proto}


def fit_sentencepiece(
    texts: Iterable[str], *, vocab_size: int, lowercase: bool, model_type: str, max_sentences: int
) -> SentencePieceTokenizer:
    import sentencepiece

    if model_type not in SPM_MODEL_TYPES:
        raise NlpLstmError(f"unknown sentencepiece model_type {model_type!r}; use one of {', '.join(SPM_MODEL_TYPES)}")
    if max_sentences < 1:
        raise NlpLstmError(f"max_sentences must be at least 1, got {max_sentences}")
    settings = {"vocab_size": vocab_size, "lowercase": lowercase, "model_type": model_type, "max_sentences": max_sentences}
    seen = {"count": 0}

    def sentences() -> Iterator[str]:
        # sentencepiece holds its training sample in memory: cap it, and never list the corpus here.
        # Whitespace-only texts carry nothing to learn and are skipped.
        for text in itertools.islice((t for t in texts if t is not None and t.strip()), max_sentences):
            seen["count"] += 1
            yield clean_text(text)

    model = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=sentences(),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            pad_piece=SPECIALS[PAD_ID], unk_piece=SPECIALS[UNK_ID],
            bos_piece=SPECIALS[BOS_ID], eos_piece=SPECIALS[EOS_ID],
            unk_surface=UNK,
            # Small corpora cannot fill a large vocabulary: let it come out smaller instead of failing.
            hard_vocab_limit=False,
            normalization_rule_name="nmt_nfkc_cf" if lowercase else "nmt_nfkc",
            max_sentence_length=1 << 16,
            character_coverage=0.9995,
            minloglevel=2,
        )
    except RuntimeError as error:
        if seen["count"] == 0:
            raise NlpLstmError("cannot fit a sentencepiece tokenizer: the texts are all empty; check --text-column") from None
        raise NlpLstmError(f"sentencepiece training failed ({error}); try a smaller --vocab-size or more text") from None
    return SentencePieceTokenizer(model.getvalue(), settings)


def from_files(kind: str, settings: dict, files: dict[str, bytes], *, where: str) -> Tokenizer:
    if kind == "spacy":
        content = files[VOCAB_FILE]
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as error:
            raise NlpLstmError(f"{where}/{VOCAB_FILE} is not valid UTF-8 (byte {error.start}); re-create it with `nlp-lstm vocab`") from None
        tokens = text.split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        if tokens[: len(SPECIALS)] != list(SPECIALS):
            raise NlpLstmError(
                f"{where}/{VOCAB_FILE} is corrupt: it must start with {', '.join(SPECIALS)}; re-create it with `nlp-lstm vocab`"
            )
        return SpacyTokenizer(tokens, settings)
    try:
        return SentencePieceTokenizer(files[SPM_FILE], settings)
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        raise NlpLstmError(f"{where}/{SPM_FILE} is corrupt ({error}); re-create it with `nlp-lstm vocab`") from None
