"""Picking many tomograms with one loaded model, reading the next ones while the current one is inferred.

:func:`predict_batch` runs the stages of :class:`~octopi_core.pipeline.Picker` as a pipeline over thread
pools, so that the device is not idle while the CPU reads, normalises, localizes and writes::

    reader threads (read_ahead)          Picker.read of the next tomograms, each on its own thread
    calling thread                       Picker.segment k, on the picker's device
    localizer threads (localize_threads) Picker.localize + Picker.document + ``write`` of earlier ones

On a CPU one thread each is enough: the network takes a tomogram a minute or more and every core. On an
accelerator a tomogram's inference takes well under a second, less than one core needs to read (0.5 s for
184x630x630 from local OME-Zarr on this project's CPU) or localize it (0.9 s): a single reader or localizer
would cap the throughput at 4,000 tomograms an hour, whatever the device. The defaults
(:func:`default_stage_threads`) give each of those stages a quarter of the process's cores, 1 to 4.

Memory: at most ``read_ahead`` normalised volumes (``(Z, Y, X)`` float32, 4 B/voxel) are read or waiting,
plus the one being segmented, plus the label and confidence maps (3 B/voxel) of at most
``localize_threads + 1`` tomograms: the one being segmented and those being localized. The calling thread
waits for a free localizer before it hands over the next segmentation, so no queue grows without bound
(184x630x630 with 4 and 4: 5 x 0.29 GB + 5 x 0.22 GB = 2.6 GB).

A tomogram that fails (unreadable, too small, a failed write…) becomes a :class:`BatchResult` naming it
and its error, and the batch goes on. Results come in the order of the items, whichever thread finishes
first. Cancellation (``should_cancel``, or closing the iterator) stops the readers between z-slabs and the
inference between batches of windows; the tomograms already inferred are still localized, written and
yielded, then :class:`InferenceCancelledError` is raised.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
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

__all__ = ["BatchItem", "BatchResult", "Step", "predict_batch", "default_stage_threads"]

MAX_STAGE_THREADS = 4  # readers or localizers by default: 4 keep up with ~15,000 tomograms an hour


def default_stage_threads(device_type: str) -> int:
    """Reader threads (and localizer threads) of a batch whose inference runs on ``device_type``.

    1 on ``"cpu"``, where the network already uses every core; otherwise a quarter of the cores this process
    may run on (``os.sched_getaffinity``, which follows a container's cpuset), at least 1 and at most 4.
    """
    if device_type == "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_STAGE_THREADS, cores // 4))


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
    read_ahead: int | None = None,
    localize_threads: int | None = None,
    on_stage: Callable[[int, Stage], None] | None = None,
    progress: Callable[[int, float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    with_preview: bool = False,
) -> Iterator[BatchResult]:
    """Pick particles in each tomogram of ``items`` with one loaded model, stages overlapped.

    Args:
        picker: the loaded model; its device runs the inference.
        items: the tomograms, consumed lazily as reader threads free up (a generator may feed it).
        options: the same :class:`PredictOptions` for every tomogram.
        write: called on a localizer thread with each tomogram's item and document, e.g. to write a file
            (calls for different tomograms may run at once with several localizer threads);
            what it returns lands in :attr:`BatchResult.written`, what it raises fails that tomogram at
            step ``write``. Default None: nothing written.
        read_ahead: tomograms read and normalised ahead of the one being segmented, each on its own reader
            thread, at least 1: the number of loaded volumes in memory is at most ``1 + read_ahead``.
            Default None: :func:`default_stage_threads` of the picker's device.
        localize_threads: tomograms localized and written at once, at least 1. Default None:
            :func:`default_stage_threads` of the picker's device.
        on_stage: called with (index, :class:`Stage`) when a tomogram enters a stage, from that stage's
            threads (at once from several, with more than one reader or localizer).
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
        ValueError: for ``read_ahead`` or ``localize_threads`` under 1, and as :meth:`Picker.particles` for
            ``options.classes``, all before anything is read.
        UnknownParticleClassError: for a class the model does not pick.
        InferenceCancelledError: from the iterator, after the results of the tomograms already inferred,
            when ``should_cancel`` returned True.
    """
    threads = default_stage_threads(getattr(picker.device, "type", "cpu"))
    read_ahead = threads if read_ahead is None else _at_least_one("read_ahead", read_ahead)
    localize_threads = (
        threads if localize_threads is None else _at_least_one("localize_threads", localize_threads)
    )
    picker.particles(options)  # a bad class fails the batch at once, not every tomogram
    return _run(
        picker,
        items,
        options,
        write,
        read_ahead,
        localize_threads,
        on_stage,
        progress,
        should_cancel,
        with_preview,
    )


def _at_least_one(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int of at least 1, got {value!r}")
    return value


def _run(
    picker: Picker,
    items: Iterable[BatchItem],
    options: PredictOptions,
    write: Callable[[BatchItem, PicksDocument], Any] | None,
    read_ahead: int,
    localize_threads: int,
    on_stage: Callable[[int, Stage], None] | None,
    progress: Callable[[int, float], None] | None,
    should_cancel: Callable[[], bool] | None,
    with_preview: bool,
) -> Iterator[BatchResult]:
    state = _ReaderState()

    def cancelled() -> bool:
        return state.stop.is_set() or bool(should_cancel and should_cancel())

    def read(index: int, item: BatchItem) -> _Loaded:
        return _read(picker, index, item, options, cancelled, on_stage, with_preview)

    slots = threading.Semaphore(read_ahead)  # released when the calling thread takes a tomogram
    # The reads in the order of the items, bounded by slots; None = no more items.
    loaded: queue.Queue[Future[_Loaded] | None] = queue.Queue()
    readers = ThreadPoolExecutor(max_workers=read_ahead, thread_name_prefix="octopi-batch-reader")
    dispatcher = threading.Thread(
        target=_dispatch_reads,
        args=(items, read, readers, slots, loaded, state, cancelled),
        name="octopi-batch-dispatcher",
        daemon=True,
    )
    localizers = ThreadPoolExecutor(max_workers=localize_threads, thread_name_prefix="octopi-batch-localizer")
    pending: deque[Future[BatchResult]] = deque()
    finished = 0
    cancelled_at: str | None = None  # what was under way when the batch was cancelled
    dispatcher.start()
    try:
        while True:
            if cancelled():
                cancelled_at = "between tomograms"
                break
            reading = loaded.get()
            if reading is None:
                break
            entry = reading.result()  # _read returns its failures
            slots.release()
            where = f"tomogram {entry.item.run_name} ({entry.item.uri})"
            if entry.tomogram is None:
                if isinstance(entry.error, InferenceCancelledError) and cancelled():
                    cancelled_at = f"while reading {where}"
                    break
                pending.append(localizers.submit(_failed, entry.index, entry.item, entry.error, Step.READ))
            else:
                outcome = _segment(
                    picker, entry.index, entry.tomogram, options, on_stage, progress, cancelled
                )
                if outcome is None:
                    cancelled_at = f"while segmenting {where}"
                    break
                if isinstance(outcome, Exception):
                    pending.append(
                        localizers.submit(_failed, entry.index, entry.item, outcome, Step.INFERENCE)
                    )
                else:
                    # No segmentation waits for a localizer: the memory bound above.
                    _wait_for_fewer_than(localize_threads, pending)
                    segmentation, inference_s = outcome
                    timings_s = {"read": entry.read_s, "inference": inference_s}
                    pending.append(
                        localizers.submit(
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
        dispatcher.join()
        _drain(loaded)  # what the dispatcher queued before it saw the stop
        readers.shutdown(wait=True, cancel_futures=True)
        localizers.shutdown(wait=True, cancel_futures=True)


def _wait_for_fewer_than(count: int, futures: Iterable[Future[BatchResult]]) -> None:
    # Blocks until fewer than ``count`` of ``futures`` are still to finish.
    while len(running := [f for f in futures if not f.done()]) >= count:
        wait_futures(running, return_when=FIRST_COMPLETED)


def _dispatch_reads(
    items: Iterable[BatchItem],
    read: Callable[[int, BatchItem], _Loaded],
    readers: ThreadPoolExecutor,
    slots: threading.Semaphore,
    loaded: queue.Queue[Future[_Loaded] | None],
    state: _ReaderState,
    cancelled: Callable[[], bool],
) -> None:
    # Takes the items one by one, as a slot frees, and queues their reads in order.
    try:
        for index, item in enumerate(items):
            while not slots.acquire(timeout=0.05):
                if cancelled():
                    return
            if cancelled():
                return
            loaded.put(readers.submit(read, index, item))
    except BaseException as e:  # noqa: BLE001 - the items iterable failed: the calling thread re-raises it
        state.failure = e
    finally:
        loaded.put(None)


def _read(
    picker: Picker,
    index: int,
    item: BatchItem,
    options: PredictOptions,
    cancelled: Callable[[], bool],
    on_stage: Callable[[int, Stage], None] | None,
    with_preview: bool,
) -> _Loaded:
    started = time.perf_counter()
    try:
        if on_stage:
            on_stage(index, Stage.FETCHING)
        tomogram = picker.read(item.uri, options, should_cancel=cancelled)
        read_s = time.perf_counter() - started
        # Now or never: the volume is dropped after inference.
        preview = _project(tomogram) if with_preview else None
    except Exception as e:  # noqa: BLE001 - one bad tomogram fails only itself
        return _Loaded(index, item, error=e)
    return _Loaded(index, item, tomogram, read_s=read_s, preview=preview)


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


def _drain(loaded: queue.Queue[Future[_Loaded] | None]) -> None:
    # Drop the reads that will not be segmented: those not started are cancelled, the others stop at
    # their next slab (the batch is stopped) and their volumes go with the last reference.
    while True:
        try:
            reading = loaded.get_nowait()
        except queue.Empty:
            return
        if reading is not None:
            reading.cancel()
