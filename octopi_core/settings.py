"""Service settings: one typed class read from the environment, shared by the gateway and the workers.

Every field is read from ``OCTOPI_<FIELD>`` (upper case), except the Redis URL, which is also taken
from plain ``REDIS_URL``, and the S3 endpoint, also taken from ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL``. A ``.env`` file in the working directory is read too; unknown keys are ignored.
List fields take a comma-separated string (``OCTOPI_ALLOWED_HOSTS=127.0.0.1,10.0.0.0/8``) or a JSON
list. Durations end in ``_s`` (seconds), sizes in ``_bytes``, ``_voxels`` or ``_vox``.

Only entry points (``app/`` and ``worker/`` start-up) read settings; compute modules of
``octopi_core`` take explicit arguments and never import this module.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from enum import Enum
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .limits import DEFAULT_MAX_CHUNKS, TomogramLimits, default_max_bytes, default_max_voxels
from .options import DEFAULT_BATCH_SIZE, DEFAULT_OVERLAP, DEFAULT_WINDOW_VOX, parse_window, window_triple

__all__ = ["Environment", "Settings", "get_settings", "DEFAULT_REDIS_URL"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"  # used by `gateway`/`worker` when REDIS_URL is unset
_PLACEHOLDER_SECRETS = {"changethis", "changeme", "secret", "password", "test", "testing", "example", ""}
_KNOWN_SCHEMES = {"file", "http", "https", "s3"}


def _default_registry_uri() -> str:
    data_home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return str(data_home / "octopi-serve" / "registry")


def _split_list(value: object) -> object:
    """Accept ``"a, b"`` as well as a JSON list or a Python list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Environment(str, Enum):
    """Where the service runs.

    - ``development``: a laptop or CI; the gateway may run without API keys (with a warning), short or
      placeholder keys are tolerated, ``/docs`` is served, local paths under the working directory are
      readable by default.
    - ``production``: the gateway needs API keys of at least ``api_key_min_chars`` characters,
      placeholders are refused, ``/docs`` is off unless ``docs_enabled``, and no local path is readable
      unless ``local_roots`` names it.
    """

    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Configuration of the gateway and the workers (environment variables ``OCTOPI_*``).

    Attributes:
        environment: ``development`` (default) or ``production``; see :class:`Environment`.
        redis_url: Redis URL (env ``REDIS_URL`` or ``OCTOPI_REDIS_URL``). Unset: ``serve`` starts its
            own redis-server; ``gateway``/``worker`` use ``redis://127.0.0.1:6379/0``.
        registry_uri: model registry root, local directory or ``s3://`` prefix (default
            ``$XDG_DATA_HOME/octopi-serve/registry``); with no champion there, the shipped model is served.
        queue_name: RQ queue the gateway fills and the workers drain (default ``octopi``).
        result_ttl_s: how long finished jobs and their picks stay in Redis (default 7 days).
        job_timeout_s: longest a single attempt of a job may run before it fails (default 3 h).
        max_tries: attempts a job gets when its worker dies (kill -9, OOM, node loss) before it fails
            (default 3).
        heartbeat_s: interval between worker heartbeats, and between dead-worker sweeps (default 5 s).
        worker_ttl_s: a worker whose last heartbeat is older than this is dead and its job is re-queued
            (default 30 s; must exceed twice ``heartbeat_s``).
        api_keys: bearer tokens accepted by the gateway. Empty (default) means no authentication, which only
            development allows (the gateway logs a warning); a production gateway refuses to start without
            keys. Each job belongs to the key that submitted it (without keys: to the peer address), and
            any other client gets 404 for it.
        allowed_schemes: URI schemes accepted for tomograms and outputs, from ``file`` (local paths too),
            ``http``, ``https``, ``s3`` (default all four).
        allowed_hosts: host names, IP addresses or CIDR networks that may be fetched even though they are
            loopback, private, link-local or cloud-metadata addresses (SSRF allow-list; default none).
        local_roots: directories under which local paths may be read or written. Default: the working
            directory in development, nothing in production.
        max_tomogram_voxels: tomograms with more voxels as loaded (after resampling to the model's voxel size)
            are refused with 413, by the gateway and again by the worker before it reads a voxel. Default:
            ``octopi_core.limits.default_max_voxels``: half the memory of the process (cgroup limit, else RAM)
            less 1.5 GiB, over 48 B per voxel (16 GiB: 163 M voxels); set it from the workers' memory when the
            gateway runs on another machine.
        max_tomogram_bytes: tomograms whose level read is stored in more bytes are refused with 413 (default:
            the same memory share, ``octopi_core.limits.default_max_bytes``).
        max_body_bytes: larger request bodies are refused with 413 (default 64 KiB).
        rate_limit_per_minute: requests per client (API key, else IP) and minute; 0 disables (default 600).
        open_timeout_s: time the gateway may spend opening a tomogram's metadata, and the total deadline of
            each of its remote requests (default 20 s).
        redis_retry_s: how long a worker keeps retrying to store a finished job while Redis is away
            (default 120 s).
        device: ``auto`` (a GPU when visible, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        torch_threads: CPU threads per worker for torch; None keeps torch's default.
        amp: run the network in mixed precision where the device does it natively: bf16 on CUDA and on
            CPUs with AVX512-BF16 or AMX (about twice as fast there as fp32). False: fp32 (default True).
        window_vox: sliding-window size, voxels: ``96``, ``192,128,128`` or ``[192, 128, 128]``, multiples of 4
            (default 96; ``256,128,128`` with overlap 0.0625 is 2x faster, see ``octopi_core.options``).
        overlap: window overlap fraction in [0, 1) (default 0.25).
        batch_size: windows per forward pass; unset = as many as fit the device's voxel budget.
            Cancellation is checked between batches.
        model_cache_size: loaded models a worker keeps (default 2).
        worker_overlap: a worker hands each job's localization, result and outputs to a background thread
            and takes the next job meanwhile, so reading and inference overlap the previous job's
            localization; at most one job waits for or is in that thread (default True). The job stays owned
            by the worker until its outcome is stored, so a killed worker's job is still re-queued.
        finisher_grace_s: a job's localization and outputs still running this long after its ``job_timeout_s``
            (a hung write: they cannot be interrupted) fail it as timed out, and the worker exits 1 to be
            replaced (default 60 s).
        s3_endpoint_url: S3 endpoint for ``s3://`` tomograms and outputs (env ``OCTOPI_S3_ENDPOINT_URL``, else
            ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``); trusted. The entry points pass it to
            ``octopi_core.io.service_storage_options``; None leaves the endpoint to botocore.
        readyz_requires_worker: ``/readyz`` also needs a live worker (default True). Set False where workers
            scale to zero (KEDA), so idle gateways stay in their Service and can take the job that wakes them.
        host, port: where ``serve``/``gateway`` listen (default 127.0.0.1:8000).
        max_tomogram_chunks: zarr levels cut into more chunks are refused with 422 (default 100,000; each
            chunk is one read).
        max_opens_per_client: tomogram opens one client may have running in the gateway at once; past it the
            client gets 429 with Retry-After, other clients are unaffected (default 2).
        remote_read_timeout_s: total deadline of each remote request (connect, headers and body) a worker
            makes while reading a tomogram; a server trickling bytes is cut off after it (default 300 s).
        api_key_min_chars: shortest API key production accepts (default 32; ``openssl rand -hex 32``
            makes a good one).
        auth_failures_per_minute: failed authentications per peer address and minute; past it every
            request from that address, even with a valid key, gets 429 until the minute ends (default 20;
            0 disables).
        share_results: reuse a finished result for an identical request of another client (default False:
            results are reused only within one client). The other client gets a new job of its own.
        trusted_proxies: IP addresses or CIDR networks of reverse proxies whose ``X-Forwarded-For`` names
            the client (default none: the header is ignored and the peer address is the client). Behind an
            ingress, list it, or every client shares the ingress's address for the anonymous rate limit and
            the failed-authentication limit.
        docs_enabled: serve ``/docs``, ``/redoc`` and ``/openapi.json`` (default: on in development, off
            in production).
        metrics_enabled: serve ``/metrics`` without a key (default True): Prometheus scrapes it without
            credentials, and it holds only aggregates (route templates, counts, durations; no job ids,
            URIs or keys). Set False where the gateway port is reachable by untrusted clients and
            nothing scrapes it.
        ui_enabled: serve the jobs page at ``/ui`` (and redirect ``/`` to it); env ``OCTOPI_UI`` (default
            True). The page holds no data itself: it asks for an API key and calls the JSON routes with it.
        training_data: what the retraining job fine-tunes the champion on (``--data``): a copick project's
            config JSON or a folder of ``NAME.zarr`` + ``NAME.picks.json``, local or ``s3://`` (default None:
            retrain on generated tomograms only). Read by the retraining image's entry point
            (``docker/train-entrypoint.sh``), which turns these settings into ``octopi-serve retrain`` flags.
        training_picks_users: copick users whose picks are the truth (``--picks-user``, merged; default: the
            one there is). The service writes its own picks as user ``octopi``; name the curators here.
        training_picks_sessions: copick sessions, one per picks user, or none (``--picks-session``).
        training_tomo_type: copick tomogram type (``--tomo-type``; default: the only one).
        promotion_min_gain_f_beta: with training data, the candidate must beat the champion on the held-out
            part of that data by more than 0 and at least this weighted F-beta (``--min-gain``; default 0.0).
        promotion_max_forgetting_f_beta: with training data, the candidate may score at most this much lower
            than the champion on the synthetic held-out set (``--max-forgetting``; default 0.02). Both
            defaults are ``octopi_core.promotion``'s.
    """

    model_config = SettingsConfigDict(
        env_prefix="OCTOPI_", env_file=".env", extra="ignore", populate_by_name=True
    )

    environment: Environment = Environment.DEVELOPMENT
    redis_url: str | None = Field(
        None, validation_alias=AliasChoices("REDIS_URL", "OCTOPI_REDIS_URL", "redis_url")
    )
    registry_uri: str = Field(default_factory=_default_registry_uri)
    queue_name: str = Field("octopi", pattern=r"^[A-Za-z0-9_.-]+$")
    result_ttl_s: int = Field(7 * 24 * 3600, ge=60)
    job_timeout_s: int = Field(3 * 3600, ge=1)
    max_tries: int = Field(3, ge=1, le=100)
    heartbeat_s: float = Field(5.0, gt=0)
    worker_ttl_s: float = Field(30.0, gt=0)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    allowed_schemes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["file", "http", "https", "s3"]
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    local_roots: Annotated[list[Path] | None, NoDecode] = None
    max_tomogram_voxels: int = Field(default_factory=default_max_voxels, ge=1)
    max_tomogram_bytes: int = Field(default_factory=default_max_bytes, ge=1)
    max_body_bytes: int = Field(64 * 1024, ge=256)
    rate_limit_per_minute: int = Field(600, ge=0)
    open_timeout_s: float = Field(20.0, gt=0)
    redis_retry_s: float = Field(120.0, ge=0)
    device: str = "auto"
    torch_threads: int | None = Field(None, ge=1)
    amp: bool = True
    window_vox: Annotated[tuple[int, int, int], NoDecode] = DEFAULT_WINDOW_VOX
    overlap: float = Field(DEFAULT_OVERLAP, ge=0.0, lt=1.0)
    batch_size: int | None = Field(DEFAULT_BATCH_SIZE, ge=1)
    model_cache_size: int = Field(2, ge=1)
    worker_overlap: bool = True
    finisher_grace_s: float = Field(60.0, gt=0)
    s3_endpoint_url: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "OCTOPI_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "s3_endpoint_url"
        ),
    )
    readyz_requires_worker: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # -- access (issue 14) --
    api_key_min_chars: int = Field(32, ge=1)
    auth_failures_per_minute: int = Field(20, ge=0)
    share_results: bool = False
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    docs_enabled: bool | None = None
    metrics_enabled: bool = True
    ui_enabled: bool = Field(True, validation_alias=AliasChoices("OCTOPI_UI", "ui_enabled"))
    # -- bounded work per request (issue 14); max_tomogram_voxels/bytes and open_timeout_s above --
    max_tomogram_chunks: int = Field(DEFAULT_MAX_CHUNKS, ge=1)
    max_opens_per_client: int = Field(2, ge=1)
    remote_read_timeout_s: float = Field(300.0, gt=0)
    # -- retraining on the users' data (issue 16); read by docker/train-entrypoint.sh --
    training_data: str | None = None
    training_picks_users: Annotated[list[str], NoDecode] = Field(default_factory=list)
    training_picks_sessions: Annotated[list[str], NoDecode] = Field(default_factory=list)
    training_tomo_type: str | None = None
    # octopi_core.promotion's defaults, restated because that module loads torch (tests/core/test_promotion.py)
    promotion_min_gain_f_beta: float = Field(0.0, ge=0.0, le=1.0)
    promotion_max_forgetting_f_beta: float = Field(0.02, ge=0.0, le=1.0)

    @field_validator(
        "api_keys",
        "allowed_hosts",
        "local_roots",
        "trusted_proxies",
        "training_picks_users",
        "training_picks_sessions",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("training_data", "training_tomo_type", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # compose passes ${OCTOPI_TRAINING_DATA:-} through as "", which means: no training data.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("allowed_schemes", mode="before")
    @classmethod
    def _known_schemes(cls, value: object) -> object:
        schemes = [str(s).strip().lower().removesuffix("://") for s in _split_list(value)]  # type: ignore[attr-defined]
        unknown = sorted(set(schemes) - _KNOWN_SCHEMES)
        if unknown:
            raise ValueError(f"allowed_schemes must be among {sorted(_KNOWN_SCHEMES)}, got {unknown}")
        return schemes

    @field_validator("window_vox", mode="before")
    @classmethod
    def _window_triple(cls, value: object) -> tuple[int, int, int]:
        if isinstance(value, str):  # "96", "192,128,128" or "[192, 128, 128]" from the environment
            return parse_window(value)
        return window_triple(value)  # type: ignore[arg-type]

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies holds IP addresses or CIDR networks, got {entry!r}"
                ) from None
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("auto", "cpu", "cuda") and not (value.startswith("cuda:") and value[5:].isdigit()):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.worker_ttl_s < 2 * self.heartbeat_s:
            raise ValueError(
                f"worker_ttl_s ({self.worker_ttl_s}) must be at least twice heartbeat_s ({self.heartbeat_s})"
            )
        if self.training_picks_sessions and len(self.training_picks_sessions) != len(
            self.training_picks_users
        ):
            raise ValueError(
                "OCTOPI_TRAINING_PICKS_SESSIONS needs one session per OCTOPI_TRAINING_PICKS_USERS user, got "
                f"users {self.training_picks_users}, sessions {self.training_picks_sessions}"
            )
        if self.environment is Environment.PRODUCTION:
            weak = [k for k in self.api_keys if k.get_secret_value().strip().lower() in _PLACEHOLDER_SECRETS]
            if weak:
                raise ValueError("api_keys holds a placeholder secret; set real keys in production")
            short = [k for k in self.api_keys if len(k.get_secret_value()) < self.api_key_min_chars]
            if short:
                raise ValueError(
                    f"OCTOPI_API_KEYS holds {len(short)} key(s) shorter than OCTOPI_API_KEY_MIN_CHARS "
                    f"({self.api_key_min_chars}); production needs long random keys (openssl rand -hex 32)"
                )
        if self.docs_enabled is None:
            self.docs_enabled = self.environment is Environment.DEVELOPMENT
        if self.local_roots is None:
            self.local_roots = [Path.cwd()] if self.environment is Environment.DEVELOPMENT else []
        self.local_roots = [Path(p).expanduser().resolve() for p in self.local_roots]
        return self

    def check_gateway(self) -> None:
        """Refuse to serve the API without authentication in production (workers need no keys).

        Raises:
            ValueError: production and ``api_keys`` is empty.
        """
        if self.environment is Environment.PRODUCTION and not self.api_keys:
            raise ValueError(
                "OCTOPI_API_KEYS is empty: a production gateway does not serve without API keys "
                "(set OCTOPI_API_KEYS, or OCTOPI_ENVIRONMENT=development for a local, unauthenticated gateway)"
            )

    @property
    def tomogram_limits(self) -> TomogramLimits:
        """The size and chunk limits the gateway and the workers apply to every tomogram."""
        return TomogramLimits(
            max_voxels=self.max_tomogram_voxels,
            max_bytes=self.max_tomogram_bytes,
            max_chunks=self.max_tomogram_chunks,
        )

    @property
    def effective_redis_url(self) -> str:
        """The Redis URL, or the local default when none is set."""
        return self.redis_url or DEFAULT_REDIS_URL


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
