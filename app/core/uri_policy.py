"""Which tomogram and output URIs the service may touch (no SSRF, no reading outside the local roots).

Rules, checked before anything is fetched:

- The scheme must be in ``allowed_schemes`` (a plain path counts as ``file``).
- ``http(s)``: every address the host resolves to must be a public (global) address. Loopback, private,
  link-local, shared, reserved and multicast addresses, and cloud metadata endpoints (169.254.169.254,
  fd00:ec2::254, ...) are refused unless the host name, the address or a network containing it is in
  ``allowed_hosts``. Redirects are not followed when fetching (see ``worker.tasks``).
- ``file``/plain paths: the real path (symlinks resolved) must lie under one of ``local_roots``.
- ``s3``: needs a bucket; the endpoint comes from the settings or the environment and is trusted.
- Outputs may go to ``file`` or ``s3`` only.

Note: a host name is resolved here and again when fetched; a DNS answer that changes in between
(DNS rebinding) is not caught. Pin hosts through ``allowed_hosts`` or use ``s3://`` where that matters.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from octopi_core.exceptions import TomogramUnreachableError
from octopi_core.settings import Settings

from .exceptions import UriNotAllowedError

__all__ = ["check_tomogram_uri", "check_output_uri", "uri_scheme", "normalize_uri"]

_METADATA_ADDRESSES = {
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
}
_RESOLVE_TIMEOUT_S = 5.0
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def uri_scheme(uri: str) -> str:
    """``file``, ``http``, ``https``, ``s3`` or whatever else the URI says (a plain path is ``file``)."""
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    return "file" if scheme == "" else scheme


def _allowed_entries(
    settings: Settings,
) -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names, networks = set(), []
    for entry in settings.allowed_hosts:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            names.add(entry.strip().lower().rstrip("."))
    return names, networks


def _blocked(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address in _METADATA_ADDRESSES or not address.is_global or address.is_multicast


def _resolve(host: str, port: int | None) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    future = _resolver.submit(socket.getaddrinfo, host, port or 443, proto=socket.IPPROTO_TCP)
    try:
        infos = future.result(timeout=_RESOLVE_TIMEOUT_S)
    except FutureTimeout:
        raise TomogramUnreachableError(
            f"resolving host {host!r} took longer than {_RESOLVE_TIMEOUT_S:g} s"
        ) from None
    except (OSError, UnicodeError) as e:
        raise TomogramUnreachableError(f"host {host!r} cannot be resolved ({e})") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def _check_http(uri: str, parts: urllib.parse.SplitResult, settings: Settings) -> None:
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise UriNotAllowedError(f"URI {uri!r} has no host")
    names, networks = _allowed_entries(settings)
    if host in names:
        return
    try:
        port = parts.port
    except ValueError:
        raise UriNotAllowedError(f"URI {uri!r} has an invalid port") from None
    for address in _resolve(host, port):
        if any(address in network for network in networks if network.version == address.version):
            continue
        if _blocked(address):
            raise UriNotAllowedError(
                f"host {host!r} of {uri!r} resolves to {address}, a loopback, private, link-local or "
                "metadata address; add it to OCTOPI_ALLOWED_HOSTS to allow it"
            )


def _local_path(uri: str, parts: urllib.parse.SplitResult) -> Path:
    if parts.scheme.lower() == "file":
        if parts.netloc not in ("", "localhost"):
            raise UriNotAllowedError(f"file URI {uri!r} names a remote host {parts.netloc!r}")
        raw = urllib.request.url2pathname(parts.path)
    else:
        raw = uri
    if "\x00" in raw:
        raise UriNotAllowedError("local path contains a NUL character")
    return Path(os.path.realpath(os.path.expanduser(raw)))


def _check_local(uri: str, parts: urllib.parse.SplitResult, settings: Settings) -> None:
    roots = settings.local_roots or []
    if not roots:
        raise UriNotAllowedError("local paths are not allowed here (OCTOPI_LOCAL_ROOTS is empty)")
    path = _local_path(uri, parts)
    if not any(path == root or path.is_relative_to(root) for root in roots):
        shown = ", ".join(str(r) for r in roots)
        raise UriNotAllowedError(f"local path {str(path)!r} is outside the allowed roots ({shown})")


def _check(uri: str, settings: Settings, *, schemes: set[str], what: str) -> None:
    if not isinstance(uri, str) or not uri.strip():
        raise UriNotAllowedError(f"{what} must be a non-empty URI")
    if any(ord(c) < 32 for c in uri):
        raise UriNotAllowedError(f"{what} contains control characters")
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError as e:
        raise UriNotAllowedError(f"{what} {uri!r} is not a valid URI ({e})") from None
    scheme = uri_scheme(uri)
    allowed = schemes & set(settings.allowed_schemes)
    if scheme not in allowed:
        raise UriNotAllowedError(
            f"{what} scheme {scheme!r} is not allowed; use one of {', '.join(sorted(allowed)) or 'none'}"
        )
    if scheme == "file":
        _check_local(uri, parts, settings)
    elif scheme in ("http", "https"):
        _check_http(uri, parts, settings)
    elif scheme == "s3" and not parts.netloc:
        raise UriNotAllowedError(f"{what} {uri!r} names no bucket")


def check_tomogram_uri(uri: str, settings: Settings) -> None:
    """Refuse a tomogram URI the service must not read.

    Raises:
        UriNotAllowedError: see the module docstring for the rules.
        TomogramUnreachableError: the host name cannot be resolved.
    """
    _check(uri, settings, schemes={"file", "http", "https", "s3"}, what="tomogram_uri")


def check_output_uri(uri: str, settings: Settings) -> None:
    """Refuse an output location the service must not write (``file`` under the roots, or ``s3``).

    Raises:
        UriNotAllowedError: as for tomograms; ``http(s)`` outputs are refused too.
    """
    _check(uri, settings, schemes={"file", "s3"}, what="output_uri")


def normalize_uri(uri: str) -> str:
    """The URI workers should use: local paths become absolute real paths (workers may run elsewhere in the
    file tree); other URIs are returned unchanged."""
    parts = urllib.parse.urlsplit(uri)
    return str(_local_path(uri, parts)) if uri_scheme(uri) == "file" else uri
