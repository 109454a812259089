import functools
import json

import numpy as np
import pytest
import torch

from octopi_core.exceptions import TrainingDataError
from octopi_core.model import load_checkpoint
from octopi_core.model_config import ModelConfig
from octopi_core.particles import PARTICLE_CLASSES, particle_by_name
from octopi_core.train import load_train_config, paint_targets, train


def test_paint_targets_draws_spheres_of_the_class_fraction():
    truth = {"ribosome": np.array([[200.0, 300.0, 250.0]])}  # xyz Å -> voxel (z=25, y=30, x=20)
    labels = paint_targets((50, 60, 40), truth, (10.0, 10.0, 10.0), 0.5)
    label = particle_by_name("ribosome").label
    assert labels[25, 30, 20] == label
    assert labels[25, 30, 20 + 7] == label and labels[25, 30, 20 + 8] == 0  # radius 75 Å = 7.5 voxels
    assert (labels == label).sum() == pytest.approx(4 / 3 * np.pi * 7.5**3, rel=0.1)
    assert set(np.unique(labels)) == {0, label}


def test_presets_load_and_invalid_configs_name_the_field(tmp_path):
    card = load_train_config("card")
    assert card.lr == pytest.approx(2.796e-6) and card.loss_alpha == pytest.approx(0.152)
    assert (
        card.loss_gamma == pytest.approx(1.889)
        and card.patch_vox == 112
        and card.dropout == pytest.approx(0.23)
    )
    assert load_train_config("cpu").patch_vox == 64
    bad = tmp_path / "bad.yaml"
    bad.write_text("patch_vox: 30\nlr: -1\n")
    with pytest.raises(ValueError, match="patch_vox") as info:
        load_train_config(bad)
    assert "lr" in str(info.value)
    (tmp_path / "unknown.yaml").write_text("learning_rate: 0.1\n")
    with pytest.raises(ValueError, match="learning_rate"):
        load_train_config(tmp_path / "unknown.yaml")
    with pytest.raises(ValueError, match="neither a file nor a preset"):
        load_train_config("no-such-preset")
    toml = tmp_path / "c.toml"
    toml.write_text("seed = 3\npatch_vox = 32\n")
    assert load_train_config(toml).seed == 3


def _tiny(tmp_path, **update):
    config = load_train_config("tiny").model_copy(update={"output_dir": str(tmp_path / "run"), **update})
    return config


def _metrics(tmp_path) -> list[dict]:
    """The epoch records of the run that ``_tiny(tmp_path)`` configured."""
    return [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_short_run_lowers_the_loss_writes_a_loadable_checkpoint_and_resumes(tmp_path):
    # Tuning is tested on its own below; on a barely trained network's speckled output it only costs minutes here.
    config = _tiny(
        tmp_path,
        epochs=4,
        steps_per_epoch=6,
        refresh_per_epoch=0,
        train_pool_size=1,
        val_every_epochs=4,
        tune_localization=False,
    )
    result = train(config)
    records = _metrics(tmp_path)
    assert len(records) == 4 and result.epochs_run == 4
    assert records[-1]["loss"] < records[0]["loss"]
    _, saved = load_checkpoint(result.best_checkpoint)
    assert saved.training["seed"] == config.seed and "validation" in saved.scores
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000

    # Resume: asking for more epochs continues from the saved state instead of starting over.
    resumed = train(config.model_copy(update={"epochs": 5, "val_every_epochs": 1}))
    records = _metrics(tmp_path)
    assert [r["epoch"] for r in records] == [0, 1, 2, 3, 4]
    assert records[-1]["step"] == 5 * config.steps_per_epoch and resumed.epochs_run == 5


@pytest.mark.slow
def test_warm_start_begins_from_the_given_checkpoint(tmp_path, random_checkpoint):
    import torch

    start, _ = load_checkpoint(random_checkpoint)
    config = _tiny(
        tmp_path,
        epochs=1,
        steps_per_epoch=1,
        lr=1e-9,
        ema_decay=0.5,
        tune_localization=False,
        init_checkpoint=str(random_checkpoint),
    )
    trained, saved = load_checkpoint(train(config).best_checkpoint)
    assert saved.training["recipe"]["init_version"] == load_checkpoint(random_checkpoint)[1].version
    for name, value in start.state_dict().items():
        torch.testing.assert_close(trained.state_dict()[name], value, atol=1e-6, rtol=0)
    with pytest.raises(Exception, match="checkpoint"):
        train(_tiny(tmp_path / "missing", init_checkpoint=str(tmp_path / "no-such-checkpoint")))


def test_label_less_data_stops_with_a_clear_error(tmp_path):
    empty = {"particles_per_1e9_a3": (0.0, 0.0), "shape_zyx": (32, 64, 64)}
    config = _tiny(tmp_path)
    config = config.model_copy(update={"train_settings": config.train_settings.model_copy(update=empty)})
    with pytest.raises(TrainingDataError, match="no labelled particles"):
        train(config)


@pytest.mark.slow
def test_tuning_picks_the_best_grid_point_and_records_it(tmp_path, random_checkpoint):
    import shutil

    import torch

    from octopi_core.synth import PhantomSettings, make_phantom
    from octopi_core.train import tune_checkpoint, tune_localization
    from octopi_core.train.tuning import score_segmentations, segment_all

    settings = PhantomSettings(shape_zyx=(32, 64, 64), particles_per_1e9_a3=(60.0, 80.0))
    model, _ = load_checkpoint(random_checkpoint)
    phantoms = [make_phantom(1, settings)]
    grid = {"thresholds": (0.5, 0.9), "min_volume_fractions": (0.1, 0.5)}
    chosen, score = tune_localization(
        model, phantoms, window_vox=32, target_radius_fraction=0.5, device=torch.device("cpu"), **grid
    )
    assert set(chosen["thresholds"]) == {p.name for p in PARTICLE_CLASSES}
    assert set(chosen["thresholds"].values()) <= set(grid["thresholds"])
    assert chosen["min_volume_fraction"] in grid["min_volume_fractions"]
    segmentations = segment_all(model, phantoms, 32, torch.device("cpu"))
    for f in grid["min_volume_fractions"]:
        for t in grid["thresholds"]:  # no single threshold beats the per-class choice
            other = score_segmentations(
                segmentations, phantoms, target_radius_fraction=0.5, threshold=t, min_volume_fraction=f
            )
            assert other.weighted_f_beta <= score.weighted_f_beta + 1e-12
            for mine, theirs in zip(score.classes, other.classes):  # nor, class by class, at the chosen size
                assert f != chosen["min_volume_fraction"] or theirs.f_beta <= mine.f_beta + 1e-12

    copy = tmp_path / "ckpt"
    shutil.copytree(random_checkpoint, copy)
    recorded = tune_checkpoint(copy, settings, count=1, window_vox=32, device="cpu")
    _, config = load_checkpoint(copy)  # weights untouched: the SHA-256 check still passes
    assert config.training["localize"]["thresholds"] == recorded["thresholds"]


def _marked_pool(config):
    """One tomogram whose only bright voxels are balls around its clutter proteins."""
    from octopi_core.synth import Phantom
    from octopi_core.train.sampling import Sample

    clutter_zyx_vox = np.array([[20.0, 20.0, 20.0], [44.0, 40.0, 30.0]])
    zz, yy, xx = np.indices((64, 64, 64))
    volume = np.zeros((64, 64, 64), np.float32)
    for z, y, x in clutter_zyx_vox:
        volume[(zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= 8**2] = 1.0
    truth = {p.name: np.zeros((0, 3)) for p in PARTICLE_CLASSES}
    truth["ribosome"] = np.array([[500.0, 500.0, 320.0]])  # xyz A: voxel (32, 50, 50), far from the balls
    phantom = Phantom(
        volume=volume,
        voxel_size_zyx_a=(10.0, 10.0, 10.0),
        truth_xyz_a=truth,
        seed=0,
        clutter_xyz_a=clutter_zyx_vox[:, ::-1] * 10.0,
    )
    return [Sample(phantom, config.target_radius_fraction)]


@pytest.mark.parametrize("hard_negative_fraction, expect_clutter_centred", [(1.0, True), (0.0, False)])
def test_hard_negative_patches_are_centred_on_clutter(hard_negative_fraction, expect_clutter_centred):
    from octopi_core.train import TrainConfig
    from octopi_core.train.sampling import PatchSampler

    config = TrainConfig(
        patch_vox=32,
        batch_size=8,
        background_patch_fraction=0.0,
        noise_std=(0.0, 0.0),
        hard_negative_patch_fraction=hard_negative_fraction,
    )
    batch = PatchSampler(config).cut(_marked_pool(config), np.random.default_rng(0))
    images, targets = batch.on(torch.device("cpu"), torch.Generator().manual_seed(0))
    centre_values = images[:, 0, 16, 16, 16].numpy()
    assert np.all(centre_values > 1.0) == expect_clutter_centred
    assert np.all(centre_values < 1.0) != expect_clutter_centred
    if expect_clutter_centred:  # a hard negative teaches "nothing here": no particle at its centre
        assert np.all(targets[:, 16, 16, 16].numpy() == 0)


def test_patch_sizes_drawn_per_batch_keep_the_voxels_per_batch():
    from octopi_core.train import TrainConfig
    from octopi_core.train.sampling import PatchSampler

    config = TrainConfig(patch_vox=32, batch_size=8, patch_vox_choices=[16, 32, 48], noise_std=(0.0, 0.0))
    sampler, pool, rng = PatchSampler(config), _marked_pool(config), np.random.default_rng(0)
    shapes = {sampler.cut(pool, rng).images.shape for _ in range(40)}
    # 8 x (32/16)^3 = 64 patches of 16, 8 of 32, round(8 x (32/48)^3) = 2 of 48: every size drawn
    assert shapes == {(64, 1, 16, 16, 16), (8, 1, 32, 32, 32), (2, 1, 48, 48, 48)}
    fixed = PatchSampler(config.model_copy(update={"patch_vox_choices": []}))
    assert {fixed.cut(pool, rng).images.shape for _ in range(5)} == {(8, 1, 32, 32, 32)}
    with pytest.raises(ValueError, match="multiples of 4"):
        TrainConfig(patch_vox_choices=[96, 98])


def test_patch_fractions_must_fit_in_one():
    from octopi_core.train import TrainConfig

    with pytest.raises(ValueError, match="hard_negative_patch_fraction"):
        TrainConfig(background_patch_fraction=0.5, hard_negative_patch_fraction=0.6)
    assert load_train_config("cpu-refine-3").hard_negative_patch_fraction > 0


@pytest.mark.slow
def test_worker_processes_make_the_same_tomograms_as_the_training_process(tmp_path):
    from octopi_core.train.sampling import TomogramMaker

    config = _tiny(tmp_path)
    in_process = TomogramMaker(config).submit([5, 6])()
    maker = TomogramMaker(config.model_copy(update={"data_workers": 2}))
    try:
        in_workers = maker.submit([5, 6])()
    finally:
        maker.close()
    for a, b in zip(in_process, in_workers, strict=True):
        np.testing.assert_array_equal(a.volume, b.volume)
        np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(in_process[0].volume, in_process[1].volume)


@pytest.mark.slow
def test_a_non_finite_loss_stops_training_with_the_step_named(tmp_path, monkeypatch):
    import octopi_core.train.loop as train_module
    from octopi_core.exceptions import OctopiError

    def loss_that_explodes_at_step_2(logits, targets, **_):
        calls.append(1)
        return logits.mean() * (float("nan") if len(calls) == 3 else 1.0)

    calls: list[int] = []
    monkeypatch.setattr(train_module, "focal_tversky_loss", loss_that_explodes_at_step_2)
    config = _tiny(
        tmp_path, epochs=2, steps_per_epoch=4, refresh_per_epoch=0, train_pool_size=1, tune_localization=False
    )
    with pytest.raises(OctopiError, match="loss became nan at step 2"):
        train(config)
    assert not (tmp_path / "run" / "last.pt").exists()  # nothing saved from the broken epoch


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda_in_bf16_lowers_the_loss(tmp_path):
    config = _tiny(
        tmp_path,
        device="cuda",
        epochs=3,
        steps_per_epoch=10,
        refresh_per_epoch=1,
        train_pool_size=2,
        val_every_epochs=3,
        tune_localization=False,
        data_workers=1,
    )
    train(config)
    records = _metrics(tmp_path)
    assert records[-1]["loss"] < records[0]["loss"]


@pytest.mark.parametrize(
    "native_bf16,amp,precision", [(True, True, "bf16"), (True, False, "fp32"), (False, True, "fp32")]
)
def test_cpu_training_uses_bf16_where_the_cpu_does_it_natively(
    tmp_path, monkeypatch, native_bf16, amp, precision
):
    monkeypatch.setattr("octopi_core.inference.cpu_has_native_bf16", lambda: native_bf16)
    # A small network: a CPU without native bf16 emulates it, ~40x slower than fp32 for the real one.
    small = functools.partial(ModelConfig, channels=(8, 16), strides=(2,))
    monkeypatch.setattr("octopi_core.train.loop.ModelConfig", small)
    config = _tiny(
        tmp_path,
        amp=amp,
        epochs=2,
        steps_per_epoch=6,
        refresh_per_epoch=0,
        train_pool_size=1,
        val_every_epochs=2,
        tune_localization=False,
    )
    train(config)
    records = _metrics(tmp_path)
    assert [r["precision"] for r in records] == [precision] * 2
    assert records[-1]["loss"] < records[0]["loss"]


def test_batches_are_the_same_whatever_the_number_of_cutting_threads():
    from octopi_core.train import TrainConfig
    from octopi_core.train.sampling import cut_batches

    config = TrainConfig(patch_vox=32, batch_size=3, steps_per_epoch=7)
    pool = _marked_pool(config)
    one = list(cut_batches(pool, config, epoch=2))
    three = list(cut_batches(pool, config.model_copy(update={"data_threads": 3}), epoch=2))
    assert len(one) == len(three) == 7
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.targets, b.targets)
    assert not np.array_equal(one[0].images, one[1].images)
    other_epoch = next(iter(cut_batches(pool, config, epoch=3)))
    assert not np.array_equal(one[0].images, other_epoch.images)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_config_without_a_gpu_is_refused_clearly(tmp_path):
    from octopi_core.exceptions import OctopiError

    with pytest.raises(OctopiError, match="asks for device 'cuda', but no CUDA GPU is available"):
        train(_tiny(tmp_path, device="cuda"))
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("tune_data", ["training", "validation"])
def test_training_tunes_on_the_configured_tomograms(tmp_path, monkeypatch, tune_data):
    import octopi_core.train.loop as train_module

    asked = []
    monkeypatch.setattr(
        train_module, "tune_checkpoint", lambda path, settings, **kw: asked.append((settings, kw["count"]))
    )
    config = _tiny(tmp_path, epochs=1, steps_per_epoch=1, tune_data=tune_data, tune_tomograms=3)
    config = config.model_copy(
        update={"train_settings": config.train_settings.model_copy(update={"snr": (1.5, 2.0)})}
    )
    train(config)
    expected = config.train_settings if tune_data == "training" else config.val_settings
    assert asked == [(expected, 3)] and config.train_settings != config.val_settings


class _ScriptedScore:
    """A validation score whose weighted F-beta is given (what the loop reads of a Score)."""

    def __init__(self, weighted: float):
        self.weighted_f_beta = weighted
        self.classes = [type("C", (), {"particle": p.name, "f_beta": weighted})() for p in PARTICLE_CLASSES]

    def as_dict(self):
        return {"weighted_f_beta": self.weighted_f_beta}


@pytest.mark.slow
@pytest.mark.parametrize(("tolerance", "saved_epoch"), [(0.02, 1), (0.0, 0)])
def test_a_near_tie_keeps_the_later_weights_but_is_no_improvement(
    tmp_path, monkeypatch, tolerance, saved_epoch
):
    import octopi_core.train.loop as train_module

    scripted = iter([0.80, 0.79, 0.70])
    monkeypatch.setattr(train_module, "validate_model", lambda *a, **k: _ScriptedScore(next(scripted)))
    config = _tiny(
        tmp_path,
        epochs=5,
        steps_per_epoch=1,
        refresh_per_epoch=0,
        train_pool_size=1,
        patience_epochs=2,
        selection_tolerance=tolerance,
        tune_localization=False,
    )
    result = train(config)
    assert result.best_epoch == saved_epoch
    assert result.best_score == [0.80, 0.79][saved_epoch]  # the saved weights' own score
    assert load_checkpoint(result.best_checkpoint)[1].training["epoch"] == saved_epoch
    # 0.79 is within the tolerance of 0.80 but no better: patience runs out after it and 0.70
    assert result.epochs_run == 3 and result.stopped_because == "no improvement in 2 validations"


class _FakeClock:
    """Training steps and validations advance a clock of their own, so time limits are tested without timing."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now


def _run_on_a_fake_clock(monkeypatch, validation_s: float) -> None:
    """Each training step takes 1 s and each validation ``validation_s`` s of the loop's own clock."""
    import octopi_core.train.loop as train_module

    clock = _FakeClock()
    real_loss = train_module.focal_tversky_loss

    def one_second_step(*args, **kwargs):
        clock.now += 1.0
        return real_loss(*args, **kwargs)

    def timed_validation(*args, **kwargs):
        clock.now += validation_s
        return _ScriptedScore(0.5)

    monkeypatch.setattr(train_module, "time", clock)
    monkeypatch.setattr(train_module, "focal_tversky_loss", one_second_step)
    monkeypatch.setattr(train_module, "validate_model", timed_validation)


def _fake_clock_config(tmp_path, **update):
    """A tiny run for the fake clock: 5 steps per epoch, no early stop, no tuning, small patches (the clock
    is fake: they keep the real steps short)."""
    settings = {
        "steps_per_epoch": 5,
        "refresh_per_epoch": 0,
        "train_pool_size": 1,
        "patience_epochs": 100,
        "patch_vox": 16,
        "tune_localization": False,
    }
    return _tiny(tmp_path, **{**settings, **update})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("max_wall_s", "validation_s", "validated", "steps"),
    [
        # No limit: the first epoch and the last are validated, the others only while validation so far
        # stays within a quarter of the time (5 s epochs, a 5 s validation: epoch 5 is the next).
        (0.0, 5.0, [0, 5, 6], 7 * 5),
        # 38 s: after a 10 s validation, 20 s are kept for the last validation and the tuning, so
        # training stops three steps into epoch 1 (at 18 s) and those weights are validated.
        (38.0, 10.0, [0, 1], 5 + 3),
    ],
)
def test_validation_keeps_to_its_share_of_time_and_the_limit_leaves_room_for_it(
    tmp_path, monkeypatch, max_wall_s, validation_s, validated, steps
):
    _run_on_a_fake_clock(monkeypatch, validation_s)
    config = _fake_clock_config(tmp_path, epochs=7, val_time_fraction=0.25, max_wall_s=max_wall_s)
    result = train(config)
    records = _metrics(tmp_path)
    assert [r["epoch"] for r in records if "weighted_f_beta" in r] == validated
    assert records[-1]["step"] == steps
    assert result.stopped_because == (
        "finished all epochs" if not max_wall_s else f"wall-clock limit of {max_wall_s:.0f} s reached"
    )


@pytest.mark.slow
@pytest.mark.parametrize("max_wall_s", [0.0, 30.0])
def test_the_learning_rate_anneals_by_the_end_whether_the_epochs_or_the_clock_end_the_run(
    tmp_path, monkeypatch, max_wall_s
):
    # 1 s per step and instant validations: a 30-s limit stops the run after 30 of 100 planned steps.
    _run_on_a_fake_clock(monkeypatch, 0.0)
    config = _fake_clock_config(
        tmp_path, epochs=20 if max_wall_s else 6, max_wall_s=max_wall_s, lr_min_fraction=0.05
    )
    train(config)
    records = _metrics(tmp_path)
    lrs = [r["lr"] for r in records]
    assert records[-1]["step"] == 30
    assert lrs == sorted(lrs, reverse=True) and lrs[0] > 0.5 * config.lr
    # The last step's rate is within 1% of the peak above the floor (the cosine's last step before its end).
    assert lrs[-1] <= config.lr * (0.05 + 0.01)


@pytest.mark.slow
def test_a_class_with_too_few_tuning_particles_keeps_the_starting_threshold(random_checkpoint):
    from octopi_core.synth import PhantomSettings, make_phantom
    from octopi_core.train import tune_localization

    settings = PhantomSettings(shape_zyx=(48, 96, 96), particles_per_1e9_a3=(60.0, 80.0))
    model, _ = load_checkpoint(random_checkpoint)
    phantoms = [make_phantom(1, settings)]
    counts = phantoms[0].truth_document("x").counts()
    few, many = min(counts, key=counts.get), max(counts, key=counts.get)
    assert counts[few] < counts[many]
    start = {few: 0.95, many: 0.95}
    chosen, _ = tune_localization(
        model,
        phantoms,
        window_vox=32,
        target_radius_fraction=0.5,
        device=torch.device("cpu"),
        thresholds=(0.3, 0.6),
        min_volume_fractions=(0.1,),
        keep_thresholds=start,
        min_particles=counts[many],  # only the class with the most particles is re-tuned
    )
    assert chosen["thresholds"][few] == 0.95 and chosen["kept_thresholds"] == [few]
    assert chosen["thresholds"][many] in (0.3, 0.6)


def test_training_tomograms_are_made_in_the_configured_families(tmp_path):
    from octopi_core.synth import family_for_seed, make_phantom, with_family
    from octopi_core.train import TrainConfig
    from octopi_core.train.sampling import Sample, make_sample

    families = ("sirt", "filaments")
    config = _tiny(tmp_path, train_families=list(families))
    for seed in (3, 4):
        sample = make_sample(seed, config.train_settings, config.target_radius_fraction, families)
        expected = make_phantom(seed, with_family(family_for_seed(seed, families), config.train_settings))
        np.testing.assert_array_equal(sample.volume, Sample(expected, config.target_radius_fraction).volume)
    with pytest.raises(ValueError, match="unknown generator families"):
        TrainConfig.model_validate({"train_families": ["sirt", "nope"]})


@pytest.mark.slow
def test_a_timed_pass_over_the_users_held_out_data_budgets_validation_from_the_first_epoch(
    tmp_path, monkeypatch
):
    from octopi_core.train.sampling import Sample, TrainingData

    _run_on_a_fake_clock(monkeypatch, 10.0)
    volume = np.random.default_rng(0).normal(size=(48, 48, 48)).astype(np.float32)
    labels = np.zeros(volume.shape, np.uint8)
    labels[20:28, 20:28, 20:28] = 4
    sample = Sample.from_arrays(
        volume, labels, {"ribosome": np.array([[24.0, 24.0, 24.0]])}, np.ones(7, bool)
    )
    data = TrainingData(pool=[sample], validation=[], validation_pass_s=10.0)
    config = _fake_clock_config(tmp_path, epochs=14, val_time_fraction=0.25, max_wall_s=40.0)
    train(config, data=data)
    records = _metrics(tmp_path)
    # 20 s of the 40 are kept for the last validation and the tuning from the start, and no earlier
    # validation fits in a quarter of the time: four epochs train, the last is validated.
    assert [r["epoch"] for r in records if "weighted_f_beta" in r] == [3]
    assert records[-1]["step"] == 20
