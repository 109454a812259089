"""Tomograms crafted to slip past validation: complex MRC maps and zero-size arrays."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
import zarr

from octopi_core.exceptions import InvalidTomogramShapeError, UnsupportedDataTypeError
from octopi_core.io import open_tomogram, write_mrc
from tests.app.conftest import assert_problem


def _complex_mrc(path, mode: int):
    if mode == 4:
        with mrcfile.new(str(path), overwrite=True) as mrc:
            mrc.set_data(np.ones((8, 16, 16), dtype=np.complex64))
            mrc.voxel_size = 10.0
    else:  # mode 3 (complex int16) has the size of float32; mrcfile cannot write it
        write_mrc(str(path), np.ones((8, 16, 16), dtype=np.float32), 10.0)
        with mrcfile.open(str(path), mode="r+") as mrc:
            mrc.header.mode = 3
    return path


@pytest.mark.parametrize("mode", [3, 4])
def test_complex_mrc_is_refused_by_name(mode, tmp_path):
    path = _complex_mrc(tmp_path / f"complex{mode}.mrc", mode)
    with pytest.raises(UnsupportedDataTypeError, match="complex"):
        open_tomogram(str(path))


def test_complex_zarr_is_refused_by_name(tmp_path):
    path = tmp_path / "complex.zarr"
    zarr.create_array(str(path), shape=(8, 16, 16), dtype="complex64", zarr_format=3)[...] = 1.0
    with pytest.raises(UnsupportedDataTypeError, match="complex64"):
        open_tomogram(str(path), voxel_size_a=10.0)


@pytest.mark.parametrize("shape", [(0, 16, 16), (8, 0, 16), (1, 8, 16, 0)])
def test_zero_size_arrays_are_refused_at_open(shape, tmp_path):
    path = tmp_path / "empty.zarr"
    zarr.create_array(str(path), shape=shape, dtype="float32", zarr_format=2)
    with pytest.raises(InvalidTomogramShapeError, match="length 0"):
        open_tomogram(str(path), voxel_size_a=10.0)


def test_the_gateway_refuses_complex_and_empty_tomograms(client, tmp_path):
    path = _complex_mrc(tmp_path / "complex.mrc", 4)
    assert_problem(client.post("/predict", json={"tomogram_uri": str(path)}), 422, "unsupported-data-type")
    empty = tmp_path / "empty.zarr"
    zarr.create_array(str(empty), shape=(0, 16, 16), dtype="float32", zarr_format=2)
    body = {"tomogram_uri": str(empty), "voxel_size_a": 10.0}
    assert_problem(client.post("/predict", json=body), 422, "invalid-tomogram-shape")
