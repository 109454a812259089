"""Make the README's pictures: docs/preview.png (a prediction's preview) and docs/ui.png (the jobs page).

Run from the repository root: ``.venv/bin/python docs/make_screenshots.py``. It generates one synthetic
tomogram (seed 7, 96 x 256 x 256 voxels at 10 Å), picks it with the shipped model and draws the preview
(as ``Picker.predict(on_preview=...)`` keeps it), then starts ``octopi-serve serve`` on a free port with
its own Redis, submits the same tomogram through the page in headless Chromium and screenshots the page
with the job's panel open. Needs redis-server, Chromium (Debian's ``chromium``) and playwright (dev extra).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
SEED, SHAPE_ZYX = 7, (96, 256, 256)
sys.path.insert(0, str(REPO))

from tests.browser.chromium import CHROMIUM_FLAGS, chromium_path  # noqa: E402


def make_tomogram(directory: Path) -> Path:
    from octopi_core.synth import make_phantom, write_phantom

    path, _ = write_phantom(make_phantom(SEED, shape_zyx=SHAPE_ZYX), directory, "TS_demo")
    return path


def make_preview(tomogram: Path) -> None:
    from octopi_core.pipeline import Picker
    from octopi_core.preview import render_preview_png

    kept = []
    started = time.perf_counter()
    document = Picker(device="cpu").predict(str(tomogram), on_preview=kept.append)
    (DOCS / "preview.png").write_bytes(render_preview_png(kept[0], document))
    print(
        f"docs/preview.png: {sum(document.counts().values())} picks in {time.perf_counter() - started:.1f} s"
    )


def make_page_screenshot(tomogram: Path, work: Path) -> None:
    from playwright.sync_api import sync_playwright

    from octopi_serve.redis_server import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOPI_") and k != "REDIS_URL"}
    env.update(OCTOPI_PORT=str(port), OCTOPI_LOCAL_ROOTS=str(work), OCTOPI_DEVICE="cpu")
    env.update(OCTOPI_REGISTRY_URI=str(work / "registry"))  # empty: the shipped model serves
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "octopi_serve.cli", "serve"], env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the service did not become ready")
            time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{url}/ui/")
            page.fill("#uri", str(tomogram))
            page.click("#submit-form button[type=submit]")
            page.wait_for_selector('#jobs td[data-status="succeeded"]', timeout=600_000)
            page.wait_for_function(
                "() => { const i = document.getElementById('preview'); return i.complete && i.naturalWidth > 0; }",
                timeout=60_000,
            )
            page.screenshot(path=str(DOCS / "ui.png"), full_page=True)
            browser.close()
        print("docs/ui.png written")
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        tomogram = make_tomogram(work)
        make_preview(tomogram)
        make_page_screenshot(tomogram, work)


if __name__ == "__main__":
    main()
