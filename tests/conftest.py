"""Shared fixtures: a local HTTP server with Range support and a local S3 API (moto server mode)."""

from __future__ import annotations

import email.utils
import socket
import threading
import urllib.parse
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

_S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _RangeRequestHandler(BaseHTTPRequestHandler):
    """Serves files under ``root`` with HEAD, ``Range: bytes=a-b``, ETag; 403 under /forbidden/, 404 else."""

    protocol_version = "HTTP/1.1"
    root: Path

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def _serve(self, send_body: bool) -> None:
        relative = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        if relative.split("/", 1)[0] == "forbidden":
            self.send_error(403)
            return
        target = (self.root / relative).resolve()
        if not target.is_file() or self.root.resolve() not in target.parents:
            self.send_error(404)
            return
        data = target.read_bytes()
        stat = target.stat()
        start, end, status = 0, len(data) - 1, 200
        spec = self.headers.get("Range", "")
        if spec.startswith("bytes="):
            first, _, last = spec[len("bytes=") :].split(",")[0].partition("-")
            if first:
                start, end = int(first), min(int(last), len(data) - 1) if last else len(data) - 1
            else:
                start = max(0, len(data) - int(last))
            if start >= len(data) or start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start : end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"')
        self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if send_body:
            self.wfile.write(body)


@dataclass
class HttpServer:
    """A running local HTTP server: files under ``root`` are served at ``url``."""

    root: Path
    url: str


@pytest.fixture(scope="session")
def http_server(tmp_path_factory: pytest.TempPathFactory):
    """A threaded HTTP server on 127.0.0.1 serving a temporary directory, with Range and HEAD support."""
    root = tmp_path_factory.mktemp("http-root")
    handler = type("Handler", (_RangeRequestHandler,), {"root": root})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield HttpServer(root=root, url=f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


@dataclass
class S3Server:
    """A running moto S3 API at ``endpoint_url``; ``upload`` puts a local file or directory tree."""

    endpoint_url: str

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def upload(self, local: Path, bucket: str, key: str) -> str:
        """Upload ``local`` (file, or directory recursively) to ``s3://bucket/key``; return that URI."""
        client = self.client()
        local = Path(local)
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        for path in files:
            name = key if path == local else f"{key}/{path.relative_to(local).as_posix()}"
            client.upload_file(str(path), bucket, name)
        return f"s3://{bucket}/{key}"

    def __str__(self) -> str:
        return self.endpoint_url


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on a free local port, started once per session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield S3Server(endpoint_url=f"http://127.0.0.1:{port}")
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server, with AWS credentials and AWS_ENDPOINT_URL pointing at it."""
    for key, value in _S3_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    name = f"tomo-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


# -- service fixtures (app/, worker/): a private Redis, a model registry, test tomograms ---------------------

_QUIET_BACKGROUND_BIAS = 4.0  # added to the background logit: near-empty segmentations, fast localization


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """A private redis-server (memory only) on a free loopback port, for the whole session."""
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    from octopi_serve.redis_server import RedisServer

    server = RedisServer(directory=tmp_path_factory.mktemp("redis")).start()
    yield server
    server.close()


@pytest.fixture
def redis_conn(redis_server):
    """A client of the private Redis, emptied before each test."""
    import redis

    connection = redis.Redis.from_url(redis_server.url)
    connection.flushall()
    yield connection
    connection.close()


@dataclass
class ModelRegistryInfo:
    """A registry under ``root`` whose champion is a random-weight model with an input spectrum (white) to
    match, plus a 'quiet' version that finds (almost) nothing, so large test tomograms localize fast."""

    root: Path
    champion: str
    quiet: str


@pytest.fixture(scope="session")
def model_registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistryInfo:
    import torch

    from octopi_core.model import build_model, save_checkpoint
    from octopi_core.model_config import ModelConfig
    from octopi_core.registry import Registry

    base = tmp_path_factory.mktemp("models")
    registry = Registry(base / "registry")
    torch.manual_seed(0)
    save_checkpoint(build_model(), ModelConfig(input_spectrum=(0.0,) * 48), base / "champion")
    champion = registry.add(base / "champion")
    quiet_model = build_model()
    state = quiet_model.state_dict()
    last_bias = [
        name for name, p in state.items() if p.ndim == 1 and p.shape[0] == ModelConfig().out_channels
    ][-1]
    state[last_bias][0] += _QUIET_BACKGROUND_BIAS
    quiet_model.load_state_dict(state)
    save_checkpoint(quiet_model, ModelConfig(), base / "quiet")
    quiet = registry.add(base / "quiet")
    registry.set_champion(champion, reason="tests")
    return ModelRegistryInfo(root=base / "registry", champion=champion, quiet=quiet)


@dataclass
class TomogramSet:
    """Test tomograms under ``root``: ``small`` (32x64x64 OME-Zarr), ``small_mrc`` (same volume as MRC) and
    ``large`` (32x192x192, 64 windows of 32 voxels: seconds of inference, for cancel and kill tests)."""

    root: Path
    small: Path
    small_mrc: Path
    large: Path


@pytest.fixture(scope="session")
def tomograms(tmp_path_factory: pytest.TempPathFactory) -> TomogramSet:
    from octopi_core.synth import PhantomSettings, make_phantom, write_phantom

    root = tmp_path_factory.mktemp("tomograms")
    small = make_phantom(11, PhantomSettings(shape_zyx=(32, 64, 64)))
    small_path, _ = write_phantom(small, root, "small")
    small_mrc, _ = write_phantom(small, root, "small_mrc", fmt="mrc")
    large_path, _ = write_phantom(make_phantom(12, PhantomSettings(shape_zyx=(32, 192, 192))), root, "large")
    return TomogramSet(root=root, small=small_path, small_mrc=small_mrc, large=large_path)


@pytest.fixture
def service_settings(redis_server, model_registry: ModelRegistryInfo, tomograms: TomogramSet, tmp_path: Path):
    """Settings for tests: private Redis, the test registry, tomograms and tmp_path as local roots, window 32."""
    from octopi_core.settings import Settings

    return Settings(
        redis_url=redis_server.url,
        registry_uri=str(model_registry.root),
        queue_name="octopi-test",
        local_roots=[str(tomograms.root), str(tmp_path)],
        window_vox=32,
        overlap=0.25,
        batch_size=2,
        torch_threads=1,
        device="cpu",
        heartbeat_s=0.5,
        worker_ttl_s=2.0,
        rate_limit_per_minute=0,
        open_timeout_s=10.0,
        redis_retry_s=5.0,
        allowed_hosts=["127.0.0.1"],
    )
