"""Batch predict benchmark (issue 18): how much of a batch's wall time is not inference.

Generates (once, cached under bench/data/batch/) ``--count`` synthetic tomograms of ``--shape`` (seeds
0, 1, ...), then with one loaded model picks them

- one after the other through ``Picker.predict`` and a JSON write each (the single-tomogram path), and
- through ``predict_batch`` (read ahead, localize and write on a second thread),

and reports each run's wall time over the sum of its inference stages (target: batch <= 1.15), plus the
batch's wall over the sequential run's inference (the stage may slow down while the reader shares the
CPU). The model load and one warm-up prediction are left out of both. Writes bench/results/batch-<date>.json.

    python bench/bench_batch.py [--count 4] [--shape 128 256 256] [--device cpu] [--fast] [--threads N]

The default shape is smaller than the 184x630x630 benchmark tomogram so that both runs fit a few
minutes on a 2-core CPU; ``--shape 184 630 630 --batch-only`` gives the issue's full-size figure
(4 tomograms, about 10 minutes there) without the one-by-one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _data import DATA_DIR, write_result  # noqa: E402

from octopi_core.batch import BatchItem, predict_batch  # noqa: E402
from octopi_core.export import write_picks  # noqa: E402
from octopi_core.options import FAST_OVERLAP, FAST_WINDOW_VOX, PredictOptions  # noqa: E402
from octopi_core.pipeline import Picker  # noqa: E402
from octopi_core.synth import PhantomSettings, make_phantom, write_phantom  # noqa: E402

TARGET_RATIO = 1.15


def _tomograms(count: int, shape: tuple[int, int, int]) -> list[str]:
    directory = DATA_DIR / "batch" / "x".join(map(str, shape))
    uris = []
    for seed in range(count):
        uri = directory / f"batch-{seed}.zarr"
        if not (directory / f"batch-{seed}.truth.json").exists():
            print(f"generating {uri} (once)...", flush=True)
            uri, _ = write_phantom(
                make_phantom(seed, PhantomSettings(shape_zyx=shape)), directory, f"batch-{seed}"
            )
        uris.append(str(uri))
    return uris


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=4, help="tomograms in the batch")
    parser.add_argument("--shape", type=int, nargs=3, default=(128, 256, 256), help="zyx voxels")
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fast", action="store_true", help="the --fast window layout")
    parser.add_argument("--read-ahead", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--batch-only", action="store_true", help="skip the one-by-one run")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    uris = _tomograms(args.count, tuple(args.shape))
    options = (
        PredictOptions(window_vox=FAST_WINDOW_VOX, overlap=FAST_OVERLAP) if args.fast else PredictOptions()
    )
    started = time.perf_counter()
    picker = Picker(args.model, device=args.device)
    load_s = time.perf_counter() - started
    out = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    picker.predict(uris[0], options)  # warm-up (first-call costs, page cache), timed by neither run

    started = time.perf_counter()
    sequential = []
    for uri in [] if args.batch_only else uris:
        doc = picker.predict(uri, options)
        write_picks(doc, out / f"single-{doc.run_name}.json")
        sequential.append(doc.timings_s)
    sequential_wall_s = time.perf_counter() - started

    started = time.perf_counter()
    results = list(
        predict_batch(
            picker,
            [BatchItem.from_uri(u) for u in uris],
            options,
            write=lambda item, doc: write_picks(doc, out / f"batch-{item.run_name}.json"),
            read_ahead=args.read_ahead,
        )
    )
    batch_wall_s = time.perf_counter() - started
    failed = [r.describe_error() for r in results if not r.ok]
    if failed:
        print("\n".join(failed), file=sys.stderr)
        return 1
    batch = [r.document.timings_s for r in results if r.document is not None]

    sequential_inference_s = sum(t["inference"] for t in sequential)
    batch_inference_s = sum(t["inference"] for t in batch)
    result = {
        "benchmark": "batch",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "device": str(picker.device),
        "model_version": picker.version,
        "shape_zyx": list(args.shape),
        "count": args.count,
        "layout": "fast" if args.fast else "default",
        "read_ahead": args.read_ahead,
        "model_load_s": load_s,
        "batch": {"wall_s": batch_wall_s, "timings_s": batch},
        "batch_ratio": batch_wall_s / batch_inference_s,
        "target_ratio": TARGET_RATIO,
    }
    print(f"{args.count} x {tuple(args.shape)} on {picker.device} ({result['layout']} layout)")
    if sequential:
        result |= {
            "sequential": {"wall_s": sequential_wall_s, "timings_s": sequential},
            "sequential_ratio": sequential_wall_s / sequential_inference_s,
            "batch_wall_over_sequential_inference": batch_wall_s / sequential_inference_s,
            "batch_speedup": sequential_wall_s / batch_wall_s,
        }
        print(
            f"one by one (Picker.predict): wall {sequential_wall_s:.1f} s / inference"
            f" {sequential_inference_s:.1f} s = {result['sequential_ratio']:.3f}"
        )
    print(
        f"predict_batch:               wall {batch_wall_s:.1f} s / inference {batch_inference_s:.1f} s"
        f" = {result['batch_ratio']:.3f} (target <= {TARGET_RATIO})"
    )
    if sequential:
        print(
            f"batch wall over the one-by-one inference {result['batch_wall_over_sequential_inference']:.3f};"
            f" speed-up {result['batch_speedup']:.3f} x"
        )
    print(json.dumps({k: v for k, v in result.items() if k not in ("sequential", "batch")}, indent=2))
    write_result("batch", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
