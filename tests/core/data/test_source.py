"""octopi_core.data.source: one spec, the right kind of source."""

from __future__ import annotations

import pytest

from octopi_core.data import CopickSource, SourceKind, open_source, source_kind


@pytest.mark.parametrize(
    "spec,kind",
    [
        ("/p/copick_config.json", SourceKind.COPICK),
        ("s3://b/p/CONFIG.JSON", SourceKind.COPICK),
        ("/p/list.txt", SourceKind.URIS),
        ("/p/TS_1.zarr/", SourceKind.URIS),
        ("s3://b/TS_1.ome.zarr", SourceKind.URIS),
        ("/p/TS_1.MRC", SourceKind.URIS),
        (["/a.mrc"], SourceKind.URIS),
        ("/p/tomograms", SourceKind.FOLDER),
        ("s3://b/prefix/", SourceKind.FOLDER),
    ],
)
def test_source_kind(spec, kind):
    assert source_kind(spec) is kind


@pytest.mark.filterwarnings("ignore:.*none of octopi's classes")
def test_open_source_dispatch(copick_project, tmp_path):
    (tmp_path / "list.txt").write_text("/a/TS_1.mrc\n")
    assert open_source(str(tmp_path / "list.txt")).run_names == ["TS_1"]
    assert open_source("/a/TS_9.mrc").run_names == ["TS_9"]
    assert open_source(("/a/x.mrc", "/a/y.mrc"), kind="URIS").run_names == ["x", "y"]
    project = open_source(str(copick_project), kind=SourceKind.COPICK, tomo_type="wbp", with_truth=False)
    assert isinstance(project, CopickSource) and project.run_names == ["TS_001", "TS_002"]
    with pytest.warns(UserWarning, match="tomo_type, picks_user apply to copick projects only"):
        open_source(["/a/x.mrc"], tomo_type="wbp", picks_user="me")
    with pytest.raises(ValueError, match="kind must be one of copick, folder, uris; got 'zip'"):
        open_source("/a", kind="zip")
    with pytest.raises(TypeError, match="config JSON"):
        open_source(["/a.json"], kind="copick")
    with pytest.raises(TypeError, match="string or a list of strings"):
        open_source(3)  # type: ignore[arg-type]
