import pytest

from worker.jobs import stats
from worker.jobs.exceptions import InvalidJobStateError, NoSuchJobError
from worker.jobs.keys import RUNNING_KEY, WORKERS_KEY, job_key, reuse_key, rq_job_id, worker_key
from worker.jobs.lifecycle import (
    cancel_job,
    claim_attempt,
    create_reused_job,
    finish_attempt,
    reap_dead_workers,
    requeue_attempt,
)
from worker.jobs.queue import make_queue, queue_depth
from worker.jobs.state import JobRecord, JobStatus, fetch_result, is_cancel_requested


def _queued_ids(redis_conn, settings):
    return make_queue(redis_conn, settings).get_job_ids()


def test_create_claim_finish(redis_conn, service_settings, new_job):
    record = new_job("/data/t.zarr", identity="etag")
    assert _queued_ids(redis_conn, service_settings) == [rq_job_id(record.id, 1)]
    running = claim_attempt(redis_conn, service_settings, record.id, 1, "w1")
    assert running.status is JobStatus.RUNNING and running.tries == 1 and running.worker == "w1"
    assert redis_conn.hget(RUNNING_KEY, record.id) == b"w1|1"
    assert claim_attempt(redis_conn, service_settings, record.id, 1, "w2") is None  # already running

    assert finish_attempt(
        redis_conn,
        service_settings,
        running,
        JobStatus.SUCCEEDED,
        result_json='{"x": 1}',
        counts={"ribosome": 2},
        timings_s={"total": 1.0},
    )
    done = JobRecord.fetch(redis_conn, record.id)
    assert done.status is JobStatus.SUCCEEDED and done.progress == 1.0 and done.counts == {"ribosome": 2}
    assert fetch_result(redis_conn, record.id) == '{"x": 1}'
    assert redis_conn.get(reuse_key(record.digest)) == record.id.encode()
    assert not redis_conn.hexists(RUNNING_KEY, record.id)
    assert 0 < redis_conn.ttl(job_key(record.id)) <= service_settings.result_ttl_s
    assert stats.read_job_counts(redis_conn) == {"succeeded": 1}


def test_stale_attempt_is_not_claimed(redis_conn, service_settings, new_job):
    record = new_job("/data/t.zarr")
    assert claim_attempt(redis_conn, service_settings, record.id, 2, "w1") is None
    assert claim_attempt(redis_conn, service_settings, "no-such-job", 1, "w1") is None
    assert JobRecord.fetch(redis_conn, record.id).status is JobStatus.QUEUED


def test_failure_records_the_error_type(redis_conn, service_settings, new_job):
    record = new_job("/data/t.zarr")
    running = claim_attempt(redis_conn, service_settings, record.id, 1, "w1")
    finish_attempt(redis_conn, service_settings, running, JobStatus.FAILED, error=ValueError("bad class"))
    failed = JobRecord.fetch(redis_conn, record.id)
    assert (failed.status, failed.error_type, failed.error_detail) == (
        JobStatus.FAILED,
        "ValueError",
        "bad class",
    )
    assert fetch_result(redis_conn, record.id) is None


def test_cancel_queued_is_immediate_and_running_is_flagged(redis_conn, service_settings, new_job):
    queued, running = new_job("/data/a.zarr"), new_job("/data/b.zarr")
    claim_attempt(redis_conn, service_settings, running.id, 1, "w1")

    assert cancel_job(redis_conn, service_settings, queued.id).status is JobStatus.CANCELLED
    assert rq_job_id(queued.id, 1) not in _queued_ids(redis_conn, service_settings)
    assert claim_attempt(redis_conn, service_settings, queued.id, 1, "w1") is None

    assert cancel_job(redis_conn, service_settings, running.id).status is JobStatus.RUNNING
    assert is_cancel_requested(redis_conn, running.id)
    with pytest.raises(InvalidJobStateError):
        cancel_job(redis_conn, service_settings, queued.id)


def test_job_cancelled_while_a_worker_dequeues_it_ends_cancelled(redis_conn, service_settings, new_job):
    record = new_job("/data/a.zarr")
    redis_conn.lrem(
        make_queue(redis_conn, service_settings).key, 1, rq_job_id(record.id, 1)
    )  # a worker took it
    redis_conn.set(f"octopi:cancel:{record.id}", "1")
    assert claim_attempt(redis_conn, service_settings, record.id, 1, "w1") is None
    assert JobRecord.fetch(redis_conn, record.id).status is JobStatus.CANCELLED


def test_reaper_requeues_jobs_of_dead_workers_then_fails_them(redis_conn, service_settings, new_job):
    record = new_job("/data/t.zarr")
    redis_conn.set(worker_key("alive"), "1")
    redis_conn.sadd(WORKERS_KEY, "alive", "dead")
    claim_attempt(redis_conn, service_settings, record.id, 1, "dead")

    assert reap_dead_workers(redis_conn, service_settings, self_name="alive") == [record.id]
    requeued = JobRecord.fetch(redis_conn, record.id)
    assert (requeued.status, requeued.attempt, requeued.tries) == (JobStatus.QUEUED, 2, 1)
    assert _queued_ids(redis_conn, service_settings)[0] == rq_job_id(record.id, 2)
    assert redis_conn.smembers(WORKERS_KEY) == {b"alive"}
    assert reap_dead_workers(redis_conn, service_settings) == []

    stale = claim_attempt(redis_conn, service_settings, record.id, 1, "dead")
    assert stale is None  # the old attempt cannot come back
    for attempt in range(2, service_settings.max_tries + 1):
        assert claim_attempt(redis_conn, service_settings, record.id, attempt, "dead") is not None
        assert reap_dead_workers(redis_conn, service_settings) == [record.id]
    failed = JobRecord.fetch(redis_conn, record.id)
    assert failed.status is JobStatus.FAILED and failed.error_type == "WorkerLostError"
    assert failed.tries == service_settings.max_tries


def test_reaper_leaves_live_workers_and_itself_alone(redis_conn, service_settings, new_job):
    a, b = new_job("/data/a.zarr"), new_job("/data/b.zarr")
    redis_conn.set(worker_key("alive"), "1")
    claim_attempt(redis_conn, service_settings, a.id, 1, "alive")
    claim_attempt(redis_conn, service_settings, b.id, 1, "me")
    assert reap_dead_workers(redis_conn, service_settings, self_name="me") == []
    assert redis_conn.hlen(RUNNING_KEY) == 2


def test_superseded_worker_cannot_overwrite_the_new_attempt(redis_conn, service_settings, new_job):
    record = new_job("/data/t.zarr")
    old = claim_attempt(redis_conn, service_settings, record.id, 1, "slow")
    reap_dead_workers(redis_conn, service_settings)
    assert not finish_attempt(redis_conn, service_settings, old, JobStatus.SUCCEEDED, result_json="{}")
    assert not requeue_attempt(redis_conn, service_settings, old)
    assert JobRecord.fetch(redis_conn, record.id).status is JobStatus.QUEUED
    assert fetch_result(redis_conn, record.id) is None


def test_shutdown_requeue_does_not_count_a_try(redis_conn, service_settings, new_job):
    record = new_job("/data/t.zarr")
    redis_conn.lrem(make_queue(redis_conn, service_settings).key, 1, rq_job_id(record.id, 1))  # dequeued
    running = claim_attempt(redis_conn, service_settings, record.id, 1, "w1")
    assert queue_depth(redis_conn, service_settings) == 0
    assert requeue_attempt(redis_conn, service_settings, running, count_try=False)
    back = JobRecord.fetch(redis_conn, record.id)
    assert (back.status, back.tries, back.attempt) == (JobStatus.QUEUED, 0, 2)
    assert _queued_ids(redis_conn, service_settings) == [rq_job_id(record.id, 2)]


def test_another_owner_cannot_cancel(redis_conn, service_settings, new_job):
    record = new_job("/data/a.zarr")
    record.update(redis_conn, client_id="key:alice")
    with pytest.raises(NoSuchJobError):
        cancel_job(redis_conn, service_settings, record.id, owner="key:bob")
    assert not is_cancel_requested(redis_conn, record.id)
    assert JobRecord.fetch(redis_conn, record.id).status is JobStatus.QUEUED
    assert (
        cancel_job(redis_conn, service_settings, record.id, owner="key:alice").status is JobStatus.CANCELLED
    )


def test_reused_job_is_a_new_succeeded_job_with_a_copy_of_the_result(redis_conn, service_settings, new_job):
    source = new_job("/data/t.zarr", identity="etag")
    claim_attempt(redis_conn, service_settings, source.id, 1, "w1")
    source = JobRecord.fetch(redis_conn, source.id)
    finish_attempt(
        redis_conn,
        service_settings,
        source,
        JobStatus.SUCCEEDED,
        result_json='{"p": 1}',
        counts={"ribosome": 1},
    )
    source = JobRecord.fetch(redis_conn, source.id)
    copy = JobRecord(id="copy", tomogram_uri=source.tomogram_uri, model_version="v1", client_id="key:bob")
    depth = queue_depth(redis_conn, service_settings)
    create_reused_job(redis_conn, service_settings, copy, source, '{"p": 1}')
    stored = JobRecord.fetch(redis_conn, "copy", owner="key:bob")
    assert (stored.status, stored.reused_from, stored.counts) == (
        JobStatus.SUCCEEDED,
        source.id,
        {"ribosome": 1},
    )
    assert fetch_result(redis_conn, "copy") == '{"p": 1}'
    assert 0 < redis_conn.ttl(job_key("copy")) <= service_settings.result_ttl_s
    assert queue_depth(redis_conn, service_settings) == depth  # nothing to compute


def _take_off_the_queue_and_die(redis_conn, settings) -> str:
    """What RQ's worker does before our task claims the attempt; the 'worker' is then gone."""
    from rq import Queue

    job, _ = Queue.dequeue_any([make_queue(redis_conn, settings)], None, connection=redis_conn)
    return job.id


def test_an_attempt_taken_off_the_queue_but_never_claimed_is_queued_again(
    redis_conn, service_settings, new_job
):
    from tests.waiting import wait_until
    from worker.jobs.lifecycle import reap_unclaimed_attempts
    from worker.jobs.queue import queue_position

    record = new_job("/data/t.zarr")
    assert _take_off_the_queue_and_die(redis_conn, service_settings) == rq_job_id(record.id, 1)
    assert queue_position(redis_conn, service_settings, JobRecord.fetch(redis_conn, record.id)) is None
    assert reap_unclaimed_attempts(redis_conn, service_settings) == []  # first sight: its worker may claim it
    wait_until(
        lambda: reap_dead_workers(redis_conn, service_settings),
        timeout_s=3 * service_settings.worker_ttl_s + 5,
        interval_s=0.2,
        what="the unclaimed attempt to be queued again",
    )
    again = JobRecord.fetch(redis_conn, record.id)
    assert (again.status, again.attempt, again.tries) == (JobStatus.QUEUED, 2, 0)
    assert _queued_ids(redis_conn, service_settings) == [rq_job_id(record.id, 2)]
    assert claim_attempt(redis_conn, service_settings, record.id, 1, "late-worker") is None  # stale now
    assert claim_attempt(redis_conn, service_settings, record.id, 2, "w2").status is JobStatus.RUNNING


def test_a_claimed_attempt_is_not_taken_as_unclaimed(redis_conn, service_settings, new_job):
    import time

    from worker.jobs.lifecycle import reap_unclaimed_attempts

    record = new_job("/data/t.zarr")
    _take_off_the_queue_and_die(redis_conn, service_settings)
    claim_attempt(redis_conn, service_settings, record.id, 1, "w1")
    assert reap_unclaimed_attempts(redis_conn, service_settings) == []
    time.sleep(service_settings.worker_ttl_s + 1.1)  # past the grace period: still running, not re-queued
    assert reap_unclaimed_attempts(redis_conn, service_settings) == []
    assert JobRecord.fetch(redis_conn, record.id).status is JobStatus.RUNNING


def test_each_owner_lists_its_own_jobs_newest_first_and_bounded(redis_conn, service_settings, monkeypatch):
    from worker.jobs import lifecycle
    from worker.jobs.keys import owner_jobs_key

    monkeypatch.setattr(lifecycle, "OWNER_JOBS_KEPT", 3)
    for i in range(4):
        lifecycle.create_job(
            redis_conn,
            service_settings,
            JobRecord(
                id=f"alice-{i}", tomogram_uri="/data/t.zarr", model_version="v1", client_id="key:alice"
            ),
        )
    lifecycle.create_job(
        redis_conn,
        service_settings,
        JobRecord(id="bob-0", tomogram_uri="/data/t.zarr", model_version="v1", client_id="key:bob"),
    )
    source = JobRecord(id="bob-0", tomogram_uri="/data/t.zarr", model_version="v1", client_id="key:bob")
    copy = JobRecord(id="alice-copy", tomogram_uri="/data/t.zarr", model_version="v1", client_id="key:alice")
    lifecycle.create_reused_job(redis_conn, service_settings, copy, source, "{}")
    assert lifecycle.recent_job_ids(redis_conn, "key:alice", limit=3) == ["alice-copy", "alice-3", "alice-2"]
    assert lifecycle.recent_job_ids(redis_conn, "key:alice", limit=1) == ["alice-copy"]
    assert lifecycle.recent_job_ids(redis_conn, "key:bob", limit=3) == ["bob-0"]
    assert lifecycle.recent_job_ids(redis_conn, "key:carol", limit=3) == []
    assert 0 < redis_conn.ttl(owner_jobs_key("key:alice")) <= service_settings.result_ttl_s
    with pytest.raises(ValueError, match="limit"):
        lifecycle.recent_job_ids(redis_conn, "key:alice", limit=4)
