"""Tests for octopi_core.io: every format, over local paths, file://, HTTP and S3, and the error matrix."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import zarr

from octopi_core.exceptions import (
    CorruptTomogramError,
    EmptyTomogramError,
    InferenceCancelledError,
    InvalidTomogramShapeError,
    InvalidVoxelSizeError,
    OutputNotWritableError,
    TomogramAccessDeniedError,
    TomogramNotFoundError,
    TomogramTooLargeError,
    TomogramTooSmallError,
    TomogramUnreachableError,
    TooManyChunksError,
    UnsupportedFormatError,
    UnsupportedUriError,
)
from octopi_core.export import picks_document_from_voxels, render_picks
from octopi_core.io import (
    check_output_writable,
    load_tomogram,
    normalize_volume,
    open_tomogram,
    service_storage_options,
    write_mrc,
    write_ome_zarr,
    write_output,
)
from octopi_core.limits import TomogramLimits
from octopi_core.localize import ClassPicks

SHAPE = (24, 40, 48)


def _volume(shape=SHAPE, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(5.0, 2.0, size=shape).astype(np.float32)


def _normalized(volume: np.ndarray) -> np.ndarray:
    return normalize_volume(volume.astype(np.float32))


def _write(kind: str, directory: Path, volume: np.ndarray, voxel_size_a=10.0) -> Path:
    """Write ``volume`` in format ``kind``; return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    if kind == "ome-zarr-v2":
        path = directory / "tomo.zarr"
        write_ome_zarr(str(path), volume, voxel_size_a, zarr_format=2, chunks_zyx=(8, 16, 16))
    elif kind == "ome-zarr-v3":
        path = directory / "tomo.zarr"
        write_ome_zarr(str(path), volume, voxel_size_a, zarr_format=3, chunks_zyx=(8, 16, 16))
    else:
        path = directory / f"tomo.{kind}"
        write_mrc(str(path), volume, voxel_size_a)
    return path


def _publish(local: Path, access: str, request: pytest.FixtureRequest) -> str:
    """Make ``local`` reachable by ``access`` (local, file, http, s3); return its URI."""
    if access == "local":
        return str(local)
    if access == "file":
        return local.as_uri()
    unique = uuid.uuid4().hex[:8]
    if access == "http":
        server = request.getfixturevalue("http_server")
        dest = server.root / unique / local.name
        dest.parent.mkdir(parents=True)
        (shutil.copytree if local.is_dir() else shutil.copyfile)(local, dest)
        return f"{server.url}/{unique}/{local.name}"
    server, bucket = request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket")
    return server.upload(local, bucket, f"{unique}/{local.name}")


def _write_mrc_raw(path: Path, data: np.ndarray, voxel_size_xyz=(10.0, 10.0, 10.0)) -> Path:
    with mrcfile.new(str(path), overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel_size_xyz
    return path


# ------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("access", ["local", "file", "http", "s3"])
@pytest.mark.parametrize("kind", ["ome-zarr-v2", "ome-zarr-v3", "mrc", "rec"])
def test_every_format_reads_back_the_same_values(kind, access, tmp_path, request):
    volume = _volume()
    uri = _publish(_write(kind, tmp_path, volume), access, request)

    loaded = load_tomogram(uri, target_voxel_size_a=10.0)

    assert loaded.volume.shape == SHAPE and loaded.volume.dtype == np.float32
    assert loaded.volume.flags.c_contiguous
    np.testing.assert_allclose(loaded.volume, _normalized(volume), atol=1e-5)
    assert loaded.voxel_size_zyx_a == (10.0, 10.0, 10.0)
    assert loaded.origin_zyx_a == (0.0, 0.0, 0.0)
    assert loaded.format == ("mrc" if kind in ("mrc", "rec") else "ome-zarr")
    assert not loaded.resampled
    assert loaded.identity


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("access", ["local", "http", "s3"])
def test_multiscale_level_nearest_the_target_is_chosen(zarr_format, access, tmp_path, request):
    volume = _volume()
    path = tmp_path / "tomo.zarr"
    write_ome_zarr(str(path), volume, 5.0, zarr_format=zarr_format, n_levels=2, chunks_zyx=(8, 16, 16))
    uri = _publish(path, access, request)

    with open_tomogram(uri, target_voxel_size_a=10.0) as coarse:
        assert coarse.level_path == "1"
        assert coarse.shape_zyx == (12, 20, 24)
        assert coarse.voxel_size_zyx_a == (10.0, 10.0, 10.0)
        assert coarse.origin_zyx_a == (2.5, 2.5, 2.5)  # centre of the first 2x2x2 level-0 block
        assert coarse.identity.endswith("@1")
        assert coarse.slab_depth() == 8
    with open_tomogram(uri, target_voxel_size_a=5.0) as fine:
        assert fine.level_path == "0" and fine.shape_zyx == SHAPE and fine.voxel_size_zyx_a == (5.0, 5.0, 5.0)
        np.testing.assert_array_equal(fine.read_slab(3, 7), volume[3:7])


def test_write_ome_zarr_metadata_follows_ngff(tmp_path):
    write_ome_zarr(str(tmp_path / "v2.zarr"), _volume(), 5.0, zarr_format=2, n_levels=2)
    write_ome_zarr(str(tmp_path / "v3.zarr"), _volume(), (5.0, 6.0, 7.0), zarr_format=3, n_levels=2)

    ms2 = json.loads((tmp_path / "v2.zarr" / ".zattrs").read_text())["multiscales"][0]
    ome3 = json.loads((tmp_path / "v3.zarr" / "zarr.json").read_text())["attributes"]["ome"]
    assert ms2["version"] == "0.4" and ome3["version"] == "0.5"
    assert [a["unit"] for a in ms2["axes"]] == ["angstrom"] * 3
    assert ome3["multiscales"][0]["datasets"][1]["coordinateTransformations"] == [
        {"type": "scale", "scale": [10.0, 12.0, 14.0]},
        {"type": "translation", "translation": [2.5, 3.0, 3.5]},
    ]


def test_ngff_units_and_multiscale_transform_are_composed(tmp_path):
    path = tmp_path / "nm.zarr"
    write_ome_zarr(str(path), _volume(), 1.0, zarr_format=2)
    attrs = json.loads((path / ".zattrs").read_text())
    ms = attrs["multiscales"][0]
    for axis in ms["axes"]:
        axis["unit"] = "nanometer"
    ms["datasets"][0]["coordinateTransformations"] = [
        {"type": "scale", "scale": [0.5, 0.5, 0.5]},
        {"type": "translation", "translation": [1.0, 2.0, 3.0]},
    ]
    ms["coordinateTransformations"] = [{"type": "scale", "scale": [2.0, 2.0, 2.0]}]
    (path / ".zattrs").write_text(json.dumps(attrs))

    with open_tomogram(str(path)) as source:
        assert source.voxel_size_zyx_a == (10.0, 10.0, 10.0)  # 0.5 nm * 2 = 1 nm = 10 Å
        assert source.origin_zyx_a == (20.0, 40.0, 60.0)  # translation (1, 2, 3) nm * 2


def test_missing_unit_asks_for_the_voxel_size_and_override_rescales_levels(tmp_path):
    # issue 15: a unit-less scale was taken as Å (1 Å per voxel for a bare pyramid) and refused as too small
    path = tmp_path / "nounit.zarr"
    write_ome_zarr(str(path), _volume(), 4.0, zarr_format=3, n_levels=2)
    meta = json.loads((path / "zarr.json").read_text())
    for axis in meta["attributes"]["ome"]["multiscales"][0]["axes"]:
        del axis["unit"]
    (path / "zarr.json").write_text(json.dumps(meta))

    with pytest.raises(InvalidVoxelSizeError, match=r"no unit.*--voxel-size.*voxel_size_a"):
        open_tomogram(str(path), target_voxel_size_a=4.0)
    with open_tomogram(str(path), target_voxel_size_a=10.0, voxel_size_a=5.0) as source:
        assert source.level_path == "1"
        assert source.voxel_size_zyx_a == (10.0, 10.0, 10.0)
        assert source.origin_zyx_a == (2.5, 2.5, 2.5)


def test_channel_axis_of_length_one_is_squeezed_and_longer_is_refused(tmp_path):
    for channels in (1, 2):
        path = tmp_path / f"c{channels}.zarr"
        root = zarr.open_group(str(path), mode="w", zarr_format=3)
        array = root.create_array("0", shape=(channels, *SHAPE), dtype="float32", chunks=(1, 8, 40, 48))
        array[...] = np.stack([_volume(seed=c) for c in range(channels)])
        axes = [{"name": "c", "type": "channel"}] + [
            {"name": n, "type": "space", "unit": "angstrom"} for n in "zyx"
        ]
        root.attrs["ome"] = {
            "version": "0.5",
            "multiscales": [
                {
                    "axes": axes,
                    "datasets": [
                        {
                            "path": "0",
                            "coordinateTransformations": [
                                {"type": "scale", "scale": [1.0, 10.0, 10.0, 10.0]}
                            ],
                        }
                    ],
                }
            ],
        }
        if channels == 1:
            loaded = load_tomogram(str(path))
            np.testing.assert_allclose(loaded.volume, _normalized(_volume()), atol=1e-5)
        else:
            with pytest.raises(InvalidTomogramShapeError, match=r"\(2, 24, 40, 48\)"):
                open_tomogram(str(path))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_plain_zarr_array_needs_a_voxel_size_override(zarr_format, tmp_path):
    volume = _volume()
    path = tmp_path / "plain.zarr"
    zarr.create_array(str(path), shape=SHAPE, dtype="float32", chunks=(8, 40, 48), zarr_format=zarr_format)[
        ...
    ] = volume

    with pytest.raises(InvalidVoxelSizeError, match="voxel_size_a"):
        open_tomogram(str(path))
    loaded = load_tomogram(str(path), voxel_size_a=10.0)
    assert loaded.format == "zarr" and loaded.voxel_size_zyx_a == (10.0, 10.0, 10.0)
    np.testing.assert_allclose(loaded.volume, _normalized(volume), atol=1e-5)


@pytest.mark.parametrize("access", ["local", "http", "s3"])
@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint8])
def test_integer_mrc_modes(dtype, access, tmp_path, request):
    info = np.iinfo(dtype)
    volume = np.random.default_rng(1).integers(info.min, info.max, size=SHAPE, endpoint=True).astype(dtype)
    uri = _publish(_write_mrc_raw(tmp_path / "int.mrc", volume), access, request)

    with open_tomogram(uri) as source:
        slab = source.read_slab(0, 4)
        assert slab.dtype.kind in "iu" and slab.shape == (4, 40, 48)
        np.testing.assert_array_equal(slab, volume[:4])
    loaded = load_tomogram(uri)
    np.testing.assert_allclose(loaded.volume, _normalized(volume), atol=1e-5)


def test_format_is_sniffed_without_a_known_extension(tmp_path, http_server):
    volume = _volume()
    mrc = tmp_path / "tomogram.bin"
    write_mrc(str(mrc), volume, 10.0)
    store = tmp_path / "tomogram_store"
    write_ome_zarr(str(store), volume, 10.0, zarr_format=3)
    (tmp_path / "notes.dat").write_bytes(b"not a tomogram" * 100)

    assert open_tomogram(str(mrc)).format == "mrc"
    assert open_tomogram(str(store)).format == "ome-zarr"
    unique = uuid.uuid4().hex[:8]
    shutil.copyfile(mrc, (http_server.root / unique).with_suffix(".bin"))
    assert open_tomogram(f"{http_server.url}/{unique}.bin").format == "mrc"
    with pytest.raises(UnsupportedFormatError, match="MAP"):
        open_tomogram(str(tmp_path / "notes.dat"))


# ------------------------------------------------------------------------------------ geometry and resampling


def test_bright_voxel_keeps_its_physical_position_without_resampling(tmp_path):
    volume = _volume(seed=3) * 0.1
    volume[10:12, 12:14, 14:16] = 50.0  # a 2x2x2 block: one voxel of level 1
    path = tmp_path / "bright.zarr"
    write_ome_zarr(str(path), volume, 5.0, zarr_format=2, n_levels=2)

    loaded = load_tomogram(str(path), target_voxel_size_a=10.0)

    assert not loaded.resampled and loaded.voxel_size_zyx_a == (10.0, 10.0, 10.0)
    peak = np.unravel_index(np.argmax(loaded.volume), loaded.volume.shape)
    position_a = np.add(loaded.origin_zyx_a, np.multiply(peak, loaded.voxel_size_zyx_a))
    np.testing.assert_allclose(position_a, [10.5 * 5.0, 12.5 * 5.0, 14.5 * 5.0])  # block centre at 5 Å/voxel


def test_anisotropic_source_is_resampled_to_the_target(tmp_path):
    volume = np.random.default_rng(4).normal(0.0, 1.0, size=SHAPE).astype(np.float32)
    volume[12, 20, 30] = 8.0  # physical (z, y, x) = (12*10, 20*12, 30*8) = (120, 240, 240) Å
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    blob_a = (80.0, 150.0, 300.0)  # a smooth blob far from the bright voxel, centred in Å
    volume += 6.0 * np.exp(
        -((zz * 10 - blob_a[0]) ** 2 + (yy * 12 - blob_a[1]) ** 2 + (xx * 8 - blob_a[2]) ** 2) / (2 * 25.0**2)
    ).astype(np.float32)
    path = _write_mrc_raw(tmp_path / "aniso.mrc", volume, voxel_size_xyz=(8.0, 12.0, 10.0))

    loaded = load_tomogram(str(path), target_voxel_size_a=10.0)

    assert loaded.resampled
    assert loaded.source_voxel_size_zyx_a == (10.0, 12.0, 8.0)
    assert loaded.voxel_size_zyx_a == (10.0, 10.0, 10.0)
    assert loaded.volume.shape == (24, 48, 38)  # round(40 * 12 / 10), round(48 * 8 / 10)
    peak = np.unravel_index(np.argmax(loaded.volume), loaded.volume.shape)
    assert tuple(int(i) for i in peak) == (12, 24, 24)  # 120, 240, 240 Å at 10 Å/voxel
    region = np.clip(loaded.volume[4:13, 10:21, 25:36], 0, None)
    weights = region / region.sum()
    grid = np.meshgrid(np.arange(4, 13), np.arange(10, 21), np.arange(25, 36), indexing="ij")
    centre_a = [float((g * weights).sum()) * 10.0 for g in grid]
    np.testing.assert_allclose(centre_a, blob_a, atol=6.0)


@pytest.mark.parametrize("source_a", [7.0, 13.0, 31.0])
def test_slab_wise_resampling_matches_whole_volume_interpolation(source_a, tmp_path):
    from scipy.ndimage import affine_transform

    volume = _volume(seed=7)
    path = tmp_path / "slabs.zarr"
    write_ome_zarr(str(path), volume, source_a, zarr_format=2, chunks_zyx=(5, 16, 16))  # 5-plane slabs

    loaded = load_tomogram(str(path), target_voxel_size_a=10.0)

    shape = tuple(round(n * source_a / 10.0) for n in SHAPE)
    expected = affine_transform(
        volume, np.full(3, 10.0 / source_a), output_shape=shape, order=1, mode="nearest"
    )
    assert loaded.resampled and loaded.volume.shape == shape
    np.testing.assert_allclose(loaded.volume, _normalized(expected), atol=1e-4)


def test_read_slab_checks_its_range(tmp_path):
    with open_tomogram(str(_write("mrc", tmp_path, _volume()))) as source:
        assert source.slab_depth() == 16
        with pytest.raises(ValueError, match=r"\[20, 30\)"):
            source.read_slab(20, 30)


def test_small_voxel_size_difference_is_not_resampled(tmp_path):
    path = _write_mrc_raw(tmp_path / "close.mrc", _volume(), voxel_size_xyz=(10.4, 10.4, 9.7))
    loaded = load_tomogram(str(path), target_voxel_size_a=10.0)
    assert not loaded.resampled and loaded.volume.shape == SHAPE
    np.testing.assert_allclose(loaded.voxel_size_zyx_a, (9.7, 10.4, 10.4), rtol=1e-6)


def test_resampling_with_a_large_ratio_keeps_the_origin(tmp_path):
    path = tmp_path / "fine.zarr"
    write_ome_zarr(str(path), _volume(), 2.0, zarr_format=3)
    loaded = load_tomogram(str(path), target_voxel_size_a=20.0)
    assert loaded.resampled and loaded.volume.shape == (2, 4, 5)
    assert loaded.origin_zyx_a == (0.0, 0.0, 0.0)


# ---------------------------------------------------------------------------------------- normalisation


def test_normalize_volume_is_robust_in_place_and_clears_non_finite():
    volume = np.random.default_rng(5).normal(100.0, 3.0, size=(32, 32, 32)).astype(np.float32)
    volume[0, 0, :4] = [np.nan, np.inf, -np.inf, 1e30]
    result = normalize_volume(volume)
    assert result is volume
    assert abs(float(np.median(volume))) < 0.05
    assert 0.9 < 1.4826 * float(np.median(np.abs(volume))) < 1.1
    assert volume[0, 0, :3].tolist() == [0.0, 0.0, 0.0] and volume[0, 0, 3] == 10.0
    assert np.isfinite(volume).all() and volume.max() <= 10.0 and volume.min() >= -10.0


def test_normalize_volume_treats_every_block_and_any_memory_layout_alike():
    # Over 2 M voxels it works block by block: a NaN in the last block, and a transposed (non-contiguous)
    # view, which it normalises whole, give what the same values give contiguous.
    volume = np.random.default_rng(6).normal(5.0, 2.0, size=(40, 200, 300)).astype(np.float32)
    volume[-1, -1, -3:] = [np.nan, np.inf, 1e30]
    expected = normalize_volume(volume.copy())
    assert expected[-1, -1, -3:].tolist() == [0.0, 0.0, 10.0]
    transposed = volume.copy().transpose(2, 1, 0)
    assert normalize_volume(transposed) is transposed and not transposed.flags.c_contiguous
    assert np.array_equal(transposed.transpose(2, 1, 0), expected)
    centre, scale = np.median(volume[::10, ::10, ::10]), 2.0  # about what it measured (1.4826 MAD = sigma)
    assert np.allclose(expected[:4], np.clip((volume[:4] - centre) / scale, -10, 10), atol=0.05)


def test_normalize_volume_falls_back_to_std_for_sparse_signal():
    volume = np.zeros((16, 16, 16), dtype=np.float32)
    volume[8, 8, 8] = 1.0
    normalize_volume(volume)
    assert volume[8, 8, 8] > 0 and volume[0, 0, 0] == 0.0


def test_normalize_volume_refuses_other_dtypes():
    with pytest.raises(TypeError, match="float32"):
        normalize_volume(np.zeros((4, 4, 4)))


# ------------------------------------------------------------------------------------------- bad inputs


def test_missing_local_files(tmp_path):
    for name in ("absent.mrc", "absent.zarr", "absent"):
        with pytest.raises(TomogramNotFoundError, match="absent"):
            open_tomogram(str(tmp_path / name))


@pytest.mark.parametrize("name", ["gone.mrc", "gone.zarr", "gone"])
def test_http_404_is_not_found(name, http_server):
    with pytest.raises(TomogramNotFoundError, match=name):
        open_tomogram(f"{http_server.url}/{name}")


@pytest.mark.parametrize("name", ["tomo.mrc", "tomo.zarr"])
def test_http_403_is_access_denied(name, http_server, tmp_path):
    _write("mrc", http_server.root / "forbidden", _volume())
    with pytest.raises(TomogramAccessDeniedError, match="denied"):
        open_tomogram(f"{http_server.url}/forbidden/{name}")


def test_unreachable_host_fails_fast():
    started = time.monotonic()
    with pytest.raises(TomogramUnreachableError, match="127.0.0.1:1"):
        load_tomogram("http://127.0.0.1:1/tomo.mrc")
    assert time.monotonic() - started < 10.0


def test_missing_s3_key_and_bucket(s3_bucket):
    with pytest.raises(TomogramNotFoundError, match="nothing.mrc"):
        open_tomogram(f"s3://{s3_bucket}/nothing.mrc")
    with pytest.raises(TomogramNotFoundError, match="nothing.zarr"):
        open_tomogram(f"s3://{s3_bucket}/nothing.zarr")
    with pytest.raises(TomogramNotFoundError):
        open_tomogram("s3://no-such-bucket-octopi/tomo.mrc")


@pytest.mark.parametrize(
    "uri", ["ftp://example.org/tomo.mrc", "gs://bucket/tomo.zarr", "s3:///no-bucket.mrc"]
)
def test_unsupported_schemes(uri):
    with pytest.raises(UnsupportedUriError, match="URI"):
        open_tomogram(uri)


@pytest.mark.parametrize("access", ["local", "http"])
def test_garbage_mrc_is_corrupt(access, tmp_path, request):
    path = tmp_path / "garbage.mrc"
    path.write_bytes(np.random.default_rng(6).bytes(5000))
    with pytest.raises(CorruptTomogramError, match="garbage.mrc.*corrupt"):
        open_tomogram(_publish(path, access, request))


@pytest.mark.parametrize("access", ["local", "http", "s3"])
def test_truncated_mrc_is_corrupt(access, tmp_path, request):
    path = _write("mrc", tmp_path, _volume())
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(CorruptTomogramError, match="truncated"):
        load_tomogram(_publish(path, access, request))


@pytest.mark.parametrize("kind,meta_file", [("ome-zarr-v2", ".zattrs"), ("ome-zarr-v3", "zarr.json")])
@pytest.mark.parametrize("access", ["local", "http"])
def test_broken_zarr_metadata_is_corrupt(kind, meta_file, access, tmp_path, request):
    path = _write(kind, tmp_path, _volume())
    (path / meta_file).write_text('{"multiscales": [')
    with pytest.raises(CorruptTomogramError, match=f"{meta_file}.*not valid JSON"):
        open_tomogram(_publish(path, access, request))


def test_broken_zarr_chunk_is_corrupt(tmp_path):
    path = _write("ome-zarr-v3", tmp_path, _volume())
    chunk = next(p for p in (path / "0").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CorruptTomogramError, match="tomo.zarr"):
        load_tomogram(str(path))


def test_broken_multiscales_is_corrupt(tmp_path):
    path = _write("ome-zarr-v2", tmp_path, _volume())
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"] = [{"type": "scale", "scale": "x"}]
    (path / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(CorruptTomogramError, match="coordinate transformation"):
        open_tomogram(str(path))


@pytest.mark.parametrize("shape", [(40, 48), (2, 24, 40, 48)])
def test_arrays_that_are_not_3d_are_refused(shape, tmp_path):
    path = tmp_path / "bad.zarr"
    zarr.create_array(str(path), shape=shape, dtype="float32", zarr_format=3)[...] = 1.0
    with pytest.raises(InvalidTomogramShapeError, match=str(shape).replace("(", r"\(").replace(")", r"\)")):
        open_tomogram(str(path), voxel_size_a=10.0)


def test_single_image_mrc_is_refused(tmp_path):
    path = _write_mrc_raw(tmp_path / "image.mrc", np.ones((40, 48), dtype=np.float32))
    with pytest.raises(InvalidTomogramShapeError, match="40, 48"):
        open_tomogram(str(path))


def test_nonstandard_mrc_axis_order_is_refused(tmp_path):
    path = _write("mrc", tmp_path, _volume())
    with mrcfile.open(str(path), mode="r+") as mrc:
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 2, 1
    with pytest.raises(UnsupportedFormatError, match=r"mapc/mapr/maps = \(3, 2, 1\)"):
        open_tomogram(str(path))


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_all_nan_and_constant_volumes_are_empty(tmp_path):
    nan_path = _write("mrc", tmp_path / "nan", np.full(SHAPE, np.nan, dtype=np.float32))
    constant_path = _write("ome-zarr-v2", tmp_path / "const", np.full(SHAPE, 3.5, dtype=np.float32))
    with pytest.raises(EmptyTomogramError, match="no finite values"):
        load_tomogram(str(nan_path))
    with pytest.raises(EmptyTomogramError, match=r"constant \(value 3.5\)"):
        load_tomogram(str(constant_path))


@pytest.mark.parametrize("header_a", [0.0, 1e6])
def test_absurd_header_voxel_sizes_are_refused(header_a, tmp_path):
    path = _write_mrc_raw(tmp_path / "absurd.mrc", _volume(), voxel_size_xyz=(header_a,) * 3)
    with pytest.raises(InvalidVoxelSizeError, match="absurd.mrc"):
        open_tomogram(str(path))
    assert load_tomogram(str(path), voxel_size_a=10.0).voxel_size_zyx_a == (10.0, 10.0, 10.0)


@pytest.mark.parametrize("override", [0.0, -3.0, 1e6, float("nan")])
def test_absurd_voxel_size_override_is_refused(override, tmp_path):
    path = _write("mrc", tmp_path, _volume())
    with pytest.raises(InvalidVoxelSizeError, match="voxel_size_a"):
        open_tomogram(str(path), voxel_size_a=override)


def test_too_small_for_min_shape(tmp_path):
    path = _write("mrc", tmp_path, _volume())
    with pytest.raises(TomogramTooSmallError, match=r"\(24, 40, 48\).*\(32, 32, 32\)"):
        load_tomogram(str(path), min_shape_zyx=(32, 32, 32))
    assert load_tomogram(str(path), min_shape_zyx=(24, 40, 48)).volume.shape == SHAPE


def test_identity_changes_when_the_file_changes(tmp_path):
    path = _write("mrc", tmp_path, _volume())
    first = open_tomogram(str(path)).identity
    before = path.stat()
    write_mrc(str(path), _volume(seed=9), 10.0)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # whatever the clock's resolution
    assert open_tomogram(str(path)).identity != first


def test_write_ome_zarr_to_s3(s3_bucket, tmp_path):
    volume = _volume()
    uri = f"s3://{s3_bucket}/written.zarr"
    write_ome_zarr(uri, volume, 10.0, zarr_format=3)
    np.testing.assert_allclose(load_tomogram(uri).volume, _normalized(volume), atol=1e-5)


def test_s3_endpoint_comes_from_the_storage_options(s3_server, s3_bucket, tmp_path, monkeypatch):
    """The service passes its s3_endpoint_url setting; the environment need not name the endpoint."""
    uri = s3_server.upload(_write("mrc", tmp_path, _volume()), s3_bucket, "endpoint/tomo.mrc")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    options = service_storage_options(uri, s3_endpoint_url=s3_server.endpoint_url)
    assert options == {"client_kwargs": {"endpoint_url": s3_server.endpoint_url}}
    assert open_tomogram(uri, storage_options=options).shape_zyx == SHAPE
    written = write_output(f"s3://{s3_bucket}/out/t.picks.json", "{}", storage_options=options)
    key = written.removeprefix(f"s3://{s3_bucket}/")
    assert s3_server.client().get_object(Bucket=s3_bucket, Key=key)["Body"].read() == b"{}"
    assert service_storage_options("https://h/t.mrc", s3_endpoint_url="http://x") == {
        "allow_redirects": False
    }


def test_write_output_creates_directories_under_the_roots(tmp_path):
    target = tmp_path / "a" / "b" / "t.picks.csv"
    assert write_output(str(target), "x,y\n", local_roots=[tmp_path]) == str(target)
    assert target.read_text() == "x,y\n"
    with pytest.raises(PermissionError):
        write_output(str(tmp_path / "t.csv"), "", local_roots=[])


_LIMITS = TomogramLimits(max_voxels=10**6, max_bytes=10**8, max_chunks=1000)


def test_limits_apply_to_the_volume_as_loaded_after_resampling(tmp_path):
    path = str(_write("ome-zarr-v2", tmp_path, _volume()))
    assert open_tomogram(path, limits=_LIMITS).shape_zyx == SHAPE
    with pytest.raises(TomogramTooLargeError, match=f"{24 * 40 * 48 * 64} voxels"):
        open_tomogram(path, target_voxel_size_a=2.5, limits=_LIMITS)  # 4x per axis
    with pytest.raises(TomogramTooLargeError):
        load_tomogram(path, target_voxel_size_a=2.5, limits=_LIMITS)
    with pytest.raises(TomogramTooLargeError, match="184320 bytes"):  # float32 as stored
        open_tomogram(path, limits=TomogramLimits(max_voxels=10**6, max_bytes=184319))


def test_a_zarr_with_more_chunks_than_the_limit_is_refused_from_its_metadata(tmp_path):
    path = tmp_path / "tiny-chunks.zarr"
    write_ome_zarr(str(path), _volume(), 10.0, chunks_zyx=(4, 4, 4))  # 6 x 10 x 12 = 720 chunks
    assert open_tomogram(str(path), limits=_LIMITS).shape_zyx == SHAPE
    with pytest.raises(TooManyChunksError, match="720 chunks"):
        open_tomogram(str(path), limits=TomogramLimits(max_voxels=10**6, max_bytes=10**8, max_chunks=719))


def test_zarr_identity_changes_with_chunk_data_under_the_same_metadata(tmp_path):
    path, other = tmp_path / "a.zarr", tmp_path / "b.zarr"
    write_ome_zarr(str(path), _volume(), 10.0)
    write_ome_zarr(str(other), _volume(seed=9), 10.0)
    first = open_tomogram(str(path)).identity
    assert open_tomogram(str(path)).identity == first  # stable while nothing changes
    shutil.copyfile(other / "0" / "0" / "0" / "0", path / "0" / "0" / "0" / "0")
    assert open_tomogram(str(path)).identity != first


def _rewrite_chunk(uri: str, local: Path, donor: Path, coords: tuple[int, int, int], request) -> None:
    """Overwrite the published copy ``uri`` of ``local``'s level-0 chunk at ``coords`` with ``donor``'s."""
    key = zarr.open_array(str(local / "0"), mode="r").metadata.encode_chunk_key(coords)
    if uri.startswith("s3://"):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        request.getfixturevalue("s3_server").client().upload_file(
            str(donor / "0" / key), bucket, f"{prefix}/0/{key}"
        )
    else:
        server = request.getfixturevalue("http_server")
        shutil.copyfile(donor / "0" / key, server.root / uri.removeprefix(f"{server.url}/") / "0" / key)


# http cannot list: it watches the first, middle and last chunk objects, of which (1, 1, 1) is the middle one.
# s3 lists the level, so any chunk counts, (1, 0, 2) included.
@pytest.mark.parametrize(("access", "coords"), [("http", (1, 1, 1)), ("s3", (1, 0, 2))])
def test_remote_zarr_identity_changes_with_chunk_data_under_the_same_metadata(
    access, coords, tmp_path, request
):
    local, donor = tmp_path / "a" / "tomo.zarr", tmp_path / "b" / "tomo.zarr"
    write_ome_zarr(str(local), _volume(), 10.0, chunks_zyx=(8, 16, 16))  # 3 x 3 x 3 chunks
    write_ome_zarr(str(donor), _volume(seed=9), 10.0, chunks_zyx=(8, 16, 16))
    uri = _publish(local, access, request)
    first = open_tomogram(uri).identity
    assert first and open_tomogram(uri).identity == first  # stable while nothing changes
    _rewrite_chunk(uri, local, donor, coords, request)
    assert open_tomogram(uri).identity != first


def test_s3_zarr_identity_without_list_permission_watches_sampled_chunks(tmp_path, request, monkeypatch):
    import s3fs

    def denied(self, *args, **kwargs):
        raise PermissionError("AccessDenied: ListBucket")  # a policy granting GetObject only

    local, donor = tmp_path / "a" / "tomo.zarr", tmp_path / "b" / "tomo.zarr"
    write_ome_zarr(str(local), _volume(), 10.0, chunks_zyx=(8, 16, 16))
    write_ome_zarr(str(donor), _volume(seed=9), 10.0, chunks_zyx=(8, 16, 16))
    uri = _publish(local, "s3", request)
    monkeypatch.setattr(s3fs.S3FileSystem, "find", denied)
    first = open_tomogram(uri).identity
    assert first and open_tomogram(uri).identity == first
    _rewrite_chunk(uri, local, donor, (2, 2, 2), request)  # the last chunk: sampled
    assert open_tomogram(uri).identity != first


def test_load_tomogram_stops_between_slabs_when_cancelled(tmp_path):
    path = tmp_path / "planes.zarr"
    write_ome_zarr(str(path), _volume(), 10.0, chunks_zyx=(1, 40, 48))
    polls: list[int] = []

    def should_cancel() -> bool:
        polls.append(1)
        return len(polls) > 3

    with pytest.raises(InferenceCancelledError, match="cancelled"):
        load_tomogram(str(path), should_cancel=should_cancel)
    assert len(polls) == 4  # one poll per one-plane slab, stopped at the fourth


def test_service_storage_options_put_a_total_deadline_on_every_request():
    http = service_storage_options("http://h/t.mrc", request_timeout_s=5.0)
    timeout = http["client_kwargs"]["timeout"]
    assert http["allow_redirects"] is False and timeout.total == 5.0 and timeout.sock_read <= 5.0
    s3 = service_storage_options("s3://b/t.mrc", request_timeout_s=5.0)["config_kwargs"]
    assert s3["connect_timeout"] <= 5.0 and s3["read_timeout"] <= 5.0
    assert s3["retries"] == {"total_max_attempts": 1}
    with pytest.raises(ValueError, match="request_timeout_s"):
        service_storage_options("http://h/t.mrc", request_timeout_s=0)


def test_check_output_writable_refuses_what_write_output_could_not_write(tmp_path):
    check_output_writable(str(tmp_path / "new" / "dir"), local_roots=[tmp_path])  # created when written
    check_output_writable("s3://bucket/out")  # not probed
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputNotWritableError, match="not a directory"):
        check_output_writable(str(tmp_path / "file" / "out"))
    with pytest.raises(OutputNotWritableError, match="outside"):
        check_output_writable(str(tmp_path), local_roots=[tmp_path / "elsewhere"])


def _write_yx_pyramid(path: Path, volume: np.ndarray, voxel_size_a: float, n_levels: int = 3) -> None:
    """A pyramid as ome-zarr-py writes one by default (its Scaler halves y and x, never z), NGFF 0.4 on zarr
    v2, scale transformations only; written with zarr because ome-zarr-py is not a dependency."""
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets, level = [], volume
    for k in range(n_levels):
        array = root.create_array(
            str(k),
            shape=level.shape,
            dtype=level.dtype,
            chunks=(8, 16, 16),
            chunk_key_encoding={"name": "v2", "separator": "/"},
        )
        array[...] = level
        scale = [voxel_size_a, voxel_size_a * 2**k, voxel_size_a * 2**k]
        datasets.append({"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": scale}]})
        level = level[:, ::2, ::2]
    axes = [{"name": n, "type": "space", "unit": "angstrom"} for n in "zyx"]
    root.attrs["multiscales"] = [{"version": "0.4", "name": "tomo", "axes": axes, "datasets": datasets}]


@pytest.mark.parametrize(("level0_a", "target_a"), [(5.0, 10.0), (10.0, 20.0)])
def test_yx_only_pyramid_reports_level_0(tmp_path, level0_a, target_a):
    path = tmp_path / "yx.zarr"
    _write_yx_pyramid(path, _volume(), level0_a)
    with open_tomogram(str(path), target_voxel_size_a=target_a) as source:
        assert source.level_path == "1"  # (z, y, x) = (level0, 2 level0, 2 level0) is nearest the target
        assert source.shape_zyx == (24, 20, 24)
    loaded = load_tomogram(str(path), target_voxel_size_a=target_a)
    assert loaded.source_voxel_size_zyx_a == (level0_a,) * 3
    assert loaded.source_shape_zyx == SHAPE
    assert loaded.voxel_size_zyx_a == (target_a,) * 3 and loaded.resampled


def test_multiscale_picks_are_reported_in_level_0_voxels(tmp_path):
    path = tmp_path / "tomo.zarr"
    write_ome_zarr(str(path), _volume(), 5.0, zarr_format=2, n_levels=2)
    loaded = load_tomogram(str(path), target_voxel_size_a=10.0)
    assert not loaded.resampled and loaded.voxel_size_zyx_a == (10.0, 10.0, 10.0)
    assert loaded.source_voxel_size_zyx_a == (5.0, 5.0, 5.0) and loaded.source_shape_zyx == SHAPE
    assert loaded.origin_zyx_a == (2.5, 2.5, 2.5)
    found = {"ribosome": ClassPicks(centres_zyx_vox=np.array([[3.0, 4.0, 5.0]]), scores=np.array([0.9]))}
    doc = picks_document_from_voxels(
        found,
        voxel_size_zyx_a=loaded.voxel_size_zyx_a,
        origin_zyx_a=loaded.origin_zyx_a,
        tomogram_uri=str(path),
        run_name="tomo",
        source_voxel_size_zyx_a=loaded.source_voxel_size_zyx_a,
        source_shape_zyx=loaded.source_shape_zyx,
        model_version=None,
    )
    assert doc.voxel_size_xyz_a == (5.0, 5.0, 5.0) and doc.shape_zyx == SHAPE
    (line,) = render_picks(doc, "ndjson").splitlines()
    # level-1 voxel j averages level-0 voxels 2j and 2j + 1: its centre is level-0 voxel 2j + 0.5
    assert json.loads(line)["location"] == {"x": 10.5, "y": 8.5, "z": 6.5}


def test_level_0_translation_is_the_frame_origin(tmp_path):
    path = tmp_path / "shifted.zarr"
    write_ome_zarr(str(path), _volume(), 5.0, zarr_format=2, n_levels=2)
    attrs = json.loads((path / ".zattrs").read_text())
    for dataset in attrs["multiscales"][0]["datasets"]:
        dataset["coordinateTransformations"][1]["translation"] = [
            t + 100.0 for t in dataset["coordinateTransformations"][1]["translation"]
        ]
    (path / ".zattrs").write_text(json.dumps(attrs))
    assert load_tomogram(str(path), target_voxel_size_a=10.0).origin_zyx_a == (2.5, 2.5, 2.5)


def test_float32_voxel_size_is_tidied(tmp_path):
    write_mrc(str(tmp_path / "t.mrc"), _volume(), 7.84)
    with mrcfile.open(tmp_path / "t.mrc", header_only=True) as mrc:
        assert float(mrc.voxel_size.x) != 7.84  # 7.840000152587891 in the float32 header
    with open_tomogram(str(tmp_path / "t.mrc"), target_voxel_size_a=7.84) as source:
        assert source.voxel_size_zyx_a == (7.84, 7.84, 7.84)
