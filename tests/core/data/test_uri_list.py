"""octopi_core.data.uri_list: tomogram URIs as a source, from a list or a text file."""

from __future__ import annotations

import pytest

from octopi_core.data import open_uri_list, read_uri_list
from octopi_core.exceptions import DataSourceError


def test_list_named_by_run_name_from_uri():
    source = open_uri_list(
        [
            "s3://b/x/TS_1.zarr",
            "/d/p/ExperimentRuns/TS_2/VoxelSpacing10.000/wbp.zarr",
            "https://h/t.mrc?sig=1",
        ],
        voxel_size_a=7.84,
    )
    assert source.run_names == ["TS_1", "TS_2", "t"]
    assert [i.voxel_size_a for i in source] == [7.84] * 3
    assert not any(i.labelled for i in source)
    assert source.item("TS_2").tomogram_uri.endswith("wbp.zarr")
    with pytest.raises(DataSourceError, match="no item has run_name 'TS_3'; runs: TS_1, TS_2, t"):
        source.item("TS_3")


def test_refused_lists():
    with pytest.raises(DataSourceError, match="same run name 'TS_1'"):
        open_uri_list(["/a/TS_1.mrc", "/b/TS_1.zarr"])
    with pytest.raises(DataSourceError, match="empty"):
        open_uri_list([])
    with pytest.raises(TypeError, match="list of strings"):
        open_uri_list("/a/TS_1.mrc")
    with pytest.raises(ValueError, match=r"voxel_size_a must be in \[0.5, 200.0\] Å; got 0"):
        open_uri_list(["/a/TS_1.mrc"], voxel_size_a=0)


def test_text_file(tmp_path):
    (tmp_path / "list.txt").write_text("# tomograms\n/a/TS_1.mrc\n\n  s3://b/TS_2.zarr  # the second\n")
    assert read_uri_list(str(tmp_path / "list.txt")) == ["/a/TS_1.mrc", "s3://b/TS_2.zarr"]
    with pytest.raises(DataSourceError, match="cannot be read"):
        read_uri_list(str(tmp_path / "missing.txt"))
