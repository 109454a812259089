"""An opened tomogram whose voxels are read on demand, in z-slabs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from octopi_core.exceptions import InvalidTomogramShapeError, UnsupportedDataTypeError

from ._location import _as_tomogram_errors
from .voxel_size import Zyx

__all__ = ["TomogramSource"]


def _check_voxels(shape_zyx: tuple[int, ...], dtype: np.dtype, uri: str) -> None:
    """Refuse at open time what every later step would choke on: a zero-size axis, non-real voxels.

    Raises:
        InvalidTomogramShapeError: some axis has length 0.
        UnsupportedDataTypeError: the voxels are complex (MRC modes 3/4) or not numbers at all.
    """
    if any(int(n) < 1 for n in shape_zyx):
        raise InvalidTomogramShapeError(
            f"tomogram {uri} has shape {tuple(shape_zyx)} (zyx): an axis of length 0 holds no voxels"
        )
    if np.dtype(dtype).kind not in "biuf":
        raise UnsupportedDataTypeError(
            f"tomogram {uri} stores {np.dtype(dtype)} voxels; only real (integer or float) voxels can be "
            "read (a complex map, MRC mode 3/4, would lose its imaginary part)"
        )


@dataclass
class TomogramSource:
    """An opened tomogram whose voxels have not been read yet; read it in z-slabs.

    Attributes:
        uri: the URI as given.
        format: ``"ome-zarr"`` (NGFF multiscales), ``"zarr"`` (plain array) or ``"mrc"``.
        shape_zyx: voxels along z, y, x of the chosen level or file.
        voxel_size_zyx_a: voxel size of the chosen level or file, Å.
        origin_zyx_a: physical position of voxel (0, 0, 0), Å (NGFF translation; 0 for MRC and plain zarr).
        dtype: dtype of the stored voxels.
        identity: content identity for result caching (ETag, or size and mtime; plus level path),
            "" if unknown.
        level_path: the multiscale dataset path chosen, None for MRC and plain zarr.
        base_shape_zyx, base_voxel_size_zyx_a, base_origin_zyx_a: shape (voxels), voxel size (Å) and origin
            (Å) of the original tomogram, the finest multiscale level (level 0); None (origin 0) when the
            level or file read is the original.
    """

    uri: str
    format: str
    shape_zyx: tuple[int, int, int]
    voxel_size_zyx_a: Zyx
    origin_zyx_a: Zyx
    dtype: np.dtype
    identity: str
    level_path: str | None
    _reader: Any = field(repr=False, compare=False, default=None)
    base_shape_zyx: tuple[int, int, int] | None = None
    base_voxel_size_zyx_a: Zyx | None = None
    base_origin_zyx_a: Zyx = (0.0, 0.0, 0.0)

    def read_slab(self, z0: int, z1: int) -> np.ndarray:
        """Read planes ``z0 <= z < z1``.

        Returns:
            ``(z1 - z0, Y, X)`` array in the source dtype, voxels.

        Raises:
            ValueError: the range is empty or outside ``[0, Z]``.
            TomogramError: the data could not be read (corrupt chunk, network failure, ...).
        """
        if not 0 <= z0 < z1 <= self.shape_zyx[0]:
            raise ValueError(f"z-slab [{z0}, {z1}) is outside [0, {self.shape_zyx[0]}) of {self.uri}")
        with _as_tomogram_errors(self.uri):
            return self._reader.read(z0, z1)

    def slab_depth(self) -> int:
        """Return a good z-slab thickness for reading: the zarr chunk depth, or about 16 for MRC."""
        return max(1, min(int(self._reader.depth), self.shape_zyx[0]))

    def close(self) -> None:
        """Release the file handle or memory map, if any."""
        if self._reader is not None:
            self._reader.close()

    def __enter__(self) -> TomogramSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
