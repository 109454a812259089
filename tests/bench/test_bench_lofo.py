"""bench/bench_lofo.py runs on a tiny case: a model trained without a family, scored on that family, as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.slow


def test_leave_one_family_out_on_tiny_tomograms(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_BENCH))
    import _data
    import bench_lofo

    import octopi_core.train.loop as loop

    mixtures = []
    real_train = loop.train

    def recording_train(config, **kwargs):
        mixtures.append(list(config.train_families))
        return real_train(config.model_copy(update={"tune_localization": False}), **kwargs)

    monkeypatch.setattr(bench_lofo, "train", recording_train)
    monkeypatch.setattr(_data, "RESULTS_DIR", tmp_path)  # keep bench/results free of test runs
    argv = ["--preset", "tiny", "--train-families", "generator", "sirt", "denoised", "--families", "sirt"]
    status = bench_lofo.main([*argv, "--count", "1", "--shape", "32", "64", "64", "--threads", "1"])

    assert status == 0
    assert mixtures == [["generator", "denoised"]]  # trained without the family it is scored on
    [written] = tmp_path.glob("lofo-*.json")
    result = json.loads(written.read_text())
    entry = result["left_out"]["sirt"]
    assert entry["seeds"] == [980000 + 1000 * 2]  # sirt's held-out seed, never a training one
    assert 0.0 <= entry["weighted_f_beta"] <= 1.0 and len(entry["classes"]) == 6
    assert entry["shipped_weighted_f_beta"] == result["baseline"]["sirt"]["weighted_f_beta"]
    with pytest.raises(SystemExit):
        bench_lofo.main(["--preset", "tiny", "--train-families", "generator", "--families", "sirt"])
