"""Attacks on the URI parser: forms that fsspec or the OS would open differently from what was checked."""

from __future__ import annotations

import pytest

from octopi_core.exceptions import UnsupportedUriError
from octopi_core.io import parse_uri, write_output
from tests.app.conftest import assert_problem


@pytest.mark.parametrize(
    "uri",
    [
        "/data/t.zarr::",  # fsspec cuts the path at '::'
        "/data/t.zarr/.zattrs::/run.picks.json",
        "simplecache::s3://bucket/t.mrc",
        "file:///data/x::memory://y",
        "s3://bucket/a::b",
        "http://8.8.8.8/t.mrc::zip://x",
        "zip://inner.mrc::file:///data/a.zip",
        "memory://t.mrc",
        "file://localhost/data/t.mrc",  # fsspec reads 'localhost/data/t.mrc', relative to the cwd
        "file://server/share/t.mrc",
        "file:relative/t.mrc",
        "file:///data/t.mrc?x=1",
        "~/t.mrc",
        "~root/t.mrc",
        "data/x://y",
        "http://user:pw@8.8.8.8/t.mrc",
        "http://8.8.8.8\\@127.0.0.1/t.mrc",
        "http://[v1.x]/t.mrc",
        "s3://bucket:9000/t.mrc",
        "s3://user@bucket/t.mrc",
    ],
)
def test_ambiguous_uris_are_refused_by_the_parser(uri):
    with pytest.raises(UnsupportedUriError):
        parse_uri(uri)


def test_the_parser_keeps_ipv6_literal_hosts():
    parsed = parse_uri("http://[::1]:8080/a/t.mrc?v=2")
    assert (parsed.scheme, parsed.host, parsed.port, parsed.path) == ("http", "::1", 8080, "/a/t.mrc?v=2")
    assert parsed.url == "http://[::1]:8080/a/t.mrc?v=2"
    assert parse_uri("S3://bucket/key/").url == "s3://bucket/key"


def test_double_colon_in_output_uri_is_refused(client, tomograms):
    """'<other tomogram>/.zattrs::' passed the root check, and fsspec then wrote over .zattrs."""
    for output_uri in (f"{tomograms.small}/.zattrs::", f"{tomograms.root}::"):
        body = {"tomogram_uri": str(tomograms.small), "output_uri": output_uri}
        assert_problem(client.post("/predict", json=body), 422, "uri-not-allowed")


def test_double_colon_in_tomogram_uri_is_refused(client, tomograms):
    for uri in (f"{tomograms.small}::", f"{tomograms.small_mrc}::file:///etc/passwd"):
        assert_problem(client.post("/predict", json={"tomogram_uri": uri}), 422, "uri-not-allowed")


def test_the_writer_refuses_chaining_itself(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    with pytest.raises(UnsupportedUriError):
        write_output(f"{victim}::/run.picks.json", "overwritten", local_roots=[tmp_path])
    assert victim.read_text() == "original"
