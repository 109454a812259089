"""The bad-input matrix: every malformed or refused request gets the right problem+json and never a 5xx."""

from __future__ import annotations

import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.app.conftest import assert_problem


def _post(client, body):
    return client.post("/predict", json=body)


def test_malformed_json_is_400(client):
    response = client.post(
        "/predict", content=b'{"tomogram_uri": "/x",', headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "malformed-json")


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"tomogram_uri": 5},
        {"tomogram_uri": ""},
        {"tomogram_uri": "/x", "tta": "yes"},
        {"tomogram_uri": "/x", "classes": "ribosome"},
        {"tomogram_uri": "/x", "classes": []},
        {"tomogram_uri": "/x", "voxel_size_a": "10"},
        {"tomogram_uri": "/x", "voxel_size_a": -1},
        {"tomogram_uri": "/x", "voxel_size_a": 0},
        {"tomogram_uri": "/x", "formats": ["xml"]},
        {"tomogram_uri": "/x", "formats": []},
        {"tomogram_uri": "/x", "model_version": "../../etc"},
        {"tomogram_uri": "/x", "unknown_field": 1},
        {"tomogram_uri": "/x", "output_uri": None, "extra": {"nested": True}},
    ],
)
def test_invalid_bodies_are_422(client, body):
    body_out = assert_problem(_post(client, body), 422, "validation-error")
    assert body_out["errors"]


def test_wrong_content_type_is_422(client):
    response = client.post("/predict", content=b"tomogram_uri=/x", headers={"Content-Type": "text/plain"})
    assert_problem(response, 422)


def test_huge_bodies_are_413(client, service_settings):
    padding = "x" * (service_settings.max_body_bytes + 10)
    assert_problem(_post(client, {"tomogram_uri": padding}), 413, "request-too-large")
    chunks = (b'{"tomogram_uri": "' + b"x" * 4096 for _ in range(40))  # streamed, no Content-Length
    response = client.post("/predict", content=chunks, headers={"Content-Type": "application/json"})
    assert_problem(response, 413, "request-too-large")


@pytest.mark.parametrize(
    "uri",
    [
        "ftp://example.org/t.mrc",
        "gopher://example.org/t",
        "javascript:alert(1)",
        "data:,hello",
        "file://otherhost/data/t.mrc",
        "s3:///no-bucket",
        "/etc/passwd",
        "file:///etc/passwd",
        "../../../../etc/passwd",
        "~/secret.mrc",
    ],
)
def test_refused_schemes_and_paths_are_422(client, uri):
    assert_problem(_post(client, {"tomogram_uri": uri}), 422, "uri-not-allowed")


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:9/t.mrc",
        "http://localhost:9/t.mrc",
        "http://127.0.0.2/t.mrc",
        "http://0.0.0.0/t.mrc",
        "http://10.0.0.1/t.mrc",
        "http://192.168.1.10/t.mrc",
        "http://172.16.0.5/t.mrc",
        "http://100.64.0.1/t",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/t.mrc",
        "http://[fd00:ec2::254]/t",
        "http://[::ffff:127.0.0.1]/t.mrc",
        "https://[fe80::1]/t.mrc",
        "http://2130706433/t.mrc",
    ],
)
def test_ssrf_targets_are_refused(make_client, uri):
    client = make_client(allowed_hosts=[])
    assert_problem(_post(client, {"tomogram_uri": uri}), 422, "uri-not-allowed")


def test_symlinks_out_of_the_roots_are_refused(client, tmp_path):
    os.symlink("/etc", tmp_path / "escape")
    assert_problem(
        _post(client, {"tomogram_uri": str(tmp_path / "escape" / "passwd")}), 422, "uri-not-allowed"
    )


def test_output_uris_are_checked_too(client, tomograms):
    for output in ("http://example.org/out", "/etc/octopi-out", "ftp://x/y"):
        response = _post(client, {"tomogram_uri": str(tomograms.small), "output_uri": output})
        assert_problem(response, 422, "uri-not-allowed")


def test_missing_and_corrupt_tomograms_are_422(client, tomograms, tmp_path):
    assert_problem(_post(client, {"tomogram_uri": str(tmp_path / "missing.mrc")}), 422, "tomogram-not-found")
    (tmp_path / "corrupt.mrc").write_bytes(os.urandom(4096))
    assert_problem(_post(client, {"tomogram_uri": str(tmp_path / "corrupt.mrc")}), 422, "corrupt-tomogram")
    (tmp_path / "notes.txt").write_text("not a tomogram at all")
    response = _post(client, {"tomogram_uri": str(tmp_path / "notes.txt")})
    assert response.status_code == 422 and response.json()["type"].endswith(
        ("corrupt-tomogram", "unsupported-format")
    )


def test_unreachable_http_host_is_422(client):
    response = _post(client, {"tomogram_uri": "http://127.0.0.1:9/t.mrc"})  # allow-listed, nothing listening
    assert_problem(response, 422, "tomogram-unreachable")


def test_bad_voxel_size_override_is_422(client, tomograms):
    assert_problem(
        _post(client, {"tomogram_uri": str(tomograms.small), "voxel_size_a": 500.0}),
        422,
        "invalid-voxel-size",
    )


def test_unknown_model_and_class_are_422(client, tomograms):
    assert_problem(
        _post(client, {"tomogram_uri": str(tomograms.small), "model_version": "octopi-unet-nope"}),
        422,
        "unknown-model-version",
    )
    assert_problem(
        _post(client, {"tomogram_uri": str(tomograms.small), "classes": ["unicorn"]}), 422, "invalid-value"
    )


def test_tomograms_over_the_size_limit_are_413(make_client, tomograms):
    client = make_client(max_tomogram_voxels=32 * 64 * 64 - 1)
    body = assert_problem(_post(client, {"tomogram_uri": str(tomograms.small)}), 413, "tomogram-too-large")
    assert "131072 voxels" in body["detail"]
    client = make_client(max_tomogram_bytes=1000)
    assert_problem(_post(client, {"tomogram_uri": str(tomograms.small)}), 413, "tomogram-too-large")


def test_overlong_idempotency_key_is_422(client, tomograms):
    response = client.post(
        "/predict", json={"tomogram_uri": str(tomograms.small)}, headers={"Idempotency-Key": "k" * 300}
    )
    assert_problem(response, 422, "validation-error")


def test_unknown_routes_and_methods_are_problems(client):
    assert_problem(client.get("/nope"), 404)
    assert_problem(client.put("/predict", json={}), 405)


def test_redirects_are_not_followed(client, http_server, tomograms):
    """A server that redirects elsewhere (e.g. to a metadata address) does not get the gateway to follow."""
    shutil.copy(tomograms.small_mrc, http_server.root / "target.mrc")
    hits: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_HEAD(self) -> None:
            self._redirect()

        def do_GET(self) -> None:
            self._redirect()

        def _redirect(self) -> None:
            hits.append(self.path)
            self.send_response(302)
            self.send_header("Location", f"{http_server.url}/target.mrc")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}/t.mrc"
        response = _post(client, {"tomogram_uri": uri})
        assert 400 <= response.status_code < 500 and hits
        direct = _post(client, {"tomogram_uri": f"{http_server.url}/target.mrc"})
        assert direct.status_code == 202  # the target itself is fine: only the redirect was refused
    finally:
        server.shutdown()
        server.server_close()
