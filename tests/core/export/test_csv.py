"""Tests for octopi_core.export.csv: CSV picks and Kaggle submissions."""

from __future__ import annotations

import pytest

from octopi_core.exceptions import PicksFormatError
from octopi_core.export import read_picks, write_picks
from tests.core.export.samples import sample_doc as _doc


def test_csv_header(tmp_path):
    write_picks(_doc(), tmp_path / "p.csv")
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "run_name,particle_type,x,y,z,score"
    assert lines[1].startswith("TS_5_4,apo-ferritin,123.456,2000.25,900.5,0.93")
    assert len(lines) == 4


def test_kaggle_csv(tmp_path):
    path = tmp_path / "submission.csv"
    path.write_text(
        "id,experiment,particle_type,x,y,z\n"
        "0,TS_5_4,apo-ferritin,5871.7,4985.0,1218.5\n"
        "1,TS_5_4,virus-like-particle,100.0,200.0,300.0\n"
        "2,TS_69_2,apo-ferritin,1.0,2.0,3.0\n"
    )
    docs = read_picks(path)
    assert [d.run_name for d in docs] == ["TS_5_4", "TS_69_2"]
    assert list(docs[0].picks) == ["apo-ferritin", "virus-like-particle"]
    p = docs[0].picks["apo-ferritin"][0]
    assert (p.x, p.y, p.z, p.score) == (5871.7, 4985.0, 1218.5, 1.0)


def test_csv_missing_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("run_name,particle_type,x,y\nTS,ribosome,1,2\n")
    with pytest.raises(PicksFormatError, match=r"bad\.csv.*missing columns \['z'\]"):
        read_picks(path)
