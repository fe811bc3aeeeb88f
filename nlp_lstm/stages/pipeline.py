"""Run a pipeline file's stages (vocab -> encode -> train -> evaluate), skipping unchanged ones.

A pipeline is a TOML file (see `pipelines/`). Each stage declares its inputs (settings and data files)
and one output directory; a stage whose inputs hash to the value recorded in its output directory is
skipped, so editing `[train]` reruns training and evaluation but not tokenization (as in spaCy
projects / weasel).

Paths in a pipeline file (`[data]` files, `[model] init_from`, `[pipeline] run_dir`) are relative to
the working directory, the project root you run `nlp-lstm run` from, as are the `runs/<name>/` and
`vocab/<name>/` folders it writes; `pipelines/*.toml` name `data/...` and are run from the repository
root (`make demo`). A pipeline file is shared and copied, so `run` confines what it replaces: names
are plain names (one path component), and a stage replaces only a directory that `run` made (it holds
the stage marker `.stage.json`), a new one or an empty one, unless `--overwrite` is given.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from nlp_lstm.artifacts import atomic_write_json
from nlp_lstm.config import from_dict, TrainConfig
from nlp_lstm.data.sources import DataSource, content_fingerprint, file_digest
from nlp_lstm.decoding.beam_search import DecodeConfig
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.kinds import KINDS
from nlp_lstm.stages.kinds import STAGE_KINDS
from nlp_lstm.stages.tokenizer import vocab

MARKER = ".stage.json"
STAGES = ("vocab", "encode", "train", "evaluate")


@dataclass
class PipelineSection:
    name: str
    task: str = "classifier"  # a model kind with a pipeline (`PIPELINE_KINDS`)
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


PIPELINE_KINDS = {kind: stage for kind, stage in STAGE_KINDS.items() if stage.pipeline_train is not None}


@dataclass
class Pipeline:
    """A pipeline file, typed: every table is the dataclass the stage it feeds takes."""

    pipeline: PipelineSection
    data: DataSource
    tokenizer: TokenizerSection
    model: Any  # the task's model config dataclass (`nlp_lstm.kinds`)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    decoding: DecodeConfig | None = None  # a kind that decodes (summarizer): saved with the model, used by evaluate

    @property
    def run_dir(self) -> Path:
        return Path(self.pipeline.run_dir or f"runs/{self.pipeline.name}")


SECTIONS = {"pipeline": PipelineSection, "data": DataSource, "tokenizer": TokenizerSection, "train": TrainConfig,
            "evaluate": EvaluateSection, "decoding": DecodeConfig, "model": None}


def check_plain_name(value: str, *, where: str) -> None:
    """`[pipeline] name` and `[tokenizer] name` become folder names (runs/<name>, vocab/<name>): one
    path component, never empty, `.`, `..`, a path or a NUL."""
    if value in ("", ".", "..") or "\x00" in value or "/" in value or "\\" in value or Path(value).name != value:
        raise NlpLstmError(f"{where} name {value!r} is not a plain name; use one folder name such as "
                           "'sentiment' (letters, digits, '-', '_'), not a path")


def check_data_paths(source: DataSource, *, file: Path) -> None:
    """A relative data path that is missing from the working directory but present beside the pipeline
    file: say where paths are resolved (the working directory), and from where to run."""
    for key in ("train_file", "validation_file", "test_file"):
        value = getattr(source, key)
        if not value or Path(value).is_absolute() or Path(value).exists():
            continue
        if (file.parent / value).exists():
            raise NlpLstmError(f"{file} [data] {key} {value!r} is not in the working directory {Path.cwd()}: paths in "
                               "a pipeline file are relative to the directory `nlp-lstm run` is run from (the project "
                               f"root); run from there, or write the path as {str(file.parent / value)!r}")


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
    check_plain_name(header.name, where=f"{file} [pipeline]")
    if "\x00" in header.run_dir:
        raise NlpLstmError(f"{file} [pipeline] run_dir {header.run_dir!r} holds a NUL character; write a directory path")
    if header.task not in PIPELINE_KINDS:
        raise NlpLstmError(f"{file} [pipeline] task must be {' or '.join(PIPELINE_KINDS)}, got {header.task!r}")
    stage, spec = PIPELINE_KINDS[header.task], KINDS[header.task]
    sections: dict[str, Any] = {"pipeline": header}
    if "model" in data:
        data["model"] = stage.model_table(data["model"])  # sizes left out: the language model's, the vectors'
    data["train"] = {**stage.training_defaults, **data.get("train", {})}  # the kind's defaults, then the file's
    for name, cls in SECTIONS.items():
        if name in data and name != "pipeline":
            sections[name] = from_dict(cls or spec.config, data[name], where=f"{file} [{name}]")
    if "data" not in sections:
        raise NlpLstmError(f"{file}: missing table [data]; see pipelines/ for examples")
    sections.setdefault("model", spec.config())
    if "tokenizer" not in sections:  # needed only by a vocab stage: the vectors or the corpus bring the words
        sections["tokenizer"] = TokenizerSection(name=header.name)
        if "vocab" in stage.pipeline_inputs(Pipeline(**sections)):
            raise NlpLstmError(f"{file}: missing table [tokenizer]; see pipelines/ for examples")
    check_plain_name(sections["tokenizer"].name, where=f"{file} [tokenizer]")
    check_data_paths(sections["data"], file=file)
    if spec.decoding is None and "decoding" in sections:
        decoders = " and ".join(f"{kind}s" for kind, other in KINDS.items() if other.decoding is not None)
        raise NlpLstmError(f"{file}: [decoding] is for {decoders}; remove it from a {header.task} pipeline")
    stage.finish_pipeline(sections, file)
    return Pipeline(**sections)


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
    data_hash = content_fingerprint(source)
    decoding = asdict(pipe.decoding) if pipe.decoding else None
    hashes = {"vocab": _hash(data_hash, asdict(pipe.tokenizer))}
    hashes["encode"] = _hash(hashes["vocab"], getattr(pipe.model, "max_length", None),
                             getattr(pipe.model, "word_ngrams", None), getattr(pipe.model, "char_ngrams", None))
    hashes["train"] = _hash(hashes["encode"], asdict(pipe.model), asdict(pipe.train), decoding,
                            file_digest(getattr(pipe.model, "embeddings", None)))
    hashes["evaluate"] = _hash(hashes["train"], asdict(pipe.evaluate))
    return hashes


def check_output(output: Path, *, stage: str, overwrite: bool) -> None:
    """Stage `stage` may write `output` if it is new, empty or made by `run` (it holds the marker); any
    other existing directory only with `overwrite`."""
    if output.exists() and not output.is_dir():
        raise NlpLstmError(f"[{stage}] output {output} is a file; move it away or choose another run_dir")
    if output.is_dir() and not (output / MARKER).is_file() and any(output.iterdir()) and not overwrite:
        raise NlpLstmError(f"[{stage}] output {output} exists and was not made by `nlp-lstm run` (no {MARKER}); "
                           "pass --overwrite to let the stage replace it, or choose another run_dir or name")


def claim_output(output: Path, *, stage: str) -> None:
    """Mark `output` as `run`'s before its stage writes, so a stage that fails leaves a directory that
    the next `run` may replace."""
    if not (output / MARKER).is_file():
        atomic_write_json(output / MARKER, {"stage": stage, "inputs": None})


def run_pipeline(path: str | Path, *, force: bool = False, overwrite: bool = False, device: str = "auto",
                 progress: bool = True, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage whose inputs changed; return the evaluation metrics.

    `overwrite` lets a stage replace an existing directory that `run` did not make (see the module
    docstring); without it such a directory is refused before anything is written.
    """
    pipe = load_pipeline(path)
    source = pipe.data
    run_dir = pipe.run_dir
    vocab_dir = Path("vocab") / pipe.tokenizer.name
    encoded_dir, model_dir, eval_dir = run_dir / "encoded", run_dir / "model", run_dir / "evaluation"
    stage = PIPELINE_KINDS[pipe.pipeline.task]
    hashes = stage_hashes(pipe)
    settings = {k: v for k, v in asdict(pipe.tokenizer).items() if k != "name"}

    def stage_vocab():
        vocab(source, vocab_dir, **settings)

    def stage_encode():
        stage.pipeline_encode(pipe, source=source, vocab_dir=vocab_dir, encoded_dir=encoded_dir)

    def stage_train():
        stage.pipeline_train(pipe, source=source, model_dir=model_dir, vocab_dir=vocab_dir, encoded_dir=encoded_dir,
                             device=device, progress=progress)

    results: dict[str, Any] = {}

    def stage_evaluate():
        eval_dir.mkdir(parents=True, exist_ok=True)
        results.update(stage.evaluate(model_dir, source, split=pipe.evaluate.split, plots_dir=eval_dir, device=device))
        atomic_write_json(eval_dir / "metrics.json", results)

    before = {"vocab": (vocab_dir, stage_vocab), "encode": (encoded_dir, stage_encode)}
    stages: list[tuple[str, Path, Callable[[], None]]] = [(name, *before[name]) for name in stage.pipeline_inputs(pipe)]
    stages += [("train", model_dir, stage_train), ("evaluate", eval_dir, stage_evaluate)]
    for name, output, _ in stages:  # every output is checked before any stage writes
        if force or not _up_to_date(output, hashes[name]):
            check_output(output, stage=name, overwrite=overwrite)
    for name, output, action in stages:
        if not force and _up_to_date(output, hashes[name]):
            echo(f"[{name}] skipped: inputs unchanged ({output})")
            continue
        claim_output(output, stage=name)
        echo(f"[{name}] running -> {output}")
        action()
        atomic_write_json(output / MARKER, {"stage": name, "inputs": hashes[name]})
    if not results:
        results.update(json.loads((eval_dir / "metrics.json").read_text()))
    return results
