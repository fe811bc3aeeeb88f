"""A trained summarizer with its tokenizer and decoding settings: what `nlp_lstm.load` returns for one."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from nlp_lstm.data.collate import collate_summarization, to_device
from nlp_lstm.data.encode import ids_to_text, ids_to_tokens, summarization_sources
from nlp_lstm.data.readable import Lexicon, load_lexicon, readable_summary
from nlp_lstm.data.specials import SPECIALS
from nlp_lstm.data.tokenize import Tokenizer
from nlp_lstm.decoding.beam_search import DecodeConfig, beam_search, decoding_mode
from nlp_lstm.decoding.greedy import greedy_decode_config
from nlp_lstm.decoding.shortlist import shortlist_batch
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.classifier import as_texts
from nlp_lstm.inference.clip import clip_texts
from nlp_lstm.inference.explain_summarizer import explain_summary
from nlp_lstm.model_dir import ModelFile, load_model_tokenizer, load_state
from nlp_lstm.models.summarizer import Summarizer


class SummarizerPredictor:
    """A trained `Summarizer` with its tokenizer, saved decoding settings (`DecodeConfig`) and the
    lexicon that makes its summaries readable (`data/readable.py`: whole words, written case)."""

    kind = "summarizer"

    def __init__(self, model: Summarizer, tokenizer: Tokenizer, *, decoding: DecodeConfig | None = None,
                 device: torch.device | None = None, lexicon: Lexicon | None = None) -> None:
        self.device = device or torch.device("cpu")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.decoding = decoding or DecodeConfig(max_length=model.config.max_target_length)
        self.lexicon = lexicon

    def text(self, ids: list[int], example: dict[str, Any], source: str) -> str:
        """Output ids -> the summary a reader sees: detokenized, then (with a lexicon) whole words in
        their written case."""
        summary = ids_to_text(ids, example["oovs"], self.tokenizer)
        if self.lexicon is None:
            return summary
        return readable_summary(summary, source, self.lexicon,
                                restore_case=bool(self.tokenizer.settings.get("lowercase", True)))

    @property
    def max_source_length(self) -> int:
        return self.model.config.max_source_length

    @property
    def max_target_length(self) -> int:
        return self.model.config.max_target_length

    @property
    def max_input_length(self) -> int:
        """Tokens of a text the model reads (the rest is truncated); the same name on every predictor."""
        return self.max_source_length

    @classmethod
    def load(cls, path: Path, model_file: ModelFile, *, device: torch.device) -> "SummarizerPredictor":
        return load_summarizer(path, model_file, device=device)

    def predict_batch(self, items: list[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
        """What the server runs per batch. Items are `(text, decoding overrides)`; per item
        `{"summary", "truncated"}`. Texts sharing decoding overrides are decoded together, as one batch."""
        limit = self.max_source_length
        clipped, truncated = clip_texts([text for text, _ in items], self.tokenizer, limit)
        unknown = [i for i, cut in enumerate(truncated) if cut is None]
        for i, ids in zip(unknown, self.tokenizer.encode_batch([clipped[i] for i in unknown])):
            truncated[i] = len(ids) > limit
        groups: dict[tuple, list[int]] = {}
        for index, (_, overrides) in enumerate(items):
            groups.setdefault(tuple(sorted(overrides.items())), []).append(index)
        rows: list[dict[str, Any]] = [{}] * len(items)
        for overrides, indices in groups.items():
            summaries = self.summarize([clipped[i] for i in indices], batch_size=len(indices), **dict(overrides))
            for index, summary in zip(indices, summaries):
                rows[index] = {"summary": summary, "truncated": truncated[index]}
        return rows

    def encode_texts(self, texts: Sequence[str], *, warn: bool = True) -> list[dict[str, Any]]:
        """Texts -> encoded examples (`src_ids`, `src_ext_ids`, `oovs`, `length`), as training encodes them."""
        examples, truncated = summarization_sources(self.tokenizer, list(texts), max_source_length=self.max_source_length)
        if truncated and warn:
            warnings.warn(
                f"{truncated} text(s) longer than the model's source limit of {self.max_source_length} tokens "
                "were truncated", stacklevel=3,
            )
        return examples

    def decode(self, examples: list[dict[str, Any]], config: DecodeConfig) -> list[list[int]]:
        """Extended output ids for a batch of encoded examples (beam size 1: greedy)."""
        batch = to_device(collate_summarization(examples), self.device)
        model, to_ids = self.model, None
        if config.shortlist and config.shortlist + len(SPECIALS) < self.model.config.vocab_size:
            if not hasattr(self.model, "generator"):
                raise NlpLstmError("--shortlist is for the PyTorch runtime; pass --shortlist 0 with --runtime onnx")
            model, batch, to_ids = shortlist_batch(self.model, batch, config.shortlist)
        decode = greedy_decode_config if config.beam_size == 1 else beam_search
        outputs = decode(model, batch, config)
        return to_ids(outputs) if to_ids else outputs

    def decode_config(self, **overrides: Any) -> DecodeConfig:
        """The model's saved decoding settings with `overrides` (None values ignored) applied."""
        return replace(self.decoding, **{key: value for key, value in overrides.items() if value is not None})

    def summarize(self, texts: str | Iterable[str], *, batch_size: int = 32, **decoding: Any) -> list[str]:
        """One summary per text, in input order. An empty or whitespace-only text gets "" (with a warning).

        `decoding` overrides fields of the model's saved `DecodeConfig` (`beam_size`, `min_length`,
        `max_length`, `length_penalty`, `no_repeat_ngram_size`, `coverage_penalty`, `shortlist`).
        """
        texts = as_texts(texts)
        config = self.decode_config(**decoding)
        if batch_size < 1:
            raise NlpLstmError(f"batch_size={batch_size} is invalid: use 1 or more")
        summaries = [""] * len(texts)
        present = [i for i, text in enumerate(texts) if text is not None and text.strip()]
        if len(present) < len(texts):
            warnings.warn(
                f"{len(texts) - len(present)} empty or whitespace-only text(s): their summary is empty", stacklevel=2
            )
        examples = self.encode_texts([texts[i] for i in present])
        order = sorted(range(len(examples)), key=lambda i: examples[i]["length"])  # less padding per batch
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            outputs = self.decode([examples[i] for i in chunk], config)
            for position, ids in zip(chunk, outputs):
                summaries[present[position]] = self.text(ids, examples[position], texts[present[position]])
        return summaries

    def attention(self, text: str, **decoding: Any) -> dict[str, Any]:
        """Decode one text, then replay the output to read the attention and p_gen of every output step.

        Returns:
            `source_tokens` (S,), `output_tokens` (T,), `attention` `(T, S)` tensor, `p_gen` `(T,)` tensor
            (ones for a model without copying), and the `summary` text.
        """
        if not text or not text.strip():
            raise NlpLstmError("the first text is empty: there is no attention to plot; pass a non-empty text")
        [example] = self.encode_texts([text])
        config = self.decode_config(**decoding)
        [ids] = self.decode([example], config)
        batch = to_device(collate_summarization([example]), self.device)
        rows, gates = [], []
        with decoding_mode(self.model):
            encoder_output = self.model.encode(batch["src_ids"], batch["src_lengths"], batch["src_pad_mask"])
            state = self.model.init_state(encoder_output)
            previous = torch.tensor([self.tokenizer.bos_id], device=self.device)
            for token in ids:
                _, state, attention, p_gen = self.model.step(
                    prev_ids=previous, state=state, encoder_output=encoder_output,
                    src_ext_ids=batch["src_ext_ids"], max_oovs=int(batch["max_oovs"]),
                )
                rows.append(attention[0].cpu())  # (S,)
                gates.append(p_gen[0].cpu())
                previous = torch.tensor([token], device=self.device)
        source_tokens = ids_to_tokens(example["src_ext_ids"], example["oovs"], self.tokenizer)
        source_length = len(source_tokens)
        return {
            "source_tokens": source_tokens,
            "output_tokens": ids_to_tokens(ids, example["oovs"], self.tokenizer),
            "attention": torch.stack(rows) if rows else torch.zeros(0, source_length),
            "p_gen": torch.stack(gates) if gates else torch.zeros(0),
            "summary": self.text(ids, example, text),
        }

    def explain(self, texts: str | Iterable[str], **decoding: Any) -> list[dict[str, Any]]:
        """Per text, per output word: attention over the source words, p_gen, and what it was copied
        from (`inference/explain_summarizer.py`); `decoding` overrides the saved settings."""
        return explain_summary(self, as_texts(texts), **decoding)

    def plot_attention(self, text: str, path: str | Path, **decoding: Any) -> None:
        """Write a PNG heatmap of `text`'s attention, with the p_gen strip when the model copies."""
        from nlp_lstm.plots import plot_attention  # matplotlib costs ~0.7 s of start-up: only when a plot is asked for

        found = self.attention(text, **decoding)
        if not found["output_tokens"]:
            raise NlpLstmError("the summary of the first text is empty: there is no attention to plot")
        plot_attention(
            found["attention"], found["source_tokens"], found["output_tokens"], path,
            p_gen=found["p_gen"].tolist() if self.model.config.copy else None,
        )


def load_summarizer(path: Path, model_file: ModelFile, *, device: torch.device) -> SummarizerPredictor:
    """Rebuild a `SummarizerPredictor` from a model directory whose `config.json` was already read."""
    model = Summarizer(model_file.model)
    load_state(path, model)
    return SummarizerPredictor(model, load_model_tokenizer(path, model_file), decoding=model_file.decoding,
                               device=device, lexicon=load_lexicon(path))
