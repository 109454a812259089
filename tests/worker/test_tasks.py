"""pick_particles run by a real (in-process, burst) worker against the private Redis."""

from __future__ import annotations

import shutil
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from octopi_core.model import build_model, save_checkpoint
from octopi_core.model_config import ModelConfig
from octopi_core.picks import PicksDocument
from octopi_core.pipeline import Picker, PredictOptions
from octopi_core.registry import Registry
from tests.waiting import wait_until
from worker import tasks
from worker.jobs.keys import cancel_key
from worker.jobs.state import JobRecord, JobStatus, fetch_result
from worker.main import run_worker


def _run(settings) -> None:
    assert run_worker(settings, name="test-worker", burst=True) == 0


def _when_inferring(redis_conn, job_id: str, action, timeout_s: float = 120.0) -> threading.Thread:
    """Call ``action()`` from a thread once the job reports inference progress."""

    def inferring() -> bool:
        raw = redis_conn.hget(f"octopi:job:{job_id}", "progress")
        return raw is not None and float(raw) > 0

    def watch() -> None:
        wait_until(inferring, timeout_s=timeout_s, interval_s=0.02, what=f"job {job_id} to infer")
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_job_succeeds_with_the_same_picks_as_the_pipeline(
    redis_conn, service_settings, new_job, tomograms, model_registry
):
    record = new_job(tomograms.small, identity="id-1")
    _run(service_settings)
    done = JobRecord.fetch(redis_conn, record.id)
    assert done.status is JobStatus.SUCCEEDED, done.error_detail
    assert done.tries == 1 and done.timings_s["total"] > 0 and set(done.counts) >= {"ribosome"}
    served = PicksDocument.model_validate_json(fetch_result(redis_conn, record.id))
    picker = Picker(Registry(model_registry.root).resolve(model_registry.champion), device="cpu")
    direct = picker.predict(str(tomograms.small), PredictOptions(window_vox=32, overlap=0.25, batch_size=2))
    assert served.picks == direct.picks
    assert served.model_version == model_registry.champion


def test_outputs_are_written_and_identical_requests_reuse_the_result(
    redis_conn, service_settings, new_job, tomograms, tmp_path: Path
):
    first = new_job(tomograms.small, identity="id-2")
    _run(service_settings)
    second = new_job(
        tomograms.small, identity="id-2", output_uri=str(tmp_path / "out"), formats=["json", "csv"]
    )
    _run(service_settings)
    reused = JobRecord.fetch(redis_conn, second.id)
    assert reused.status is JobStatus.SUCCEEDED and reused.reused_from == first.id
    assert sorted(Path(p).name for p in reused.outputs) == ["small.picks.csv", "small.picks.json"]
    assert (tmp_path / "out" / "small.picks.csv").read_text().startswith("run_name,particle_type,x,y,z,score")
    assert fetch_result(redis_conn, second.id) == fetch_result(redis_conn, first.id)


def test_a_tomogram_found_corrupt_while_reading_fails_the_job(
    redis_conn, service_settings, new_job, tomograms, tmp_path: Path
):
    broken = tmp_path / "broken.zarr"
    shutil.copytree(tomograms.small, broken)
    chunks = [
        p for p in broken.rglob("*") if p.is_file() and not p.name.startswith(".") and p.suffix != ".json"
    ]
    for chunk in chunks:
        chunk.write_bytes(b"\x00garbage" * 3)
    record = new_job(broken)
    _run(service_settings)
    failed = JobRecord.fetch(redis_conn, record.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error_type == "CorruptTomogramError" and "broken.zarr" in failed.error_detail


def test_a_job_matches_the_spectrum_when_asked_and_fails_by_name_with_a_model_without_one(
    redis_conn, service_settings, new_job, tomograms, model_registry, tmp_path: Path
):
    # A random model leaning to ribosome, so that its picks on the small tomogram tell a matched input apart.
    torch.manual_seed(0)
    model = build_model()
    state = model.state_dict()
    last_bias = [name for name, p in state.items() if p.ndim == 1 and p.shape[0] == 7][-1]
    state[last_bias][4] += 3.0
    model.load_state_dict(state)
    save_checkpoint(model, ModelConfig(input_spectrum=(0.0,) * 48), tmp_path / "picky")
    registry = Registry(tmp_path / "registry")
    picky = registry.add(tmp_path / "picky")
    registry.add(Registry(model_registry.root).resolve(model_registry.quiet))  # has no input spectrum
    registry.set_champion(picky, reason="test")
    settings = type(service_settings)(**{**service_settings.model_dump(), "registry_uri": str(registry.root)})
    matched = new_job(tomograms.small, settings=settings, model_version=picky, match_spectrum=True)
    refused = new_job(
        tomograms.small, settings=settings, model_version=model_registry.quiet, match_spectrum=True
    )
    _run(settings)

    done = JobRecord.fetch(redis_conn, matched.id)
    assert done.status is JobStatus.SUCCEEDED, done.error_detail
    picker = Picker(tmp_path / "picky", device="cpu")
    plain_options = PredictOptions(window_vox=32, overlap=0.25, batch_size=2)
    direct = picker.predict(str(tomograms.small), replace(plain_options, match_spectrum=True))
    plain = picker.predict(str(tomograms.small), plain_options)
    assert direct.picks != plain.picks  # so that the served picks tell which the worker did
    assert PicksDocument.model_validate_json(fetch_result(redis_conn, matched.id)).picks == direct.picks
    failed = JobRecord.fetch(redis_conn, refused.id)
    assert failed.status is JobStatus.FAILED and failed.error_type == "NoInputSpectrumError"
    assert "no input spectrum" in failed.error_detail


def test_unknown_model_version_fails_the_job(redis_conn, service_settings, new_job, tomograms):
    record = new_job(tomograms.small, model_version="octopi-unet-000000000000")
    _run(service_settings)
    failed = JobRecord.fetch(redis_conn, record.id)
    assert failed.status is JobStatus.FAILED and failed.error_type == "CheckpointError"


@pytest.mark.slow
def test_running_job_stops_within_a_batch_when_cancelled(
    redis_conn, service_settings, new_job, tomograms, model_registry
):
    record = new_job(tomograms.large, model_version=model_registry.quiet)
    watcher = _when_inferring(redis_conn, record.id, lambda: redis_conn.set(cancel_key(record.id), "1"))
    _run(service_settings)
    watcher.join(1)
    cancelled = JobRecord.fetch(redis_conn, record.id)
    assert cancelled.status is JobStatus.CANCELLED
    assert 0 < cancelled.progress < 0.5  # 64 windows in batches of 2: stopped right after the flag


@pytest.mark.slow
def test_shutdown_mid_job_requeues_it_without_counting_a_try(
    redis_conn, service_settings, new_job, tomograms, model_registry
):
    record = new_job(tomograms.large, model_version=model_registry.quiet)
    watcher = _when_inferring(redis_conn, record.id, lambda: tasks.current_context().shutdown.set())
    _run(service_settings)
    watcher.join(1)
    back = JobRecord.fetch(redis_conn, record.id)
    assert (back.status, back.tries, back.attempt) == (JobStatus.QUEUED, 0, 2)
    _run(service_settings)  # a fresh worker finishes it
    assert JobRecord.fetch(redis_conn, record.id).status is JobStatus.SUCCEEDED


@pytest.mark.slow
def test_an_attempt_over_the_job_timeout_fails(
    redis_conn, service_settings, new_job, tomograms, model_registry
):
    settings = service_settings.model_copy(update={"job_timeout_s": 1})
    record = new_job(tomograms.large, model_version=model_registry.quiet, settings=settings)
    _run(settings)
    failed = JobRecord.fetch(redis_conn, record.id)
    assert failed.status is JobStatus.FAILED and failed.error_type == "JobTimeoutError"


def test_an_unwritable_output_fails_the_job_before_it_computes(
    redis_conn, service_settings, new_job, tomograms, tmp_path: Path
):
    (tmp_path / "a-file").write_text("")
    record = new_job(tomograms.small, output_uri=str(tmp_path / "a-file" / "out"), formats=["json"])
    _run(service_settings)
    failed = JobRecord.fetch(redis_conn, record.id)
    assert failed.status is JobStatus.FAILED and failed.error_type == "OutputWriteError"
    assert "nothing was computed" in failed.error_detail
    assert not failed.timings_s  # refused before reading the tomogram, not after the computation


def test_the_worker_applies_its_own_limits_before_reading(redis_conn, service_settings, new_job, tomograms):
    record = new_job(tomograms.small)
    _run(service_settings.model_copy(update={"max_tomogram_voxels": 32 * 64 * 64 - 1}))
    failed = JobRecord.fetch(redis_conn, record.id)
    assert failed.status is JobStatus.FAILED and failed.error_type == "TomogramTooLargeError"


def test_a_succeeded_job_keeps_a_preview_projection_beside_its_result(
    redis_conn, service_settings, new_job, tomograms
):
    from octopi_core.preview import PreviewProjection
    from worker.jobs.keys import preview_key

    record = new_job(tomograms.small, identity="id-preview")
    _run(service_settings)
    assert JobRecord.fetch(redis_conn, record.id).status is JobStatus.SUCCEEDED
    data = redis_conn.get(preview_key(record.id))
    assert data is not None and len(data) < 100_000
    projection = PreviewProjection.from_bytes(data)
    assert projection.slabs.ndim == 3 and max(projection.slabs.shape[1:]) <= 256
    assert 0 < redis_conn.ttl(preview_key(record.id)) <= service_settings.result_ttl_s
