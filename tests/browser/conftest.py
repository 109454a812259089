"""A headless Chromium (the system's, driven by playwright) against the live service of tests/service."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.service.conftest import live_service  # noqa: F401 - the real stack, one per test module

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
    """The system's Chromium (Debian's ``chromium`` package), or None."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def browser():
    """A started headless Chromium; the test is skipped, saying why, when none can be started."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e .[dev])")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        try:
            started = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        except Error as e:
            pytest.skip(f"Chromium at {executable} does not start: {e}")
        yield started
        started.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    opened = context.new_page()
    yield opened
    context.close()
