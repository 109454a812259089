"""A picture of the picks over their tomogram: a small projection kept from the job, and its figure.

:func:`project_volume` runs while the volume is in memory (in :meth:`octopi_core.pipeline.Picker.predict`)
and keeps a few thin z-slabs averaged over their depth, one xz and one yz section, all binned to at most
``max_pixels`` per side and stored as uint8 (tens of kB, cheap to keep beside a result).
:func:`preview_figure` draws each pick where its sphere cuts a slab or a section, as the circle of that cut
in one colour per class, with the counts in the legend. Neither imports torch; matplotlib is used through
its Agg canvas only (no display, no pyplot state), so the gateway can render in any thread.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .export.coordinates import xyz_a_to_zyx_vox
from .particles import particle_by_name
from .picks import PicksDocument, points_array

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_SLAB_COUNT",
    "DEFAULT_SLAB_THICKNESS_VOX",
    "DEFAULT_MAX_PIXELS",
    "PreviewProjection",
    "project_volume",
    "preview_figure",
    "render_preview_png",
]

DEFAULT_SLAB_COUNT = 4  # z-slabs shown side by side
DEFAULT_SLAB_THICKNESS_VOX = 8  # voxels averaged per slab: about one small particle at 10 Å
DEFAULT_MAX_PIXELS = 256  # longest side of each stored image, pixels
_CLASS_COLOURS = ("#e41a1c", "#ff7f00", "#ffd92f", "#4daf4a", "#377eb8", "#f781bf")  # by class label 1..6


@dataclass(frozen=True)
class PreviewProjection:
    """What the figure needs from a tomogram, in the loaded (possibly resampled) volume's voxels.

    Attributes:
        slabs: ``(S, Y', X')`` uint8, each slab's mean over its depth, binned by ``bin_vox``; 0..255 spans the
            display range of the whole volume.
        slab_z_vox: ``(S, 2)`` int64, each slab's ``[z0, z1)`` in voxels.
        xz: ``(Z', X')`` uint8, the mean over ``section_y_vox`` rows, binned.
        section_y_vox: ``[y0, y1)`` of the xz section, voxels.
        yz: ``(Z', Y')`` uint8, the mean over ``section_x_vox`` columns, binned.
        section_x_vox: ``[x0, x1)`` of the yz section, voxels.
        bin_vox: voxels per image pixel along every axis.
        shape_zyx: shape of the volume, voxels.
        voxel_size_zyx_a: its voxel size, Å.
        origin_zyx_a: where its voxel 0 lies in the picks' frame, Å.
    """

    slabs: np.ndarray
    slab_z_vox: np.ndarray
    xz: np.ndarray
    section_y_vox: tuple[int, int]
    yz: np.ndarray
    section_x_vox: tuple[int, int]
    bin_vox: int
    shape_zyx: tuple[int, int, int]
    voxel_size_zyx_a: tuple[float, float, float]
    origin_zyx_a: tuple[float, float, float]

    def to_bytes(self) -> bytes:
        """The projection as a compressed ``.npz`` (no pickled objects)."""
        scalars = np.array(
            [*self.section_y_vox, *self.section_x_vox, self.bin_vox, *self.shape_zyx]
            + [*self.voxel_size_zyx_a, *self.origin_zyx_a],
            dtype=np.float64,
        )
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, slabs=self.slabs, slab_z_vox=self.slab_z_vox, xz=self.xz, yz=self.yz, scalars=scalars
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PreviewProjection:
        """Read back :meth:`to_bytes`.

        Raises:
            ValueError: when ``data`` is not such a projection.
        """
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                slabs, slab_z, xz, yz, s = (arrays[k] for k in ("slabs", "slab_z_vox", "xz", "yz", "scalars"))
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"not a preview projection ({len(data)} bytes): {e}") from e
        return cls(
            slabs=slabs,
            slab_z_vox=slab_z,
            xz=xz,
            section_y_vox=(int(s[0]), int(s[1])),
            yz=yz,
            section_x_vox=(int(s[2]), int(s[3])),
            bin_vox=int(s[4]),
            shape_zyx=(int(s[5]), int(s[6]), int(s[7])),
            voxel_size_zyx_a=(float(s[8]), float(s[9]), float(s[10])),
            origin_zyx_a=(float(s[11]), float(s[12]), float(s[13])),
        )


def _bin2d(image: np.ndarray, bin_vox: int) -> np.ndarray:
    """Block means of ``bin_vox`` x ``bin_vox`` pixels (a partial block at the end is averaged too)."""
    if bin_vox == 1:
        return image
    rows, cols = (math.ceil(n / bin_vox) for n in image.shape)
    padded = np.pad(image, ((0, rows * bin_vox - image.shape[0]), (0, cols * bin_vox - image.shape[1])))
    weights = np.pad(
        np.ones_like(image), ((0, padded.shape[0] - image.shape[0]), (0, padded.shape[1] - image.shape[1]))
    )
    blocks = padded.reshape(rows, bin_vox, cols, bin_vox).sum(axis=(1, 3))
    return blocks / weights.reshape(rows, bin_vox, cols, bin_vox).sum(axis=(1, 3))


def _centred(centre: int, thickness: int, size: int) -> tuple[int, int]:
    start = min(max(0, centre - thickness // 2), max(0, size - thickness))
    return start, min(size, start + thickness)


def project_volume(
    volume: np.ndarray,
    *,
    voxel_size_zyx_a: Sequence[float],
    origin_zyx_a: Sequence[float] = (0.0, 0.0, 0.0),
    slab_count: int = DEFAULT_SLAB_COUNT,
    slab_thickness_vox: int = DEFAULT_SLAB_THICKNESS_VOX,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> PreviewProjection:
    """Keep a small projection of ``volume`` for :func:`preview_figure`.

    Slabs are ``slab_thickness_vox`` thick, centred at ``(i + 0.5) / slab_count`` of the depth; the xz and
    yz sections are as thick, through the middle of y and of x. Every image is binned by one factor, the
    smallest that keeps the longest axis within ``max_pixels``. One pass over the slabs' and sections'
    voxels only (a few percent of the volume).

    Args:
        volume: ``(Z, Y, X)`` float, normalised intensities.
        voxel_size_zyx_a: its voxel size, zyx, Å.
        origin_zyx_a: where its voxel 0 lies in the picks' frame, zyx, Å (default 0).
        slab_count: number of z-slabs, at least 1 (default 4).
        slab_thickness_vox: voxels averaged in each slab and section, at least 1 (default 8).
        max_pixels: longest side of a stored image, pixels, at least 16 (default 256).

    Returns:
        The projection, display range from the 1st to the 99th percentile of the kept voxels.

    Raises:
        ValueError: for a volume that is not 3-D, or an argument out of range (named, with its value).
    """
    if np.ndim(volume) != 3 or min(np.shape(volume)) < 1:
        raise ValueError(f"volume must be a non-empty (Z, Y, X) array; got shape {np.shape(volume)}")
    for name, value, least in (
        ("slab_count", slab_count, 1),
        ("slab_thickness_vox", slab_thickness_vox, 1),
        ("max_pixels", max_pixels, 16),
    ):
        if int(value) != value or value < least:
            raise ValueError(f"{name} must be an integer of at least {least}; got {value!r}")
    depth, height, width = volume.shape
    bin_vox = max(1, math.ceil(max(volume.shape) / max_pixels))
    bounds = np.array(
        [_centred(int((i + 0.5) * depth / slab_count), slab_thickness_vox, depth) for i in range(slab_count)],
        dtype=np.int64,
    )
    slab_means = [volume[z0:z1].mean(axis=0, dtype=np.float32) for z0, z1 in bounds]
    y0, y1 = _centred(height // 2, slab_thickness_vox, height)
    x0, x1 = _centred(width // 2, slab_thickness_vox, width)
    xz = volume[:, y0:y1, :].mean(axis=1, dtype=np.float32)
    yz = volume[:, :, x0:x1].mean(axis=2, dtype=np.float32)
    images = [_bin2d(image, bin_vox) for image in (*slab_means, xz, yz)]
    finite = np.concatenate([image[np.isfinite(image)].ravel() for image in images])
    low, high = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
    scale = 255.0 / max(float(high - low), 1e-12)

    def to_u8(image: np.ndarray) -> np.ndarray:
        return np.clip((np.nan_to_num(image, nan=low) - low) * scale, 0, 255).round().astype(np.uint8)

    return PreviewProjection(
        slabs=np.stack([to_u8(image) for image in images[:slab_count]]),
        slab_z_vox=bounds,
        xz=to_u8(images[-2]),
        section_y_vox=(y0, y1),
        yz=to_u8(images[-1]),
        section_x_vox=(x0, x1),
        bin_vox=bin_vox,
        shape_zyx=(depth, height, width),
        voxel_size_zyx_a=tuple(float(v) for v in voxel_size_zyx_a),  # type: ignore[arg-type]
        origin_zyx_a=tuple(float(v) for v in origin_zyx_a),  # type: ignore[arg-type]
    )


def _cut_radius_vox(centre_vox: float, radius_vox: float, start_vox: int, stop_vox: int) -> float:
    """Radius of a sphere's cut by the slab ``[start, stop)`` of voxels (its widest cut); 0 when none."""
    gap = max(start_vox - 0.5 - centre_vox, centre_vox - (stop_vox - 0.5), 0.0)
    return math.sqrt(radius_vox**2 - gap**2) if gap < radius_vox else 0.0


def _draw_image(axes: Axes, image: np.ndarray, bin_vox: int, title: str) -> None:
    # Voxel index i sits at coordinate i; pixel j spans voxels [j*bin, (j+1)*bin).
    rows, cols = image.shape
    axes.imshow(
        image,
        cmap="gray",
        vmin=0,
        vmax=255,
        origin="lower",
        interpolation="nearest",
        extent=(-0.5, cols * bin_vox - 0.5, -0.5, rows * bin_vox - 0.5),
    )
    axes.set_title(title, fontsize=8)
    axes.tick_params(labelsize=6)


def preview_figure(projection: PreviewProjection, document: PicksDocument) -> Figure:
    """The figure of ``document``'s picks over ``projection``: the slabs in the top row, the xz and yz
    sections below, axes in voxels of the projected volume, a legend with the count per class.

    Each pick is drawn on every image whose depth its sphere (class radius) reaches, as an ellipse of the
    cut's radius (a circle for cubic voxels) around its centre.

    Args:
        projection: from :func:`project_volume`.
        document: the picks, xyz in Å of the frame ``projection.origin_zyx_a`` refers to.

    Returns:
        A matplotlib figure on an Agg canvas (no display needed).

    Raises:
        ValueError: for a class name the document holds that is no particle class.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Ellipse

    depth, height, width = projection.shape_zyx
    vs_z, vs_y, vs_x = projection.voxel_size_zyx_a
    slab_count = len(projection.slabs)
    figure = Figure(figsize=(2.6 * slab_count, 2.6 + 2.6 * max(depth / max(height, width), 0.3) + 0.6))
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(
        2, 2 * slab_count, height_ratios=[1.0, max(depth / max(height, width), 0.3) * 2]
    )
    slab_axes = [figure.add_subplot(grid[0, 2 * i : 2 * i + 2]) for i in range(slab_count)]
    xz_axes = figure.add_subplot(grid[1, :slab_count])
    yz_axes = figure.add_subplot(grid[1, slab_count:])
    for axes, image, (z0, z1) in zip(slab_axes, projection.slabs, projection.slab_z_vox):
        _draw_image(axes, image, projection.bin_vox, f"z {z0}-{z1 - 1} of {depth}")
        axes.set_xlabel("x (voxels)", fontsize=6)
    slab_axes[0].set_ylabel("y (voxels)", fontsize=6)
    y0, y1 = projection.section_y_vox
    x0, x1 = projection.section_x_vox
    _draw_image(xz_axes, projection.xz, projection.bin_vox, f"xz at y {y0}-{y1 - 1}")
    _draw_image(yz_axes, projection.yz, projection.bin_vox, f"yz at x {x0}-{x1 - 1}")
    for axes, xlabel in ((xz_axes, "x (voxels)"), (yz_axes, "y (voxels)")):
        axes.set_xlabel(xlabel, fontsize=6)
        axes.set_ylabel("z (voxels)", fontsize=6)
        axes.set_aspect(vs_z / (vs_x if axes is xz_axes else vs_y))
    for axes in slab_axes:
        axes.set_aspect(vs_y / vs_x)

    origin_xyz_a = np.asarray(projection.origin_zyx_a[::-1])
    handles = []
    for name, points in document.picks.items():
        particle = particle_by_name(name)
        colour = _CLASS_COLOURS[(particle.label - 1) % len(_CLASS_COLOURS)]
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markerfacecolor="none",
                markeredgecolor=colour,
                label=f"{name} ({len(points)})",
            )
        )
        radius_a = particle.radius_a
        centres = xyz_a_to_zyx_vox(points_array(points) - origin_xyz_a, projection.voxel_size_zyx_a)
        for z, y, x in centres:
            # (axes, centre along its depth, depth bounds, the depth's voxel size, centre in-plane, in-plane sizes)
            cuts = [
                (axes, z, (z0, z1), vs_z, (x, y), (vs_x, vs_y))
                for axes, (z0, z1) in zip(slab_axes, projection.slab_z_vox)
            ]
            cuts.append((xz_axes, y, (y0, y1), vs_y, (x, z), (vs_x, vs_z)))
            cuts.append((yz_axes, x, (x0, x1), vs_x, (y, z), (vs_y, vs_z)))
            for axes, along, (start, stop), along_a, centre, in_plane_a in cuts:
                cut_a = _cut_radius_vox(along, radius_a / along_a, int(start), int(stop)) * along_a
                if cut_a > 0:
                    axes.add_patch(
                        Ellipse(
                            centre,
                            2 * cut_a / in_plane_a[0],
                            2 * cut_a / in_plane_a[1],
                            fill=False,
                            edgecolor=colour,
                            linewidth=1.0,
                        )
                    )
    total = sum(document.counts().values())
    figure.suptitle(
        f"{document.run_name}: {total} picks ({document.model_version or 'no model'})", fontsize=9
    )
    if handles:
        figure.legend(
            handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=7, frameon=False
        )
    figure.subplots_adjust(left=0.05, right=0.98, top=0.9, bottom=0.12, wspace=0.6, hspace=0.45)
    return figure


def render_preview_png(projection: PreviewProjection, document: PicksDocument, *, dpi: int = 100) -> bytes:
    """The :func:`preview_figure` as PNG bytes.

    Args:
        projection: from :func:`project_volume`.
        document: the picks.
        dpi: pixels per inch of the PNG (default 100).

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: as :func:`preview_figure`.
    """
    buffer = io.BytesIO()
    preview_figure(projection, document).savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
