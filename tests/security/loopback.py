"""A hostile loopback HTTP server for the attack tests: serves files from a dict that a test may swap between
requests, can delay each answer, and can trickle a body one byte at a time."""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["HostileServer", "hostile_server", "files_of"]


@dataclass
class HostileServer:
    """What the server answers: ``files`` (URL path -> bytes; others are 404), ``delay_s`` before each GET
    body, ``trickle_s`` between body bytes (0: send at once). ``gets`` counts GETs per path."""

    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    delay_s: float = 0.0
    trickle_s: float = 0.0
    gets: dict[str, int] = field(default_factory=dict)


def files_of(directory: Path, prefix: str) -> dict[str, bytes]:
    """Every file under ``directory`` as ``{"/<prefix>/<relative path>": bytes}``."""
    return {
        f"/{prefix}/{p.relative_to(directory).as_posix()}": p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@contextmanager
def hostile_server() -> Iterator[HostileServer]:
    """Run a :class:`HostileServer` on 127.0.0.1 for the ``with`` block."""
    state = HostileServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            path = urllib.parse.urlsplit(self.path).path
            data = state.files.get(path)
            if data is None:
                self.send_error(404)
                return
            if body:
                state.gets[path] = state.gets.get(path, 0) + 1
                time.sleep(state.delay_s)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not body:
                return
            try:
                if state.trickle_s <= 0:
                    self.wfile.write(data)
                    return
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(state.trickle_s)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up: what a deadline should make it do

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
