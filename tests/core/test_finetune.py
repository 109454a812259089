import json

import numpy as np
import pytest
import torch

from octopi_core.data import open_source
from octopi_core.export import write_picks
from octopi_core.model_config import default_checkpoint_dir
from octopi_core.particles import PARTICLE_CLASSES
from octopi_core.synth import PhantomSettings, make_phantom, write_phantom
from octopi_core.train.finetune import HoldOut, finetune, finetune_config, prepare_finetune_data
from octopi_core.train.sampling import cut_batches

DENSE = PhantomSettings(shape_zyx=(32, 64, 64), particles_per_1e9_a3=(60.0, 80.0))


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory):
    """Two 32x64x64 phantoms as NAME.zarr + NAME.picks.json; ``b`` leaves ribosome unlabelled."""
    folder = tmp_path_factory.mktemp("labelled")
    for seed, name in ((11, "a"), (12, "b")):
        phantom = make_phantom(seed, DENSE)
        path, truth_path = write_phantom(phantom, folder, name)
        truth_path.unlink()
        doc = phantom.truth_document(name, str(path))
        if name == "b":
            doc = doc.model_copy(update={"picks": {k: v for k, v in doc.picks.items() if k != "ribosome"}})
        write_picks(doc, folder / f"{name}.picks.json")
    return folder


def test_a_y_block_of_each_tomogram_is_held_out_behind_a_gap(labelled_folder):
    items = open_source(str(labelled_folder)).items
    data = prepare_finetune_data(items, model_voxel_size_a=10.0, target_radius_fraction=0.5)
    assert data.provenance["holdout"] == "blocks" and len(data.pool) == len(data.validation) == 2
    largest_radius_vox = max(p.radius_a for p in PARTICLE_CLASSES) / 10.0
    for sample, held, run in zip(data.pool, data.validation, ("a", "b")):
        split = data.provenance["runs"][run]
        train_stop, (val_start, val_stop) = split["train_y_vox"][1], split["validation_y_vox"]
        # Patches are cut from the sample's arrays only: its y extent is the training block.
        assert sample.volume.shape[1] == sample.labels.shape[1] == train_stop
        assert held.volume.shape[1] == val_stop - val_start == 16
        assert val_start - train_stop >= largest_radius_vox
        # No particle is in both: training centres lie in the block, held-out truth in the other.
        assert all((c[:, 1] >= 0).all() and (c[:, 1] < train_stop).all() for c in sample.centres_vox.values())
        held_y_a = [p.y for points in held.truth.picks.values() for p in points]
        assert all(0 <= y < 16 * 10.0 for y in held_y_a)
    config = finetune_config(patch_vox=32, batch_size=4, steps_per_epoch=5)
    for batch in cut_batches(data.pool, config, epoch=0):
        assert batch.images.shape == (4, 1, 32, 32, 32)
        assert batch.labelled is not None and batch.labelled.shape == (4, len(PARTICLE_CLASSES) + 1)


def test_unlabelled_classes_are_masked_unless_absent_means_background(labelled_folder):
    items = open_source(str(labelled_folder)).items
    ribosome = 1 + [p.name for p in PARTICLE_CLASSES].index("ribosome")
    data = prepare_finetune_data(items, model_voxel_size_a=10.0, target_radius_fraction=0.5)
    a, b = data.pool
    assert a.labelled.all() and not b.labelled[ribosome] and b.labelled.sum() == len(PARTICLE_CLASSES)
    assert "ribosome" not in data.validation[1].truth.picks
    assert "ribosome" not in data.provenance["runs"]["b"]["labelled_classes"]
    every = prepare_finetune_data(
        items, model_voxel_size_a=10.0, target_radius_fraction=0.5, absent_classes_are_background=True
    )
    assert every.pool[1].labelled.all() and "ribosome" in every.validation[1].truth.picks


def test_whole_tomograms_are_held_out_when_asked(labelled_folder):
    items = open_source(str(labelled_folder)).items
    data = prepare_finetune_data(
        items, model_voxel_size_a=10.0, target_radius_fraction=0.5, holdout=HoldOut.TOMOGRAMS
    )
    assert len(data.pool) == len(data.validation) == 1
    roles = {run: s["role"] for run, s in data.provenance["runs"].items()}
    assert sorted(roles.values()) == ["training", "validation"]
    assert data.validation[0].volume.shape == (32, 64, 64) and data.pool[0].volume.shape == (32, 64, 64)


@pytest.mark.slow
def test_a_short_fine_tune_writes_a_loadable_checkpoint_with_its_provenance(labelled_folder, tmp_path):
    from octopi_core.pipeline import Picker

    torch.set_num_threads(2)
    source = open_source(str(labelled_folder))
    config = finetune_config(
        output_dir=str(tmp_path / "ft"),
        patch_vox=32,
        epochs=1,
        steps_per_epoch=2,
        threads=2,
        device="cpu",
        val_window_vox=32,
    )
    result = finetune(
        source.items,
        config,
        model_voxel_size_a=10.0,
        synthetic_fraction=0.0,
        provenance={"source": str(labelled_folder), "kind": "folder"},
    )
    best = tmp_path / "ft" / "best"
    assert result.best_checkpoint == str(best)
    picker = Picker(best, device="cpu")
    recorded = json.loads((best / "config.json").read_text())["training"]
    assert recorded["data"]["source"] == str(labelled_folder)
    assert set(recorded["data"]["runs"]) == {"a", "b"}
    assert recorded["data"]["init_validation"]["weighted_f_beta"] >= 0
    assert recorded["localize"]["tuned_on"]["held_out"]["runs"] == ["a", "b"]
    assert recorded["recipe"]["init_version"] == recorded["data"]["init_validation"]["version"]
    # Two small held-out blocks hold fewer than ten particles of any class: each keeps the shipped threshold.
    shipped = json.loads((default_checkpoint_dir() / "config.json").read_text())["training"]["localize"]
    assert recorded["localize"]["kept_thresholds"] == sorted(shipped["thresholds"])
    assert recorded["localize"]["thresholds"] == shipped["thresholds"]
    assert np.isfinite(result.best_score) and picker.version
    # --match-spectrum then aims at the user's own data: its held-out runs' median spectrum
    assert len(picker.config.input_spectrum or ()) == 48
    assert recorded["input_spectrum_from"]["held_out"]["runs"] == ["a", "b"]


def test_train_keeps_presets_and_refuses_finetune_options_elsewhere(capsys):
    from octopi_core.cli import build_parser, main

    args = build_parser().parse_args(["train", "tiny", "--output-dir", "x"])
    assert args.config == "tiny" and args.data is None
    assert main(["train", "tiny", "--data", "somewhere"]) == 2
    assert "--data apply to 'train finetune' only" in capsys.readouterr().err
    assert main(["train", "finetune"]) == 2
    assert "needs --data" in capsys.readouterr().err
    args = build_parser().parse_args(
        [
            "train",
            "finetune",
            "--data",
            "p.json",
            "--picks-user",
            "a",
            "--picks-user",
            "b",
            "--max-minutes",
            "5",
        ]
    )
    assert args.picks_user == ["a", "b"] and args.max_minutes == 5.0


def test_synthetic_patches_come_at_their_fraction_with_every_class_labelled():
    from octopi_core.train.sampling import PatchSampler, Sample

    config = finetune_config(patch_vox=16, batch_size=8, background_patch_fraction=0.0)
    shape, centres = (32, 32, 32), {"ribosome": np.array([[16.0, 16.0, 16.0]])}
    labels = np.zeros(shape, np.uint8)
    users_mask = np.array([True] + [p.name != "apo-ferritin" for p in PARTICLE_CLASSES])
    users = Sample.from_arrays(np.full(shape, -1.0, np.float32), labels, centres, users_mask)
    generated = Sample.from_arrays(np.full(shape, 1.0, np.float32), labels, centres, np.ones(7, bool))
    rng = np.random.default_rng(0)
    sign, masks = [], []
    for _ in range(100):
        batch = PatchSampler(config, synthetic_fraction=0.25).cut([users], rng, [generated])
        sign += list(np.sign(batch.images.mean(axis=(1, 2, 3, 4))))
        masks += list(batch.labelled)
    from_generated = np.array(sign) > 0
    # 800 patches: a quarter from the generated pool (binomial sd 1.5 %)
    assert 0.2 < from_generated.mean() < 0.3
    # the user's patches mask the class they did not label; generated ones label every class
    assert all(m.all() for m, g in zip(masks, from_generated) if g)
    assert all((m == users_mask).all() for m, g in zip(masks, from_generated) if not g)
    without = PatchSampler(config, synthetic_fraction=0.0).cut([users], rng, [generated])
    assert (without.images < 0).all()


@pytest.mark.slow
def test_train_finetune_on_a_folder_then_predict_with_its_best(labelled_folder, tmp_path, capsys):
    """The user's two commands, through the CLI: fine-tune on a folder in half a minute, predict with DIR/best."""
    from octopi_core.cli import main
    from octopi_core.model_config import read_config
    from octopi_core.picks import PicksDocument

    out = tmp_path / "ft"
    argv = ["train", "finetune", "--data", str(labelled_folder), "--max-minutes", "0.5"]
    code = main([*argv, "--output-dir", str(out), "--device", "cpu", "--seed", "3"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    result = json.loads(printed.out[printed.out.index("{") :])
    assert result["best_checkpoint"] == str(out / "best")
    assert result["stopped_because"].startswith("wall-clock limit")
    config = read_config(out / "best")
    assert config.training["data"]["source"] == str(labelled_folder)
    assert config.training["recipe"]["seed"] == 3 and config.training["recipe"]["patch_vox"] == 64

    picks_path = tmp_path / "a.picks.json"
    assert (
        main(
            [
                "predict",
                str(labelled_folder / "a.zarr"),
                "--model",
                str(out / "best"),
                "--out",
                str(picks_path),
            ]
        )
        == 0
    )
    picks = PicksDocument.model_validate_json(picks_path.read_text())
    assert picks.model_version == config.version
