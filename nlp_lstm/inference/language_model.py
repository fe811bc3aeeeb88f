"""A pretrained language model with its tokenizer: what `nlp_lstm.load` returns for one.

A quick sanity check a user will try: `perplexity(texts)` (lower is better; compare it with the
validation perplexity in `metrics.json`) and `sample(prompt)`, a continuation by the forward model.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from nlp_lstm.data.collate import collate_classification, to_device
from nlp_lstm.data.encode import classification_ids
from nlp_lstm.data.tokenize import Tokenizer
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.classifier import as_texts
from nlp_lstm.model_dir import ModelFile, load_model_tokenizer, load_state
from nlp_lstm.models.language_model import LanguageModel

MAX_LENGTH = 512  # tokens scored per text


class LanguageModelPredictor:
    kind = "language_model"

    def __init__(self, model: LanguageModel, tokenizer: Tokenizer, *, device: torch.device | None = None) -> None:
        self.device = device or torch.device("cpu")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer

    @property
    def max_input_length(self) -> int:
        """Tokens of a text the model reads (the rest is not scored); the same name on every predictor."""
        return MAX_LENGTH

    @classmethod
    def load(cls, path: Path, model_file: ModelFile, *, device: torch.device) -> "LanguageModelPredictor":
        return load_language_model(path, model_file, device=device)

    @torch.no_grad()
    def perplexity(self, texts: str | Iterable[str], *, direction: str = "both") -> float:
        """exp(mean NLL per predicted token) over `texts` (forward, backward, or both directions)."""
        ids, _ = classification_ids(self.tokenizer, as_texts(texts), max_length=MAX_LENGTH)
        batch = to_device(collate_classification([{"input_ids": row, "length": len(row)} for row in ids]), self.device)
        return self.model.perplexity(batch["input_ids"], batch["lengths"], batch["pad_mask"], direction=direction)

    def sample(self, prompt: str = "", *, max_new_tokens: int = 30, temperature: float = 1.0, seed: int | None = 0) -> str:
        """The prompt continued by the forward model (seeded: the same call gives the same text)."""
        if max_new_tokens < 1:
            raise NlpLstmError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        prompt_ids = self.tokenizer.encode(prompt) if prompt.strip() else []
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        new = self.model.sample(prompt_ids, max_new_tokens, temperature=temperature, generator=generator)
        return self.tokenizer.decode(new)


def load_language_model(path: Path, model_file: ModelFile, *, device: torch.device) -> LanguageModelPredictor:
    model = LanguageModel(model_file.model)
    load_state(path, model)
    return LanguageModelPredictor(model, load_model_tokenizer(path, model_file), device=device)
