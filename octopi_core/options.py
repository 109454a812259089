"""Per-request prediction settings and the sliding-window defaults (torch-free, so the gateway and
the worker's bookkeeping can import them without loading the network)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .limits import TomogramLimits

__all__ = [
    "PredictOptions",
    "DEFAULT_WINDOW_VOX",
    "DEFAULT_OVERLAP",
    "FAST_WINDOW_VOX",
    "FAST_OVERLAP",
    "DEFAULT_BATCH_SIZE",
    "MIN_AXIS_VOX",
    "WINDOW_MULTIPLE_VOX",
    "RUN_NAME_PATTERN",
    "check_run_name",
    "window_triple",
    "parse_window",
]

# Chosen by measurement (README, "Performance"): the shipped model, trained on 64^3 patches,
# loses accuracy in larger windows (instance norm sees other statistics), so the windows stay
# 96^3, fitted to each axis. FAST_WINDOW_VOX / FAST_OVERLAP run 2x faster at a measured cost.
# Axes shorter than the window are covered by one window padded to a multiple of WINDOW_MULTIPLE_VOX.
# Windows and training patches are multiples of this: the U-Net's two stride-2 levels halve them twice
# (ModelConfig.window_multiple_vox computes it from the strides; a test keeps the two equal).
WINDOW_MULTIPLE_VOX = 4
DEFAULT_WINDOW_VOX = (96, 96, 96)  # zyx voxels; multiples of WINDOW_MULTIPLE_VOX
DEFAULT_OVERLAP = 0.25  # fraction of the requested window shared with each neighbour
FAST_WINDOW_VOX = (256, 128, 128)  # full depth in z, fitted y/x tiles
FAST_OVERLAP = 0.0625
DEFAULT_BATCH_SIZE = None  # windows per forward pass; None = as many as fit a voxel budget per device
MIN_AXIS_VOX = 16  # thinner tomograms are refused: the smallest particle is 12 voxels across
# A run name becomes part of file names (<run>.picks.json, <run>_<class>.star) and copick paths: no
# separators, no leading dot. Copick and portal run names (TS_5_4, 16193, 20240101_TS.001) fit.
RUN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def check_run_name(run_name: str) -> str:
    """Return ``run_name`` when it may name a run.

    Args:
        run_name: 1 to 128 characters, letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit.

    Returns:
        ``run_name``.

    Raises:
        ValueError: naming ``run_name`` and echoing it, for anything else.
    """
    if not isinstance(run_name, str) or not re.fullmatch(RUN_NAME_PATTERN, run_name):
        raise ValueError(
            "run_name must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit; "
            f"got {run_name!r}"
        )
    return run_name


def window_triple(window_vox: int | Sequence[int]) -> tuple[int, int, int]:
    """``window_vox`` as a zyx triple (one int means a cube).

    Raises:
        ValueError: unless it is one or three positive multiples of ``WINDOW_MULTIPLE_VOX`` (4).
    """
    window = tuple(int(w) for w in (window_vox if isinstance(window_vox, Sequence) else (window_vox,) * 3))
    if len(window) != 3 or any(w <= 0 or w % WINDOW_MULTIPLE_VOX for w in window):
        raise ValueError(
            f"window_vox must be one or three positive multiples of {WINDOW_MULTIPLE_VOX}, got {window_vox!r}"
        )
    return window


def parse_window(text: str) -> tuple[int, int, int]:
    """A window written ``96`` or ``192,128,128`` (command lines, environment) as a zyx triple.

    Raises:
        ValueError: for anything else.
    """
    try:
        parts = [int(p) for p in text.strip().strip("[]()").split(",")]
    except ValueError:
        raise ValueError(f"window must be N or Z,Y,X voxels, got {text!r}") from None
    return window_triple(parts[0] if len(parts) == 1 else parts)


@dataclass(frozen=True)
class PredictOptions:
    """Per-request settings; defaults suit a 184x630x630 tomogram at 10 Å.

    Attributes:
        classes: class names to pick; None = every class the model knows.
        voxel_size_a: override of the tomogram's voxel size (Å), when its header is wrong.
        window_vox: sliding-window size (voxels), one value or zyx.
        overlap: fraction shared between neighbouring windows.
        batch_size: windows per forward pass; None = as many as fit the device's voxel budget.
        tta: average over y/x flips (4x the work).
        match_spectrum: bring the tomogram's radial power spectrum to that of the model's training data
            before inference (:mod:`octopi_core.io.spectrum`), for reconstructions unlike it (SIRT-like,
            denoised, binned); needs a model whose config has ``input_spectrum``.
        threshold: class probability at which a voxel counts as particle, for every class; None =
            the per-class values tuned for the model (its config's ``training.localize``), else 0.5.
        min_score: drop picks under this confidence.
        storage_options: fsspec options for reading the tomogram (deadlines, endpoint).
        limits: voxel (after resampling), byte and chunk limits checked before any voxel is read; None = none.
        run_name: the run name of the picks document (see :func:`check_run_name`); None = from the URI
            (:func:`~octopi_core.pipeline.run_name_from_uri`).

    Raises:
        ValueError: for a ``run_name`` that :func:`check_run_name` refuses.
    """

    classes: Sequence[str] | None = None
    voxel_size_a: float | None = None
    window_vox: int | tuple[int, int, int] = DEFAULT_WINDOW_VOX
    overlap: float = DEFAULT_OVERLAP
    batch_size: int | None = DEFAULT_BATCH_SIZE
    tta: bool = False
    match_spectrum: bool = False
    threshold: float | None = None
    min_score: float = 0.0
    storage_options: dict | None = field(default=None, hash=False, compare=False)
    limits: TomogramLimits | None = field(default=None, hash=False, compare=False)
    run_name: str | None = None

    def __post_init__(self) -> None:
        if self.run_name is not None:
            check_run_name(self.run_name)
