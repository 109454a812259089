"""From a tomogram URI to picks: read, segment, localize, build the picks document.

:class:`Picker` holds one loaded model so that a CLI call or a worker process pays the model
load once and then serves many tomograms.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from .device import select_device
from .export import picks_document_from_voxels
from .inference import SegmentationResult, segment_tomogram
from .io import LoadedTomogram, load_tomogram, match_spectrum
from .localize import (
    DEFAULT_MIN_VOLUME_FRACTION,
    DEFAULT_TARGET_RADIUS_FRACTION,
    DEFAULT_THRESHOLD,
    ClassPicks,
    localize_particles,
)
from .model import for_inference, load_checkpoint
from .model_config import check_model_classes, check_spectrum_matching, default_checkpoint_dir
from .options import MIN_AXIS_VOX, PredictOptions
from .particles import ParticleClass, resolve_particles
from .picks import PicksDocument
from .preview import PreviewProjection, project_volume
from .stage import Stage

__all__ = ["Stage", "PredictOptions", "Picker", "InferredTomogram", "run_name_from_uri"]


def run_name_from_uri(uri: str) -> str:
    """Short tomogram name: the last path part of ``uri`` without .zarr/.mrc/.rec/.map, or its copick run.

    In a copick layout, ``.../ExperimentRuns/TS_001/VoxelSpacing10.000/wbp.zarr``, the name is the run
    (``TS_001``), not the tomogram type (``wbp``), so picks pair with the run's truth.

    Args:
        uri: local path or URI of the tomogram (a query is ignored).

    Returns:
        The name; ``tomogram`` when nothing is left.
    """
    parts = uri.rstrip("/").split("?")[0].split("/")
    if len(parts) >= 3 and re.fullmatch(r"VoxelSpacing\d+(\.\d+)?", parts[-2]) and parts[-3]:
        return parts[-3]
    return re.sub(r"\.(ome\.zarr|zarr|mrc|rec|map)$", "", parts[-1], flags=re.IGNORECASE) or "tomogram"


@dataclass
class InferredTomogram:
    """A tomogram read and segmented, waiting to be localized (:meth:`Picker.infer`, then
    :meth:`Picker.picks_from`). Its volume is dropped; the maps take 3 B/voxel.

    Attributes:
        uri: the tomogram's URI, as given to :meth:`Picker.infer`.
        tomogram: the tomogram read, without its volume.
        segmentation: its label map (uint8) and confidence map (float16), ``(Z, Y, X)``.
        timings_s: seconds spent reading (``read``) and segmenting (``inference``).
        elapsed_s: seconds from the start of :meth:`Picker.infer` to its end.
    """

    uri: str
    tomogram: LoadedTomogram
    segmentation: SegmentationResult
    timings_s: dict[str, float]
    elapsed_s: float


class Picker:
    """A loaded model ready to pick particles in tomograms.

    Args:
        checkpoint: checkpoint directory (or Octopi ``.pth``); default the shipped model.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``…; default a GPU when visible.
        channels_last: keep the network's weights and each batch of windows channels-last-3d (NDHWC),
            the layout tensor-core convolutions prefer. Default False; ``bench/bench_gpu.py`` measures it.
        compile_mode: ``torch.compile`` the network for the fixed window shape with this mode
            (``"default"``, ``"max-autotune"``, ``"reduce-overhead"`` = CUDA graphs); each new batch
            shape compiles once, on first use (tens of seconds). Default None: not compiled.
        amp: run the network in mixed precision where the device does it natively: bf16 on CUDA
            (fp16 on GPUs without bf16) and on CPUs with AVX512-BF16 or AMX, where it is about twice
            as fast as fp32. False: fp32 everywhere. See ``octopi_core.inference.autocast_dtype``.

    Raises:
        CheckpointError: when the checkpoint cannot be loaded.
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        *,
        device: str | None = None,
        channels_last: bool = False,
        compile_mode: str | None = None,
        amp: bool = True,
    ) -> None:
        self.device = select_device(device)
        self.checkpoint = Path(checkpoint) if checkpoint else default_checkpoint_dir()
        model, self.config = load_checkpoint(self.checkpoint, device=self.device)
        self.model: torch.nn.Module = for_inference(model)
        if self.device.type == "cuda":  # a few fixed window shapes: cuDNN's autotuning pays once per shape
            torch.backends.cudnn.benchmark = True
        self.channels_last = channels_last
        self.amp = amp
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        if compile_mode is not None:
            self.model = cast(torch.nn.Module, torch.compile(self.model, mode=compile_mode, dynamic=False))

    @property
    def version(self) -> str:
        return self.config.version

    def localize_settings(self, threshold: float | None = None) -> dict[str, Any]:
        """Localization settings for this model: those tuned after training, else the defaults.

        ``threshold`` overrides the tuned per-class thresholds with one value for every class.
        """
        tuned = self.config.training.get("localize", {})
        if threshold is None:
            threshold = tuned.get("thresholds") or tuned.get("threshold", DEFAULT_THRESHOLD)
        return {
            "target_radius_fraction": float(
                self.config.training.get("target_radius_fraction", DEFAULT_TARGET_RADIUS_FRACTION)
            ),
            "threshold": threshold,
            "min_volume_fraction": float(tuned.get("min_volume_fraction", DEFAULT_MIN_VOLUME_FRACTION)),
        }

    def particles(self, options: PredictOptions = PredictOptions()) -> list[ParticleClass]:
        """The classes ``options`` asks for, after checking that this model picks each one.

        Args:
            options: ``options.classes`` names the classes; None = every class the model picks.

        Returns:
            The particle classes, in the canonical order.

        Raises:
            UnknownParticleClassError: for a class the model does not pick (a ValueError).
            ValueError: for a name that is no particle class.
        """
        check_model_classes(self.config, options.classes)
        return [p for p in resolve_particles(options.classes) if p.name in self.config.classes]

    def read(
        self,
        uri: str,
        options: PredictOptions = PredictOptions(),
        *,
        should_cancel: Callable[[], bool] | None = None,
    ) -> LoadedTomogram:
        """The fetching stage: read ``uri`` whole, resampled to this model's voxel size and normalised
        (and its spectrum matched to the model's training data, with ``options.match_spectrum``).

        Args:
            uri: as in :meth:`predict`.
            options: ``voxel_size_a``, ``match_spectrum``, ``storage_options`` and ``limits`` apply.
            should_cancel: polled between z-slabs; True stops with InferenceCancelledError.

        Returns:
            The tomogram; ``volume`` is ``(Z, Y, X)`` float32, normalised.

        Raises:
            TomogramError, InferenceCancelledError, TomogramTooLargeError, TooManyChunksError: as in
                :meth:`predict`.
            NoInputSpectrumError: ``match_spectrum`` with a model that has no input spectrum.
        """
        check_spectrum_matching(self.config, options.match_spectrum)
        tomogram = load_tomogram(
            uri,
            target_voxel_size_a=self.config.voxel_size_a,
            voxel_size_a=options.voxel_size_a,
            min_shape_zyx=(MIN_AXIS_VOX,) * 3,
            storage_options=options.storage_options,
            limits=options.limits,
            should_cancel=should_cancel,
        )
        if options.match_spectrum:
            assert self.config.input_spectrum is not None  # checked above
            tomogram.volume = match_spectrum(
                tomogram.volume, self.config.input_spectrum, name=f"tomogram {uri}"
            )
        return tomogram

    def segment(
        self,
        volume: np.ndarray,
        options: PredictOptions = PredictOptions(),
        *,
        progress: Callable[[float], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> SegmentationResult:
        """The inferring stage: segment ``volume`` in sliding windows on this model's device.

        Args:
            volume: ``(Z, Y, X)`` float32, normalised, at this model's voxel size (from :meth:`read`).
            options: ``window_vox``, ``overlap``, ``batch_size`` and ``tta`` apply.
            progress: called with the fraction of windows done (0..1).
            should_cancel: polled between batches of windows; True stops with InferenceCancelledError.

        Returns:
            The label and confidence maps, ``(Z, Y, X)`` like ``volume``.

        Raises:
            InferenceCancelledError: when cancelled.
            TomogramTooSmallError: for an axis under ``MIN_AXIS_VOX`` voxels.
        """
        return segment_tomogram(
            self.model,
            volume,
            num_classes=self.config.out_channels,
            window_vox=options.window_vox,
            overlap=options.overlap,
            batch_size=options.batch_size,
            device=self.device,
            tta=options.tta,
            amp=self.amp,
            channels_last=self.channels_last,
            progress=progress,
            should_cancel=should_cancel,
        )

    def localize(
        self,
        tomogram: LoadedTomogram,
        segmentation: SegmentationResult,
        options: PredictOptions = PredictOptions(),
        *,
        should_cancel: Callable[[], bool] | None = None,
    ) -> dict[str, ClassPicks]:
        """The localizing stage: particle centres in the label map, voxels (zyx) of ``tomogram``'s volume.

        Args:
            tomogram: the tomogram read by :meth:`read` (its volume may already be dropped).
            segmentation: its segmentation from :meth:`segment`.
            options: ``classes``, ``threshold`` and ``min_score`` apply.
            should_cancel: polled between confident regions; True stops with InferenceCancelledError.

        Returns:
            The centres of each requested class.

        Raises:
            UnknownParticleClassError, ValueError: as :meth:`particles`.
            InferenceCancelledError: when ``should_cancel`` said so.
        """
        return localize_particles(
            segmentation.labels,
            segmentation.confidence,
            voxel_size_zyx_a=tomogram.voxel_size_zyx_a,
            particles=self.particles(options),
            min_score=options.min_score,
            should_cancel=should_cancel,
            **self.localize_settings(options.threshold),
        )

    def document(
        self,
        found: dict[str, ClassPicks],
        tomogram: LoadedTomogram,
        *,
        run_name: str,
        timings_s: dict[str, float],
    ) -> PicksDocument:
        """The picks document of ``found`` (xyz in Å of the original tomogram), from :meth:`localize`.

        Args:
            found: per-class centres, voxels (zyx) of ``tomogram``'s volume.
            tomogram: the tomogram they were found in.
            run_name: the tomogram's short name in the document.
            timings_s: seconds per stage, rounded to 0.1 ms in the document.

        Returns:
            The document.
        """
        return picks_document_from_voxels(
            found,
            voxel_size_zyx_a=tomogram.voxel_size_zyx_a,
            origin_zyx_a=tomogram.origin_zyx_a,
            tomogram_uri=tomogram.uri,
            run_name=run_name,
            source_voxel_size_zyx_a=tomogram.source_voxel_size_zyx_a,
            source_shape_zyx=tomogram.source_shape_zyx,
            model_version=self.version,
            timings_s={k: round(v, 4) for k, v in timings_s.items()},
        )

    def predict(
        self,
        uri: str,
        options: PredictOptions = PredictOptions(),
        *,
        on_stage: Callable[[Stage], None] | None = None,
        progress: Callable[[float], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        on_preview: Callable[[PreviewProjection], None] | None = None,
    ) -> PicksDocument:
        """Pick particles in the tomogram at ``uri``: :meth:`read`, :meth:`segment`, :meth:`localize`.

        Args:
            uri: local path, ``file://``, ``http(s)://`` or ``s3://`` URI of OME-Zarr or MRC.
            options: see :class:`PredictOptions`; ``options.run_name`` names the run, else the URI does.
            on_stage: called when a new :class:`Stage` starts.
            progress: called with the inference fraction done (0..1).
            should_cancel: polled between z-slabs while reading, between batches of windows and between
                confident regions while localizing; True stops with InferenceCancelledError.
            on_preview: called once with a small projection of the volume for a preview figure
                (:func:`octopi_core.preview.project_volume`), while the volume is in memory.

        Returns:
            The picks, xyz in Å of the original tomogram, with per-stage timings.

        Raises:
            TomogramError: subclasses naming what is wrong with the tomogram.
            InferenceCancelledError: when cancelled.
            TomogramTooLargeError, TooManyChunksError: over ``options.limits``, before any voxel is read.
            UnknownParticleClassError: for a class the model does not pick (a ValueError).
            NoInputSpectrumError: ``match_spectrum`` with a model that has no input spectrum (a ValueError).
            ValueError: for a name that is no particle class.
        """
        inferred = self.infer(
            uri,
            options,
            on_stage=on_stage,
            progress=progress,
            should_cancel=should_cancel,
            on_preview=on_preview,
        )
        return self.picks_from(inferred, options, on_stage=on_stage, should_cancel=should_cancel)

    def infer(
        self,
        uri: str,
        options: PredictOptions = PredictOptions(),
        *,
        on_stage: Callable[[Stage], None] | None = None,
        progress: Callable[[float], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        on_preview: Callable[[PreviewProjection], None] | None = None,
    ) -> InferredTomogram:
        """The first half of :meth:`predict`: :meth:`read` and :meth:`segment` (the device's part).

        Args and Raises: as :meth:`predict` (localization's errors come from :meth:`picks_from`).

        Returns:
            The segmented tomogram, for :meth:`picks_from`.
        """
        self.particles(options)
        timings: dict[str, float] = {}
        started = time.perf_counter()

        if on_stage:
            on_stage(Stage.FETCHING)
        tomogram = self.read(uri, options, should_cancel=should_cancel)
        timings["read"] = time.perf_counter() - started
        if on_preview:  # now or never: the volume is dropped after inference
            on_preview(
                project_volume(
                    tomogram.volume,
                    voxel_size_zyx_a=tomogram.voxel_size_zyx_a,
                    origin_zyx_a=tomogram.origin_zyx_a,
                )
            )

        if on_stage:
            on_stage(Stage.INFERRING)
        mark = time.perf_counter()
        segmentation = self.segment(tomogram.volume, options, progress=progress, should_cancel=should_cancel)
        del tomogram.volume
        timings["inference"] = time.perf_counter() - mark
        return InferredTomogram(uri, tomogram, segmentation, timings, time.perf_counter() - started)

    def picks_from(
        self,
        inferred: InferredTomogram,
        options: PredictOptions = PredictOptions(),
        *,
        on_stage: Callable[[Stage], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> PicksDocument:
        """The second half of :meth:`predict` (the CPU's part): :meth:`localize` and :meth:`document`.

        Args:
            inferred: from :meth:`infer`, with the same ``options``.
            options: ``classes``, ``threshold``, ``min_score`` and ``run_name`` apply.
            on_stage: called with :attr:`Stage.LOCALIZING`.
            should_cancel: as :meth:`localize`.

        Returns:
            The picks; ``timings_s["total"]`` counts the time in :meth:`infer` and here, not a wait between.

        Raises:
            UnknownParticleClassError, ValueError: as :meth:`particles`.
            InferenceCancelledError: when ``should_cancel`` said so.
        """
        if on_stage:
            on_stage(Stage.LOCALIZING)
        timings = dict(inferred.timings_s)
        mark = time.perf_counter()
        found = self.localize(inferred.tomogram, inferred.segmentation, options, should_cancel=should_cancel)
        timings["localize"] = time.perf_counter() - mark
        timings["total"] = inferred.elapsed_s + timings["localize"]
        run_name = options.run_name or run_name_from_uri(inferred.uri)
        return self.document(found, inferred.tomogram, run_name=run_name, timings_s=timings)
