"""Picking many tomograms with one loaded model, reading the next one while the current one is inferred.

:func:`predict_batch` runs the stages of :class:`~octopi_core.pipeline.Picker` as a pipeline over three
threads, so that the device is not idle while the CPU reads, normalises, localizes and writes::

    reader thread     Picker.read k+1 (and up to ``read_ahead`` tomograms ahead)
    calling thread    Picker.segment k, on the picker's device
    finisher thread   Picker.localize + Picker.document + ``write`` of k-1

Memory: at most ``read_ahead`` normalised volumes (``(Z, Y, X)`` float32, 4 B/voxel) are read or waiting,
plus the one being segmented, plus the label and confidence maps (3 B/voxel) of at most two tomograms:
the one being segmented and the previous one being localized. The calling thread waits for the
finisher before it hands over the next segmentation, so no queue grows without bound.

A tomogram that fails (unreadable, too small, a failed write…) becomes a :class:`BatchResult` naming it
and its error, and the batch goes on. Cancellation (``should_cancel``, or closing the iterator) stops
the reader between z-slabs and the inference between batches of windows; the tomograms already inferred
are still localized, written and yielded, then :class:`InferenceCancelledError` is raised.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from .exceptions import InferenceCancelledError
from .options import PredictOptions
from .preview import PreviewProjection, project_volume
from .stage import Stage

if TYPE_CHECKING:
    from .inference import SegmentationResult
    from .io import LoadedTomogram
    from .picks import PicksDocument
    from .pipeline import Picker

__all__ = ["BatchItem", "BatchResult", "Step", "predict_batch", "DEFAULT_READ_AHEAD"]

DEFAULT_READ_AHEAD = 1  # tomograms read and normalised ahead of the one being segmented


class Step(str, Enum):
    """The step of one tomogram's prediction that failed (the names of its ``timings_s`` keys).

    - ``read``: reading and normalising (:meth:`Picker.read`)
    - ``inference``: sliding-window segmentation (:meth:`Picker.segment`)
    - ``localize``: particle centres and the picks document (:meth:`Picker.localize`)
    - ``write``: the caller's ``write`` function
    """

    READ = "read"
    INFERENCE = "inference"
    LOCALIZE = "localize"
    WRITE = "write"


@dataclass(frozen=True)
class BatchItem:
    """One tomogram of a batch.

    Attributes:
        uri: local path, ``file://``, ``http(s)://`` or ``s3://`` URI of OME-Zarr or MRC.
        run_name: the name its picks document carries (a copick run, an output file stem).
    """

    uri: str
    run_name: str

    @classmethod
    def from_uri(cls, uri: str) -> BatchItem:
        """The item for ``uri``, named by :func:`~octopi_core.pipeline.run_name_from_uri`."""
        from .pipeline import run_name_from_uri

        return cls(uri, run_name_from_uri(uri))


@dataclass
class BatchResult:
    """What became of one tomogram of a batch.

    Attributes:
        index: its position in the batch, from 0.
        item: the tomogram.
        document: its picks (xyz, Å), None when it failed.
        written: what ``write`` returned for it (e.g. the paths written), None without ``write``.
        error: why it failed, None when it did not.
        failed_step: the :class:`Step` that failed, None when none did.
        preview: a small projection of its volume for a preview figure (``with_preview``), else None.
    """

    index: int
    item: BatchItem
    document: PicksDocument | None = None
    written: Any = None
    error: Exception | None = None
    failed_step: Step | None = None
    preview: PreviewProjection | None = None

    @property
    def ok(self) -> bool:
        """True when the tomogram was picked (and written)."""
        return self.error is None

    def describe_error(self) -> str:
        """One line naming the tomogram, the failed step and the error; empty when it did not fail."""
        if self.error is None:
            return ""
        step = self.failed_step.value if self.failed_step else "?"
        return f"{self.item.run_name} ({self.item.uri}): {step} failed: {type(self.error).__name__}: {self.error}"


@dataclass
class _Loaded:
    # One reader output: a tomogram, or the error that stopped its reading.
    index: int
    item: BatchItem
    tomogram: LoadedTomogram | None = None
    read_s: float = 0.0
    error: Exception | None = None
    preview: PreviewProjection | None = None


@dataclass
class _ReaderState:
    stop: threading.Event = field(default_factory=threading.Event)
    failure: BaseException | None = None  # the items iterable itself failed


def predict_batch(
    picker: Picker,
    items: Iterable[BatchItem],
    options: PredictOptions = PredictOptions(),
    *,
    write: Callable[[BatchItem, PicksDocument], Any] | None = None,
    read_ahead: int = DEFAULT_READ_AHEAD,
    on_stage: Callable[[int, Stage], None] | None = None,
    progress: Callable[[int, float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    with_preview: bool = False,
) -> Iterator[BatchResult]:
    """Pick particles in each tomogram of ``items`` with one loaded model, stages overlapped.

    Args:
        picker: the loaded model; its device runs the inference.
        items: the tomograms, consumed lazily by the reader thread (a generator may feed it).
        options: the same :class:`PredictOptions` for every tomogram.
        write: called on the finisher thread with each tomogram's item and document, e.g. to write a file;
            what it returns lands in :attr:`BatchResult.written`, what it raises fails that tomogram at
            step ``write``. Default None: nothing written.
        read_ahead: tomograms read and normalised ahead of the one being segmented, at least 1
            (default 1): the number of loaded volumes in memory is at most ``1 + read_ahead``.
        on_stage: called with (index, :class:`Stage`) when a tomogram enters a stage, from that stage's
            thread.
        progress: called with (index, fraction of windows done, 0..1) from the calling thread.
        should_cancel: polled between z-slabs while reading, between batches of windows and between
            tomograms; True stops the batch.
        with_preview: keep a small projection of each volume (:func:`octopi_core.preview.project_volume`,
            on the reader thread while the volume is in memory) in :attr:`BatchResult.preview`.
            Default False.

    Returns:
        An iterator of one :class:`BatchResult` per item, in the order of ``items``. The work runs while
        it is iterated; closing it early stops the threads.

    Raises:
        ValueError: for ``read_ahead`` under 1, and as :meth:`Picker.particles` for ``options.classes``,
            both before anything is read.
        UnknownParticleClassError: for a class the model does not pick.
        InferenceCancelledError: from the iterator, after the results of the tomograms already inferred,
            when ``should_cancel`` returned True.
    """
    if isinstance(read_ahead, bool) or not isinstance(read_ahead, int) or read_ahead < 1:
        raise ValueError(f"read_ahead must be an int of at least 1, got {read_ahead!r}")
    picker.particles(options)  # a bad class fails the batch at once, not every tomogram
    return _run(picker, items, options, write, read_ahead, on_stage, progress, should_cancel, with_preview)


def _run(
    picker: Picker,
    items: Iterable[BatchItem],
    options: PredictOptions,
    write: Callable[[BatchItem, PicksDocument], Any] | None,
    read_ahead: int,
    on_stage: Callable[[int, Stage], None] | None,
    progress: Callable[[int, float], None] | None,
    should_cancel: Callable[[], bool] | None,
    with_preview: bool,
) -> Iterator[BatchResult]:
    state = _ReaderState()

    def cancelled() -> bool:
        return state.stop.is_set() or bool(should_cancel and should_cancel())

    slots = threading.Semaphore(read_ahead)  # released when the calling thread takes a tomogram
    loaded: queue.Queue[_Loaded | None] = queue.Queue()  # bounded by slots; None = no more items
    reader = threading.Thread(
        target=_read_all,
        args=(picker, items, options, slots, loaded, state, cancelled, on_stage, with_preview),
        name="octopi-batch-reader",
        daemon=True,
    )
    finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="octopi-batch-finisher")
    pending: deque[Future[BatchResult]] = deque()
    finished = 0
    cancelled_at: str | None = None  # what was under way when the batch was cancelled
    reader.start()
    try:
        while True:
            if cancelled():
                cancelled_at = "between tomograms"
                break
            entry = loaded.get()
            if entry is None:
                break
            slots.release()
            where = f"tomogram {entry.item.run_name} ({entry.item.uri})"
            if entry.tomogram is None:
                if isinstance(entry.error, InferenceCancelledError) and cancelled():
                    cancelled_at = f"while reading {where}"
                    break
                pending.append(finisher.submit(_failed, entry.index, entry.item, entry.error, Step.READ))
            else:
                outcome = _segment(
                    picker, entry.index, entry.tomogram, options, on_stage, progress, cancelled
                )
                if outcome is None:
                    cancelled_at = f"while segmenting {where}"
                    break
                if isinstance(outcome, Exception):
                    pending.append(finisher.submit(_failed, entry.index, entry.item, outcome, Step.INFERENCE))
                else:
                    # Only one segmentation waits for the finisher at a time: the memory bound above.
                    wait_futures(list(pending))
                    segmentation, inference_s = outcome
                    timings_s = {"read": entry.read_s, "inference": inference_s}
                    pending.append(
                        finisher.submit(
                            _finish, picker, entry, segmentation, timings_s, options, write, on_stage
                        )
                    )
            while pending and pending[0].done():
                finished += 1
                yield pending.popleft().result()
        while pending:
            finished += 1
            yield pending.popleft().result()
        if state.failure is not None:
            raise state.failure
        if cancelled_at is not None:
            raise InferenceCancelledError(f"batch cancelled {cancelled_at}, after {finished} tomogram(s)")
    finally:
        state.stop.set()
        _drain(loaded)
        reader.join()
        finisher.shutdown(wait=True, cancel_futures=True)


def _read_all(
    picker: Picker,
    items: Iterable[BatchItem],
    options: PredictOptions,
    slots: threading.Semaphore,
    loaded: queue.Queue[_Loaded | None],
    state: _ReaderState,
    cancelled: Callable[[], bool],
    on_stage: Callable[[int, Stage], None] | None,
    with_preview: bool,
) -> None:
    try:
        for index, item in enumerate(items):
            while not slots.acquire(timeout=0.05):
                if cancelled():
                    return
            if cancelled():
                return
            started = time.perf_counter()
            try:
                if on_stage:
                    on_stage(index, Stage.FETCHING)
                tomogram = picker.read(item.uri, options, should_cancel=cancelled)
                read_s = time.perf_counter() - started
                # Now or never: the volume is dropped after inference.
                preview = _project(tomogram) if with_preview else None
            except Exception as e:  # noqa: BLE001 - one bad tomogram fails only itself
                loaded.put(_Loaded(index, item, error=e))
            else:
                loaded.put(_Loaded(index, item, tomogram, read_s=read_s, preview=preview))
    except BaseException as e:  # noqa: BLE001 - the items iterable failed: the calling thread re-raises it
        state.failure = e
    finally:
        loaded.put(None)


def _segment(
    picker: Picker,
    index: int,
    tomogram: LoadedTomogram,
    options: PredictOptions,
    on_stage: Callable[[int, Stage], None] | None,
    progress: Callable[[int, float], None] | None,
    cancelled: Callable[[], bool],
) -> tuple[SegmentationResult, float] | Exception | None:
    # The segmentation and its seconds; the Exception when it failed; None when the batch was cancelled.
    started = time.perf_counter()
    try:
        if on_stage:
            on_stage(index, Stage.INFERRING)
        segmentation = picker.segment(
            tomogram.volume,
            options,
            progress=(lambda fraction: progress(index, fraction)) if progress else None,
            should_cancel=cancelled,
        )
    except InferenceCancelledError as e:
        return None if cancelled() else e
    except Exception as e:  # noqa: BLE001 - one bad tomogram fails only itself
        return e
    del tomogram.volume  # the label maps are all that is needed from here
    return segmentation, time.perf_counter() - started


def _finish(
    picker: Picker,
    entry: _Loaded,
    segmentation: SegmentationResult,
    timings_s: dict[str, float],
    options: PredictOptions,
    write: Callable[[BatchItem, PicksDocument], Any] | None,
    on_stage: Callable[[int, Stage], None] | None,
) -> BatchResult:
    step = Step.LOCALIZE
    try:
        if entry.tomogram is None:  # _run hands over read tomograms only
            raise RuntimeError(f"no tomogram for {entry.item.run_name}")
        if on_stage:
            on_stage(entry.index, Stage.LOCALIZING)
        started = time.perf_counter()
        found = picker.localize(entry.tomogram, segmentation, options)
        timings_s["localize"] = time.perf_counter() - started
        # Stage seconds only: the time a tomogram waits between stages belongs to the pipeline, not to it.
        timings_s["total"] = sum(timings_s.values())
        document = picker.document(found, entry.tomogram, run_name=entry.item.run_name, timings_s=timings_s)
        step = Step.WRITE
        written = write(entry.item, document) if write else None
    except Exception as e:  # noqa: BLE001 - one bad tomogram (or write) fails only itself
        return _failed(entry.index, entry.item, e, step)
    return BatchResult(entry.index, entry.item, document=document, written=written, preview=entry.preview)


def _project(tomogram: LoadedTomogram) -> PreviewProjection:
    return project_volume(
        tomogram.volume, voxel_size_zyx_a=tomogram.voxel_size_zyx_a, origin_zyx_a=tomogram.origin_zyx_a
    )


def _failed(index: int, item: BatchItem, error: Exception | None, step: Step) -> BatchResult:
    return BatchResult(index, item, error=error, failed_step=step)


def _drain(loaded: queue.Queue[_Loaded | None]) -> None:
    # Drop tomograms read ahead that will not be segmented, so their memory goes at once.
    while True:
        try:
            loaded.get_nowait()
        except queue.Empty:
            return
