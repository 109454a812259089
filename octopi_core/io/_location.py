"""Where a tomogram lives: URI parsing, fsspec filesystems and storage options, and the mapping of
third-party failures to the typed errors of :mod:`octopi_core.exceptions`.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import botocore.exceptions
import fsspec
import fsspec.exceptions

from octopi_core.exceptions import (
    CorruptTomogramError,
    TomogramAccessDeniedError,
    TomogramError,
    TomogramNotFoundError,
    TomogramUnreachableError,
    UnsupportedUriError,
)

__all__ = ["storage_options_without_redirects"]  # otherwise package-private: siblings import its _ helpers


def storage_options_without_redirects(uri: str) -> dict | None:
    """fsspec options that stop an HTTP(S) fetch of ``uri`` from following redirects (None for other schemes).

    A service that checked a URL's host against an SSRF policy must not then be redirected elsewhere.
    """
    return {"allow_redirects": False} if uri.lower().startswith("http") else None


_HTTP_CONNECT_TIMEOUT_S = 30.0
_HTTP_READ_TIMEOUT_S = 120.0
_AWS_CREDENTIAL_ENV = (  # any of these set means "use the environment's credentials", else anonymous S3
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
_UNREACHABLE_ERRORS = (  # failures to reach the host at all
    aiohttp.ClientConnectionError,
    TimeoutError,
    ConnectionError,
    fsspec.exceptions.FSTimeoutError,
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
)


@dataclass
class _Location:
    """Where a tomogram lives: ``scheme`` is local/http/s3; ``path`` is what ``fs`` takes."""

    uri: str
    scheme: str
    path: str
    options: dict
    fs: Any

    def child(self, name: str) -> str:
        return f"{self.path}/{name}"


def _locate(uri: str, storage_options: dict | None) -> _Location:
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"uri must be a non-empty string, got {uri!r}")
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):
        kind, path = "local", os.path.abspath(os.path.expanduser(uri))
    elif scheme == "file" and parts.netloc in ("", "localhost"):
        kind, path = "local", os.path.abspath(urllib.request.url2pathname(parts.path))
    elif scheme in ("http", "https") and parts.netloc:
        kind, path = "http", uri.rstrip("/")
    elif scheme == "s3" and parts.netloc:
        kind, path = "s3", (parts.netloc + parts.path).rstrip("/")
    else:
        raise UnsupportedUriError(
            f"unsupported tomogram URI {uri!r} (scheme {scheme + '://' if scheme else 'none'}); "
            "use a local path, file://, http(s):// or s3://"
        )
    options = {**_default_storage_options(kind), **(storage_options or {})}
    protocol = {"local": "file", "http": "http", "s3": "s3"}[kind]
    return _Location(
        uri=uri, scheme=kind, path=path, options=options, fs=fsspec.filesystem(protocol, **options)
    )


def _default_storage_options(kind: str) -> dict:
    if kind == "http":
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=_HTTP_CONNECT_TIMEOUT_S, sock_read=_HTTP_READ_TIMEOUT_S
        )
        return {"client_kwargs": {"timeout": timeout}, "skip_instance_cache": True}
    if kind == "s3":
        env = os.environ
        creds_file = env.get("AWS_SHARED_CREDENTIALS_FILE", os.path.expanduser("~/.aws/credentials"))
        has_credentials = any(env.get(k) for k in _AWS_CREDENTIAL_ENV) or os.path.isfile(creds_file)
        options: dict[str, Any] = {
            "anon": not has_credentials,
            "skip_instance_cache": True,
            "config_kwargs": {
                "connect_timeout": _HTTP_CONNECT_TIMEOUT_S,
                "read_timeout": _HTTP_READ_TIMEOUT_S,
                "retries": {"max_attempts": 3},
            },
        }
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["client_kwargs"] = {"endpoint_url": endpoint}
        return options
    return {}


def _async_options(loc: _Location) -> dict:
    """Options for zarr's async filesystem: cached, since fsspec never closes uncached async sessions."""
    return {k: v for k, v in loc.options.items() if k != "skip_instance_cache"}


@contextlib.contextmanager
def _as_tomogram_errors(uri: str) -> Iterator[None]:
    """Re-raise third-party failures as the matching TomogramError, naming ``uri``."""
    try:
        yield
    except (TomogramError, MemoryError):
        raise
    except Exception as e:
        raise _tomogram_error(e, uri) from e


def _tomogram_error(e: Exception, uri: str) -> TomogramError:
    detail = f"{type(e).__name__}: {e}"
    status = getattr(e, "status", None)
    response = getattr(e, "response", None)  # botocore ClientError
    code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
    if isinstance(e, PermissionError) or status in (401, 403) or code in ("AccessDenied", "403"):
        return TomogramAccessDeniedError(f"access to tomogram {uri} was denied ({detail})")
    if (
        isinstance(e, (FileNotFoundError, NotADirectoryError))
        or status in (404, 410)
        or code in ("NoSuchKey", "NoSuchBucket", "404")
    ):
        return TomogramNotFoundError(f"tomogram {uri} was not found ({detail})")
    if isinstance(e, _UNREACHABLE_ERRORS) or (status is not None and int(status) >= 500):
        return TomogramUnreachableError(f"could not reach the host serving tomogram {uri} ({detail})")
    if isinstance(e, aiohttp.ClientResponseError):
        return TomogramError(f"reading tomogram {uri} failed with HTTP {status} ({detail})")
    if isinstance(e, OSError) and not isinstance(e, IsADirectoryError):
        return TomogramError(f"I/O error reading tomogram {uri} ({detail})")
    return CorruptTomogramError(f"tomogram {uri} is corrupt or unreadable ({detail})")


def _read_or_none(loc: _Location, path: str, end: int | None = None) -> bytes | None:
    """Bytes of ``path`` (up to ``end``), or None when nothing is there; other failures propagate."""
    try:
        return loc.fs.cat_file(path, start=0 if end else None, end=end)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _identity(loc: _Location, path: str) -> str:
    """ETag, or size and modification time, of ``path``; "" when the store reports neither."""
    try:
        info = loc.fs.info(path)
    except FileNotFoundError:
        return ""
    tag = info.get("ETag") or info.get("etag")
    if tag:
        return str(tag).strip('"')
    stamp = info.get("mtime") or info.get("LastModified") or info.get("Last-Modified")
    return f"{info.get('size')}-{stamp}" if stamp is not None else ""
