"""Evaluate checkpoints on held-out tomograms and promote a candidate only when it beats the champion.

This is what the retraining job runs after training: the candidate and the current champion
pick the same held-out tomograms, both are scored with the CZII weighted F-beta, the candidate
is always recorded in the registry (with its scores), and the champion pointer moves only if
the candidate scores strictly higher.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .metric import Score, score_documents
from .model import load_checkpoint, save_checkpoint
from .model_config import read_config
from .options import PredictOptions
from .picks import PicksDocument
from .pipeline import Picker
from .registry import Registry
from .synth import HELD_OUT_SETTINGS, PhantomSettings, make_phantom, write_phantom

__all__ = ["EvaluationSet", "held_out_set", "evaluate_checkpoint", "PromotionResult", "promote"]


@dataclass(frozen=True)
class EvaluationSet:
    """Tomogram URIs paired with their truth."""

    tomograms: tuple[tuple[str, PicksDocument], ...]


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
    picker = Picker(checkpoint, device=device)
    picks = [picker.predict(uri, options) for uri, _ in evaluation.tomograms]
    truth = [t.model_copy(update={"run_name": p.run_name}) for p, (_, t) in zip(picks, evaluation.tomograms)]
    return score_documents(picks, truth)


@dataclass(frozen=True)
class PromotionResult:
    """Outcome of :func:`promote`."""

    candidate_version: str
    candidate_score: float
    champion_version: str | None
    champion_score: float | None
    promoted: bool
    reason: str


def promote(
    registry: Registry,
    candidate_dir: str | Path,
    evaluation: EvaluationSet,
    *,
    options: PredictOptions = PredictOptions(),
    device: str | None = None,
) -> PromotionResult:
    """Score the candidate and the champion on the same tomograms; move the pointer if the candidate wins.

    The candidate is added to the registry either way, with its held-out score in its config.
    With no champion yet, the shipped model is the one to beat.
    """
    candidate_score = evaluate_checkpoint(candidate_dir, evaluation, options=options, device=device)
    model, config = load_checkpoint(candidate_dir)
    scores = {**config.scores, "held_out": candidate_score.as_dict()}
    recorded = Path(candidate_dir).with_name(Path(candidate_dir).name + ".scored")
    save_checkpoint(model, config.model_copy(update={"scores": scores}), recorded)
    version = registry.add(recorded)

    champion_version = registry.champion_version()
    champion_dir = registry.resolve(champion_version)
    if not (champion_dir / "config.json").is_file():
        registry.set_champion(version, reason="first model in the registry")
        return PromotionResult(
            version, candidate_score.weighted_f_beta, None, None, True, "no champion to beat"
        )
    champion_version = champion_version or read_config(champion_dir).version
    if champion_version == version:
        return PromotionResult(
            version,
            candidate_score.weighted_f_beta,
            version,
            candidate_score.weighted_f_beta,
            False,
            "candidate is already the champion",
        )
    champion_score = evaluate_checkpoint(champion_dir, evaluation, options=options, device=device)
    if candidate_score.weighted_f_beta > champion_score.weighted_f_beta:
        reason = (
            f"weighted F-beta {candidate_score.weighted_f_beta:.4f} > {champion_score.weighted_f_beta:.4f}"
        )
        registry.set_champion(version, reason=reason)
        return PromotionResult(
            version,
            candidate_score.weighted_f_beta,
            champion_version,
            champion_score.weighted_f_beta,
            True,
            reason,
        )
    reason = f"weighted F-beta {candidate_score.weighted_f_beta:.4f} <= champion's {champion_score.weighted_f_beta:.4f}"
    return PromotionResult(
        version,
        candidate_score.weighted_f_beta,
        champion_version,
        champion_score.weighted_f_beta,
        False,
        reason,
    )
