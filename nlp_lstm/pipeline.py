"""Run a pipeline file's stages (vocab -> encode -> train -> evaluate), skipping unchanged ones.

A pipeline is a TOML file (see `pipelines/`). Each stage declares its inputs (settings and data files)
and one output directory; a stage whose inputs hash to the value recorded in its output directory is
skipped, so editing `[train]` reruns training and evaluation but not tokenization (as in spaCy
projects / weasel).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from nlp_lstm.artifacts import atomic_write_json
from nlp_lstm.config import TrainConfig, from_dict
from nlp_lstm.data.columns import Binarize
from nlp_lstm.data.sources import DataSource
from nlp_lstm.errors import NlpLstmError

MARKER = ".stage.json"
STAGES = ("vocab", "encode", "train", "evaluate")


@dataclass
class PipelineSection:
    name: str
    task: str = "classifier"  # classifier | summarizer
    run_dir: str = ""  # default runs/<name>


@dataclass
class TokenizerSection:
    name: str
    kind: str = "spacy"
    vocab_size: int = 20000
    min_freq: int = 2
    lowercase: bool = True
    model_type: str = "unigram"


@dataclass
class EvaluateSection:
    split: str = "test"


@dataclass
class Pipeline:
    pipeline: PipelineSection
    data: DataSource
    tokenizer: TokenizerSection
    model: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    summarizer: dict[str, Any] = field(default_factory=dict)  # max_source_length, max_target_length, decoding

    @property
    def run_dir(self) -> Path:
        return Path(self.pipeline.run_dir or f"runs/{self.pipeline.name}")


def load_pipeline(path: str | Path) -> Pipeline:
    file = Path(path)
    if not file.is_file():
        raise NlpLstmError(f"pipeline file {file} not found; see pipelines/ for examples")
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise NlpLstmError(f"{file} is not valid TOML ({error}); fix the syntax") from None
    pipeline = from_dict(Pipeline, data, where=str(file))
    if pipeline.pipeline.task not in ("classifier", "summarizer"):
        raise NlpLstmError(f"{file} [pipeline] task must be classifier or summarizer, got {pipeline.pipeline.task!r}")
    if pipeline.pipeline.task == "summarizer":
        pipeline.data.label_column = None  # TOML has no null; a summarizer reads no label column
    return pipeline


def _file_digest(path: str | None) -> str | None:
    if not path or not Path(path).is_file():
        return path
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _up_to_date(output: Path, inputs_hash: str) -> bool:
    marker = output / MARKER
    try:
        return json.loads(marker.read_text())["inputs"] == inputs_hash
    except (OSError, ValueError, KeyError):
        return False


def run_pipeline(path: str | Path, *, force: bool = False, device: str = "auto", progress: bool = True,
                 echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage whose inputs changed; return the evaluation metrics."""
    import nlp_lstm

    pipe = load_pipeline(path)
    source = pipe.data
    data_hash = _hash(asdict(source), [_file_digest(f) for f in (source.train_file, source.validation_file, source.test_file)])
    run_dir = pipe.run_dir
    vocab_dir = Path("vocab") / pipe.tokenizer.name
    encoded_dir, model_dir, eval_dir = run_dir / "encoded", run_dir / "model", run_dir / "evaluation"
    summarizer = pipe.pipeline.task == "summarizer"

    hashes = {"vocab": _hash(data_hash, asdict(pipe.tokenizer))}
    hashes["encode"] = _hash(hashes["vocab"], pipe.train.max_length, pipe.summarizer)
    hashes["train"] = _hash(hashes["encode"], pipe.model, asdict(pipe.train))
    hashes["evaluate"] = _hash(hashes["train"], asdict(pipe.evaluate), pipe.summarizer)
    settings = {k: v for k, v in asdict(pipe.tokenizer).items() if k != "name"}

    def stage_vocab():
        nlp_lstm.vocab(source, vocab_dir, **settings)

    def stage_encode():
        nlp_lstm.encode(source, vocab_dir, encoded_dir, max_length=pipe.train.max_length, overwrite=True)

    def stage_train():
        if summarizer:
            nlp_lstm.train_summarizer(output_dir=model_dir, source=source, tokenizer_dir=vocab_dir, model=pipe.model,
                                      training=pipe.train, overwrite=True, device=device, progress=progress,
                                      **_length_settings(pipe.summarizer))
        else:
            nlp_lstm.train(output_dir=model_dir, encoded_dir=encoded_dir, model=pipe.model, training=pipe.train,
                           overwrite=True, device=device, progress=progress)

    results: dict[str, Any] = {}

    def stage_evaluate():
        eval_dir.mkdir(parents=True, exist_ok=True)
        results.update(nlp_lstm.evaluate(model_dir, source, split=pipe.evaluate.split, plots_dir=eval_dir,
                                         device=device, **_decode_settings(pipe.summarizer)))
        atomic_write_json(eval_dir / "metrics.json", results)

    stages: list[tuple[str, Path, Callable[[], None]]] = [("vocab", vocab_dir, stage_vocab)]
    if not summarizer:
        stages.append(("encode", encoded_dir, stage_encode))
    stages += [("train", model_dir, stage_train), ("evaluate", eval_dir, stage_evaluate)]
    for name, output, action in stages:
        if not force and _up_to_date(output, hashes[name]):
            echo(f"[{name}] skipped: inputs unchanged ({output})")
            continue
        echo(f"[{name}] running -> {output}")
        action()
        atomic_write_json(output / MARKER, {"stage": name, "inputs": hashes[name]})
    if not results:
        results.update(json.loads((eval_dir / "metrics.json").read_text()))
    return results


def _length_settings(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: settings[k] for k in ("max_source_length", "max_target_length") if k in settings}


def _decode_settings(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: settings[k] for k in ("beam_size", "max_length", "min_length") if k in settings}
