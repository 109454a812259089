"""Users' data: labelled and unlabelled sources of tomograms, opened by :func:`open_source`.

- a copick project (:mod:`.copick`): runs, tomograms by type and voxel spacing, picks by object, user and
  session; picks are written back as copick files;
- a folder or ``s3://`` prefix of tomograms, each with an optional picks file of its stem (:mod:`.folder`);
- a list of tomogram URIs (:mod:`.uri_list`).

Each is a :class:`DataSource` of :class:`DataItem` s: ``run_name``, ``tomogram_uri``, ``voxel_size_a`` and
the optional ``truth`` :class:`~octopi_core.picks.PicksDocument` (xyz, Å).
"""

from .copick import CopickPicksRef, CopickSource, open_copick
from .folder import TOMOGRAM_SUFFIXES, open_folder
from .item import DataItem, DataSource, SourceKind
from .source import open_source, source_kind
from .uri_list import open_uri_list, read_uri_list

__all__ = [
    "open_source",
    "source_kind",
    "SourceKind",
    "DataItem",
    "DataSource",
    "CopickSource",
    "CopickPicksRef",
    "open_copick",
    "open_folder",
    "open_uri_list",
    "read_uri_list",
    "TOMOGRAM_SUFFIXES",
]
