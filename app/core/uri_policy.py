"""Which tomogram and output URIs the service may touch (no SSRF, no reading outside the local roots).

Rules, checked before anything is fetched:

- The scheme must be in ``allowed_schemes`` (a plain path counts as ``file``).
- The URI must pass :func:`octopi_core.io.parse_uri`, the parser the readers and writers use too, so what
  is checked here is what is opened: no fsspec chaining (``::``), no other scheme, no ``file://host``, no
  ``~``, no user info (the parser's docstring lists every refused form).
- ``http(s)``: every address the host resolves to must be a public (global) address. Loopback, private,
  link-local, shared, reserved and multicast addresses, and cloud metadata endpoints (169.254.169.254,
  fd00:ec2::254, ...) are refused unless the host name, the address or a network containing it is in
  ``allowed_hosts``. An IPv6 address that embeds an IPv4 one (``::ffff:a.b.c.d``, ``::a.b.c.d``, NAT64
  ``64:ff9b::/96``, SIIT ``::ffff:0:a.b.c.d``, 6to4 ``2002::/16``, Teredo) is refused when either is.
  Redirects are not followed when fetching (``octopi_core.io.service_storage_options``).
- ``file``/plain paths: the real path (symlinks resolved) must lie under one of ``local_roots``. The readers
  then keep every file of a zarr directory inside that directory, and the writer re-checks the roots.
- ``s3``: needs a bucket; the endpoint comes from the settings or the environment and is trusted.
- Outputs may go to ``file`` or ``s3`` only.

Refusals name the URI as given, never its resolved path, the working directory or the home directory.

Note: a host name is resolved here and again when fetched; a DNS answer that changes in between
(DNS rebinding) is not caught. Pin hosts through ``allowed_hosts`` or use ``s3://`` where that matters.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from octopi_core.exceptions import TomogramUnreachableError, UnsupportedUriError
from octopi_core.io.uri import ParsedUri, parse_uri, uri_scheme
from octopi_core.settings import Settings

from .exceptions import UriNotAllowedError

__all__ = ["check_tomogram_uri", "check_output_uri", "uri_scheme", "normalize_uri"]

_METADATA_ADDRESSES = {
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
}
_LOCAL_USE_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: translates to local IPv4 space
_WELL_KNOWN_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: IPv4 in the last 32 bits
_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765: IPv4-translated
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 (deprecated): ::a.b.c.d
_RESOLVE_TIMEOUT_S = 5.0
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, NAT64, SIIT, 6to4, Teredo), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client; the server address is public by construction
    if any(address in net for net in (_WELL_KNOWN_NAT64, _SIIT, _IPV4_COMPATIBLE)):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _blocked(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))  # drop a %zone: it changes nothing checked here
        if address in _LOCAL_USE_NAT64:
            return True
        embedded = _embedded_ipv4(address)
        if embedded is not None and _blocked(embedded):
            return True
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
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _check_http(parsed: ParsedUri, settings: Settings) -> None:
    host, uri = parsed.host.lower(), parsed.uri
    names, networks = _allowed_entries(settings)
    if host in names:
        return
    for address in _resolve(host, parsed.port):
        if any(address in network for network in networks if network.version == address.version):
            continue
        if _blocked(address):
            raise UriNotAllowedError(
                f"host {host!r} of {uri!r} resolves to {address}, a loopback, private, link-local or "
                "metadata address; add it to OCTOPI_ALLOWED_HOSTS to allow it"
            )


def _real_path(parsed: ParsedUri, what: str) -> Path:
    """The real path of a local URI (symlinks resolved, as the OS will open it).

    Raises:
        UriNotAllowedError: a component cannot be read (``/proc/1/cwd``), naming the URI as given.
    """
    try:
        return Path(os.path.realpath(parsed.path))
    except OSError as e:
        raise UriNotAllowedError(
            f"{what} {parsed.uri!r} cannot be resolved ({e.strerror or 'error'})"
        ) from None


def _check_local(parsed: ParsedUri, settings: Settings, what: str) -> None:
    roots = settings.local_roots or []
    if not roots:
        raise UriNotAllowedError("local paths are not allowed here (OCTOPI_LOCAL_ROOTS is empty)")
    path = _real_path(parsed, what)
    if not any(path == root or path.is_relative_to(root) for root in roots):
        raise UriNotAllowedError(
            f"{what} {parsed.uri!r} is outside the allowed local roots (OCTOPI_LOCAL_ROOTS)"
        )


def _check(uri: str, settings: Settings, *, schemes: set[str], what: str) -> ParsedUri:
    if not isinstance(uri, str) or not uri.strip():
        raise UriNotAllowedError(f"{what} must be a non-empty URI")
    scheme = uri_scheme(uri)
    allowed = schemes & set(settings.allowed_schemes)
    if scheme not in allowed:
        raise UriNotAllowedError(
            f"{what} scheme {scheme!r} is not allowed; use one of {', '.join(sorted(allowed)) or 'none'}"
        )
    try:
        parsed = parse_uri(uri)
    except (UnsupportedUriError, ValueError) as e:
        raise UriNotAllowedError(f"{what}: {e}") from None
    if parsed.scheme == "file":
        _check_local(parsed, settings, what)
    elif parsed.scheme in ("http", "https"):
        _check_http(parsed, settings)
    return parsed


def check_tomogram_uri(uri: str, settings: Settings) -> None:
    """Refuse a tomogram URI the service must not read.

    Raises:
        UriNotAllowedError: see the module docstring for the rules.
        TomogramUnreachableError: the host name cannot be resolved.
    """
    _check(uri, settings, schemes={"file", "http", "https", "s3"}, what="tomogram_uri")


def check_output_uri(uri: str, settings: Settings, *, what: str = "output_uri") -> None:
    """Refuse an output location the service must not write (``file`` under the roots, or ``s3``).

    Args:
        uri: the location.
        settings: the policy's settings.
        what: the request field it came from, for messages (default ``output_uri``).

    Raises:
        UriNotAllowedError: as for tomograms; ``http(s)`` outputs are refused too.
    """
    _check(uri, settings, schemes={"file", "s3"}, what=what)


def normalize_uri(uri: str) -> str:
    """The URI workers should use: local paths become absolute real paths (workers may run elsewhere in the
    file tree); other URIs their parsed form (:attr:`octopi_core.io.ParsedUri.url`).

    Raises:
        UriNotAllowedError: ``uri`` does not parse, or a local path cannot be resolved.
    """
    try:
        parsed = parse_uri(uri)
    except (UnsupportedUriError, ValueError) as e:
        raise UriNotAllowedError(str(e)) from None
    return str(_real_path(parsed, "URI")) if parsed.scheme == "file" else parsed.url
