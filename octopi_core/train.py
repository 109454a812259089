"""Training: patches centred on particles from generated tomograms, Focal Tversky, EMA, cosine LR.

The loop follows the Octopi model card: patches centred on annotated particles (random
rotations about z, flips, intensity scaling, Gaussian noise), target masks painted as spheres
at a fraction of each class radius, Focal Tversky loss, Adam, an exponential moving average
(EMA) of the weights, cosine-annealed learning rate, validation by sliding-window inference
over whole held-out tomograms scored with the CZII F-beta after localization, early stopping,
and the best checkpoint kept with its scores. Training data are generated on the fly by
:mod:`octopi_core.synth`, a slice of the pool renewed every epoch, so no tomogram is memorised.
Everything is reproducible from the config's seed, and a run resumes from its last state.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .exceptions import OctopiError, TrainingDataError
from .export import picks_document_from_voxels
from .inference import segment_tomogram
from .io import normalize_volume
from .localize import DEFAULT_TARGET_RADIUS_FRACTION, localize_particles
from .loss import FOCAL_TVERSKY_ALPHA, FOCAL_TVERSKY_GAMMA, focal_tversky_loss
from .metric import Score, score_documents
from .model import build_model, save_checkpoint
from .model_config import ModelConfig
from .options import DEFAULT_OVERLAP, DEFAULT_WINDOW_VOX
from .particles import PARTICLE_CLASSES
from .synth import Phantom, PhantomSettings, make_phantom

__all__ = [
    "TrainConfig",
    "load_train_config",
    "paint_targets",
    "train",
    "PRESETS",
    "TrainingResult",
    "validate_model",
    "tune_localization",
    "tune_checkpoint",
]

log = logging.getLogger(__name__)
WindowVox = int | tuple[int, int, int] | None
_PRESET_DIR = Path(__file__).parent / "presets"
_RESUME_FILE = "last.pt"  # in the run's output_dir: weights, optimizer and loop state
PRESETS = ("card", "cpu", "cpu-refine", "cpu-refine-2", "cpu-refine-3", "gpu-refine", "tiny")


class TrainConfig(BaseModel):
    """Every training setting. Load from YAML/TOML with :func:`load_train_config`.

    Lengths are in voxels, durations in seconds, rates per optimizer step.
    """

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    output_dir: str = "runs/train"
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 = torch's default")
    device: str = "auto"
    init_checkpoint: str | None = Field(
        None, description="start from this checkpoint's weights ('default' = the shipped model)"
    )
    # data
    train_settings: PhantomSettings = Field(default_factory=PhantomSettings)
    val_settings: PhantomSettings = Field(default_factory=PhantomSettings)
    train_pool_size: int = Field(8, ge=1, description="tomograms held in memory")
    refresh_per_epoch: int = Field(2, ge=0, description="pool tomograms replaced by new ones each epoch")
    data_workers: int = Field(
        0,
        ge=0,
        description="processes making the next epoch's new tomograms while the network "
        "trains; 0 = made in the training process between epochs",
    )
    data_threads: int = Field(
        1, ge=1, description="threads cutting the next batches while the network trains"
    )
    val_tomograms: int = Field(2, ge=1)
    patch_vox: int = Field(112, ge=16, multiple_of=4)
    background_patch_fraction: float = Field(0.1, ge=0, le=1)
    hard_negative_patch_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="patches centred on unlabelled look-alike proteins (clutter), which teach the "
        "network what not to pick",
    )
    class_sampling_weights: dict[str, float] = Field(
        default_factory=lambda: {p.name: 1.0 for p in PARTICLE_CLASSES}
    )
    target_radius_fraction: float = Field(DEFAULT_TARGET_RADIUS_FRACTION, gt=0, le=1)
    # augmentation
    intensity_scale: tuple[float, float] = (0.8, 1.25)
    noise_std: tuple[float, float] = (0.0, 0.3)
    # optimisation
    batch_size: int = Field(2, ge=1)
    epochs: int = Field(500, ge=1)
    steps_per_epoch: int = Field(50, ge=1)
    lr: float = Field(2.796e-6, gt=0)
    lr_min_fraction: float = Field(0.05, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    dropout: float = Field(0.23, ge=0, lt=1)
    loss_alpha: float = Field(FOCAL_TVERSKY_ALPHA, ge=0, le=1)
    loss_gamma: float = Field(FOCAL_TVERSKY_GAMMA, gt=0)
    cross_entropy_weight: float = Field(
        0.0, ge=0, description="adds weighted cross-entropy to the Focal Tversky loss"
    )
    ema_decay: float = Field(0.99, ge=0, lt=1)
    amp: bool = Field(True, description="mixed precision (bf16) on CUDA; ignored on the CPU")
    # validation and stopping
    val_every_epochs: int = Field(1, ge=1)
    val_window_vox: int | tuple[int, int, int] | None = Field(
        None, description="validation/tuning window, voxels (N or [z, y, x]); None = the inference defaults"
    )
    selection_metric: Literal["mean_f_beta", "weighted_f_beta"] = "mean_f_beta"
    patience_epochs: int = Field(20, ge=1, description="stop after this many validations without improvement")
    tune_localization: bool = Field(
        True, description="after training, tune the pick threshold on new tomograms"
    )
    tune_data: Literal["validation", "training"] = Field(
        "validation",
        description="generator settings of the tuning tomograms: val_settings or the (usually broader) "
        "train_settings, which keeps clean data from being over-picked",
    )
    tune_tomograms: int | None = Field(None, ge=1, description="tuning tomograms; None = val_tomograms")
    max_wall_s: float = Field(0, ge=0, description="stop after this long; 0 = no limit")

    def generator_settings(self, data: Literal["validation", "training"]) -> PhantomSettings:
        """The validation or the training settings of the phantom generator."""
        return self.train_settings if data == "training" else self.val_settings

    @model_validator(mode="after")
    def _patch_fractions_fit(self) -> TrainConfig:
        if self.background_patch_fraction + self.hard_negative_patch_fraction > 1:
            raise ValueError("background_patch_fraction + hard_negative_patch_fraction must not exceed 1")
        return self


def load_train_config(source: str | Path) -> TrainConfig:
    """Load a config from a YAML/TOML file or a preset name (``card``, ``cpu``, ``tiny``).

    Raises:
        ValueError: unreadable file, or a setting that fails validation (named in the message).
    """
    path = Path(source)
    if not path.exists() and str(source) in PRESETS:
        path = _PRESET_DIR / f"{source}.yaml"
    if not path.is_file():
        raise ValueError(
            f"training config {str(source)!r} is neither a file nor a preset ({', '.join(PRESETS)})"
        )
    try:
        if path.suffix == ".toml":
            import tomllib

            raw = tomllib.loads(path.read_text())
        else:
            raw = yaml.safe_load(path.read_text()) or {}
    except Exception as e:
        raise ValueError(f"training config {str(path)!r} is not valid YAML/TOML: {e}") from e
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ValueError(f"training config {str(path)!r} is invalid: {problems}") from e


def paint_targets(
    shape_zyx: tuple[int, int, int],
    truth_xyz_a: dict[str, np.ndarray],
    voxel_size_zyx_a: tuple[float, float, float],
    target_radius_fraction: float,
) -> np.ndarray:
    """Label map with a sphere of ``target_radius_fraction`` x class radius around each particle.

    Args:
        shape_zyx: output shape, voxels.
        truth_xyz_a: class name -> ``(N, 3)`` centres, xyz Å.
        voxel_size_zyx_a: voxel size, Å.
        target_radius_fraction: sphere radius as a fraction of the class radius.

    Returns:
        ``(Z, Y, X)`` uint8 labels (0 background, else the class label).
    """
    labels = np.zeros(shape_zyx, np.uint8)
    vs = np.asarray(voxel_size_zyx_a, float)
    for particle in PARTICLE_CLASSES:
        radius_a = target_radius_fraction * particle.radius_a
        for x, y, z in truth_xyz_a.get(particle.name, np.zeros((0, 3))):
            centre = np.array([z, y, x]) / vs
            lo = np.maximum(np.floor(centre - radius_a / vs).astype(int), 0)
            hi = np.minimum(np.ceil(centre + radius_a / vs).astype(int) + 1, shape_zyx)
            if np.any(hi <= lo):
                continue
            grids = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
            inside = sum(((g - c) * v) ** 2 for g, c, v in zip(grids, centre, vs)) <= radius_a**2
            labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]][inside] = particle.label
    return labels


class _Sample:
    """One pool tomogram: normalised volume, target labels, particle and clutter centres (voxels)."""

    def __init__(self, phantom: Phantom, target_radius_fraction: float) -> None:
        self.volume = normalize_volume(phantom.volume.astype(np.float32, copy=False))
        self.labels = paint_targets(
            self.volume.shape, phantom.truth_xyz_a, phantom.voxel_size_zyx_a, target_radius_fraction
        )
        vs = np.asarray(phantom.voxel_size_zyx_a)
        self.centres_vox = {name: pts[:, ::-1] / vs for name, pts in phantom.truth_xyz_a.items() if len(pts)}
        self.clutter_vox = phantom.clutter_xyz_a[:, ::-1] / vs


@dataclass
class _Batch:
    """Training patches cut on the CPU: images without their Gaussian noise, targets, noise levels."""

    images: np.ndarray  # (B, 1, P, P, P) float32
    targets: np.ndarray  # (B, P, P, P) uint8
    noise_std: np.ndarray  # (B,) float32

    def on(self, device: torch.device, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch on ``device``, noised there: on a GPU the CPU would otherwise be the bottleneck."""
        images = torch.from_numpy(self.images).to(device, non_blocking=True)
        noise = torch.randn(images.shape, generator=generator, device=device)
        images = images + noise * torch.from_numpy(self.noise_std).to(device).view(-1, 1, 1, 1, 1)
        return images, torch.from_numpy(self.targets).to(device, non_blocking=True).long()


class _PatchSampler:
    """Cuts augmented training patches centred (with jitter) on particles of a chosen class, on
    clutter proteins (hard negatives) or anywhere (background). Each batch draws from its own
    random generator, so batches can be cut in any order, by any number of threads."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        names = [p.name for p in PARTICLE_CLASSES]
        weights = np.array([config.class_sampling_weights.get(n, 0.0) for n in names], float)
        if weights.sum() <= 0:
            raise ValueError("class_sampling_weights must give some class a positive weight")
        self.class_names, self.class_p = names, weights / weights.sum()

    def cut(self, pool: list[_Sample], rng: np.random.Generator) -> _Batch:
        images, targets = zip(*(self._patch(pool, rng) for _ in range(self.config.batch_size)))
        noise_std = rng.uniform(*self.config.noise_std, len(targets)).astype(np.float32)
        return _Batch(np.stack(images)[:, None], np.stack(targets), noise_std)

    def _patch(self, pool: list[_Sample], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        size = self.config.patch_vox
        sample = pool[rng.integers(len(pool))]
        shape = np.array(sample.volume.shape)
        kind = rng.random()
        clutter_holders = [s for s in pool if len(s.clutter_vox)]
        if kind < self.config.background_patch_fraction:
            centre = rng.uniform(0, shape)
        elif (
            kind < self.config.background_patch_fraction + self.config.hard_negative_patch_fraction
            and clutter_holders
        ):
            sample = clutter_holders[rng.integers(len(clutter_holders))]
            shape = np.array(sample.volume.shape)
            centre = sample.clutter_vox[rng.integers(len(sample.clutter_vox))] + rng.uniform(
                -size / 8, size / 8, 3
            )
        else:
            name = rng.choice(self.class_names, p=self.class_p)
            holders = [s for s in pool if name in s.centres_vox] or [s for s in pool if s.centres_vox]
            if not holders:
                raise TrainingDataError("the training tomograms contain no labelled particles")
            sample = holders[rng.integers(len(holders))]
            shape = np.array(sample.volume.shape)
            points = (
                sample.centres_vox.get(name)
                if name in sample.centres_vox
                else next(iter(sample.centres_vox.values()))
            )
            centre = points[rng.integers(len(points))] + rng.uniform(-size / 4, size / 4, 3)
        lo = np.clip(np.round(centre - size / 2).astype(int), 0, np.maximum(shape - size, 0))
        box = tuple(slice(a, a + size) for a in lo)
        image, target = _pad_to(sample.volume[box], size), _pad_to(sample.labels[box], size)
        # Rotations about z and flips keep the missing wedge along z, as in real data.
        k = int(rng.integers(4))
        image, target = np.rot90(image, k, axes=(1, 2)), np.rot90(target, k, axes=(1, 2))
        for axis in range(3):
            if rng.random() < 0.5:
                image, target = np.flip(image, axis), np.flip(target, axis)
        image = image * np.float32(rng.uniform(*self.config.intensity_scale)) + np.float32(rng.normal(0, 0.1))
        return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(target)


def _pad_to(array: np.ndarray, size: int) -> np.ndarray:
    pad = [(0, size - n) for n in array.shape]
    return np.pad(array, pad) if any(p[1] for p in pad) else array


def _make_sample(seed: int, settings: PhantomSettings, target_radius_fraction: float) -> _Sample:
    return _Sample(make_phantom(seed, settings), target_radius_fraction)


class _TomogramMaker:
    """Makes training tomograms, in worker processes when the config asks for them.

    :meth:`submit` starts making the tomograms of some seeds and returns a callable that hands
    them over in seed order: with workers they are made while the epoch trains, otherwise when
    they are asked for. Either way the same seeds go to the same pool slots, so a run is
    reproducible whatever the worker count.
    """

    def __init__(self, config: TrainConfig) -> None:
        self._args = (config.train_settings, config.target_radius_fraction)
        # spawn, not fork: the training process may hold CUDA state and torch threads.
        self._executor = (
            ProcessPoolExecutor(config.data_workers, mp_context=multiprocessing.get_context("spawn"))
            if config.data_workers
            else None
        )

    def submit(self, seeds: list[int]) -> Callable[[], list[_Sample]]:
        if self._executor is None:
            return lambda: [_make_sample(seed, *self._args) for seed in seeds]
        futures: list[Future] = [self._executor.submit(_make_sample, seed, *self._args) for seed in seeds]
        return lambda: [future.result() for future in futures]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)


class TrainingResult(BaseModel):
    """What a finished run reports."""

    best_checkpoint: str
    best_score: float
    best_epoch: int
    epochs_run: int
    stopped_because: str
    scores: dict[str, Any]


def _segment_all(
    model: torch.nn.Module, phantoms: list[Phantom], window_vox: WindowVox, device: torch.device
) -> list:
    # The inference defaults unless a window is given, so what is validated and tuned is what runs.
    segmentations = []
    for phantom in phantoms:
        volume = normalize_volume(phantom.volume.astype(np.float32, copy=True))
        segmentations.append(
            segment_tomogram(
                model,
                volume,
                num_classes=len(PARTICLE_CLASSES) + 1,
                window_vox=window_vox or DEFAULT_WINDOW_VOX,
                overlap=DEFAULT_OVERLAP,
                device=device,
            )
        )
    return segmentations


def _score_segmentations(segmentations: list, phantoms: list[Phantom], **localize_settings: float) -> Score:
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
    return score_documents(picks, truth)


def validate_model(
    model: torch.nn.Module,
    phantoms: list[Phantom],
    *,
    window_vox: WindowVox,
    target_radius_fraction: float,
    device: torch.device,
) -> Score:
    """Segment, localize and score ``model`` on whole generated tomograms (CZII F-beta)."""
    segmentations = _segment_all(model, phantoms, window_vox, device)
    return _score_segmentations(segmentations, phantoms, target_radius_fraction=target_radius_fraction)


def tune_localization(
    model: torch.nn.Module,
    phantoms: list[Phantom],
    *,
    window_vox: WindowVox,
    target_radius_fraction: float,
    device: torch.device,
    thresholds: tuple[float, ...] = (0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    min_volume_fractions: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5),
) -> tuple[dict[str, Any], Score]:
    """Choose each class's pick threshold and the minimum blob size that maximise the weighted F-beta.

    A class's picks depend only on its own threshold and each class is scored on its own, so for
    every blob size the best threshold is chosen class by class. The network runs once per
    tomogram; only localization is repeated over the grid.

    Returns:
        ``({"thresholds": {class: t}, "min_volume_fraction": f}, score at those settings)``.
    """
    segmentations = _segment_all(model, phantoms, window_vox, device)
    best: tuple[float, dict[str, Any]] | None = None
    for fraction in min_volume_fractions:
        per_class: dict[str, tuple[float, float]] = {}  # class -> (F-beta, threshold)
        weights: dict[str, float] = {}
        for threshold in thresholds:
            score = _score_segmentations(
                segmentations,
                phantoms,
                target_radius_fraction=target_radius_fraction,
                threshold=threshold,
                min_volume_fraction=fraction,
            )
            for c in score.classes:
                weights[c.particle] = c.weight
                if c.particle not in per_class or c.f_beta > per_class[c.particle][0]:
                    per_class[c.particle] = (c.f_beta, threshold)
        weighted = sum(weights[n] * f for n, (f, _) in per_class.items()) / max(sum(weights.values()), 1e-12)
        if best is None or weighted > best[0]:
            best = (
                weighted,
                {"thresholds": {n: t for n, (_, t) in per_class.items()}, "min_volume_fraction": fraction},
            )
    assert best is not None  # the grids are non-empty
    chosen = best[1]
    score = _score_segmentations(
        segmentations,
        phantoms,
        target_radius_fraction=target_radius_fraction,
        threshold=chosen["thresholds"],
        min_volume_fraction=chosen["min_volume_fraction"],
    )
    return chosen, score


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OctopiError(
            f"the training config asks for device {name!r}, but no CUDA GPU is available here; "
            "set device to 'auto' or 'cpu'"
        )
    return device


def _load_initial_weights(source: str, device: torch.device) -> tuple[dict[str, torch.Tensor], str]:
    """Weights and version of the checkpoint a warm-started run begins from (its dropout is ignored)."""
    from .model import load_checkpoint
    from .model_config import default_checkpoint_dir

    path = default_checkpoint_dir() if source == "default" else Path(source)
    log.info("starting from the weights of %s", path)
    model, model_config = load_checkpoint(path, device=device)
    return model.state_dict(), model_config.version


def _lr_factor(step: int, total_steps: int, min_fraction: float) -> float:
    progress = min(step / max(total_steps, 1), 1.0)
    return min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def train(config: TrainConfig, *, on_epoch: Callable[[dict], None] | None = None) -> TrainingResult:
    """Run (or resume) training as configured; return the best checkpoint and its scores.

    Writes to ``config.output_dir``: ``best/`` (checkpoint), ``last.pt`` (resume state: tensors
    and numbers only), ``metrics.jsonl`` (one line per epoch) and ``curves.png``.

    Raises:
        TrainingDataError: when the generated data hold no labelled particles.
        OctopiError: when the loss becomes NaN/inf.
    """
    device = _device(config.device)  # refused before anything is written
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(config.model_dump_json(indent=2))
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model_config = ModelConfig(dropout=config.dropout)
    model = build_model(model_config).to(device)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    state = {"epoch": 0, "step": 0, "best_score": -1.0, "best_epoch": -1, "stale": 0, "wall_s": 0.0}
    resume_path = out / _RESUME_FILE
    if resume_path.exists():
        saved = torch.load(resume_path, map_location=device, weights_only=True)
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        optimizer.load_state_dict(saved["optimizer"])
        state.update(json.loads(saved["state_json"]))
        log.info("resumed from %s at epoch %d", resume_path, state["epoch"])
    elif config.init_checkpoint:
        start, state["init_version"] = _load_initial_weights(config.init_checkpoint, device)
        model.load_state_dict(start)
        ema.load_state_dict(start)

    val_phantoms = [
        make_phantom(1_000_000 + config.seed * 1000 + i, config.val_settings)
        for i in range(config.val_tomograms)
    ]
    maker = _TomogramMaker(config)
    try:
        state, stopped_because = _train_epochs(
            config, model, ema, optimizer, model_config, val_phantoms, maker, state, device, out, on_epoch
        )
    finally:
        maker.close()
    if state["best_epoch"] < 0:
        raise OctopiError("training finished without a validation; no checkpoint was written")
    if config.tune_localization:
        tune_checkpoint(
            out / "best",
            config.generator_settings(config.tune_data),
            count=config.tune_tomograms or config.val_tomograms,
            seed=2_000_000 + config.seed,
            window_vox=config.val_window_vox,
            device=config.device,
        )
    best = json.loads((out / "best" / "config.json").read_text())
    return TrainingResult(
        best_checkpoint=str(out / "best"),
        best_score=state["best_score"],
        best_epoch=state["best_epoch"],
        epochs_run=state["epoch"],
        stopped_because=stopped_because,
        scores=best["scores"],
    )


def _train_epochs(
    config: TrainConfig,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    model_config: ModelConfig,
    val_phantoms: list[Phantom],
    maker: _TomogramMaker,
    state: dict[str, Any],
    device: torch.device,
    out: Path,
    on_epoch: Callable[[dict], None] | None,
) -> tuple[dict[str, Any], str]:
    """Train epoch by epoch from ``state`` until done, stale or out of time; return the state and why it stopped."""
    total_steps = config.epochs * config.steps_per_epoch
    # bf16 only: fp16 would need loss scaling, and GPUs without bf16 are rare among those that train.
    use_bf16 = config.amp and device.type == "cuda" and torch.cuda.is_bf16_supported()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # one patch shape throughout
    pool_seed = config.seed * 1_000_003
    pool = maker.submit(list(range(pool_seed, pool_seed + config.train_pool_size)))()
    if not any(s.centres_vox for s in pool):
        raise TrainingDataError("the generated training tomograms contain no labelled particles")
    next_seed = pool_seed + config.train_pool_size + state["epoch"] * config.refresh_per_epoch
    stopped_because = "finished all epochs"
    started = time.monotonic() - state["wall_s"]
    while state["epoch"] < config.epochs:
        epoch = state["epoch"]
        # The pool's next tomograms are made while this epoch trains (with data workers).
        renewals = maker.submit(list(range(next_seed, next_seed + config.refresh_per_epoch)))
        next_seed += config.refresh_per_epoch
        noise = torch.Generator(device=device).manual_seed(
            int(np.random.default_rng([config.seed, epoch]).integers(2**63))
        )
        model.train()
        losses = []
        for batch in _cut_batches(pool, config, epoch):
            images, targets = batch.on(device, noise)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * _lr_factor(state["step"], total_steps, config.lr_min_fraction)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(images)
            logits = logits.float()
            loss = focal_tversky_loss(logits, targets, alpha=config.loss_alpha, gamma=config.loss_gamma)
            if config.cross_entropy_weight:
                loss = loss + config.cross_entropy_weight * F.cross_entropy(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for e, p in zip(ema.parameters(), model.parameters()):
                    e.lerp_(p, 1 - config.ema_decay)
                for e, b in zip(ema.buffers(), model.buffers()):
                    e.copy_(b)
            # Kept on the device: reading each loss would make the CPU wait for every GPU step.
            losses.append(loss.detach())
            state["step"] += 1
        epoch_losses = torch.stack(losses).float().cpu()
        if not torch.isfinite(epoch_losses).all():
            first_bad = int((~torch.isfinite(epoch_losses)).nonzero()[0])
            bad_step = state["step"] - len(losses) + first_bad
            raise OctopiError(
                f"training loss became {epoch_losses[first_bad].item()} at step {bad_step}; "
                "lower the learning rate"
            )
        # Renew part of the pool so the network keeps seeing new tomograms.
        for i, sample in enumerate(renewals()):
            pool[(epoch * config.refresh_per_epoch + i) % len(pool)] = sample
        record: dict[str, Any] = {
            "epoch": epoch,
            "step": state["step"],
            "loss": float(epoch_losses.mean()),
            "lr": optimizer.param_groups[0]["lr"],
            "wall_s": round(time.monotonic() - started, 1),
        }
        if (epoch + 1) % config.val_every_epochs == 0 or epoch + 1 == config.epochs:
            score = validate_model(
                ema,
                val_phantoms,
                window_vox=config.val_window_vox,
                target_radius_fraction=config.target_radius_fraction,
                device=device,
            )
            mean_f = float(np.mean([c.f_beta for c in score.classes]))
            record.update(
                {
                    "mean_f_beta": mean_f,
                    "weighted_f_beta": score.weighted_f_beta,
                    "f_beta": {c.particle: round(c.f_beta, 4) for c in score.classes},
                }
            )
            current = mean_f if config.selection_metric == "mean_f_beta" else score.weighted_f_beta
            if current > state["best_score"]:
                state.update(best_score=current, best_epoch=epoch, stale=0)
                _save_best(ema, model_config, config, out, epoch, score, state.get("init_version"))
            else:
                state["stale"] += 1
        state["epoch"] = epoch + 1
        state["wall_s"] = time.monotonic() - started
        with open(out / "metrics.jsonl", "a") as stream:
            stream.write(json.dumps(record) + "\n")
        torch.save(
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(),
                "state_json": json.dumps(state),
            },
            out / _RESUME_FILE,
        )
        _plot_curves(out)
        if on_epoch is not None:
            on_epoch(record)
        log.info("epoch %s", record)
        if state["stale"] >= config.patience_epochs:
            stopped_because = f"no improvement in {config.patience_epochs} validations"
            break
        if config.max_wall_s and state["wall_s"] >= config.max_wall_s:
            stopped_because = f"wall-clock limit of {config.max_wall_s:.0f} s reached"
            break
    return state, stopped_because


def _cut_batches(pool: list[_Sample], config: TrainConfig, epoch: int) -> Iterator[_Batch]:
    """The epoch's batches in order, cut a few steps ahead by ``config.data_threads`` threads
    (numpy's copies release the GIL). Batch ``i`` always comes from the seed ``(seed, epoch, i)``."""
    sampler = _PatchSampler(config)

    def cut(step: int) -> _Batch:
        return sampler.cut(pool, np.random.default_rng([config.seed, epoch, step]))

    lookahead = 2 * config.data_threads
    with ThreadPoolExecutor(config.data_threads) as cutters:
        ahead = deque(cutters.submit(cut, i) for i in range(min(lookahead, config.steps_per_epoch)))
        for step in range(config.steps_per_epoch):
            batch = ahead.popleft().result()
            if step + lookahead < config.steps_per_epoch:
                ahead.append(cutters.submit(cut, step + lookahead))
            yield batch


def _save_best(
    ema: torch.nn.Module,
    model_config: ModelConfig,
    config: TrainConfig,
    out: Path,
    epoch: int,
    score: Score,
    init_version: str | None,
) -> None:
    recipe = config.model_dump(mode="json", exclude={"output_dir", "device", "threads"})
    if init_version:
        recipe["init_version"] = init_version  # the model this run started from
    saved_config = model_config.model_copy(
        update={
            "training": {
                "recipe": recipe,
                "epoch": epoch,
                "seed": config.seed,
                "target_radius_fraction": config.target_radius_fraction,
            },
            "scores": {"validation": score.as_dict()},
        }
    )
    tmp = out / "best.tmp"
    save_checkpoint(ema, saved_config, tmp)
    final = out / "best"
    if final.exists():
        for child in final.iterdir():
            child.unlink()
        final.rmdir()
    tmp.rename(final)


def _plot_curves(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot([r["epoch"] for r in records], [r["loss"] for r in records])
    left.set(xlabel="epoch", ylabel="training loss", yscale="log")
    scored = [r for r in records if "f_beta" in r]
    for name in (p.name for p in PARTICLE_CLASSES):
        right.plot([r["epoch"] for r in scored], [r["f_beta"][name] for r in scored], label=name)
    right.plot([r["epoch"] for r in scored], [r["weighted_f_beta"] for r in scored], "k--", label="weighted")
    right.set(xlabel="epoch", ylabel="validation F-beta (beta=4)", ylim=(0, 1))
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=80)
    plt.close(fig)


def tune_checkpoint(
    checkpoint_dir: str | Path,
    settings: PhantomSettings,
    *,
    count: int = 2,
    seed: int = 2_000_000,
    window_vox: WindowVox = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Tune a checkpoint's localization on ``count`` generated tomograms and store the result in its config.

    The weights are untouched, so the version stays the same; ``config.json`` gains
    ``training.localize`` (per-class thresholds, min_volume_fraction, the tuning score and data).
    """
    from .model import load_checkpoint
    from .model_config import CONFIG_FILE

    model, config = load_checkpoint(checkpoint_dir, device=_device(device))
    phantoms = [make_phantom(seed + i, settings) for i in range(count)]
    fraction = float(config.training.get("target_radius_fraction", DEFAULT_TARGET_RADIUS_FRACTION))
    chosen, score = tune_localization(
        model, phantoms, window_vox=window_vox, target_radius_fraction=fraction, device=_device(device)
    )
    localize = {
        **chosen,
        "tuned_weighted_f_beta": score.weighted_f_beta,
        "tuned_on": {
            "count": count,
            "seed": seed,
            "shape_zyx": list(settings.shape_zyx),
            "settings": settings.model_dump(mode="json"),
        },
    }
    updated = config.model_copy(update={"training": {**config.training, "localize": localize}})
    (Path(checkpoint_dir) / CONFIG_FILE).write_text(updated.model_dump_json(indent=2))
    return localize
