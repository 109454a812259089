"""Read tomograms by URI into zyx float32 arrays with voxel sizes in Å, and write test tomograms.

URIs may be local paths, ``file://``, ``http(s)://`` or ``s3://``. Formats are OME-Zarr (NGFF 0.4
on zarr v2, NGFF 0.5 on zarr v3), plain zarr arrays, and MRC/REC. Volumes are indexed zyx in
voxels; physical positions are zyx in Å in the frame of the original tomogram: voxel ``i`` of a
volume sits at ``origin_zyx_a + i * voxel_size_zyx_a``. Every failure to read is raised as a
:class:`~octopi_core.exceptions.TomogramError` subclass whose message names the URI.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import botocore.exceptions
import fsspec
import fsspec.exceptions
import mrcfile
import numpy as np
import zarr
from mrcfile.mrcinterpreter import MrcInterpreter
from mrcfile.utils import data_dtype_from_header, data_shape_from_header
from scipy.ndimage import affine_transform

from octopi_core.exceptions import (
    CorruptTomogramError,
    EmptyTomogramError,
    InvalidTomogramShapeError,
    InvalidVoxelSizeError,
    TomogramAccessDeniedError,
    TomogramError,
    TomogramNotFoundError,
    TomogramTooSmallError,
    TomogramUnreachableError,
    UnsupportedFormatError,
    UnsupportedUriError,
)

__all__ = [
    "MIN_VOXEL_SIZE_A",
    "MAX_VOXEL_SIZE_A",
    "TomogramSource",
    "LoadedTomogram",
    "open_tomogram",
    "load_tomogram",
    "normalize_volume",
    "write_ome_zarr",
    "write_mrc",
]

MIN_VOXEL_SIZE_A = 0.5  # smallest plausible cryo-ET voxel size, Å
MAX_VOXEL_SIZE_A = 200.0  # largest plausible cryo-ET voxel size, Å
_RESAMPLE_TOLERANCE = 0.05  # resample only when source/target voxel size differs by more than this fraction
_CLIP_SIGMA = 10.0  # normalised values are clipped to ±this many robust standard deviations
_STATS_SAMPLE_VOXELS = 2_000_000  # voxels subsampled for normalisation statistics
_MRC_SLAB_DEPTH = 16  # z-planes per MRC read
_MRC_SLAB_BYTES = 256 * 2**20  # but no more than this many bytes per MRC read
_HTTP_CONNECT_TIMEOUT_S = 30.0
_HTTP_READ_TIMEOUT_S = 120.0
_MRC_EXTENSIONS = (".mrc", ".rec", ".map")
_UNIT_TO_A = {
    "angstrom": 1.0,
    "picometer": 0.01,
    "nanometer": 10.0,
    "micrometer": 1e4,
    "millimeter": 1e7,
    "meter": 1e10,
}

_AWS_CREDENTIAL_ENV = (  # any of these set means "use the environment's credentials", else anonymous S3
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
_UNREACHABLE_ERRORS = (  # failures to reach the host at all
    aiohttp.ClientConnectionError,
    TimeoutError,
    ConnectionError,
    fsspec.exceptions.FSTimeoutError,
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
)

Zyx = tuple[float, float, float]


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


@dataclass
class LoadedTomogram:
    """A tomogram read whole, normalised and (when needed) resampled to the model's voxel size.

    Attributes:
        volume: ``(Z, Y, X)`` float32, C-contiguous, median 0 and robust standard deviation 1, clipped to ±10.
        voxel_size_zyx_a: voxel size of ``volume``, Å.
        origin_zyx_a: physical position of ``volume[0, 0, 0]`` in the original tomogram frame, Å.
        source_voxel_size_zyx_a: voxel size of the level or file read, Å.
        source_shape_zyx: shape of the level or file read, voxels.
        uri, format, identity: as in :class:`TomogramSource`.
        resampled: whether ``volume`` was interpolated to the target voxel size.
    """

    volume: np.ndarray
    voxel_size_zyx_a: Zyx
    origin_zyx_a: Zyx
    source_voxel_size_zyx_a: Zyx
    source_shape_zyx: tuple[int, int, int]
    uri: str
    format: str
    identity: str
    resampled: bool


def open_tomogram(
    uri: str,
    *,
    target_voxel_size_a: float = 10.0,
    voxel_size_a: float | None = None,
    storage_options: dict | None = None,
) -> TomogramSource:
    """Open a tomogram and read its metadata, choosing the multiscale level nearest the target.

    Args:
        uri: local path, ``file://``, ``http(s)://`` or ``s3://`` URI of an OME-Zarr/zarr store or an
            MRC/REC file.
        target_voxel_size_a: voxel size wanted, Å (default 10); picks the nearest OME-Zarr level.
        voxel_size_a: isotropic voxel size override, Å, replacing what the file says (default None: trust
            the file).
            For OME-Zarr it is the size of level 0; the other levels keep their ratios to it.
        storage_options: fsspec options overriding the defaults (anonymous S3 without credentials,
            ``AWS_ENDPOINT_URL(_S3)`` endpoint, finite HTTP timeouts).

    Returns:
        The opened :class:`TomogramSource`; close it, or use it as a context manager.

    Raises:
        UnsupportedUriError, TomogramNotFoundError, TomogramAccessDeniedError, TomogramUnreachableError,
        UnsupportedFormatError, CorruptTomogramError, InvalidTomogramShapeError, InvalidVoxelSizeError.
    """
    _check_voxel_size_value(target_voxel_size_a, "target_voxel_size_a", uri)
    if voxel_size_a is not None:
        _check_voxel_size_value(voxel_size_a, "voxel_size_a", uri)
    loc = _locate(uri, storage_options)
    with _as_tomogram_errors(uri):
        zarr_kind = _detect_format(loc)
        if zarr_kind is None:
            source = _open_mrc(loc, voxel_size_a)
        else:
            source = _open_zarr(loc, *zarr_kind, target_voxel_size_a, voxel_size_a)
    for axis_vs in source.voxel_size_zyx_a:
        if not MIN_VOXEL_SIZE_A <= axis_vs <= MAX_VOXEL_SIZE_A:
            source.close()
            raise InvalidVoxelSizeError(
                f"voxel size {source.voxel_size_zyx_a} Å (zyx) of {uri} is outside the plausible range "
                f"[{MIN_VOXEL_SIZE_A}, {MAX_VOXEL_SIZE_A}] Å; pass voxel_size_a to override it"
            )
    return source


def load_tomogram(
    uri: str,
    *,
    target_voxel_size_a: float = 10.0,
    voxel_size_a: float | None = None,
    min_shape_zyx: tuple[int, int, int] | None = None,
    storage_options: dict | None = None,
) -> LoadedTomogram:
    """Read a whole tomogram in z-slabs into one float32 array, resample it if needed, and normalise it.

    The volume is resampled (trilinear) only when the source voxel size differs from the target by more
    than 5% on some axis; then ``voxel_size_zyx_a`` is the target exactly and the shape is
    ``round(N * source / target)``. Otherwise the source voxel size is kept so coordinates stay exact.
    Voxel ``j`` of the result sits at ``origin_zyx_a + j * voxel_size_zyx_a`` Å in the original frame.

    Args:
        uri, target_voxel_size_a, voxel_size_a, storage_options: as in :func:`open_tomogram`.
        min_shape_zyx: smallest acceptable shape of the loaded volume, voxels (default None: no minimum).

    Returns:
        The :class:`LoadedTomogram`.

    Raises:
        TomogramTooSmallError: the loaded volume is smaller than ``min_shape_zyx`` on some axis.
        EmptyTomogramError: the volume is all NaN/inf, or constant.
        TomogramError: every other failure, as listed in :func:`open_tomogram`.
    """
    if min_shape_zyx is not None and (
        len(min_shape_zyx) != 3 or any(int(n) != n or n < 1 for n in min_shape_zyx)
    ):
        raise ValueError(f"min_shape_zyx must be three positive ints, got {min_shape_zyx!r}")
    with open_tomogram(
        uri,
        target_voxel_size_a=target_voxel_size_a,
        voxel_size_a=voxel_size_a,
        storage_options=storage_options,
    ) as source:
        ratio = [s / target_voxel_size_a for s in source.voxel_size_zyx_a]  # source voxels per target voxel
        resample = any(abs(r - 1.0) > _RESAMPLE_TOLERANCE for r in ratio)
        if resample:
            shape = tuple(max(1, round(n * r)) for n, r in zip(source.shape_zyx, ratio))
            voxel_size = (float(target_voxel_size_a),) * 3
        else:
            shape, voxel_size = source.shape_zyx, source.voxel_size_zyx_a
        if min_shape_zyx is not None and any(n < m for n, m in zip(shape, min_shape_zyx)):
            raise TomogramTooSmallError(
                f"tomogram {uri} has shape {tuple(shape)} (zyx voxels at {voxel_size} Å), smaller than the "
                f"minimum {tuple(min_shape_zyx)}"
            )
        volume = np.empty(shape, dtype=np.float32)  # the one full-size allocation
        if resample:
            _read_resampled(source, volume, [1.0 / r for r in ratio])
        else:
            depth = source.slab_depth()
            for z0 in range(0, shape[0], depth):
                z1 = min(z0 + depth, shape[0])
                volume[z0:z1] = source.read_slab(z0, z1)
    normalize_volume(volume, name=f"tomogram {uri}")
    return LoadedTomogram(
        volume=volume,
        voxel_size_zyx_a=tuple(float(v) for v in voxel_size),
        origin_zyx_a=source.origin_zyx_a,
        source_voxel_size_zyx_a=source.voxel_size_zyx_a,
        source_shape_zyx=source.shape_zyx,
        uri=uri,
        format=source.format,
        identity=source.identity,
        resampled=resample,
    )


def normalize_volume(volume: np.ndarray, *, name: str = "volume") -> np.ndarray:
    """Normalise a volume in place to median 0 and robust standard deviation 1.

    Centre is the median and scale 1.4826 * MAD (falling back to the standard deviation, then to the
    1-99 percentile range), measured on a strided subsample of about 2M finite voxels. Values become
    ``(v - centre) / scale`` clipped to ±10; NaN/inf voxels become 0.

    Args:
        volume: float32 array of any shape (usually ``(Z, Y, X)``), writable; modified in place.
        name: how error messages refer to the volume (default ``"volume"``).

    Returns:
        ``volume`` itself.

    Raises:
        TypeError: ``volume`` is not a float32 ndarray.
        EmptyTomogramError: it has no finite values, or is constant.
    """
    if not isinstance(volume, np.ndarray) or volume.dtype != np.float32:
        raise TypeError(
            f"volume must be a float32 numpy array, got {type(volume).__name__} "
            f"{getattr(volume, 'dtype', '')}"
        )
    stride = max(1, math.ceil((volume.size / _STATS_SAMPLE_VOXELS) ** (1.0 / max(volume.ndim, 1))))
    sample = volume[(slice(None, None, stride),) * volume.ndim]
    centre, scale = _robust_stats(sample[np.isfinite(sample)])
    if not scale > 0:  # the subsample may miss sparse signal: measure the whole volume
        centre, scale = _robust_stats(volume[np.isfinite(volume)])
    if math.isnan(centre):
        raise EmptyTomogramError(f"{name} contains no finite values")
    if not scale > 0:
        raise EmptyTomogramError(f"{name} is constant (value {centre:g})")
    np.nan_to_num(volume, copy=False, nan=centre, posinf=centre, neginf=centre)
    np.subtract(volume, np.float32(centre), out=volume)
    np.multiply(volume, np.float32(1.0 / scale), out=volume)
    np.clip(volume, -_CLIP_SIGMA, _CLIP_SIGMA, out=volume)
    return volume


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
    if "://" in uri_or_path and not uri_or_path.startswith("file://"):
        loc = _locate(uri_or_path, None)
        store: Any = zarr.storage.FsspecStore.from_url(uri_or_path, storage_options=_async_options(loc))
    else:
        store = zarr.storage.LocalStore(_locate(uri_or_path, None).path)
    root = zarr.open_group(store=store, mode="w", zarr_format=zarr_format)
    extra = {"chunk_key_encoding": {"name": "v2", "separator": "/"}} if zarr_format == 2 else {}
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
    multiscale = {"name": os.path.basename(uri_or_path.rstrip("/")), "axes": axes, "datasets": datasets}
    if zarr_format == 2:
        root.attrs["multiscales"] = [{"version": "0.4", **multiscale}]
    else:
        root.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}


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


# ---------------------------------------------------------------------------------------------- helpers


@dataclass
class _Location:
    """Where a tomogram lives: ``scheme`` is local/http/s3; ``path`` is what ``fs`` takes."""

    uri: str
    scheme: str
    path: str
    options: dict
    fs: Any

    def child(self, name: str) -> str:
        return f"{self.path}/{name}"


def _locate(uri: str, storage_options: dict | None) -> _Location:
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"uri must be a non-empty string, got {uri!r}")
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):
        kind, path = "local", os.path.abspath(os.path.expanduser(uri))
    elif scheme == "file" and parts.netloc in ("", "localhost"):
        kind, path = "local", os.path.abspath(urllib.request.url2pathname(parts.path))
    elif scheme in ("http", "https") and parts.netloc:
        kind, path = "http", uri.rstrip("/")
    elif scheme == "s3" and parts.netloc:
        kind, path = "s3", (parts.netloc + parts.path).rstrip("/")
    else:
        raise UnsupportedUriError(
            f"unsupported tomogram URI {uri!r} (scheme {scheme + '://' if scheme else 'none'}); "
            "use a local path, file://, http(s):// or s3://"
        )
    options = {**_default_storage_options(kind), **(storage_options or {})}
    protocol = {"local": "file", "http": "http", "s3": "s3"}[kind]
    return _Location(
        uri=uri, scheme=kind, path=path, options=options, fs=fsspec.filesystem(protocol, **options)
    )


def _default_storage_options(kind: str) -> dict:
    if kind == "http":
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=_HTTP_CONNECT_TIMEOUT_S, sock_read=_HTTP_READ_TIMEOUT_S
        )
        return {"client_kwargs": {"timeout": timeout}, "skip_instance_cache": True}
    if kind == "s3":
        env = os.environ
        creds_file = env.get("AWS_SHARED_CREDENTIALS_FILE", os.path.expanduser("~/.aws/credentials"))
        has_credentials = any(env.get(k) for k in _AWS_CREDENTIAL_ENV) or os.path.isfile(creds_file)
        options: dict[str, Any] = {
            "anon": not has_credentials,
            "skip_instance_cache": True,
            "config_kwargs": {
                "connect_timeout": _HTTP_CONNECT_TIMEOUT_S,
                "read_timeout": _HTTP_READ_TIMEOUT_S,
                "retries": {"max_attempts": 3},
            },
        }
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["client_kwargs"] = {"endpoint_url": endpoint}
        return options
    return {}


def _async_options(loc: _Location) -> dict:
    """Options for zarr's async filesystem: cached, since fsspec never closes uncached async sessions."""
    return {k: v for k, v in loc.options.items() if k != "skip_instance_cache"}


@contextlib.contextmanager
def _as_tomogram_errors(uri: str) -> Iterator[None]:
    """Re-raise third-party failures as the matching TomogramError, naming ``uri``."""
    try:
        yield
    except (TomogramError, MemoryError):
        raise
    except Exception as e:
        raise _tomogram_error(e, uri) from e


def _tomogram_error(e: Exception, uri: str) -> TomogramError:
    detail = f"{type(e).__name__}: {e}"
    status = getattr(e, "status", None)
    response = getattr(e, "response", None)  # botocore ClientError
    code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
    if isinstance(e, PermissionError) or status in (401, 403) or code in ("AccessDenied", "403"):
        return TomogramAccessDeniedError(f"access to tomogram {uri} was denied ({detail})")
    if (
        isinstance(e, (FileNotFoundError, NotADirectoryError))
        or status in (404, 410)
        or code in ("NoSuchKey", "NoSuchBucket", "404")
    ):
        return TomogramNotFoundError(f"tomogram {uri} was not found ({detail})")
    if isinstance(e, _UNREACHABLE_ERRORS) or (status is not None and int(status) >= 500):
        return TomogramUnreachableError(f"could not reach the host serving tomogram {uri} ({detail})")
    if isinstance(e, aiohttp.ClientResponseError):
        return TomogramError(f"reading tomogram {uri} failed with HTTP {status} ({detail})")
    if isinstance(e, OSError) and not isinstance(e, IsADirectoryError):
        return TomogramError(f"I/O error reading tomogram {uri} ({detail})")
    return CorruptTomogramError(f"tomogram {uri} is corrupt or unreadable ({detail})")


def _read_or_none(loc: _Location, path: str, end: int | None = None) -> bytes | None:
    """Bytes of ``path`` (up to ``end``), or None when nothing is there; other failures propagate."""
    try:
        return loc.fs.cat_file(path, start=0 if end else None, end=end)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _read_json(loc: _Location, name: str) -> dict | None:
    raw = _read_or_none(loc, loc.child(name))
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptTomogramError(f"zarr metadata {name} of {loc.uri} is not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise CorruptTomogramError(f"zarr metadata {name} of {loc.uri} is not a JSON object")
    return meta


def _detect_format(loc: _Location) -> tuple[int, bool, Any] | None:
    """None for MRC, else (zarr format, is plain array, NGFF multiscales); by extension, then sniffing."""
    lower = loc.path.lower()
    if lower.endswith(_MRC_EXTENSIONS):
        return None
    head = None
    if not lower.endswith(".zarr"):
        head = _read_or_none(loc, loc.path, end=1024)
        if head is not None and head[208:211] == b"MAP":
            return None
    meta = _read_json(loc, "zarr.json")
    if meta is not None:
        attrs = meta.get("attributes") or {}
        multiscales = (attrs.get("ome") or {}).get("multiscales") or attrs.get("multiscales")
        return 3, meta.get("node_type") == "array", multiscales
    attrs, array = _read_json(loc, ".zattrs"), _read_json(loc, ".zarray")
    if array is not None or attrs is not None or _read_or_none(loc, loc.child(".zgroup")) is not None:
        return 2, array is not None, (attrs or {}).get("multiscales")
    if head is not None or (loc.scheme != "http" and loc.fs.exists(loc.path)):
        raise UnsupportedFormatError(
            f"{loc.uri} is neither OME-Zarr/zarr (no zarr.json, .zattrs or .zarray) "
            "nor MRC (no 'MAP ' at byte 208)"
        )
    raise TomogramNotFoundError(f"tomogram {loc.uri} was not found (no file, MRC or zarr metadata there)")


def _open_zarr(
    loc: _Location,
    zarr_format: int,
    is_array: bool,
    multiscales: Any,
    target_a: float,
    override_a: float | None,
) -> TomogramSource:
    if not is_array and not multiscales:
        raise UnsupportedFormatError(f"zarr group {loc.uri} has no OME-NGFF 'multiscales' metadata")
    if loc.scheme == "local":
        store: Any = zarr.storage.LocalStore(loc.path, read_only=True)
    else:
        store = zarr.storage.FsspecStore.from_url(
            "s3://" + loc.path if loc.scheme == "s3" else loc.path,
            storage_options=_async_options(loc),
            read_only=True,
        )
    if is_array:
        if override_a is None:
            raise InvalidVoxelSizeError(
                f"plain zarr array {loc.uri} carries no voxel size; pass voxel_size_a"
            )
        level_path, spatial, voxel, origin = None, None, (float(override_a),) * 3, (0.0, 0.0, 0.0)
    else:
        level_path, spatial, voxel, origin = _choose_level(multiscales, loc.uri, target_a, override_a)
    try:
        array = zarr.open_array(store=store, path=level_path or "", mode="r", zarr_format=zarr_format)
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
    index = [slice(None) if i in spatial else 0 for i in range(len(shape))]
    chunks = getattr(array, "shards", None) or array.chunks
    level_meta = (f"{level_path}/" if level_path else "") + ("zarr.json" if zarr_format == 3 else ".zarray")
    identity = _identity(loc, loc.child(level_meta)) + (f"@{level_path}" if level_path else "")
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
    )


def _choose_level(multiscales: Any, uri: str, target_a: float, override_a: float | None):
    """Parse NGFF multiscales: (level path, spatial axes, voxel size Å, origin Å) of the nearest level."""
    ms = multiscales[0] if isinstance(multiscales, list) and multiscales else None
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
        if unit is not None and unit not in _UNIT_TO_A:
            raise InvalidVoxelSizeError(f"OME-Zarr {uri} axis {names[i]!r} has unsupported unit {unit!r}")
        units.append(_UNIT_TO_A.get(unit, 1.0))
    levels = []
    for d in datasets:
        scale, translation = _transform(d, ms, len(axes), uri)
        vs = None if scale is None else tuple(scale[i] * u for i, u in zip(spatial, units))
        levels.append((d["path"], vs, tuple(translation[i] * u for i, u in zip(spatial, units))))
    if override_a is not None:
        if any(vs is None or min(vs) <= 0 for _, vs, _ in levels):  # no usable scales: level 0 only
            levels = [(levels[0][0], (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))]
        ratio = [override_a / v for v in levels[0][1]]  # rescale the whole physical frame
        levels = [
            (p, tuple(v * r for v, r in zip(vs, ratio)), tuple(o * r for o, r in zip(og, ratio)))
            for p, vs, og in levels
        ]
    elif any(vs is None for _, vs, _ in levels):
        raise InvalidVoxelSizeError(f"OME-Zarr {uri} has no scale transformation; pass voxel_size_a")
    path, voxel, origin = min(levels, key=lambda lv: sum(abs(v - target_a) for v in lv[1]))
    return path, spatial, tuple(float(v) for v in voxel), tuple(float(o) for o in origin)


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


def _open_mrc(loc: _Location, override_a: float | None) -> TomogramSource:
    if loc.scheme == "local":
        size = os.path.getsize(loc.path)
        stream = open(loc.path, "rb")  # noqa: SIM115 (closed below)
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
    offset = 1024 + int(header.nsymbt)
    needed = offset + int(np.prod(shape)) * dtype.itemsize
    if size is not None and size < needed:
        raise CorruptTomogramError(
            f"MRC file {loc.uri} is truncated: the header needs {needed} bytes, the file has {size}"
        )
    if override_a is not None:
        voxel = (float(override_a),) * 3
    else:
        voxel = (float(voxel_xyz.z), float(voxel_xyz.y), float(voxel_xyz.x))
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


def _identity(loc: _Location, path: str) -> str:
    """ETag, or size and modification time, of ``path``; "" when the store reports neither."""
    try:
        info = loc.fs.info(path)
    except FileNotFoundError:
        return ""
    tag = info.get("ETag") or info.get("etag")
    if tag:
        return str(tag).strip('"')
    stamp = info.get("mtime") or info.get("LastModified") or info.get("Last-Modified")
    return f"{info.get('size')}-{stamp}" if stamp is not None else ""


def _mrc_depth(shape: tuple[int, ...], itemsize: int) -> int:
    return max(1, min(_MRC_SLAB_DEPTH, _MRC_SLAB_BYTES // (shape[1] * shape[2] * itemsize)))


class _ZarrReader:
    def __init__(self, array: Any, index: list, z_axis: int, depth: int):
        self.array, self.index, self.z_axis, self.depth = array, index, z_axis, depth

    def read(self, z0: int, z1: int) -> np.ndarray:
        index = list(self.index)
        index[self.z_axis] = slice(z0, z1)
        return np.asarray(self.array[tuple(index)])

    def close(self) -> None:
        pass


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


def _read_resampled(source: TomogramSource, out: np.ndarray, step_zyx: list[float]) -> None:
    """Fill ``out`` by trilinear interpolation: out[j] = source[j * step], source read in z-slabs.

    ``step_zyx`` is target / source voxel size. A rolling buffer holds the source planes the current
    output block needs, so the source is never held whole.
    """
    n_src, depth = source.shape_zyx[0], source.slab_depth()
    block = max(1, int(depth / step_zyx[0]))
    buffer = np.empty((0,) + source.shape_zyx[1:], dtype=np.float32)
    buffer_z0 = 0
    for j0 in range(0, out.shape[0], block):
        j1 = min(j0 + block, out.shape[0])
        lo = min(math.floor(j0 * step_zyx[0]), n_src - 1)
        hi = min(math.floor((j1 - 1) * step_zyx[0]) + 2, n_src)
        start = max(lo, buffer_z0)
        buffer, buffer_z0 = buffer[start - buffer_z0 :], start
        while buffer_z0 + len(buffer) < hi:
            z0 = buffer_z0 + len(buffer)
            slab = source.read_slab(z0, min(n_src, (z0 // depth + 1) * depth)).astype(np.float32)
            buffer = np.concatenate([buffer, slab]) if len(buffer) else slab
        affine_transform(
            buffer,
            np.asarray(step_zyx),
            offset=(j0 * step_zyx[0] - buffer_z0, 0.0, 0.0),
            output=out[j0:j1],
            order=1,
            mode="nearest",
            prefilter=False,
        )


def _robust_stats(values: np.ndarray) -> tuple[float, float]:
    """(centre, scale) of finite values: median and 1.4826 * MAD, else std, else percentile range."""
    if values.size == 0:
        return math.nan, 0.0
    values = values.astype(np.float64, copy=False)
    centre = float(np.median(values))
    scale = 1.4826 * float(np.median(np.abs(values - centre)))
    if not (scale > 0 and math.isfinite(scale)):
        scale = float(np.std(values))
    if not (scale > 0 and math.isfinite(scale)):
        low, high = np.percentile(values, [1, 99])
        scale = float(high - low) / 4.65
    return centre, (scale if math.isfinite(scale) else 0.0)


def _downsample2(volume: np.ndarray) -> np.ndarray:
    """2x2x2 mean of a ``(Z, Y, X)`` array, odd edges dropped, in the same dtype."""
    z, y, x = (n // 2 for n in volume.shape)
    mean = volume[: 2 * z, : 2 * y, : 2 * x].reshape(z, 2, y, 2, x, 2).mean(axis=(1, 3, 5))
    return mean.astype(volume.dtype) if volume.dtype.kind == "f" else np.rint(mean).astype(volume.dtype)


def _check_voxel_size_value(value: Any, name: str, uri: str) -> None:
    try:
        ok = math.isfinite(float(value)) and MIN_VOXEL_SIZE_A <= float(value) <= MAX_VOXEL_SIZE_A
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidVoxelSizeError(
            f"{name}={value!r} Å for {uri} is not a finite voxel size in "
            f"[{MIN_VOXEL_SIZE_A}, {MAX_VOXEL_SIZE_A}] Å"
        )


def _zyx_argument(value: float | tuple[float, float, float], name: str) -> Zyx:
    values = tuple(float(v) for v in (value if isinstance(value, (tuple, list)) else (value,) * 3))
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name} must be a positive finite number or three of them (z, y, x), got {value!r}")
    return values
