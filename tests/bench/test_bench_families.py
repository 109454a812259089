"""bench/bench_families.py runs on a tiny case: per-family, per-class scores of the shipped model, as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.slow


def test_family_table_on_tiny_tomograms(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_BENCH))
    import _data
    import bench_families

    monkeypatch.setattr(_data, "RESULTS_DIR", tmp_path)  # keep bench/results free of test runs
    status = bench_families.main(
        [
            "--count",
            "1",
            "--shape",
            "32",
            "64",
            "64",
            "--families",
            "generator",
            "subunit-shapes",
            "--threads",
            "1",
        ]
    )

    assert status == 0
    [written] = tmp_path.glob("families-*.json")
    result = json.loads(written.read_text())
    assert set(result["families"]) == {"generator", "subunit-shapes"}
    for family, entry in result["families"].items():
        assert entry["seeds"] == [980000 + 1000 * (family != "generator")]
        assert 0.0 <= entry["weighted_f_beta"] <= 1.0
        assert len(entry["classes"]) == 6
        assert all(0.0 <= c["recall"] <= 1.0 and c["tp"] + c["fn"] >= 0 for c in entry["classes"].values())
