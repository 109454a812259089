"""JSON picks: the :class:`~octopi_core.picks.PicksDocument` itself (lossless), read and written.

A ``.json`` file may hold a picks document, a list of them, a copick picks file or a list of those;
copick content goes to :mod:`.copick`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from pydantic import ValidationError

from octopi_core.exceptions import PicksFormatError
from octopi_core.export.copick import read_copick
from octopi_core.export.rows import ReadContext, class_name
from octopi_core.picks import PicksDocument

__all__ = ["render_document", "read_json"]


def render_document(doc: PicksDocument) -> str:
    """Return ``doc`` as indented JSON.

    Args:
        doc: the picks document.

    Returns:
        ``doc.model_dump_json(indent=2)``.
    """
    return doc.model_dump_json(indent=2)


def read_json(path: Path, text: str, context: ReadContext) -> list[PicksDocument]:
    """Read a JSON file of picks documents and/or copick picks files.

    Args:
        path: the file, for messages.
        text: its content.
        context: run, class and voxel size for what the file lacks.

    Returns:
        The documents: the file's documents first, then those built from its copick content.

    Raises:
        PicksFormatError: for invalid JSON, or content that is neither kind, or an invalid document.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise PicksFormatError(f"{path}: not valid JSON: {e}") from e
    docs, copick = [], []
    for item in data if isinstance(data, list) else [data]:
        if isinstance(item, dict) and isinstance(item.get("picks"), dict):
            docs.append(_document(path, item, context))
        elif isinstance(item, dict) and "pickable_object_name" in item:
            copick.append(item)
        else:
            raise PicksFormatError(
                f"{path}: JSON is neither a picks document (a 'picks' object) "
                "nor a copick picks file ('pickable_object_name')"
            )
    return docs + read_copick(path, copick, context)


def _document(path: Path, item: dict, context: ReadContext) -> PicksDocument:
    item = {**item, "picks": {class_name(path, k): v for k, v in item["picks"].items()}}
    if isinstance(item.get("voxel_size_xyz_a"), list):  # an unknown (NaN) voxel size is written as null
        item["voxel_size_xyz_a"] = [math.nan if v is None else v for v in item["voxel_size_xyz_a"]]
    if context.run_name and not item.get("run_name"):
        item["run_name"] = context.run_name
    try:
        return PicksDocument.model_validate(item)
    except ValidationError as e:
        raise PicksFormatError(f"{path}: not a valid picks document: {e}") from e
