"""Where a source lives: a local folder or an ``s3://`` prefix, listed and read through fsspec (private)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from octopi_core.exceptions import DataSourceError, TomogramError
from octopi_core.io._location import _locate

__all__: list[str] = []


@dataclass
class _Store:
    """A listable location: ``fs`` takes ``path`` (local: the real path; s3: ``bucket/key``)."""

    uri: str
    scheme: str
    path: str
    fs: Any

    def uri_of(self, path: str) -> str:
        """The URI of ``path`` (one of ``fs``'s paths) as the readers take it."""
        return f"s3://{path}" if self.scheme == "s3" else path

    def join(self, *parts: str) -> str:
        return "/".join([self.path.rstrip("/"), *parts])

    def names(self, path: str) -> list[tuple[str, bool]]:
        """``(name, is_dir)`` of each entry of the folder ``path``; [] when it does not exist."""
        try:
            entries = self.fs.ls(path, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        out = []
        for e in entries:
            name = str(e["name"]).rstrip("/").rsplit("/", 1)[-1]
            if name and str(e["name"]).rstrip("/") != path.rstrip("/"):
                out.append((name, e.get("type") == "directory"))
        return sorted(out)

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def read_text(self, path: str) -> str:
        with self.fs.open(path, "rb") as f:
            return f.read().decode("utf-8")

    def write_text(self, path: str, text: str) -> None:
        if self.scheme == "local":
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(path, "wb") as f:
            f.write(text.encode("utf-8"))


def _open_store(uri: str, storage_options: dict | None, what: str) -> _Store:
    """Open ``uri`` (local path, ``file://`` or ``s3://``) for listing and reading.

    Raises:
        DataSourceError: for http(s) (not listable) or a URI the one parser refuses.
    """
    try:
        loc = _locate(uri, storage_options)
    except TomogramError as e:
        raise DataSourceError(f"{what} {uri!r}: {e}") from e
    if loc.scheme == "http":
        raise DataSourceError(f"{what} {uri!r}: http(s) cannot be listed; use a local path or s3://")
    try:  # s3fs checks its options on the first request: make that one here, to name them
        loc.fs.exists(loc.path)
    except (TypeError, ValueError) as e:
        raise DataSourceError(f"{what} {uri!r}: bad filesystem options {storage_options}: {e}") from e
    return _Store(uri=uri, scheme=loc.scheme, path=loc.path.rstrip("/") or "/", fs=loc.fs)
