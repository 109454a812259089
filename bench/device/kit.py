"""What the project needs to run on a lent GPU machine, which reaches no package index (issues 17, 18).

The machines' image has Python 3.12, PyTorch with CUDA and many common packages (``image-packages.txt``),
but not all of the project's runtime dependencies. Two commands:

    python bench/device/kit.py wheels   # here: wheels for what the image lacks -> .device/wheels
    python3 bench/device/kit.py check   # there (run.sh does it): name every dependency still missing

``wheels`` walks the project's runtime dependencies (``pyproject.toml``) through the packages installed in
this environment, with their markers evaluated for the device's Python, and downloads, for that Python and
platform, the installed version of each one the image does not list (the versions the tests ran with),
and of each pure-Python image package whose version one of those caps. ``check`` walks the same
dependencies through what the device's Python imports and exits 1 naming each one that is missing or
outside its range, so a device session learns it in seconds, not after a failed import mid-run.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

__all__ = ["Closure", "closure", "image_packages", "main", "project_requirements", "wheels_to_carry"]

ROOT = Path(__file__).resolve().parents[2]
IMAGE_PACKAGES = Path(__file__).with_name("image-packages.txt")
WHEELS_DIR = ROOT / ".device" / "wheels"
DEVICE_PYTHON = "3.12.3"
# Every manylinux tag a wheel of the x86_64 image can have (pip tries them in this order).
DEVICE_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
UPPER_BOUNDS = ("==", "===", "<", "<=", "~=")


@dataclass
class Closure:
    """The installed distributions that a set of requirements needs, and what is wrong with them."""

    versions: dict[str, str] = field(default_factory=dict)  # canonical name -> installed version
    capped_by: dict[str, set[str]] = field(default_factory=dict)  # name -> who caps its version
    problems: list[str] = field(default_factory=list)


def project_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The project's runtime dependencies as written in ``pyproject.toml`` (no extras)."""
    return list(tomllib.loads(pyproject.read_text())["project"]["dependencies"])


def image_packages(path: Path = IMAGE_PACKAGES) -> set[str]:
    """Canonical names of the packages the device image holds."""
    names = set()
    for line in path.read_text().splitlines():
        if not line.lstrip().startswith("#"):
            names.update(canonicalize_name(name) for name in line.split())
    return names


def device_environment(python: str = DEVICE_PYTHON) -> dict[str, str]:
    """Marker values of the device's Python (X.Y.Z) on x86_64 Linux."""
    environment = dict(default_environment())
    environment.update(
        python_version=_major_minor(python),
        python_full_version=python,
        sys_platform="linux",
        platform_system="Linux",
        platform_machine="x86_64",
        implementation_name="cpython",
        platform_python_implementation="CPython",
    )
    return environment


def _major_minor(python: str) -> str:
    return ".".join(python.split(".")[:2])


def closure(
    requirements: list[str],
    environment: dict[str, str],
    find_version=lambda name: metadata.version(name),
    find_requires=lambda name: metadata.requires(name) or [],
) -> Closure:
    """Walk ``requirements`` through the installed distributions (``find_*`` look them up)."""
    result = Closure()

    extras_walked: dict[str, set[str]] = {}  # name -> the extras its requirements were walked for

    def visit(text: str, needed_by: str, needed_by_extras: frozenset[str] = frozenset()) -> None:
        requirement = Requirement(text)
        # A requirement of `needed_by` applies when its marker holds plain or with an extra asked of it.
        if requirement.marker is not None and not any(
            requirement.marker.evaluate({**environment, "extra": extra}) for extra in ("", *needed_by_extras)
        ):
            return
        name = canonicalize_name(requirement.name)
        if any(spec.operator in UPPER_BOUNDS for spec in requirement.specifier):
            result.capped_by.setdefault(name, set()).add(needed_by)
        try:
            version = find_version(name)
        except metadata.PackageNotFoundError:
            result.problems.append(f"{name} is not installed ({needed_by} needs {requirement})")
            return
        if not requirement.specifier.contains(version, prereleases=True):
            result.problems.append(f"{name} {version} is installed, {needed_by} needs {requirement}")
        result.versions[name] = version
        walked = extras_walked.get(name)
        if walked is not None and requirement.extras <= walked:
            return  # its requirements were already walked for these extras
        extras_walked[name] = (walked or set()) | requirement.extras
        for child in find_requires(name):
            visit(child, name, frozenset(extras_walked[name]))

    for text in requirements:
        visit(text, "octopi-serve")
    return result


def is_pure_python(name: str) -> bool:
    """Whether the installed distribution came from a pure-Python wheel (no compiled code)."""
    return "Root-Is-Purelib: true" in (metadata.distribution(name).read_text("WHEEL") or "")


def wheels_to_carry(found: Closure, image: set[str], is_pure=is_pure_python) -> dict[str, str]:
    """Name -> version of each needed package the image lacks, and of each pure-Python image package
    whose version a carried one caps (s3fs allows one fsspec release: the image's may be another).
    Compiled image packages stay the image's: a carried numpy could break the image's torch."""
    carried = {name: version for name, version in found.versions.items() if name not in image}
    capped = {
        name: found.versions[name]
        for name, cappers in found.capped_by.items()
        if name in image and name in found.versions and cappers & carried.keys() and is_pure(name)
    }
    return dict(sorted({**carried, **capped}.items()))


def download(packages: dict[str, str], into: Path, python: str) -> None:
    """``pip download`` one wheel per package for the device's Python and platform, nothing else."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    platforms = [arg for platform in DEVICE_PLATFORMS for arg in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", _major_minor(python), *platforms, "--dest", str(into)]
    subprocess.run(command + [f"{name}=={version}" for name, version in packages.items()], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    wheels = commands.add_parser("wheels", help="download wheels of what the device image lacks")
    wheels.add_argument("--python", default=DEVICE_PYTHON, help="the device's Python, X.Y.Z")
    wheels.add_argument("--dest", type=Path, default=WHEELS_DIR)
    commands.add_parser("check", help="name every runtime dependency missing here or outside its range")
    args = parser.parse_args(argv)

    if args.command == "check":
        found = closure(project_requirements(), dict(default_environment()))
        for problem in found.problems:
            print(f"kit check: {problem}", file=sys.stderr)
        print(f"kit check: {len(found.versions)} packages, {len(found.problems)} problems")
        return 1 if found.problems else 0

    found = closure(project_requirements(), device_environment(args.python))
    if found.problems:
        sys.exit(
            "this environment lacks the project's dependencies (run `make setup`):\n"
            + "\n".join(found.problems)
        )
    packages = wheels_to_carry(found, image_packages())
    download(packages, args.dest, args.python)
    size_mb = sum(path.stat().st_size for path in args.dest.iterdir()) / 2**20
    print(f"{len(packages)} wheels, {size_mb:.1f} MiB in {args.dest}: {', '.join(packages)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
