"""CSV picks: ``run_name,particle_type,x,y,z,score``, Å, one row per pick.

Reading also accepts the Kaggle CZII submission layout ``id,experiment,particle_type,x,y,z``
(``experiment`` is the run, score 1.0). CSV loses the document metadata and classes without picks.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from octopi_core.exceptions import PicksFormatError
from octopi_core.export.rows import ReadContext, pick_rows
from octopi_core.picks import PicksDocument

__all__ = ["render_csv", "read_csv"]


def render_csv(doc: PicksDocument) -> str:
    """Return ``doc`` as CSV text.

    Args:
        doc: the picks document (xyz, Å).

    Returns:
        The CSV, ``\\n`` line ends, header included.
    """
    table = pd.DataFrame(
        [(doc.run_name, *row) for row in pick_rows(doc)],
        columns=["run_name", "particle_type", "x", "y", "z", "score"],
    )
    return table.to_csv(index=False, lineterminator="\n")


def read_csv(path: Path, text: str, context: ReadContext) -> list[PicksDocument]:
    """Read CSV picks (ours or a Kaggle CZII submission) into documents, one per run.

    Args:
        path: the file, for messages.
        text: its content.
        context: run, class and voxel size for what the file lacks.

    Returns:
        The documents.

    Raises:
        PicksFormatError: for an unreadable CSV, missing columns or a bad pick.
    """
    try:
        table = pd.read_csv(
            io.StringIO(text), dtype={"run_name": str, "experiment": str, "particle_type": str}
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise PicksFormatError(f"{path}: not a readable CSV: {e}") from e
    if "run_name" not in table.columns and "experiment" in table.columns:  # Kaggle CZII submission
        table = table.rename(columns={"experiment": "run_name"})
    missing = [c for c in ("run_name", "particle_type", "x", "y", "z") if c not in table.columns]
    if missing:
        raise PicksFormatError(
            f"{path}: CSV is missing columns {missing}; expected run_name,particle_type,"
            "x,y,z[,score] or id,experiment,particle_type,x,y,z"
        )
    score = table["score"] if "score" in table.columns else [1.0] * len(table)
    columns = (table[c] for c in ("run_name", "particle_type", "x", "y", "z"))
    return context.build(path, zip(*columns, score))
