"""octopi_core.data.folder: tomograms with same-stem picks files in every format, local and on S3."""

from __future__ import annotations

import numpy as np
import pytest

from octopi_core.data import SourceKind, open_folder, open_source
from octopi_core.exceptions import AmbiguousDataError, DataSourceError
from octopi_core.export import render_picks, write_picks
from octopi_core.io import write_mrc, write_ome_zarr
from octopi_core.picks import PickPoint, PicksDocument, points_array

VOXEL_A = 10.0
XYZ_A = [[100.0, 200.0, 50.0], [30.0, 40.0, 60.0]]


def _truth(run: str) -> PicksDocument:
    return PicksDocument(
        tomogram_uri=f"{run}.mrc",
        run_name=run,
        voxel_size_xyz_a=(VOXEL_A,) * 3,
        shape_zyx=(8, 32, 32),
        picks={"ribosome": [PickPoint(x=x, y=y, z=z) for x, y, z in XYZ_A], "apo-ferritin": []},
    )


def _tomogram(path, kind: str = "mrc") -> None:
    volume = np.zeros((8, 32, 32), np.float32)
    if kind == "mrc":
        write_mrc(str(path), volume, VOXEL_A)
    else:
        write_ome_zarr(str(path), volume, VOXEL_A)


@pytest.fixture
def folder(tmp_path):
    """One tomogram per picks format, one unlabelled, one orphan picks file and unrelated files."""
    for stem, fmt in [("TS_json", "json"), ("TS_csv", "csv"), ("TS_star", "star"), ("TS_ndjson", "ndjson")]:
        _tomogram(tmp_path / f"{stem}.mrc")
        write_picks(_truth(stem), tmp_path / f"{stem}.picks.{fmt}")
    _tomogram(tmp_path / "TS_zarr.zarr", "zarr")
    write_picks(_truth("TS_zarr"), tmp_path / "TS_zarr.csv")  # no .picks marker
    _tomogram(tmp_path / "TS_copick.mrc")
    (tmp_path / "TS_copick.picks").mkdir()
    write_picks(_truth("TS_copick"), tmp_path / "TS_copick.picks", "copick")
    _tomogram(tmp_path / "TS_array.rec")
    (tmp_path / "TS_array.picks.copick.json").write_text(render_picks(_truth("TS_array"), "copick"))
    _tomogram(tmp_path / "TS_none.mrc")
    write_picks(_truth("gone"), tmp_path / "gone.picks.json")
    (tmp_path / "notes.txt").write_text("not a tomogram")
    (tmp_path / ".hidden.mrc").write_text("skipped")
    return tmp_path


def test_every_picks_format_labels_its_tomogram(folder):
    with pytest.warns(UserWarning, match="without a tomogram of their stem, not used: gone.picks.json"):
        source = open_source(str(folder))
    assert source.kind is SourceKind.FOLDER
    labelled = ["TS_array", "TS_copick", "TS_csv", "TS_json", "TS_ndjson", "TS_star", "TS_zarr"]
    assert source.run_names == sorted([*labelled, "TS_none"])
    for name in labelled:
        item = source.item(name)
        assert item.truth is not None, name
        assert (item.truth.run_name, item.truth.tomogram_uri) == (name, item.tomogram_uri)
        assert item.voxel_size_a == VOXEL_A  # from the header
        np.testing.assert_allclose(points_array(item.truth.picks["ribosome"]), XYZ_A, atol=1e-3, err_msg=name)
        assert item.truth_uris and item.truth_uris[0].startswith(str(folder))
    assert source.item("TS_zarr").tomogram_uri == str(folder / "TS_zarr.zarr")
    none = source.item("TS_none")
    assert (none.truth, none.voxel_size_a, none.classes) == (None, None, ())
    with pytest.warns(UserWarning, match="gone.picks.json"):
        assert not open_folder(str(folder), with_truth=False).item("TS_csv").labelled


def test_ambiguous_and_missing(tmp_path):
    with pytest.raises(DataSourceError, match="does not exist"):
        open_folder(str(tmp_path / "nothing"))
    (tmp_path / "a.txt").write_text("")
    with pytest.raises(DataSourceError, match="holds no tomograms"):
        open_folder(str(tmp_path))
    _tomogram(tmp_path / "TS_1.mrc")
    write_picks(_truth("TS_1"), tmp_path / "TS_1.picks.json")
    write_picks(_truth("TS_1"), tmp_path / "TS_1.picks.csv")
    with pytest.raises(AmbiguousDataError, match=r"several picks files for 'TS_1'.*TS_1.picks.csv"):
        open_folder(str(tmp_path))
    (tmp_path / "TS_1.picks.csv").unlink()
    _tomogram(tmp_path / "TS_1.zarr", "zarr")
    with pytest.raises(AmbiguousDataError, match="share the run name 'TS_1'"):
        open_folder(str(tmp_path))


def test_picks_of_several_runs_in_one_file(tmp_path):
    _tomogram(tmp_path / "TS_1.mrc")
    write_picks(_truth("TS_1"), tmp_path / "TS_1.picks.csv")
    text = (tmp_path / "TS_1.picks.csv").read_text()
    (tmp_path / "TS_1.picks.csv").write_text(text + text.splitlines()[-1].replace("TS_1", "TS_2") + "\n")
    with pytest.raises(DataSourceError, match="hold runs TS_1, TS_2; one file per tomogram"):
        open_folder(str(tmp_path))


def test_s3_prefix(tmp_path, s3_server, s3_bucket):
    _tomogram(tmp_path / "TS_1.mrc")
    write_picks(_truth("TS_1"), tmp_path / "TS_1.picks.ndjson")
    _tomogram(tmp_path / "TS_2.zarr", "zarr")
    s3_server.upload(tmp_path, s3_bucket, "data")
    source = open_source(f"s3://{s3_bucket}/data/")
    assert source.run_names == ["TS_1", "TS_2"]
    first = source.items[0]
    assert first.tomogram_uri == f"s3://{s3_bucket}/data/TS_1.mrc"
    assert first.truth is not None and first.voxel_size_a == VOXEL_A
    np.testing.assert_allclose(points_array(first.truth.picks["ribosome"]), XYZ_A, atol=1e-3)
    assert source.items[1].tomogram_uri == f"s3://{s3_bucket}/data/TS_2.zarr"
