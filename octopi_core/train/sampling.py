"""Training data: the tomogram pool's samples, augmented patches cut from them, and batches in order.

Tomograms come from :mod:`octopi_core.synth`, made in the training process or in spawned worker
processes (which import :func:`make_sample` by its module path). Every batch draws from its own seeded
random generator, so a run is reproducible whatever the number of workers and cutting threads.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from ..exceptions import TrainingDataError
from ..export.coordinates import xyz_a_to_zyx_vox
from ..io import normalize_volume
from ..particles import PARTICLE_CLASSES
from ..synth import Phantom, PhantomSettings, make_phantom, settings_for_seed
from .config import TrainConfig
from .targets import paint_targets

__all__ = ["Sample", "Batch", "PatchSampler", "TrainingData", "make_sample", "TomogramMaker", "cut_batches"]


class Sample:
    """One pool tomogram: normalised volume, target labels, particle and clutter centres (voxels).

    ``labelled`` is None when the targets label every class (generated tomograms), else a
    ``(C,)`` bool array (background first) of the classes its picks cover: see
    :func:`~octopi_core.loss.focal_tversky_loss`.
    """

    labelled: np.ndarray | None = None

    def __init__(self, phantom: Phantom, target_radius_fraction: float) -> None:
        self.volume = normalize_volume(phantom.volume.astype(np.float32, copy=False))
        self.labels = paint_targets(
            self.volume.shape, phantom.truth_xyz_a, phantom.voxel_size_zyx_a, target_radius_fraction
        )
        vs = np.asarray(phantom.voxel_size_zyx_a)
        self.centres_vox = {
            name: xyz_a_to_zyx_vox(pts, vs) for name, pts in phantom.truth_xyz_a.items() if len(pts)
        }
        self.clutter_vox = xyz_a_to_zyx_vox(phantom.clutter_xyz_a, vs)

    @classmethod
    def from_arrays(
        cls,
        volume: np.ndarray,
        labels: np.ndarray,
        centres_vox: dict[str, np.ndarray],
        labelled: np.ndarray,
    ) -> Sample:
        """A sample of labelled data that are not generated (fine-tuning on the user's tomograms).

        Args:
            volume: ``(Z, Y, X)`` float32, normalised.
            labels: ``(Z, Y, X)`` uint8 targets, as :func:`~octopi_core.train.paint_targets` paints them.
            centres_vox: class name -> ``(N, 3)`` particle centres, zyx voxels (classes with picks only).
            labelled: ``(C,)`` bool, background first: the classes the picks cover.

        Returns:
            The sample (no clutter centres).
        """
        sample = cls.__new__(cls)
        sample.volume, sample.labels, sample.centres_vox = volume, labels, centres_vox
        sample.clutter_vox = np.zeros((0, 3))
        sample.labelled = np.asarray(labelled, bool)
        return sample


@dataclass
class Batch:
    """Training patches cut on the CPU: images without their Gaussian noise, targets, noise levels."""

    images: np.ndarray  # (B, 1, P, P, P) float32
    targets: np.ndarray  # (B, P, P, P) uint8
    noise_std: np.ndarray  # (B,) float32
    labelled: np.ndarray | None = None  # (B, C) bool, the classes each patch's targets cover; None = all

    def on(self, device: torch.device, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch on ``device``, noised there: on a GPU the CPU would otherwise be the bottleneck."""
        images = torch.from_numpy(self.images).to(device, non_blocking=True)
        noise = torch.randn(images.shape, generator=generator, device=device)
        images = images + noise * torch.from_numpy(self.noise_std).to(device).view(-1, 1, 1, 1, 1)
        return images, torch.from_numpy(self.targets).to(device, non_blocking=True).long()

    def labelled_on(self, device: torch.device) -> torch.Tensor | None:
        """The ``(B, C)`` bool mask of labelled classes on ``device``; None when every class is labelled."""
        return None if self.labelled is None else torch.from_numpy(self.labelled).to(device)


class PatchSampler:
    """Cuts augmented training patches centred (with jitter) on particles of a chosen class, on
    clutter proteins (hard negatives) or anywhere (background). Each batch draws from its own
    random generator, so batches can be cut in any order, by any number of threads.

    With a ``synthetic`` pool given to :meth:`cut`, a ``synthetic_fraction`` of the patches comes from it.
    """

    def __init__(self, config: TrainConfig, synthetic_fraction: float = 0.0) -> None:
        if not 0.0 <= synthetic_fraction <= 1.0:
            raise ValueError(f"synthetic_fraction must be in [0, 1], got {synthetic_fraction!r}")
        self.config, self.synthetic_fraction = config, synthetic_fraction
        names = [p.name for p in PARTICLE_CLASSES]
        weights = np.array([config.class_sampling_weights.get(n, 0.0) for n in names], float)
        if weights.sum() <= 0:
            raise ValueError("class_sampling_weights must give some class a positive weight")
        self.class_names, self.class_p = names, weights / weights.sum()

    def cut(
        self, pool: list[Sample], rng: np.random.Generator, synthetic: list[Sample] | None = None
    ) -> Batch:
        """Cut one batch of ``config.batch_size`` augmented patches (or, with ``config.patch_vox_choices``,
        of one drawn size, as many as hold about the same voxels).

        Args:
            pool: the tomograms to cut from.
            rng: the batch's own random generator.
            synthetic: generated tomograms mixed in at ``synthetic_fraction`` of the patches; default None.

        Returns:
            The batch: ``(B, 1, P, P, P)`` float32 images, ``(B, P, P, P)`` uint8 targets, ``(B,)`` noise
            levels and, when some patch comes from partially labelled data, the ``(B, C)`` labelled mask.

        Raises:
            TrainingDataError: when no tomogram of ``pool`` holds a labelled particle.
        """
        size, count = self.config.patch_vox, self.config.batch_size
        if self.config.patch_vox_choices:  # drawn only then, so other runs cut the patches they always did
            size = int(rng.choice(self.config.patch_vox_choices))
            count = max(1, round(count * (self.config.patch_vox / size) ** 3))
        images, targets, labelled = zip(*(self._patch(pool, rng, synthetic, size) for _ in range(count)))
        noise_std = rng.uniform(*self.config.noise_std, len(targets)).astype(np.float32)
        mask = None
        if any(m is not None for m in labelled):
            every = np.ones(len(PARTICLE_CLASSES) + 1, bool)
            mask = np.stack([every if m is None else m for m in labelled])
        return Batch(np.stack(images)[:, None], np.stack(targets), noise_std, mask)

    def _patch(
        self, pool: list[Sample], rng: np.random.Generator, synthetic: list[Sample] | None, size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        # Drawn only when mixing, so that runs without it cut exactly the patches they always did.
        if synthetic and rng.random() < self.synthetic_fraction:
            pool = synthetic
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
                sample.centres_vox[name]
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
        return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(target), sample.labelled


def _pad_to(array: np.ndarray, size: int) -> np.ndarray:
    pad = [(0, size - n) for n in array.shape]
    return np.pad(array, pad) if any(p[1] for p in pad) else array


def make_sample(
    seed: int, settings: PhantomSettings, target_radius_fraction: float, families: tuple[str, ...] = ()
) -> Sample:
    """Generate the tomogram of ``seed`` and prepare it for the pool (run in data-worker processes too).

    Args:
        seed: the generator seed.
        settings: the generator settings.
        target_radius_fraction: target sphere radius as a fraction of each class radius.
        families: generator families, one drawn for the seed (:func:`~octopi_core.synth.settings_for_seed`);
            default none: ``settings`` as they are.

    Returns:
        The pool sample.
    """
    return Sample(make_phantom(seed, settings_for_seed(seed, settings, families)), target_radius_fraction)


class TomogramMaker:
    """Makes training tomograms, in worker processes when the config asks for them.

    :meth:`submit` starts making the tomograms of some seeds and returns a callable that hands
    them over in seed order: with workers they are made while the epoch trains, otherwise when
    they are asked for. Either way the same seeds go to the same pool slots, so a run is
    reproducible whatever the worker count.
    """

    def __init__(self, config: TrainConfig) -> None:
        self._args = (config.train_settings, config.target_radius_fraction, tuple(config.train_families))
        # spawn, not fork: the training process may hold CUDA state and torch threads.
        self._executor = (
            ProcessPoolExecutor(config.data_workers, mp_context=multiprocessing.get_context("spawn"))
            if config.data_workers
            else None
        )

    def submit(self, seeds: list[int]) -> Callable[[], list[Sample]]:
        """Start making the tomograms of ``seeds``; the returned callable hands them over in seed order."""
        if self._executor is None:
            return lambda: [make_sample(seed, *self._args) for seed in seeds]
        futures: list[Future] = [self._executor.submit(make_sample, seed, *self._args) for seed in seeds]
        return lambda: [future.result() for future in futures]

    def close(self) -> None:
        """Stop the worker processes, dropping tomograms not yet made."""
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)


def cut_batches(
    pool: list[Sample],
    config: TrainConfig,
    epoch: int,
    *,
    synthetic: list[Sample] | None = None,
    synthetic_fraction: float = 0.0,
) -> Iterator[Batch]:
    """The epoch's batches in order, cut a few steps ahead by ``config.data_threads`` threads
    (numpy's copies release the GIL). Batch ``i`` always comes from the seed ``(seed, epoch, i)``.

    Args:
        pool: the tomograms to cut from.
        config: the training config (seed, batch and patch sizes, sampling fractions, steps, threads).
        epoch: the epoch, part of every batch's seed.
        synthetic: generated tomograms to mix in (fine-tuning); default None.
        synthetic_fraction: the share of patches cut from ``synthetic``, in [0, 1]; default 0.

    Returns:
        An iterator over ``config.steps_per_epoch`` batches.
    """
    sampler = PatchSampler(config, synthetic_fraction)

    def cut(step: int) -> Batch:
        return sampler.cut(pool, np.random.default_rng([config.seed, epoch, step]), synthetic)

    lookahead = 2 * config.data_threads
    with ThreadPoolExecutor(config.data_threads) as cutters:
        ahead = deque(cutters.submit(cut, i) for i in range(min(lookahead, config.steps_per_epoch)))
        for step in range(config.steps_per_epoch):
            batch = ahead.popleft().result()
            if step + lookahead < config.steps_per_epoch:
                ahead.append(cutters.submit(cut, step + lookahead))
            yield batch


@dataclass
class TrainingData:
    """Labelled tomograms that a run trains on in place of generated ones (fine-tuning).

    Attributes:
        pool: the training samples (only their training regions), kept for the whole run.
        validation: held-out volumes with ``volume``, ``voxel_size_zyx_a`` and ``truth_document(run_name)``
            whose picks' keys are the classes they label (:class:`~octopi_core.train.tuning.LabelledVolume`).
        synthetic_fraction: share of patches cut from generated tomograms (``config.train_settings``,
            renewed as in normal training), so that classes the user did not label are not forgotten.
        provenance: JSON-safe description (source, runs, users, split), stored in the checkpoint's
            ``training.data``.
        start_thresholds: the starting model's tuned pick thresholds, per class: what a class keeps
            when the held-out data hold too few of its particles to re-tune it
            (``TrainConfig.min_tuning_particles``).
        validation_pass_s: how long one pass over ``validation`` took (scoring the starting model), s;
            the loop budgets validation and its time reserve with it from the first epoch. 0 = unknown.
    """

    pool: list[Sample]
    validation: list
    synthetic_fraction: float = 0.0
    provenance: dict = field(default_factory=dict)
    start_thresholds: dict = field(default_factory=dict)
    validation_pass_s: float = 0.0
