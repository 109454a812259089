"""Evaluate checkpoints on held-out data and promote a candidate only when it beats the champion.

This is what the retraining job runs after training: the candidate and the current champion are
scored on the same held-out data with the CZII weighted F-beta, the candidate is always recorded in
the registry (with its scores), every decision is logged and recorded there too
(:meth:`~octopi_core.registry.Registry.record_decision`), and the champion pointer moves only as
:func:`promotion_decision` says:

- trained on generated tomograms only: the candidate must score strictly higher on the synthetic
  held-out set (:func:`held_out_set`);
- fine-tuned on the user's labelled tomograms: it must score higher on the held-out part of those
  (the same tomograms or y-blocks for both models, :class:`DataEvaluation`) by at least a margin, and
  may score at most a margin lower on the synthetic held-out set, which guards against forgetting.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .metric import Score, score_documents
from .model import load_checkpoint, save_checkpoint
from .model_config import read_config
from .options import PredictOptions
from .picks import PicksDocument
from .pipeline import Picker
from .registry import Registry
from .synth import HELD_OUT_SETTINGS, PhantomSettings, make_phantom, write_phantom

if TYPE_CHECKING:
    from .train.tuning import LabelledVolume, WindowVox

__all__ = [
    "EvaluationSet",
    "DataEvaluation",
    "held_out_set",
    "pick_evaluation",
    "evaluate_checkpoint",
    "evaluate_on_volumes",
    "PromotionResult",
    "promotion_decision",
    "promote",
    "DEFAULT_MIN_GAIN_F_BETA",
    "DEFAULT_MAX_FORGETTING_F_BETA",
]

log = logging.getLogger(__name__)

# Weighted F-beta differences (unitless, on the 0..1 score).
DEFAULT_MIN_GAIN_F_BETA = 0.0  # on the user's held-out data the candidate must gain more than 0 and this
DEFAULT_MAX_FORGETTING_F_BETA = 0.02  # it may lose at most this on the synthetic held-out set
_ROUNDING = 1e-9  # a difference at the margin is equal to it, not above it by float rounding


@dataclass(frozen=True)
class EvaluationSet:
    """Tomogram URIs paired with their truth."""

    tomograms: tuple[tuple[str, PicksDocument], ...]


@dataclass(frozen=True)
class DataEvaluation:
    """The held-out part of the user's labelled data, on which candidate and champion are compared.

    Attributes:
        volumes: the held-out tomograms or y-blocks with their truth, as fine-tuning held them out
            (:attr:`octopi_core.train.sampling.TrainingData.validation`).
        description: JSON-safe description recorded with the scores (source, held-out runs, split).
        window_vox: sliding window for the evaluation, voxels; None = the inference defaults.
    """

    volumes: Sequence[LabelledVolume]
    description: dict[str, Any] = field(default_factory=dict)
    window_vox: WindowVox = None


def held_out_set(
    directory: str | Path,
    *,
    count: int = 4,
    seed: int = 900_000,
    shape_zyx: tuple[int, int, int] = (128, 256, 256),
    settings: PhantomSettings = HELD_OUT_SETTINGS,
) -> EvaluationSet:
    """Generate (once) and return held-out tomograms from generator settings not used in training.

    Files already in ``directory`` from an earlier call with the same arguments are reused.
    """
    directory = Path(directory)
    pairs = []
    for i in range(count):
        run = f"heldout-{seed + i}-{'x'.join(map(str, shape_zyx))}"
        tomogram, truth = directory / f"{run}.zarr", directory / f"{run}.truth.json"
        if not truth.is_file():
            phantom = make_phantom(seed + i, settings, shape_zyx=shape_zyx)
            tomogram, truth = write_phantom(phantom, directory, run)
        pairs.append((str(tomogram), PicksDocument.model_validate_json(truth.read_text())))
    return EvaluationSet(tuple(pairs))


def evaluate_checkpoint(
    checkpoint: str | Path,
    evaluation: EvaluationSet,
    *,
    options: PredictOptions = PredictOptions(),
    device: str | None = None,
) -> Score:
    """Pick every tomogram of ``evaluation`` with ``checkpoint`` and score against the truth."""
    return score_documents(*pick_evaluation(Picker(checkpoint, device=device), evaluation, options))


def pick_evaluation(
    picker: Picker, evaluation: EvaluationSet, options: PredictOptions = PredictOptions()
) -> tuple[list[PicksDocument], list[PicksDocument]]:
    """Pick every tomogram of ``evaluation``: the picks, and the truth under the picks' run names, in the
    same order, ready for :func:`~octopi_core.metric.score_documents` (alone or pooled with other sets)."""
    picks = [picker.predict(uri, options) for uri, _ in evaluation.tomograms]
    truth = [t.model_copy(update={"run_name": p.run_name}) for p, (_, t) in zip(picks, evaluation.tomograms)]
    return picks, truth


def evaluate_on_volumes(
    checkpoint: str | Path,
    volumes: Sequence[LabelledVolume],
    *,
    window_vox: WindowVox = None,
    device: str | None = None,
) -> Score:
    """Segment held-out volumes with ``checkpoint``, localize with its own tuned settings, and score them.

    Each volume is scored on the classes its truth labels, as fine-tuning validates
    (:func:`~octopi_core.train.tuning.score_segmentations`).

    Args:
        checkpoint: checkpoint directory.
        volumes: ``(Z, Y, X)`` float volumes at the model's voxel size, with their truth (xyz Å).
        window_vox: sliding window, voxels; None = the inference defaults.
        device: ``auto``/None, ``cpu``, ``cuda`` or ``cuda:N``.

    Returns:
        The score over all volumes (counts summed).

    Raises:
        CheckpointError: the checkpoint cannot be loaded.
    """
    from .train.tuning import score_segmentations, segment_all

    picker = Picker(checkpoint, device=device)
    segmentations = segment_all(picker.model, volumes, window_vox, picker.device)
    return score_segmentations(segmentations, volumes, **picker.localize_settings())


@dataclass(frozen=True)
class PromotionResult:
    """Outcome of :func:`promote`; scores are weighted F-beta.

    ``candidate_score``/``champion_score`` are on the synthetic held-out set; ``*_data_score`` on the
    user's held-out data (None when the candidate was trained on generated tomograms only).
    """

    candidate_version: str
    candidate_score: float
    champion_version: str | None
    champion_score: float | None
    promoted: bool
    reason: str
    candidate_data_score: float | None = None
    champion_data_score: float | None = None


def promotion_decision(
    candidate_data_f_beta: float | None,
    champion_data_f_beta: float | None,
    candidate_guard_f_beta: float,
    champion_guard_f_beta: float,
    *,
    min_gain_f_beta: float = DEFAULT_MIN_GAIN_F_BETA,
    max_forgetting_f_beta: float = DEFAULT_MAX_FORGETTING_F_BETA,
) -> tuple[bool, str]:
    """Whether the candidate replaces the champion: the one promotion rule.

    Args:
        candidate_data_f_beta: the candidate's weighted F-beta on the user's held-out data; None when
            it was trained on generated tomograms only.
        champion_data_f_beta: the champion's on the same data; None exactly when the candidate's is.
        candidate_guard_f_beta: the candidate's on the synthetic held-out set.
        champion_guard_f_beta: the champion's on the same set.
        min_gain_f_beta: with user data, the candidate must beat the champion there by more than 0 and by
            at least this (default 0.0).
        max_forgetting_f_beta: with user data, the candidate may score at most this much lower than the
            champion on the synthetic set (default 0.02). Without user data the candidate must score
            strictly higher there, and the margins are not used.

    Returns:
        ``(promote, reason)``; the reason gives the numbers it was decided on.

    Raises:
        ValueError: a margin that is negative or not finite, or only one of the two data scores.
    """
    _check_margins(min_gain_f_beta, max_forgetting_f_beta)
    if (candidate_data_f_beta is None) != (champion_data_f_beta is None):
        raise ValueError(
            "give both data scores or neither, got "
            f"candidate {candidate_data_f_beta!r}, champion {champion_data_f_beta!r}"
        )
    cand_g, champ_g = candidate_guard_f_beta, champion_guard_f_beta
    if candidate_data_f_beta is None or champion_data_f_beta is None:
        if cand_g > champ_g:
            return True, f"weighted F-beta {cand_g:.4f} > {champ_g:.4f}"
        return False, f"weighted F-beta {cand_g:.4f} <= champion's {champ_g:.4f}"
    cand_d, champ_d = candidate_data_f_beta, champion_data_f_beta
    gain, drop = cand_d - champ_d, champ_g - cand_g
    data = f"user data: weighted F-beta {cand_d:.4f} vs champion's {champ_d:.4f} (gain {gain:+.4f})"
    guard = f"synthetic guard: {cand_g:.4f} vs champion's {champ_g:.4f} (drop {drop:+.4f})"
    if gain <= 0.0 or gain < min_gain_f_beta - _ROUNDING:
        return False, f"{data}: not better by more than 0 and at least {min_gain_f_beta:.4f}; {guard}"
    if drop > max_forgetting_f_beta + _ROUNDING:
        return False, f"{data}; {guard}: forgets more than the allowed {max_forgetting_f_beta:.4f}"
    return True, (f"{data} >= margin {min_gain_f_beta:.4f}; {guard} <= allowed {max_forgetting_f_beta:.4f}")


def promote(
    registry: Registry,
    candidate_dir: str | Path,
    evaluation: EvaluationSet,
    *,
    options: PredictOptions = PredictOptions(),
    device: str | None = None,
    data: DataEvaluation | None = None,
    min_gain_f_beta: float = DEFAULT_MIN_GAIN_F_BETA,
    max_forgetting_f_beta: float = DEFAULT_MAX_FORGETTING_F_BETA,
) -> PromotionResult:
    """Score the candidate and the champion on the same data; move the pointer as :func:`promotion_decision` says.

    The candidate is added to the registry either way, with its held-out scores in its config
    (``scores.held_out``: the synthetic set; ``scores.held_out_data``: the user's held-out data, with
    its description under ``data``). With no champion yet, the shipped model is the one to beat. The
    decision is logged and recorded in the registry with its numbers.

    Args:
        registry: where the candidate is recorded and the champion pointer lives.
        candidate_dir: the candidate checkpoint directory.
        evaluation: the synthetic held-out set (:func:`held_out_set`).
        options: prediction options for the synthetic set (window, batch size).
        device: ``auto``/None, ``cpu``, ``cuda`` or ``cuda:N``.
        data: the user's held-out data, when the candidate was fine-tuned on labelled tomograms.
        min_gain_f_beta, max_forgetting_f_beta: the margins of :func:`promotion_decision`.

    Returns:
        The versions, scores and decision.

    Raises:
        ValueError: a negative or non-finite margin.
        CheckpointError: a checkpoint cannot be loaded or recorded.
    """
    _check_margins(min_gain_f_beta, max_forgetting_f_beta)  # before any work
    candidate_score = evaluate_checkpoint(candidate_dir, evaluation, options=options, device=device)
    model, config = load_checkpoint(candidate_dir)
    scores = {**config.scores, "held_out": candidate_score.as_dict()}
    candidate_data: Score | None = None
    if data is not None:
        candidate_data = evaluate_on_volumes(
            candidate_dir, data.volumes, window_vox=data.window_vox, device=device
        )
        scores["held_out_data"] = {**candidate_data.as_dict(), "data": data.description}
    recorded = Path(candidate_dir).with_name(Path(candidate_dir).name + ".scored")
    save_checkpoint(model, config.model_copy(update={"scores": scores}), recorded)
    version = registry.add(recorded)
    result = PromotionResult(
        version,
        candidate_score.weighted_f_beta,
        None,
        None,
        False,
        "",
        candidate_data.weighted_f_beta if candidate_data else None,
    )

    champion_version = registry.champion_version()
    champion_dir = registry.resolve(champion_version)
    if not (champion_dir / "config.json").is_file():
        registry.set_champion(version, reason="first model in the registry")
        return _decided(registry, result, True, "no champion to beat", data)
    champion_version = champion_version or read_config(champion_dir).version
    result = _with(result, champion_version=champion_version)
    if champion_version == version:
        same = _with(
            result, champion_score=result.candidate_score, champion_data_score=result.candidate_data_score
        )
        return _decided(registry, same, False, "candidate is already the champion", data)
    champion_score = evaluate_checkpoint(champion_dir, evaluation, options=options, device=device)
    champion_data = (
        evaluate_on_volumes(champion_dir, data.volumes, window_vox=data.window_vox, device=device)
        if data is not None
        else None
    )
    result = _with(
        result,
        champion_score=champion_score.weighted_f_beta,
        champion_data_score=champion_data.weighted_f_beta if champion_data else None,
    )
    promoted, reason = promotion_decision(
        result.candidate_data_score,
        result.champion_data_score,
        result.candidate_score,
        champion_score.weighted_f_beta,
        min_gain_f_beta=min_gain_f_beta,
        max_forgetting_f_beta=max_forgetting_f_beta,
    )
    if promoted:
        registry.set_champion(version, reason=reason)
    return _decided(
        registry,
        result,
        promoted,
        reason,
        data,
        margins={"min_gain_f_beta": min_gain_f_beta, "max_forgetting_f_beta": max_forgetting_f_beta},
    )


def _with(result: PromotionResult, **changes: Any) -> PromotionResult:
    return replace(result, **changes)


def _check_margins(min_gain_f_beta: float, max_forgetting_f_beta: float) -> None:
    for name, margin in (
        ("min_gain_f_beta", min_gain_f_beta),
        ("max_forgetting_f_beta", max_forgetting_f_beta),
    ):
        if not (math.isfinite(margin) and margin >= 0.0):
            raise ValueError(f"{name} must be a finite number >= 0, got {margin!r}")


def _decided(
    registry: Registry,
    result: PromotionResult,
    promoted: bool,
    reason: str,
    data: DataEvaluation | None,
    margins: dict[str, float] | None = None,
) -> PromotionResult:
    """Log the decision with its numbers, record it in the registry, and return it."""
    result = _with(result, promoted=promoted, reason=reason)
    log.info(
        "promotion of %s over %s: %s (%s)",
        result.candidate_version,
        result.champion_version,
        "promoted" if promoted else "not promoted",
        reason,
    )
    registry.record_decision(
        {
            **result.__dict__,
            "margins": margins or {},
            "data": data.description if data is not None else {"kind": "synthetic"},
        }
    )
    return result
