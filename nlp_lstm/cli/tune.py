"""`nlp-lstm tune KIND`: parse options, call `nlp_lstm.tune` (a time-boxed search; docs/tune.md)."""

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from nlp_lstm.cli.common import data_source, run_stage
from nlp_lstm.cli.options import DATA, RUNTIME, TOKENIZER, Options, with_options


@with_options(DATA, TOKENIZER, RUNTIME)
def tune_command(
    context: typer.Context,
    options: Options,
    kind: Annotated[str, typer.Argument(help="Model kind to tune: classifier | summarizer | tagger.")],
    output_dir: Annotated[Path, typer.Option(
        "--output-dir", "-o", help="Search directory: study.db, trials/, best/ (the best model), report.md, best.toml.")],
    budget: Annotated[str, typer.Option(
        "--budget", "-b", help="Wall-clock time for everything, e.g. 600, 90s, 10m, 1h30m.")] = "10m",
    space: Annotated[Optional[Path], typer.Option(
        "--space", help="TOML file that narrows or widens the default search space (docs/tune.md).")] = None,
    text_column: Annotated[Optional[str], typer.Option(
        "--text-column", help="Column holding the input text (default: text; summarizer: document).")] = None,
    label_column: Annotated[Optional[str], typer.Option("--label-column", help="Classifier: the label column (default: label).")] = None,
    summary_column: Annotated[Optional[str], typer.Option(
        "--summary-column", help="Summarizer: the reference summary column (default: summary).")] = None,
    tokens_column: Annotated[Optional[str], typer.Option(
        "--tokens-column", help="Tagger, jsonl/parquet/hub: the column of token lists (default: tokens).")] = None,
    tag_column: Annotated[Optional[str], typer.Option(
        "--tag-column", help="Tagger: the column of tag lists (default: tags); CoNLL-U: upos, xpos or misc:KEY.")] = None,
    feature_column: Annotated[Optional[str], typer.Option(
        "--feature-column", help="Tagger, jsonl/parquet/hub: a column of 0/1 per token.")] = None,
    metric: Annotated[Optional[str], typer.Option(
        "--metric", help="Validation metric to maximise (classifier: macro_f1 | accuracy; summarizer: rougeL | rouge1 | "
                         "rouge2; tagger: span_f1 for span tags, else token_accuracy).")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Trials run in parallel processes sharing the study.")] = 1,
    pruner: Annotated[str, typer.Option("--pruner", help="hyperband | halving | median | none (docs/tune.md).")] = "hyperband",
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of every trial's training and of the sampler.")] = None,
    overrides: Annotated[Optional[List[str]], typer.Option(
        "--set", help="Pin a setting (not searched): SECTION.KEY=VALUE, e.g. --set model.num_layers=1 (sections: model, train).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the search in --output-dir (its study.db).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start a new search in a directory that holds one.")] = False,
) -> None:
    """Search the model's settings within a time budget; keep the best model, score it on the test split."""

    # The tagger takes --language as the spaCy rules that split raw text to tag, when it is given.
    # (By name: typer carries a click of its own, whose enum is not `click.core.ParameterSource`.)
    language_given = getattr(context.get_parameter_source("language"), "name", None) == "COMMANDLINE"

    def action():
        from dataclasses import replace

        import nlp_lstm
        from nlp_lstm.config import parse_override
        from nlp_lstm.stages.tune_kinds import tune_kind

        spec = tune_kind(kind)
        columns = {**spec.columns, **{name: value for name, value in (
            ("text_column", text_column), ("label_column", label_column), ("summary_column", summary_column))
            if value is not None}}
        tagged = {"tokens_column": tokens_column, "tag_column": tag_column, "feature_column": feature_column}
        given = [f"--{name.replace('_', '-')}" for name, value in tagged.items() if value is not None]
        if given and kind != "tagger":
            raise nlp_lstm.NlpLstmError(f"{', '.join(given)}: a tagger's option; a {kind} reads --text-column")
        source = replace(data_source(options, **columns), **{k: v for k, v in tagged.items() if v is not None})
        pinned: dict[str, dict] = {"model": {}, "train": {}}
        for text in overrides or []:
            (section, *keys), value = parse_override(text)
            if section not in pinned or len(keys) != 1:
                raise nlp_lstm.NlpLstmError(f"--set {text!r}: write model.KEY=VALUE or train.KEY=VALUE")
            pinned[section][keys[0]] = value
        if seed is not None:
            pinned["train"]["seed"] = seed
        settings = {"kind": options.tokenizer_kind, "vocab_size": options.vocab_size, "lang": options.language}
        if kind == "tagger":  # no subword tokenizer
            if language_given:
                pinned["model"].setdefault("language", settings["lang"])
            settings["lang"] = None
        summary = nlp_lstm.tune(
            kind, output_dir=output_dir, source=source, budget=budget, space_file=space, model=pinned["model"],
            training=pinned["train"], tokenizer_dir=options.tokenizer,
            tokenizer_settings={k: v for k, v in settings.items() if v is not None}, metric=metric, jobs=jobs,
            pruner=pruner, resume=resume, overwrite=overwrite, threads=options.threads, device=options.device,
            progress=not options.quiet, echo=lambda line: typer.echo(line, err=True),
        )
        best = summary["best"]
        counts = {}
        for row in summary["trials"]:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        typer.echo(f"{len(summary['trials'])} trials (" + ", ".join(f"{n} {state}" for state, n in counts.items())
                   + f"); best: trial {best['number']}, validation {summary['metric']} {best['value']:.4f}")
        if best.get("note"):
            typer.echo(best["note"])
        if summary["test"]:
            scores = "  ".join(f"{k} {v:.4f}" for k, v in summary["test"].items()
                               if k in ("accuracy", "macro_f1", "rouge1", "rouge2", "rougeL", "token_accuracy", "span_f1"))
            typer.echo(f"test: {scores}")
        typer.echo(f"best model: {best['model_dir']}; settings: {Path(output_dir) / 'best.toml'}; "
                   f"report: {Path(output_dir) / 'report.md'}")

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)

