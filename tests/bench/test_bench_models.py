"""bench/bench_models.py runs on a tiny case: models x layouts on held-out sets and families, each row against the first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parents[2] / "bench"
_SHIPPED = Path(__file__).resolve().parents[2] / "octopi_core" / "models" / "default"

pytestmark = pytest.mark.slow


def test_models_by_layouts_against_the_first_row(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_BENCH))
    import _data
    import bench_models

    monkeypatch.setattr(_data, "RESULTS_DIR", tmp_path)  # keep bench/results free of test runs
    tiny = ["32", "64", "64"]
    status = bench_models.main(
        ["--models", "shipped", f"again={_SHIPPED}", "--layouts", "default", "32,64,64/0.25"]
        + ["--held-out", "900000-3", "--held-out-shape", *tiny]
        + ["--families", "generator", "sirt", "--family-count", "1", "--family-shape", *tiny]
        + ["--data", str(tmp_path / "data"), "--threads", "1"]
    )

    assert status == 0
    [written] = tmp_path.glob("models-*.json")
    rows = json.loads(written.read_text())["rows"]
    assert [(r["model"], r["layout"]) for r in rows] == [
        ("shipped", "default"),
        ("shipped", "32,64,64/0.25"),
        ("again", "default"),
        ("again", "32,64,64/0.25"),
    ]
    assert set(rows[0]["sets"]) == {"900000-3", "generator", "sirt"}
    assert len(rows[0]["held_out"]["classes"]) == 6
    scores = [rows[0]["sets"][f]["weighted_f_beta"] for f in ("generator", "sirt")]
    assert rows[0]["family_mean"] == pytest.approx(sum(scores) / 2, abs=0.001)
    assert rows[0]["family_min"] == min(scores)
    # the same weights with the same layout pick the same particles: nothing gained, nothing lost
    same = rows[2]["against_first"]
    assert (
        same["held_out"] == 0
        and same["families"] == {"generator": 0, "sirt": 0}
        and same["families_lost"] == []
    )
    assert rows[3]["sets"] == rows[1]["sets"]


def test_each_precision_is_a_row_of_its_own(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_BENCH))
    import _data
    import bench_models

    monkeypatch.setattr(_data, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr("octopi_core.inference.cpu_has_native_bf16", lambda: True)
    tiny = ["32", "64", "64"]
    status = bench_models.main(
        ["--precision", "fp32", "amp", "--held-out", "900000-3", "--held-out-shape", *tiny, "--families"]
        + ["--data", str(tmp_path / "data"), "--threads", "1", "--device", "cpu"]
    )

    assert status == 0
    [written] = tmp_path.glob("models-*.json")
    rows = json.loads(written.read_text())["rows"]
    assert [(r["model"], r["precision"], r["dtype"]) for r in rows] == [
        ("shipped (fp32)", "fp32", "None"),
        ("shipped (amp)", "amp", "torch.bfloat16"),
    ]
    assert "held_out" in rows[1]["against_first"]


@pytest.mark.parametrize("spec", ["96,96/0.25", "big/0.25", "default+flips"])
def test_a_bad_layout_is_refused_by_name(spec, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(_BENCH))
    import bench_models

    with pytest.raises(SystemExit) as exited:
        bench_models.main(["--layouts", spec])
    assert exited.value.code == 2 and spec in capsys.readouterr().err


def test_layout_specs(monkeypatch):
    monkeypatch.syspath_prepend(str(_BENCH))
    import bench_models

    fast = bench_models.parse_layout("fast+tta")
    assert fast.options.tta and fast.options.window_vox == (256, 128, 128) and fast.options.overlap == 0.0625
    custom = bench_models.parse_layout("96,128,128/0.125")
    assert (
        custom.options.window_vox == (96, 128, 128)
        and custom.options.overlap == 0.125
        and not custom.options.tta
    )
