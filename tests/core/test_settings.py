from pathlib import Path

import pytest
from pydantic import ValidationError

from octopi_core.settings import DEFAULT_REDIS_URL, Settings


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


def test_production_refuses_placeholder_keys_and_reads_no_local_paths():
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(environment="production", api_keys="changethis", redis_url="r://")
    assert Settings(environment="production", api_keys="a-real-key", redis_url="r://").local_roots == []
    assert Settings(environment="development", api_keys="changethis", redis_url="r://").api_keys


@pytest.mark.parametrize(
    "field, value",
    [
        ("allowed_schemes", "gopher"),
        ("device", "tpu"),
        ("window_vox", 30),
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
