from pathlib import Path

import pytest
from pydantic import ValidationError

from octopi_core.settings import DEFAULT_REDIS_URL, Settings

_REAL_KEY = "a-real-key-" + "0123456789abcdef" * 2  # production needs api_key_min_chars (32)


def test_defaults_are_generous_and_documented(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("REDIS_URL", "OCTOPI_REDIS_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.redis_url is None and settings.effective_redis_url == DEFAULT_REDIS_URL
    assert (
        settings.result_ttl_s == 7 * 24 * 3600 and settings.job_timeout_s >= 3600 and settings.max_tries == 3
    )
    assert settings.local_roots == [tmp_path.resolve()]
    assert settings.allowed_schemes == ["file", "http", "https", "s3"] and settings.allowed_hosts == []


def test_environment_variables(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("OCTOPI_ALLOWED_HOSTS", "127.0.0.1, 10.0.0.0/8")
    monkeypatch.setenv("OCTOPI_LOCAL_ROOTS", '["/data", "/scratch"]')
    monkeypatch.setenv("OCTOPI_API_KEYS", "k1,k2")
    monkeypatch.setenv("OCTOPI_JOB_TIMEOUT_S", "60")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio:9000")
    settings = Settings()
    assert settings.redis_url == "redis://cache:6379/1" and settings.job_timeout_s == 60
    assert settings.allowed_hosts == ["127.0.0.1", "10.0.0.0/8"]
    assert settings.local_roots == [Path("/data"), Path("/scratch")]
    assert [k.get_secret_value() for k in settings.api_keys] == ["k1", "k2"]
    assert settings.s3_endpoint_url == "http://minio:9000"


@pytest.mark.parametrize(
    "text,window", [("96", (96, 96, 96)), ("192,128,128", (192, 128, 128)), ("[64, 32, 32]", (64, 32, 32))]
)
def test_the_service_runs_the_pipeline_defaults_and_reads_windows_from_the_environment(
    monkeypatch, text, window
):
    from octopi_core.options import PredictOptions
    from worker.jobs.state import JobOptions

    # The worker must reach the benchmarked speed: same layout as the bare pipeline unless configured.
    pipeline, service = PredictOptions(), JobOptions().predict_options()
    assert Settings(redis_url="r://").window_vox == tuple(pipeline.window_vox) == tuple(service.window_vox)
    assert Settings(redis_url="r://").overlap == pipeline.overlap == service.overlap
    assert Settings(redis_url="r://").batch_size is pipeline.batch_size is service.batch_size is None
    monkeypatch.setenv("OCTOPI_WINDOW_VOX", text)
    assert Settings(redis_url="r://").window_vox == window


def test_production_refuses_placeholder_keys_and_reads_no_local_paths():
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(environment="production", api_keys="changethis", redis_url="r://")
    assert Settings(environment="production", api_keys=_REAL_KEY, redis_url="r://").local_roots == []
    assert Settings(environment="development", api_keys="changethis", redis_url="r://").api_keys


@pytest.mark.parametrize(
    "field, value",
    [
        ("allowed_schemes", "gopher"),
        ("device", "tpu"),
        ("window_vox", 30),
        ("window_vox", "96,96"),
        ("overlap", 1.0),
        ("max_tries", 0),
        ("heartbeat_s", 0),
    ],
)
def test_invalid_values_are_refused(field, value):
    with pytest.raises(ValidationError, match=field):
        Settings(redis_url="r://", **{field: value})


def test_worker_ttl_must_cover_two_heartbeats():
    with pytest.raises(ValidationError, match="worker_ttl_s"):
        Settings(redis_url="r://", heartbeat_s=10, worker_ttl_s=15)
