"""GET /jobs (the caller's recent jobs), GET /jobs/{id}/preview.png and the jobs page at /ui/, with no worker
(states are driven directly, the preview projection made from a synthetic volume)."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.image import imread

from octopi_core.preview import project_volume
from tests.app.conftest import assert_problem
from tests.app.routes.test_jobs import _submit, _succeed
from worker.jobs.keys import preview_key

_KEY_A, _KEY_B = "key-a-" + "a" * 32, "key-b-" + "b" * 32


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_each_client_lists_only_its_own_jobs_newest_first(make_client, tomograms):
    client = make_client(api_keys=[_KEY_A, _KEY_B])
    mine = [
        client.post("/predict", json={"tomogram_uri": str(uri)}, headers=_auth(_KEY_A)).json()["id"]
        for uri in (tomograms.small, tomograms.small_mrc)
    ]
    theirs = client.post("/predict", json={"tomogram_uri": str(tomograms.small)}, headers=_auth(_KEY_B))
    listed = client.get("/jobs", headers=_auth(_KEY_A))
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [job["id"] for job in body["data"]] == mine[::-1] and body["count"] == 2
    assert body["data"][0]["links"]["preview"] == f"/jobs/{mine[1]}/preview.png"
    assert [job["id"] for job in client.get("/jobs", headers=_auth(_KEY_B)).json()["data"]] == [
        theirs.json()["id"]
    ]
    assert [job["id"] for job in client.get("/jobs?limit=1", headers=_auth(_KEY_A)).json()["data"]] == [
        mine[1]
    ]
    assert_problem(client.get("/jobs?limit=0", headers=_auth(_KEY_A)), 422)
    assert_problem(client.get("/jobs?limt=3", headers=_auth(_KEY_A)), 422)  # a misspelt parameter
    assert_problem(client.get("/jobs"), 401)


def test_preview_png_of_a_succeeded_job(client, redis_conn, service_settings, tomograms):
    job = _submit(client, tomograms.small).json()
    assert_problem(client.get(f"/jobs/{job['id']}/preview.png"), 409, "job-not-finished")
    _succeed(redis_conn, service_settings, job["id"])
    assert_problem(client.get(f"/jobs/{job['id']}/preview.png"), 404, "job-not-found")  # none kept
    volume = np.random.default_rng(1).normal(size=(32, 64, 64)).astype(np.float32)
    projection = project_volume(volume, voxel_size_zyx_a=(10.0, 10.0, 10.0))
    redis_conn.set(preview_key(job["id"]), projection.to_bytes())
    response = client.get(f"/jobs/{job['id']}/preview.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = imread(io.BytesIO(response.content))
    assert image.shape[0] > 200 and image.shape[1] > 400
    assert_problem(client.get("/jobs/no-such-job/preview.png"), 404, "job-not-found")


def test_a_preview_is_drawn_once_and_then_served_from_the_cache(
    client, redis_conn, service_settings, tomograms, monkeypatch
):
    import app.service
    import octopi_core.preview

    app.service._render_preview.cache_clear()  # another test's preview must not count
    drawn = []
    real = octopi_core.preview.render_preview_png
    monkeypatch.setattr(
        octopi_core.preview, "render_preview_png", lambda *a, **k: drawn.append(1) or real(*a, **k)
    )
    first, second = (
        _submit(client, tomograms.small, classes=[c]).json()["id"] for c in ("ribosome", "apo-ferritin")
    )
    for seed, job_id in enumerate((first, second)):
        _succeed(redis_conn, service_settings, job_id)
        volume = np.random.default_rng(seed).normal(size=(32, 64, 64)).astype(np.float32)
        redis_conn.set(
            preview_key(job_id), project_volume(volume, voxel_size_zyx_a=(10.0, 10.0, 10.0)).to_bytes()
        )
    pngs = [client.get(f"/jobs/{job_id}/preview.png").content for job_id in (first, first, first, second)]
    assert pngs[0] == pngs[1] == pngs[2] != pngs[3] and pngs[0].startswith(b"\x89PNG")
    assert (
        len(drawn) == 2
    )  # the second job's tomogram differs, so it is drawn anew: twice in all, not four times


def test_another_clients_preview_is_not_found(make_client, redis_conn, service_settings, tomograms):
    client = make_client(api_keys=[_KEY_A, _KEY_B])
    job = client.post("/predict", json={"tomogram_uri": str(tomograms.small)}, headers=_auth(_KEY_A)).json()
    _succeed(redis_conn, service_settings, job["id"])
    volume = np.zeros((32, 64, 64), np.float32)
    redis_conn.set(preview_key(job["id"]), project_volume(volume, voxel_size_zyx_a=(10, 10, 10)).to_bytes())
    assert client.get(f"/jobs/{job['id']}/preview.png", headers=_auth(_KEY_A)).status_code == 200
    assert_problem(client.get(f"/jobs/{job['id']}/preview.png", headers=_auth(_KEY_B)), 404, "job-not-found")


def test_the_jobs_page_is_served_with_a_strict_policy(make_client):
    client = make_client(api_keys=[_KEY_A])  # the page itself needs no key; its data does
    root = client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200 and '<script src="app.js" defer></script>' in page.text
    policy = page.headers["content-security-policy"]
    assert (
        "script-src 'self'" in policy and "img-src 'self' blob:" in policy and "unsafe-inline" not in policy
    )
    assert page.headers["x-content-type-options"] == "nosniff"
    script = client.get("/ui/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "innerHTML" not in script.text and "sessionStorage" in script.text
    assert client.get("/ui/style.css").status_code == 200


def test_the_jobs_page_can_be_turned_off(make_client):
    client = make_client(ui_enabled=False)
    assert client.get("/ui/").status_code == 404
    assert client.get("/", follow_redirects=False).status_code == 404
