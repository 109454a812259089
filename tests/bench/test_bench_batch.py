"""bench/bench_batch.py runs on a tiny case, with and without the one-by-one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("batch_only", [False, True])
def test_batch_ratio_on_tiny_tomograms(batch_only, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_BENCH))
    import _data
    import bench_batch

    monkeypatch.setattr(_data, "RESULTS_DIR", tmp_path)  # keep bench/results free of test runs
    monkeypatch.setattr(bench_batch, "DATA_DIR", tmp_path / "data")
    argv = ["--count", "2", "--shape", "32", "64", "64", "--threads", "1"]
    assert bench_batch.main(argv + (["--batch-only"] if batch_only else [])) == 0

    [written] = tmp_path.glob("batch-*.json")
    result = json.loads(written.read_text())
    batch = result["batch"]
    assert len(batch["timings_s"]) == 2
    inference_s = sum(t["inference"] for t in batch["timings_s"])
    assert result["batch_ratio"] == pytest.approx(batch["wall_s"] / inference_s) and result["batch_ratio"] > 1
    assert ("sequential" in result) is not batch_only
    if not batch_only:
        assert len(result["sequential"]["timings_s"]) == 2 and result["sequential_ratio"] > 1
