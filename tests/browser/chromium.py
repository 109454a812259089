"""How this project starts the system's Chromium (Debian's ``chromium`` package) under playwright: for the
browser tests and for docs/make_screenshots.py."""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["CHROMIUM_FLAGS", "chromium_path"]

# Flags that start Chromium here: as root, without a GPU, with no traffic of its own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The system's Chromium, or None."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
