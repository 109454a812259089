"""Jobs that write their picks into a copick project (made by copick 1.31), run by an in-process burst worker."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from octopi_core.data import open_copick
from octopi_core.picks import PicksDocument
from worker.jobs.state import JobRecord, JobStatus, fetch_result
from worker.main import run_worker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "copick"
COPICK_PYTHON = Path(__file__).resolve().parents[2] / ".venv-copick" / "bin" / "python"
CLASSES = ["apo-ferritin", "ribosome"]  # the project's objects among octopi's classes


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the fixture project under a local root, its overlay root absolute (copick reads it from
    the working directory otherwise); returns the config."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURES / "project", root)
    config = json.loads((root / "copick_config.json").read_text())
    config["overlay_root"] = f"local://{root}"
    (root / "copick_config.json").write_text(json.dumps(config, indent=4))
    return root / "copick_config.json"


def _run(settings) -> None:
    assert run_worker(settings, name="test-worker", burst=True) == 0


def _picks_dir(config: Path) -> Path:
    return config.parent / "ExperimentRuns" / "TS_001" / "Picks"


def test_picks_land_in_the_run_as_a_new_session_and_read_back(
    redis_conn, service_settings, new_job, tomograms, project
):
    first = new_job(tomograms.small, classes=CLASSES, run_name="TS_001", copick_config=str(project))
    _run(service_settings)
    done = JobRecord.fetch(redis_conn, first.id)
    assert done.status is JobStatus.SUCCEEDED, done.error_detail
    picks_dir = _picks_dir(project)
    assert sorted(done.outputs) == [str(picks_dir / f"octopi_0_{cls}.json") for cls in CLASSES]
    served = PicksDocument.model_validate_json(fetch_result(redis_conn, first.id))
    assert served.run_name == "TS_001"
    (item,) = [i for i in open_copick(str(project), tomo_type="wbp", picks_user="octopi") if i.truth]
    assert item.run_name == "TS_001" and item.truth is not None
    for cls in CLASSES:
        back = [(p.x, p.y, p.z) for p in item.truth.picks[cls]]
        assert back == pytest.approx([(p.x, p.y, p.z) for p in served.picks[cls]])

    written = {p: p.read_bytes() for p in picks_dir.glob("octopi_0_*.json")}
    second = new_job(tomograms.small, classes=CLASSES, run_name="TS_001", copick_config=str(project))
    _run(service_settings)
    again = JobRecord.fetch(redis_conn, second.id)
    assert again.status is JobStatus.SUCCEEDED, again.error_detail
    assert sorted(Path(p).name for p in again.outputs) == [f"octopi_1_{cls}.json" for cls in CLASSES]
    assert {p: p.read_bytes() for p in picks_dir.glob("octopi_0_*.json")} == written  # session 0 untouched


def test_an_existing_session_fails_the_job_before_it_computes(
    redis_conn, service_settings, new_job, tomograms, project
):
    before = {p: p.read_bytes() for p in _picks_dir(project).iterdir()}
    record = new_job(
        tomograms.small,
        classes=["apo-ferritin"],
        run_name="TS_001",
        copick_config=str(project),
        pick_user="alice",
        pick_session="1",
    )
    _run(service_settings)
    failed = JobRecord.fetch(redis_conn, record.id)
    assert failed.status is JobStatus.FAILED and failed.error_type == "OutputWriteError"
    assert "alice" in failed.error_detail and "nothing was computed" in failed.error_detail
    assert {p: p.read_bytes() for p in _picks_dir(project).iterdir()} == before


@pytest.mark.skipif(
    not COPICK_PYTHON.is_file(), reason="no .venv-copick (make copick-venv installs copick 1.31)"
)
def test_copick_reads_the_picks_the_service_wrote(redis_conn, service_settings, new_job, tomograms, project):
    record = new_job(tomograms.small, classes=CLASSES, run_name="TS_001", copick_config=str(project))
    _run(service_settings)
    done = JobRecord.fetch(redis_conn, record.id)
    assert done.status is JobStatus.SUCCEEDED, done.error_detail
    served = PicksDocument.model_validate_json(fetch_result(redis_conn, record.id))
    out = subprocess.run(
        [str(COPICK_PYTHON), str(FIXTURES / "load_picks.py"), str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = {(p["run"], p["user"], p["session"], p["object"]): p for p in json.loads(out.stdout)}
    for cls in CLASSES:
        picks = loaded[("TS_001", "octopi", "0", cls)]
        assert picks["locations_a"] == pytest.approx([[p.x, p.y, p.z] for p in served.picks[cls]])
        assert picks["scores"] == pytest.approx([p.score for p in served.picks[cls]])
