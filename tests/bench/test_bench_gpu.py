"""bench/bench_gpu.py smoke-runs on the CPU: every variant's figures, processes sharing the work, bad specs named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench_gpu(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(_BENCH))
    import _data
    import bench_gpu

    monkeypatch.setattr(_data, "RESULTS_DIR", tmp_path)  # keep bench/results free of test runs
    return bench_gpu


@pytest.mark.slow
def test_variants_run_on_the_cpu_and_are_compared_with_the_first(bench_gpu, tmp_path):
    argv = ["--device", "cpu", "--count", "2", "--shape", "32", "64", "64", "--cpus", "2"]
    assert (
        bench_gpu.main([*argv, "--data", str(tmp_path / "data"), "--variants", "base", "x2+channels-last"])
        == 0
    )

    [written] = tmp_path.glob("gpu-*.json")
    result = json.loads(written.read_text())
    base, shared = result["rows"]
    assert (base["variant"], base["processes"], shared["processes"]) == ("base", 1, 2)
    for row in (base, shared):
        assert row["tomograms"] == 2 and not row["errors"]
        assert row["tomograms_per_hour"] == pytest.approx(2 * 3600 / row["wall_s"], rel=1e-3)
        assert 0 < row["stage_share_of_wall"]["inference"] <= 1.0 and row["network_tflops"] > 0
        assert len(row["host_memory_peak_gb_per_process"]) == row["processes"]
    assert len(list((tmp_path / "data").glob("*.zarr"))) == 2  # two stores, not one read twice
    assert base["stage_threads"] == 1  # the CPU default


@pytest.mark.slow
def test_the_instant_variant_runs_no_inference_and_picks_the_same(bench_gpu, tmp_path):
    argv = ["--device", "cpu", "--count", "2", "--shape", "32", "64", "64", "--cpus", "2"]
    assert bench_gpu.main([*argv, "--data", str(tmp_path / "data"), "--variants", "base", "instant+t2"]) == 0

    [written] = tmp_path.glob("gpu-*.json")
    base, instant = json.loads(written.read_text())["rows"]
    assert (instant["stage_threads"], instant["network_tflops"], instant["errors"]) == (2, 0.0, [])
    # Its inference stage is a lookup, far under the real one's.
    assert instant["stage_s_per_tomogram"]["inference"] < base["stage_s_per_tomogram"]["inference"] / 10


def test_variant_specs(bench_gpu):
    variant = bench_gpu.parse_variant("x4+channels-last+cuda-graphs+fast+t3+instant")
    assert (
        variant.processes,
        variant.channels_last,
        variant.compile_mode,
        variant.fast,
        variant.stage_threads,
        variant.instant,
    ) == (4, True, "reduce-overhead", True, 3, True)
    assert bench_gpu.parse_variant("base") == bench_gpu.Variant(name="base")
    for bad in ("x0", "t0", "turbo", "base+x"):
        with pytest.raises(ValueError, match="unknown token"):
            bench_gpu.parse_variant(bad)


def test_a_bad_variant_exits_2_naming_it(bench_gpu, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_gpu.main(["--device", "cpu", "--variants", "base", "warp-speed"])
    assert exit_info.value.code == 2 and "'warp-speed'" in capsys.readouterr().err
