"""Pruners replayed on the learning curves of a search that pruned nothing (issue 26).

    nlp-lstm tune classifier ... --pruner none --budget 10m -o runs/curves
    .venv/bin/python benchmarks/tune_pruners.py runs/curves/study.db

Every complete trial of the study (run with `--pruner none`, so each has its validation score after
every epoch and its final score) is fed, in the order it ran, to a fresh study with each pruner: the
trial reports its epochs one by one until the pruner stops it. Printed per pruner: the training time
the trials would have taken (each epoch costs its trial's measured seconds per epoch), its share of the
unpruned time, how many trials were stopped, and the best final validation score among the trials
that ran to the end (pruning can only lose the best, never find a better one, on a fixed sequence).
This holds the proposals fixed; in a real search the sampler would spend the saved time on more trials.
"""

from __future__ import annotations

import argparse

import optuna
from optuna.trial import TrialState

PRUNERS = {
    "none": optuna.pruners.NopPruner,
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    "halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3),
}


def replay(trials, pruner) -> tuple[float, int, float]:
    study = optuna.create_study(direction="maximize", pruner=pruner)
    seconds, stopped, best = 0.0, 0, float("-inf")
    for trial in trials:
        per_epoch = trial.user_attrs["train_seconds"] / max(1, len(trial.intermediate_values))
        live = study.ask()
        pruned = False
        for epoch, value in sorted(trial.intermediate_values.items()):
            seconds += per_epoch
            live.report(value, epoch)
            if live.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(live, state=TrialState.PRUNED)
            stopped += 1
        else:
            study.tell(live, trial.value)
            best = max(best, trial.value)
    return seconds, stopped, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", help="study.db of a search run with --pruner none")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{args.study}")
    trials = [t for t in study.get_trials(states=(TrialState.COMPLETE,)) if t.intermediate_values]
    print(f"{len(trials)} complete trials; best final validation score {max(t.value for t in trials):.4f}")
    full = None
    print(f"{'pruner':<10} {'train s':>8} {'share':>6} {'stopped':>8} {'best kept':>10}")
    for name, make in PRUNERS.items():
        seconds, stopped, best = replay(trials, make())
        full = full or seconds
        print(f"{name:<10} {seconds:>8.0f} {seconds / full:>6.0%} {stopped:>8} {best:>10.4f}")


if __name__ == "__main__":
    main()
