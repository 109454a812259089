"""Running one command: errors the user can fix become one line on stderr; the progress bar."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

__all__ = ["run_command", "progress_bar"]


def run_command(args: argparse.Namespace, handler: Callable[[argparse.Namespace], int]) -> int:
    """Run ``handler(args)``, turning errors the user can fix into one line on stderr.

    Args:
        args: the parsed arguments; ``args.command`` names the command in messages.
        handler: the command's function.

    Returns:
        The handler's exit status; 2 after an ``OctopiError``, ``ValueError`` or ``FileNotFoundError``;
        130 after Ctrl-C.
    """
    from ..exceptions import OctopiError

    try:
        return handler(args)
    except (OctopiError, ValueError, FileNotFoundError) as e:
        print(f"octopi-serve {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def progress_bar(quiet: bool):
    """A rich progress bar on stderr (description, bar, percentage, times); hidden when ``quiet``."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=quiet,
        transient=False,
        console=None,
    )
