"""POST /predict with copick_config: the copick project is checked at submission, with named problems."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.app.conftest import assert_problem

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "copick"


def _project(root: Path, **config_changes) -> Path:
    """A copy of the copick 1.31 fixture project at ``root``; returns its config, changed as asked."""
    shutil.copytree(FIXTURES / "project", root)
    config_path = root / "copick_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, **config_changes}, indent=4))
    return config_path


def _submit(client, tomogram: Path, **body):
    return client.post("/predict", json={"tomogram_uri": str(tomogram), **body})


def test_a_copick_run_is_accepted_with_the_classes_the_project_has(client, tomograms, tmp_path):
    config = _project(tmp_path / "project")
    response = _submit(client, tomograms.small, copick_config=str(config), run_name="TS_001")
    assert response.status_code == 202, response.text
    options = response.json()["options"]
    assert options["copick_config"] == str(config.resolve()) and options["run_name"] == "TS_001"
    assert (options["pick_user"], options["pick_session"]) == ("octopi", None)
    assert options["classes"] == ["apo-ferritin", "ribosome"]  # proteasome and membrane are no octopi class
    asked = _submit(
        client,
        tomograms.small,
        copick_config=str(config),
        run_name="TS_002",
        pick_user="bob",
        pick_session="7",
    )
    assert asked.status_code == 202, asked.text
    assert (asked.json()["options"]["pick_user"], asked.json()["options"]["pick_session"]) == ("bob", "7")


def test_a_bad_config_is_refused(client, tomograms, tmp_path):
    (tmp_path / "not-json.json").write_text("{not json")
    body = assert_problem(
        _submit(client, tomograms.small, copick_config=str(tmp_path / "not-json.json"), run_name="TS_001"),
        422,
        "data-source-error",
    )
    assert "not-json.json" in body["detail"]
    missing = _submit(client, tomograms.small, copick_config=str(tmp_path / "none.json"), run_name="TS_001")
    assert_problem(missing, 422, "data-source-error")


def test_an_unknown_run_is_refused(client, tomograms, tmp_path):
    config = _project(tmp_path / "project")
    body = assert_problem(
        _submit(client, tomograms.small, copick_config=str(config), run_name="TS_999"), 422, "unknown-run"
    )
    assert "TS_999" in body["detail"] and "TS_001" in body["detail"]


def test_a_config_or_root_outside_the_local_roots_is_refused(make_client, tomograms, tmp_path):
    outside = tmp_path / "outside"
    config = _project(outside / "project")
    inside = tmp_path / "inside"
    sneaky = _project(inside / "project", overlay_root=f"local://{outside / 'project'}")
    client = make_client(local_roots=[str(tomograms.root), str(inside)])
    body = assert_problem(
        _submit(client, tomograms.small, copick_config=str(config), run_name="TS_001"), 422, "uri-not-allowed"
    )
    assert body["detail"].startswith("copick_config")
    body = assert_problem(
        _submit(client, tomograms.small, copick_config=str(sneaky), run_name="TS_001"), 422, "uri-not-allowed"
    )
    assert "root of copick_config" in body["detail"]


def test_an_overlay_root_the_service_cannot_write_is_refused(client, tomograms, tmp_path):
    (tmp_path / "a-file").write_text("")
    config = _project(tmp_path / "project", overlay_root=f"local://{tmp_path / 'a-file' / 'overlay'}")
    response = _submit(client, tomograms.small, copick_config=str(config), run_name="TS_001")
    assert "overlay_root" in assert_problem(response, 422, "output-not-writable")["detail"]


def test_an_existing_session_is_refused_never_overwritten(client, tomograms, tmp_path):
    config = _project(tmp_path / "project")
    response = _submit(
        client,
        tomograms.small,
        copick_config=str(config),
        run_name="TS_001",
        pick_user="alice",
        pick_session="1",
    )
    body = assert_problem(response, 409, "picks-exist")
    assert "alice" in body["detail"]


def test_classes_the_project_cannot_hold_are_refused(client, tomograms, tmp_path):
    config = _project(tmp_path / "project")
    response = _submit(
        client, tomograms.small, copick_config=str(config), run_name="TS_001", classes=["thyroglobulin"]
    )
    assert "thyroglobulin" in assert_problem(response, 422, "data-source-error")["detail"]


def test_copick_fields_go_together(client, tomograms, tmp_path):
    config = _project(tmp_path / "project")
    assert_problem(_submit(client, tomograms.small, copick_config=str(config)), 422, "validation-error")
    assert_problem(_submit(client, tomograms.small, pick_user="octopi"), 422, "validation-error")
    for bad in ("a_b", "", "../x", ".hidden", "a b"):
        response = _submit(
            client, tomograms.small, copick_config=str(config), run_name="TS_001", pick_user=bad
        )
        assert_problem(response, 422, "validation-error")
