"""Fine-tuning: train a model further on the user's labelled tomograms (a copick project or a folder).

The data pool of :func:`~octopi_core.train.train` becomes the user's tomograms (read at the model's
voxel size and normalised as inference reads them, targets painted from their picks); everything else
is the training loop's: patches, augmentation, loss, EMA, validation, early stopping, threshold tuning.

Held-out data. With at least :data:`MIN_TOMOGRAMS_FOR_WHOLE_HOLDOUT` labelled tomograms, whole
tomograms are held out (a quarter, at least one). With fewer, each tomogram's last quarter along y
is held out, and a gap as wide as the largest particle radius separates it from the training part, so
no training patch reaches into it and no particle is in both.

Partial labels. A class is labelled in a tomogram when its picks name it (a copick picks file of the
chosen user/session for that object, even an empty one; a key of a picks document). An unlabelled
class is merged into background by the loss (:func:`~octopi_core.loss.focal_tversky_loss`) and left
out of the score of that tomogram. ``absent_classes_are_background=True`` treats every class as labelled.

Few held-out particles. A few held-out tomograms hold tens of particles, so the defaults trust them
only as far as they can tell: a near-tie keeps the later weights (``selection_tolerance``), a class
with fewer than ``min_tuning_particles`` held-out particles keeps the starting model's threshold, and
validation takes at most ``val_time_fraction`` of the run, budgeted from the starting model's timed
score. ``max_wall_s`` bounds the whole run, this function's reading and scoring included.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import numpy as np

from ..exceptions import TrainingDataError
from ..export.coordinates import xyz_a_to_zyx_vox
from ..io import load_tomogram
from ..particles import PARTICLE_CLASSES
from ..picks import PickPoint, PicksDocument
from .config import TrainConfig
from .loop import TrainingResult, train
from .sampling import Sample, TrainingData
from .targets import paint_targets

__all__ = [
    "HoldOut",
    "HeldOutVolume",
    "MIN_TOMOGRAMS_FOR_WHOLE_HOLDOUT",
    "FINETUNE_DEFAULTS",
    "finetune_config",
    "open_labelled_source",
    "prepare_finetune_data",
    "finetune",
]

log = logging.getLogger(__name__)

MIN_TOMOGRAMS_FOR_WHOLE_HOLDOUT = 4
_HOLDOUT_FRACTION = 0.25  # of the tomograms, or of each tomogram's y axis

# CPU-friendly: the recipe of the shipped model's CPU stages (two 64³ patches per step, Adam 1e-4,
# Focal Tversky alpha 0.3, gamma 1 plus cross-entropy, EMA 0.99); bf16 on CUDA as the loop does.
FINETUNE_DEFAULTS: dict[str, Any] = {
    "output_dir": "runs/finetune",
    "init_checkpoint": "default",
    "patch_vox": 64,
    "batch_size": 2,
    "epochs": 200,
    "steps_per_epoch": 50,
    "lr": 1e-4,
    "lr_min_fraction": 0.05,
    "dropout": 0.1,
    "loss_alpha": 0.3,
    "loss_gamma": 1.0,
    "cross_entropy_weight": 1.0,
    "ema_decay": 0.99,
    "background_patch_fraction": 0.1,
    "hard_negative_patch_fraction": 0.0,
    "train_pool_size": 4,
    "refresh_per_epoch": 1,
    "val_every_epochs": 1,
    "selection_metric": "weighted_f_beta",
    "patience_epochs": 5,
    # A few held-out tomograms hold tens of particles: score differences of 0.02 are noise there, and
    # a class with fewer than 10 held-out particles keeps the starting model's threshold.
    "selection_tolerance": 0.02,
    "min_tuning_particles": 10,
    # Validating whole held-out tomograms on a CPU can cost as much as an epoch: at most a quarter of the time.
    "val_time_fraction": 0.25,
}


class HoldOut(str, Enum):
    """How validation data are held out of the user's tomograms.

    - ``auto``: ``tomograms`` with at least :data:`MIN_TOMOGRAMS_FOR_WHOLE_HOLDOUT` labelled ones, else ``blocks``.
    - ``tomograms``: a quarter of the tomograms (at least one), whole.
    - ``blocks``: the last quarter of every tomogram along y, behind a gap of the largest particle radius.
    """

    AUTO = "auto"
    TOMOGRAMS = "tomograms"
    BLOCKS = "blocks"


@dataclass
class HeldOutVolume:
    """A held-out tomogram or block with its truth, as validation and tuning take it.

    Attributes:
        volume: ``(Z, Y, X)`` float32, normalised.
        voxel_size_zyx_a: voxel size, Å.
        truth: picks in the frame of ``volume`` (its voxel 0 at 0 Å), xyz Å; its keys are the labelled classes.
    """

    volume: np.ndarray
    voxel_size_zyx_a: tuple[float, float, float]
    truth: PicksDocument

    def truth_document(self, run_name: str, tomogram_uri: str = "") -> PicksDocument:
        """The truth, named ``run_name`` (as :meth:`octopi_core.synth.Phantom.truth_document`)."""
        return self.truth.model_copy(update={"run_name": run_name, "tomogram_uri": tomogram_uri or run_name})


def finetune_config(base: TrainConfig | None = None, **overrides: Any) -> TrainConfig:
    """The fine-tuning config: ``base`` (default :data:`FINETUNE_DEFAULTS` over TrainConfig's) with ``overrides``.

    Args:
        base: a training config to start from (a file or preset the user gave); default None.
        **overrides: settings that replace the base's (None values are ignored).

    Returns:
        The validated config.

    Raises:
        ValueError: for a setting that fails validation.
    """
    raw = base.model_dump() if base is not None else dict(FINETUNE_DEFAULTS)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.model_validate(raw)


def open_labelled_source(
    spec: str,
    *,
    picks_users: list[str] | None = None,
    picks_sessions: list[str] | None = None,
    tomo_type: str | None = None,
    voxel_size_a: float | None = None,
) -> tuple[list[Any], dict[str, Any]]:
    """Open a copick project or a folder with :func:`octopi_core.data.open_source`, merging several users' picks.

    Args:
        spec: a copick config JSON, or a folder of ``NAME.zarr`` (or MRC) + ``NAME.picks.json`` pairs.
        picks_users: copick users whose picks are the truth (each with the session of the same position in
            ``picks_sessions``, or any); their picks are merged per run and class. Default None: the one there is.
        picks_sessions: copick sessions, one per user, or None.
        tomo_type: copick tomogram type; None: the only one.
        voxel_size_a: copick voxel spacing, or the folder's voxel size, Å; None: the source's.

    Returns:
        The items (one per tomogram) and the provenance (source, kind, type, spacing, users, sessions, notes).

    Raises:
        DataSourceError, AmbiguousDataError, PicksFormatError: as :func:`~octopi_core.data.open_source`.
        ValueError: when ``picks_sessions`` does not pair with ``picks_users``.
    """
    from ..data import open_source

    users: list[str | None] = [*picks_users] if picks_users else [None]
    sessions: list[str | None] = [*picks_sessions] if picks_sessions else [None] * len(users)
    if len(sessions) != len(users):
        raise ValueError(
            f"give one picks session per picks user, or none; got users {users}, sessions {sessions}"
        )
    items: dict[str, Any] = {}
    sources = [
        open_source(
            spec, tomo_type=tomo_type, voxel_size_a=voxel_size_a, picks_user=user, picks_session=session
        )
        for user, session in zip(users, sessions)
    ]
    for opened in sources:
        for item in opened.items:
            items[item.run_name] = _merged(items.get(item.run_name), item)
    source = sources[0]
    provenance = {
        "source": spec,
        "kind": source.kind.value,
        "tomo_type": getattr(source, "tomo_type", None),
        "voxel_spacing_a": getattr(source, "voxel_spacing_a", voxel_size_a),
        "picks_users": [u for u in users if u is not None],
        "picks_sessions": [s for s in sessions if s is not None],
        "notes": list(source.notes),
    }
    return list(items.values()), provenance


def _merged(first: Any, second: Any) -> Any:
    """One item with the picks of both (the classes either labels; their points together)."""
    if first is None or first.truth is None:
        return second
    if second.truth is None:
        return first
    picks = {
        n: list(first.truth.picks.get(n, [])) + list(second.truth.picks.get(n, []))
        for n in {*first.truth.picks, *second.truth.picks}
    }
    return replace(
        first,
        truth=first.truth.model_copy(update={"picks": picks}),
        truth_uris=first.truth_uris + second.truth_uris,
    )


def prepare_finetune_data(
    items: list[Any],
    *,
    model_voxel_size_a: float,
    target_radius_fraction: float,
    holdout: HoldOut | str = HoldOut.AUTO,
    absent_classes_are_background: bool = False,
    synthetic_fraction: float = 0.0,
    seed: int = 0,
    provenance: dict[str, Any] | None = None,
) -> TrainingData:
    """Read the labelled items, split them into training samples and held-out volumes.

    Args:
        items: :class:`~octopi_core.data.DataItem` s (``run_name``, ``tomogram_uri``, ``voxel_size_a``,
            ``truth``: xyz Å); the unlabelled ones are skipped.
        model_voxel_size_a: the voxel size the tomograms are read at (the model's), Å.
        target_radius_fraction: target sphere radius as a fraction of each class radius.
        holdout: a :class:`HoldOut` or its string (``auto``, ``tomograms``, ``blocks``).
        absent_classes_are_background: treat every class as labelled in every tomogram (default False:
            only the classes its picks name).
        synthetic_fraction: share of patches from generated tomograms, in [0, 1].
        seed: chooses the held-out tomograms.
        provenance: what to record about the source (kind, spec, users...); the split is added.

    Returns:
        The pool, the held-out volumes and the provenance.

    Raises:
        TrainingDataError: no labelled tomograms, or none with a pick.
        ValueError: for an unknown ``holdout`` or a ``synthetic_fraction`` outside [0, 1].
    """
    try:
        holdout = HoldOut(getattr(holdout, "value", holdout))
    except ValueError:
        raise ValueError(f"holdout must be one of {[h.value for h in HoldOut]}; got {holdout!r}") from None
    if not 0.0 <= synthetic_fraction <= 1.0:
        raise ValueError(f"synthetic_fraction must be in [0, 1]; got {synthetic_fraction!r}")
    labelled = [item for item in items if item.truth is not None]
    if not labelled:
        raise TrainingDataError("the source holds no labelled tomograms (no picks files of the chosen user)")
    if not any(any(item.truth.picks.values()) for item in labelled):
        raise TrainingDataError("the labelled tomograms hold no picks")
    if holdout is HoldOut.AUTO:
        holdout = HoldOut.TOMOGRAMS if len(labelled) >= MIN_TOMOGRAMS_FOR_WHOLE_HOLDOUT else HoldOut.BLOCKS
    held: set[str] = set()
    if holdout is HoldOut.TOMOGRAMS:
        if len(labelled) < 2:
            raise TrainingDataError("holding out whole tomograms needs at least two labelled tomograms")
        count = max(1, round(len(labelled) * _HOLDOUT_FRACTION))
        order = np.random.default_rng(seed).permutation(len(labelled))
        held = {labelled[i].run_name for i in order[:count]}
    pool: list[Sample] = []
    validation: list[HeldOutVolume] = []
    split: dict[str, dict[str, Any]] = {}
    for item in labelled:
        tomogram = load_tomogram(
            item.tomogram_uri, target_voxel_size_a=model_voxel_size_a, voxel_size_a=item.voxel_size_a
        )
        classes = (
            [p.name for p in PARTICLE_CLASSES]
            if absent_classes_are_background
            else [p.name for p in PARTICLE_CLASSES if p.name in item.truth.picks]
        )
        origin_xyz_a = np.asarray(tomogram.origin_zyx_a, float)[::-1]
        truth_xyz_a = {
            name: _points(item.truth.picks.get(name, [])) - origin_xyz_a for name in classes
        }  # in the loaded volume's frame
        vs = tomogram.voxel_size_zyx_a
        volume = tomogram.volume
        if item.run_name in held:
            validation.append(HeldOutVolume(volume, vs, _truth(truth_xyz_a, item.run_name, vs, volume.shape)))
            split[item.run_name] = {"role": "validation", "labelled_classes": classes}
            continue
        labels = paint_targets(volume.shape, truth_xyz_a, vs, target_radius_fraction)
        train_y, val_y = (
            (slice(0, volume.shape[1]), None)
            if holdout is HoldOut.TOMOGRAMS
            else _y_blocks(volume.shape[1], vs[1])
        )
        pool.append(_sample(volume, labels, truth_xyz_a, vs, train_y, classes))
        split[item.run_name] = {
            "role": "training",
            "labelled_classes": classes,
            "train_y_vox": [train_y.start, train_y.stop],
        }
        if val_y is not None:
            crop = np.ascontiguousarray(volume[:, val_y])
            shifted = {n: p - np.array([0.0, val_y.start * vs[1], 0.0]) for n, p in truth_xyz_a.items()}
            inside = {n: p[(p[:, 1] >= 0) & (p[:, 1] < crop.shape[1] * vs[1])] for n, p in shifted.items()}
            validation.append(
                HeldOutVolume(crop, vs, _truth(inside, f"{item.run_name}-y-block", vs, crop.shape))
            )
            split[item.run_name]["validation_y_vox"] = [val_y.start, val_y.stop]
    record = {
        **(provenance or {}),
        "holdout": holdout.value,
        "absent_classes_are_background": absent_classes_are_background,
        "synthetic_fraction": synthetic_fraction,
        "runs": split,
        "picks": {item.run_name: item.truth.counts() for item in labelled},
        "validation": {
            "runs": sorted(
                r for r, s in split.items() if s["role"] == "validation" or "validation_y_vox" in s
            ),
            "holdout": holdout.value,
        },
    }
    return TrainingData(
        pool=pool, validation=validation, synthetic_fraction=synthetic_fraction, provenance=record
    )


def finetune(
    items: list[Any], config: TrainConfig, *, model_voxel_size_a: float, **data_options: Any
) -> TrainingResult:
    """Fine-tune ``config.init_checkpoint`` on the labelled ``items``; the best checkpoint goes to ``output_dir/best``.

    The starting model's score on the same held-out data is recorded next to the data
    (``training.data.init_validation``) so the gain can be read from the checkpoint.

    Args:
        items: the source's items (see :func:`prepare_finetune_data`).
        config: the run's settings (:func:`finetune_config`); ``init_checkpoint`` is the starting model.
        model_voxel_size_a: the starting model's voxel size, Å.
        **data_options: keyword arguments of :func:`prepare_finetune_data` (``holdout``,
            ``absent_classes_are_background``, ``synthetic_fraction``, ``provenance``).

    Returns:
        The loop's result.

    Raises:
        TrainingDataError: as :func:`prepare_finetune_data`.
        OctopiError: as :func:`~octopi_core.train.train`.
    """
    started = time.monotonic()
    data = prepare_finetune_data(
        items,
        model_voxel_size_a=model_voxel_size_a,
        target_radius_fraction=config.target_radius_fraction,
        seed=config.seed,
        **data_options,
    )
    log.info(
        "fine-tuning on %d tomograms (training regions), validating on %d",
        len(data.pool),
        len(data.validation),
    )
    if config.init_checkpoint:
        scored = time.monotonic()
        data.provenance["init_validation"], data.start_thresholds = _initial_score(config, data)
        data.validation_pass_s = time.monotonic() - scored
    if config.max_wall_s:  # reading the data and scoring the starting model count against the limit
        left_s = max(config.max_wall_s - (time.monotonic() - started), 1.0)
        config = config.model_copy(update={"max_wall_s": left_s})
    return train(config, data=data)


def _initial_score(config: TrainConfig, data: TrainingData) -> tuple[dict[str, Any], dict[str, float]]:
    """The starting model's held-out score at its own tuned localization settings, and its thresholds."""
    from ..device import select_device
    from ..model import load_checkpoint
    from ..model_config import default_checkpoint_dir
    from .tuning import score_segmentations, segment_all

    device = select_device(config.device, asked_by="the fine-tuning config")
    path = default_checkpoint_dir() if config.init_checkpoint == "default" else str(config.init_checkpoint)
    model, model_config = load_checkpoint(path, device=device)
    tuned = model_config.training.get("localize", {})
    settings: dict[str, Any] = {"target_radius_fraction": config.target_radius_fraction}
    if tuned.get("thresholds"):
        settings["threshold"] = tuned["thresholds"]
    if "min_volume_fraction" in tuned:
        settings["min_volume_fraction"] = tuned["min_volume_fraction"]
    segmentations = segment_all(model, data.validation, config.val_window_vox, device)
    score = score_segmentations(segmentations, data.validation, **settings)
    log.info("starting model %s: held-out weighted F-beta %.4f", model_config.version, score.weighted_f_beta)
    thresholds = tuned.get("thresholds")
    return {"version": model_config.version, **score.as_dict()}, (
        dict(thresholds) if isinstance(thresholds, dict) else {}
    )


def _points(points: list[PickPoint]) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in points], float).reshape(-1, 3)


def _y_blocks(size_y_vox: int, voxel_size_y_a: float) -> tuple[slice, slice]:
    """Training and held-out y ranges of one tomogram, voxels, with a gap of the largest particle radius."""
    gap_vox = math.ceil(max(p.radius_a for p in PARTICLE_CLASSES) / voxel_size_y_a)
    val_vox = max(1, round(size_y_vox * _HOLDOUT_FRACTION))
    train_stop = size_y_vox - val_vox - gap_vox
    if train_stop < 1:
        raise TrainingDataError(
            f"a tomogram of {size_y_vox} voxels along y is too small to hold out a block of it; "
            "give more tomograms (whole ones are held out from four on)"
        )
    return slice(0, train_stop), slice(size_y_vox - val_vox, size_y_vox)


def _sample(
    volume: np.ndarray,
    labels: np.ndarray,
    truth_xyz_a: dict[str, np.ndarray],
    voxel_size_zyx_a: tuple[float, float, float],
    train_y: slice,
    classes: list[str],
) -> Sample:
    """The training region (``train_y``) of a tomogram as a pool sample: patches cannot leave it."""
    centres = {}
    for name, points in truth_xyz_a.items():
        zyx = xyz_a_to_zyx_vox(points, np.asarray(voxel_size_zyx_a)) - np.array([0.0, train_y.start, 0.0])
        zyx = zyx[(zyx[:, 1] >= 0) & (zyx[:, 1] < train_y.stop - train_y.start)]
        if len(zyx):
            centres[name] = zyx
    mask = np.array([True] + [p.name in classes for p in PARTICLE_CLASSES])
    return Sample.from_arrays(
        np.ascontiguousarray(volume[:, train_y]), np.ascontiguousarray(labels[:, train_y]), centres, mask
    )


def _truth(
    truth_xyz_a: dict[str, np.ndarray],
    run_name: str,
    voxel_size_zyx_a: tuple[float, float, float],
    shape_zyx: tuple[int, ...],
) -> PicksDocument:
    vz, vy, vx = voxel_size_zyx_a
    return PicksDocument(
        tomogram_uri=run_name,
        run_name=run_name,
        voxel_size_xyz_a=(vx, vy, vz),
        shape_zyx=(int(shape_zyx[0]), int(shape_zyx[1]), int(shape_zyx[2])),
        picks={n: [PickPoint(x=x, y=y, z=z) for x, y, z in p] for n, p in truth_xyz_a.items()},
    )
