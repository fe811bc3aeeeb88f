"""`tune` against the CLI defaults on the shared fixed splits (issue 26), one corpus after another.

    .venv/bin/python benchmarks/tune_goals.py --corpora vader_binary tweets3 hedge --budget 10m --threads 1 \
        --out runs/tune_goals

Each row: the tuned model's test accuracy and macro-F1 (the best trial by validation macro-F1, kept as
`OUT/CORPUS/best/`), the trials (complete / pruned / stopped), the search overhead (the share of the
process time that was neither training nor data preparation), and the seconds from the call to the
report. The defaults' and TF-IDF + LR's test scores on the same splits are `sweep_defaults.py`'s
(BENCHMARKS.md, "Word n-gram linear part ... (issue 22)"); run it for more seeds of the defaults.
Results also go to `OUT/results.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from sweep_defaults import SPLITS, sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", nargs="+", default=["vader_binary", "tweets3", "hedge"])
    parser.add_argument("--budget", default="10m")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the CLI's rule)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--pruner", default="hyperband")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=Path("runs/tune_goals"))
    args = parser.parse_args()
    import nlp_lstm

    args.out.mkdir(parents=True, exist_ok=True)
    corpora = sources(SPLITS / "vader")
    print(f"{'corpus':<14} {'accuracy':>9} {'macro-F1':>9} {'trials':>16} {'overhead':>9} {'seconds':>8}  load", flush=True)
    for corpus in args.corpora:
        started = time.perf_counter()
        summary = nlp_lstm.tune("classifier", output_dir=args.out / corpus, source=corpora[corpus], budget=args.budget,
                                training={"seed": args.seed}, jobs=args.jobs, pruner=args.pruner, threads=args.threads,
                                overwrite=True, progress=False)
        states = [row["state"] for row in summary["trials"]]
        counts = "/".join(str(states.count(state)) for state in ("complete", "pruned", "stopped"))
        test = summary["test"]
        load = os.getloadavg()[0]
        print(f"{corpus:<14} {test['accuracy']:>9.4f} {test['macro_f1']:>9.4f} {counts:>16} "
              f"{summary['overhead_share']:>8.1%} {time.perf_counter() - started:>8.0f}  {load:.1f}", flush=True)
        with open(args.out / "results.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps({"corpus": corpus, "budget": args.budget, "accuracy": test["accuracy"],
                                  "macro_f1": test["macro_f1"], "validation": summary["best"]["value"],
                                  "best": summary["best"]["params"], "trials": counts,
                                  "overhead_share": summary["overhead_share"], "seconds": summary["seconds"],
                                  "load": load}) + "\n")


if __name__ == "__main__":
    main()
