"""Work bounded per request (issue 14, defects 3, 6, 9, 14): limits on the voxels as loaded, checked again by
the worker on what it opens itself, chunk counts, content identity of zarr chunks, cancellation while
fetching, and output directories checked before computing."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import zarr

from octopi_core.io import write_ome_zarr
from tests.app.conftest import assert_problem
from tests.waiting import wait_until
from worker.jobs.state import JobRecord, JobStatus
from worker.main import run_worker

from .loopback import files_of, hostile_server

_SMALL_VOXELS = 32 * 64 * 64  # tomograms.small, 10 Å


def _post(client, body: dict):
    return client.post("/predict", json=body)


def _run_worker(settings) -> None:
    assert run_worker(settings, name="attack-worker", burst=True) == 0


def test_a_voxel_size_that_resamples_past_the_limit_is_refused_at_submission(make_client, tomograms):
    client = make_client(max_tomogram_voxels=1_000_000)
    assert _post(client, {"tomogram_uri": str(tomograms.small)}).status_code == 202
    # 50 Å read as 10 Å: 5x per axis, 125 x 131 k = 16 M voxels in the worker.
    body = assert_problem(
        _post(client, {"tomogram_uri": str(tomograms.small), "voxel_size_a": 50.0}), 413, "tomogram-too-large"
    )
    assert "16384000 voxels" in body["detail"] and "1000000" in body["detail"]


def test_a_zarr_cut_into_too_many_chunks_is_refused(client, tmp_path: Path):
    store = tmp_path / "confetti.zarr"  # metadata only: 131,072 chunks of one voxel, none written
    zarr.create_array(str(store), shape=(32, 64, 64), chunks=(1, 1, 1), dtype="float32", zarr_format=2)
    body = assert_problem(
        _post(client, {"tomogram_uri": str(store), "voxel_size_a": 10.0}), 422, "too-many-chunks"
    )
    assert "131072 chunks" in body["detail"]


def test_the_worker_refuses_a_bigger_volume_than_the_gateway_was_shown(
    make_client, redis_conn, service_settings, tomograms, tmp_path: Path
):
    local = tmp_path / "shifty.zarr"
    zarr.create_array(str(local), shape=(32, 64, 64), chunks=(32, 64, 64), dtype="float32", zarr_format=2)[
        ...
    ] = np.random.default_rng(0).standard_normal((32, 64, 64), dtype=np.float32)
    settings = service_settings.model_copy(update={"max_tomogram_voxels": 1_000_000})
    client = make_client(max_tomogram_voxels=1_000_000)
    with hostile_server() as server:
        server.files = files_of(local, "shifty.zarr")
        response = _post(client, {"tomogram_uri": f"{server.url}/shifty.zarr", "voxel_size_a": 10.0})
        assert response.status_code == 202, response.text
        meta = json.loads(server.files["/shifty.zarr/.zarray"])  # now answer the worker with 256^3
        server.files["/shifty.zarr/.zarray"] = json.dumps(meta | {"shape": [256, 256, 256]}).encode()
        _run_worker(settings)
        chunk_reads = sum(n for path, n in server.gets.items() if not path.rsplit("/", 1)[-1].startswith("."))
    failed = JobRecord.fetch(redis_conn, response.json()["id"])
    assert failed.status is JobStatus.FAILED, failed.status
    assert failed.error_type == "TomogramTooLargeError" and "16777216 voxels" in failed.error_detail
    assert chunk_reads == 0  # refused from the metadata, before reading any voxel


def test_new_chunk_data_under_an_unchanged_zarray_is_not_served_from_the_old_result(
    client, service_settings, tomograms, tmp_path: Path
):
    store = tmp_path / "rewritten.zarr"
    shutil.copytree(tomograms.small, store)
    first = _post(client, {"tomogram_uri": str(store)})
    assert first.status_code == 202
    _run_worker(service_settings)
    assert client.get(f"/jobs/{first.json()['id']}").json()["status"] == "succeeded"
    meta_before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in store.rglob(".z*")}
    fresh = tmp_path / "fresh.zarr"  # new voxels, same shape, chunks and dtype
    write_ome_zarr(
        str(fresh), np.random.default_rng(1).standard_normal((32, 64, 64)).astype(np.float32), 10.0
    )
    for chunk in (p for p in fresh.rglob("*") if p.is_file() and not p.name.startswith(".")):
        shutil.copyfile(chunk, store / chunk.relative_to(fresh))  # only chunk files change
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in store.rglob(".z*")} == meta_before
    second = _post(client, {"tomogram_uri": str(store)})
    assert second.status_code == 202 and second.json()["id"] != first.json()["id"], second.json()


def test_a_cancel_while_fetching_stops_the_read_and_ends_cancelled(
    client, redis_conn, service_settings, tmp_path: Path
):
    local = tmp_path / "slow.zarr"  # 32 one-plane chunks, each answered after 0.1 s
    write_ome_zarr(
        str(local),
        np.random.default_rng(2).standard_normal((32, 64, 64)).astype(np.float32),
        10.0,
        chunks_zyx=(1, 64, 64),
    )
    with hostile_server() as server:
        server.files = files_of(local, "slow.zarr")
        response = _post(client, {"tomogram_uri": f"{server.url}/slow.zarr"})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]

        def cancel_when_fetching() -> None:
            wait_until(
                lambda: redis_conn.hget(f"octopi:job:{job_id}", "stage") == b"fetching", what="fetching"
            )
            server.delay_s = 0.1
            wait_until(lambda: sum(server.gets.values()) > 3, what="chunk reads")
            assert client.delete(f"/jobs/{job_id}").status_code == 202

        watcher = threading.Thread(target=cancel_when_fetching, daemon=True)
        watcher.start()
        _run_worker(service_settings)
        watcher.join(5)
        chunk_reads = sum(n for path, n in server.gets.items() if not path.rsplit("/", 1)[-1].startswith("."))
    done = JobRecord.fetch(redis_conn, job_id)
    assert done.status is JobStatus.CANCELLED, (done.status, done.error_type, done.error_detail)
    assert chunk_reads < 32  # stopped within a slab, not after the whole read


def test_an_unwritable_output_directory_is_refused_at_submission(client, tomograms, tmp_path: Path):
    (tmp_path / "a-file").write_text("not a directory")
    body = assert_problem(
        _post(client, {"tomogram_uri": str(tomograms.small), "output_uri": str(tmp_path / "a-file" / "out")}),
        422,
        "output-not-writable",
    )
    assert "a-file" in body["detail"]
