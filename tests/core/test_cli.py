import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from octopi_core import pipeline
from octopi_core.cli import main
from octopi_core.data import open_copick
from octopi_core.io import write_mrc, write_ome_zarr

COPICK_PROJECT = Path(__file__).parents[1] / "fixtures" / "copick" / "project"


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _held_out_args(tmp_path):
    # One small held-out tomogram for retrain's comparison: seconds, not minutes.
    return [
        "--eval-dir",
        str(tmp_path / "held-out"),
        "--eval-count",
        "1",
        "--eval-shape",
        "32",
        "64",
        "64",
        "--eval-window",
        "32",
    ]


@pytest.mark.slow
def test_predict_writes_every_format_and_evaluate_scores(capsys, tmp_path, random_checkpoint, small_tomogram):
    tomogram, truth = small_tomogram
    for fmt, name in [("json", "p.json"), ("csv", "p.csv"), ("star", "p.star"), ("ndjson", "p.ndjson")]:
        code, _, err = _run(
            capsys,
            "predict",
            str(tomogram),
            "--model",
            str(random_checkpoint),
            "--window",
            "32",
            "--out",
            str(tmp_path / name),
            "--format",
            fmt,
            "--quiet",
        )
        assert code == 0, err
        assert (tmp_path / name).is_file()
    picks = json.loads((tmp_path / "p.json").read_text())["picks"]
    total = sum(len(points) for points in picks.values())
    assert len((tmp_path / "p.ndjson").read_text().splitlines()) == total
    assert "run_name,particle_type,x,y,z,score" in (tmp_path / "p.csv").read_text()
    code, _, err = _run(
        capsys,
        "predict",
        str(tomogram),
        "--model",
        str(random_checkpoint),
        "--window",
        "32",
        "--out",
        str(tmp_path / "copick"),
        "--format",
        "copick",
        "--quiet",
    )
    assert code == 0 and len(list((tmp_path / "copick").glob("*.json"))) == 6
    code, out, _ = _run(capsys, "evaluate", str(truth), str(truth))
    assert code == 0 and "weighted" in out.lower()
    code, out, _ = _run(capsys, "evaluate", str(truth), str(truth), "--json")
    classes = json.loads(out)["classes"]
    assert sum(c["tp"] for c in classes) >= 1 and all(c["fp"] == 0 and c["fn"] == 0 for c in classes)
    assert all(c["f_beta"] == pytest.approx(1.0) for c in classes if c["tp"])


def test_predict_to_stdout_is_json(capsys, random_checkpoint, small_tomogram):
    code, out, _ = _run(
        capsys,
        "predict",
        str(small_tomogram[0]),
        "--model",
        str(random_checkpoint),
        "--window",
        "32",
        "--quiet",
    )
    assert code == 0 and json.loads(out)["run_name"] == "small"


def test_predict_refuses_spectrum_matching_with_a_model_that_has_no_spectrum(
    capsys, random_checkpoint, small_tomogram
):
    code, out, err = _run(
        capsys, "predict", str(small_tomogram[0]), "--model", str(random_checkpoint), "--match-spectrum"
    )
    assert code == 2 and not out
    assert "no input spectrum" in err and "Traceback" not in err


def test_predict_several_tomograms_loads_the_model_once_and_goes_past_a_bad_one(
    capsys, tmp_path, monkeypatch, random_checkpoint, small_tomogram
):
    loads = []
    real_load = pipeline.load_checkpoint
    monkeypatch.setattr(pipeline, "load_checkpoint", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    good, other, broken = str(small_tomogram[0]), str(tmp_path / "other.zarr"), str(tmp_path / "broken.mrc")
    shutil.copytree(good, other)
    (tmp_path / "broken.mrc").write_bytes(b"not an mrc file" * 100)
    common = ["--model", str(random_checkpoint), "--window", "32", "--quiet"]
    out_dir = tmp_path / "picks"
    code, _, err = _run(capsys, "predict", good, broken, other, *common, "--out", str(out_dir))
    assert code == 1, err
    assert len(loads) == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["other.json", "small.json"]
    assert "picked 2 of 3 tomograms" in err and "1 failed" in err
    assert f"broken ({broken}): read failed: CorruptTomogramError" in err and "Traceback" not in err
    # Each file is the document one tomogram alone gives (timings aside).
    code, single, _ = _run(capsys, "predict", good, *common)
    assert code == 0
    for name in ("small", "other"):
        doc = json.loads((out_dir / f"{name}.json").read_text())
        assert doc["picks"] == json.loads(single)["picks"] and doc["run_name"] == name

    code, _, err = _run(capsys, "predict", broken, str(tmp_path / "nope.mrc"), *common, "--out", str(out_dir))
    assert code == 2 and "picked 0 of 2" in err and "nope (" in err


def test_predict_several_tomograms_writes_the_chosen_format_and_refuses_bad_outputs(
    capsys, tmp_path, random_checkpoint, small_tomogram
):
    good, other = str(small_tomogram[0]), str(tmp_path / "other.zarr")
    shutil.copytree(good, other)
    common = ["--model", str(random_checkpoint), "--window", "32", "--quiet"]
    code, _, err = _run(
        capsys, "predict", good, other, *common, "--out", str(tmp_path / "s"), "--format", "star"
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["other.star", "small.star"]
    code, _, err = _run(capsys, "predict", good, other, *common)
    assert code == 2 and "needs --out DIR" in err
    (tmp_path / "file.json").write_text("{}")
    code, _, err = _run(capsys, "predict", good, other, *common, "--out", str(tmp_path / "file.json"))
    assert code == 2 and "must be a directory" in err
    code, _, err = _run(capsys, "predict", good, good, *common, "--out", str(tmp_path / "d"))
    assert code == 2 and "share the run name 'small'" in err
    code, _, err = _run(capsys, "predict", *common)
    assert code == 2 and "at least one tomogram" in err


def test_predict_a_folder_and_a_list_of_tomograms(capsys, tmp_path, random_checkpoint, small_tomogram):
    folder = tmp_path / "tomograms"
    shutil.copytree(small_tomogram[0], folder / "a.zarr")
    shutil.copytree(small_tomogram[0], folder / "b.zarr")
    (folder / "notes.md").write_text("not a tomogram")
    (tmp_path / "list.txt").write_text(f"{small_tomogram[0]}\n")
    common = ["--model", str(random_checkpoint), "--window", "32", "--quiet"]
    code, _, err = _run(
        capsys, "predict", str(folder), str(tmp_path / "list.txt"), *common, "--out", str(tmp_path / "o")
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.json", "b.json", "small.json"]
    assert "picked 3 of 3 tomograms" in err
    code, _, err = _run(capsys, "predict", str(folder), *common, "--out", str(tmp_path / "o"), "--runs", "a")
    assert code == 2 and "--runs applies to --copick projects only" in err


def _copick_picks(project, run):
    return {p.name: p.read_bytes() for p in (project / "ExperimentRuns" / run / "Picks").iterdir()}


def test_predict_copick_writes_new_sessions_into_the_project(capsys, tmp_path, random_checkpoint):
    project = tmp_path / "project"
    shutil.copytree(COPICK_PROJECT, project)
    config = str(project / "copick_config.json")
    before = _copick_picks(project, "TS_001")
    common = ["--model", str(random_checkpoint), "--window", "32", "--quiet", "--copick", config]
    code, _, err = _run(capsys, "predict", *common, "--tomo-type", "wbp")
    assert code == 0, err
    assert "as user octopi, session 0" in err and "picked 2 of 2 tomograms" in err
    after = _copick_picks(project, "TS_001")
    assert {k: v for k, v in after.items() if k in before} == before  # other sessions untouched
    # Picks go to the classes the project has objects for (apo-ferritin, ribosome) and read back as truth.
    assert sorted(set(after) - set(before)) == ["octopi_0_apo-ferritin.json", "octopi_0_ribosome.json"]
    source = open_copick(config, tomo_type="wbp", picks_user="octopi", picks_session="0")
    assert [item.run_name for item in source] == ["TS_001", "TS_002"] and all(
        item.labelled for item in source
    )

    # Again: a new session, one past the last; only the runs asked for.
    code, _, err = _run(capsys, "predict", *common, "--tomo-type", "wbp", "--runs", "TS_002")
    assert code == 0 and "session 1" in err and "picked 1 of 1" in err
    assert not any(name.startswith("octopi_1_") for name in _copick_picks(project, "TS_001"))
    assert "octopi_1_ribosome.json" in _copick_picks(project, "TS_002")

    # An existing session is refused before any work, unless --overwrite.
    code, _, err = _run(capsys, "predict", *common, "--tomo-type", "wbp", "--pick-session", "0")
    assert code == 2 and "pass --overwrite" in err
    code, _, err = _run(
        capsys,
        "predict",
        *common,
        "--tomo-type",
        "wbp",
        "--pick-session",
        "0",
        "--runs",
        "TS_001",
        "--overwrite",
    )
    assert code == 0, err
    code, _, err = _run(capsys, "predict", *common, "--tomo-type", "wbp", "--runs", "TS_009")
    assert code == 2 and "TS_009" in err
    code, _, err = _run(capsys, "predict", *common, "--tomo-type", "wbp", "--classes", "thyroglobulin")
    assert code == 2 and "no pickable object for ['thyroglobulin']" in err
    code, _, err = _run(capsys, "predict", *common, "--out", str(tmp_path / "o"))
    assert code == 2 and "give no tomogram URIs, --out or --format" in err


def _bad_inputs(tmp_path):
    (tmp_path / "garbage.mrc").write_bytes(b"not an mrc file" * 100)
    write_mrc(
        str(tmp_path / "ok.mrc"), np.random.default_rng(0).normal(size=(40, 40, 40)).astype(np.float32), 10.0
    )
    data = (tmp_path / "ok.mrc").read_bytes()
    (tmp_path / "truncated.mrc").write_bytes(data[: len(data) // 2])
    write_ome_zarr(str(tmp_path / "flat.zarr"), np.zeros((64, 64, 64), np.float32) + 3.0, 10.0)
    write_mrc(str(tmp_path / "nan.mrc"), np.full((40, 40, 40), np.nan, np.float32), 10.0)
    write_mrc(
        str(tmp_path / "absurd.mrc"),
        np.random.default_rng(0).normal(size=(40, 40, 40)).astype(np.float32),
        1e5,
    )
    write_mrc(
        str(tmp_path / "small.mrc"),
        np.random.default_rng(0).normal(size=(8, 40, 40)).astype(np.float32),
        10.0,
    )
    return {
        "missing": (str(tmp_path / "nope.zarr"), "nope.zarr"),
        "garbage": (str(tmp_path / "garbage.mrc"), "garbage.mrc"),
        "truncated": (str(tmp_path / "truncated.mrc"), "truncated"),
        "constant": (str(tmp_path / "flat.zarr"), "constant"),
        "all-nan": (str(tmp_path / "nan.mrc"), "finite"),
        "absurd voxel": (str(tmp_path / "absurd.mrc"), "voxel size"),
        "too small": (str(tmp_path / "small.mrc"), "smaller"),
        "bad scheme": ("ftp://example.org/t.mrc", "ftp"),
        "unreachable": ("http://127.0.0.1:1/t.mrc", "127.0.0.1"),
    }


def test_bad_input_exits_2_with_a_message_and_no_traceback(capsys, tmp_path, random_checkpoint):
    for label, (uri, needle) in _bad_inputs(tmp_path).items():
        code, _, err = _run(
            capsys, "predict", uri, "--model", str(random_checkpoint), "--window", "32", "--quiet"
        )
        assert code == 2, label
        assert "error:" in err and needle.lower() in err.lower(), (label, err)
        assert "Traceback" not in err, label


def test_unknown_model_and_bad_picks_file(capsys, tmp_path, small_tomogram):
    code, _, err = _run(
        capsys, "predict", str(small_tomogram[0]), "--model", str(tmp_path / "none"), "--quiet"
    )
    assert code == 2 and "checkpoint" in err
    (tmp_path / "bad.json").write_text("{not json")
    code, _, err = _run(capsys, "evaluate", str(tmp_path / "bad.json"), str(small_tomogram[1]))
    assert code == 2 and "bad.json" in err


@pytest.mark.slow
def test_console_script_reports_errors_without_traceback(tmp_path, random_checkpoint):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "octopi_core.cli",
            "predict",
            str(tmp_path / "missing.mrc"),
            "--model",
            str(random_checkpoint),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "missing.mrc" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_tune_on_a_presets_validation_settings_records_the_choice(capsys, tmp_path, random_checkpoint):
    import shutil

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(random_checkpoint, checkpoint)
    code, out, err = _run(
        capsys, "tune", str(checkpoint), "--config", "tiny", "--count", "1", "--shape", "32", "64", "64"
    )
    assert code == 0, err
    chosen = json.loads(out)
    config = json.loads((checkpoint / "config.json").read_text())
    saved = config["training"]["localize"]
    assert saved["thresholds"] == chosen["thresholds"] and saved["tuned_on"]["shape_zyx"] == [32, 64, 64]
    assert len(config["input_spectrum"]) == 48  # for --match-spectrum: 24 tomograms, the tuning one first
    assert config["training"]["input_spectrum_from"]["count"] == 24
    code, _, err = _run(capsys, "tune", str(checkpoint), "--config", "no-such-preset")
    assert code == 2 and "no-such-preset" in err


@pytest.mark.slow
def test_tune_can_use_the_configs_training_settings(capsys, tmp_path, random_checkpoint):
    import shutil

    import yaml

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(random_checkpoint, checkpoint)
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump({"train_settings": {"snr": [1.5, 2.0]}, "val_settings": {"snr": [0.3, 0.4]}})
    )
    for data, snr in (("training", [1.5, 2.0]), ("validation", [0.3, 0.4])):
        code, _, err = _run(
            capsys,
            "tune",
            str(checkpoint),
            "--config",
            str(config),
            "--data",
            data,
            "--count",
            "1",
            "--shape",
            "32",
            "64",
            "64",
        )
        assert code == 0, err
        tuned_on = json.loads((checkpoint / "config.json").read_text())["training"]["localize"]["tuned_on"]
        assert tuned_on["settings"]["snr"] == snr and tuned_on["settings"]["shape_zyx"] == [32, 64, 64]


def test_fast_switches_the_window_layout_unless_the_user_sets_it(
    capsys, monkeypatch, random_checkpoint, small_tomogram
):
    from octopi_core.options import DEFAULT_OVERLAP, DEFAULT_WINDOW_VOX, FAST_OVERLAP, FAST_WINDOW_VOX

    seen = []
    real_segment = pipeline.Picker.segment  # predict runs its stages through predict_batch
    monkeypatch.setattr(
        pipeline.Picker,
        "segment",
        lambda self, volume, options, **kw: (
            seen.append(options) or real_segment(self, volume, options.__class__(window_vox=32), **kw)
        ),
    )
    for extra in ([], ["--fast"], ["--fast", "--overlap", "0.5"]):
        code, _, err = _run(
            capsys, "predict", str(small_tomogram[0]), "--model", str(random_checkpoint), "--quiet", *extra
        )
        assert code == 0, err
    assert (seen[0].window_vox, seen[0].overlap) == (DEFAULT_WINDOW_VOX, DEFAULT_OVERLAP)
    assert (
        (seen[1].window_vox, seen[1].overlap)
        == (FAST_WINDOW_VOX, FAST_OVERLAP)
        != (DEFAULT_WINDOW_VOX, DEFAULT_OVERLAP)
    )
    assert (seen[2].window_vox, seen[2].overlap) == (FAST_WINDOW_VOX, 0.5)


def test_fp32_turns_mixed_precision_off(capsys, monkeypatch, random_checkpoint, small_tomogram):
    seen = []
    real_segment = pipeline.Picker.segment
    monkeypatch.setattr(
        pipeline.Picker,
        "segment",
        lambda self, volume, options, **kw: (
            seen.append(self.amp) or real_segment(self, volume, options.__class__(window_vox=32), **kw)
        ),
    )
    for extra in ([], ["--fp32"]):
        code, _, err = _run(
            capsys, "predict", str(small_tomogram[0]), "--model", str(random_checkpoint), "--quiet", *extra
        )
        assert code == 0, err
    assert seen == [True, False]


@pytest.mark.slow
def test_train_seed_override_gives_a_new_run_with_the_seed_recorded(capsys, tmp_path):
    import yaml

    from octopi_core.train import load_train_config

    quick = load_train_config("tiny").model_copy(
        update={
            "epochs": 1,
            "steps_per_epoch": 1,
            # "new" draws a random seed, and now and then a tiny tomogram holds no particle: four make
            # a pool with none unlikely (two failed CI once: "contain no labelled particles")
            "train_pool_size": 4,
            "tune_localization": False,
            "output_dir": str(tmp_path / "run"),
        }
    )
    config = tmp_path / "quick.yaml"
    config.write_text(yaml.safe_dump(quick.model_dump(mode="json")))
    seeds = []
    for seed in ("5", "new", "new"):
        code, out, err = _run(capsys, "train", str(config), "--seed", seed)
        assert code == 0, err
        checkpoint = Path(json.loads(out)["best_checkpoint"])
        recorded = json.loads((checkpoint / "config.json").read_text())["training"]["seed"]
        assert checkpoint.parent.name == f"run-seed{recorded}"
        seeds.append(recorded)
    assert seeds[0] == 5 and len(set(seeds)) == 3 and quick.seed not in seeds[1:]
    for bad in ("-1", "abc"):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", str(config), "--seed", bad])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and "seed must be a non-negative integer" in err and bad in err


@pytest.mark.slow
def test_retrain_from_champion_starts_from_the_registrys_champion(capsys, tmp_path, random_checkpoint):
    import yaml

    from octopi_core.model_config import read_config
    from octopi_core.registry import Registry
    from octopi_core.train import load_train_config

    registry = Registry(tmp_path / "registry")
    champion = registry.add(random_checkpoint)
    registry.set_champion(champion, reason="test")
    quick = load_train_config("tiny").model_copy(
        update={
            "epochs": 1,
            "steps_per_epoch": 1,
            # "new" draws a random seed, and now and then a tiny tomogram holds no particle: four make
            # a pool with none unlikely (two failed CI once: "contain no labelled particles")
            "train_pool_size": 4,
            "tune_localization": False,
            "output_dir": str(tmp_path / "run"),
        }
    )
    config = tmp_path / "quick.yaml"
    config.write_text(yaml.safe_dump(quick.model_dump(mode="json")))
    code, _, err = _run(
        capsys,
        "retrain",
        str(config),
        "--from-champion",
        "--registry",
        str(tmp_path / "registry"),
        *_held_out_args(tmp_path),
    )
    assert code == 0, err
    recipe = read_config(tmp_path / "run" / "best").training["recipe"]
    assert recipe["init_version"] == champion and recipe["init_checkpoint"] == str(registry.resolve(champion))


def test_retrain_refuses_data_options_without_data_and_needs_a_config_or_data(capsys):
    code, _, err = _run(capsys, "retrain", "tiny", "--picks-user", "curator", "--registry", "r")
    assert code == 2 and "--picks-user apply to 'retrain --data SOURCE' only" in err
    code, _, err = _run(capsys, "retrain", "tiny", "--min-gain", "0.1", "--registry", "r")
    assert code == 2 and "--min-gain apply to 'retrain --data SOURCE' only" in err
    code, _, err = _run(capsys, "retrain", "--registry", "r")
    assert code == 2 and "needs a training config or preset, or --data SOURCE" in err


@pytest.mark.slow
def test_retrain_on_data_fine_tunes_the_champion_and_records_the_decision(capsys, tmp_path):
    """Two labelled 32x64x64 tomograms in a folder, a registry in tmp_path, a two-step fine-tune."""
    import torch
    import yaml

    from octopi_core.export import write_picks
    from octopi_core.model_config import default_checkpoint_dir, read_config
    from octopi_core.promotion import promotion_decision
    from octopi_core.registry import Registry
    from octopi_core.synth import PhantomSettings, make_phantom, write_phantom
    from octopi_core.train.finetune import finetune_config

    torch.set_num_threads(1)
    folder = tmp_path / "labelled"
    for seed, name in ((11, "a"), (12, "b")):
        phantom = make_phantom(
            seed, PhantomSettings(shape_zyx=(32, 64, 64), particles_per_1e9_a3=(60.0, 80.0))
        )
        path, truth_path = write_phantom(phantom, folder, name)
        truth_path.unlink()
        write_picks(phantom.truth_document(name, str(path)), folder / f"{name}.picks.json")
    recipe = finetune_config(
        patch_vox=32, epochs=1, steps_per_epoch=2, threads=1, device="cpu", val_window_vox=32, max_wall_s=60
    )
    config = tmp_path / "quick.yaml"
    config.write_text(yaml.safe_dump(recipe.model_dump(mode="json")))
    registry_dir = tmp_path / "registry"
    code, out, err = _run(
        capsys,
        "retrain",
        str(config),
        "--data",
        str(folder),
        "--output-dir",
        str(tmp_path / "run"),
        "--device",
        "cpu",
        "--min-gain",
        "0.0",
        "--max-forgetting",
        "0.05",
        "--registry",
        str(registry_dir),
        *_held_out_args(tmp_path),
    )
    assert code == 0, err
    outcome = json.loads(out[out.index("\n{") + 1 :])
    registry = Registry(registry_dir)
    shipped = read_config(default_checkpoint_dir()).version
    candidate = outcome["candidate_version"]
    assert outcome["champion_version"] == shipped, (
        "with no champion promoted, the shipped model is fine-tuned"
    )
    assert read_config(tmp_path / "run" / "best").training["recipe"]["init_version"] == shipped
    # Both models were scored on the user's held-out y-blocks and on the synthetic set.
    assert None not in (
        outcome["candidate_data_score"],
        outcome["champion_data_score"],
        outcome["champion_score"],
    )
    scores = registry.config(candidate).scores
    assert scores["held_out_data"]["weighted_f_beta"] == outcome["candidate_data_score"]
    assert scores["held_out_data"]["data"]["runs"] == ["a", "b"]
    assert scores["held_out_data"]["data"]["source"] == str(folder)
    assert registry.config(candidate).training["data"]["source"] == str(folder)
    # The decision is the rule's, recorded with its numbers, and the pointer follows it.
    expected = promotion_decision(
        outcome["candidate_data_score"],
        outcome["champion_data_score"],
        outcome["candidate_score"],
        outcome["champion_score"],
        min_gain_f_beta=0.0,
        max_forgetting_f_beta=0.05,
    )
    assert (outcome["promoted"], outcome["reason"]) == expected
    (decision,) = registry.decisions(candidate)
    assert decision["promoted"] == outcome["promoted"] and decision["reason"] == outcome["reason"]
    assert decision["margins"] == {"min_gain_f_beta": 0.0, "max_forgetting_f_beta": 0.05}
    assert decision["data"]["runs"] == ["a", "b"] and decision["decided_at"]
    assert registry.champion_version() == (candidate if outcome["promoted"] else None)


def test_predict_run_name_names_the_run_and_preview_draws_the_picks(
    capsys, tmp_path, random_checkpoint, small_tomogram
):
    import matplotlib.image

    common = ["--model", str(random_checkpoint), "--window", "32", "--quiet"]
    preview = tmp_path / "small.png"
    code, out, err = _run(
        capsys, "predict", str(small_tomogram[0]), *common, "--run-name", "TS_42", "--preview", str(preview)
    )
    assert code == 0, err
    assert json.loads(out)["run_name"] == "TS_42"
    image = matplotlib.image.imread(preview)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0
    code, _, err = _run(capsys, "predict", str(small_tomogram[0]), *common, "--run-name", "../etc")
    assert code == 2 and "run_name" in err


def test_predict_previews_one_png_per_tomogram_of_a_batch(
    capsys, tmp_path, random_checkpoint, small_tomogram
):
    folder = tmp_path / "tomograms"
    shutil.copytree(small_tomogram[0], folder / "a.zarr")
    shutil.copytree(small_tomogram[0], folder / "b.zarr")
    common = ["--model", str(random_checkpoint), "--window", "32", "--quiet"]
    code, _, err = _run(
        capsys,
        "predict",
        str(folder),
        *common,
        "--out",
        str(tmp_path / "o"),
        "--preview",
        str(tmp_path / "p"),
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["a.png", "b.png"]
    code, _, err = _run(
        capsys, "predict", str(folder), *common, "--out", str(tmp_path / "o"), "--run-name", "x"
    )
    assert code == 2 and "--run-name names one tomogram" in err
