"""Text -> ids, once per task, for training data and for prediction alike; and ids -> text.

`classification_ids`, `summarization_sources` and `summarization_targets` are the pure functions that
turn texts into a model's ids. `encode_classification` / `encode_summarization` run them over a
dataset with `Dataset.map(batched=True)`, and the predictors (`nlp_lstm.inference`) call the same
functions on the texts they are given, so training and serving can never tokenize differently.

Each function names its result with a fingerprint of (input dataset, tokenizer files, arguments), so
`datasets` reuses its on-disk cache when nothing changed, and the tokenizer itself is never hashed.
No bos is added here (the collate functions and the models put it where it is needed); a summary's
target ends with eos unless it was cut at the length limit.

A streamed split (`IterableDataset`, `DataSource(streaming=True)`) is encoded in one pass and
written to an Arrow file (`Dataset.from_generator`), so training still gets memory-mapped, randomly
accessible ids while the raw texts are never stored.
"""

from __future__ import annotations

import hashlib
import json

from nlp_lstm.data.columns import is_stream, label_key
from nlp_lstm.data.mapped_pages import MappedPages, releasing
from nlp_lstm.data.specials import EOS_ID
from nlp_lstm.errors import NlpLstmError

_ENCODE_VERSION = 3  # bump when the encoded layout changes, so stale caches are not reused
_BATCH_SIZE = 1000


def _data_fingerprint(ds) -> str:
    """datasets' own fingerprint; `load_splits` gives streamed splits one. A stream from elsewhere has
    none, so its encoding is named afresh (not reused)."""
    import uuid

    return getattr(ds, "_fingerprint", None) or uuid.uuid4().hex


def _fingerprint(ds, tokenizer, name: str, arguments: dict) -> str:
    payload = json.dumps(
        {"v": _ENCODE_VERSION, "fn": name, "data": _data_fingerprint(ds), "tokenizer": tokenizer.fingerprint, "args": arguments},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _map(ds, encode_batch, features: dict, *, num_proc: int | None, fingerprint: str):
    """Replace every column by `encode_batch`'s output, batch by batch; cached on disk by `datasets`."""
    import datasets

    if is_stream(ds):
        encoded = _encode_stream(ds, encode_batch, datasets.Features(features), num_proc=num_proc, fingerprint=fingerprint)
    else:
        # Reading every text maps the whole source Arrow file into RSS: drop its pages batch by batch
        # (a no-op in `num_proc` workers: the addresses are the parent's).
        encoded = ds.map(
            releasing(ds, encode_batch),
            batched=True,
            batch_size=_BATCH_SIZE,
            remove_columns=ds.column_names,
            features=datasets.Features(features),
            num_proc=num_proc,
            new_fingerprint=fingerprint,
            desc="Encoding",
        )
    # Opening the Arrow file read every record batch's header, mapping much of the file into RSS.
    MappedPages(encoded).release()
    return encoded


def _encode_stream(stream, encode_batch, features, *, num_proc: int | None, fingerprint: str):
    import datasets

    if num_proc and num_proc > 1:
        raise NlpLstmError("num_proc works on Arrow data, not on a stream; drop --streaming or --num-proc")

    written = 0

    def rows():
        nonlocal written
        for batch in stream.iter(batch_size=_BATCH_SIZE):
            encoded = encode_batch(batch)
            names = list(encoded)
            for values in zip(*(encoded[name] for name in names)):
                written += 1
                yield dict(zip(names, values))

    try:
        return datasets.Dataset.from_generator(rows, features=features, fingerprint=fingerprint)
    except ValueError:
        if written:
            raise
        raise NlpLstmError("the streamed split has no rows to encode; check the file (and the binarize margin)") from None


def _require(ds, columns) -> None:
    for column in columns:
        if column is not None and column not in ds.column_names:
            raise NlpLstmError(
                f"column {column!r} not found in the dataset; available columns: {', '.join(ds.column_names)}"
            )


def _texts(values) -> list[str]:
    return ["" if value is None else value for value in values]


def classification_inputs(tokenizer, ngrams, texts: list[str], *, max_length: int) -> tuple[list[dict], int]:
    """Texts -> classifier examples: `input_ids` and `length` (`classification_ids`), and with a
    fitted `ngrams` (`data/word_ngrams.py`, the linear part's features) `ngram_ids` and
    `ngram_weights`. The linear part reads what the BiLSTM reads: a text cut at `max_length` tokens
    gives its n-grams from the kept tokens' text (`tokenizer.decode`), so a server that clips long
    texts before tokenizing them predicts as `predict` does.

    Returns:
        (examples, truncated): one dict per text, and how many texts were cut to `max_length`.
    """
    texts = _texts(texts)
    rows = tokenizer.encode_batch(texts)
    truncated = sum(len(row) > max_length for row in rows)
    examples = [{"input_ids": row[:max_length] or [tokenizer.unk_id]} for row in rows]
    for example in examples:
        example["length"] = len(example["input_ids"])
    if ngrams is not None:
        read = [tokenizer.decode(row[:max_length]) if len(row) > max_length else text for row, text in zip(rows, texts)]
        for example, ngram_ids, ngram_weights in zip(examples, *ngrams.transform(read)):
            example["ngram_ids"], example["ngram_weights"] = ngram_ids, ngram_weights
    return examples, truncated


def classification_ids(tokenizer, texts: list[str], *, max_length: int) -> tuple[list[list[int]], int]:
    """Texts -> classifier input ids.

    Returns:
        (ids, truncated): one id list per text, cut to `max_length` (an empty text becomes `[unk_id]`,
        so every example has at least one step for the LSTM), and how many texts were cut.
    """
    examples, truncated = classification_inputs(tokenizer, None, texts, max_length=max_length)
    return [example["input_ids"] for example in examples], truncated


def encode_classification(
    ds,
    tokenizer,
    *,
    text_column: str,
    label_column: str | None,
    label_names: list[str],
    multi_label: bool = False,
    max_length: int = 256,
    ngrams=None,
    num_proc: int | None = None,
):
    """Texts (and labels) -> ids for a classifier.

    Returns a `datasets.Dataset` with only these columns:
        input_ids: list[int], truncated to `max_length`; an empty text becomes `[unk_id]` so every
            example has at least one step for the LSTM.
        length: int, len(input_ids).
        ngram_ids, ngram_weights: list[int], list[float] word n-gram TF-IDF features, when `ngrams`
            (a fitted `WordNgrams`) is given.
        labels: int index into `label_names`; with `multi_label`, a multi-hot list[float] of
            len(label_names). Absent when `label_column` is None (prediction).

    Raises:
        NlpLstmError: a label not in `label_names` (names it and the known ones), a missing column.
    """
    import datasets

    if max_length < 1:
        raise NlpLstmError(f"max_length must be at least 1, got {max_length}")
    _require(ds, [text_column, label_column])
    names = [str(name) for name in label_names]
    index = {name: position for position, name in enumerate(names)}

    def class_of(value) -> int:
        try:
            return index[label_key(value)]
        except KeyError:
            raise NlpLstmError(
                f"label {value!r} in column {label_column!r} is not one of the known labels ({', '.join(names)}); "
                "encode with the label names of the training data, or retrain with this label"
            ) from None

    def multi_hot(value) -> list[float]:
        hot = [0.0] * len(names)
        for item in ([] if value is None else value if isinstance(value, (list, tuple)) else [value]):
            hot[class_of(item)] = 1.0
        return hot

    def encode_batch(batch: dict) -> dict:
        examples, _ = classification_inputs(tokenizer, ngrams, batch[text_column], max_length=max_length)
        out = {name: [example[name] for example in examples] for name in features if name != "labels"}
        if label_column is not None:
            convert = multi_hot if multi_label else class_of
            out["labels"] = [convert(value) for value in batch[label_column]]
        return out

    features = {"input_ids": datasets.List(datasets.Value("int32")), "length": datasets.Value("int32")}
    if ngrams is not None:
        features.update(ngram_ids=datasets.List(datasets.Value("int32")),
                        ngram_weights=datasets.List(datasets.Value("float32")))
    if label_column is not None:
        features["labels"] = datasets.List(datasets.Value("float32")) if multi_label else datasets.Value("int64")
    arguments = {
        "text_column": text_column, "label_column": label_column, "label_names": names,
        "multi_label": multi_label, "max_length": max_length,
        "ngrams": None if ngrams is None else ngrams.fingerprint,
    }
    return _map(ds, encode_batch, features, num_proc=num_proc,
                fingerprint=_fingerprint(ds, tokenizer, "encode_classification", arguments))


def extend_with_oovs(tokens: list[str], ids: list[int], *, unk_id: int, vocab_size: int) -> tuple[list[int], list[str]]:
    """Source ids over the extended vocabulary of a pointer-generator (See et al. 2017, section 2.2).

    Each out-of-vocabulary source token (id == unk_id) gets `vocab_size + i`, i its position in this
    example's `oovs` (first-occurrence order), so the model can copy it although it has no embedding.

    Returns:
        (extended ids, oovs)
    """
    oov_index: dict[str, int] = {}
    extended = []
    for token, token_id in zip(tokens, ids):
        if token_id == unk_id:
            token_id = vocab_size + oov_index.setdefault(token, len(oov_index))
        extended.append(token_id)
    return extended, list(oov_index)


def summarization_sources(tokenizer, texts: list[str], *, max_source_length: int) -> tuple[list[dict], int]:
    """Source texts -> pointer-generator encoder inputs.

    Returns:
        (examples, truncated): per text `src_ids` (in-vocabulary ids, unk_id for OOV, cut to
        `max_source_length`; an empty source becomes `[unk_id]`, which is no OOV: nothing to copy),
        `src_ext_ids` (each OOV as `vocab_size + its index in oovs`), `oovs` and `length`; and how
        many texts were cut.
    """
    unk_id, vocab_size = tokenizer.unk_id, tokenizer.vocab_size
    examples, truncated = [], 0
    for tokens, ids in tokenizer.tokenize_and_encode_batch(_texts(texts)):
        truncated += len(ids) > max_source_length
        tokens, ids = tokens[:max_source_length], ids[:max_source_length]
        extended, oovs = extend_with_oovs(tokens, ids, unk_id=unk_id, vocab_size=vocab_size)
        if not ids:
            ids, extended = [unk_id], [unk_id]
        examples.append({"src_ids": ids, "src_ext_ids": extended, "oovs": oovs, "length": len(ids)})
    return examples, truncated


def summarization_targets(tokenizer, texts: list[str], oovs: list[list[str]], *, max_target_length: int) -> list[dict]:
    """Reference summaries -> decoder targets, given each example's source `oovs`.

    Per text: `tgt_ids` (in-vocabulary ids, unk_id for OOV, cut to `max_target_length`, then `<eos>`
    unless the reference was cut: See et al. 2017 stop the target at the limit without a stop token,
    so a model never learns to end mid-phrase), `tgt_ext_ids` (target tokens that are source OOVs get
    their extended id, so the copy distribution can produce them; other OOVs stay unk_id) and
    `tgt_length` (eos included). No `<bos>`: the collate function puts it in front of the decoder input.
    """
    unk_id, vocab_size = tokenizer.unk_id, tokenizer.vocab_size
    targets = []
    for (tokens, ids), source_oovs in zip(tokenizer.tokenize_and_encode_batch(_texts(texts)), oovs):
        complete = len(ids) <= max_target_length
        tokens, ids = tokens[:max_target_length], ids[:max_target_length]
        oov_ids = {token: vocab_size + position for position, token in enumerate(source_oovs)}
        extended = [oov_ids.get(token, unk_id) if i == unk_id else i for token, i in zip(tokens, ids)]
        if complete:
            ids, extended = [*ids, EOS_ID], [*extended, EOS_ID]
        targets.append({"tgt_ids": ids, "tgt_ext_ids": extended, "tgt_length": len(ids)})
    return targets


def ids_to_tokens(ids, oovs, tokenizer) -> list[str]:
    """Extended output ids -> tokens: ids < vocab_size are tokenizer pieces, the rest copied source OOVs."""
    vocab_size = tokenizer.vocab_size
    return [tokenizer.id_to_token(i) if i < vocab_size else oovs[i - vocab_size] for i in ids]


def ids_to_text(ids, oovs, tokenizer) -> str:
    """Extended output ids -> text (the inverse of `summarization_sources` / `summarization_targets`)."""
    return tokenizer.detokenize(ids_to_tokens(ids, oovs, tokenizer))


def encode_summarization(
    ds,
    tokenizer,
    *,
    text_column: str,
    summary_column: str | None,
    max_source_length: int = 400,
    max_target_length: int = 30,
    num_proc: int | None = None,
):
    """Sources (and summaries) -> ids for a pointer-generator summarizer.

    Returns a `datasets.Dataset` with only these columns:
        src_ids: list[int] in-vocabulary ids (unk_id for OOV), truncated to `max_source_length`;
            an empty source becomes `[unk_id]`.
        src_ext_ids: the same with each OOV token as `vocab_size + its index in oovs`.
        oovs: list[str] source tokens outside the vocabulary, first-occurrence order (truncated source).
        length: len(src_ids).
        tgt_ids: (when summary_column) in-vocabulary target ids, unk_id for OOV, truncated to
            `max_target_length`; no bos/eos.
        tgt_ext_ids: the same, but target tokens that are source OOVs get their extended id
            (so the copy distribution can produce them); other OOVs stay unk_id.
        tgt_length: len(tgt_ids).
    """
    import datasets

    if max_source_length < 1 or max_target_length < 1:
        raise NlpLstmError(
            f"max_source_length and max_target_length must be at least 1, got {max_source_length} and {max_target_length}"
        )
    _require(ds, [text_column, summary_column])

    def encode_batch(batch: dict) -> dict:
        sources, _ = summarization_sources(tokenizer, batch[text_column], max_source_length=max_source_length)
        out = {name: [source[name] for source in sources] for name in ("src_ids", "src_ext_ids", "oovs", "length")}
        if summary_column is not None:
            targets = summarization_targets(tokenizer, batch[summary_column], out["oovs"],
                                            max_target_length=max_target_length)
            for name in ("tgt_ids", "tgt_ext_ids", "tgt_length"):
                out[name] = [target[name] for target in targets]
        return out

    ids_feature = datasets.List(datasets.Value("int32"))
    features = {
        "src_ids": ids_feature,
        "src_ext_ids": ids_feature,
        "oovs": datasets.List(datasets.Value("string")),
        "length": datasets.Value("int32"),
    }
    if summary_column is not None:
        features.update({"tgt_ids": ids_feature, "tgt_ext_ids": ids_feature, "tgt_length": datasets.Value("int32")})
    arguments = {
        "text_column": text_column, "summary_column": summary_column,
        "max_source_length": max_source_length, "max_target_length": max_target_length,
    }
    return _map(ds, encode_batch, features, num_proc=num_proc,
                fingerprint=_fingerprint(ds, tokenizer, "encode_summarization", arguments))
