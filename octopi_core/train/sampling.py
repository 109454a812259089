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
from dataclasses import dataclass

import numpy as np
import torch

from ..exceptions import TrainingDataError
from ..export.coordinates import xyz_a_to_zyx_vox
from ..io import normalize_volume
from ..particles import PARTICLE_CLASSES
from ..synth import Phantom, PhantomSettings, make_phantom
from .config import TrainConfig
from .targets import paint_targets

__all__ = ["Sample", "Batch", "PatchSampler", "make_sample", "TomogramMaker", "cut_batches"]


class Sample:
    """One pool tomogram: normalised volume, target labels, particle and clutter centres (voxels)."""

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


@dataclass
class Batch:
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


class PatchSampler:
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

    def cut(self, pool: list[Sample], rng: np.random.Generator) -> Batch:
        """Cut one batch of ``config.batch_size`` augmented patches.

        Args:
            pool: the tomograms to cut from.
            rng: the batch's own random generator.

        Returns:
            The batch: ``(B, 1, P, P, P)`` float32 images, ``(B, P, P, P)`` uint8 targets, ``(B,)`` noise levels.

        Raises:
            TrainingDataError: when no tomogram of ``pool`` holds a labelled particle.
        """
        images, targets = zip(*(self._patch(pool, rng) for _ in range(self.config.batch_size)))
        noise_std = rng.uniform(*self.config.noise_std, len(targets)).astype(np.float32)
        return Batch(np.stack(images)[:, None], np.stack(targets), noise_std)

    def _patch(self, pool: list[Sample], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
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
        return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(target)


def _pad_to(array: np.ndarray, size: int) -> np.ndarray:
    pad = [(0, size - n) for n in array.shape]
    return np.pad(array, pad) if any(p[1] for p in pad) else array


def make_sample(seed: int, settings: PhantomSettings, target_radius_fraction: float) -> Sample:
    """Generate the tomogram of ``seed`` and prepare it for the pool (run in data-worker processes too).

    Args:
        seed: the generator seed.
        settings: the generator settings.
        target_radius_fraction: target sphere radius as a fraction of each class radius.

    Returns:
        The pool sample.
    """
    return Sample(make_phantom(seed, settings), target_radius_fraction)


class TomogramMaker:
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


def cut_batches(pool: list[Sample], config: TrainConfig, epoch: int) -> Iterator[Batch]:
    """The epoch's batches in order, cut a few steps ahead by ``config.data_threads`` threads
    (numpy's copies release the GIL). Batch ``i`` always comes from the seed ``(seed, epoch, i)``.

    Args:
        pool: the tomograms to cut from.
        config: the training config (seed, batch and patch sizes, sampling fractions, steps, threads).
        epoch: the epoch, part of every batch's seed.

    Returns:
        An iterator over ``config.steps_per_epoch`` batches.
    """
    sampler = PatchSampler(config)

    def cut(step: int) -> Batch:
        return sampler.cut(pool, np.random.default_rng([config.seed, epoch, step]))

    lookahead = 2 * config.data_threads
    with ThreadPoolExecutor(config.data_threads) as cutters:
        ahead = deque(cutters.submit(cut, i) for i in range(min(lookahead, config.steps_per_epoch)))
        for step in range(config.steps_per_epoch):
            batch = ahead.popleft().result()
            if step + lookahead < config.steps_per_epoch:
                ahead.append(cutters.submit(cut, step + lookahead))
            yield batch
