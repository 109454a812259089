"""GPU benchmark, one prepared script that fits in 5 minutes on one H200.

End to end from local OME-Zarr through ``Picker.predict`` (read, normalise, bf16 inference,
localization) over several copies of a 184x630x630 tomogram, printing tomograms per hour,
achieved network TFLOP/s against the chip's bf16 dense peak, and the GPU memory peak; writes
bench/results/gpu-<date>.json. ``--device cpu --count 1 --shape 64 128 128`` runs it anywhere
as a smoke test.

    python bench/bench_gpu.py [--count 6] [--window 192,128,128] [--batch-size N] [--peak-tflops 989]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _data import write_result  # noqa: E402

from octopi_core.inference import window_grid  # noqa: E402
from octopi_core.options import DEFAULT_OVERLAP, DEFAULT_WINDOW_VOX, PredictOptions, parse_window  # noqa: E402
from octopi_core.pipeline import Picker  # noqa: E402
from octopi_core.synth import PhantomSettings, make_phantom, write_phantom  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--count", type=int, default=6, help="tomograms to pick (copies of one)")
    parser.add_argument("--shape", type=int, nargs=3, default=(184, 630, 630))
    parser.add_argument("--window", type=parse_window, default=DEFAULT_WINDOW_VOX, help="N or Z,Y,X voxels")
    parser.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="windows per pass (default: fit the GPU)"
    )
    parser.add_argument(
        "--peak-tflops", type=float, default=989.0, help="bf16 dense peak of the chip (H100/H200 SXM)"
    )
    parser.add_argument("--data", default=str(HERE / "data" / "gpu"))
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    data = Path(args.data)
    phantom = make_phantom(0, PhantomSettings(shape_zyx=tuple(args.shape)))
    uri, _ = write_phantom(phantom, data, "gpu-bench")
    picker = Picker(None, device=args.device)
    options = PredictOptions(window_vox=args.window, overlap=args.overlap, batch_size=args.batch_size)
    picker.predict(str(uri), options)  # warm-up: cuDNN autotuning, allocator, page cache
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    inference_s = 0.0
    start = time.perf_counter()
    for _ in range(args.count):
        doc = picker.predict(str(uri), options)
        inference_s += doc.timings_s["inference"]
    wall_s = time.perf_counter() - start

    # A convolution's FLOPs grow with its output voxels, so one small window gives FLOPs per voxel.
    x = torch.zeros(1, 1, 32, 32, 32)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        picker.model.cpu()(x)
    flops_per_voxel = counter.get_total_flops() / x.numel()
    grid = window_grid(args.shape, args.window, args.overlap)
    network_voxels = grid.count * math.prod(grid.window)
    tflops = flops_per_voxel * network_voxels * args.count / inference_s / 1e12
    result = {
        "benchmark": "gpu",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "shape_zyx": args.shape,
        "count": args.count,
        "window": args.window,
        "overlap": args.overlap,
        "batch_size": args.batch_size or "auto",
        "wall_s": wall_s,
        "tomograms_per_hour": args.count * 3600 / wall_s,
        "inference_s_per_tomogram": inference_s / args.count,
        "network_tflops": tflops,
        "fraction_of_bf16_peak": tflops / args.peak_tflops,
        "windows_per_tomogram": grid.count,
        "window_zyx": grid.window,
        "passes_per_voxel": grid.passes_per_voxel(args.shape),
        "gpu_memory_peak_gb": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
        "model_version": picker.version,
    }
    print(json.dumps(result, indent=2))
    write_result("gpu", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
