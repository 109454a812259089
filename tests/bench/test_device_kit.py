"""bench/device/kit.py: which wheels a device session carries, and the check that runs there first."""

from __future__ import annotations

import importlib.metadata as metadata
import subprocess
import sys
from pathlib import Path

_DEVICE = Path(__file__).resolve().parents[2] / "bench" / "device"

# A small made-up world of installed distributions: name -> (version, requirements).
_INSTALLED = {
    "service": ("1.0", ["webkit>=2", "oldpy-shim; python_version < '3.12'", "tools[fast]"]),
    "webkit": ("2.5", ["fsspec<2026.10,>=2026.9", "numpy<3"]),
    "tools": ("0.3", ["speedup; extra == 'fast'", "numpy>=2"]),
    "speedup": ("1.1", []),
    "oldpy-shim": ("0.1", []),
    "fsspec": ("2026.9.0", []),
    "numpy": ("2.4.6", []),
}


def _kit(monkeypatch):
    monkeypatch.syspath_prepend(str(_DEVICE))
    import kit

    return kit


def _version(name):
    if name not in _INSTALLED:
        raise metadata.PackageNotFoundError(name)
    return _INSTALLED[name][0]


def _requires(name):
    return _INSTALLED[name][1]


def _walk(kit, requirements, python="3.12.3", version=_version):
    return kit.closure(requirements, kit.device_environment(python), version, _requires)


def test_the_closure_follows_requirements_extras_and_the_device_pythons_markers(monkeypatch):
    kit = _kit(monkeypatch)
    found = _walk(kit, ["service>=1"])
    assert set(found.versions) == {"service", "webkit", "tools", "speedup", "fsspec", "numpy"}
    assert found.problems == []
    assert found.capped_by["fsspec"] == {"webkit"}
    # On an older Python the shim is needed too.
    assert "oldpy-shim" in _walk(kit, ["service>=1"], python="3.11.2").versions


def test_missing_and_out_of_range_dependencies_are_named_with_who_needs_them(monkeypatch):
    kit = _kit(monkeypatch)

    def without_speedup(name):
        if name == "speedup":
            raise metadata.PackageNotFoundError(name)
        return _version(name)

    found = _walk(kit, ["service>=1", "numpy>=3"], version=without_speedup)
    assert 'speedup is not installed (tools needs speedup; extra == "fast")' in found.problems
    assert "numpy 2.4.6 is installed, octopi-serve needs numpy>=3" in found.problems
    assert len(found.problems) == 2


def test_only_what_the_image_lacks_is_carried_and_capped_pure_packages_with_it(monkeypatch):
    kit = _kit(monkeypatch)
    found = _walk(kit, ["service>=1"])
    image = {"fsspec", "numpy", "tools", "speedup"}
    carried = kit.wheels_to_carry(found, image, is_pure=lambda name: name != "numpy")
    # webkit and service are not in the image; webkit caps fsspec (pure: carried) and numpy (compiled:
    # the image's stays, a carried one could break the image's torch).
    assert carried == {"fsspec": "2026.9.0", "service": "1.0", "webkit": "2.5"}
    # A capped package is carried only when a carried package caps it.
    assert kit.wheels_to_carry(found, image | {"webkit", "service"}, is_pure=lambda _: True) == {}


def test_the_image_list_and_the_project_requirements_are_read(monkeypatch, tmp_path):
    kit = _kit(monkeypatch)
    listing = tmp_path / "image.txt"
    listing.write_text("# comment torch\nPyYAML typing_extensions\n  numpy\n")
    assert kit.image_packages(listing) == {"pyyaml", "typing-extensions", "numpy"}
    assert {"torch", "numpy"} <= kit.image_packages()
    assert any(text.startswith("torch>=") for text in kit.project_requirements())


def test_check_passes_in_the_projects_environment_and_names_what_is_missing(monkeypatch):
    kit = _kit(monkeypatch)
    done = subprocess.run(
        [sys.executable, str(_DEVICE / "kit.py"), "check"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "0 problems" in done.stdout
    monkeypatch.setattr(kit, "project_requirements", lambda: ["octopi-no-such-package>=1"])
    assert kit.main(["check"]) == 1


def test_run_sh_refuses_without_wheels_and_says_what_to_do(tmp_path):
    done = subprocess.run(
        ["bash", str(_DEVICE / "run.sh"), "train"],
        env={"PATH": "/usr/bin:/bin", "WHEELS": str(tmp_path), "OUT": str(tmp_path / "out")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "make device-kit" in done.stderr
