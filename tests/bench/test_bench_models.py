"""bench/bench_models.py runs on a tiny case: models x layouts on held-out sets and families, each row against the first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from octopi_core.model import build_model, save_checkpoint
from octopi_core.model_config import ModelConfig

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
        + ["--data", str(tmp_path / "data"), "--threads", "1", "--edges"]
    )

    assert status == 0
    [written] = tmp_path.glob("models-*.json")
    rows = json.loads(written.read_text())["rows"]
    assert "edges" not in rows[0] and all(set(r["edges"]) == set(r["sets"]) for r in rows[1:])
    for row in rows[1:]:
        for name, edges in row["edges"].items():
            now, first = row["sets"][name]["classes"].values(), rows[0]["sets"][name]["classes"].values()
            assert sum(edges["particles"].values()) == sum(c["tp"] + c["fn"] for c in now)
            tp_change = sum(c["tp"] for c in now) - sum(c["tp"] for c in first)
            assert sum(edges["gained"].values()) - sum(edges["lost"].values()) == tp_change
            assert sum(edges["false_row"].values()) <= sum(c["fp"] for c in now)
            if row["layout"] == "32,64,64/0.25":  # one window holds the whole tiny tomogram: no edges inside
                assert all(count["near_edges"] == 0 for count in edges.values())
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
    # A small untrained network: a CPU without native bf16 emulates it, far too slowly for the real one.
    small = ModelConfig(channels=(4, 8), strides=(2,))
    save_checkpoint(build_model(small), small, tmp_path / "small")
    tiny = ["32", "64", "64"]
    status = bench_models.main(
        ["--models", f"small={tmp_path / 'small'}", "--precision", "fp32", "amp", "--held-out", "900000-3"]
        + ["--held-out-shape", *tiny, "--families", "--data", str(tmp_path / "data"), "--threads", "1"]
        + ["--device", "cpu"]
    )

    assert status == 0
    [written] = tmp_path.glob("models-*.json")
    rows = json.loads(written.read_text())["rows"]
    assert [(r["model"], r["precision"], r["dtype"]) for r in rows] == [
        ("small (fp32)", "fp32", "None"),
        ("small (amp)", "amp", "torch.bfloat16"),
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
        and not custom.options.match_spectrum
    )
    both = bench_models.parse_layout("default+spectrum+tta")
    assert both.options.match_spectrum and both.options.tta and both.name == "default+spectrum+tta"


def test_edges_are_the_window_borders_inside_the_tomogram_in_the_networks_voxels(monkeypatch):
    monkeypatch.syspath_prepend(str(_BENCH))
    import bench_models
    import numpy as np

    from octopi_core.picks import PicksDocument

    # 64 voxels of 10 A in y and x cut into two 32-voxel windows: one edge inside, at voxel 32;
    # z (32 voxels) is one window, with no edge inside.
    doc = PicksDocument(run_name="r", tomogram_uri="r", voxel_size_xyz_a=(10, 10, 10), shape_zyx=(32, 64, 64))
    layout = bench_models.parse_layout("32,32,32/0")
    points = np.array([[320.0, 100.0, 0.0], [100.0, 100.0, 160.0], [600.0, 250.0, 310.0]])
    distance = bench_models._edge_distance_vox(points, bench_models._interior_edges(doc, layout, 10.0), 10.0)
    assert distance.tolist() == [0.0, 22.0, 7.0]
    # The same tomogram at 5 A is resampled to 32x32 voxels of 10 A before windows are cut: one window.
    fine = doc.model_copy(update={"voxel_size_xyz_a": (5, 5, 5)})
    fine_edges = bench_models._interior_edges(fine, layout, 10.0)
    assert all(edges.size == 0 for edges in fine_edges)
    assert np.isinf(bench_models._edge_distance_vox(points, fine_edges, 10.0)).all()


def test_family_first_takes_another_draw_of_each_familys_held_out_seeds(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(_BENCH))
    import bench_models

    sets = bench_models.evaluation_sets(tmp_path, [], (32, 64, 64), ["sirt"], 2, (32, 64, 64), family_first=3)
    runs = [Path(uri).name for uri, _ in sets["sirt"].tomograms]
    assert runs == ["heldout-982003-32x64x64.zarr", "heldout-982004-32x64x64.zarr"]
