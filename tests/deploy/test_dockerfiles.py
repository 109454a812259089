"""docker/*.Dockerfile and .dockerignore: pinned multi-stage builds, non-root, no caches, real commands."""

from __future__ import annotations

import re
import shlex

import pytest

from .artifacts import DOCKERFILES, dockerignore_excludes, read_dockerfile
from .contract import ROOT, parse_cli, route_status, settings_env_names, settings_from_env

_PINNED = re.compile(r"^[a-z0-9./_-]+:(?!latest\b)[A-Za-z0-9._-]*\d[A-Za-z0-9._-]*(@sha256:[0-9a-f]{64})?$")
_BUILD_TOOLS = ("build-essential", "gcc", "g++", "make", "python3-dev", "python3-pip", "git", "curl", "wget")


@pytest.fixture(params=sorted(DOCKERFILES))
def image(request: pytest.FixtureRequest) -> str:
    return request.param


def test_builds_are_multi_stage_on_pinned_bases(image):
    dockerfile = read_dockerfile(DOCKERFILES[image])
    assert len(dockerfile.stages) >= 2, f"{image}: build and runtime must be separate stages"
    stage_names = set()
    for stage in dockerfile.stages:
        if stage.base not in stage_names:
            assert _PINNED.match(stage.base), f"{image}: base {stage.base!r} is not pinned to a version tag"
        if stage.name:
            stage_names.add(stage.name)
    assert dockerfile.final.name == image, f"{image}: name the final stage {image!r} (the build target)"


def test_final_stage_runs_as_a_non_root_user(image):
    user = read_dockerfile(DOCKERFILES[image]).final.last("USER")
    assert user is not None, f"{image}: the final stage sets no USER"
    assert user.split(":")[0] not in ("root", "0"), f"{image}: USER {user}"


def test_no_build_tools_or_caches_reach_the_final_image(image):
    dockerfile = read_dockerfile(DOCKERFILES[image])
    for stage in dockerfile.stages:
        for run in stage.all("RUN"):
            if "pip install" in run:
                assert "--no-cache-dir" in run, f"{image}: pip install without --no-cache-dir: {run}"
            if "apt-get install" in run:
                assert "--no-install-recommends" in run, f"{image}: {run}"
                assert "rm -rf /var/lib/apt/lists/*" in run, f"{image}: apt lists left in the layer: {run}"
    for run in dockerfile.final.all("RUN"):
        assert "pip install" not in run, f"{image}: install packages in the build stage, not the final one"
        installed = set(shlex.split(run.replace("&&", " ")))
        assert not installed & set(_BUILD_TOOLS), f"{image}: build tools in the final stage: {run}"
    copied = [rest for rest in dockerfile.final.all("COPY") if "--from=" in rest]
    assert copied, f"{image}: the final stage should copy the built environment from the build stage"


def test_copied_files_exist_and_are_in_the_build_context(image):
    for stage in read_dockerfile(DOCKERFILES[image]).stages:
        for rest in stage.all("COPY"):
            words = [w for w in rest.split() if not w.startswith("--")]
            if "--from=" in rest:
                continue
            for source in words[:-1]:
                assert (ROOT / source).exists(), f"{image}: COPY source {source} does not exist"
                assert not dockerignore_excludes(source), f"{image}: .dockerignore excludes COPY {source}"


def test_entry_points_are_octopi_serve_commands(image):
    final = read_dockerfile(DOCKERFILES[image]).final
    entrypoint, cmd = final.exec_form("ENTRYPOINT"), final.exec_form("CMD") or []
    if image == "train":
        assert entrypoint == ["octopi-train"]
        copies = [rest.split() for rest in final.all("COPY") if rest.endswith(" /usr/local/bin/octopi-train")]
        assert copies and copies[0][-2] == "docker/train-entrypoint.sh", "octopi-train: not the entry script"
        parse_cli(["retrain", *cmd, "--registry", "s3://bucket/registry"])
    else:
        assert entrypoint == ["octopi-serve"]
        assert cmd and cmd[0] == image, f"{image}: CMD should run `octopi-serve {image}`, got {cmd}"
        parse_cli(cmd)


def test_environment_names_are_settings(image):
    names = {name for name in read_dockerfile(DOCKERFILES[image]).final.env() if name.startswith("OCTOPI_")}
    unknown = names - settings_env_names()
    assert not unknown, f"{image}: ENV {sorted(unknown)} are not read by octopi_core.settings.Settings"


def test_gateway_listens_on_the_settings_port_and_checks_its_own_health():
    final = read_dockerfile(DOCKERFILES["gateway"]).final
    env = final.env()
    settings = settings_from_env({k: v for k, v in env.items() if k.startswith("OCTOPI_")})
    assert final.all("EXPOSE") == [str(settings.port)]
    assert settings.host == "0.0.0.0", "the gateway must listen on all interfaces inside a container"
    healthcheck = final.last("HEALTHCHECK")
    assert healthcheck is not None, "the gateway image has no HEALTHCHECK"
    path = re.search(r"http://127\.0\.0\.1:[^/]+(/[A-Za-z0-9/_-]*)", healthcheck).group(1)
    assert "OCTOPI_PORT" in healthcheck, "the health check should follow OCTOPI_PORT"
    assert route_status(path) == 200, f"HEALTHCHECK path {path} is not a liveness route of the gateway"


def test_images_build_the_torch_version_the_makefile_pins():
    pinned = re.search(r"^TORCH_SPEC \?= torch==(\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    for image, relative in DOCKERFILES.items():
        arguments = [rest for stage in read_dockerfile(relative).stages for rest in stage.all("ARG")]
        versions = {rest.split("=", 1)[1] for rest in arguments if rest.startswith("TORCH_VERSION=")}
        assert versions == {pinned}, f"{image}: TORCH_VERSION {versions} differs from the Makefile's {pinned}"


def test_worker_and_training_images_share_the_cuda_base():
    worker, train = read_dockerfile(DOCKERFILES["worker"]), read_dockerfile(DOCKERFILES["train"])
    assert worker.final.base == train.final.base
    assert worker.final.base.startswith("nvidia/cuda:") and "runtime" in worker.final.base


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        "runs/cpu/best/model.safetensors",
        "tests/conftest.py",
        "bench/data/tomo.zarr/.zattrs",
        "demo-output/demo.zarr",
        "octopi_core/__pycache__/cli.cpython-311.pyc",
        "k8s/base/kustomization.yaml",
    ],
)
def test_dockerignore_keeps_local_state_out_of_the_context(path):
    assert dockerignore_excludes(path)


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "octopi_core/cli/__init__.py",
        "octopi_core/models/default/model.safetensors",
        "octopi_core/presets/tiny.yaml",
        "app/main.py",
        "worker/main.py",
        "octopi_serve/cli.py",
        "docker/train-entrypoint.sh",
    ],
)
def test_dockerignore_keeps_what_the_images_install(path):
    assert not dockerignore_excludes(path)


def test_shipped_model_is_installed_with_the_package():
    import tomllib

    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(pattern.startswith("models/") for pattern in package_data["octopi_core"]), (
        "octopi_core/models/ must be package data so `pip install .` bakes the shipped model into the images"
    )
