import os

import pytest

from app.core.exceptions import UriNotAllowedError
from app.core.uri_policy import check_output_uri, check_tomogram_uri, normalize_uri, uri_scheme
from octopi_core.exceptions import TomogramUnreachableError
from octopi_core.settings import Settings


@pytest.fixture
def settings(tmp_path):
    return Settings(local_roots=[str(tmp_path)], allowed_hosts=[], redis_url="redis://unused")


def test_schemes(settings, tmp_path):
    assert uri_scheme("/a/b") == uri_scheme("file:///a") == "file"
    assert uri_scheme("S3://b/k") == "s3"
    check_tomogram_uri("s3://bucket/key.zarr", settings)
    check_tomogram_uri(str(tmp_path / "t.mrc"), settings)
    check_tomogram_uri((tmp_path / "t.mrc").as_uri(), settings)
    with pytest.raises(UriNotAllowedError, match="scheme 'ftp'"):
        check_tomogram_uri("ftp://h/t.mrc", settings)
    restricted = Settings(allowed_schemes="s3", redis_url="redis://unused", local_roots=[str(tmp_path)])
    with pytest.raises(UriNotAllowedError, match="use one of s3"):
        check_tomogram_uri(str(tmp_path / "t.mrc"), restricted)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.31.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "[::1]",
        "[fe80::1]",
        "[fd00:ec2::254]",
        "[::ffff:10.0.0.1]",
        "0.0.0.0",
        "224.0.0.1",
        "100.100.100.200",
        "localhost",
    ],
)
def test_private_loopback_link_local_and_metadata_hosts_are_refused(settings, host):
    with pytest.raises(UriNotAllowedError, match="OCTOPI_ALLOWED_HOSTS"):
        check_tomogram_uri(f"http://{host}/t.mrc", settings)


def test_public_addresses_pass_and_allow_list_opens_private_ones(tmp_path):
    open_settings = Settings(
        redis_url="redis://unused",
        local_roots=[str(tmp_path)],
        allowed_hosts="10.0.0.0/8, Minio.Internal, ::1",
    )
    check_tomogram_uri("https://8.8.8.8/t.mrc", open_settings)
    check_tomogram_uri("http://10.20.30.40:9000/t.mrc", open_settings)
    check_tomogram_uri("http://minio.internal/t.mrc", open_settings)  # not resolved: allow-listed by name
    check_tomogram_uri("http://[::1]:8080/t.mrc", open_settings)
    with pytest.raises(UriNotAllowedError):
        check_tomogram_uri("http://192.168.1.1/t.mrc", open_settings)


def test_unresolvable_hosts_and_bad_ports(settings):
    with pytest.raises(TomogramUnreachableError, match="cannot be resolved"):
        check_tomogram_uri("http://no-such-host.invalid/t.mrc", settings)
    with pytest.raises(UriNotAllowedError, match="port"):
        check_tomogram_uri("http://8.8.8.8:99999/t.mrc", settings)
    with pytest.raises(UriNotAllowedError, match="no host"):
        check_tomogram_uri("http:///t.mrc", settings)


def test_local_paths_stay_under_the_roots(settings, tmp_path):
    os.symlink("/etc", tmp_path / "etc-link")
    for uri in (
        "/etc/passwd",
        str(tmp_path / ".." / "x.mrc"),
        str(tmp_path / "etc-link" / "passwd"),
        "file://server/share/t.mrc",
        "t\x00.mrc",
    ):
        with pytest.raises(UriNotAllowedError):
            check_tomogram_uri(uri, settings)
    nowhere = Settings(environment="production", redis_url="redis://unused")
    with pytest.raises(UriNotAllowedError, match="not allowed here"):
        check_tomogram_uri(str(tmp_path / "t.mrc"), nowhere)


def test_outputs_go_to_files_or_s3_only(settings, tmp_path):
    check_output_uri("s3://bucket/out/", settings)
    check_output_uri(str(tmp_path / "out"), settings)
    with pytest.raises(UriNotAllowedError, match="scheme 'https'"):
        check_output_uri("https://8.8.8.8/upload", settings)


def test_normalize_uri_makes_local_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalize_uri("t.mrc") == str(tmp_path / "t.mrc")
    assert normalize_uri((tmp_path / "a b.mrc").as_uri()) == str(tmp_path / "a b.mrc")
    assert normalize_uri("s3://b/k") == "s3://b/k"


def test_normalize_uri_gives_the_parsed_form_and_refuses_what_the_parser_refuses():
    assert normalize_uri("HTTP://Example.org:8080/t.mrc#frag") == "http://example.org:8080/t.mrc"
    assert normalize_uri("s3://b/k/") == "s3://b/k"
    for uri in ("/data/t.zarr::", "~/t.mrc", "file://host/t.mrc"):
        with pytest.raises(UriNotAllowedError):
            normalize_uri(uri)
