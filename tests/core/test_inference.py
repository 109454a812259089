import numpy as np
import pytest
import torch

from octopi_core.exceptions import InferenceCancelledError, TomogramTooSmallError
from octopi_core.inference import autocast_dtype, segment_tomogram, window_starts


class Pointwise(torch.nn.Module):
    """Voxel-wise logits from intensity: exact reference output for any window layout."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, num_classes, 1)
        torch.manual_seed(0)
        torch.nn.init.normal_(self.conv.weight, std=3.0)

    def forward(self, x):
        return self.conv(x)


def _reference(model, volume):
    """Most probable particle class (1..C-1) and its probability, from one whole-volume pass."""
    with torch.inference_mode():
        probs = torch.softmax(model(torch.from_numpy(volume)[None, None]), 1)[0, 1:].numpy()
    return probs.argmax(0) + 1, probs.max(0)


@pytest.mark.parametrize(
    "length,window,overlap", [(100, 32, 0.25), (64, 64, 0.5), (70, 32, 0.0), (181, 96, 0.5)]
)
def test_window_starts_cover_the_axis_with_the_requested_overlap(length, window, overlap):
    starts = window_starts(length, window, overlap)
    assert starts[0] == 0 and starts[-1] + window == length
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + window] = True
    assert covered.all()
    gaps = np.diff(starts)
    assert all(window - g >= int(overlap * window) - 1 for g in gaps)


def test_window_starts_rejects_bad_arguments():
    with pytest.raises(ValueError, match="overlap"):
        window_starts(100, 32, 1.0)
    with pytest.raises(ValueError, match="longer"):
        window_starts(20, 32, 0.5)


@pytest.mark.parametrize("window,overlap,batch", [(16, 0.5, 3), ((8, 16, 12), 0.25, 1), (24, 0.0, 8)])
def test_blended_windows_reproduce_whole_volume_output(window, overlap, batch):
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(30, 41, 37)).astype(np.float32)
    model = Pointwise().eval()
    result = segment_tomogram(
        model, volume, num_classes=4, window_vox=window, overlap=overlap, batch_size=batch, amp=False
    )
    labels, confidence = _reference(model, volume)
    assert result.labels.dtype == np.uint8 and result.confidence.dtype == np.float16
    assert (result.labels == labels).mean() > 0.999  # ties at fp16 rounding only
    assert np.allclose(result.confidence.astype(np.float32), confidence, atol=2e-3)


def test_a_read_only_or_float64_volume_segments_like_its_float32_copy(recwarn):
    volume = np.random.default_rng(3).normal(size=(20, 33, 29)).astype(np.float32)
    model = Pointwise().eval()
    expected = segment_tomogram(model, volume, num_classes=4, window_vox=16, overlap=0.25)
    read_only = volume.copy()
    read_only.flags.writeable = False  # as a memory-mapped file arrives
    for variant in (read_only, volume.astype(np.float64)):
        result = segment_tomogram(model, variant, num_classes=4, window_vox=16, overlap=0.25)
        assert np.array_equal(result.labels, expected.labels)
        assert np.array_equal(result.confidence, expected.confidence)
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_tta_with_flip_invariant_model_changes_nothing():
    volume = np.random.default_rng(1).normal(size=(16, 24, 24)).astype(np.float32)
    model = Pointwise().eval()
    plain = segment_tomogram(model, volume, num_classes=4, window_vox=16, overlap=0.5)
    tta = segment_tomogram(model, volume, num_classes=4, window_vox=16, overlap=0.5, tta=True)
    assert np.array_equal(plain.labels, tta.labels)
    assert tta.windows == 4 * plain.windows


def test_progress_reaches_one_and_cancel_stops_between_batches():
    volume = np.zeros((16, 32, 32), np.float32)
    seen = []
    segment_tomogram(
        Pointwise().eval(),
        volume,
        num_classes=4,
        window_vox=16,
        overlap=0.5,
        batch_size=2,
        progress=seen.append,
    )
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0) and len(seen) > 2
    calls = []

    def cancel_on_third_check():
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(InferenceCancelledError):
        segment_tomogram(
            Pointwise().eval(),
            volume,
            num_classes=4,
            window_vox=16,
            overlap=0.5,
            batch_size=1,
            should_cancel=cancel_on_third_check,
        )
    assert len(calls) == 3


def test_real_network_runs_on_cpu_and_bad_input_is_named():
    from octopi_core.model import build_model

    volume = np.random.default_rng(2).normal(size=(32, 40, 40)).astype(np.float32)
    result = segment_tomogram(build_model().eval(), volume, num_classes=7, window_vox=32, overlap=0.25)
    assert result.labels.shape == volume.shape and 1 <= result.labels.min() and result.labels.max() <= 6
    with pytest.raises(TomogramTooSmallError, match="smaller than the smallest inference window"):
        segment_tomogram(Pointwise(), volume[:12], num_classes=4, window_vox=16)
    with pytest.raises(ValueError, match="multiples of 4"):
        segment_tomogram(Pointwise(), volume, num_classes=4, window_vox=30)
    with pytest.raises(ValueError, match="batch_size"):
        segment_tomogram(Pointwise(), volume, num_classes=4, window_vox=16, batch_size=0)


@pytest.mark.parametrize("shape", [(30, 41, 37), (17, 64, 50)])
def test_axes_shorter_than_the_window_get_one_padded_window(shape):
    volume = np.random.default_rng(4).normal(size=shape).astype(np.float32)
    model = Pointwise().eval()
    result = segment_tomogram(model, volume, num_classes=4, window_vox=(64, 32, 32), overlap=0.25, amp=False)
    labels, confidence = _reference(model, volume)
    assert result.labels.shape == shape
    assert (result.labels == labels).mean() > 0.999
    np.testing.assert_allclose(result.confidence.astype(np.float32), confidence, atol=2e-3)
    # z is covered by one window: y and x by ceil((n - 32) / 24) + 1 windows each
    assert result.windows == (int(np.ceil((shape[1] - 32) / 24)) + 1) * (
        int(np.ceil((shape[2] - 32) / 24)) + 1
    )


@pytest.mark.parametrize(
    "shape,window,overlap",
    [
        ((184, 630, 630), (192, 128, 128), 0.125),
        ((200, 512, 384), (96, 160, 100), 0.25),
        ((33, 70, 1000), 32, 0.0),
    ],
)
def test_window_grid_fits_the_fewest_windows_with_the_asked_overlap(shape, window, overlap):
    from octopi_core.inference import window_grid
    from octopi_core.options import window_triple

    grid = window_grid(shape, window, overlap)
    for n, asked, used, padded, starts in zip(
        shape, window_triple(window), grid.window, grid.padded_shape, grid.starts
    ):
        assert used % 4 == 0 and (used <= asked or len(starts) == 1)
        assert starts[0] == 0 and starts[-1] + used == padded >= n
        assert len(starts) == len(window_starts(n, asked, overlap)) if asked < n else len(starts) == 1
        shared = [used - step for step in np.diff(starts)]
        assert all(s >= overlap * asked - 1 for s in shared)  # rounding of starts: at most one voxel less
        if len(starts) > 1:  # one multiple of 4 smaller would no longer give the asked overlap
            assert len(starts) * (used - 4) - (len(starts) - 1) * overlap * asked < n
    assert grid.passes_per_voxel(shape) >= 1.0


def test_automatic_batch_size_follows_the_voxel_budget(monkeypatch):
    from octopi_core.inference import auto_batch_size

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert auto_batch_size((96, 96, 96), cpu) == 4_000_000 // 96**3
    assert auto_batch_size((512, 512, 512), cpu) == 1
    window = (184, 112, 112)
    free = {"bytes": 16 * 2**30}  # a 16 GB card: half of it at 600 bytes per voxel
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 2 * free["bytes"]))
    assert (
        auto_batch_size(window, gpu)
        == int(8 * 2**30 / 600) // (184 * 112 * 112)
        > auto_batch_size(window, cpu)
    )
    free["bytes"] = 139 * 2**30  # an H200: capped at 64 M voxels per pass
    assert auto_batch_size(window, gpu) == 64_000_000 // (184 * 112 * 112)
    free["bytes"] = 2**20  # nearly full: still one window
    assert auto_batch_size(window, gpu) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_mixed_precision_agrees_with_cpu():
    from octopi_core.model import build_model

    torch.manual_seed(0)
    model = build_model().eval()
    volume = np.random.default_rng(3).normal(size=(64, 96, 96)).astype(np.float32)
    cpu = segment_tomogram(model, volume, num_classes=7, window_vox=64, overlap=0.25, amp=False)
    gpu = segment_tomogram(model.cuda(), volume, num_classes=7, window_vox=64, overlap=0.25, amp=True)
    assert (cpu.labels == gpu.labels).mean() > 0.98


class DtypeRecorder(Pointwise):
    """Pointwise, remembering the dtype its convolution computed in."""

    def forward(self, x):
        out = self.conv(x)
        self.seen = out.dtype
        return out


@pytest.mark.parametrize("native", [True, False])
def test_cpu_inference_runs_in_bf16_only_where_the_cpu_does_it_natively(monkeypatch, native):
    monkeypatch.setattr("octopi_core.inference.cpu_has_native_bf16", lambda: native)
    assert autocast_dtype(torch.device("cpu")) == (torch.bfloat16 if native else None)
    volume = np.random.default_rng(4).normal(size=(16, 24, 24)).astype(np.float32)
    model = DtypeRecorder().eval()
    mixed = segment_tomogram(model, volume, num_classes=4, window_vox=16, overlap=0.25)
    assert model.seen == (torch.bfloat16 if native else torch.float32)
    full = segment_tomogram(model, volume, num_classes=4, window_vox=16, overlap=0.25, amp=False)
    assert model.seen == torch.float32
    # bf16 keeps 8 bits of mantissa: the same classes almost everywhere, probabilities within ~1 %.
    assert (mixed.labels == full.labels).mean() > 0.97
    assert np.abs(mixed.confidence.astype(np.float32) - full.confidence.astype(np.float32)).max() < 0.05
