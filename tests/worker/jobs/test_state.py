import pytest

from worker.jobs.exceptions import NoSuchJobError
from worker.jobs.state import (
    JobOptions,
    JobRecord,
    JobStage,
    JobStatus,
    fetch_result,
    is_cancel_requested,
    request_cancel,
    result_digest,
    set_progress,
    set_stage,
    store_result,
)


def test_record_round_trips_through_a_hash(redis_conn):
    record = JobRecord(
        id="j1",
        tomogram_uri="s3://b/t.zarr",
        model_version="v1",
        options=JobOptions(classes=["ribosome"], voxel_size_a=7.5, tta=True, formats=["csv"]),
        stage=JobStage.INFERRING,
        progress=0.5,
        tries=2,
        attempt=3,
        counts={"ribosome": 4},
        timings_s={"total": 1.5},
        outputs=["/x/y.csv"],
    )
    record.save(redis_conn)
    back = JobRecord.fetch(redis_conn, "j1")
    assert back == record
    assert all(isinstance(v, str) for v in record.to_mapping().values())


def test_fetch_of_an_unknown_job_raises(redis_conn):
    with pytest.raises(NoSuchJobError):
        JobRecord.fetch(redis_conn, "nope")
    redis_conn.hset("octopi:job:partial", "progress", "0.3")  # a late progress write after expiry
    with pytest.raises(NoSuchJobError):
        JobRecord.fetch(redis_conn, "partial")


def test_update_writes_only_the_changed_fields(redis_conn):
    record = JobRecord(id="j2", tomogram_uri="/t.mrc", model_version="v1")
    record.save(redis_conn)
    redis_conn.hset(record.key, "progress", "0.7")  # written by someone else meanwhile
    record.update(redis_conn, status=JobStatus.RUNNING)
    back = JobRecord.fetch(redis_conn, "j2")
    assert back.status is JobStatus.RUNNING and back.progress == pytest.approx(0.7)


def test_stage_progress_cancel_and_result_helpers(redis_conn):
    JobRecord(id="j3", tomogram_uri="/t.mrc", model_version="v1").save(redis_conn)
    set_stage(redis_conn, "j3", "inferring")
    set_progress(redis_conn, "j3", 0.25)
    back = JobRecord.fetch(redis_conn, "j3")
    assert back.stage is JobStage.INFERRING and back.progress == pytest.approx(0.25) and back.inferring_at
    assert not is_cancel_requested(redis_conn, "j3")
    request_cancel(redis_conn, "j3", 60)
    assert is_cancel_requested(redis_conn, "j3")
    assert fetch_result(redis_conn, "j3") is None
    store_result(redis_conn, "j3", '{"a": 1}', 60)
    assert fetch_result(redis_conn, "j3") == '{"a": 1}'
    with pytest.raises(ValueError):
        set_stage(redis_conn, "j3", "sleeping")


def test_result_digest_ignores_outputs_but_not_what_changes_picks():
    base = JobOptions(classes=["ribosome", "apo-ferritin"])
    digest = result_digest("s3://b/t", "etag1", "v1", base)
    assert digest == result_digest(
        "s3://b/t",
        "etag1",
        "v1",
        JobOptions(classes=["apo-ferritin", "ribosome"], formats=["csv"], output_uri="/o", batch_size=9),
    )
    for changed in (
        result_digest("s3://b/t", "etag2", "v1", base),
        result_digest("s3://b/u", "etag1", "v1", base),
        result_digest("s3://b/t", "etag1", "v2", base),
        result_digest("s3://b/t", "etag1", "v1", JobOptions(classes=["ribosome"])),
        result_digest("s3://b/t", "etag1", "v1", base.model_copy(update={"tta": True})),
        result_digest("s3://b/t", "etag1", "v1", base.model_copy(update={"match_spectrum": True})),
        result_digest("s3://b/t", "etag1", "v1", base.model_copy(update={"voxel_size_a": 8.0})),
    ):
        assert changed != digest
    assert result_digest("s3://b/t", "", "v1", base) is None


def test_results_are_reused_only_within_one_owner_unless_shared():
    options = JobOptions()
    alice = result_digest("s3://b/t", "etag1", "v1", options, owner="key:alice")
    assert alice == result_digest("s3://b/t", "etag1", "v1", options, owner="key:alice")
    assert alice != result_digest("s3://b/t", "etag1", "v1", options, owner="key:bob")
    assert alice != result_digest("s3://b/t", "etag1", "v1", options)  # None: the shared digest


def test_fetch_for_another_owner_looks_like_a_missing_job(redis_conn):
    JobRecord(id="j1", tomogram_uri="s3://b/t.zarr", model_version="v1", client_id="key:alice").save(
        redis_conn
    )
    assert JobRecord.fetch(redis_conn, "j1", owner="key:alice").client_id == "key:alice"
    with pytest.raises(NoSuchJobError) as theirs:
        JobRecord.fetch(redis_conn, "j1", owner="key:bob")
    with pytest.raises(NoSuchJobError) as unknown:
        JobRecord.fetch(redis_conn, "j2", owner="key:bob")
    assert str(theirs.value).replace("j1", "?") == str(unknown.value).replace("j2", "?")
