"""The jobs page in a real browser against the real stack: submit, watch, preview, and escaping."""

from __future__ import annotations

import shutil

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

_JOB_TIMEOUT_MS = 180_000


def _submit(page, uri: str) -> str:
    """Submit ``uri`` through the page's form; return the new job's id (its row in the table)."""
    page.fill("#uri", uri)
    with page.expect_response(lambda r: r.url.endswith("/predict")) as answer:
        page.click("#submit-form button[type=submit]")
    assert answer.value.status in (200, 202), answer.value.text()
    job_id = answer.value.json()["id"]
    page.wait_for_selector(f'#jobs tr[data-job-id="{job_id}"]')
    return job_id


def test_a_submitted_job_appears_succeeds_and_shows_its_preview(page, live_service, tomograms):
    page.goto(f"{live_service.url}/", wait_until="domcontentloaded")  # redirected to /ui/
    assert page.url.endswith("/ui/")
    page.wait_for_selector("#models tbody tr")
    assert "champion" in page.inner_text("#models")

    job_id = _submit(page, str(tomograms.small))
    row = f'#jobs tr[data-job-id="{job_id}"]'
    page.wait_for_selector(f'{row} td[data-status="succeeded"]', timeout=_JOB_TIMEOUT_MS)
    assert page.get_attribute(f"{row} progress", "value") == "1"

    page.click(row)
    page.wait_for_function(
        "() => { const i = document.getElementById('preview');"
        " return i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0; }",
        timeout=60_000,
    )
    assert page.eval_on_selector("#preview", "i => i.naturalWidth") > 400
    facts = page.inner_text("#job-facts")
    assert "model version" in facts and str(tomograms.small) in facts
    assert page.locator("#counts tbody tr").count() >= 1 and page.locator("#timings tbody tr").count() >= 1
    formats = page.eval_on_selector_all("#downloads button", "bs => bs.map(b => b.dataset.format)")
    assert formats == ["json", "csv", "star", "copick", "ndjson"]
    with page.expect_download() as download:
        page.click('#downloads button[data-format="csv"]')
    assert download.value.suggested_filename.endswith(".csv")


def test_a_uri_holding_html_is_shown_as_text(page, live_service, tomograms):
    markup = "<img src=x onerror=window.__injected=1>"
    hostile = live_service.logs.parent / f"{markup}.mrc"  # a local root of the service
    shutil.copyfile(tomograms.small_mrc, hostile)
    page.goto(f"{live_service.url}/ui/", wait_until="domcontentloaded")
    job_id = _submit(page, str(hostile))
    page.click(f'#jobs tr[data-job-id="{job_id}"]')
    page.wait_for_selector("#job:not([hidden])")
    shown = page.inner_text(f'#jobs tr[data-job-id="{job_id}"] td.uri')
    assert shown == str(hostile) and markup in page.inner_text("#job-facts")
    assert page.locator("#jobs img, #job-facts img").count() == 0
    assert page.evaluate("() => window.__injected === undefined")
