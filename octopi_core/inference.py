"""Batched sliding-window segmentation of a whole tomogram, memory-bounded.

Windows are laid on a regular grid and processed in z order. Overlapping outputs are blended
with separable Gaussian weights; because the grid is regular, the total weight at a voxel is
the product of three 1-D sums and needs no accumulator. Only a z-slab as deep as one window of
class probabilities is held at a time; once no later window touches a plane, it is reduced to
a ``uint8`` map of the most probable particle class and a ``float16`` map of its probability,
so the full 7-class probability volume never exists.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .exceptions import InferenceCancelledError, TomogramTooSmallError

__all__ = ["SegmentationResult", "segment_tomogram", "window_starts", "autocast_dtype", "DEFAULT_WINDOW_VOX",
           "DEFAULT_OVERLAP", "DEFAULT_BATCH_SIZE"]

DEFAULT_WINDOW_VOX = (96, 96, 96)  # voxels; multiple of 4 for the two stride-2 levels
DEFAULT_OVERLAP = 0.25  # fraction of the window shared with each neighbour
DEFAULT_BATCH_SIZE = 4  # windows per forward pass
_FINALIZE_PLANES = 8  # z-planes reduced to labels at a time (bounds the temporaries)


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
    count = math.ceil((length_vox - window_vox) / step) + 1
    return [round(i * (length_vox - window_vox) / (count - 1)) for i in range(count)]


def _gaussian_1d(window_vox: int, sigma_fraction: float = 0.125) -> np.ndarray:
    centre = (window_vox - 1) / 2
    sigma = max(window_vox * sigma_fraction, 1.0)
    weights = np.exp(-((np.arange(window_vox) - centre) ** 2) / (2 * sigma * sigma))
    return np.maximum(weights / weights.max(), 1e-3).astype(np.float32)


def _axis_weight_sum(length_vox: int, starts: Sequence[int], weights: np.ndarray) -> np.ndarray:
    total = np.zeros(length_vox, np.float32)
    for start in starts:
        total[start:start + len(weights)] += weights
    return total


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed-precision dtype for ``device``: bf16 on CUDA where supported, else fp16; None on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _flip_variants(tta: bool) -> list[tuple[int, ...]]:
    # Flips in y and x keep the missing wedge where it is, so they are safe augmentations.
    return [(), (3,), (4,), (3, 4)] if tta else [()]


def segment_tomogram(
    model: torch.nn.Module,
    volume: np.ndarray,
    *,
    num_classes: int,
    window_vox: int | Sequence[int] = DEFAULT_WINDOW_VOX,
    overlap: float = DEFAULT_OVERLAP,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
    amp: bool = True,
    tta: bool = False,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> SegmentationResult:
    """Segment ``volume`` window by window and reduce the blended softmax to labels + confidence.

    Args:
        model: network mapping ``(B, 1, Z, Y, X)`` to ``(B, num_classes, Z, Y, X)`` logits, in eval mode.
        volume: ``(Z, Y, X)`` float32, normalised (see :func:`octopi_core.io.normalize_volume`).
        num_classes: output channels including background.
        window_vox: window size in voxels, one value or one per axis; multiples of 4. Default 96.
        overlap: fraction of a window shared with each neighbour, in ``[0, 1)``. Default 0.25.
        batch_size: windows per forward pass. Default 4.
        device: where the network runs; default the model's device.
        amp: use mixed precision on CUDA (bf16 where supported). Ignored on CPU.
        tta: also run y/x flips and average (4 passes per window).
        progress: called with the fraction done (0..1) after each batch.
        should_cancel: called between batches; when it returns True, inference stops.

    Returns:
        A :class:`SegmentationResult`.

    Raises:
        TomogramTooSmallError: when the volume is smaller than one window on some axis.
        InferenceCancelledError: when ``should_cancel`` returned True.
        ValueError: for bad ``volume``/``window_vox``/``batch_size``.
    """
    if volume.ndim != 3:
        raise ValueError(f"volume must be (Z, Y, X), got shape {volume.shape}")
    window = tuple(int(w) for w in (window_vox if isinstance(window_vox, Sequence) else (window_vox,) * 3))
    if len(window) != 3 or any(w <= 0 or w % 4 for w in window):
        raise ValueError(f"window_vox must be positive multiples of 4, got {window_vox!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if any(n < w for n, w in zip(volume.shape, window)):
        raise TomogramTooSmallError(
            f"tomogram of shape {volume.shape} (z, y, x voxels) is smaller than one inference window {window}"
        )
    device = torch.device(device) if device is not None else next(model.parameters()).device
    amp_dtype = autocast_dtype(device) if amp else None
    autocast = torch.autocast(device_type=device.type, dtype=amp_dtype) if amp_dtype else nullcontext()

    starts = [window_starts(n, w, overlap) for n, w in zip(volume.shape, window)]
    weights_1d = [_gaussian_1d(w) for w in window]
    norm_1d = [_axis_weight_sum(n, s, w) for n, s, w in zip(volume.shape, starts, weights_1d)]
    window_weight = torch.from_numpy(np.einsum("i,j,k->ijk", *weights_1d)).to(device)
    norm_yx = torch.from_numpy(np.outer(norm_1d[1], norm_1d[2])).to(device)
    flips = _flip_variants(tta)

    shape = volume.shape
    labels = np.zeros(shape, np.uint8)
    confidence = np.zeros(shape, np.float16)
    # Rolling slab of blended particle-class probabilities (background is the remainder).
    slab = torch.zeros((num_classes - 1, window[0], shape[1], shape[2]), dtype=torch.float32, device=device)
    slab_z0 = 0
    total = len(starts[0]) * len(starts[1]) * len(starts[2]) * len(flips)
    done = 0

    def finalize(z_end: int) -> None:
        """Reduce planes [slab_z0, z_end) of the slab to labels/confidence and drop them."""
        nonlocal slab_z0
        depth = z_end - slab_z0
        if depth <= 0:
            return
        # A few planes at a time, and normalising only the winning class (the weight is the same
        # for every class at a voxel), so no slab-sized temporary is made.
        for z in range(0, depth, _FINALIZE_PLANES):
            z1 = min(z + _FINALIZE_PLANES, depth)
            best_sum, best_label = slab[:, z:z1].max(0)
            norm = torch.from_numpy(norm_1d[0][slab_z0 + z:slab_z0 + z1]).to(device)[:, None, None] * norm_yx
            labels[slab_z0 + z:slab_z0 + z1] = (best_label + 1).to(torch.uint8).cpu().numpy()
            confidence[slab_z0 + z:slab_z0 + z1] = (best_sum / norm).clamp(0, 1).half().cpu().numpy()
        keep = slab.shape[1] - depth
        for plane in range(keep):  # plane by plane: no second slab-sized buffer
            slab[:, plane] = slab[:, depth + plane]
        slab[:, keep:] = 0
        slab_z0 = z_end

    with torch.inference_mode():
        for zi, z0 in enumerate(starts[0]):
            finalize(z0)  # planes before this window row are complete
            offset = z0 - slab_z0
            tiles = [(y0, x0) for y0 in starts[1] for x0 in starts[2]]
            for b in range(0, len(tiles), batch_size):
                if should_cancel is not None and should_cancel():
                    raise InferenceCancelledError("inference cancelled")
                chunk = tiles[b:b + batch_size]
                batch = np.stack([volume[z0:z0 + window[0], y0:y0 + window[1], x0:x0 + window[2]] for y0, x0 in chunk])
                inputs = torch.from_numpy(batch).to(device, non_blocking=True)[:, None]
                probs = torch.zeros((len(chunk), num_classes - 1, *window), device=device)
                for dims in flips:
                    x = torch.flip(inputs, dims) if dims else inputs
                    with autocast:
                        logits = model(x)
                    p = torch.softmax(logits.float(), dim=1)[:, 1:]
                    probs += torch.flip(p, dims) if dims else p
                probs *= window_weight / len(flips)
                for (y0, x0), p in zip(chunk, probs):
                    slab[:, offset:offset + window[0], y0:y0 + window[1], x0:x0 + window[2]] += p
                done += len(chunk) * len(flips)
                if progress is not None:
                    progress(done / total)
        finalize(shape[0])
    return SegmentationResult(labels=labels, confidence=confidence, windows=total)
