"""`python -m nlp_lstm.cli.launch N ARGS...`: torchrun for `--nproc-per-node N`, with our exit codes.

It runs torchrun's own `run` (`--standalone --nproc-per-node N -m nlp_lstm.cli.main ARGS`), so the
workers start exactly as under the torchrun command. What differs is what a failed run looks like.
torchrun reports any failed worker with a traceback of its own and exit code 1. Here the workers'
one-line `error:` message (printed once, by rank 0) is all the user sees, and the exit code is the
workers' own: 2 for a usage or input error, 130 for Ctrl-C, otherwise 1.
"""

from __future__ import annotations

import logging
import os
import sys


def exit_code(worker_codes: set[int]) -> int:
    """One exit code for the run from its failed workers' codes.

    Negative codes are signals. When one worker exits, torchrun stops the others with SIGTERM (-15),
    so only the codes of workers that exited on their own say what happened.
    """
    if 130 in worker_codes or -2 in worker_codes:  # Ctrl-C: checkpointed (130) or killed by SIGINT
        return 130
    if {code for code in worker_codes if code >= 0} == {2}:
        return 2
    return 1


def main(argv: list[str]) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    nproc_per_node, *command = argv
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's own default for N > 1, without its banner
    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc_per_node}", "-m", "nlp_lstm.cli.main", *command]
    )
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # we report failures below
    try:
        run(args)
    except ChildFailedError as error:
        return exit_code({failure.exitcode for failure in error.failures.values()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
