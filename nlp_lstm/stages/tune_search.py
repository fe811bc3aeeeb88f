"""The search loop of `tune` (`stages/tune.py`): trials in one process, proposed by Optuna, trained by the
kind's own `TrainingStage`, pruned from the training loop's epoch events, committed to the shared study."""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from nlp_lstm.artifacts import atomic_write_json, staged_directory
from nlp_lstm.config import TrainConfig, from_dict
from nlp_lstm.data.sources import DataSource
from nlp_lstm.devices import pick_device
from nlp_lstm.errors import NlpLstmError, TrainingInterrupted
from nlp_lstm.progress import datasets_bars
from nlp_lstm.stages.search_space import SearchSpace
from nlp_lstm.stages.tune_kinds import TuneKind, tune_kind
from nlp_lstm.training.events import EpochEnd, StepEnd
from nlp_lstm.training.loop import Trainer, seed_everything, stop_on_interrupt

STUDY_FILE = "study.db"
STUDY_NAME = "tune"
# A trial's speed is measured after this many steps, or sooner once 2 steps after the first took this
# many seconds; from then on it is pruned ("too slow") as soon as it cannot end in the time left.
SPEED_PROBE_STEPS, SPEED_PROBE_SECONDS = 10, 2.0
# The projection counts training steps only: validation passes and a machine that gets busier make a
# trial slower than it looks. On VADER at load 5-8, the defaults projected to 485 s at step 10 and
# needed that more (plus validation) by epoch 2, when it was too late for them and for the time spent.
SPEED_MARGIN = 1.25
TOO_SLOW_IN_A_ROW = 10


class TrialStopped(Exception):
    """A trial ended before its last epoch: `reason` is pruned, too slow, budget or interrupt."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TrialTrainer(Trainer):
    """The training loop without checkpoints: a trial that stops is dropped, never resumed."""

    def checkpoint(self) -> None:
        pass


@dataclass
class SearchPlan:
    """Everything a search process needs (picklable: `--jobs` sends it to each worker process)."""

    kind: str
    output_dir: Path
    source: DataSource
    space: SearchSpace
    base_model: dict[str, Any]
    base_train: dict[str, Any]
    tokenizer_dir: str | None
    tokenizer_settings: dict[str, Any]
    metric: str
    pruner: str
    seed: int
    end: float  # time.time() when the whole budget is spent
    reserve: float  # seconds kept at the end for scoring the best model and writing the report
    threads: int
    trials_before: int = 0  # trials in the study when this search started (--resume)
    device: str = "auto"

    @property
    def storage_url(self) -> str:
        return f"sqlite:///{(self.output_dir / STUDY_FILE).absolute()}"

    def trial_dir(self, number: int) -> Path:
        return self.output_dir / "trials" / f"{number:04d}"

    def configs(self, settings: dict[str, dict[str, Any]]) -> tuple[Any, TrainConfig]:
        """The typed model and training configs of one trial's `settings` over the base ones."""
        model = from_dict(tune_kind(self.kind).model_class, {**self.base_model, **settings["model"]},
                          where="trial settings")
        training = from_dict(TrainConfig, {**self.base_train, **settings["train"]}, where="trial settings")
        return model, training


@dataclass
class WorkerTimes:
    """Where one search process's wall-clock time went (seconds)."""

    wall: float = 0.0
    prepare: float = 0.0  # loading and encoding data (once per encoding setting)
    train: float = 0.0  # the training loop of every trial, counted or not
    finish: float = 0.0  # the kind's finish (linear part, calibration, validation scores, saving)
    projected_minimum: float = math.inf  # the shortest trial this process measured or projected


def open_study(plan: SearchPlan, *, worker: int = 0):
    try:
        import optuna
    except ImportError:
        raise NlpLstmError("tune needs Optuna, an optional dependency: pip install 'nlp-lstm[tune]'") from None

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(plan.storage_url, engine_kwargs={"connect_args": {"timeout": 120}})
    _write_ahead_log(storage.engine)
    pruners = {
        "halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3),
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
        "none": optuna.pruners.NopPruner,
    }
    # A worker's sampler seed differs from its siblings' (or they would propose the same settings) and
    # from the run before a --resume (or it would replay its proposals).
    sampler = optuna.samplers.TPESampler(seed=plan.seed + 1000 * worker + plan.trials_before, n_startup_trials=5,
                                         multivariate=True, constant_liar=True)
    return optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="maximize", sampler=sampler,
                               pruner=pruners[plan.pruner](), load_if_exists=True)


def _write_ahead_log(engine) -> None:
    """SQLite in write-ahead-log mode, synced at checkpoints: a commit costs 25-40% less (measured:
    59-72 ms against 78-119 ms per trial of Optuna's bookkeeping) and readers do not block the writer
    (`--jobs`). A commit still survives the process being killed or interrupted; only a power cut can
    lose the last trials."""
    from sqlalchemy import event

    def pragmas(connection, record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened before the listener get the pragmas when reopened


def default_params(space: SearchSpace, base: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The base configs' value of every searched setting that lies inside its range or choices."""
    params = {}
    for name, param in space.params.items():
        value = base[param.section].get(param.key)
        inside = value in param.choices if param.choices is not None else (
            isinstance(value, (int, float)) and param.low <= value <= param.high)
        if inside:
            params[name] = value
    return params


class TrialRunner:
    """Runs trials in one process: data prepared once per encoding setting, then trained per trial."""

    def __init__(self, plan: SearchPlan, kind: TuneKind, times: WorkerTimes,
                 on_step: Callable[[], None] = lambda: None) -> None:
        self.plan, self.kind, self.times, self.on_step = plan, kind, times, on_step
        self.device = pick_device(plan.device)
        self.prepared: dict[tuple, Any] = {}
        self.last_prepare = 0.0  # seconds the last encoding took
        # Trials pruned as too slow in a row: after `TOO_SLOW_IN_A_ROW` of them the time left fits no
        # setting the sampler proposes, and each more costs a model build and Optuna's bookkeeping.
        self.too_slow_in_a_row = 0
        self.stop_requested: Callable[[], bool] = lambda: False
        self.finish_estimate = 0.0


    @property
    def search_end(self) -> float:
        return self.plan.end - self.plan.reserve - self.finish_estimate

    def stage(self, model, training):
        return self.kind.make_stage(model=model, training=training, source=self.plan.source,
                                    tokenizer_dir=self.plan.tokenizer_dir,
                                    tokenizer_settings=self.plan.tokenizer_settings)

    def prepare(self, stage, model) -> Any:
        """The stage's data without its test split, cached by the model fields the encoding depends on."""
        key = tuple(getattr(model, name) for name in self.kind.encode_fields)
        if key not in self.prepared:
            if self.prepared and time.time() + self.last_prepare > self.search_end:
                raise TrialStopped("too slow")  # no time left to encode the data once more
            started = time.perf_counter()
            with datasets_bars(False):
                prepared = stage.prepare(self.plan.output_dir / "data", reuse_tokenizer=True)
            if "validation" not in prepared.encoded:
                raise NlpLstmError("tune scores trials on a validation split; give --validation-file, or data "
                                   "to cut one from (validation_fraction > 0)")
            prepared = without_test(prepared)
            if self.kind.precompute is not None:
                self.kind.precompute(stage, prepared)
            self.prepared = {**dict(list(self.prepared.items())[-3:]), key: prepared}
            self.last_prepare = time.perf_counter() - started
            self.times.prepare += self.last_prepare
        return self.prepared[key]

    def run(self, trial, settings: dict[str, dict[str, Any]]) -> tuple[float, dict[str, Any]]:
        """Train, score and save one trial's model; its validation score and metrics, or TrialStopped."""
        model, training = self.plan.configs(settings)
        stage = self.stage(model, training)
        prepared = self.prepare(stage, model)
        seed_everything(training.seed)
        network = stage.build(prepared)
        task = stage.task(prepared)
        trainer = TrialTrainer(network, task=task, train_data=prepared.encoded["train"],
                               validation_data=prepared.encoded["validation"], config=training,
                               run_dir=self.plan.output_dir / "data", device=self.device)
        started = time.perf_counter()
        try:
            self.train(trial, trainer, training, started)
        finally:
            self.times.train += time.perf_counter() - started
            trial.set_user_attr("train_seconds", round(time.perf_counter() - started, 2))
        result = trainer.result(started)
        network.load_state_dict(result.best_state)
        finishing = time.perf_counter()
        with staged_directory(self.plan.trial_dir(trial.number)) as staging:
            metrics = {"best_epoch": result.best_epoch, "stop_reason": result.stop_reason,
                       "train_seconds": round(result.seconds, 1)}
            metrics.update(stage.finish(network, prepared, result, staging, self.device))
            atomic_write_json(staging / "metrics.json", metrics)
        seconds = time.perf_counter() - finishing
        trial.set_user_attr("finish_seconds", round(seconds, 2))
        # What the validation score is a mean over (`kept_trial`'s standard error): tokens for token
        # accuracy, else the split's rows (texts, documents, sentences).
        rows = metrics["validation"].get("tokens") if self.plan.metric == "token_accuracy" else None
        trial.set_user_attr("validation_rows", int(rows or len(prepared.encoded["validation"])))
        self.times.finish += seconds
        self.finish_estimate = max(self.finish_estimate, seconds)
        spent = time.perf_counter() - started
        self.times.projected_minimum = min(self.times.projected_minimum, spent)
        if time.time() > self.plan.end - self.plan.reserve:  # its scoring ate into the report's time
            shutil.rmtree(self.plan.trial_dir(trial.number), ignore_errors=True)
            raise TrialStopped("budget")
        return float(metrics["validation"][self.plan.metric]), metrics

    def train(self, trial, trainer: TrialTrainer, training: TrainConfig, started: float) -> None:
        reference = trial.number == 0
        first_step = 0.0  # the first step's time: it carries one-off costs (allocations), left out of the rate
        for event in trainer.train_while_improving(self.stop_requested):
            if isinstance(event, StepEnd):
                self.on_step()
                now = time.time()
                if now > self.search_end:
                    raise TrialStopped("budget")
                elapsed = time.perf_counter() - started
                step = event.state.step
                first_step = first_step or elapsed
                if speed_known(step=step, epoch=event.state.epoch, seconds=elapsed - first_step, reference=reference):
                    epochs = epochs_to_end(epoch=event.state.epoch, bad_epochs=event.state.bad_epochs,
                                           epochs=training.epochs, patience=training.patience, reference=reference)
                    total_steps = trainer.steps_per_epoch * epochs
                    projected = first_step + (elapsed - first_step) / (step - 1) * (total_steps - 1)
                    if event.state.epoch == 0:
                        self.times.projected_minimum = min(self.times.projected_minimum, projected)
                    if now + SPEED_MARGIN * (projected - elapsed) > self.search_end:
                        trial.set_user_attr("projected_seconds", round(projected, 1))
                        raise TrialStopped("too slow")
            elif isinstance(event, EpochEnd):
                trial.report(float(event.row["val_metric"]), step=event.state.epoch)
                if trial.should_prune():
                    raise TrialStopped("pruned")


def speed_known(*, step: int, epoch: int, seconds: float, reference: bool) -> bool:
    """Whether a trial has run long enough for its speed to prune it as too slow: `SPEED_PROBE_STEPS`
    steps, or 2 steps after the first and `SPEED_PROBE_SECONDS` (`seconds` since the first step). The
    reference trial (trial 0: the defaults) only once its first epoch is done: a few steps under a
    passing load spike once pruned the defaults of a VADER search that ran them in 321 s the time
    before, and without them the search has nothing to keep when no trial beats them."""
    if reference and epoch < 1:
        return False
    return step > SPEED_PROBE_STEPS or (step > 2 and seconds >= SPEED_PROBE_SECONDS)


def epochs_to_end(*, epoch: int, bad_epochs: int, epochs: int, patience: int, reference: bool) -> int:
    """The epochs a trial in its `epoch` (0-based) is projected to run in all: every one of `epochs`,
    or for the reference trial (the defaults) the fewest it can still run, should early stopping end
    it (`patience` epochs without a better score; `bad_epochs` of them already). On the Turkish
    treebank the defaults reached validation 0.948 by epoch 34 of 50, 5 epochs past their best, and
    were pruned as too slow for 50 epochs when early stopping would have ended them by epoch 39, inside
    the budget. A reference trial that improves again is projected anew, and pruned then if it must."""
    if not reference:
        return epochs
    return min(epochs, epoch + max(1, patience) - bad_epochs)


def without_test(prepared: Any) -> Any:
    """`prepared` with the test split removed from every split mapping it holds."""
    changes = {}
    for item in dataclasses.fields(prepared):
        value = getattr(prepared, item.name)
        if hasattr(value, "keys") and "test" in value.keys():
            changes[item.name] = type(value)({k: v for k, v in value.items() if k != "test"})
    return dataclasses.replace(prepared, **changes)


def search(plan: SearchPlan, *, worker: int = 0, runner: TrialRunner | None = None,
           on_trial: Callable[[Any], None] = lambda study: None) -> WorkerTimes:
    """Run trials until the search's share of the budget is spent; return where the time went.

    `runner` may come with data prepared already (the first process prepares before the others start).
    """
    import optuna
    from optuna.trial import TrialState

    torch.set_num_threads(plan.threads)
    started = time.perf_counter()
    runner = runner or TrialRunner(plan, tune_kind(plan.kind), WorkerTimes())
    times = runner.times
    study = open_study(plan, worker=worker)
    interrupted = False
    with stop_on_interrupt() as stop_requested:
        runner.stop_requested = stop_requested
        while (time.time() < runner.search_end and runner.too_slow_in_a_row < TOO_SLOW_IN_A_ROW
               and not stop_requested()):
            trial = study.ask()
            trial.set_user_attr("worker", worker)
            trial_started = time.perf_counter()
            state, value, reason = TrialState.COMPLETE, None, ""
            try:
                value, metrics = runner.run(trial, plan.space.suggest(trial))
                trial.set_user_attr("validation", _numbers(metrics["validation"]))
                trial.set_user_attr("best_epoch", metrics["best_epoch"])
            except TrialStopped as stop:
                reason = stop.reason
                state = TrialState.PRUNED if reason in ("pruned", "too slow") else TrialState.FAIL
            except (TrainingInterrupted, KeyboardInterrupt):  # the trial in progress is dropped, no other
                reason, state = "interrupt", TrialState.FAIL
            except NlpLstmError as error:  # a setting combination the config refuses, a diverging loss
                reason, state = f"failed: {error}", TrialState.FAIL
            trial.set_user_attr("seconds", round(time.perf_counter() - trial_started, 2))
            if reason:
                trial.set_user_attr("stopped", reason)
            runner.too_slow_in_a_row = runner.too_slow_in_a_row + 1 if reason == "too slow" else 0
            study.tell(trial, value, state=state)
            _drop_unbest(plan, study)
            on_trial(study)
            if reason == "interrupt" or stop_requested():
                interrupted = True
                break
            if reason == "budget":
                break
    times.wall = time.perf_counter() - started
    if interrupted:
        done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        raise TrainingInterrupted(f"interrupted: the {done} finished trial(s) are kept in "
                                  f"{plan.output_dir / STUDY_FILE}; run the same command with --resume to go on")
    return times


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def kept_trial(study, complete: list, *, scale: float) -> tuple[Any, str]:
    """The trial whose model the search keeps, and why when it is not the best by validation score.

    The best trial, unless the study's trial 0 ran the defaults exactly and the best beats them on
    validation by no more than one standard error of the defaults' score (`sqrt(s (1 - s) / n)` for a
    score `s` out of `scale` over `n` validation rows: the largest a mean of per-row scores in [0, 1]
    can have). Among many trials scored on one validation split the highest is partly luck; a
    gain inside that noise is no evidence against the defaults, so they are kept (the one-standard-error
    rule of Breiman et al. 1984, with the defaults as the simpler choice).
    """
    best = max(complete, key=lambda t: t.value)
    defaults = next((t for t in complete if t.number == 0), None)
    if best.number == 0 or defaults is None or not study.user_attrs.get("defaults_exact"):
        return best, ""
    rows = defaults.user_attrs.get("validation_rows") or 0
    share = min(1.0, max(0.0, defaults.value / scale))
    noise = scale * math.sqrt(share * (1 - share) / rows) if rows else 0.0
    gain = best.value - defaults.value
    if gain > noise:
        return best, ""
    return defaults, (f"kept the defaults (trial 0): the best trial ({best.number}) scored {gain:+.4f} above them on "
                      f"validation, within one standard error of their score ({noise:.4f} over {rows} rows)")


def _drop_unbest(plan: SearchPlan, study) -> None:
    """Delete the model directories of finished trials that are not the best (the best never gets
    worse), and the defaults' (trial 0, where it ran them exactly): `kept_trial` may choose them at the end."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return
    keep = {max(complete, key=lambda t: t.value).number} | ({0} if study.user_attrs.get("defaults_exact") else set())
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)):
        if trial.number not in keep and plan.trial_dir(trial.number).exists():
            shutil.rmtree(plan.trial_dir(trial.number), ignore_errors=True)


def worker_main(plan: SearchPlan, worker: int, results) -> None:
    """A `--jobs` worker process: search, and send back where its time went (or its one-line error)."""
    try:
        with datasets_bars(False):
            results.put((worker, dataclasses.asdict(search(plan, worker=worker)), None))
    except (NlpLstmError, TrainingInterrupted) as error:
        results.put((worker, None, str(error)))
    except KeyboardInterrupt:
        results.put((worker, None, "interrupted"))


def start_workers(plan: SearchPlan, jobs: int) -> tuple[list, Any]:
    """`jobs - 1` worker processes (this process is the first worker), each sharing the study."""
    context = multiprocessing.get_context("spawn")  # no forked torch or OpenMP state
    results = context.Queue()
    processes = [context.Process(target=worker_main, args=(plan, worker, results), daemon=True)
                 for worker in range(1, jobs)]
    for process in processes:
        process.start()
    return processes, results


def collect_workers(processes: list, results, *, wait: float) -> tuple[list[WorkerTimes], list[str]]:
    """Wait (at most `wait` seconds more) for the workers; their times and errors."""
    import queue

    times, errors = [], []
    deadline = time.time() + wait
    for _ in processes:
        try:
            worker, data, error = results.get(timeout=max(0.1, deadline - time.time()))
        except queue.Empty:
            errors.append("a worker did not report before the budget ended; stopped it")
            continue
        if data is not None:
            times.append(WorkerTimes(**data))
        else:
            errors.append(f"worker {worker}: {error}")
    for process in processes:
        process.join(timeout=max(0.1, deadline - time.time()))
        if process.is_alive():
            process.terminate()
            process.join()
    return times, errors
