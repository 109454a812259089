"""The CZII challenge score: per-class precision, recall and F-beta of picks at a match distance in Å.

A pick matches a true particle of its own class when their centres are at most
``ParticleClass.match_distance_a`` (0.5 x the class radius) apart. Per class, the TP/FP/FN counts
are summed over all tomograms before any ratio is taken, and the classes are combined into one
number with the CZII weights from :mod:`octopi_core.particles`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import maximum_bipartite_matching
from scipy.spatial import cKDTree

from octopi_core.particles import PARTICLE_CLASSES, ParticleClass, particle_by_name
from octopi_core.picks import PicksDocument, points_array

__all__ = ["ClassScore", "Score", "match_counts", "f_beta", "score_picks", "score_documents"]

CZII_BETA = 4.0


@dataclass(frozen=True)
class ClassScore:
    """Counts and ratios of one particle class, summed over all tomograms.

    Attributes:
        particle: CZII class name.
        tp: true particles matched by a pick.
        fp: picks that matched no true particle (duplicates of a matched particle included).
        fn: true particles that no pick matched.
        precision: ``tp / (tp + fp)``; 0.0 when there are no picks.
        recall: ``tp / (tp + fn)``; 0.0 when there is no truth.
        f_beta: F-beta of ``precision`` and ``recall``; 0.0 when both are 0.
        weight: weight of the class in the weighted score (0.0 for a class left out by
            ``skip_empty_classes``).
    """

    particle: str
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f_beta: float
    weight: float


@dataclass(frozen=True)
class Score:
    """The per-class scores and their weighted F-beta, ``sum(w * F) / sum(w)`` over ``classes``."""

    classes: tuple[ClassScore, ...]
    weighted_f_beta: float
    beta: float

    def table(self) -> str:
        """Return a plain-text table, one row per class, followed by the weighted score."""
        width = max([len("particle")] + [len(c.particle) for c in self.classes])
        columns = "  ".join(f"{c:>6}" for c in ("weight", "tp", "fp", "fn", "prec", "recall", "f_beta"))
        header = f"{'particle':<{width}}  {columns}"
        lines = [header, "-" * len(header)]
        for c in self.classes:
            lines.append(
                f"{c.particle:<{width}}  {c.weight:>6.2f}  {c.tp:>6d}  {c.fp:>6d}  {c.fn:>6d}  "
                f"{c.precision:>6.3f}  {c.recall:>6.3f}  {c.f_beta:>6.3f}"
            )
        lines.append(f"weighted F{self.beta:g}: {self.weighted_f_beta:.4f}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """Return a JSON-safe dict: ``beta``, ``weighted_f_beta`` and ``classes`` (a list of dicts)."""
        return {
            "beta": self.beta,
            "weighted_f_beta": self.weighted_f_beta,
            "classes": [asdict(c) for c in self.classes],
        }


def _as_points_xyz_a(value: object, name: str) -> np.ndarray:
    """Return ``value`` as an ``(N, 3)`` float64 array, or raise ValueError naming ``name``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be an (N, 3) array of xyz in Å; could not convert it: {e}") from e
    if arr.size == 0:
        return np.zeros((0, 3), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must be an (N, 3) array of xyz in Å; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must hold only finite coordinates; found NaN or inf")
    return arr


def match_counts(
    picks_xyz_a: np.ndarray, truth_xyz_a: np.ndarray, match_distance_a: float
) -> tuple[int, int, int]:
    """Count true positives, false positives and false negatives of one class in one tomogram.

    A pick and a true particle match when their distance is ``<= match_distance_a``. Each true
    particle is found at most once and each pick finds at most one particle (a maximum one-to-one
    matching), so ``TP`` is the number of true particles with a pick in range, extra picks on an
    already-found particle are false positives, and ``FP >= 0`` always.

    Note:
        The Kaggle CZII metric counts the distinct true particles within range of any pick. That
        is the same number whenever true particles of one class are more than
        ``2 * match_distance_a`` apart (always for real, non-overlapping particles). When a single
        pick lies in range of two true particles, Kaggle counts both (and a negative FP); here it
        finds only one.

    Args:
        picks_xyz_a: ``(N, 3)`` float, xyz in Å: the predicted centres. ``(0, 3)`` or empty when none.
        truth_xyz_a: ``(M, 3)`` float, xyz in Å: the true centres. ``(0, 3)`` or empty when none.
        match_distance_a: largest centre distance that still matches, Å; must be positive.

    Returns:
        ``(tp, fp, fn)`` with ``fp = N - tp`` and ``fn = M - tp``.

    Raises:
        ValueError: when an array is not ``(N, 3)`` or holds NaN/inf, or the distance is not positive.
    """
    picks = _as_points_xyz_a(picks_xyz_a, "picks_xyz_a")
    truth = _as_points_xyz_a(truth_xyz_a, "truth_xyz_a")
    distance_a = float(match_distance_a)
    if not math.isfinite(distance_a) or distance_a <= 0:
        raise ValueError(f"match_distance_a must be a positive number of Å; got {match_distance_a!r}")
    if len(picks) == 0 or len(truth) == 0:
        return 0, len(picks), len(truth)
    neighbours = cKDTree(truth).query_ball_point(picks, r=distance_a)
    rows = np.repeat(np.arange(len(picks)), [len(n) for n in neighbours])
    cols = np.fromiter((j for n in neighbours for j in n), dtype=np.int64, count=len(rows))
    if len(rows) == 0:
        return 0, len(picks), len(truth)
    graph = csr_array((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(len(picks), len(truth)))
    matched = maximum_bipartite_matching(graph, perm_type="column")
    tp = int(np.count_nonzero(matched >= 0))
    return tp, len(picks) - tp, len(truth) - tp


def f_beta(precision: float, recall: float, beta: float = CZII_BETA) -> float:
    """Return ``(1 + b^2) P R / (b^2 P + R)``, or 0.0 when precision and recall are both 0."""
    b2 = beta * beta
    denominator = b2 * precision + recall
    return 0.0 if denominator == 0 else (1 + b2) * precision * recall / denominator


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _resolve_classes(particles: Iterable[ParticleClass | str]) -> tuple[ParticleClass, ...]:
    chosen = [p if isinstance(p, ParticleClass) else particle_by_name(p) for p in particles]
    if not chosen:
        raise ValueError("particles must name at least one particle class")
    names = [p.name for p in chosen]
    if len(set(names)) != len(names):
        raise ValueError(f"particles lists a class twice: {names}")
    return tuple(chosen)


def _canonical_runs(runs: Mapping[str, Mapping[str, object]], arg: str) -> dict[str, dict[str, np.ndarray]]:
    """Check ``{run: {class: (N, 3)}}`` and return it with canonical class names and float arrays."""
    if not isinstance(runs, Mapping):
        raise ValueError(
            f"{arg} must map run names to {{class name: (N, 3) xyz Å}}; got {type(runs).__name__}"
        )
    out: dict[str, dict[str, np.ndarray]] = {}
    for run, classes in runs.items():
        if not isinstance(classes, Mapping):
            raise ValueError(
                f"{arg}[{run!r}] must map class names to (N, 3) arrays; got {type(classes).__name__}"
            )
        by_name: dict[str, np.ndarray] = {}
        for name, xyz in classes.items():
            try:
                canonical = particle_by_name(name).name
            except ValueError as e:
                raise ValueError(f"{arg}[{run!r}]: {e}") from None
            arr = _as_points_xyz_a(xyz, f"{arg}[{run!r}][{name!r}]")
            by_name[canonical] = np.concatenate([by_name[canonical], arr]) if canonical in by_name else arr
        out[str(run)] = by_name
    return out


def score_picks(
    picks: Mapping[str, Mapping[str, np.ndarray]],
    truth: Mapping[str, Mapping[str, np.ndarray]],
    *,
    beta: float = CZII_BETA,
    particles: Sequence[ParticleClass | str] = PARTICLE_CLASSES,
    skip_empty_classes: bool = False,
) -> Score:
    """Score picks against ground truth over many tomograms (the CZII weighted F-beta).

    For each class the counts of :func:`match_counts` are summed over tomograms, and only then
    turned into precision, recall and F-beta. The weighted score is
    ``sum(w_c * F_c) / sum(w_c)`` with the class weights of :mod:`octopi_core.particles`
    (beta-amylase has weight 0, so it is reported but never moves the score).

    A class with no truth and no picks in any tomogram has precision = recall = F-beta = 0 and by
    default still counts in the weighted average with its full weight, as the Kaggle metric does.
    With ``skip_empty_classes=True`` such a class is reported with weight 0.0 instead, which leaves
    it out of the average. If the weights sum to 0 the weighted score is 0.0.

    Args:
        picks: ``{run_name: {class_name: (N, 3) float xyz Å}}``, the predictions. A run present
            only here counts all its picks as false positives; a class missing from a run means no picks.
        truth: the same layout for the true particles. A run present only here counts all its
            particles as false negatives.
        beta: the F-beta weight of recall over precision; positive, default 4 (CZII).
        particles: the classes to score, as :class:`ParticleClass` objects or names; default all six.
            Known classes not in this list are ignored.
        skip_empty_classes: leave classes with no truth and no picks out of the weighted score;
            default False.

    Returns:
        A :class:`Score` with one :class:`ClassScore` per class of ``particles``, in that order.

    Raises:
        ValueError: for an unknown class name, an array that is not ``(N, 3)`` or holds NaN/inf
            (the message names ``picks[run][class]`` or ``truth[run][class]``), or a bad ``beta``.
    """
    beta_value = float(beta)
    if not math.isfinite(beta_value) or beta_value <= 0:
        raise ValueError(f"beta must be a positive finite number; got {beta!r}")
    classes = _resolve_classes(particles)
    picks_runs = _canonical_runs(picks, "picks")
    truth_runs = _canonical_runs(truth, "truth")
    run_names = list(dict.fromkeys([*truth_runs, *picks_runs]))
    empty = np.zeros((0, 3), dtype=np.float64)

    scores: list[ClassScore] = []
    for particle in classes:
        tp = fp = fn = 0
        for run in run_names:
            run_picks = picks_runs.get(run, {}).get(particle.name, empty)
            run_truth = truth_runs.get(run, {}).get(particle.name, empty)
            t, f, n = match_counts(run_picks, run_truth, particle.match_distance_a)
            tp, fp, fn = tp + t, fp + f, fn + n
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        is_empty = tp + fp + fn == 0
        weight = 0.0 if (skip_empty_classes and is_empty) else float(particle.score_weight)
        scores.append(
            ClassScore(
                particle.name, tp, fp, fn, precision, recall, f_beta(precision, recall, beta_value), weight
            )
        )
    total_weight = sum(s.weight for s in scores)
    weighted = sum(s.weight * s.f_beta for s in scores) / total_weight if total_weight > 0 else 0.0
    return Score(classes=tuple(scores), weighted_f_beta=weighted, beta=beta_value)


def _documents_by_run(documents: Iterable[PicksDocument], arg: str) -> dict[str, dict[str, np.ndarray]]:
    runs: dict[str, dict[str, np.ndarray]] = {}
    for doc in documents:
        if not isinstance(doc, PicksDocument):
            raise ValueError(f"{arg} must hold PicksDocument objects; got {type(doc).__name__}")
        if doc.run_name in runs:
            raise ValueError(f"{arg} holds two documents for run {doc.run_name!r}; merge them first")
        runs[doc.run_name] = {name: points_array(points) for name, points in doc.picks.items()}
    return runs


def score_documents(picks: Iterable[PicksDocument], truth: Iterable[PicksDocument], **kwargs) -> Score:
    """Score picks documents against truth documents, pairing them by ``run_name``.

    Args:
        picks: predicted :class:`PicksDocument` objects, at most one per run.
        truth: ground-truth :class:`PicksDocument` objects, at most one per run.
        **kwargs: passed to :func:`score_picks` (``beta``, ``particles``, ``skip_empty_classes``).

    Returns:
        The :class:`Score` of :func:`score_picks`.

    Raises:
        ValueError: for a run named twice in one argument, or anything :func:`score_picks` refuses.
    """
    return score_picks(_documents_by_run(picks, "picks"), _documents_by_run(truth, "truth"), **kwargs)
