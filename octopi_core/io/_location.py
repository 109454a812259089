"""Where a tomogram lives: the parsed URI (:mod:`.uri`), fsspec filesystems and storage options, the check
that local files stay inside the tomogram's directory, and the mapping of third-party failures to the typed
errors of :mod:`octopi_core.exceptions`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import botocore.exceptions
import fsspec
import fsspec.exceptions

from octopi_core.exceptions import (
    CorruptTomogramError,
    RedirectRefusedError,
    TomogramAccessDeniedError,
    TomogramError,
    TomogramNotFoundError,
    TomogramUnreachableError,
)

from .uri import parse_uri

__all__ = ["service_storage_options"]  # otherwise package-private: siblings import its _ helpers


def service_storage_options(
    uri: str, *, s3_endpoint_url: str | None = None, request_timeout_s: float | None = None
) -> dict | None:
    """fsspec options for a service reading or writing ``uri``: no HTTP redirects, the configured S3 endpoint,
    and a deadline on every request.

    A service that checked a URL's host against an SSRF policy must not then be redirected elsewhere, and a
    server that trickles bytes must not hold the reading thread past ``request_timeout_s``.

    Args:
        uri: the tomogram or output URI.
        s3_endpoint_url: S3 endpoint for ``s3://`` URIs (the service's ``s3_endpoint_url`` setting); None
            leaves it to botocore (``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, else AWS).
        request_timeout_s: deadline of one request, seconds: HTTP total (connect, headers and body); S3
            connect and each socket read, one attempt only (botocore has no total deadline; the endpoint
            is the service's own, trusted). Default None: the reader's defaults (HTTP total 300 s).

    Returns:
        The options, or None when the defaults are right.

    Raises:
        ValueError: ``request_timeout_s`` is not a positive number.
    """
    if request_timeout_s is not None and not request_timeout_s > 0:
        raise ValueError(f"request_timeout_s must be positive, got {request_timeout_s!r}")
    scheme = uri.split(":", 1)[0].lower() if isinstance(uri, str) else ""
    if scheme in ("http", "https"):
        options: dict[str, Any] = {"allow_redirects": False}
        if request_timeout_s is not None:
            options["client_kwargs"] = {"timeout": _http_timeout(request_timeout_s)}
        return options
    if scheme == "s3":
        options = {}
        if s3_endpoint_url:
            options["client_kwargs"] = {"endpoint_url": s3_endpoint_url}
        if request_timeout_s is not None:
            options["config_kwargs"] = {
                "connect_timeout": min(_HTTP_CONNECT_TIMEOUT_S, request_timeout_s),
                "read_timeout": min(_HTTP_READ_TIMEOUT_S, request_timeout_s),
                "retries": {"total_max_attempts": 1},  # no retries after the caller gave up
            }
        return options or None
    return None


_HTTP_CONNECT_TIMEOUT_S = 30.0
_HTTP_READ_TIMEOUT_S = 120.0  # longest silence within a response
_HTTP_TOTAL_TIMEOUT_S = 300.0  # longest whole request: a server trickling bytes is cut off here
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


class _RedirectRefused(Exception):
    """An HTTP answer was a redirect while redirects are off (raised inside aiohttp, mapped below)."""


async def _refuse_redirect(response: aiohttp.ClientResponse) -> None:
    """aiohttp ``raise_for_status`` hook: a 3xx reaching the caller is a redirect that was not followed."""
    if 300 <= response.status < 400:
        raise _RedirectRefused(response.status)


@dataclass
class _Location:
    """Where a tomogram lives: ``scheme`` is local/http/s3; ``path`` is what ``fs`` takes (local: the real
    path, symlinks resolved)."""

    uri: str
    scheme: str
    path: str
    options: dict
    fs: Any

    def child(self, name: str) -> str:
        return f"{self.path}/{name}"


def _locate(uri: str, storage_options: dict | None) -> _Location:
    parsed = parse_uri(uri)
    kind = {"file": "local", "http": "http", "https": "http", "s3": "s3"}[parsed.scheme]
    if kind == "local":
        with _as_tomogram_errors(uri):  # an unreadable component (/proc/1/cwd) is denied, not a crash
            path = os.path.realpath(parsed.path)
    else:
        path = parsed.url if kind == "http" else parsed.url.removeprefix("s3://")
    options = _merged(_default_storage_options(kind), storage_options or {})
    protocol = {"local": "file", "http": "http", "s3": "s3"}[kind]
    return _Location(
        uri=uri, scheme=kind, path=path, options=options, fs=fsspec.filesystem(protocol, **options)
    )


def _merged(defaults: dict, overrides: dict) -> dict:
    """``defaults`` updated by ``overrides``, one level deep (``client_kwargs`` keep their defaults)."""
    out = dict(defaults)
    for key, value in overrides.items():
        both_dicts = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = {**out[key], **value} if both_dicts else value
    return out


def _check_inside(loc: _Location, path: str) -> None:
    """Refuse a local file whose real path leaves the tomogram's directory (a symlink pointing out).

    Raises:
        TomogramAccessDeniedError: naming the URI and the entry as given, never the link's target.
    """
    if loc.scheme != "local":
        return
    real, root = os.path.realpath(path), loc.path.rstrip(os.sep)
    if real != loc.path and not real.startswith(root + os.sep):
        name = os.path.relpath(path, loc.path)
        raise TomogramAccessDeniedError(
            f"tomogram {loc.uri}: {name!r} links outside the tomogram; links must stay inside it"
        )


def _default_storage_options(kind: str) -> dict:
    if kind == "http":
        hooks = {"timeout": _http_timeout(_HTTP_TOTAL_TIMEOUT_S), "raise_for_status": _refuse_redirect}
        return {"client_kwargs": hooks, "skip_instance_cache": True}
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
        return options  # the endpoint: storage_options, else botocore reads AWS_ENDPOINT_URL(_S3) itself
    return {}


def _http_timeout(total_s: float) -> aiohttp.ClientTimeout:
    """A deadline on the whole request, not only on each silence: a trickle of bytes does not extend it."""
    return aiohttp.ClientTimeout(
        total=total_s,
        sock_connect=min(_HTTP_CONNECT_TIMEOUT_S, total_s),
        sock_read=min(_HTTP_READ_TIMEOUT_S, total_s),
    )


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
    redirect = _redirect_in(e)
    if redirect is not None:
        return RedirectRefusedError(
            f"the server of tomogram {uri} answered HTTP {redirect.args[0]}, a redirect; redirects are not "
            "followed: give the final URL"
        )
    # An OSError's own text names the resolved path it failed on: give only its reason.
    reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    detail = f"{type(e).__name__}: {reason}"
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


def _redirect_in(e: BaseException) -> _RedirectRefused | None:
    """The refused redirect behind ``e`` (fsspec re-raises some failures as FileNotFoundError from them)."""
    seen: BaseException | None = e
    for _ in range(8):
        if seen is None or isinstance(seen, _RedirectRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _read_or_none(loc: _Location, path: str, end: int | None = None) -> bytes | None:
    """Bytes of ``path`` (up to ``end``), or None when nothing is there; other failures propagate."""
    _check_inside(loc, path)
    try:
        return loc.fs.cat_file(path, start=0 if end else None, end=end)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _identity(loc: _Location, path: str) -> str:
    """ETag, or size and modification time, of ``path``; "" when the store reports neither."""
    _check_inside(loc, path)
    try:
        info = loc.fs.info(path)
    except FileNotFoundError:
        return ""
    return _info_identity(info)


def _info_identity(info: dict) -> str:
    """ETag, or size and modification time, from an fsspec ``info``/listing entry; "" when it has neither."""
    tag = info.get("ETag") or info.get("etag")
    if tag:
        return str(tag).strip('"')
    stamp = info.get("mtime") or info.get("LastModified") or info.get("Last-Modified")
    return f"{info.get('size')}-{stamp}" if stamp is not None else ""
