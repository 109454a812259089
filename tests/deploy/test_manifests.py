"""Rendered overlays against the code: settings, commands, probes, ports, images, scaling, policies."""

from __future__ import annotations

import re
import urllib.parse

import pytest

from .artifacts import DOCKERFILES, containers, kustomize_image_names, pod_templates, read_dockerfile
from .contract import (
    AWS_ENV_NAMES,
    deployment_docs,
    exported_metric_names,
    parse_cli,
    project_version,
    route_status,
    settings_env_names,
    settings_from_env,
)
from .test_dockerfiles import _PINNED

_GPU = "nvidia.com/gpu"


# -- helpers -------------------------------------------------------------------------------------------------


def _ours(container: dict) -> str | None:
    """``gateway``, ``worker`` or ``train`` for a container running an image built here (in any registry)."""
    name = re.sub(r":[^/:]+$", "", container["image"].split("@")[0])
    *_, project, kind = ["", *name.split("/")]
    return kind if project == "octopi-serve" and kind in DOCKERFILES else None


def _component(workload: dict) -> str:
    return workload["metadata"]["labels"]["app.kubernetes.io/component"]


def _config_maps(objects) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}


def _environment(objects, container: dict) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The container's environment (Secrets as stand-ins) and the ``(Secret, key)`` pairs it reads."""
    config_maps, env, secrets = _config_maps(objects), {}, []
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        if "secretRef" in source:
            pytest.fail("read Secrets key by key (env[].valueFrom.secretKeyRef) so the names can be checked")
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "configMapKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = config_maps[ref["name"]][ref["key"]]
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            secrets.append((ref["name"], ref["key"]))
            env[item["name"]] = f"stand-in-for-{ref['key']}-0123456789"
    return env, secrets


def _matches(selector: dict, labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return True
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if not {
            "In": present and labels[key] in values,
            "NotIn": not present or labels[key] not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]:
            return False
    return True


def _workload(objects, kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert found, f"{kind}/{name} is not rendered"
    return found[0]


def _pod_labels(objects) -> dict[str, dict[str, str]]:
    return {_component(w): t["metadata"]["labels"] for w, t in pod_templates(objects)}


# -- every container -----------------------------------------------------------------------------------------


def test_every_container_has_cpu_and_memory_requests_and_limits(objects):
    for workload, _, container in containers(objects):
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(bound, {}))
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert not missing, f"{where}: no {bound} for {missing}"
        for name, request in resources["requests"].items():
            if name == _GPU:
                assert resources["limits"].get(_GPU) == request, "GPU requests and limits must be equal"


def test_pods_meet_the_restricted_pod_security_standard(objects):
    for workload, pod, container in containers(objects):
        where = f"{workload['metadata']['name']}/{container['name']}"
        pod_security, security = pod.get("securityContext", {}), container.get("securityContext", {})
        assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, where
        assert security.get("runAsUser", pod_security.get("runAsUser", 1)) != 0, where
        seccomp = security.get("seccompProfile", pod_security.get("seccompProfile", {}))
        assert seccomp.get("type") == "RuntimeDefault", where
        assert security.get("allowPrivilegeEscalation") is False, where
        assert security.get("capabilities", {}).get("drop") == ["ALL"], where
        assert security.get("readOnlyRootFilesystem") is True, where
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), where
        assert not any("hostPath" in v for v in pod.get("volumes", [])), where
        assert pod.get("automountServiceAccountToken") is False, f"{where}: no workload here talks to the API"


def test_images_are_pinned_and_ours_are_the_ones_built_here(objects):
    version, tags = project_version(), kustomize_image_names()
    for _, _, container in containers(objects):
        kind = _ours(container)
        if kind is None:
            assert _PINNED.match(container["image"]), f"{container['image']} is not pinned to a version tag"
            continue
        assert f"octopi-serve/{kind}" in tags, f"{container['image']}: no tag in k8s/base/kustomization.yaml"
        tag = container["image"].split("@")[0].rsplit(":", 1)[1]
        assert tag == tags[f"octopi-serve/{kind}"] == version, f"{container['image']}: not version {version}"


def test_environment_is_read_by_settings_and_valid(objects):
    known = settings_env_names() | AWS_ENV_NAMES
    for config_map in _config_maps(objects).values():
        if "redis.conf" in config_map:
            continue
        unknown = set(config_map) - known
        assert not unknown, f"ConfigMap keys {sorted(unknown)} are neither Settings fields nor AWS variables"
    for workload, _, container in containers(objects):
        if _ours(container) is None:
            continue
        env, _ = _environment(objects, container)
        unknown = set(env) - known
        assert not unknown, f"{workload['metadata']['name']}: {sorted(unknown)} are not read by the service"
        settings_from_env(env)  # raises on a value the service would refuse at start-up


def test_commands_are_octopi_serve_commands(objects):
    for workload, _, container in containers(objects):
        kind = _ours(container)
        if kind is None:
            continue
        final = read_dockerfile(DOCKERFILES[kind]).final
        command = container.get("command") or final.exec_form("ENTRYPOINT")
        overridden = "args" in container or "command" in container
        args = container.get("args") if overridden else final.exec_form("CMD")
        if command == ["octopi-train"]:
            parse_cli(["retrain", *(args or []), "--registry", "s3://bucket/registry"])
        else:
            assert command == ["octopi-serve"], f"{workload['metadata']['name']}: command {command}"
            namespace = parse_cli(args or [])
            assert namespace.command == _component(workload) == kind, (
                f"{workload['metadata']['name']}: `octopi-serve {namespace.command}` from the {kind} image"
            )


def test_probes_hit_gateway_routes_on_the_port_it_listens_on(objects):
    for _, _, container in containers(objects):
        if _ours(container) != "gateway":
            continue
        settings = settings_from_env(_environment(objects, container)[0])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert set(ports.values()) == {settings.port}, "the container port must be the port the gateway binds"
        kinds = ("startupProbe", "livenessProbe", "readinessProbe")
        probes = {name: container[name]["httpGet"] for name in kinds if name in container}
        assert probes["livenessProbe"]["path"] == "/healthz" and probes["readinessProbe"]["path"] == "/readyz"
        for name, probe in probes.items():
            assert route_status(probe["path"]) not in (404, 405), f"{name} {probe['path']}: no such route"
            assert ports.get(probe["port"], probe["port"]) == settings.port, f"{name}: port {probe['port']}"


# -- gateway -------------------------------------------------------------------------------------------------


def test_gateway_is_served_autoscaled_and_kept_available(objects):
    deployment = _workload(objects, "Deployment", "octopi-gateway")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    port_names = {p["name"] for p in container["ports"]}
    service = _workload(objects, "Service", "octopi-gateway")
    assert service["spec"]["selector"].items() <= labels.items()
    assert all(p["targetPort"] in port_names for p in service["spec"]["ports"])
    hpa = _workload(objects, "HorizontalPodAutoscaler", "octopi-gateway")
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "octopi-gateway"}
    assert hpa["spec"]["scaleTargetRef"] == target
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    pdb = _workload(objects, "PodDisruptionBudget", "octopi-gateway")
    assert _matches(pdb["spec"]["selector"], labels)
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "the PDB must not block every node drain"


def test_prometheus_scrapes_the_gateway_metrics(objects):
    deployment = _workload(objects, "Deployment", "octopi-gateway")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    ports = {p["containerPort"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) in ports
    assert route_status(annotations["prometheus.io/path"]) == 200


# -- redis ---------------------------------------------------------------------------------------------------


def test_only_the_gateway_and_the_workers_reach_redis(objects):
    pods = _pod_labels(objects)
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    deny_all = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and "ingress" not in p["spec"]
        and p["spec"]["policyTypes"] == ["Ingress"]
    ]
    assert deny_all, "a default-deny ingress policy must cover the namespace"
    allowed = set()
    for policy in policies:
        if not _matches(policy["spec"]["podSelector"], pods["redis"]):
            continue
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"NetworkPolicy {policy['metadata']['name']} opens Redis to everyone"
            for peer in rule["from"]:
                assert set(peer) == {"podSelector"}, "Redis peers are pods of this namespace only"
                allowed |= {c for c, labels in pods.items() if _matches(peer["podSelector"], labels)}
    assert allowed == {"gateway", "worker"}


def test_redis_is_persistent_and_never_evicts(objects):
    statefulset = _workload(objects, "StatefulSet", "octopi-redis")
    conf = _config_maps(objects)["octopi-redis-config"]["redis.conf"]
    lines = [line for line in conf.splitlines() if line.strip() and not line.startswith("#")]
    settings = dict(line.split(None, 1) for line in lines)
    assert settings["appendonly"] == "yes" and settings["maxmemory-policy"] == "noeviction"
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    claims = {t["metadata"]["name"] for t in statefulset["spec"]["volumeClaimTemplates"]}
    data_mounts = {m["mountPath"] for m in container["volumeMounts"] if m["name"] in claims}
    assert settings["dir"] in data_mounts, "the append-only file must be written to the persistent volume"
    service = _workload(objects, "Service", statefulset["spec"]["serviceName"])
    for workload, _, c in containers(objects):
        url = _environment(objects, c)[0].get("REDIS_URL") if _ours(c) else None
        if url:
            parts = urllib.parse.urlsplit(url)
            assert parts.hostname == service["metadata"]["name"], f"{workload['metadata']['name']}: {url}"
            assert parts.port in {p["port"] for p in service["spec"]["ports"]}


# -- workers -------------------------------------------------------------------------------------------------


def test_worker_grace_period_covers_stopping_and_requeueing_a_job(objects):
    deployment = _workload(objects, "Deployment", "octopi-worker")
    pod = deployment["spec"]["template"]["spec"]
    settings = settings_from_env(_environment(objects, pod["containers"][0])[0])
    # SIGTERM: the job stops at its next batch of windows, then is re-queued; storing it may retry for
    # redis_retry_s while Redis is away. A minute is left for the batch itself.
    assert pod["terminationGracePeriodSeconds"] >= settings.redis_retry_s + 60


def test_workers_scale_on_queued_jobs_plus_busy_workers_down_to_zero(objects, overlay):
    scaled = [o for o in objects if o["kind"] == "ScaledObject"]
    if overlay == "dev":
        assert not scaled, "dev runs without KEDA"
        assert _workload(objects, "Deployment", "octopi-worker")["spec"]["replicas"] >= 1
        return
    (scaled_object,) = scaled
    assert scaled_object["spec"]["scaleTargetRef"]["name"] == "octopi-worker"
    assert scaled_object["spec"]["minReplicaCount"] == 0
    (trigger,) = scaled_object["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    query = trigger["metadata"]["query"]
    used = set(re.findall(r"\b(octopi_[a-z_]+)", query))
    assert {"octopi_queue_depth", "octopi_workers_busy"} <= used <= exported_metric_names(), query
    assert set(re.findall(r'namespace="([^"]+)"', query)) == {scaled_object["metadata"]["namespace"]}, (
        "the query must read the gauges of this namespace's gateway"
    )
    assert float(trigger["metadata"]["threshold"]) == 1, "one job per worker"


def test_gpu_work_lands_on_gpu_nodes(objects, overlay):
    for workload, template in pod_templates(objects):
        if _component(workload) not in ("worker", "retrain"):
            continue
        pod = template["spec"]
        resources = pod["containers"][0]["resources"]
        if overlay == "dev":
            assert _GPU not in resources["requests"] and not pod.get("nodeSelector"), "dev needs no GPU"
            continue
        assert resources["requests"][_GPU] == resources["limits"][_GPU] == 1
        assert any(t["key"] == _GPU and t["effect"] == "NoSchedule" for t in pod["tolerations"])
        assert pod["nodeSelector"], f"{workload['metadata']['name']}: select GPU nodes"


# -- retraining ----------------------------------------------------------------------------------------------


def test_retraining_cronjob_is_bounded_and_reads_the_registry_credentials(objects):
    cronjob = _workload(objects, "CronJob", "octopi-retrain")
    spec, job = cronjob["spec"], cronjob["spec"]["jobTemplate"]["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert job["activeDeadlineSeconds"] > 0 and 0 <= job["backoffLimit"] <= 2
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert _ours(container) == "train"
    env, secrets = _environment(objects, container)
    settings = settings_from_env(env)
    assert settings.registry_uri == env["OCTOPI_REGISTRY_URI"]
    assert {name for name, _ in secrets} and {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)
    work = read_dockerfile(DOCKERFILES["train"]).final.last("WORKDIR")
    assert work in {m["mountPath"] for m in container["volumeMounts"]}, "runs are written in the working dir"


def test_registry_uri_is_shared_by_workers_gateway_and_retraining(objects):
    uris = set()
    for _, _, container in containers(objects):
        if _ours(container):
            uris.add(_environment(objects, container)[0]["OCTOPI_REGISTRY_URI"])
    assert len(uris) == 1, f"one registry for the whole deployment, got {uris}"


# -- secrets -------------------------------------------------------------------------------------------------


def test_secrets_are_provided_or_documented(objects, overlay):
    provided = {
        o["metadata"]["name"]: set(o.get("data", {})) | set(o.get("stringData", {}))
        for o in objects
        if o["kind"] == "Secret"
    }
    docs = deployment_docs()
    for _, _, container in containers(objects):
        for name, key in _environment(objects, container)[1]:
            if overlay == "dev":
                assert key in provided.get(name, set()), f"dev: Secret {name} has no key {key}"
            else:
                assert name not in provided, "production Secrets are created out of band, never committed"
                assert name in docs and key in docs, f"README.md (Deployment): how to create {name} ({key})?"
