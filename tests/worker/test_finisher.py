"""The worker's finisher: localization, outputs and outcome of a job in a background thread, overlapping the
next job's reading and inference, without losing a job to SIGKILL or SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from octopi_core.pipeline import Picker
from tests.waiting import wait_until
from worker.finisher import Finisher, FinisherStuckError
from worker.jobs.keys import RUNNING_KEY, cancel_key, worker_key
from worker.jobs.state import JobRecord, JobStage, JobStatus, fetch_result
from worker.main import run_worker

_REPO = Path(__file__).resolve().parents[2]


def _run(settings) -> None:
    assert run_worker(settings, name="test-worker", burst=True) == 0


def test_submit_waits_for_the_call_before_and_close_lets_the_last_one_finish():
    finisher, release, order = Finisher("t"), threading.Event(), []
    finisher.submit(lambda: (release.wait(30), order.append("first")))
    assert finisher.busy and not finisher.wait(0.05)
    threading.Timer(0.2, release.set).start()
    finisher.submit(lambda: order.append("second"))  # returns once the first is done: one at a time
    assert order[0] == "first"
    finisher.close()
    assert order == ["first", "second"] and not finisher.busy
    with pytest.raises(RuntimeError, match="closed"):
        finisher.submit(lambda: None)


def test_a_call_past_its_deadline_and_grace_is_given_up_and_reported():
    finisher, release, overdue = Finisher("t", grace_s=0.2), threading.Event(), []
    assert finisher.submit(
        lambda: release.wait(30), deadline=time.monotonic(), on_overdue=lambda: overdue.append(1)
    )
    started = time.monotonic()
    with pytest.raises(FinisherStuckError, match="past its deadline"):
        finisher.submit(lambda: None)
    assert 0.1 < time.monotonic() - started < 5 and overdue == [1] and finisher.stuck
    finisher.close()  # returns at once: the thread is given up, not joined
    with pytest.raises(RuntimeError, match="closed"):
        finisher.submit(lambda: None)
    release.set()


def test_a_call_in_its_time_is_waited_for_only_until_the_callers_limit():
    finisher, release, ran = Finisher("t", grace_s=0.1), threading.Event(), []
    finisher.submit(
        lambda: release.wait(30), deadline=time.monotonic() + 60, on_overdue=lambda: ran.append("overdue")
    )
    assert finisher.submit(lambda: ran.append("next"), wait_until=time.monotonic() + 0.2) is False
    assert not finisher.stuck and finisher.busy
    release.set()
    assert finisher.submit(lambda: ran.append("next"), wait_until=time.monotonic() + 10) is True
    finisher.close()
    assert ran == ["next"]


def test_a_job_still_localizing_at_its_deadline_fails_as_timed_out(
    redis_conn, service_settings, new_job, tomograms, monkeypatch
):
    settings = service_settings.model_copy(update={"job_timeout_s": 3})
    localize, threads = Picker.localize, []

    def slow(self, *args, **kwargs):  # past the deadline before the first poll; RQ's alarm is over by now
        threads.append(threading.current_thread().name)
        time.sleep(3.2)
        return localize(self, *args, **kwargs)

    monkeypatch.setattr(Picker, "localize", slow)
    record = new_job(tomograms.small, identity="fin-deadline", settings=settings)
    _run(settings)
    done = JobRecord.fetch(redis_conn, record.id)
    assert threads == ["finisher-test-worker"]
    assert (done.status, done.error_type) == (JobStatus.FAILED, "JobTimeoutError"), done.error_detail
    assert "job_timeout_s = 3 s" in done.error_detail and fetch_result(redis_conn, record.id) is None
    assert not redis_conn.hexists(RUNNING_KEY, record.id)


@pytest.mark.slow
def test_a_stuck_finisher_fails_its_job_the_next_ones_end_themselves_and_the_worker_exits_1(
    redis_conn, service_settings, new_job, tomograms, monkeypatch
):
    settings = service_settings.model_copy(update={"job_timeout_s": 10, "finisher_grace_s": 3})
    localize, release, threads = Picker.localize, threading.Event(), {}

    def hung_on_small(self, tomogram, *args, **kwargs):  # a hang no deadline can interrupt, for the first job
        threads[Path(tomogram.uri).stem] = threading.current_thread().name
        if Path(tomogram.uri).stem == "small":
            release.wait(120)
        return localize(self, tomogram, *args, **kwargs)

    monkeypatch.setattr(Picker, "localize", hung_on_small)
    stuck = new_job(tomograms.small, identity="fin-stuck", settings=settings)
    waited = new_job(tomograms.small_mrc, identity="fin-stuck-1", settings=settings)
    last = new_job(tomograms.small_mrc, identity="fin-stuck-2", settings=settings)
    try:
        assert run_worker(settings, name="test-worker", burst=True) == 1
    finally:
        release.set()
    failed = JobRecord.fetch(redis_conn, stuck.id)
    assert (failed.status, failed.error_type) == (JobStatus.FAILED, "JobTimeoutError")
    for record in (waited, last):  # each ended in the task, on the main thread
        assert JobRecord.fetch(redis_conn, record.id).status is JobStatus.SUCCEEDED
    assert threads == {"small": "finisher-test-worker", "small_mrc": "MainThread"}
    wait_until(
        lambda: not redis_conn.hgetall(RUNNING_KEY), timeout_s=30, what="the hung call to find its job taken"
    )
    assert JobRecord.fetch(redis_conn, stuck.id).status is JobStatus.FAILED  # its late outcome was not stored


def test_the_finisher_records_the_outcome_and_writes_the_outputs(
    redis_conn, service_settings, new_job, tomograms, tmp_path: Path, monkeypatch
):
    threads: list[str] = []
    picks_from = Picker.picks_from

    def recorded(self, *args, **kwargs):
        threads.append(threading.current_thread().name)
        return picks_from(self, *args, **kwargs)

    monkeypatch.setattr(Picker, "picks_from", recorded)
    record = new_job(tomograms.small, identity="fin-1", output_uri=str(tmp_path / "out"), formats=["json"])
    _run(service_settings)
    done = JobRecord.fetch(redis_conn, record.id)
    assert threads == ["finisher-test-worker"]
    assert done.status is JobStatus.SUCCEEDED, done.error_detail
    assert fetch_result(redis_conn, record.id) and set(done.timings_s) == {
        "read",
        "inference",
        "localize",
        "total",
    }
    assert [Path(p).name for p in done.outputs] == ["small.picks.json"]
    assert (tmp_path / "out" / "small.picks.json").exists()
    assert not redis_conn.hexists(RUNNING_KEY, record.id)


def test_without_overlap_the_task_ends_its_own_job(
    redis_conn, service_settings, new_job, tomograms, monkeypatch
):
    threads: list[str] = []
    picks_from = Picker.picks_from

    def recorded(self, *args, **kwargs):
        threads.append(threading.current_thread().name)
        return picks_from(self, *args, **kwargs)

    monkeypatch.setattr(Picker, "picks_from", recorded)
    record = new_job(tomograms.small, identity="fin-off")
    _run(service_settings.model_copy(update={"worker_overlap": False}))
    assert threads == ["MainThread"]
    assert JobRecord.fetch(redis_conn, record.id).status is JobStatus.SUCCEEDED


def test_the_next_job_is_read_before_the_previous_one_is_localized(
    redis_conn, service_settings, new_job, tomograms, monkeypatch
):
    events: list[str] = []
    second_read = threading.Event()
    read, localize = Picker.read, Picker.localize

    def reading(self, uri, *args, **kwargs):
        events.append(f"read {Path(uri).stem}")
        if len(events) > 1:
            second_read.set()
        return read(self, uri, *args, **kwargs)

    def localizing(self, tomogram, *args, **kwargs):
        if not events[-1].startswith("localized"):  # the first job's: holds until the next read starts
            second_read.wait(30)
        found = localize(self, tomogram, *args, **kwargs)
        events.append(f"localized {Path(tomogram.uri).stem}")
        return found

    monkeypatch.setattr(Picker, "read", reading)
    monkeypatch.setattr(Picker, "localize", localizing)
    first = new_job(tomograms.small, identity="fin-order")
    second = new_job(tomograms.small_mrc, identity="fin-order")
    _run(service_settings)
    assert events == ["read small", "read small_mrc", "localized small", "localized small_mrc"]
    for record in (first, second):
        assert JobRecord.fetch(redis_conn, record.id).status is JobStatus.SUCCEEDED


def test_a_job_cancelled_while_localizing_ends_cancelled(
    redis_conn, service_settings, new_job, tomograms, monkeypatch
):
    localize = Picker.localize
    record = new_job(tomograms.small, identity="fin-cancel")

    def cancelled_meanwhile(self, *args, **kwargs):
        redis_conn.set(cancel_key(record.id), "1")
        return localize(self, *args, **kwargs)

    monkeypatch.setattr(Picker, "localize", cancelled_meanwhile)
    _run(service_settings)
    done = JobRecord.fetch(redis_conn, record.id)
    assert done.status is JobStatus.CANCELLED and fetch_result(redis_conn, record.id) is None
    assert not redis_conn.hexists(RUNNING_KEY, record.id)


def test_an_error_in_the_finisher_fails_that_job_only(
    redis_conn, service_settings, new_job, tomograms, monkeypatch
):
    localize = Picker.localize

    def failing_on_small(self, tomogram, *args, **kwargs):
        if Path(tomogram.uri).stem == "small":
            raise ValueError("threshold must be in (0, 1); got 7")
        return localize(self, tomogram, *args, **kwargs)

    monkeypatch.setattr(Picker, "localize", failing_on_small)
    failing = new_job(tomograms.small, identity="fin-error")
    fine = new_job(tomograms.small_mrc, identity="fin-error")
    _run(service_settings)
    failed = JobRecord.fetch(redis_conn, failing.id)
    assert failed.status is JobStatus.FAILED
    assert (failed.error_type, failed.error_detail) == ("ValueError", "threshold must be in (0, 1); got 7")
    assert JobRecord.fetch(redis_conn, fine.id).status is JobStatus.SUCCEEDED


# -- real worker processes whose localization waits for a gate file --

_GATED_LOCALIZE = """
import os, time
from octopi_core.pipeline import Picker

_localize = Picker.localize


def _gated(self, *args, **kwargs):
    while not os.path.exists(os.environ["OCTOPI_TEST_LOCALIZE_GATE"]):
        time.sleep(0.05)
    return _localize(self, *args, **kwargs)


Picker.localize = _gated
"""


def _start_gated_worker(settings, name: str, base: Path) -> tuple[subprocess.Popen, Path]:
    """A worker process (``octopi-serve worker``) whose localization waits until the returned path exists."""
    (base / "hook").mkdir(exist_ok=True)
    (base / "hook" / "gated_localize.py").write_text(_GATED_LOCALIZE)
    gate = base / f"gate-{name}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCTOPI_", "AWS_"))}
    env |= {
        "PYTHONPATH": f"{base / 'hook'}:{_REPO}",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "REDIS_URL": settings.effective_redis_url,
        "OCTOPI_REGISTRY_URI": settings.registry_uri,
        "OCTOPI_QUEUE_NAME": settings.queue_name,
        "OCTOPI_LOCAL_ROOTS": ",".join(str(r) for r in settings.local_roots),
        "OCTOPI_WINDOW_VOX": "32",
        "OCTOPI_BATCH_SIZE": "2",
        "OCTOPI_TORCH_THREADS": "1",
        "OCTOPI_DEVICE": "cpu",
        "OCTOPI_HEARTBEAT_S": str(settings.heartbeat_s),
        "OCTOPI_WORKER_TTL_S": str(settings.worker_ttl_s),
        "OCTOPI_TEST_LOCALIZE_GATE": str(gate),
    }
    code = "import sys, gated_localize; from octopi_serve.cli import main; sys.exit(main(sys.argv[1:]))"
    log = open(base / f"{name}.log", "ab")  # the process writes it until it exits
    process = subprocess.Popen(
        [sys.executable, "-c", code, "worker", "--name", name], env=env, cwd=_REPO, stdout=log, stderr=log
    )
    return process, gate


def _wait_localizing(redis_conn, record: JobRecord, process: subprocess.Popen, log: Path) -> None:
    def localizing() -> bool:
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        return JobRecord.fetch(redis_conn, record.id).stage is JobStage.LOCALIZING

    wait_until(localizing, timeout_s=180, interval_s=0.1, what=f"job {record.id} to localize")


@pytest.mark.slow
def test_a_worker_killed_while_its_finisher_holds_a_job_does_not_lose_it(
    redis_conn, service_settings, new_job, tomograms, tmp_path: Path
):
    record = new_job(tomograms.small, identity="fin-kill")
    process, _ = _start_gated_worker(service_settings, "gated-kill", tmp_path)
    try:
        _wait_localizing(redis_conn, record, process, tmp_path / "gated-kill.log")
        assert redis_conn.hget(RUNNING_KEY, record.id) == b"gated-kill|1"  # still owned while localizing
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    wait_until(
        lambda: not redis_conn.exists(worker_key("gated-kill")), timeout_s=30, what="the heartbeat to expire"
    )
    _run(service_settings)  # its first heartbeat sweeps the dead worker's job back onto the queue
    done = JobRecord.fetch(redis_conn, record.id)
    assert done.status is JobStatus.SUCCEEDED, done.error_detail
    assert (done.tries, done.attempt, done.worker) == (2, 2, "test-worker")


@pytest.mark.slow
def test_sigterm_finishes_the_job_in_the_finisher_before_the_worker_exits(
    redis_conn, service_settings, new_job, tomograms, tmp_path: Path
):
    first = new_job(tomograms.small, identity="fin-term")
    second = new_job(tomograms.small_mrc, identity="fin-term")
    process, gate = _start_gated_worker(service_settings, "gated-term", tmp_path)
    try:
        _wait_localizing(redis_conn, first, process, tmp_path / "gated-term.log")
        process.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=2)  # it does not leave with a job held
        gate.touch()
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    done = JobRecord.fetch(redis_conn, first.id)
    assert done.status is JobStatus.SUCCEEDED and (done.tries, done.worker) == (1, "gated-term")
    assert JobRecord.fetch(redis_conn, second.id).status in (JobStatus.SUCCEEDED, JobStatus.QUEUED)
    assert not redis_conn.hgetall(RUNNING_KEY)
    _run(service_settings)
    assert JobRecord.fetch(redis_conn, second.id).status is JobStatus.SUCCEEDED
