"""OME-Zarr (NGFF 0.4 on zarr v2, NGFF 0.5 on zarr v3) and plain zarr: metadata, level choice, the
slab reader, and :func:`write_ome_zarr`.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable
from typing import Any

import fsspec
import numpy as np
import zarr

from octopi_core.exceptions import (
    CorruptTomogramError,
    InvalidTomogramShapeError,
    InvalidVoxelSizeError,
    TooManyChunksError,
    UnsupportedFormatError,
)

from ._location import _async_options, _check_inside, _identity, _info_identity, _locate, _Location
from .source import TomogramSource, _check_voxels
from .voxel_size import Zyx, _zyx_argument, tidy_voxel_size_a

__all__ = ["write_ome_zarr"]

_UNIT_TO_A = {
    "angstrom": 1.0,
    "picometer": 0.01,
    "nanometer": 10.0,
    "micrometer": 1e4,
    "millimeter": 1e7,
    "meter": 1e10,
}


def write_ome_zarr(
    uri_or_path: str,
    volume: np.ndarray,
    voxel_size_a: float | tuple[float, float, float],
    *,
    zarr_format: int = 2,
    n_levels: int = 1,
    chunks_zyx: tuple[int, int, int] = (64, 64, 64),
) -> None:
    """Write a volume as OME-Zarr: NGFF 0.4 on zarr v2, or NGFF 0.5 on zarr v3.

    Level ``k`` is a 2x2x2 mean of level ``k - 1`` (odd edges dropped), with scale
    ``voxel_size * 2**k`` and translation ``voxel_size * (2**k - 1) / 2`` so that each voxel sits at
    the centre of the level-0 voxels it averages. Axes are z, y, x in ``angstrom``.

    Args:
        uri_or_path: local path, or an ``s3://``/other fsspec URL; any existing store there is replaced.
        volume: ``(Z, Y, X)`` array, voxels, any numeric dtype.
        voxel_size_a: level-0 voxel size, Å: one value or (z, y, x).
        zarr_format: 2 (NGFF 0.4, ``.zattrs``) or 3 (NGFF 0.5, ``zarr.json`` attributes ``ome``). Default 2.
        n_levels: number of resolution levels (default 1).
        chunks_zyx: chunk shape, voxels (default 64³; clipped to the level shape).

    Raises:
        ValueError: bad shape, voxel size, format, level count or chunk shape.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3-D (Z, Y, X), got shape {volume.shape}")
    voxel = _zyx_argument(voxel_size_a, "voxel_size_a")
    if zarr_format not in (2, 3):
        raise ValueError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
    if n_levels < 1 or min(volume.shape) < 2 ** (n_levels - 1):
        raise ValueError(f"n_levels={n_levels} is not possible for shape {volume.shape}")
    if len(chunks_zyx) != 3 or any(int(c) < 1 for c in chunks_zyx):
        raise ValueError(f"chunks_zyx must be three positive ints, got {chunks_zyx!r}")
    levels = [volume]
    for _ in range(1, n_levels):
        levels.append(_downsample2(levels[-1]))
    loc = _locate(uri_or_path, None)
    store = (
        zarr.storage.LocalStore(loc.path) if loc.scheme == "local" else _fsspec_store(loc, read_only=False)
    )
    root = zarr.open_group(store=store, mode="w", zarr_format=2 if zarr_format == 2 else 3)
    extra: dict[str, Any] = (
        {"chunk_key_encoding": {"name": "v2", "separator": "/"}} if zarr_format == 2 else {}
    )
    datasets = []
    for k, level in enumerate(levels):
        factor = 2**k
        chunks = tuple(min(int(c), n) for c, n in zip(chunks_zyx, level.shape))
        array = root.create_array(str(k), shape=level.shape, dtype=level.dtype, chunks=chunks, **extra)
        array[...] = level
        datasets.append(
            {
                "path": str(k),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [v * factor for v in voxel]},
                    {"type": "translation", "translation": [v * (factor - 1) / 2 for v in voxel]},
                ],
            }
        )
    axes = [{"name": n, "type": "space", "unit": "angstrom"} for n in "zyx"]
    multiscale: dict[str, Any] = {
        "name": os.path.basename(uri_or_path.rstrip("/")),
        "axes": axes,
        "datasets": datasets,
    }
    if zarr_format == 2:
        root.attrs["multiscales"] = [{"version": "0.4", **multiscale}]
    else:
        root.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}


def _downsample2(volume: np.ndarray) -> np.ndarray:
    """2x2x2 mean of a ``(Z, Y, X)`` array, odd edges dropped, in the same dtype."""
    z, y, x = (n // 2 for n in volume.shape)
    mean = volume[: 2 * z, : 2 * y, : 2 * x].reshape(z, 2, y, 2, x, 2).mean(axis=(1, 3, 5))
    return mean.astype(volume.dtype) if volume.dtype.kind == "f" else np.rint(mean).astype(volume.dtype)


def _open_zarr(
    loc: _Location,
    zarr_format: int,
    is_array: bool,
    multiscales: Any,
    target_a: float,
    override_a: float | None,
    max_chunks: int | None = None,
) -> TomogramSource:
    if not is_array and not multiscales:
        raise UnsupportedFormatError(f"zarr group {loc.uri} has no OME-NGFF 'multiscales' metadata")
    store = _ConfinedLocalStore(loc) if loc.scheme == "local" else _fsspec_store(loc, read_only=True)
    if is_array:
        if override_a is None:
            raise InvalidVoxelSizeError(
                f"plain zarr array {loc.uri} carries no voxel size; pass voxel_size_a"
            )
        level_path, spatial, voxel, origin = None, None, (float(override_a),) * 3, (0.0, 0.0, 0.0)
        base: tuple[str | None, Zyx, Zyx] = (None, voxel, origin)
    else:
        level_path, spatial, voxel, origin, base = _choose_level(multiscales, loc.uri, target_a, override_a)
    try:
        array = zarr.open_array(
            store=store, path=level_path or "", mode="r", zarr_format=2 if zarr_format == 2 else 3
        )
    except FileNotFoundError as e:
        raise CorruptTomogramError(f"multiscale level {level_path!r} listed by {loc.uri} is missing") from e
    shape = tuple(int(n) for n in array.shape)
    if spatial is None:  # plain array: squeeze leading length-1 axes
        spatial = list(range(len(shape)))
        while len(spatial) > 3 and shape[spatial[0]] == 1:
            spatial.pop(0)
    elif max(spatial) >= len(shape) or len(spatial) > len(shape):
        raise CorruptTomogramError(f"{loc.uri} level {level_path!r} has shape {shape}, not matching its axes")
    others = [i for i in range(len(shape)) if i not in spatial]
    if len(spatial) != 3 or any(shape[i] != 1 for i in others):
        raise InvalidTomogramShapeError(
            f"tomogram {loc.uri} has shape {shape}; expected a 3-D (z, y, x) volume "
            "(other axes must have length 1)"
        )
    _check_voxels(tuple(shape[i] for i in spatial), array.dtype, loc.uri)
    index = [slice(None) if i in spatial else 0 for i in range(len(shape))]
    if max_chunks is not None:
        _check_chunk_count(loc.uri, shape, tuple(int(c) for c in array.chunks), max_chunks)
    chunks = getattr(array, "shards", None) or array.chunks
    level_meta = (f"{level_path}/" if level_path else "") + ("zarr.json" if zarr_format == 3 else ".zarray")
    if loc.scheme == "local":
        identity = _local_level_identity(loc, level_path)
    else:
        identity = _remote_level_identity(loc, array, level_path, level_meta)
    identity += f"@{level_path}" if level_path else ""
    base_path, base_voxel, base_origin = base
    base_shape = None
    if base_path != level_path:  # a coarser level is read: the document reports the original's shape
        base_array = zarr.open_array(
            store=store, path=base_path or "", mode="r", zarr_format=2 if zarr_format == 2 else 3
        )
        base_shape = tuple(int(base_array.shape[i]) for i in spatial)
    return TomogramSource(
        uri=loc.uri,
        format="zarr" if is_array else "ome-zarr",
        shape_zyx=tuple(shape[i] for i in spatial),
        voxel_size_zyx_a=voxel,
        origin_zyx_a=origin,
        dtype=array.dtype,
        identity=identity,
        level_path=level_path,
        _reader=_ZarrReader(array, index, spatial[0], int(chunks[spatial[0]])),
        base_shape_zyx=base_shape,  # type: ignore[arg-type]
        base_voxel_size_zyx_a=None if base_shape is None else base_voxel,
        base_origin_zyx_a=base_origin,
    )


def _check_chunk_count(uri: str, shape: tuple[int, ...], chunks: tuple[int, ...], max_chunks: int) -> None:
    """Refuse, from the metadata, a level cut into more than ``max_chunks`` chunks (each one read).

    Raises:
        TooManyChunksError: naming the count, the chunk shape and the limit.
    """
    count = math.prod(-(-n // max(1, c)) for n, c in zip(shape, chunks))
    if count > max_chunks:
        raise TooManyChunksError(
            f"tomogram {uri} is cut into {count} chunks of shape {chunks} (array shape {shape}); this "
            f"service reads at most {max_chunks} chunks per tomogram: rewrite it with larger chunks (e.g. 64^3)"
        )


def _local_level_identity(loc: _Location, level_path: str | None) -> str:
    """Content identity of a local level from one listing of its files: count, total size, newest change.

    New chunk data under an unchanged ``.zarray`` changes the size or the newest mtime/ctime (a ctime
    cannot be set back by the writer). Symlinks are not followed (stat of the link itself).
    """
    root = os.path.join(loc.path, level_path) if level_path else loc.path
    count = total_bytes = newest_ns = 0
    pending = [root]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    continue
                stat = entry.stat(follow_symlinks=False)
                count += 1
                total_bytes += stat.st_size
                newest_ns = max(newest_ns, stat.st_mtime_ns, stat.st_ctime_ns)
    return f"{count}-{total_bytes}-{newest_ns}"


def _remote_level_identity(loc: _Location, array: Any, level_path: str | None, level_meta: str) -> str:
    """Content identity of a remote level: its metadata's ETag (or size and mtime) and its chunk objects'.

    New chunk data under unchanged metadata must change it, or a finished result would be reused for a
    tomogram rewritten in place. A store that lists (S3) gives every object under the level, one LIST request
    per 1,000 objects; over HTTP, which cannot list (or where listing is denied), the first, middle and last
    chunk objects stand in (a rewrite that spares all three goes unseen there). "" (no result reuse) when
    the metadata has no identity.
    """
    metadata = _identity(loc, loc.child(level_meta))
    if not metadata:
        return ""
    level = loc.child(level_path) if level_path else loc.path
    digest = hashlib.sha256(metadata.encode())
    entries = _listed_identities(loc, level) if loc.scheme != "http" else None
    if entries is None:
        objects_per_axis = [
            math.ceil(n / c) for n, c in zip(array.shape, getattr(array, "shards", None) or array.chunks)
        ]
        samples = {tuple(int(f * (n - 1)) for n in objects_per_axis) for f in (0.0, 0.5, 1.0)}
        names = [array.metadata.encode_chunk_key(coords) for coords in sorted(samples)]
        entries = {name: _identity(loc, f"{level}/{name}") for name in names}
    for name in sorted(entries):
        digest.update(f"\n{name}\0{entries[name]}".encode())
    return f"{metadata}-{len(entries)}-{digest.hexdigest()[:16]}"


def _listed_identities(loc: _Location, level: str) -> dict[str, str] | None:
    """Every object under ``level`` with its identity, or None where listing is not allowed (a bucket policy
    may grant GetObject without ListBucket)."""
    try:
        listing = loc.fs.find(level, detail=True)
    except (PermissionError, NotImplementedError):
        return None
    return {name: _info_identity(info) or str(info.get("size")) for name, info in listing.items()}


def _fsspec_store(loc: _Location, *, read_only: bool) -> zarr.storage.FsspecStore:
    """A store on the already parsed location (``FsspecStore.from_url`` would parse the URL again)."""
    fs = fsspec.filesystem(loc.fs.protocol[0], asynchronous=True, **_async_options(loc))
    return zarr.storage.FsspecStore(fs=fs, path=loc.path, read_only=read_only)


class _ConfinedLocalStore(zarr.storage.LocalStore):
    """A read-only local store whose every file (metadata or chunk) must resolve inside the store's directory,
    so a symlink in the store cannot read a file elsewhere on the machine."""

    def __init__(self, loc: _Location, read_only: bool = True) -> None:
        super().__init__(loc.path, read_only=True)
        self._loc = loc

    def with_read_only(self, read_only: bool = False) -> _ConfinedLocalStore:
        return _ConfinedLocalStore(self._loc)

    def _check(self, key: str) -> None:
        _check_inside(self._loc, os.path.join(self._loc.path, key))

    def get_sync(self, key: str, *, prototype: Any = None, byte_range: Any = None) -> Any:
        self._check(key)
        return super().get_sync(key, prototype=prototype, byte_range=byte_range)

    async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
        self._check(key)
        return await super().get(key, prototype, byte_range)

    async def get_partial_values(self, prototype: Any, key_ranges: Iterable[tuple[str, Any]]) -> list[Any]:
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            self._check(key)
        return await super().get_partial_values(prototype, key_ranges)


def _choose_level(multiscales: Any, uri: str, target_a: float, override_a: float | None):
    """Parse NGFF multiscales: (level path, spatial axes, voxel size Å, origin Å) of the level nearest the
    target, and (path, voxel size Å, origin Å) of the finest level, the original tomogram."""
    ms: Any = multiscales[0] if isinstance(multiscales, list) and multiscales else None
    datasets = ms.get("datasets") if isinstance(ms, dict) else None
    if (
        not isinstance(datasets, list)
        or not datasets
        or not all(isinstance(d, dict) and isinstance(d.get("path"), str) for d in datasets)
    ):
        raise CorruptTomogramError(
            f"OME-Zarr {uri} has malformed 'multiscales' metadata (no datasets with paths)"
        )
    axes = ms.get("axes", ["z", "y", "x"])  # NGFF >= 0.4 requires axes; assume zyx without them
    if not isinstance(axes, list):
        raise CorruptTomogramError(f"OME-Zarr {uri} has malformed 'axes' metadata {axes!r}")
    names = [a.get("name") if isinstance(a, dict) else a for a in axes]
    spatial = []
    for i, axis in enumerate(axes):
        kind = axis.get("type") if isinstance(axis, dict) else None
        if kind == "space" or (kind is None and names[i] in ("z", "y", "x")):
            spatial.append(i)
    if len(spatial) != 3:
        raise InvalidTomogramShapeError(f"OME-Zarr {uri} has axes {names}; expected 3 spatial axes (z, y, x)")
    units = []
    for i in spatial:
        unit = axes[i].get("unit") if isinstance(axes[i], dict) else None
        if unit is None and override_a is None:  # a bare scale says nothing about Å: ask, never guess 1 Å
            raise InvalidVoxelSizeError(
                f"OME-Zarr {uri} axis {names[i]!r} has no unit, so its voxel size in Å is unknown; pass the "
                "voxel size of level 0 (--voxel-size on the command line, voxel_size_a in the API)"
            )
        if unit is not None and unit not in _UNIT_TO_A:
            raise InvalidVoxelSizeError(f"OME-Zarr {uri} axis {names[i]!r} has unsupported unit {unit!r}")
        units.append(1.0 if unit is None else _UNIT_TO_A[unit])
    found: list[tuple[str, tuple[float, ...] | None, tuple[float, ...]]] = []
    for d in datasets:
        scale, translation = _transform(d, ms, len(axes), uri)
        vs = None if scale is None else tuple(scale[i] * u for i, u in zip(spatial, units))
        found.append((d["path"], vs, tuple(translation[i] * u for i, u in zip(spatial, units))))
    if override_a is not None:
        if any(vs is None or min(vs) <= 0 for _, vs, _ in found):  # no usable scales: level 0 only
            found = [(found[0][0], (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))]
        ratio = [override_a / v for v in found[0][1] or ()]  # rescale the whole physical frame
        found = [
            (p, tuple(v * r for v, r in zip(vs or (), ratio)), tuple(o * r for o, r in zip(og, ratio)))
            for p, vs, og in found
        ]
    levels = [(p, vs, og) for p, vs, og in found if vs is not None]
    if len(levels) < len(found):
        raise InvalidVoxelSizeError(f"OME-Zarr {uri} has no scale transformation; pass voxel_size_a")
    levels = [(p, tidy_voxel_size_a(vs), tuple(float(o) for o in og)) for p, vs, og in levels]
    path, voxel, origin = min(levels, key=lambda lv: sum(abs(v - target_a) for v in lv[1]))
    base = min(levels, key=lambda lv: math.prod(lv[1]))  # the finest level: level 0 in a valid file
    return path, spatial, voxel, origin, base


def _transform(dataset: dict, ms: dict, ndim: int, uri: str) -> tuple[list[float] | None, list[float]]:
    """Compose a dataset's coordinateTransformations, then the multiscale's: (scale or None, translation)."""
    scale, translation, has_scale = [1.0] * ndim, [0.0] * ndim, False
    for t in list(dataset.get("coordinateTransformations") or []) + list(
        ms.get("coordinateTransformations") or []
    ):
        kind = t.get("type") if isinstance(t, dict) else None
        if kind == "identity":
            continue
        values = t.get(kind) if kind in ("scale", "translation") else None
        if (
            not isinstance(values, list)
            or len(values) != ndim
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
        ):
            raise CorruptTomogramError(f"OME-Zarr {uri} has an unusable coordinate transformation {t!r}")
        if kind == "scale":
            has_scale = True
            scale = [s * v for s, v in zip(scale, values)]
            translation = [o * v for o, v in zip(translation, values)]
        else:
            translation = [o + v for o, v in zip(translation, values)]
    return (scale if has_scale else None), translation


class _ZarrReader:
    def __init__(self, array: Any, index: list, z_axis: int, depth: int):
        self.array, self.index, self.z_axis, self.depth = array, index, z_axis, depth

    def read(self, z0: int, z1: int) -> np.ndarray:
        index = list(self.index)
        index[self.z_axis] = slice(z0, z1)
        return np.asarray(self.array[tuple(index)])

    def close(self) -> None:
        pass
