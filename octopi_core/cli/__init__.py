"""``octopi-serve`` domain commands: predict, evaluate, generate, demo, train, tune, promote, retrain,
models, rollback.

The console script's entry point is :mod:`octopi_serve.cli`: it adds the service commands (serve,
gateway, worker, submit) to this parser and hands every other command to :data:`COMMANDS`. Errors the
user can fix (bad URI, corrupt file, unknown class…) are printed as one line on stderr and exit with
status 2; nothing prints a traceback for them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from .demo import _demo, _evaluate, _generate
from .parser import build_parser
from .predict import _predict
from .runner import progress_bar, run_command
from .training import _models, _promote, _retrain, _rollback, _train, _tune

__all__ = ["main", "build_parser", "run_command", "progress_bar", "COMMANDS"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one domain command (``python -m octopi_core.cli``); the console script is
    :func:`octopi_serve.cli.main`.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 for an error the user can fix, 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    return run_command(args, COMMANDS[args.command])


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "predict": _predict,
    "evaluate": _evaluate,
    "generate": _generate,
    "demo": _demo,
    "train": _train,
    "tune": _tune,
    "promote": _promote,
    "retrain": _retrain,
    "models": _models,
    "rollback": _rollback,
}
