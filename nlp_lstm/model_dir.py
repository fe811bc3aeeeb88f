"""Model directories (DESIGN section 4): `config.json` + `model.safetensors` + `tokenizer/`.

`config.json` holds everything needed to rebuild the model: its kind, the model config, label names,
length limits and the tokenizer (copied into `tokenizer/`). Loading rebuilds from JSON and reads
weights with safetensors only; nothing is ever unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nlp_lstm.artifacts import atomic_write_json, load_tensors, read_json, save_tensors
from nlp_lstm.data.tokenize import Tokenizer, load_tokenizer
from nlp_lstm.errors import NlpLstmError

FORMAT_VERSION = 1
KINDS = ("classifier", "summarizer")


def save_model(directory: Path, *, kind: str, state: dict[str, torch.Tensor], config: dict[str, Any],
               tokenizer: Tokenizer | None) -> None:
    """Write a complete model directory into `directory` (callers stage it and swap it into place)."""
    directory.mkdir(parents=True, exist_ok=True)
    save_tensors(state, directory / "model.safetensors", metadata={"kind": kind})
    if tokenizer is not None:
        tokenizer.save(directory / "tokenizer")
    atomic_write_json(directory / "config.json", {"kind": kind, "format_version": FORMAT_VERSION, **config})


def read_model_config(directory: str | Path, *, expect: str | None = None) -> dict[str, Any]:
    """Check `directory` is a model directory (of kind `expect`) and return its config."""
    path = Path(directory)
    if not path.exists():
        raise NlpLstmError(f"model directory {path} does not exist; pass the --output-dir of `nlp-lstm train`")
    if not path.is_dir():
        raise NlpLstmError(f"{path} is a file, not a model directory; pass the --output-dir of `nlp-lstm train`")
    if not (path / "config.json").is_file():
        raise NlpLstmError(f"{path} is not a model directory (no config.json); pass the --output-dir of `nlp-lstm train`")
    config = read_json(path / "config.json", what="model config")
    kind = config.get("kind")
    if kind not in KINDS:
        raise NlpLstmError(f"{path / 'config.json'}: unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
    if expect is not None and kind != expect:
        command = "summarize" if kind == "summarizer" else "classify"
        raise NlpLstmError(f"{path} holds a {kind} model, not a {expect}; use `nlp-lstm {command}` with it")
    if not (path / "model.safetensors").is_file():
        raise NlpLstmError(f"{path} is missing model.safetensors; re-train or copy the whole model directory")
    return config


def load_state(directory: Path, module: torch.nn.Module) -> None:
    """Load `model.safetensors` into `module`, naming the file on any mismatch."""
    state = load_tensors(directory / "model.safetensors")
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise NlpLstmError(
            f"{directory / 'model.safetensors'} does not match {directory / 'config.json'} ({first}); "
            "re-save the model directory as a whole"
        ) from None


def load_model_tokenizer(directory: Path, config: dict[str, Any]) -> Tokenizer:
    tokenizer = load_tokenizer(directory / "tokenizer")
    expected = config["model"].get("vocab_size")
    if expected is not None and tokenizer.vocab_size != expected:
        raise NlpLstmError(
            f"{directory / 'tokenizer'} has {tokenizer.vocab_size} tokens but the model expects {expected}; "
            "the tokenizer files do not belong to this model"
        )
    return tokenizer
