"""The benchmarks' shared input: one full-size synthetic tomogram with its truth, generated once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SHAPE = (184, 630, 630)  # voxels, zyx: the size of a CZII challenge tomogram at 10 Å
DATA_DIR = Path(__file__).parent / "data"


def full_size_tomogram() -> tuple[Path, Path]:
    """``(OME-Zarr path, truth JSON path)`` of the 184x630x630 benchmark tomogram (seed 0), made on first use."""
    tomogram, truth = DATA_DIR / "synthetic-0000.zarr", DATA_DIR / "synthetic-0000.truth.json"
    if not truth.exists():
        print(f"generating a {SHAPE} tomogram in {DATA_DIR} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "octopi_core.cli", "generate", str(DATA_DIR), "--seed", "0",
                        "--shape", *map(str, SHAPE)], check=True)
    return tomogram, truth
