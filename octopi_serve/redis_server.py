"""A private redis-server child process on a free loopback port (``serve`` without REDIS_URL, tests, bench).

Needs the ``redis-server`` binary (Debian/Ubuntu package ``redis-server``; the service images include it).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

__all__ = ["RedisServer", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """Start and stop a redis-server bound to 127.0.0.1.

    Args:
        port: TCP port (default a free one).
        directory: working directory for its files (default a new temporary directory).
        persistent: keep an append-only file (fsync every write) so a restart loses nothing;
            default False (memory only).
        executable: path of ``redis-server`` (default: found on PATH).

    Raises:
        FileNotFoundError: no ``redis-server`` binary.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        directory: str | Path | None = None,
        persistent: bool = False,
        executable: str | None = None,
    ) -> None:
        found = executable or shutil.which("redis-server")
        if not found:
            raise FileNotFoundError(
                "redis-server is not installed; install it (apt-get install redis-server) "
                "or set REDIS_URL to an existing Redis"
            )
        self.executable = found
        self.port = port or free_port()
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="octopi-redis-")
        self.directory = Path(directory or self._tmp.name)  # type: ignore[union-attr]
        self.directory.mkdir(parents=True, exist_ok=True)
        self.persistent = persistent
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        args = [
            self.executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        args += (
            ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        )
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if client.ping():
                    return self
            except redis.exceptions.RedisError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.directory / "redis.log"
                raise RuntimeError(
                    f"redis-server did not start on port {self.port}: "
                    f"{log.read_text()[-500:] if log.exists() else 'no log'}"
                )
            time.sleep(0.05)

    def stop(self, timeout_s: float = 10.0, *, kill: bool = False) -> None:
        """Stop the server: SIGTERM (clean shutdown), or SIGKILL with ``kill``."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        """Stop the server and remove a temporary directory."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
