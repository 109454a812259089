"""What every data source holds: items (one tomogram each, with optional truth picks) and the source's kind."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from octopi_core.exceptions import DataSourceError
from octopi_core.io.voxel_size import MAX_VOXEL_SIZE_A, MIN_VOXEL_SIZE_A
from octopi_core.picks import PicksDocument

__all__ = ["SourceKind", "DataItem", "DataSource"]


class SourceKind(str, Enum):
    """Kinds of data source; :func:`~octopi_core.data.open_source` opens each.

    - ``copick``: a copick project, given by its config JSON.
    - ``folder``: a folder or ``s3://`` prefix of tomograms, each with an optional picks file of the same stem.
    - ``uris``: a list of tomogram URIs (or a ``.txt`` file of them, one a line), no picks.
    """

    COPICK = "copick"
    FOLDER = "folder"
    URIS = "uris"


@dataclass(frozen=True)
class DataItem:
    """One tomogram of a source, with the picks that label it when the source has them.

    Attributes:
        run_name: the tomogram's short name, unique within the source (copick: the run; folder: the file stem).
        tomogram_uri: local path or ``s3://`` URI of the OME-Zarr/zarr store or MRC file.
        voxel_size_a: voxel size of the tomogram, Å, when the source knows it without reading the tomogram
            (copick: the voxel spacing; folder and URI list: the caller's override, else the header's when
            the item has picks, else None).
        truth: the picks that label it (xyz, Å, score 1.0 unless the file gives one in [0, 1]), None if unlabelled.
        truth_uris: the files ``truth`` was read from.
    """

    run_name: str
    tomogram_uri: str
    voxel_size_a: float | None = None
    truth: PicksDocument | None = None
    truth_uris: tuple[str, ...] = ()

    @property
    def labelled(self) -> bool:
        """Whether the item has truth picks."""
        return self.truth is not None

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes the truth labels (canonical names, empty lists included); () when unlabelled."""
        return tuple(self.truth.picks) if self.truth is not None else ()


@dataclass
class DataSource:
    """An opened data source: its items, and what was left out and why.

    Attributes:
        spec: what was opened (config URI, folder URI, or ``"<n> URIs"``), for messages.
        kind: the :class:`SourceKind`.
        items: one per tomogram, in run-name order (URI lists keep the given order).
        notes: what was skipped or ignored while opening (each also issued as a warning).
    """

    spec: str
    kind: SourceKind
    items: list[DataItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[DataItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def run_names(self) -> list[str]:
        """The items' run names, in item order."""
        return [item.run_name for item in self.items]

    def item(self, run_name: str) -> DataItem:
        """Return the item of ``run_name``.

        Args:
            run_name: a run name of this source.

        Returns:
            The item.

        Raises:
            DataSourceError: naming the run names there are, when none is ``run_name``.
        """
        for item in self.items:
            if item.run_name == run_name:
                return item
        raise DataSourceError(
            f"{self.spec}: no item has run_name {run_name!r}; runs: {', '.join(self.run_names)}"
        )

    def _note(self, message: str) -> None:
        """Record ``message`` and warn with it: nothing is dropped without saying so."""
        self.notes.append(message)
        warnings.warn(f"{self.spec}: {message}", stacklevel=3)


def _check_voxel_size(voxel_size_a: float | None) -> None:
    """Refuse a ``voxel_size_a`` outside the cryo-ET range (ValueError naming it)."""
    if voxel_size_a is not None and not MIN_VOXEL_SIZE_A <= voxel_size_a <= MAX_VOXEL_SIZE_A:
        raise ValueError(
            f"voxel_size_a must be in [{MIN_VOXEL_SIZE_A}, {MAX_VOXEL_SIZE_A}] Å; got {voxel_size_a!r}"
        )


def _run_name(uri: str) -> str:
    """The run name of a tomogram URI: :func:`octopi_core.pipeline.run_name_from_uri`, the one home of the rule."""
    # pipeline loads torch: import it only when a name is needed, so opening a copick project stays light
    from octopi_core.pipeline import run_name_from_uri

    return run_name_from_uri(uri)
