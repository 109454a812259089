"""Tests for octopi_core.stage: the prediction stages stay importable without torch."""

import subprocess
import sys

from octopi_core.stage import Stage


def test_stage_values():
    assert [s.value for s in Stage] == ["fetching", "inferring", "localizing"]


def test_stage_from_the_package_does_not_import_torch():
    # The gateway reports stages; it must not load the network to name them.
    code = "import sys; from octopi_core import Stage; print('torch' in sys.modules, Stage.INFERRING.value)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False inferring"
