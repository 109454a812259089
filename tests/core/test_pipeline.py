import numpy as np
import pytest
import torch

from octopi_core.exceptions import InferenceCancelledError, TomogramTooSmallError, UnknownParticleClassError
from octopi_core.io import write_mrc
from octopi_core.metric import score_documents
from octopi_core.model_config import default_checkpoint_dir
from octopi_core.particles import PARTICLE_CLASSES
from octopi_core.picks import PicksDocument
from octopi_core.pipeline import Picker, PredictOptions, Stage, run_name_from_uri
from octopi_core.synth import PhantomSettings, make_phantom, write_phantom

SMALL = PredictOptions(window_vox=32, overlap=0.25, batch_size=2)


@pytest.mark.slow
def test_predict_returns_a_complete_document_with_stages_and_progress(random_checkpoint, small_tomogram):
    picker = Picker(random_checkpoint, device="cpu")
    stages, fractions = [], []
    doc = picker.predict(str(small_tomogram[0]), SMALL, on_stage=stages.append, progress=fractions.append)
    assert stages == [Stage.FETCHING, Stage.INFERRING, Stage.LOCALIZING]
    assert fractions[-1] == pytest.approx(1.0)
    assert list(doc.picks) == [p.name for p in PARTICLE_CLASSES]
    assert doc.model_version == picker.version and doc.run_name == "small"
    assert doc.voxel_size_xyz_a == pytest.approx((10.0, 10.0, 10.0)) and doc.shape_zyx == (32, 64, 64)
    assert set(doc.timings_s) == {"read", "inference", "localize", "total"}
    assert doc.timings_s["total"] >= doc.timings_s["inference"] > 0
    extent = np.array([64, 64, 32]) * 10.0
    for points in doc.picks.values():
        for p in points:
            assert 0 <= p.x <= extent[0] and 0 <= p.y <= extent[1] and 0 <= p.z <= extent[2]
            assert 0.0 <= p.score <= 1.0


def test_class_subset_and_unknown_class(random_checkpoint, small_tomogram):
    picker = Picker(random_checkpoint, device="cpu")
    doc = picker.predict(str(small_tomogram[0]), PredictOptions(window_vox=32, classes=["ribosome", "vlp"]))
    assert list(doc.picks) == ["ribosome", "virus-like-particle"]
    with pytest.raises(ValueError, match="unknown particle class"):
        picker.predict(str(small_tomogram[0]), PredictOptions(window_vox=32, classes=["spliceosome"]))
    picker.config = picker.config.model_copy(update={"classes": ("ribosome",)})
    with pytest.raises(UnknownParticleClassError, match="does not pick apo-ferritin"):
        picker.predict(str(small_tomogram[0]), PredictOptions(window_vox=32, classes=["apo-ferritin"]))


def test_run_name_given_in_the_options_names_the_run(random_checkpoint, small_tomogram):
    picker = Picker(random_checkpoint, device="cpu")
    options = PredictOptions(window_vox=32, classes=["ribosome"], run_name="TS_001")
    assert picker.predict(str(small_tomogram[0]), options).run_name == "TS_001"
    with pytest.raises(ValueError, match="run_name"):
        PredictOptions(run_name="../TS_001")


def test_resampled_tomogram_reports_the_original_frame(random_checkpoint, tmp_path):
    # A 5 Å tomogram is resampled to the model's 10 Å; the document still describes the original.
    volume = np.random.default_rng(0).normal(size=(64, 96, 80)).astype(np.float32)
    write_mrc(str(tmp_path / "fine.mrc"), volume, 5.0)
    doc = Picker(random_checkpoint, device="cpu").predict(str(tmp_path / "fine.mrc"), SMALL)
    assert doc.voxel_size_xyz_a == pytest.approx((5.0, 5.0, 5.0)) and doc.shape_zyx == (64, 96, 80)
    for points in doc.picks.values():
        for p in points:
            assert p.x <= 80 * 5.0 and p.y <= 96 * 5.0 and p.z <= 64 * 5.0


def test_too_small_and_cancelled(random_checkpoint, small_tomogram, tmp_path):
    picker = Picker(random_checkpoint, device="cpu")
    thin = tmp_path / "thin.mrc"
    write_mrc(str(thin), np.zeros((12, 64, 64), np.float32), 10.0)
    with pytest.raises(TomogramTooSmallError, match=r"\(12, 64, 64\).*minimum \(16, 16, 16\)"):
        picker.predict(str(thin), PredictOptions())
    with pytest.raises(InferenceCancelledError):
        picker.predict(str(small_tomogram[0]), SMALL, should_cancel=lambda: True)


@pytest.mark.parametrize(
    "uri,name",
    [
        ("s3://bucket/run/TS_5_4.zarr/", "TS_5_4"),
        ("/data/a.b.mrc", "a.b"),
        ("https://h/x/tomo.REC?sig=1", "tomo"),
        ("file:///t/denoised.ome.zarr", "denoised"),
        # copick: the run, not the tomogram type
        ("/p/ExperimentRuns/TS_001/VoxelSpacing10.000/wbp.zarr", "TS_001"),
        ("s3://b/p/ExperimentRuns/TS_6_4/VoxelSpacing7.840/denoised.zarr/", "TS_6_4"),
        ("/p/VoxelSpacing/wbp.zarr", "wbp"),
    ],
)
def test_run_name_from_uri(uri, name):
    assert run_name_from_uri(uri) == name


@pytest.mark.slow
@pytest.mark.skipif(not (default_checkpoint_dir() / "config.json").is_file(), reason="no shipped model")
def test_shipped_model_really_picks_particles(tmp_path):
    # A tomogram the model never saw (seed outside training and validation), scored like a user would.
    phantom = make_phantom(31_337, PhantomSettings(shape_zyx=(96, 192, 192)))
    tomogram, truth = write_phantom(phantom, tmp_path, "unseen")
    doc = Picker(device="cpu").predict(str(tomogram), PredictOptions(batch_size=2))
    score = score_documents([doc], [PicksDocument.model_validate_json(truth.read_text())])
    assert score.weighted_f_beta > 0.5, score.table()  # an untrained network scores 0


def test_localization_uses_the_models_tuned_thresholds_unless_overridden(random_checkpoint, tmp_path):
    import json
    import shutil

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(random_checkpoint, checkpoint)
    assert Picker(checkpoint, device="cpu").localize_settings()["threshold"] == 0.5  # untuned: the default
    config = json.loads((checkpoint / "config.json").read_text())
    tuned = {"apo-ferritin": 0.3, "ribosome": 0.6}
    config["training"]["localize"] = {"thresholds": tuned, "min_volume_fraction": 0.1}
    (checkpoint / "config.json").write_text(json.dumps(config))
    picker = Picker(checkpoint, device="cpu")
    assert picker.localize_settings() == {
        **picker.localize_settings(),
        "threshold": tuned,
        "min_volume_fraction": 0.1,
    }
    assert picker.localize_settings(0.42)["threshold"] == 0.42


def test_channels_last_segments_as_the_default_layout(random_checkpoint):
    volume = np.random.default_rng(3).normal(size=(40, 72, 64)).astype(np.float32)
    # fp32: bf16's rounding differs with the memory layout and would hide a layout bug
    default = Picker(random_checkpoint, device="cpu", amp=False).segment(volume, SMALL)
    picker = Picker(random_checkpoint, device="cpu", channels_last=True, amp=False)
    conv = next(m for m in picker.model.modules() if isinstance(m, torch.nn.Conv3d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    converted = picker.segment(volume, SMALL)
    assert np.mean(converted.labels == default.labels) > 0.999  # float order may flip a near-tie
    assert np.abs(converted.confidence.astype(np.float32) - default.confidence).max() < 2e-3


def test_compile_mode_wraps_the_network_lazily(random_checkpoint):
    picker = Picker(random_checkpoint, device="cpu", compile_mode="max-autotune")
    assert isinstance(picker.model, torch._dynamo.eval_frame.OptimizedModule)  # compiled on first call
    assert not isinstance(
        Picker(random_checkpoint, device="cpu").model, torch._dynamo.eval_frame.OptimizedModule
    )


@pytest.fixture(scope="module")
def unseen_phantom(tmp_path_factory):
    """``(tomogram, truth document)`` of a 64x192x192 phantom the shipped model never saw."""
    phantom = make_phantom(31_338, PhantomSettings(shape_zyx=(64, 192, 192)))
    tomogram, truth = write_phantom(phantom, tmp_path_factory.mktemp("unseen"), "unseen")
    return str(tomogram), PicksDocument.model_validate_json(truth.read_text())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("variant", ["default", "channels-last", "batch"])
def test_cuda_picks_what_the_cpu_picks(unseen_phantom, variant):
    # The CUDA path cuts windows and keeps the label and confidence maps on the GPU, in bf16: its picks
    # must be the CPU's fp32 picks but for near-ties, and score as well against the truth.
    from octopi_core.batch import BatchItem, predict_batch

    tomogram, truth = unseen_phantom
    options = PredictOptions(batch_size=4)
    reference = Picker(device="cpu", amp=False).predict(tomogram, options)
    picker = Picker(device="cuda", channels_last=variant == "channels-last")
    if variant == "batch":
        (result,) = predict_batch(picker, [BatchItem.from_uri(tomogram)], options)
        assert result.ok, result.error
        doc = result.document
    else:
        doc = picker.predict(tomogram, options)
    assert score_documents([doc], [reference]).weighted_f_beta > 0.95
    expected = score_documents([reference], [truth]).weighted_f_beta
    assert expected > 0.5  # real picks to compare, not an empty tomogram
    assert score_documents([doc], [truth]).weighted_f_beta == pytest.approx(expected, abs=0.02)
