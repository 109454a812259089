"""Core pipeline benchmark: one full-size tomogram on this machine, split by stage, with peak memory.

Generates (once, cached under bench/data/) a 184x630x630 synthetic tomogram at 10 Å as
OME-Zarr, then picks it in a fresh child process so that the peak RSS measured is the
pipeline's own: read, inference, localization, export. Prints a table and writes
bench/results/pipeline-<date>.json.

    python bench/bench_pipeline.py [--model CKPT] [--window 192,128,128] [--overlap 0.125] [--batch-size 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from _data import SHAPE, full_size_tomogram, write_result

from octopi_core.options import parse_window

HERE = Path(__file__).parent
RSS_TARGET_GB = 3.0

CHILD = r"""
import json, resource, sys, time
import torch
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"]) if args["threads"] else None
from octopi_core.export import render_picks
from octopi_core.pipeline import Picker, PredictOptions
start = time.perf_counter()
picker = Picker(args["model"], device=args["device"])
load_s = time.perf_counter() - start
chosen = {"window_vox": args["window"], "overlap": args["overlap"], "batch_size": args["batch_size"]}
options = PredictOptions(**{k: v for k, v in chosen.items() if v is not None})
doc = picker.predict(args["uri"], options)
mark = time.perf_counter()
for fmt in ("json", "csv", "star", "ndjson"):
    render_picks(doc, fmt)
export_s = time.perf_counter() - mark
print(json.dumps({"model_load_s": load_s, **doc.timings_s, "export_s": export_s,
                  "picks": sum(doc.counts().values()), "model_version": doc.model_version,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument(
        "--window", type=parse_window, default=None, help="N or Z,Y,X (default: the library's)"
    )
    parser.add_argument("--overlap", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    tomogram, _ = full_size_tomogram()
    child_args = {
        "uri": str(tomogram),
        "model": args.model,
        "window": args.window,
        "overlap": args.overlap,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "device": args.device,
    }
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(child_args)], check=True, capture_output=True, text=True
    )
    wall_s = time.perf_counter() - started
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    result = {
        "benchmark": "pipeline",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": _cpus()},
        "tomogram_shape_zyx": SHAPE,
        "settings": child_args,
        "process_wall_s": wall_s,
        **measured,
        "rss_vs_target": measured["peak_rss_gb"] / RSS_TARGET_GB,
    }
    print(f"tomogram {SHAPE} on {result['machine']['cpus']} CPUs, model {measured['model_version']}")
    for key in ("model_load_s", "read", "inference", "localize", "export_s", "total"):
        print(f"  {key:<14} {measured[key]:8.2f} s")
    print(
        f"  peak RSS       {measured['peak_rss_gb']:8.2f} GB  ({result['rss_vs_target']:.2f} x the {RSS_TARGET_GB} GB target)"
    )
    print(f"  picks          {measured['picks']:8d}")
    write_result("pipeline", result)
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    raise SystemExit(main())
