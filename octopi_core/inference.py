"""Batched sliding-window segmentation of a whole tomogram, memory-bounded.

Windows are laid on a regular grid. An axis shorter than the window gets one window padded to a
multiple of 4 (so a tomogram no deeper than the default window needs one pass in z and has no
z seams). Overlapping outputs are blended with separable Gaussian weights; because the grid is
regular, the total weight at a voxel is the product of three 1-D sums and needs no accumulator.
Windows run in y order and only a y-slab as deep as one window of class probabilities is held
(6 x Z x window_y x X floats); once no later window touches a row it is reduced to a ``uint8``
map of the most probable particle class and a ``float16`` map of its probability, so the full
7-class probability volume never exists. The tomogram is copied to the device once and windows
are cut there; on a GPU it and the two output maps add 7 bytes per voxel (0.5 GB at 184x630x630).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from .device import cpu_has_native_bf16
from .exceptions import InferenceCancelledError, TomogramTooSmallError
from .options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_OVERLAP,
    DEFAULT_WINDOW_VOX,
    MIN_AXIS_VOX,
    WINDOW_MULTIPLE_VOX,
    window_triple,
)

__all__ = [
    "SegmentationResult",
    "segment_tomogram",
    "window_starts",
    "window_grid",
    "WindowGrid",
    "autocast_dtype",
    "mixed_precision",
    "auto_batch_size",
]

_FINALIZE_ROWS = 8  # y-rows reduced to labels at a time (bounds the temporaries)
# Voxels per forward pass when the batch size is automatic. CPU: about what keeps the
# activations near 2 GB. GPU: half the free memory at ~600 bytes per voxel (measured peak of
# the activations in fp32; bf16 needs less), capped where larger batches stop helping.
_CPU_BATCH_VOXELS = 4_000_000
_GPU_BYTES_PER_VOXEL = 600
_GPU_MAX_BATCH_VOXELS = 64_000_000


@dataclass
class SegmentationResult:
    """Network output reduced to what localization needs.

    Background is not decided here: localization thresholds ``confidence``, which lets it trade
    precision for recall (the CZII score weighs recall 16 times more than precision).

    Attributes:
        labels: ``(Z, Y, X)`` uint8, the most probable particle class per voxel (1..C-1).
        confidence: ``(Z, Y, X)`` float16, blended softmax probability of that class.
        windows: number of windows run (test-time augmentation included).
    """

    labels: np.ndarray
    confidence: np.ndarray
    windows: int


def window_starts(length_vox: int, window_vox: int, overlap: float) -> list[int]:
    """Evenly spread window start positions covering ``[0, length_vox)``.

    Consecutive windows overlap by at least ``overlap * window_vox``; the first starts at 0 and
    the last ends at ``length_vox``.

    Raises:
        ValueError: for ``overlap`` outside ``[0, 1)`` or a window longer than the axis.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if window_vox > length_vox:
        raise ValueError(f"window of {window_vox} voxels is longer than the axis ({length_vox})")
    if window_vox == length_vox:
        return [0]
    step = max(1, int(window_vox * (1 - overlap)))
    return _spread(length_vox, window_vox, math.ceil((length_vox - window_vox) / step) + 1)


def _spread(length_vox: int, window_vox: int, count: int) -> list[int]:
    """Starts of ``count`` (> 1) windows spread evenly from 0 to the end of the axis."""
    return [round(i * (length_vox - window_vox) / (count - 1)) for i in range(count)]


@dataclass(frozen=True)
class WindowGrid:
    """Where the windows of one tomogram go.

    Attributes:
        window: window size actually used, zyx voxels (an axis shorter than the requested window
            gets one window of the axis length rounded up to a multiple of 4).
        padded_shape: tomogram shape after zero-padding such short axes, zyx voxels.
        starts: window start positions along z, y and x.
    """

    window: tuple[int, int, int]
    padded_shape: tuple[int, int, int]
    starts: tuple[list[int], list[int], list[int]]

    @property
    def count(self) -> int:
        return math.prod(len(s) for s in self.starts)

    def passes_per_voxel(self, shape: Sequence[int]) -> float:
        """Network evaluations per tomogram voxel (1.0 = every voxel seen once)."""
        return self.count * math.prod(self.window) / math.prod(shape)


def _round_up(length_vox: int, multiple_vox: int) -> int:
    return -(-length_vox // multiple_vox) * multiple_vox


def window_grid(shape: Sequence[int], window_vox: int | Sequence[int], overlap: float) -> WindowGrid:
    """The window layout :func:`segment_tomogram` uses for a tomogram of ``shape`` (zyx voxels).

    Per axis: as few windows as cover it with neighbours sharing at least ``overlap`` x the
    requested window, then shrunk to the smallest multiple of 4 that still does, so the last
    window does not overlap its neighbour far more than asked (an axis of 630 with 128-voxel
    windows and 0.125 overlap gets 6 windows of 120, not 6 of 128).
    """
    requested = window_triple(window_vox)
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    window, padded, starts = [], [], []
    for length, size in zip(shape, requested):
        if size >= length:  # one window, the axis rounded up to a window multiple (zero-padded)
            fitted = _round_up(length, WINDOW_MULTIPLE_VOX)
            window.append(fitted)
            padded.append(fitted)
            starts.append([0])
            continue
        count = len(window_starts(length, size, overlap))
        shared = overlap * size
        fitted = min(size, _round_up(math.ceil((length + (count - 1) * shared) / count), WINDOW_MULTIPLE_VOX))
        window.append(fitted)
        padded.append(length)
        starts.append(_spread(length, fitted, count))
    return WindowGrid(window=tuple(window), padded_shape=tuple(padded), starts=tuple(starts))  # type: ignore[arg-type]


def _gaussian_1d(window_vox: int, sigma_fraction: float = 0.125) -> np.ndarray:
    centre = (window_vox - 1) / 2
    sigma = max(window_vox * sigma_fraction, 1.0)
    weights = np.exp(-((np.arange(window_vox) - centre) ** 2) / (2 * sigma * sigma))
    return np.maximum(weights / weights.max(), 1e-3).astype(np.float32)


def _axis_weight_sum(length_vox: int, starts: Sequence[int], weights: np.ndarray) -> np.ndarray:
    total = np.zeros(length_vox, np.float32)
    for start in starts:
        total[start : start + len(weights)] += weights
    return total


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed-precision dtype for ``device``: on CUDA bf16 where supported, else fp16; on a CPU bf16
    where it is native (:func:`~octopi_core.device.cpu_has_native_bf16`), else None (fp32)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def mixed_precision(device: torch.device, amp: bool = True) -> AbstractContextManager:
    """The autocast context the network runs in on ``device``: :func:`autocast_dtype`'s, or none
    (fp32) when ``amp`` is False or the device has no fast lower precision."""
    dtype = autocast_dtype(device) if amp else None
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype else nullcontext()


def _flip_variants(tta: bool) -> list[tuple[int, ...]]:
    # Flips in y and x keep the missing wedge where it is, so they are safe augmentations.
    return [(), (3,), (4,), (3, 4)] if tta else [()]


def auto_batch_size(window_zyx: Sequence[int], device: torch.device) -> int:
    """Windows per forward pass that fit the device's voxel budget (at least one)."""
    budget = _CPU_BATCH_VOXELS
    if device.type == "cuda":
        free_bytes, _ = torch.cuda.mem_get_info(device)
        budget = min(_GPU_MAX_BATCH_VOXELS, int(free_bytes * 0.5 / _GPU_BYTES_PER_VOXEL))
    return max(1, budget // math.prod(window_zyx))


def segment_tomogram(
    model: torch.nn.Module,
    volume: np.ndarray,
    *,
    num_classes: int,
    window_vox: int | Sequence[int] = DEFAULT_WINDOW_VOX,
    overlap: float = DEFAULT_OVERLAP,
    batch_size: int | None = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
    amp: bool = True,
    tta: bool = False,
    channels_last: bool = False,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> SegmentationResult:
    """Segment ``volume`` window by window and reduce the blended softmax to labels + confidence.

    Args:
        model: network mapping ``(B, 1, Z, Y, X)`` to ``(B, num_classes, Z, Y, X)`` logits, in eval mode.
        volume: ``(Z, Y, X)`` float32, normalised (see :func:`octopi_core.io.normalize_volume`).
        num_classes: output channels including background.
        window_vox: window size in voxels, one value or zyx; multiples of 4. An axis shorter than
            its window gets one window of the axis length rounded up to a multiple of 4; longer
            axes get fitted tiles (see :func:`window_grid`).
        overlap: fraction of a window shared with each neighbour, in ``[0, 1)``.
        batch_size: windows per forward pass; None = :func:`auto_batch_size`.
        device: where the network runs; default the model's device.
        amp: use mixed precision where the device does it natively (:func:`autocast_dtype`): bf16 (or
            fp16) on CUDA, bf16 on CPUs with AVX512-BF16 or AMX. False: fp32 everywhere.
        tta: also run y/x flips and average (4 passes per window).
        channels_last: hand the network its windows channels-last-3d (for a model converted to it).
        progress: called with the fraction done (0..1) after each batch.
        should_cancel: called between batches; when it returns True, inference stops.

    Returns:
        A :class:`SegmentationResult`.

    Raises:
        TomogramTooSmallError: when some axis is shorter than ``MIN_AXIS_VOX`` voxels.
        InferenceCancelledError: when ``should_cancel`` returned True.
        ValueError: for bad ``volume``/``window_vox``/``batch_size``/``overlap``.
    """
    if volume.ndim != 3:
        raise ValueError(f"volume must be (Z, Y, X), got shape {volume.shape}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if min(volume.shape) < MIN_AXIS_VOX:
        raise TomogramTooSmallError(
            f"tomogram of shape {volume.shape} (z, y, x voxels) is smaller than the smallest inference window "
            f"({MIN_AXIS_VOX} voxels per axis)"
        )
    shape = volume.shape
    grid = window_grid(shape, window_vox, overlap)
    window, padded, starts = grid.window, grid.padded_shape, grid.starts
    device = torch.device(device) if device is not None else next(model.parameters()).device
    batch_size = batch_size or auto_batch_size(window, device)
    autocast = mixed_precision(device, amp)

    weights_1d = [_gaussian_1d(w) for w in window]
    norm_z, norm_y, norm_x = (
        torch.from_numpy(_axis_weight_sum(n, s, w)).to(device) for n, s, w in zip(padded, starts, weights_1d)
    )
    norm_zx = norm_z[:, None] * norm_x[None, : shape[2]]
    flips = _flip_variants(tta)
    # Each window's blending weight, shared by its flips.
    flip_weight = torch.from_numpy(np.einsum("i,j,k->ijk", *weights_1d) / len(flips)).to(device)

    # The tomogram goes to the device once and windows are cut there: no per-batch host stacking
    # or host-to-device copies on the inference path (on a CPU this is a view, not a copy). The
    # outputs stay on the device until the end, so reducing rows does not wait on transfers.
    with warnings.catch_warnings():  # a read-only volume (a memory map, say) is only ever read here
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        source = torch.from_numpy(volume.astype(np.float32, copy=False)).to(device)
    labels = torch.zeros(shape, dtype=torch.uint8, device=device)
    confidence = torch.zeros(shape, dtype=torch.float16, device=device)
    # Rolling y-slab of blended particle-class probabilities (background is the remainder).
    slab = torch.zeros((num_classes - 1, padded[0], window[1], padded[2]), dtype=torch.float32, device=device)
    slab_y0 = 0
    total = grid.count * len(flips)
    done = 0

    def finalize(y_end: int) -> None:
        """Reduce rows [slab_y0, y_end) of the slab to labels/confidence and drop them."""
        nonlocal slab_y0
        depth = y_end - slab_y0
        if depth <= 0:
            return
        # A few rows at a time, and normalising only the winning class (the weight is the same
        # for every class at a voxel), so no slab-sized temporary is made.
        for y in range(0, min(depth, shape[1] - slab_y0), _FINALIZE_ROWS):
            y1 = min(y + _FINALIZE_ROWS, depth, shape[1] - slab_y0)
            best_sum, best_label = slab[:, : shape[0], y:y1, : shape[2]].max(0)
            norm = norm_zx[: shape[0], None, :] * norm_y[slab_y0 + y : slab_y0 + y1, None]
            rows = slice(slab_y0 + y, slab_y0 + y1)
            labels[:, rows] = (best_label + 1).to(torch.uint8)
            confidence[:, rows] = (best_sum / norm).clamp(0, 1).half()
        keep = slab.shape[2] - depth
        for row in range(keep):  # row by row: no second slab-sized buffer
            slab[:, :, row] = slab[:, :, depth + row]
        slab[:, :, keep:] = 0
        slab_y0 = y_end

    def window_of(z0: int, y0: int, x0: int) -> torch.Tensor:
        block = source[z0 : z0 + window[0], y0 : y0 + window[1], x0 : x0 + window[2]]
        if block.shape != window:  # an axis shorter than its window: zero-pad its end
            missing = [w - n for w, n in zip(window, block.shape)]
            block = torch.nn.functional.pad(block, (0, missing[2], 0, missing[1], 0, missing[0]))
        return block

    with torch.inference_mode():
        for y0 in starts[1]:
            finalize(y0)  # rows before this window row are complete
            offset = y0 - slab_y0
            tiles = [(z0, x0) for z0 in starts[0] for x0 in starts[2]]
            for b in range(0, len(tiles), batch_size):
                if should_cancel is not None and should_cancel():
                    raise InferenceCancelledError("inference cancelled")
                chunk = tiles[b : b + batch_size]
                inputs = torch.stack([window_of(z0, y0, x0) for z0, x0 in chunk])[:, None]
                if channels_last:
                    inputs = inputs.contiguous(memory_format=torch.channels_last_3d)
                probs: torch.Tensor | None = None  # the flips' summed particle-class probabilities
                for dims in flips:
                    x = torch.flip(inputs, dims) if dims else inputs
                    with autocast:
                        logits = model(x)
                    # In fp32 whatever the network ran in, converted inside the softmax (no extra copy).
                    p = torch.softmax(logits, dim=1, dtype=torch.float32)[:, 1:]
                    p = torch.flip(p, dims) if dims else p
                    probs = p if probs is None else probs.add_(p)
                assert probs is not None  # flips is never empty
                for (z0, x0), p in zip(chunk, probs):
                    # slab += p * weight in one pass, no window-sized temporary.
                    slab[:, z0 : z0 + window[0], offset : offset + window[1], x0 : x0 + window[2]].addcmul_(
                        p, flip_weight
                    )
                done += len(chunk) * len(flips)
                if progress is not None:
                    progress(done / total)
        finalize(padded[1])
    return SegmentationResult(labels=labels.cpu().numpy(), confidence=confidence.cpu().numpy(), windows=total)
