from rq.job import validate_job_id

from worker.jobs import keys


def test_keys_live_under_the_octopi_namespace():
    built = [
        keys.job_key("abc"),
        keys.result_key("abc"),
        keys.cancel_key("abc"),
        keys.reuse_key("d1"),
        keys.worker_key("w1"),
        keys.rate_key("ip:1.2.3.4", 7),
        keys.histogram_key("job_duration_s"),
        keys.idempotency_key("key:ff", "k"),
        keys.RUNNING_KEY,
        keys.WORKERS_KEY,
    ]
    assert all(k.startswith("octopi:") for k in built)
    assert keys.job_key("abc") == "octopi:job:abc"
    assert keys.result_key("abc") == "octopi:result:abc"
    assert len(set(built)) == len(built)


def test_idempotency_key_hashes_the_client_key():
    a = keys.idempotency_key("ip:1.1.1.1", "some key: with spaces/and:colons")
    assert a == keys.idempotency_key("ip:1.1.1.1", "some key: with spaces/and:colons")
    assert a != keys.idempotency_key("ip:2.2.2.2", "some key: with spaces/and:colons")
    assert " " not in a and a.count(":") == 4  # octopi:idempotency:ip:<addr>:<hash>


def test_rq_job_ids_are_valid_rq_ids_and_differ_per_attempt():
    first, second = keys.rq_job_id("0123abcd", 1), keys.rq_job_id("0123abcd", 2)
    validate_job_id(first)
    validate_job_id(second)
    assert first != second


def test_preview_and_owner_index_keys():
    assert keys.preview_key("abc") == "octopi:preview:abc"
    assert keys.owner_jobs_key("key:ff") == "octopi:owner-jobs:key:ff"
    assert keys.preview_key("abc") not in (keys.result_key("abc"), keys.job_key("abc"))
