import shutil
import threading
import time
from types import SimpleNamespace

import pytest

from octopi_core.batch import BatchItem, Step, default_stage_threads, predict_batch
from octopi_core.exceptions import CorruptTomogramError, InferenceCancelledError
from octopi_core.pipeline import Picker, PredictOptions
from octopi_core.stage import Stage

WAIT_S = 10.0  # how long a fake stage waits for the event it expects before giving up


class FakePicker:
    """The four stages of a Picker, logging the order of events; segment(k) waits for read(k+1) to start.

    ``read_waits`` / ``localize_waits``: read(k) / localize(k) for these k wait for read(k+1) / localize(k+1)
    to start, and log whether it did ("read-overlapped", k): what only concurrent threads can do.
    """

    device = SimpleNamespace(type="cpu")

    def __init__(
        self, count, *, bad_read=(), bad_segment=(), read_waits=(), localize_waits=(), overlap_wait_s=WAIT_S
    ):
        self.count, self.bad_read, self.bad_segment = count, set(bad_read), set(bad_segment)
        self.read_waits, self.localize_waits = set(read_waits), set(localize_waits)
        self.overlap_wait_s = overlap_wait_s
        self.log = []
        self.lock = threading.Lock()
        self.read_started = [threading.Event() for _ in range(count)]
        self.localize_started = [threading.Event() for _ in range(count)]

    def event(self, *what):
        with self.lock:
            self.log.append(what)

    def particles(self, options):
        return []

    def read(self, uri, options, *, should_cancel=None):
        k = int(uri)
        self.event("read", k)
        self.read_started[k].set()
        if k in self.read_waits and self.read_started[k + 1].wait(self.overlap_wait_s):
            self.event("read-overlapped", k)
        if k in self.bad_read:
            raise CorruptTomogramError(f"tomogram {uri} is truncated")
        return SimpleNamespace(volume=k, uri=uri)

    def segment(self, volume, options, *, progress=None, should_cancel=None):
        k = volume
        self.event("infer-start", k)
        deadline = time.monotonic() + WAIT_S
        while k + 1 < self.count and not self.read_started[k + 1].wait(0.01):
            # A sequential predictor never starts read(k+1) here; a cancelled one need not.
            if time.monotonic() > deadline or (should_cancel and should_cancel()):
                break
        if should_cancel and should_cancel():
            raise InferenceCancelledError("cancelled")
        if k in self.bad_segment:
            raise RuntimeError("CUDA out of memory")
        if progress:
            progress(1.0)
        self.event("infer-end", k)
        return f"seg-{k}"

    def localize(self, tomogram, segmentation, options):
        k = int(tomogram.uri)
        self.event("localize", k)
        self.localize_started[k].set()
        if k in self.localize_waits and self.localize_started[k + 1].wait(self.overlap_wait_s):
            self.event("localize-overlapped", k)
        self.event("localize-end", k)
        return {}

    def document(self, found, tomogram, *, run_name, timings_s):
        return SimpleNamespace(run_name=run_name, timings_s=dict(timings_s))


def _items(count):
    return [BatchItem(str(k), f"run{k}") for k in range(count)]


def test_reads_the_next_tomogram_while_the_current_one_is_inferred():
    picker = FakePicker(4)
    results = list(predict_batch(picker, _items(4)))
    assert [r.index for r in results] == [0, 1, 2, 3] and all(r.ok for r in results)
    log = picker.log
    for k in range(3):
        # read(k+1) starts before infer(k) ends: the read-ahead.
        assert log.index(("read", k + 1)) < log.index(("infer-end", k)), log
    for k in range(2):
        # read(k+2) waits until infer(k) has ended: at most one tomogram read ahead (read_ahead=1).
        assert log.index(("read", k + 2)) > log.index(("infer-end", k)), log
    assert set(results[0].document.timings_s) == {"read", "inference", "localize", "total"}


def test_a_bad_tomogram_fails_alone_and_is_named():
    picker = FakePicker(5, bad_read={1}, bad_segment={3})
    written = []
    results = list(
        predict_batch(
            picker, _items(5), write=lambda item, doc: written.append(item.run_name) or item.run_name
        )
    )
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert [r.ok for r in results] == [True, False, True, False, True]
    assert written == ["run0", "run2", "run4"] and results[2].written == "run2"
    assert results[1].failed_step is Step.READ and isinstance(results[1].error, CorruptTomogramError)
    assert results[1].describe_error().startswith("run1 (1): read failed: CorruptTomogramError:")
    assert results[3].failed_step is Step.INFERENCE and "out of memory" in results[3].describe_error()
    assert results[0].describe_error() == ""


def test_a_failed_write_fails_its_tomogram_at_the_write_step():
    def write(item, doc):
        if item.run_name == "run0":
            raise OSError("disk full")
        return item.run_name

    results = list(predict_batch(FakePicker(2), _items(2), write=write))
    assert results[0].failed_step is Step.WRITE and "disk full" in results[0].describe_error()
    assert results[1].ok and results[1].written == "run1"


def test_stages_and_progress_are_reported_per_tomogram():
    stages, fractions = [], []
    lock = threading.Lock()

    def on_stage(index, stage):
        with lock:
            stages.append((index, stage))

    list(
        predict_batch(
            FakePicker(2), _items(2), on_stage=on_stage, progress=lambda i, f: fractions.append((i, f))
        )
    )
    for k in range(2):
        assert [s for i, s in stages if i == k] == [Stage.FETCHING, Stage.INFERRING, Stage.LOCALIZING]
    assert fractions == [(0, 1.0), (1, 1.0)]


def test_cancellation_stops_the_batch_after_finishing_what_was_inferred():
    cancel = threading.Event()
    picker = FakePicker(4)

    def write(item, doc):
        cancel.set()  # cancel once the first tomogram is written
        return item.run_name

    results = []
    with pytest.raises(InferenceCancelledError, match="batch cancelled"):
        for result in predict_batch(picker, _items(4), write=write, should_cancel=cancel.is_set):
            results.append(result)
    assert [r.item.run_name for r in results][:1] == ["run0"] and all(r.ok for r in results)
    assert ("infer-start", 2) not in picker.log and ("read", 3) not in picker.log
    assert not any(t.name.startswith("octopi-batch") for t in threading.enumerate())


def test_cancellation_with_pools_stops_every_thread_and_loses_nothing_inferred():
    cancel = threading.Event()
    picker = FakePicker(8)

    def write(item, doc):
        cancel.set()
        return item.run_name

    results = []
    with pytest.raises(InferenceCancelledError, match="batch cancelled"):
        for result in predict_batch(
            picker, _items(8), write=write, should_cancel=cancel.is_set, read_ahead=3, localize_threads=2
        ):
            results.append(result)
    inferred = [k for event, k in picker.log if event == "infer-end"]
    # Every tomogram inferred was localized and yielded, in order, and the batch stopped early.
    assert [r.index for r in results] == inferred == list(range(len(inferred))) and len(inferred) < 8
    assert not any(t.name.startswith("octopi-batch") for t in threading.enumerate())


def test_closing_the_iterator_stops_its_threads():
    batch = predict_batch(FakePicker(4), _items(4))
    first = next(batch)
    batch.close()
    assert first.index == 0
    assert not any(t.name.startswith("octopi-batch") for t in threading.enumerate())


def test_bad_arguments_and_a_failing_item_source():
    with pytest.raises(ValueError, match="read_ahead must be an int of at least 1, got 0"):
        predict_batch(FakePicker(1), _items(1), read_ahead=0)
    with pytest.raises(ValueError, match="localize_threads must be an int of at least 1, got True"):
        predict_batch(FakePicker(1), _items(1), localize_threads=True)

    def items():
        yield BatchItem("0", "run0")
        raise FileNotFoundError("no such folder: /data")

    with pytest.raises(FileNotFoundError, match="/data"):
        list(predict_batch(FakePicker(1), items()))  # one tomogram: segment(0) expects no read(1)


def test_read_ahead_two_reads_two_tomograms_ahead():
    picker = FakePicker(4)
    list(predict_batch(picker, _items(4), read_ahead=2))
    # With two slots read(2) may start while infer(0) runs; it never waits for infer(1) to end.
    assert picker.log.index(("read", 2)) < picker.log.index(("infer-end", 1))


def test_two_readers_read_two_tomograms_at_once():
    picker = FakePicker(4, read_waits={1})
    results = list(predict_batch(picker, _items(4), read_ahead=2))
    # read(1) holds its thread until read(2) starts: only a second reader thread can start it.
    assert ("read-overlapped", 1) in picker.log and all(r.ok for r in results)
    assert [r.index for r in results] == [0, 1, 2, 3]


def test_one_reader_reads_one_tomogram_at_a_time():
    # The check above can fail: with one reader, read(2) waits for read(1) to end, which gives up waiting.
    picker = FakePicker(3, read_waits={1}, overlap_wait_s=0.5)
    list(predict_batch(picker, _items(3), read_ahead=1))
    assert ("read-overlapped", 1) not in picker.log


def test_two_localizers_localize_two_tomograms_at_once_and_results_keep_their_order():
    picker = FakePicker(4, localize_waits={1})
    run2_written = threading.Event()
    finished = []

    def write(item, doc):
        if item.run_name == "run1":  # run1 ends only after run2: only a second localizer can write run2
            run2_written.wait(WAIT_S)
        finished.append(item.run_name)
        if item.run_name == "run2":
            run2_written.set()

    results = list(predict_batch(picker, _items(4), localize_threads=2, write=write))
    assert ("localize-overlapped", 1) in picker.log
    assert finished.index("run2") < finished.index("run1")
    # The results come in the items' order all the same.
    assert [r.index for r in results] == [0, 1, 2, 3] and all(r.ok for r in results)


def test_a_segmentation_waits_for_a_free_localizer():
    # With one localizer, the next segmentation is handed over only once the previous one is localized:
    # localize(1) waits in vain for localize(2).
    picker = FakePicker(4, localize_waits={1}, overlap_wait_s=0.5)
    list(predict_batch(picker, _items(4), localize_threads=1))
    assert ("localize-overlapped", 1) not in picker.log
    for k in range(3):
        assert picker.log.index(("localize-end", k)) < picker.log.index(("localize", k + 1))


@pytest.mark.parametrize(
    ("device", "cores", "expected"), [("cpu", 64, 1), ("cuda", 2, 1), ("cuda", 12, 3), ("cuda", 64, 4)]
)
def test_default_stage_threads_follow_the_device_and_the_cores(monkeypatch, device, cores, expected):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)))
    assert default_stage_threads(device) == expected


def test_batch_picks_equal_single_predictions(random_checkpoint, small_tomogram, tmp_path):
    # The batch runs the Picker's own stages: the same picks as Picker.predict, per tomogram.
    copy = tmp_path / "copy.zarr"
    shutil.copytree(small_tomogram[0], copy)
    picker = Picker(random_checkpoint, device="cpu")
    options = PredictOptions(window_vox=32, batch_size=2)
    uris = [str(small_tomogram[0]), str(copy)]
    results = list(predict_batch(picker, [BatchItem.from_uri(u) for u in uris], options))
    assert [r.item.run_name for r in results] == ["small", "copy"] and all(r.ok for r in results)
    single = picker.predict(uris[0], options)
    for result in results:
        doc = result.document
        assert doc.picks == single.picks and doc.shape_zyx == single.shape_zyx
        assert doc.tomogram_uri == result.item.uri and doc.run_name == result.item.run_name
        assert doc.timings_s["total"] == pytest.approx(
            doc.timings_s["read"] + doc.timings_s["inference"] + doc.timings_s["localize"], abs=1e-3
        )
