"""Picks file formats: the names, the file extension of each, and the suffixes a reader recognises.

Torch-, numpy- and pandas-free on purpose: the gateway imports :class:`PicksFormat` to parse requests
and to name download files, and must stay light.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["PicksFormat", "SUFFIX_FORMATS", "normalise_format"]


class PicksFormat(str, Enum):
    """Picks file formats; :mod:`octopi_core.export` gives each layout.

    - ``json``: the PicksDocument, lossless.
    - ``csv``: one row per pick, Å.
    - ``star``: RELION 5 particles, Å from the tomogram centre, plus an ``octopi`` metadata block.
    - ``copick``: a directory (a zip over HTTP) of per-class copick picks files, Å.
    - ``ndjson``: CryoET Data Portal points, voxels.
    """

    JSON = "json"
    CSV = "csv"
    STAR = "star"
    COPICK = "copick"
    NDJSON = "ndjson"

    @property
    def extension(self) -> str:
        """The file extension (no leading dot) of one rendered file, e.g. ``run.picks.<extension>``.

        ``copick`` renders as one JSON array of the per-class copick documents, hence ``copick.json``.
        """
        return _EXTENSIONS[self]

    @property
    def download_extension(self) -> str:
        """The file extension of the HTTP download, ``GET /jobs/{id}/picks?format=<format>``.

        ``copick`` downloads as a zip of the per-class copick files, hence ``copick.zip``; the others as
        :attr:`extension`.
        """
        return "copick.zip" if self is PicksFormat.COPICK else _EXTENSIONS[self]


_EXTENSIONS = {
    PicksFormat.JSON: "json",
    PicksFormat.CSV: "csv",
    PicksFormat.STAR: "star",
    PicksFormat.COPICK: "copick.json",
    PicksFormat.NDJSON: "ndjson",
}

# File suffix (lower case) -> the format a reader or writer infers from it; copick is a directory.
SUFFIX_FORMATS = {
    ".json": PicksFormat.JSON,
    ".csv": PicksFormat.CSV,
    ".star": PicksFormat.STAR,
    ".ndjson": PicksFormat.NDJSON,
    ".jsonl": PicksFormat.NDJSON,
}


def normalise_format(fmt: PicksFormat | str) -> PicksFormat:
    """Return ``fmt`` as a :class:`PicksFormat`, accepting the enum or its string in any case.

    Args:
        fmt: ``json``, ``csv``, ``star``, ``copick`` or ``ndjson`` (surrounding spaces ignored).

    Returns:
        The format.

    Raises:
        ValueError: naming ``fmt`` and the allowed values, for anything else.
    """
    try:
        return PicksFormat(str(getattr(fmt, "value", fmt)).strip().lower())
    except ValueError:
        allowed = ", ".join(f.value for f in PicksFormat)
        raise ValueError(f"fmt must be one of {allowed}; got {fmt!r}") from None
