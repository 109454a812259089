"""A headless Chromium (the system's, driven by playwright) against the live service of tests/service."""

from __future__ import annotations

import pytest

from tests.browser.chromium import CHROMIUM_FLAGS, chromium_path
from tests.service.conftest import live_service  # noqa: F401 - the real stack, one per test module


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
