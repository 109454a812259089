"""A sample picks document and a comparison shared by the export tests."""

from __future__ import annotations

import pytest

from octopi_core.picks import PickPoint, PicksDocument

__all__ = ["VOXEL_XYZ_A", "sample_doc", "same_points"]

VOXEL_XYZ_A = (10.0, 12.5, 8.0)


def sample_doc(run: str = "TS_5_4") -> PicksDocument:
    return PicksDocument(
        tomogram_uri="s3://bucket/my tomo.zarr",
        run_name=run,
        voxel_size_xyz_a=VOXEL_XYZ_A,
        shape_zyx=(184, 630, 630),
        model_version="octopi-1.2",
        picks={
            "apo-ferritin": [
                PickPoint(x=123.456, y=2000.25, z=900.5, score=0.93),
                PickPoint(x=5.0, y=6.25, z=7.125, score=0.5),
            ],
            "beta-galactosidase": [],
            "ribosome": [PickPoint(x=3141.5926, y=2718.2818, z=1414.2135, score=0.071)],
        },
        timings_s={"total": 1.5},
    )


def same_points(a: PicksDocument, b: PicksDocument, *, keep_empty: bool) -> None:
    assert b.run_name == a.run_name
    expected = {k: v for k, v in a.picks.items() if v or keep_empty}
    assert list(b.picks) == list(expected)
    for name, points in expected.items():
        got = b.picks[name]
        assert len(got) == len(points)
        for p, q in zip(points, got):
            assert (q.x, q.y, q.z) == pytest.approx((p.x, p.y, p.z), abs=1e-3)
            assert q.score == pytest.approx(p.score, abs=1e-6)
