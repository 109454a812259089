"""Picks files: centres (zyx, voxels) -> :class:`~octopi_core.picks.PicksDocument` (xyz, Å) -> files, and back.

This package and ``octopi_core/io`` are the only places that cross from volume indices (zyx, voxels) to
exported coordinates (xyz, Å). One module per format holds its reader and writer together;
:mod:`.formats` names the formats and is free of numpy and pandas, so the gateway's
``from octopi_core.export import PicksFormat`` stays light: every other name is imported on first use.
"""

from importlib import import_module
from typing import Any

from octopi_core.export.formats import PicksFormat

_EXPORTS = {
    "COPICK_USER_ID": "copick",
    "COPICK_SESSION_ID": "copick",
    "picks_document_from_voxels": "coordinates",
    "zyx_to_xyz": "coordinates",
    "xyz_a_to_zyx_vox": "coordinates",
    "zyx_vox_to_xyz_a": "coordinates",
    "render_copick_zip": "copick",
    "render_picks": "dispatch",
    "write_picks": "dispatch",
    "read_picks": "dispatch",
}

__all__ = ["PicksFormat", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'octopi_core.export' has no attribute {name!r}")
