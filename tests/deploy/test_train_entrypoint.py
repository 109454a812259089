"""docker/train-entrypoint.sh, the retraining image's entry point, run here on the CPU end to end.

The arguments are the dev overlay's CronJob arguments (the `tiny` preset and a small held-out set), so the
command a cluster would run is the command tested: train -> evaluate -> promote into a local registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from octopi_core.model_config import read_config
from octopi_core.registry import Registry

from .artifacts import kubectl_binary, render
from .contract import ROOT, parse_cli, settings_from_env

ENTRYPOINT = ROOT / "docker" / "train-entrypoint.sh"


def _environment(**extra: str) -> dict[str, str]:
    """This process's environment without service settings, the virtualenv's scripts first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCTOPI_", "AWS_", "REDIS_URL"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **extra}


def _dev_cronjob_args() -> list[str]:
    if kubectl_binary() is None:
        pytest.skip("kubectl not installed")
    (cronjob,) = [o for o in render("overlays/dev") if o["kind"] == "CronJob"]
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]


def _promotion_result(stdout: str) -> dict:
    """The JSON object that ends the entry point's output."""
    return json.loads(stdout[stdout.rindex("\n{") + 1 :] if "\n{" in stdout else stdout[stdout.index("{") :])


def test_entrypoint_refuses_to_run_without_a_registry(tmp_path):
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "tiny"],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "OCTOPI_REGISTRY_URI" in result.stderr


def _retrain_argv(tmp_path, args: list[str], **env: str) -> list[str]:
    """The arguments the entry point hands to `octopi-serve` (a stand-in that prints them), one per line."""
    stub = tmp_path / "bin" / "octopi-serve"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    stub.chmod(0o755)
    environment = _environment(**env)
    environment["PATH"] = f"{stub.parent}{os.pathsep}{environment['PATH']}"
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_training_data_settings_become_retrain_flags_that_parse(tmp_path):
    args = _dev_cronjob_args()
    env = {
        "OCTOPI_REGISTRY_URI": "s3://bucket/registry",
        "OCTOPI_TRAINING_DATA": "s3://lab/project/copick.json",
        "OCTOPI_TRAINING_PICKS_USERS": "curator, reviewer",
        "OCTOPI_TRAINING_PICKS_SESSIONS": "1,2",
        "OCTOPI_TRAINING_TOMO_TYPE": "wbp",
        "OCTOPI_PROMOTION_MIN_GAIN_F_BETA": "0.01",
        "OCTOPI_PROMOTION_MAX_FORGETTING_F_BETA": "0.03",
    }
    argv = _retrain_argv(tmp_path, args, **env)
    assert argv[0] == "retrain"
    parsed, settings = parse_cli(argv), settings_from_env(env)
    assert parsed.config == args[0] and parsed.registry == settings.registry_uri
    assert parsed.data == settings.training_data == "s3://lab/project/copick.json"
    assert parsed.picks_user == settings.training_picks_users == ["curator", "reviewer"]
    assert parsed.picks_session == settings.training_picks_sessions == ["1", "2"]
    assert parsed.tomo_type == settings.training_tomo_type == "wbp"
    assert parsed.min_gain == settings.promotion_min_gain_f_beta == 0.01
    assert parsed.max_forgetting == settings.promotion_max_forgetting_f_beta == 0.03
    # With no arguments the recipe is the fine-tuning defaults, not the card's 500 epochs.
    assert parse_cli(_retrain_argv(tmp_path, [], **env)).config == "finetune"


def test_empty_training_data_as_the_configmap_ships_it_retrains_on_generated_tomograms(tmp_path):
    config_map = yaml.safe_load((ROOT / "k8s" / "base" / "config.yaml").read_text())
    env = {
        k: v for k, v in config_map["data"].items() if k.startswith(("OCTOPI_TRAINING", "OCTOPI_PROMOTION"))
    }
    assert "OCTOPI_TRAINING_DATA" in env and settings_from_env(env).training_data is None
    argv = _retrain_argv(tmp_path, ["tiny"], OCTOPI_REGISTRY_URI="r", **env)
    assert argv == ["retrain", "tiny", "--registry", "r"]


@pytest.mark.slow
def test_entrypoint_trains_evaluates_and_promotes_into_the_registry(tmp_path):
    args = _dev_cronjob_args()
    assert args[0] == "tiny", "the dev CronJob is the seconds-long smoke run this test can afford"
    registry_dir = tmp_path / "registry"
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        cwd=tmp_path,
        env=_environment(OCTOPI_REGISTRY_URI=str(registry_dir)),
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, f"entry point failed ({result.returncode}):\n{result.stderr[-4000:]}"
    outcome = _promotion_result(result.stdout)

    registry = Registry(registry_dir)
    candidate = outcome["candidate_version"]
    assert candidate in registry.versions(), "the candidate is recorded in the registry whatever the outcome"
    assert "held_out" in registry.config(candidate).scores
    assert (tmp_path / "runs" / "tiny" / "best").is_dir(), "runs go in the working dir (/work in the image)"

    champion_file = registry_dir / "champion.json"
    if outcome["promoted"]:
        assert json.loads(champion_file.read_text())["version"] == candidate
        assert outcome["champion_score"] is None or outcome["candidate_score"] > outcome["champion_score"]
    else:
        # The shipped model was the champion to beat and stayed: no pointer was written.
        assert not champion_file.exists()
        shipped = Registry(registry_dir).resolve()
        assert outcome["champion_version"] == read_config(shipped).version
        assert outcome["candidate_score"] <= outcome["champion_score"]
