"""Tests for octopi_core.export.formats: the format names, one extension per format, and a light import."""

import subprocess
import sys

import pytest

from octopi_core.export.formats import SUFFIX_FORMATS, PicksFormat, normalise_format


def test_each_format_has_one_file_extension():
    assert {f: f.extension for f in PicksFormat} == {
        PicksFormat.JSON: "json",
        PicksFormat.CSV: "csv",
        PicksFormat.STAR: "star",
        PicksFormat.COPICK: "copick.json",
        PicksFormat.NDJSON: "ndjson",
    }
    assert all(SUFFIX_FORMATS[f".{f.extension}"] is f for f in PicksFormat if f is not PicksFormat.COPICK)


def test_normalise_format_accepts_the_enum_or_its_string():
    assert normalise_format(" STAR ") is PicksFormat.STAR
    assert normalise_format(PicksFormat.CSV) is PicksFormat.CSV
    with pytest.raises(ValueError, match="fmt must be one of"):
        normalise_format("xml")


@pytest.mark.parametrize("module", ["octopi_core.export.formats", "octopi_core.export"])
def test_the_format_names_import_without_numpy_pandas_or_starfile(module):
    # The gateway imports PicksFormat; it must not pay for the array libraries.
    code = (
        f"import sys, {module}; from octopi_core.export import PicksFormat; "
        "print(sorted(m for m in ('numpy', 'pandas', 'starfile') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
