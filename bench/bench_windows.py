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
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from octopi_core.export import picks_document_from_voxels, read_picks  # noqa: E402
from octopi_core.inference import segment_tomogram, window_grid  # noqa: E402
from octopi_core.io import load_tomogram  # noqa: E402
from octopi_core.localize import localize_particles  # noqa: E402
from octopi_core.metric import score_documents  # noqa: E402
from octopi_core.pipeline import Picker  # noqa: E402
from octopi_core.synth import HELD_OUT_SETTINGS, make_phantom, write_phantom  # noqa: E402

from _data import DATA_DIR, full_size_tomogram  # noqa: E402

LAYOUTS = ["96/0.25", "192,128,128/0.125", "192,128,128/0.25", "192,160,160/0.125", "192,96,96/0.125",
           "192,128,128/0.0"]


def _parse_layout(text: str) -> tuple[tuple[int, int, int], float]:
    window, overlap = text.split("/")
    sizes = tuple(int(v) for v in window.split(","))
    return (sizes * 3 if len(sizes) == 1 else sizes), float(overlap)


def _held_out_tomogram() -> tuple[Path, Path]:
    """A held-out-settings tomogram of full depth (184 x 384 x 384), made once."""
    name = "held-out-0000"
    tomogram, truth = DATA_DIR / f"{name}.zarr", DATA_DIR / f"{name}.truth.json"
    if not truth.exists():
        settings = HELD_OUT_SETTINGS.model_copy(update={"shape_zyx": (184, 384, 384)})
        write_phantom(make_phantom(950_000, settings), DATA_DIR, name)
    return tomogram, truth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--layouts", nargs="+", default=LAYOUTS, help="WINDOW/OVERLAP, WINDOW = N or Z,Y,X")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    picker = Picker(args.model, device="cpu")
    localize = picker.localize_settings()
    inputs = [full_size_tomogram(), _held_out_tomogram()]
    loaded = [(load_tomogram(str(t)), read_picks(truth)[0]) for t, truth in inputs]
    rows = []
    for text in args.layouts:
        window, overlap = _parse_layout(text)
        row = {"layout": text, "window_zyx": window, "overlap": overlap, "seconds": 0.0, "windows": 0, "voxels": 0,
               "passes_per_voxel_by_tomogram": []}
        picks, truths = [], []
        for tomogram, truth in loaded:
            start = time.perf_counter()
            seg = segment_tomogram(picker.model, tomogram.volume, num_classes=picker.config.out_channels,
                                   window_vox=window, overlap=overlap, device=picker.device)
            row["seconds"] += time.perf_counter() - start
            row["windows"] += seg.windows
            row["voxels"] += tomogram.volume.size
            grid = window_grid(tomogram.volume.shape, window, overlap)
            row["passes_per_voxel_by_tomogram"].append(round(grid.passes_per_voxel(tomogram.volume.shape), 3))
            found = localize_particles(seg.labels, seg.confidence, voxel_size_zyx_a=tomogram.voxel_size_zyx_a, **localize)
            picks.append(picks_document_from_voxels(
                centres_zyx_vox={n: c.centres_zyx_vox for n, c in found.items()},
                scores={n: c.scores for n, c in found.items()}, voxel_size_zyx_a=tomogram.voxel_size_zyx_a,
                origin_zyx_a=(0, 0, 0), tomogram_uri="", run_name=truth.run_name,
                source_voxel_size_zyx_a=tomogram.voxel_size_zyx_a, source_shape_zyx=tomogram.volume.shape,
                model_version=picker.version))
            truths.append(truth)
        score = score_documents(picks, truths)
        row["weighted_f_beta"] = round(score.weighted_f_beta, 4)
        row["f_beta"] = {c.particle: round(c.f_beta, 4) for c in score.classes}
        row["microseconds_per_voxel"] = round(row["seconds"] / row["voxels"] * 1e6, 3)
        rows.append(row)
        print(f"{text:>20}  passes/voxel {row['passes_per_voxel_by_tomogram']}  {row['seconds']:7.1f} s  "
              f"weighted F-beta {row['weighted_f_beta']:.4f}", flush=True)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model_version": picker.version,
              "threads": torch.get_num_threads(), "tomograms": [str(t) for t, _ in inputs],
              "localize": localize, "layouts": rows}
    out = HERE / "results" / f"windows-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
