"""MRC/REC files: header parsing, memory-mapped (local) and byte-range (remote) slab readers, and
:func:`write_mrc`.
"""

from __future__ import annotations

import os
from typing import Any

import mrcfile
import numpy as np
from mrcfile.mrcinterpreter import MrcInterpreter
from mrcfile.utils import data_dtype_from_header, data_shape_from_header

from octopi_core.exceptions import (
    CorruptTomogramError,
    InvalidTomogramShapeError,
    InvalidVoxelSizeError,
    UnsupportedDataTypeError,
    UnsupportedFormatError,
)

from ._location import _identity, _Location
from .source import TomogramSource, _check_voxels
from .voxel_size import _zyx_argument, tidy_voxel_size_a

__all__ = ["write_mrc"]

_MRC_SLAB_DEPTH = 16  # z-planes per MRC read
_MRC_SLAB_BYTES = 256 * 2**20  # but no more than this many bytes per MRC read
_COMPLEX_MODES = (3, 4)  # complex int16, complex float32


def write_mrc(path: str, volume: np.ndarray, voxel_size_a: float | tuple[float, float, float]) -> None:
    """Write a volume as a float32 MRC file (mode 2) with its voxel size in the header.

    Args:
        path: local file path; an existing file is replaced.
        volume: ``(Z, Y, X)`` array, voxels; converted to float32.
        voxel_size_a: voxel size, Å: one value or (z, y, x).

    Raises:
        ValueError: ``volume`` is not 3-D or the voxel size is not positive and finite.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3-D (Z, Y, X), got shape {volume.shape}")
    z, y, x = _zyx_argument(voxel_size_a, "voxel_size_a")
    with mrcfile.new(os.fspath(path), overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(volume, dtype=np.float32))
        mrc.voxel_size = (x, y, z)


def _open_mrc(loc: _Location, override_a: float | None) -> TomogramSource:
    if loc.scheme == "local":
        size = os.path.getsize(loc.path)
        stream = open(loc.path, "rb")
        identity = f"{size}-{os.stat(loc.path).st_mtime_ns}"
    else:
        loc.fs.cat_file(loc.path, start=0, end=1024)  # surfaces 403/404/unreachable as typed errors
        size = loc.fs.size(loc.path)
        stream = loc.fs.open(loc.path, "rb", size=size)
        identity = _identity(loc, loc.path)
    with stream:
        try:
            interpreter = MrcInterpreter(iostream=stream, permissive=False, header_only=True)
            header, voxel_xyz = interpreter.header, interpreter.voxel_size
            if int(header.mode) in _COMPLEX_MODES:  # mode 3 is not even known to mrcfile
                raise UnsupportedDataTypeError(
                    f"MRC file {loc.uri} is a complex map (mode {int(header.mode)}); only real voxels can be read"
                )
            dtype, shape = data_dtype_from_header(header), data_shape_from_header(header)
        except ValueError as e:
            raise CorruptTomogramError(f"MRC file {loc.uri} is corrupt: {e}") from e
    mapping = (int(header.mapc), int(header.mapr), int(header.maps))
    if mapping not in ((1, 2, 3), (0, 0, 0)):
        raise UnsupportedFormatError(
            f"MRC file {loc.uri} has axis order mapc/mapr/maps = {mapping}; "
            "only the standard 1, 2, 3 is supported"
        )
    if len(shape) != 3:
        raise InvalidTomogramShapeError(
            f"MRC file {loc.uri} has shape {shape}; expected a 3-D (z, y, x) volume"
        )
    _check_voxels(tuple(shape), np.dtype(dtype), loc.uri)
    offset = 1024 + int(header.nsymbt)
    needed = offset + int(np.prod(shape)) * dtype.itemsize
    if size is not None and size < needed:
        raise CorruptTomogramError(
            f"MRC file {loc.uri} is truncated: the header needs {needed} bytes, the file has {size}"
        )
    if override_a is not None:
        voxel = (float(override_a),) * 3
    else:
        # float32 in the header: 7.84 is stored as 7.840000152587891
        voxel = tidy_voxel_size_a((float(voxel_xyz.z), float(voxel_xyz.y), float(voxel_xyz.x)))
        if not all(v > 0 for v in voxel):
            raise InvalidVoxelSizeError(
                f"MRC file {loc.uri} has an unset voxel size {voxel} Å (zyx) in its header; pass voxel_size_a"
            )
    if loc.scheme == "local":
        try:
            reader: Any = _MmapMrcReader(loc.path, shape)
        except ValueError as e:
            raise CorruptTomogramError(f"MRC file {loc.uri} is corrupt or truncated: {e}") from e
    else:
        reader = _RangeMrcReader(loc, offset, dtype, shape)
    return TomogramSource(
        uri=loc.uri,
        format="mrc",
        shape_zyx=tuple(shape),
        voxel_size_zyx_a=voxel,
        origin_zyx_a=(0.0, 0.0, 0.0),
        dtype=np.dtype(dtype),
        identity=identity,
        level_path=None,
        _reader=reader,
    )


def _mrc_depth(shape: tuple[int, ...], itemsize: int) -> int:
    return max(1, min(_MRC_SLAB_DEPTH, _MRC_SLAB_BYTES // (shape[1] * shape[2] * itemsize)))


class _MmapMrcReader:
    def __init__(self, path: str, shape: tuple[int, ...]):
        self.mrc = mrcfile.mmap(path, mode="r", permissive=False)
        self.depth = _mrc_depth(shape, self.mrc.data.dtype.itemsize)

    def read(self, z0: int, z1: int) -> np.ndarray:
        return np.array(self.mrc.data[z0:z1])

    def close(self) -> None:
        self.mrc.close()


class _RangeMrcReader:
    def __init__(self, loc: _Location, offset: int, dtype: np.dtype, shape: tuple[int, ...]):
        self.loc, self.offset, self.dtype, self.shape = loc, offset, dtype, shape
        self.plane_bytes = shape[1] * shape[2] * dtype.itemsize
        self.depth = _mrc_depth(shape, dtype.itemsize)

    def read(self, z0: int, z1: int) -> np.ndarray:
        start = self.offset + z0 * self.plane_bytes
        data = self.loc.fs.cat_file(self.loc.path, start=start, end=start + (z1 - z0) * self.plane_bytes)
        if len(data) != (z1 - z0) * self.plane_bytes:
            raise CorruptTomogramError(
                f"MRC file {self.loc.uri} is truncated: planes {z0}-{z1} returned "
                f"{len(data)} of {(z1 - z0) * self.plane_bytes} bytes (or the server ignores Range)"
            )
        return np.frombuffer(bytearray(data), dtype=self.dtype).reshape(z1 - z0, self.shape[1], self.shape[2])

    def close(self) -> None:
        pass
