"""docker-compose.yml: the one-host deployment uses the images, settings, commands and ports the code has."""

from __future__ import annotations

import re
import urllib.parse

import pytest

from .artifacts import DOCKERFILES, kustomize_image_names, load_compose, read_dockerfile
from .contract import AWS_ENV_NAMES, parse_cli, project_version, settings_env_names, settings_from_env
from .test_dockerfiles import _PINNED


def _services() -> dict[str, dict]:
    return load_compose()["services"]


def _ours() -> dict[str, dict]:
    """Services running an image built from docker/."""
    return {name: s for name, s in _services().items() if s["image"].startswith("octopi-serve/")}


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _default(value: str) -> str:
    """``${VAR:-default}`` interpolations replaced by their defaults (what `docker compose up` uses)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_our_services_run_the_images_the_dockerfiles_build():
    names, version = kustomize_image_names(), project_version()
    built = {}
    for name, service in _ours().items():
        image, _, tag = service["image"].partition(":")
        assert image in names, f"{name}: {image} is not one of the kustomization's images {sorted(names)}"
        assert tag == version == names[image], f"{name}: {tag}, project {version}, kustomize {names[image]}"
        dockerfile = service["build"]["dockerfile"]
        assert dockerfile in DOCKERFILES.values(), f"{name}: builds {dockerfile}"
        assert service["build"]["context"] == "."
        built[image] = dockerfile
    assert {f"octopi-serve/{kind}": path for kind, path in DOCKERFILES.items()} == built


def test_third_party_images_are_pinned():
    for name, service in _services().items():
        if not service["image"].startswith("octopi-serve/"):
            assert _PINNED.match(service["image"]), f"{name}: {service['image']} is not pinned"


def test_environment_is_read_by_settings_and_valid():
    known = settings_env_names() | AWS_ENV_NAMES
    for name, service in _ours().items():
        env = {k: _default(v) for k, v in _environment(service).items()}
        unknown = set(env) - known
        assert not unknown, f"{name}: {sorted(unknown)} are neither Settings fields nor AWS variables"
        settings_from_env(env)  # raises on a value the service would refuse


def test_commands_are_octopi_serve_commands():
    for service in _ours().values():
        kind = service["image"].split("/")[1].split(":")[0]
        entrypoint = read_dockerfile(DOCKERFILES[kind]).final.exec_form("ENTRYPOINT")
        command = service.get("command") or read_dockerfile(DOCKERFILES[kind]).final.exec_form("CMD")
        if entrypoint == ["octopi-train"]:
            parse_cli(["retrain", *command, "--registry", "s3://bucket/registry"])
        else:
            assert entrypoint == ["octopi-serve"]
            parse_cli(command)


def test_gateway_publishes_the_port_it_listens_on():
    gateway = _services()["gateway"]
    settings = settings_from_env(_environment(gateway))
    container_ports = {int(str(p).rsplit(":", 1)[-1]) for p in gateway["ports"]}
    assert container_ports == {settings.port}
    assert settings.host == "0.0.0.0"


def test_redis_persists_and_never_evicts():
    redis = _services()["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert any(
        str(v).split(":")[1] == "/data" and str(v).split(":")[0] in load_compose()["volumes"]
        for v in redis["volumes"]
    ), "Redis data must live on a named volume"
    for name, service in _ours().items():
        url = _environment(service).get("REDIS_URL")
        if url:
            assert urllib.parse.urlsplit(url).hostname == "redis", f"{name}: REDIS_URL {url}"


def test_s3_store_holds_the_registry_bucket():
    services = _services()
    bucket_made = services["s3-init"]["command"][-1].split("/", 1)[1]
    for name, service in _ours().items():
        env = _environment(service)
        endpoint = urllib.parse.urlsplit(env["AWS_ENDPOINT_URL"])
        assert endpoint.hostname == "s3" and endpoint.port == 9000, f"{name}: {env['AWS_ENDPOINT_URL']}"
        registry = urllib.parse.urlsplit(env["OCTOPI_REGISTRY_URI"])
        assert (registry.scheme, registry.netloc) == ("s3", bucket_made), f"{name}: {registry.geturl()}"
        assert services[name]["depends_on"]["s3-init"]["condition"] == "service_completed_successfully"


def test_worker_is_cpu_by_default_and_the_gpu_profile_reserves_a_gpu():
    services = _services()
    assert "profiles" not in services["worker"] and "deploy" not in services["worker"]
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert gpu["command"] == services["worker"]["command"] and gpu["image"] == services["worker"]["image"]
    for service in (services["worker"], gpu):
        assert service["stop_grace_period"], "give a stopping worker time to re-queue its job"


def test_retraining_is_a_one_shot_service():
    retrain = _services()["retrain"]
    assert retrain["profiles"] == ["retrain"]
    assert retrain["restart"] == "no"


def test_gateway_and_workers_wait_for_redis():
    for name in ("gateway", "worker"):
        assert _services()[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "healthcheck" in _services()["redis"]


@pytest.mark.parametrize("service", ["gateway", "worker"])
def test_local_tomograms_are_shared_under_an_allowed_root(service):
    env = _environment(_services()[service])
    settings = settings_from_env(env)
    mounts = {str(v).split(":")[1] for v in _services()[service]["volumes"]}
    assert {str(root) for root in settings.local_roots} <= mounts
