import pytest

from worker.jobs import stats


def test_histogram_is_cumulative_with_sum_and_count(redis_conn):
    for value in (0.2, 3.0, 3.0, 7200.0):
        stats.observe_duration(redis_conn, stats.JOB_DURATION, value)
    buckets, total, count = stats.read_histogram(redis_conn, stats.JOB_DURATION)
    as_dict = dict(buckets)
    assert as_dict[0.5] == 1 and as_dict[5.0] == 3 and as_dict[3600.0] == 3 and as_dict[float("inf")] == 4
    assert buckets[-1][0] == float("inf") and max(b for b, _ in buckets[:-1]) == 3600.0
    assert total == pytest.approx(7206.2) and count == 4


def test_job_end_counts_statuses_and_tomograms_per_hour(redis_conn):
    stats.record_job_end(
        redis_conn, "a", "succeeded", job_duration_s=2.0, inference_duration_s=1.0, now_s=10_000
    )
    stats.record_job_end(redis_conn, "b", "succeeded", now_s=13_000)
    stats.record_job_end(redis_conn, "c", "failed", now_s=13_000)
    assert stats.read_job_counts(redis_conn) == {"succeeded": 2, "failed": 1}
    assert stats.tomograms_last_hour(redis_conn, now_s=13_500) == 2
    assert stats.tomograms_last_hour(redis_conn, now_s=14_000) == 1
    assert stats.read_histogram(redis_conn, stats.INFERENCE_DURATION)[2] == 1
