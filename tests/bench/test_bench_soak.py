"""bench/bench_soak.py runs end to end: a short soak with a worker kill and a Redis restart loses no job."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.slow


def test_short_soak_loses_no_job(tmp_path, monkeypatch):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    monkeypatch.syspath_prepend(str(_BENCH))
    import _data
    import bench_soak

    monkeypatch.setattr(_data, "RESULTS_DIR", tmp_path)  # keep bench/results free of test runs
    status = bench_soak.main(
        ["--minutes", "0.4", "--kill-every-s", "12", "--redis-restart-every-s", "14", "--drain-s", "90"]
    )

    [written] = tmp_path.glob("soak-*.json")
    result = json.loads(written.read_text())
    assert result["jobs"]["lost"] == 0, result["lost_jobs"]
    assert result["crashes"] == [], result["crashes"]
    assert status == 0
    assert result["worker_kills"] >= 1 and result["redis_restarts"] >= 1, result["events"]
    assert result["jobs"]["submitted"] > 0 and result["jobs"]["succeeded"] > 0
    assert result["status_latency_ms"]["p99"] is not None and result["peak_worker_rss_bytes"] > 0
