"""`tune`: a time-boxed search over a model kind's `[model]` and `[train]` settings (Optuna).

    prepare the data once -> trials (TPE proposes; the training loop's epoch events feed the pruner)
    -> keep the best trial's model as DIR/best/ -> score it on the test split -> report

Each trial is the kind's own `TrainingStage` (`stages/run.py`) scored on the validation split only:
the test split is dropped from the prepared data before any trial and read once, by the best model,
at the end. In a new study the first trial is the `train` command's defaults (every searched setting
at its default value, where the space holds it), so the search starts from the defaults' validation
score and keeps them when nothing beats them. Trials are scored after the kind's `finish` (for the
classifier: the linear part fitted and stacked, temperature-scaled), i.e. the model `train` saves.

The budget is wall-clock time for everything: data preparation, trials, scoring the best model and
the report. A trial still running when the search's share of it is spent is stopped and not counted;
a trial whose measured speed says it cannot end in the time left is pruned after a few steps ("too
slow"), and an Optuna pruner (Hyperband by default; `--pruner`) stops a trial whose score
after an epoch ranks low among the trials before it. The study lives in `DIR/study.db` (SQLite,
Optuna's RDB storage): every finished trial is committed at once, so an interrupt loses none,
`--resume` continues, and `--jobs N` processes (or two commands) share it.

Kept, not retrained: a trial trains with the run's seed on the same data a retraining would use, so
retraining would rebuild the same weights on one thread at the cost of another training; the best
trial's model directory is copied to DIR/best/ instead.

Reproducibility: the same seed and budget propose the same sequence of settings (TPE is seeded) as
long as the same trials finish; which trials finish before the budget ends depends on the machine's
speed, and with `--jobs` > 1 also on the order in which the processes report.
"""

from __future__ import annotations

import math
import re
import shutil
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator

from nlp_lstm.artifacts import atomic_write_json, atomic_write_text, read_json, staged_directory
from nlp_lstm.config import TrainConfig, from_dict
from nlp_lstm.data.sources import DataSource, content_fingerprint
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.model_card import write_model_card
from nlp_lstm.model_dir import read_model_config
from nlp_lstm.progress import datasets_bars, progress_bar
from nlp_lstm.stages.search_space import build_space, classes_for, read_space_file
from nlp_lstm.stages.tune_kinds import TUNE_KINDS, tune_kind
from nlp_lstm.stages.tune_report import importances, markdown_report, pipeline_toml, plain_name, plot_search, trial_rows
from nlp_lstm.stages.tune_search import (STUDY_FILE, SearchPlan, TrialRunner, WorkerTimes, collect_workers,
                                         default_params, kept_trial, open_study, search, start_workers)
from nlp_lstm.threads import default_threads

PRUNERS = ("halving", "hyperband", "median", "none")


def parse_budget(budget: str | float | int) -> float:
    """Seconds from `600`, `"600"`, `"90s"`, `"10m"`, `"1h30m"`."""
    if isinstance(budget, (int, float)) and not isinstance(budget, bool):
        seconds = float(budget)
    else:
        text = str(budget).strip().lower()
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", text)
        if not text or parts is None:
            raise NlpLstmError(f"--budget {budget!r} is not a duration; write e.g. 600, 90s, 10m or 1h30m")
        seconds = sum(float(value) * unit for value, unit in zip(parts.groups(), (3600, 60, 1)) if value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise NlpLstmError(f"--budget must be a positive duration, got {budget!r}; write e.g. 10m")
    return seconds


def prepare_output(output: Path, *, resume: bool, overwrite: bool) -> None:
    study = output / STUDY_FILE
    if resume:
        if not study.is_file():
            raise NlpLstmError(f"--resume: no study in {output} ({STUDY_FILE} is missing); start without --resume")
        return
    if study.is_file() and not overwrite:
        raise NlpLstmError(f"{output} holds a search already ({STUDY_FILE}); pass --resume to continue it or "
                           "--overwrite to start a new one")
    if output.exists() and not output.is_dir():
        raise NlpLstmError(f"{output} is a file; choose another --output-dir")
    if output.is_dir() and any(output.iterdir()) and not study.is_file() and not overwrite:
        raise NlpLstmError(f"{output} is not empty and holds no search; choose a new --output-dir or pass --overwrite")
    if overwrite:
        for name in (STUDY_FILE, "trials", "best", "data", "plots"):
            path = output / name
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    output.mkdir(parents=True, exist_ok=True)


def check_study(study, *, kind: str, corpus: str, metric: str, output: Path) -> None:
    """A resumed study must be of the same kind, corpus and metric; a new one is stamped with them."""
    stamp = {"kind": kind, "corpus": corpus, "metric": metric}
    found = study.user_attrs
    if not found:
        for key, value in stamp.items():
            study.set_user_attr(key, value)
        return
    if found.get("kind") != kind:
        raise NlpLstmError(f"{output / STUDY_FILE} is a study of a {found.get('kind')}, not a {kind}; "
                           f"run `tune {found.get('kind')}` or use another --output-dir")
    if found.get("corpus") != corpus:
        raise NlpLstmError(f"{output / STUDY_FILE} was searched on other data (or other data settings); "
                           "use the same data, or another --output-dir for this corpus")
    if found.get("metric") != metric:
        raise NlpLstmError(f"{output / STUDY_FILE} maximises {found.get('metric')}, not {metric}; "
                           f"pass --metric {found.get('metric')} or use another --output-dir")


class SearchProgress:
    """The bar: seconds of the budget used, trials done (pruned), best so far, time left."""

    def __init__(self, bar, *, start: float, budget: float) -> None:
        self.bar, self.start, self.budget = bar, start, budget
        self.shown, self.info = 0, "preparing the data"

    def tick(self) -> None:
        now = min(self.budget, time.time() - self.start)
        if int(now) > self.shown:
            left = max(0, self.budget - now)
            self.bar.advance(int(now) - self.shown, info=f"{self.info}  {int(left // 60)}:{int(left % 60):02d} left")
            self.shown = int(now)

    def trials(self, study) -> None:
        from optuna.trial import TrialState

        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        complete = [t.value for t in done if t.state == TrialState.COMPLETE]
        best = f"best {max(complete):.4f}" if complete else "best -"
        self.info = f"trials {len(done)} ({len(done) - len(complete)} pruned)  {best}"
        self.tick()


def tune(kind: str, *, output_dir: str | Path, source: DataSource, budget: str | float = "10m",
         space_file: str | Path | None = None, space: dict[str, Any] | None = None,
         model: dict[str, Any] | None = None, training: dict[str, Any] | None = None,
         tokenizer_dir: str | Path | None = None, tokenizer_settings: dict[str, Any] | None = None,
         metric: str | None = None, jobs: int = 1, pruner: str = "hyperband", resume: bool = False,
         overwrite: bool = False, threads: int | None = None, device: str = "auto", progress: bool = True,
         echo: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Search `kind`'s settings on `source`'s validation split within `budget`; keep the best model in
    `output_dir/best/`, score it on the test split, and write the report (module docstring).

    `model` and `training` are settings over the kind's defaults (as `train` takes them), pinned: not
    searched. The search space is the kind's default one changed by `space_file` (TOML) or `space`
    (the same tables as a dict). `threads` are torch threads in all (shared by the `jobs` processes). Returns the
    summary that `output_dir/summary.json` holds.
    """
    start = time.time()
    seconds = parse_budget(budget)
    spec = tune_kind(kind)
    if pruner not in PRUNERS:
        raise NlpLstmError(f"--pruner must be one of {', '.join(PRUNERS)}; got {pruner!r}")
    if jobs < 1:
        raise NlpLstmError(f"--jobs must be >= 1, got {jobs}")
    source = spec.source(source)
    metric = spec.pick_metric(source, metric)
    base_model = from_dict(spec.model_class, dict(model or {}), where="model settings")
    base_train = from_dict(TrainConfig, {**spec.training_defaults, **(training or {})}, where="training settings")
    user_space = read_space_file(space_file) if space_file is not None else space
    searched = build_space(spec.space, user_space, kind=kind, classes=classes_for(spec.model_class),
                           base={"model": base_model, "train": base_train},
                           other_kinds={name: other.model_class for name, other in TUNE_KINDS.items() if name != kind},
                           where=str(space_file) if space_file is not None else "search space")
    pinned = {"model": set(model or {}), "train": set(training or {}) - {"seed"}}
    searched.params = {name: param for name, param in searched.params.items() if param.key not in pinned[param.section]}
    output = Path(output_dir)
    prepare_output(output, resume=resume, overwrite=overwrite)
    total_threads = threads or default_threads()
    plan = SearchPlan(kind=kind, output_dir=output, source=source, space=searched, base_model=asdict(base_model),
                      base_train=asdict(base_train), tokenizer_dir=None if tokenizer_dir is None else str(tokenizer_dir),
                      tokenizer_settings={**spec.tokenizer_defaults, **(tokenizer_settings or {})}, metric=metric,
                      pruner=pruner, seed=base_train.seed, end=start + seconds,
                      reserve=max(2.0, 0.02 * seconds), threads=max(1, total_threads // jobs), device=device)
    study = open_study(plan)
    check_study(study, kind=kind, corpus=content_fingerprint(source), metric=metric, output=output)
    plan.trials_before = len(study.trials)
    if not study.trials:
        defaults = default_params(searched, {"model": asdict(base_model), "train": asdict(base_train)})
        study.enqueue_trial(defaults)
        # Trial 0 is the defaults themselves when the space holds every searched setting's default.
        study.set_user_attr("defaults_exact", len(defaults) == len(searched.params))
    with datasets_bars(False), progress_bar(int(seconds), f"tune {kind}", enabled=progress) as bar:
        shown = SearchProgress(bar, start=start, budget=seconds)
        runner = TrialRunner(plan, spec, WorkerTimes(), on_step=shown.tick)
        # The first encoding here, before any worker starts: it fits the tokenizer they all reuse.
        with alarm_at(plan.end - plan.reserve):
            try:
                runner.prepare(runner.stage(base_model, base_train), base_model)
            except BudgetSpent:
                pass
        if time.time() > plan.end - plan.reserve:
            raise NlpLstmError(f"--budget {budget} is too small for one trial: preparing the data alone took "
                               f"{time.time() - start:.0f} s and was stopped; give a budget of minutes (e.g. --budget 10m)")
        processes, results = start_workers(plan, jobs)
        try:
            times = [search(plan, runner=runner, on_trial=shown.trials)]
        finally:
            others, errors = collect_workers(processes, results, wait=max(5.0, plan.end - time.time()))
        for error in errors:
            echo(f"warning: {error}")
        times += others
        summary = finalize(plan, study, start=start, budget=seconds, times=times, jobs=jobs)
        shown.tick()
    return summary


class BudgetSpent(BaseException):
    """Raised by `alarm_at`'s timer in the middle of work that has no step events to check the time at.
    A BaseException, as KeyboardInterrupt is: the data loaders turn any Exception into a message about
    the file."""


@contextmanager
def alarm_at(deadline: float) -> Iterator[None]:
    """Raise `BudgetSpent` in this (main) thread at `deadline` (a `time.time()`), e.g. inside a data
    preparation that would run past the budget. Python code is stopped at once; a long call into C
    (sentencepiece's trainer, scikit-learn's solver) is stopped when it returns. Elsewhere than in
    the main thread of a Unix process, no timer."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def ring(signum, frame) -> None:
        raise BudgetSpent

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(0.001, deadline - time.time()))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def finalize(plan: SearchPlan, study, *, start: float, budget: float, times: list[WorkerTimes], jobs: int
             ) -> dict[str, Any]:
    """Keep the best trial's model as DIR/best/, score it on the test split, write the report."""
    from optuna.trial import TrialState

    spec = tune_kind(plan.kind)
    output = plan.output_dir
    final_started = time.time()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        prepare = max(t.prepare for t in times)
        fastest = min(t.projected_minimum for t in times)
        trial = f"the fastest trial would take about {fastest:.0f} s more" if math.isfinite(fastest) else \
            "no trial got far enough to measure its speed"
        need = prepare + (fastest if math.isfinite(fastest) else prepare) + plan.reserve
        raise NlpLstmError(f"--budget {budget:.0f}s is too small for one trial: preparing the data took {prepare:.0f} s "
                           f"and {trial}, with {plan.reserve:.0f} s kept for the report; give --budget "
                           f"{math.ceil(need * 1.5)}s or more, or narrow the search space to smaller models")
    best, kept_note = kept_trial(study, complete, scale=spec.scale)
    best_dir = output / "best"
    if not (plan.trial_dir(best.number) / "config.json").is_file():
        raise NlpLstmError(f"the best trial's model {plan.trial_dir(best.number)} is missing (deleted?); "
                           "start a new search with --overwrite")
    with staged_directory(best_dir) as staging:
        shutil.copytree(plan.trial_dir(best.number), staging, dirs_exist_ok=True)
    metrics = read_json(best_dir / "metrics.json", what="the best trial's metrics")
    test = None
    if not plan.source.split_disabled("test") and (plan.source.test_file or plan.source.dataset
                                                   or plan.source.test_fraction > 0):
        test = spec.evaluate(best_dir, plan.source, split="test", plots_dir=best_dir / "plots", device=plan.device)
        metrics["test"] = test
        atomic_write_json(best_dir / "metrics.json", metrics)
    model_file = read_model_config(best_dir)
    write_model_card(best_dir, model_file, metrics, data=plan.source.describe(), hub_dataset=plan.source.dataset)
    name = plain_name(f"tuned-{output.absolute().name}")
    note = f"The tokenizer was given (--tokenizer {plan.tokenizer_dir}); this [tokenizer] fits a new one." \
        if plan.tokenizer_dir else ""
    model_config, train_config = plan.configs(
        {"model": {**plan.space.fixed["model"], **_section(best.params, "model")},
         "train": {**plan.space.fixed["train"], **_section(best.params, "train")}})
    atomic_write_text(output / "best.toml", pipeline_toml(
        kind=plan.kind, name=name, source=plan.source, tokenizer_settings=plan.tokenizer_settings,
        model=model_config, training=train_config, metric=plan.metric, value=best.value, note=note))
    rows = trial_rows(study, origin=start)
    weights = importances(study, seed=plan.seed)
    elapsed = time.time() - start
    # This process from the start (its first data preparation came before `search`), the others' own.
    process_seconds = elapsed + sum(t.wall for t in times[1:])
    training = sum(t.train + t.finish for t in times)
    preparation = sum(t.prepare for t in times)
    summary: dict[str, Any] = {
        "kind": plan.kind, "metric": plan.metric, "budget_seconds": budget, "jobs": jobs, "threads": plan.threads,
        "best": {"number": best.number, "value": best.value, "params": best.params, "model_dir": str(best_dir),
                 "note": kept_note},
        "validation": metrics.get("validation"), "test": test, "trials": rows, "importance": weights,
        "seconds": {"elapsed": elapsed, "training": training, "data preparation": preparation,
                    "scoring and report": time.time() - final_started},
    }
    # Everything that is not training (or data preparation, which one `train` pays too): Optuna's
    # proposals and storage, the speed probes, deleting models, starting workers, the final scoring.
    summary["overhead_share"] = max(0.0, 1 - (training + preparation) / max(process_seconds, 1e-9))
    plot_search(rows, weights, output / "plots" / "search.png", metric=plan.metric)
    summary["seconds"]["scoring and report"] = time.time() - final_started
    summary["seconds"]["elapsed"] = time.time() - start
    atomic_write_text(output / "report.md", markdown_report(rows, kind=plan.kind, metric=plan.metric,
                                                            best={"number": best.number, "value": best.value,
                                                                  "note": kept_note},
                                                            summary=summary, weights=weights))
    atomic_write_json(output / "summary.json", summary)
    return summary


def _section(params: dict[str, Any], section: str) -> dict[str, Any]:
    return {name.split(".", 1)[1]: value for name, value in params.items() if name.startswith(f"{section}.")}
