"""The one URI parser: the gateway's policy checks, and the readers and writers open, what it returns.

A URI is a local path, ``file:///abs/path``, ``http(s)://host[:port]/path`` or ``s3://bucket/key``. Every
form that fsspec (or the OS) would read differently from a plain split is refused instead of guessed at:

- ``::`` anywhere outside an IPv6 literal host (fsspec URL chaining: ``simplecache::``, ``x.zarr::``);
- other schemes (``zip://``, ``memory://``, ``gs://``, ...) and ``://`` inside a local path;
- ``file:`` with a host (``file://server/x``, even ``localhost``), a relative path, a query or a fragment;
- a leading ``~`` (home-directory expansion), NUL and other control characters;
- http(s) with user info (``user@host``), a backslash or whitespace, a non-ASCII host or a bad port;
- s3 without a bucket, or with a port, user info, query or fragment.
"""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass

from octopi_core.exceptions import UnsupportedUriError

__all__ = ["ParsedUri", "parse_uri", "uri_scheme"]

_SCHEMES = ("file", "http", "https", "s3")
_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")  # ASCII host names and IPv4 forms


@dataclass(frozen=True)
class ParsedUri:
    """A URI split the one way the whole service uses.

    Attributes:
        uri: the URI as given (name it in messages: it holds no resolved path, cwd or home directory).
        scheme: ``file`` (plain local paths too), ``http``, ``https`` or ``s3``.
        host: lower-case host name or IP address (no brackets) for http(s), the bucket for s3, "" for file.
        port: the explicit port of an http(s) URI, else None.
        path: file: the absolute local path, symlinks and ``..`` not resolved (the OS resolves them);
            http(s): the URL path plus ``?query``; s3: the key, without a leading or trailing ``/``.
    """

    uri: str
    scheme: str
    host: str
    port: int | None
    path: str

    @property
    def url(self) -> str:
        """The form handed to the opener: the local path, the http(s) URL or ``s3://bucket/key``."""
        if self.scheme == "file":
            return self.path
        if self.scheme == "s3":
            return f"s3://{self.host}/{self.path}".rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{host}{port}{self.path}".rstrip("/")


def uri_scheme(uri: str) -> str:
    """The scheme of ``uri`` as written, lower case: ``file`` for a plain path (no other check).

    Args:
        uri: any string.

    Returns:
        ``file``, ``http``, ``https``, ``s3`` or whatever other scheme the string names.
    """
    scheme = urllib.parse.urlsplit(uri).scheme.lower() if isinstance(uri, str) else ""
    return "file" if scheme == "" or (len(scheme) == 1 and os.name == "nt") else scheme


def parse_uri(uri: str) -> ParsedUri:
    """Split ``uri`` into scheme, host, port and path, refusing every ambiguous form (module docstring).

    Args:
        uri: local path, ``file://``, ``http(s)://`` or ``s3://`` URI. A relative path is taken from the
            working directory.

    Returns:
        The :class:`ParsedUri`.

    Raises:
        ValueError: ``uri`` is not a non-empty string.
        UnsupportedUriError: the scheme is not supported, or the URI has a form refused above.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"uri must be a non-empty string, got {uri!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in uri):
        raise UnsupportedUriError(f"URI {uri!r} contains control characters")
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError as e:
        raise UnsupportedUriError(f"URI {uri!r} is not a valid URI ({e})") from None
    scheme = uri_scheme(uri)
    if scheme not in _SCHEMES:
        raise UnsupportedUriError(
            f"unsupported URI {uri!r} (scheme {scheme + '://'}); use a local path, file://, http(s):// or s3://"
        )
    ipv6_host = re.match(r"^[A-Za-z0-9+.-]+://\[[0-9A-Fa-f:.]+(%[^\]/]*)?\]", uri)
    if "::" in (uri[ipv6_host.end() :] if ipv6_host and scheme in ("http", "https") else uri):
        raise UnsupportedUriError(f"URI {uri!r} contains '::' (URL chaining is not supported)")
    if scheme == "file":
        return ParsedUri(uri, "file", "", None, _local_path(uri, parts))
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsupportedUriError(f"URI {uri!r} carries user info ('user@'); it is not supported")
    if scheme == "s3":
        return _s3(uri, parts)
    return _http(uri, parts, scheme)


def _local_path(uri: str, parts: urllib.parse.SplitResult) -> str:
    if parts.scheme.lower() == "file":
        if parts.netloc:
            raise UnsupportedUriError(f"file URI {uri!r} names a host; use file:///absolute/path")
        if parts.query or parts.fragment or uri.endswith(("?", "#")):
            raise UnsupportedUriError(f"file URI {uri!r} has a query or fragment")
        raw = urllib.request.url2pathname(parts.path)
        if not os.path.isabs(raw):
            raise UnsupportedUriError(f"file URI {uri!r} is not absolute; use file:///absolute/path")
    else:
        raw = uri
    if "\x00" in raw:
        raise UnsupportedUriError(f"local path {uri!r} contains a NUL character")
    if raw.startswith("~"):
        raise UnsupportedUriError(f"local path {uri!r} starts with '~'; give the path without '~'")
    if "://" in raw:
        raise UnsupportedUriError(f"local path {uri!r} contains '://'")
    # Joined, not normalised: ".." after a symlink is resolved by the OS, not lexically.
    return raw if os.path.isabs(raw) else os.path.join(os.getcwd(), raw)


def _s3(uri: str, parts: urllib.parse.SplitResult) -> ParsedUri:
    bucket = parts.netloc
    if not bucket:
        raise UnsupportedUriError(f"unsupported URI {uri!r} (s3:// names no bucket); use s3://bucket/key")
    if ":" in bucket or not _HOST_NAME.match(bucket.lower()):
        raise UnsupportedUriError(f"s3 URI {uri!r} has an invalid bucket name")
    if parts.query or parts.fragment or uri.endswith(("?", "#")):
        raise UnsupportedUriError(f"s3 URI {uri!r} has a query or fragment")
    return ParsedUri(uri, "s3", bucket, None, parts.path.strip("/"))


def _http(uri: str, parts: urllib.parse.SplitResult, scheme: str) -> ParsedUri:
    if "\\" in uri or any(c.isspace() for c in uri):
        raise UnsupportedUriError(f"URI {uri!r} contains a backslash or whitespace")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsupportedUriError(f"URI {uri!r} has no host")
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            raise UnsupportedUriError(f"URI {uri!r} has an invalid IPv6 host") from None
    elif not _HOST_NAME.match(host):
        raise UnsupportedUriError(f"URI {uri!r} has an invalid host name (use its ASCII/punycode form)")
    try:
        port = parts.port
    except ValueError:
        raise UnsupportedUriError(f"URI {uri!r} has an invalid port") from None
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return ParsedUri(uri, scheme, host, port, path)
