"""The crossing between volume indices (zyx, voxels) and exported coordinates (xyz, Å).

With ``octopi_core/io`` the only place that converts between the two; each function names the
direction it converts. The document frame puts voxel 0 of the original tomogram at 0 Å.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from octopi_core.particles import particle_by_name
from octopi_core.picks import PickPoint, PicksDocument

if TYPE_CHECKING:  # the gateway renders picks without loading localization's image libraries
    from octopi_core.localize import ClassPicks

__all__ = [
    "check_triple",
    "zyx_to_xyz",
    "xyz_a_to_zyx_vox",
    "zyx_vox_to_xyz_a",
    "picks_document_from_voxels",
]


def check_triple(value: Any, name: str, *, positive: bool) -> tuple[float, float, float]:
    """Return ``value`` as three finite floats (all above 0 when ``positive``).

    Args:
        value: three numbers.
        name: the argument's name, for the error message.
        positive: whether every number must be above 0.

    Returns:
        The three numbers as floats.

    Raises:
        ValueError: naming ``name`` and echoing ``value``, for anything else.
    """
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        out = []
    if len(out) != 3 or not all(math.isfinite(v) and (v > 0 or not positive) for v in out):
        kind = "positive" if positive else "finite"
        raise ValueError(f"{name} must be three {kind} numbers; got {value!r}")
    return out[0], out[1], out[2]


def zyx_to_xyz(points_zyx: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Reverse the axes of points, zyx -> xyz, in the same unit (Å stays Å).

    Args:
        points_zyx: ``(N, 3)`` points, or a list of N zyx triples; any unit.

    Returns:
        A new ``(N, 3)`` float64 array of xyz (``(0, 3)`` for none).
    """
    return np.array(points_zyx, dtype=np.float64).reshape(-1, 3)[:, ::-1].copy()


def xyz_a_to_zyx_vox(points_xyz_a: np.ndarray, voxel_size_zyx_a: Sequence[float] | np.ndarray) -> np.ndarray:
    """Turn points in Å (xyz) into voxel positions (zyx) of a volume whose voxel 0 is at 0 Å.

    Args:
        points_xyz_a: ``(N, 3)`` points, xyz, Å.
        voxel_size_zyx_a: voxel size, zyx, Å.

    Returns:
        ``(N, 3)`` float64 positions, zyx, voxels (``(0, 3)`` for none).
    """
    points = np.asarray(points_xyz_a, dtype=np.float64).reshape(-1, 3)
    return points[:, ::-1] / np.asarray(voxel_size_zyx_a, dtype=np.float64)


def zyx_vox_to_xyz_a(
    points_zyx_vox: np.ndarray, voxel_size_zyx_a: np.ndarray, origin_zyx_a: np.ndarray
) -> np.ndarray:
    """Turn voxel positions (zyx) into points in Å (xyz): ``x_a = origin_x_a + x_vox * voxel_size_x_a``.

    Args:
        points_zyx_vox: ``(N, 3)`` float64 positions, zyx, voxels.
        voxel_size_zyx_a: ``(3,)`` voxel size, zyx, Å.
        origin_zyx_a: ``(3,)`` where voxel 0 lies, zyx, Å.

    Returns:
        ``(N, 3)`` float64 points, xyz, Å.
    """
    return (origin_zyx_a + points_zyx_vox * voxel_size_zyx_a)[:, ::-1]


def picks_document_from_voxels(
    found: Mapping[str, ClassPicks],
    *,
    voxel_size_zyx_a: tuple[float, float, float],
    origin_zyx_a: tuple[float, float, float],
    tomogram_uri: str,
    run_name: str,
    source_voxel_size_zyx_a: tuple[float, float, float],
    source_shape_zyx: tuple[int, int, int] | None,
    model_version: str | None,
    timings_s: dict[str, float] | None = None,
) -> PicksDocument:
    """Turn per-class centres in voxels (zyx) of the processed volume into a picks document (xyz, Å).

    ``x_a = origin_x_a + centre_x_vox * voxel_size_x_a``, likewise y and z.

    Args:
        found: class name -> :class:`~octopi_core.localize.ClassPicks` (centres in zyx voxels of the loaded,
            possibly resampled, volume; scores in [0, 1]), as :func:`~octopi_core.localize.localize_particles` gives.
        voxel_size_zyx_a: voxel size of that volume, Å, positive.
        origin_zyx_a: where its voxel 0 lies in the original tomogram's frame, Å.
        tomogram_uri: where the tomogram was read from.
        run_name: tomogram identifier, non-empty.
        source_voxel_size_zyx_a: voxel size of the original tomogram, Å; stored as ``voxel_size_xyz_a`` (xyz).
        source_shape_zyx: shape of the original tomogram, voxels, or None when unknown.
        model_version: version of the model, or None.
        timings_s: seconds per stage; None for none.

    Returns:
        The :class:`PicksDocument`, classes in label order, every given class present.

    Raises:
        ValueError: naming the argument, for an unknown class, mismatched classes or lengths, a wrong-shaped
            or non-finite array, a score outside [0, 1], a non-positive voxel size or an empty ``run_name``.
    """
    size_zyx = np.array(check_triple(voxel_size_zyx_a, "voxel_size_zyx_a", positive=True))
    origin_zyx = np.array(check_triple(origin_zyx_a, "origin_zyx_a", positive=False))
    source_zyx = check_triple(source_voxel_size_zyx_a, "source_voxel_size_zyx_a", positive=True)
    shape = None if source_shape_zyx is None else tuple(int(s) for s in source_shape_zyx)
    if shape is not None and (len(shape) != 3 or min(shape) <= 0):
        raise ValueError(f"source_shape_zyx must be three positive ints or None; got {source_shape_zyx!r}")
    if not isinstance(run_name, str) or not run_name:
        raise ValueError(f"run_name must be a non-empty string; got {run_name!r}")
    picks: dict[int, tuple[str, list[PickPoint]]] = {}
    for name, class_picks in found.items():
        try:
            particle = particle_by_name(name)
        except ValueError as e:
            raise ValueError(f"found: {e}") from None
        zyx = np.asarray(class_picks.centres_zyx_vox, dtype=np.float64)
        zyx = zyx.reshape(0, 3) if zyx.size == 0 else zyx
        if zyx.ndim != 2 or zyx.shape[1] != 3 or not np.all(np.isfinite(zyx)):
            raise ValueError(
                f"found[{name!r}].centres_zyx_vox must be a finite (N, 3) zyx array; got shape {zyx.shape}"
            )
        score = np.asarray(class_picks.scores, dtype=np.float64).reshape(-1)
        if len(score) != len(zyx) or not np.all((score >= 0) & (score <= 1)):
            raise ValueError(
                f"found[{name!r}].scores must hold {len(zyx)} values in [0, 1]; got {len(score)} values"
            )
        xyz_a = zyx_vox_to_xyz_a(zyx, size_zyx, origin_zyx)
        points = [PickPoint(x=x, y=y, z=z, score=s) for (x, y, z), s in zip(xyz_a.tolist(), score.tolist())]
        picks[particle.label] = (particle.name, points)
    return PicksDocument(
        tomogram_uri=tomogram_uri,
        run_name=run_name,
        voxel_size_xyz_a=source_zyx[::-1],
        shape_zyx=shape,
        model_version=model_version,
        picks=dict(picks[label] for label in sorted(picks)),
        timings_s=dict(timings_s or {}),
    )
