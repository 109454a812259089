"""Validation and tuning: segment whole generated tomograms once, then localize and score (CZII F-beta).

:func:`tune_localization` searches the pick thresholds and blob sizes; :func:`tune_checkpoint` stores
the choice in a checkpoint's config.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ..device import select_device
from ..export import picks_document_from_voxels
from ..inference import segment_tomogram
from ..io import median_log_power, normalize_volume
from ..localize import DEFAULT_TARGET_RADIUS_FRACTION, localize_particles
from ..metric import Score, score_documents
from ..options import DEFAULT_OVERLAP, DEFAULT_WINDOW_VOX
from ..particles import PARTICLE_CLASSES
from ..picks import PicksDocument
from ..synth import PhantomSettings, make_phantom, settings_for_seed

__all__ = [
    "LabelledVolume",
    "WindowVox",
    "segment_all",
    "score_segmentations",
    "validate_model",
    "tune_localization",
    "tune_checkpoint",
    "tune_checkpoint_on",
]

WindowVox = int | tuple[int, int, int] | None
SPECTRUM_TOMOGRAMS = 24  # tomograms whose median spectrum a synthetic tuning records (no inference needed)


class LabelledVolume(Protocol):
    """A tomogram with its truth: a generated :class:`~octopi_core.synth.Phantom`, or a user's held-out one.

    ``volume`` is ``(Z, Y, X)`` float, ``voxel_size_zyx_a`` in Å. The keys of ``truth_document(...).picks``
    are the classes the truth labels (an empty list: labelled, none there); other classes are not scored.
    """

    volume: np.ndarray
    voxel_size_zyx_a: tuple[float, float, float]

    def truth_document(self, run_name: str, tomogram_uri: str = "") -> PicksDocument: ...


def _normalised_copy(tomogram: LabelledVolume) -> np.ndarray:
    """A normalised float32 copy of ``tomogram``'s volume, what the network is given (the original is kept)."""
    return normalize_volume(tomogram.volume.astype(np.float32, copy=True))


def segment_all(
    model: torch.nn.Module, phantoms: Sequence[LabelledVolume], window_vox: WindowVox, device: torch.device
) -> list:
    """Segment each phantom's whole volume with ``model`` by sliding windows.

    Args:
        model: the network.
        phantoms: generated tomograms.
        window_vox: the window, voxels; None = the inference defaults.
        device: where the network runs.

    Returns:
        One :func:`~octopi_core.inference.segment_tomogram` result per phantom.
    """
    # The inference defaults unless a window is given, so what is validated and tuned is what runs.
    segmentations = []
    for phantom in phantoms:
        segmentations.append(
            segment_tomogram(
                model,
                _normalised_copy(phantom),
                num_classes=len(PARTICLE_CLASSES) + 1,
                window_vox=window_vox or DEFAULT_WINDOW_VOX,
                overlap=DEFAULT_OVERLAP,
                device=device,
            )
        )
    return segmentations


def score_segmentations(
    segmentations: list, phantoms: Sequence[LabelledVolume], **localize_settings: Any
) -> Score:
    """Localize particles in the segmentations and score them against the phantoms' truth (CZII F-beta).

    When some truth labels only part of the classes, each tomogram is scored on the classes its truth
    labels (picks of the others are dropped), and a class no tomogram has truth or picks of is left
    out of the weighted score; with every class labelled the score is the plain CZII one.

    Args:
        segmentations: one :func:`segment_all` result per phantom.
        phantoms: the tomograms they came from.
        **localize_settings: keyword arguments of :func:`~octopi_core.localize.localize_particles`.

    Returns:
        The score over all phantoms.
    """
    picks, truth = [], []
    for i, (seg, phantom) in enumerate(zip(segmentations, phantoms)):
        found = localize_particles(
            seg.labels, seg.confidence, voxel_size_zyx_a=phantom.voxel_size_zyx_a, **localize_settings
        )
        run = f"val-{i}"
        picks.append(
            picks_document_from_voxels(
                found,
                voxel_size_zyx_a=phantom.voxel_size_zyx_a,
                origin_zyx_a=(0.0, 0.0, 0.0),
                tomogram_uri=run,
                run_name=run,
                source_voxel_size_zyx_a=phantom.voxel_size_zyx_a,
                source_shape_zyx=phantom.volume.shape,
                model_version=None,
            )
        )
        truth.append(phantom.truth_document(run))
    every = {p.name for p in PARTICLE_CLASSES}
    partial = any(set(doc.picks) != every for doc in truth)
    if partial:
        picks = [
            doc.model_copy(update={"picks": {k: v for k, v in doc.picks.items() if k in known.picks}})
            for doc, known in zip(picks, truth)
        ]
    return score_documents(picks, truth, skip_empty_classes=partial)


def validate_model(
    model: torch.nn.Module,
    phantoms: Sequence[LabelledVolume],
    *,
    window_vox: WindowVox,
    target_radius_fraction: float,
    device: torch.device,
) -> Score:
    """Segment, localize and score ``model`` on whole generated tomograms (CZII F-beta).

    Args:
        model: the network.
        phantoms: generated tomograms.
        window_vox: the window, voxels; None = the inference defaults.
        target_radius_fraction: target sphere radius as a fraction of each class radius.
        device: where the network runs.

    Returns:
        The score at the default localization settings.
    """
    segmentations = segment_all(model, phantoms, window_vox, device)
    return score_segmentations(segmentations, phantoms, target_radius_fraction=target_radius_fraction)


def tune_localization(
    model: torch.nn.Module,
    phantoms: Sequence[LabelledVolume],
    *,
    window_vox: WindowVox,
    target_radius_fraction: float,
    device: torch.device,
    thresholds: tuple[float, ...] = (0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    min_volume_fractions: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5),
    keep_thresholds: dict[str, float] | None = None,
    min_particles: int = 0,
) -> tuple[dict[str, Any], Score]:
    """Choose each class's pick threshold and the minimum blob size that maximise the weighted F-beta.

    A class's picks depend only on its own threshold and each class is scored on its own, so for
    every blob size the best threshold is chosen class by class (the lowest of equal ones: F-beta
    favours recall). The network runs once per tomogram; only localization is repeated over the grid.

    A class whose truth holds fewer than ``min_particles`` particles over all ``phantoms`` and that
    ``keep_thresholds`` names keeps that threshold: a handful of held-out particles cannot choose one
    (the highest threshold that still finds all four is not the one that finds the next forty).

    Returns:
        ``({"thresholds": {class: t}, "min_volume_fraction": f, "kept_thresholds": [class...]}, score at those
        settings)``.
    """
    segmentations = segment_all(model, phantoms, window_vox, device)
    kept = {
        name: t for name, t in (keep_thresholds or {}).items() if _truth_count(phantoms, name) < min_particles
    }
    best: tuple[float, dict[str, Any]] | None = None
    for fraction in min_volume_fractions:
        per_class: dict[str, tuple[float, float]] = {}  # class -> (F-beta, threshold)
        weights: dict[str, float] = {}
        for threshold in sorted({*thresholds, *kept.values()}):
            score = score_segmentations(
                segmentations,
                phantoms,
                target_radius_fraction=target_radius_fraction,
                threshold=threshold,
                min_volume_fraction=fraction,
            )
            for c in score.classes:
                weights[c.particle] = c.weight
                allowed = (kept[c.particle],) if c.particle in kept else thresholds
                if threshold not in allowed:
                    continue
                if c.particle not in per_class or c.f_beta > per_class[c.particle][0]:
                    per_class[c.particle] = (c.f_beta, threshold)
        weighted = sum(weights[n] * f for n, (f, _) in per_class.items()) / max(sum(weights.values()), 1e-12)
        if best is None or weighted > best[0]:
            best = (
                weighted,
                {
                    "thresholds": {n: t for n, (_, t) in per_class.items()},
                    "min_volume_fraction": fraction,
                    "kept_thresholds": sorted(kept),
                },
            )
    assert best is not None  # the grids are non-empty
    chosen = best[1]
    score = score_segmentations(
        segmentations,
        phantoms,
        target_radius_fraction=target_radius_fraction,
        threshold=chosen["thresholds"],
        min_volume_fraction=chosen["min_volume_fraction"],
    )
    return chosen, score


def _truth_count(phantoms: Sequence[LabelledVolume], name: str) -> int:
    """How many true particles of class ``name`` the phantoms hold."""
    return sum(len(p.truth_document("count").picks.get(name, [])) for p in phantoms)


def tune_checkpoint(
    checkpoint_dir: str | Path,
    settings: PhantomSettings,
    *,
    count: int = 2,
    seed: int = 2_000_000,
    window_vox: WindowVox = None,
    device: str = "auto",
    families: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """Tune a checkpoint's localization on ``count`` generated tomograms and store the result in its config.

    The weights are untouched, so the version stays the same; ``config.json`` gains
    ``training.localize`` (per-class thresholds, min_volume_fraction, the tuning score and data) and
    ``input_spectrum`` (the median radial spectrum of ``SPECTRUM_TOMOGRAMS`` tomograms of the same settings,
    the tuning ones first, for predict's ``match_spectrum``; described in ``training.input_spectrum_from``).
    With ``families`` (a training config's ``train_families``) each tomogram is made in the family
    drawn for its seed, as the training tomograms were.
    """

    def phantom(i: int):
        return make_phantom(seed + i, settings_for_seed(seed + i, settings, families))

    phantoms = [phantom(i) for i in range(count)]
    spectrum_count = max(count, SPECTRUM_TOMOGRAMS)
    spectrum_volumes = (  # made one at a time: the spectrum needs no inference
        _normalised_copy(phantoms[i] if i < count else phantom(i)) for i in range(spectrum_count)
    )
    tuned_on = {
        "count": count,
        "seed": seed,
        "shape_zyx": list(settings.shape_zyx),
        "settings": settings.model_dump(mode="json"),
        **({"families": list(families)} if families else {}),
    }
    return tune_checkpoint_on(
        checkpoint_dir,
        phantoms,
        tuned_on=tuned_on,
        window_vox=window_vox,
        device=device,
        spectrum_from=(
            spectrum_volumes,
            {**tuned_on, "count": spectrum_count, "statistic": "median per shell"},
        ),
    )


def tune_checkpoint_on(
    checkpoint_dir: str | Path,
    volumes: Sequence[LabelledVolume],
    *,
    tuned_on: dict[str, Any],
    window_vox: WindowVox = None,
    device: str = "auto",
    keep_thresholds: dict[str, float] | None = None,
    min_particles: int = 0,
    spectrum_from: tuple[Iterable[np.ndarray], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Tune a checkpoint's localization on the given labelled tomograms and store it in its config.

    Args:
        checkpoint_dir: the checkpoint, changed in place (``config.json`` only; the version stays).
        volumes: the tomograms to tune on, with their truth.
        tuned_on: JSON-safe description of ``volumes``, stored as ``training.localize.tuned_on``.
        window_vox: the window, voxels; None = the inference defaults.
        device: ``auto``, ``cpu``, ``cuda``...
        keep_thresholds: thresholds kept for classes with fewer than ``min_particles`` particles in
            ``volumes`` (see :func:`tune_localization`); default None: every class is tuned.
        min_particles: see :func:`tune_localization`.
        spectrum_from: normalised volumes whose median spectrum becomes the config's ``input_spectrum``
            (for predict's ``match_spectrum``), with a JSON-safe description of them; None = ``volumes``.

    Returns:
        The ``training.localize`` block written (``input_spectrum`` is written beside it).

    Raises:
        CheckpointError: when the checkpoint cannot be loaded.
    """
    from ..model import for_inference, load_checkpoint
    from ..model_config import CONFIG_FILE

    torch_device = select_device(device, asked_by="the training config")
    unet, config = load_checkpoint(checkpoint_dir, device=torch_device)
    model = for_inference(unet)  # as Picker serves it
    fraction = float(config.training.get("target_radius_fraction", DEFAULT_TARGET_RADIUS_FRACTION))
    chosen, score = tune_localization(
        model,
        volumes,
        window_vox=window_vox,
        target_radius_fraction=fraction,
        device=torch_device,
        keep_thresholds=keep_thresholds,
        min_particles=min_particles,
    )
    localize = {**chosen, "tuned_weighted_f_beta": score.weighted_f_beta, "tuned_on": tuned_on}
    # The data the model is tuned for is what predict's match_spectrum aims at.
    if spectrum_from is None:
        spectrum_from = (
            (_normalised_copy(v) for v in volumes),
            {**tuned_on, "statistic": "median per shell"},
        )
    training = {**config.training, "localize": localize, "input_spectrum_from": spectrum_from[1]}
    updated = config.model_copy(
        update={"training": training, "input_spectrum": median_log_power(spectrum_from[0])}
    )
    (Path(checkpoint_dir) / CONFIG_FILE).write_text(updated.model_dump_json(indent=2))
    return localize
