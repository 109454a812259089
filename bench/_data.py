"""What the benchmarks share: one full-size synthetic tomogram with its truth (generated once), and
where their raw figures go."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

SHAPE = (184, 630, 630)  # voxels, zyx: the size of a CZII challenge tomogram at 10 Å
DATA_DIR = Path(__file__).parent / "data"
RESULTS_DIR = Path(__file__).parent / "results"


def full_size_tomogram() -> tuple[Path, Path]:
    """``(OME-Zarr path, truth JSON path)`` of the 184x630x630 benchmark tomogram (seed 0), made on first use."""
    tomogram, truth = DATA_DIR / "synthetic-0000.zarr", DATA_DIR / "synthetic-0000.truth.json"
    if not truth.exists():
        print(f"generating a {SHAPE} tomogram in {DATA_DIR} (once)...", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "octopi_core.cli",
                "generate",
                str(DATA_DIR),
                "--seed",
                "0",
                "--shape",
                *map(str, SHAPE),
            ],
            check=True,
        )
    return tomogram, truth


def write_result(name: str, result: dict) -> Path:
    """Write a run's figures to ``bench/results/<name>-<UTC time>.json``, print and return the path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return path
