"""The preview: a small projection of the volume, and the picks drawn over it where they belong."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.patches import Ellipse

from octopi_core.particles import particle_by_name
from octopi_core.picks import PickPoint, PicksDocument
from octopi_core.preview import (
    _CLASS_COLOURS,
    PreviewProjection,
    preview_figure,
    project_volume,
    render_preview_png,
)


def _document(picks: dict[str, list[PickPoint]]) -> PicksDocument:
    return PicksDocument(
        tomogram_uri="/data/t.zarr", run_name="t", voxel_size_xyz_a=(10.0, 10.0, 10.0), picks=picks
    )


def _flat_projection(shape_zyx=(64, 128, 128), bin_vox=1) -> PreviewProjection:
    depth, height, width = shape_zyx
    grey = 128
    return PreviewProjection(
        slabs=np.full((2, height // bin_vox, width // bin_vox), grey, np.uint8),
        slab_z_vox=np.array([[12, 20], [44, 52]]),
        xz=np.full((depth // bin_vox, width // bin_vox), grey, np.uint8),
        section_y_vox=(60, 68),
        yz=np.full((depth // bin_vox, height // bin_vox), grey, np.uint8),
        section_x_vox=(60, 68),
        bin_vox=bin_vox,
        shape_zyx=shape_zyx,
        voxel_size_zyx_a=(10.0, 10.0, 10.0),
        origin_zyx_a=(0.0, 0.0, 0.0),
    )


def test_projection_keeps_small_binned_slabs_and_sections():
    volume = np.random.default_rng(0).normal(size=(40, 600, 300)).astype(np.float32)
    projection = project_volume(volume, voxel_size_zyx_a=(10.0, 10.0, 10.0), slab_count=3)
    assert projection.bin_vox == 3  # 600 / 256 rounded up
    assert projection.slabs.shape == (3, 200, 100) and projection.slabs.dtype == np.uint8
    assert projection.xz.shape == (14, 100) and projection.yz.shape == (14, 200)
    assert projection.slab_z_vox.tolist() == [[2, 10], [16, 24], [29, 37]]
    assert projection.section_y_vox == (296, 304) and projection.section_x_vox == (146, 154)
    restored = PreviewProjection.from_bytes(projection.to_bytes())
    assert np.array_equal(restored.slabs, projection.slabs) and np.array_equal(restored.yz, projection.yz)
    assert restored.shape_zyx == (40, 600, 300) and restored.voxel_size_zyx_a == (10.0, 10.0, 10.0)
    assert len(projection.to_bytes()) < 200_000


def test_a_bright_block_shows_in_its_slab_at_its_place():
    volume = np.zeros((32, 64, 64), np.float32)
    volume[12:20, 40:48, 8:16] = 10.0  # between the two slabs (centred at z 8 and 24, 8 voxels thick)
    projection = project_volume(volume, voxel_size_zyx_a=(10, 10, 10), slab_count=2, slab_thickness_vox=8)
    assert projection.slab_z_vox.tolist() == [[4, 12], [20, 28]]
    assert projection.slabs[0].max() == 0 and projection.slabs[1].max() == 0  # neither slab holds it
    volume[4:12, 40:48, 8:16] = 10.0
    slab = project_volume(volume, voxel_size_zyx_a=(10, 10, 10), slab_count=2).slabs[0]
    rows, cols = np.nonzero(slab == slab.max())
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (40, 47, 8, 15)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"slab_count": 0}, "slab_count"),
        ({"max_pixels": 4}, "max_pixels"),
        ({"slab_thickness_vox": 1.5}, "slab"),
    ],
)
def test_projection_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        project_volume(np.zeros((8, 8, 8), np.float32), voxel_size_zyx_a=(10, 10, 10), **kwargs)
    with pytest.raises(ValueError, match="volume"):
        project_volume(np.zeros((8, 8), np.float32), voxel_size_zyx_a=(10, 10, 10))


def test_from_bytes_refuses_other_data():
    with pytest.raises(ValueError, match="not a preview projection"):
        PreviewProjection.from_bytes(b"not an npz")


@pytest.mark.parametrize("bin_vox", [1, 2])
def test_a_pick_lands_at_its_pixel(bin_vox):
    """Render one ribosome at (x, y, z) = (300, 900, 160) Å, i.e. voxel (30, 90, 16) in slab 0 (z 12..19);
    find the circle's pixels by colour in the rendered image and compare their centre with where the
    slab's axes put voxel (30, 90)."""
    projection = _flat_projection(bin_vox=bin_vox)
    figure = preview_figure(projection, _document({"ribosome": [PickPoint(x=300.0, y=900.0, z=160.0)]}))
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].astype(float) / 255  # type: ignore[attr-defined]
    slab_axes = figure.axes[0]
    colour = np.array(to_rgb(_CLASS_COLOURS[particle_by_name("ribosome").label - 1]))
    (x0, y0), (x1, y1) = slab_axes.bbox.get_points()
    height = image.shape[0]
    inside = image[int(height - y1) : int(height - y0), int(x0) : int(x1)]
    rows, cols = np.nonzero(np.abs(inside - colour).sum(axis=-1) < 0.25)
    assert rows.size > 20, "the circle is not drawn"
    found_x, found_y = cols.mean() + int(x0), rows.mean() + int(height - y1)
    expected_x, expected_y = slab_axes.transData.transform((30.0, 90.0))
    assert abs(found_x - expected_x) < 1.5 and abs(found_y - (height - expected_y)) < 1.5
    # the circle's radius is the class radius (150 Å = 15 voxels) where the centre lies inside the slab
    circle = next(p for p in slab_axes.patches if isinstance(p, Ellipse))
    assert circle.width == pytest.approx(30.0) and circle.height == pytest.approx(30.0)


def test_a_pick_is_drawn_only_where_its_sphere_reaches():
    # apo-ferritin (60 Å = 6 voxels) at z 26: 6.5 voxels from slab 0's last voxel (19), inside neither slab
    near = PickPoint(x=640.0, y=640.0, z=260.0)
    figure = preview_figure(_flat_projection(), _document({"apo-ferritin": [near]}))
    slab_0, slab_1, xz, yz = figure.axes[:4]
    assert not slab_0.patches and not slab_1.patches
    assert len(xz.patches) == 1 and len(yz.patches) == 1  # y and x 64 are inside both sections
    # at z 23, 3.5 voxels past slab 0's last voxel plane (19.5): a cut of radius sqrt(6^2 - 3.5^2) voxels
    cut = preview_figure(_flat_projection(), _document({"apo-ferritin": [PickPoint(x=640, y=640, z=230)]}))
    (ellipse,) = cut.axes[0].patches
    assert ellipse.width == pytest.approx(2 * np.sqrt(36 - 3.5**2))


def test_legend_counts_every_class_and_png_is_written():
    document = _document({"ribosome": [PickPoint(x=300, y=300, z=160)] * 3, "apo-ferritin": []})
    figure = preview_figure(_flat_projection(), document)
    labels = [t.get_text() for legend in figure.legends for t in legend.get_texts()]
    assert labels == ["ribosome (3)", "apo-ferritin (0)"]
    png = render_preview_png(_flat_projection(), document)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_unknown_class_is_refused():
    with pytest.raises(ValueError):
        preview_figure(_flat_projection(), _document({"not-a-class": [PickPoint(x=0, y=0, z=0)]}))
