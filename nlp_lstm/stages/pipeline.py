"""Run a pipeline file's stages (vocab -> encode -> train -> evaluate), skipping unchanged ones.

A pipeline is a TOML file (see `pipelines/`). Each stage declares its inputs (settings and data files)
and one output directory; a stage whose inputs hash to the value recorded in its output directory is
skipped, so editing `[train]` reruns training and evaluation but not tokenization (as in spaCy
projects / weasel).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from nlp_lstm.artifacts import atomic_write_json
from nlp_lstm.config import from_dict, TrainConfig
from nlp_lstm.data.sources import DataSource
from nlp_lstm.decoding.beam_search import DecodeConfig
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.classifier import ClassifierConfig
from nlp_lstm.models.summarizer import SummarizerConfig
from nlp_lstm.stages.classification import encode, evaluate_classifier, train
from nlp_lstm.stages.language_model import with_encoder_sizes
from nlp_lstm.stages.summarization import evaluate_summarizer, train_summarizer
from nlp_lstm.stages.tokenizer import vocab

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
    language: str = "en"  # spaCy: the language whose tokenizer rules split the words


@dataclass
class EvaluateSection:
    split: str = "test"


MODEL_CONFIGS = {"classifier": ClassifierConfig, "summarizer": SummarizerConfig}


@dataclass
class Pipeline:
    """A pipeline file, typed: every table is the dataclass the stage it feeds takes."""

    pipeline: PipelineSection
    data: DataSource
    tokenizer: TokenizerSection
    model: ClassifierConfig | SummarizerConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    decoding: DecodeConfig | None = None  # summarizer: saved with the model, used by evaluate

    @property
    def run_dir(self) -> Path:
        return Path(self.pipeline.run_dir or f"runs/{self.pipeline.name}")


SECTIONS = {"pipeline": PipelineSection, "data": DataSource, "tokenizer": TokenizerSection, "train": TrainConfig,
            "evaluate": EvaluateSection, "decoding": DecodeConfig, "model": None}


def load_pipeline(path: str | Path) -> Pipeline:
    file = Path(path)
    if not file.is_file():
        raise NlpLstmError(f"pipeline file {file} not found; see pipelines/ for examples")
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise NlpLstmError(f"{file} is not valid TOML ({error}); fix the syntax") from None
    for name in data:
        if name not in SECTIONS:
            near = difflib.get_close_matches(name, SECTIONS, n=1)
            hint = f"did you mean [{near[0]}]?" if near else f"use {', '.join(f'[{s}]' for s in SECTIONS)}"
            raise NlpLstmError(f"{file}: unknown table [{name}]; {hint}")
    if "pipeline" not in data:
        raise NlpLstmError(f"{file}: missing table [pipeline]; see pipelines/ for examples")
    header = from_dict(PipelineSection, data["pipeline"], where=f"{file} [pipeline]")
    if header.task not in MODEL_CONFIGS:
        raise NlpLstmError(f"{file} [pipeline] task must be classifier or summarizer, got {header.task!r}")
    sections: dict[str, Any] = {"pipeline": header}
    if header.task == "classifier" and data.get("model", {}).get("init_from"):
        data["model"] = with_encoder_sizes(data["model"]["init_from"], data["model"])  # sizes not given: the LM's
    for name, cls in SECTIONS.items():
        if name in data and name != "pipeline":
            sections[name] = from_dict(cls or MODEL_CONFIGS[header.task], data[name], where=f"{file} [{name}]")
    for name in ("data", "tokenizer"):
        if name not in sections:
            raise NlpLstmError(f"{file}: missing table [{name}]; see pipelines/ for examples")
    sections.setdefault("model", MODEL_CONFIGS[header.task]())
    if header.task == "summarizer":
        sections["data"] = replace(sections["data"], label_column=None)  # TOML has no null; no label column here
        model = sections["model"]
        sections.setdefault("decoding", DecodeConfig(max_length=model.max_target_length))
    elif "decoding" in sections:
        raise NlpLstmError(f"{file}: [decoding] is for summarizers; remove it from a classifier pipeline")
    return Pipeline(**sections)


def _file_digest(path: str | None) -> str | None:
    """The file's content hash (its name is no input: a clone elsewhere gets the same markers)."""
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


def stage_hashes(pipe: Pipeline) -> dict[str, str]:
    """Each stage's inputs hashed: its settings and the content of its data files (never their
    location or time), chained, so a stage reruns when anything upstream of it changed."""
    source = pipe.data
    files = {f"{split}_file": _file_digest(getattr(source, f"{split}_file")) for split in ("train", "validation", "test")}
    data_hash = _hash({**asdict(source), **files})
    decoding = asdict(pipe.decoding) if pipe.decoding else None
    hashes = {"vocab": _hash(data_hash, asdict(pipe.tokenizer))}
    hashes["encode"] = _hash(hashes["vocab"], getattr(pipe.model, "max_length", None))
    hashes["train"] = _hash(hashes["encode"], asdict(pipe.model), asdict(pipe.train), decoding)
    hashes["evaluate"] = _hash(hashes["train"], asdict(pipe.evaluate))
    return hashes


def run_pipeline(path: str | Path, *, force: bool = False, device: str = "auto", progress: bool = True,
                 echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage whose inputs changed; return the evaluation metrics."""
    pipe = load_pipeline(path)
    source = pipe.data
    run_dir = pipe.run_dir
    vocab_dir = Path("vocab") / pipe.tokenizer.name
    encoded_dir, model_dir, eval_dir = run_dir / "encoded", run_dir / "model", run_dir / "evaluation"
    summarizer = pipe.pipeline.task == "summarizer"
    hashes = stage_hashes(pipe)
    settings = {k: v for k, v in asdict(pipe.tokenizer).items() if k != "name"}

    def stage_vocab():
        vocab(source, vocab_dir, **settings)

    def stage_encode():
        encode(source, vocab_dir, encoded_dir, max_length=pipe.model.max_length, word_ngrams=pipe.model.word_ngrams,
               overwrite=True)

    def stage_train():
        if summarizer:
            train_summarizer(output_dir=model_dir, source=source, tokenizer_dir=vocab_dir, model=pipe.model,
                             training=pipe.train, decoding=pipe.decoding, overwrite=True, device=device,
                             progress=progress)
        else:
            train(output_dir=model_dir, encoded_dir=encoded_dir, model=pipe.model, training=pipe.train,
                  overwrite=True, device=device, progress=progress)

    results: dict[str, Any] = {}

    def stage_evaluate():
        eval_dir.mkdir(parents=True, exist_ok=True)
        evaluate = evaluate_summarizer if summarizer else evaluate_classifier
        results.update(evaluate(model_dir, source, split=pipe.evaluate.split, plots_dir=eval_dir, device=device))
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
