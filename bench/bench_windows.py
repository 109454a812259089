"""How the sliding-window layout trades speed for accuracy: the measurement behind the defaults.

For each layout (window zyx, overlap) runs the shipped model over the same generated tomograms
and prints and writes to bench/results/windows-<date>.json: windows run, network passes per
voxel, inference seconds, and the CZII weighted F-beta of the picks (the model's tuned
localization) against the generator's truth. Every layout sees the same tomograms in the same
run, so the differences are the layout's alone.

    python bench/bench_windows.py [--model CKPT] [--threads N] [--layouts 96/0.25 192,128,128/0.125 ...]
"""

from __future__ import annotations

import argparse
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _data import DATA_DIR, full_size_tomogram, write_result  # noqa: E402

from octopi_core.export import read_picks  # noqa: E402
from octopi_core.inference import window_grid  # noqa: E402
from octopi_core.metric import score_documents  # noqa: E402
from octopi_core.options import PredictOptions, parse_window  # noqa: E402
from octopi_core.pipeline import Picker  # noqa: E402
from octopi_core.synth import HELD_OUT_SETTINGS, make_phantom, write_phantom  # noqa: E402

LAYOUTS = [
    "96/0.25",
    "192,128,128/0.125",
    "192,128,128/0.25",
    "192,160,160/0.125",
    "192,96,96/0.125",
    "192,128,128/0.0",
]


def _parse_layout(text: str) -> tuple[tuple[int, int, int], float]:
    window, overlap = text.split("/")
    return parse_window(window), float(overlap)


def _held_out_tomogram() -> tuple[Path, Path]:
    """A held-out-settings tomogram of full depth (184 x 384 x 384), made once."""
    name = "held-out-0000"
    tomogram, truth = DATA_DIR / f"{name}.zarr", DATA_DIR / f"{name}.truth.json"
    if not truth.exists():
        settings = HELD_OUT_SETTINGS.model_copy(update={"shape_zyx": (184, 384, 384)})
        write_phantom(make_phantom(950_000, settings), DATA_DIR, name)
    return tomogram, truth


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--layouts", nargs="+", default=LAYOUTS, help="WINDOW/OVERLAP, WINDOW = N or Z,Y,X")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    picker = Picker(args.model, device="cpu")
    inputs = [full_size_tomogram(), _held_out_tomogram()]
    truths = [read_picks(truth)[0] for _, truth in inputs]
    rows = []
    for text in args.layouts:
        window, overlap = _parse_layout(text)
        options = PredictOptions(window_vox=window, overlap=overlap)
        # The whole pipeline, as a user runs it; only its inference stage is timed.
        picks = [picker.predict(str(tomogram), options) for tomogram, _ in inputs]
        grids = [window_grid(doc.shape_zyx, window, overlap) for doc in picks]
        seconds = sum(doc.timings_s["inference"] for doc in picks)
        voxels = sum(math.prod(doc.shape_zyx) for doc in picks)
        score = score_documents(
            picks, [t.model_copy(update={"run_name": d.run_name}) for d, t in zip(picks, truths)]
        )
        row = {
            "layout": text,
            "window_zyx": window,
            "overlap": overlap,
            "seconds": seconds,
            "windows": sum(g.count for g in grids),
            "voxels": voxels,
            "passes_per_voxel_by_tomogram": [
                round(g.passes_per_voxel(d.shape_zyx), 3) for g, d in zip(grids, picks)
            ],
            "weighted_f_beta": round(score.weighted_f_beta, 4),
            "f_beta": {c.particle: round(c.f_beta, 4) for c in score.classes},
            "microseconds_per_voxel": round(seconds / voxels * 1e6, 3),
        }
        rows.append(row)
        print(
            f"{text:>20}  passes/voxel {row['passes_per_voxel_by_tomogram']}  {row['seconds']:7.1f} s  "
            f"weighted F-beta {row['weighted_f_beta']:.4f}",
            flush=True,
        )
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_version": picker.version,
        "threads": torch.get_num_threads(),
        "tomograms": [str(t) for t, _ in inputs],
        "localize": picker.localize_settings(),
        "layouts": rows,
    }
    write_result("windows", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
