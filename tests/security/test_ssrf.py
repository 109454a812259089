"""SSRF attacks: IPv6 spellings of internal IPv4 addresses (policy level, no connection) and redirects."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.core.exceptions import UriNotAllowedError
from app.core.uri_policy import check_tomogram_uri
from octopi_core.exceptions import RedirectRefusedError
from octopi_core.io import open_tomogram, service_storage_options
from octopi_core.settings import Settings
from tests.app.conftest import assert_problem


@pytest.fixture
def settings(tmp_path):
    return Settings(local_roots=[str(tmp_path)], allowed_hosts=[], redis_url="redis://unused")


@pytest.mark.parametrize(
    "host",
    [
        "[::127.0.0.1]",  # IPv4-compatible
        "[::169.254.169.254]",
        "[64:ff9b::127.0.0.1]",  # NAT64 well-known prefix
        "[64:ff9b::a9fe:a9fe]",
        "[64:ff9b:1::a00:1]",  # NAT64 local-use prefix
        "[::ffff:0:7f00:1]",  # SIIT
        "[::ffff:0:a00:1]",
        "[2002:7f00:1::]",  # 6to4
        "[2002:a9fe:a9fe::1]",
        "[2002:c0a8:101::1]",
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
    ],
)
def test_ipv6_forms_embedding_internal_ipv4_are_refused(settings, host):
    with pytest.raises(UriNotAllowedError, match="OCTOPI_ALLOWED_HOSTS"):
        check_tomogram_uri(f"http://{host}/t.mrc", settings)


@pytest.mark.parametrize("host", ["[64:ff9b::808:808]", "[2002:808:808::1]", "[2606:4700::1111]"])
def test_ipv6_forms_embedding_public_ipv4_pass(settings, host):
    check_tomogram_uri(f"http://{host}/t.mrc", settings)


@pytest.fixture
def redirecting_server(http_server, tomograms):
    """A loopback server answering every request with 302 to a real MRC on ``http_server``."""
    shutil.copy(tomograms.small_mrc, http_server.root / "redirect-target.mrc")

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_HEAD(self) -> None:
            self._redirect()

        def do_GET(self) -> None:
            self._redirect()

        def _redirect(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"{http_server.url}/redirect-target.mrc")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("name", ["t.mrc", "t.zarr", "t"])
def test_a_redirect_is_reported_as_refused_not_corrupt(redirecting_server, name):
    uri = f"{redirecting_server}/{name}"
    with pytest.raises(RedirectRefusedError, match=f"{name}.*redirect"):
        open_tomogram(uri, storage_options=service_storage_options(uri))


def test_the_gateway_answers_a_redirect_with_redirect_refused(client, redirecting_server):
    response = client.post("/predict", json={"tomogram_uri": f"{redirecting_server}/t.mrc"})
    assert "redirect" in assert_problem(response, 422, "redirect-refused")["detail"]
