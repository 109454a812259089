"""GPU benchmark (issue 18), one prepared script that fits in 5 minutes on one H200.

End to end from local OME-Zarr: every variant picks the same ``--count`` tomogram stores (copies of one
184x630x630 phantom, each its own OME-Zarr) through the pipelined batch predictor
(:func:`octopi_core.batch.predict_batch`: reading, inference and localization overlapped), in fresh
processes that load the model and warm up before the clock starts. A variant is tokens joined by ``+``:

    base            the default ``predict`` (bf16 autocast on CUDA, the default window layout)
    channels-last   the network's weights and windows channels-last-3d
    compile         ``torch.compile`` of the network (inductor) for the fixed window shape
    cuda-graphs     ``torch.compile`` with mode ``reduce-overhead`` (CUDA graphs)
    fast            the fast window layout (``predict --fast``)
    xK              K worker processes sharing the device, each pipelining its share of the tomograms
    tK              K reader and K localizer threads per process (default: ``default_stage_threads``,
                    1 on a CPU, a quarter of the cores, 1 to 4, on a GPU)
    instant         no inference: the warm-up's segmentation stands for each tomogram's (all are copies
                    of one), so the row is what reading and localization alone allow, the ceiling that
                    the CPU stages put on any device

Per variant it prints tomograms per hour, the network's TFLOP/s over the wall time against the chip's bf16
dense peak, each stage's busy share of the wall time (summed over its threads and processes; read and
localize overlap inference, so shares add up to more than 1 when the pipeline works), and the peak GPU
and host memory of each process; each row is compared with the first. Writes bench/results/gpu-<date>.json; exits 1 when a tomogram fails.
``--device cpu --count 2 --shape 48 96 96 --variants base x2`` smoke-runs it anywhere.

    python bench/bench_gpu.py [--count 16] [--variants base channels-last compile x2 x4] [--peak-tflops 989]
    python bench/bench_gpu.py --device cpu --count 8 --variants instant+t1 instant+t2   # the CPU stages' ceiling
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import resource
import shutil
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _data import write_result  # noqa: E402

from octopi_core.batch import BatchItem, default_stage_threads, predict_batch  # noqa: E402
from octopi_core.inference import window_grid  # noqa: E402
from octopi_core.options import FAST_OVERLAP, FAST_WINDOW_VOX, PredictOptions  # noqa: E402
from octopi_core.pipeline import Picker  # noqa: E402
from octopi_core.synth import PhantomSettings, make_phantom, write_phantom  # noqa: E402

__all__ = ["Variant", "main", "parse_variant"]

DATA_DIR = HERE / "data" / "gpu"
STAGES = ("read", "inference", "localize")
DEFAULT_VARIANTS = ["base", "channels-last", "compile", "x2", "x4"]


@dataclass(frozen=True)
class Variant:
    """One way of running the pipeline; ``name`` is its spec."""

    name: str
    processes: int = 1
    channels_last: bool = False
    compile_mode: str | None = None
    fast: bool = False
    stage_threads: int | None = None  # None: default_stage_threads
    instant: bool = False

    def options(self, batch_size: int | None) -> PredictOptions:
        if self.fast:
            return PredictOptions(window_vox=FAST_WINDOW_VOX, overlap=FAST_OVERLAP, batch_size=batch_size)
        return PredictOptions(batch_size=batch_size)


def parse_variant(spec: str) -> Variant:
    """The variant of ``spec`` (tokens joined by ``+``, see the module's doc).

    Raises:
        ValueError: naming the token that is not understood.
    """
    variant = Variant(name=spec)
    for token in spec.split("+"):
        if token == "base":
            continue
        if token == "channels-last":
            variant = replace(variant, channels_last=True)
        elif token == "compile":
            variant = replace(variant, compile_mode="default")
        elif token == "cuda-graphs":
            variant = replace(variant, compile_mode="reduce-overhead")
        elif token == "fast":
            variant = replace(variant, fast=True)
        elif token == "instant":
            variant = replace(variant, instant=True)
        elif token.startswith("x") and token[1:].isdigit() and int(token[1:]) >= 1:
            variant = replace(variant, processes=int(token[1:]))
        elif token.startswith("t") and token[1:].isdigit() and int(token[1:]) >= 1:
            variant = replace(variant, stage_threads=int(token[1:]))
        else:
            raise ValueError(
                f"variant {spec!r}: unknown token {token!r} "
                "(base, channels-last, compile, cuda-graphs, fast, instant, x<processes>, t<threads>)"
            )
    return variant


def _worker(variant: Variant, args: dict, uris: list[str], barrier, results) -> None:
    """One process of a variant: load, warm up, wait for the others, pick ``uris``, report."""
    torch.set_num_threads(args["threads"])
    device = torch.device(args["device"])
    picker = Picker(
        None, device=args["device"], channels_last=variant.channels_last, compile_mode=variant.compile_mode
    )
    options = variant.options(args["batch_size"])
    # Warm-up of every stage: compilation, cuDNN autotuning, allocator, page cache.
    tomogram = picker.read(uris[0], options)
    segmentation = picker.segment(tomogram.volume, options)
    picker.localize(tomogram, segmentation, options)
    del tomogram
    if variant.instant:
        picker.segment = lambda volume, options, **_: segmentation  # type: ignore[method-assign]
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    barrier.wait()
    started = time.monotonic()
    docs, errors = [], []
    items = [BatchItem.from_uri(u) for u in uris]
    threads = variant.stage_threads
    for result in predict_batch(picker, items, options, read_ahead=threads, localize_threads=threads):
        if result.error is not None:
            errors.append(f"{result.item.uri}: {result.failed_step}: {result.error}")
        else:
            docs.append(result.document.timings_s)
    ended = time.monotonic()
    results.put(
        {
            "started": started,
            "ended": ended,
            "timings_s": docs,
            "errors": errors,
            "gpu_memory_peak_gb": torch.cuda.max_memory_allocated() / 2**30
            if device.type == "cuda"
            else None,
            "host_memory_peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "model_version": picker.version,
        }
    )


def run_variant(variant: Variant, uris: list[str], args: dict) -> dict:
    """Run ``variant`` over ``uris`` in ``variant.processes`` fresh processes; its figures."""
    context = mp.get_context("spawn")  # CUDA cannot be forked
    barrier, results = context.Barrier(variant.processes), context.Queue()
    shares = [uris[i :: variant.processes] for i in range(variant.processes)]
    threads = max(1, args["cpus"] // variant.processes)
    processes = [
        context.Process(target=_worker, args=(variant, {**args, "threads": threads}, share, barrier, results))
        for share in shares
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=args["timeout_s"]) for _ in processes]
    for process in processes:
        process.join()
    wall_s = max(r["ended"] for r in reports) - min(r["started"] for r in reports)
    timings = [t for r in reports for t in r["timings_s"]]
    layout = variant.options(None)
    grid = window_grid(args["shape"], layout.window_vox, layout.overlap)
    network_tflop = args["flops_per_voxel"] * grid.count * math.prod(grid.window) * len(timings) / 1e12
    if variant.instant:
        network_tflop = 0.0
    return {
        "variant": variant.name,
        "processes": variant.processes,
        "stage_threads": variant.stage_threads or default_stage_threads(torch.device(args["device"]).type),
        "tomograms": len(timings),
        "errors": [e for r in reports for e in r["errors"]],
        "wall_s": round(wall_s, 6),  # a CPU smoke run takes well under a second
        "tomograms_per_hour": round(len(timings) * 3600 / wall_s, 1),
        "network_tflops": round(network_tflop / wall_s, 3),
        "fraction_of_bf16_peak": round(network_tflop / wall_s / args["peak_tflops"], 4),
        "passes_per_voxel": round(grid.passes_per_voxel(args["shape"]), 3),
        "stage_s_per_tomogram": {s: round(sum(t[s] for t in timings) / len(timings), 3) for s in STAGES},
        "stage_share_of_wall": {
            s: round(sum(t[s] for t in timings) / (wall_s * variant.processes), 3) for s in STAGES
        },
        "gpu_memory_peak_gb_per_process": [r["gpu_memory_peak_gb"] for r in reports],
        "host_memory_peak_gb_per_process": [round(r["host_memory_peak_gb"], 2) for r in reports],
        "model_version": reports[0]["model_version"],
    }


def _tomograms(shape: tuple[int, int, int], count: int, folder: Path) -> list[str]:
    """``count`` OME-Zarr stores of one phantom (seed 0), made on first use."""
    first = folder / f"gpu-bench-{'x'.join(map(str, shape))}-0.zarr"
    if not first.exists():
        path, _ = write_phantom(make_phantom(0, PhantomSettings(shape_zyx=shape)), folder, first.stem)
        assert path == first, path
    uris = [first]
    for i in range(1, count):
        copy = first.with_name(first.name.replace("-0.zarr", f"-{i}.zarr"))
        if not copy.exists():
            shutil.copytree(first, copy)
        uris.append(copy)
    return [str(u) for u in uris]


def _flops_per_voxel() -> float:
    # A convolution's FLOPs grow with its output voxels, so one small window gives FLOPs per voxel.
    model = Picker(None, device="cpu").model
    x = torch.zeros(1, 1, 32, 32, 32)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops() / x.numel()


def _row(first: dict, row: dict) -> str:
    shares = " ".join(f"{s} {row['stage_share_of_wall'][s]:.2f}" for s in STAGES)
    gpu = [g for g in row["gpu_memory_peak_gb_per_process"] if g is not None]
    memory = f"GPU {max(gpu):.1f} GB/process, " if gpu else ""
    return (
        f"{row['variant']:<28} {row['tomograms_per_hour']:>9.0f}/h ({row['tomograms_per_hour'] / first['tomograms_per_hour']:.2f}x)"
        f"  {row['network_tflops']:.1f} TFLOP/s ({100 * row['fraction_of_bf16_peak']:.1f}% of peak)"
        f"  busy: {shares}  {memory}host {max(row['host_memory_peak_gb_per_process']):.1f} GB/process"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--count", type=int, default=16, help="tomograms per variant (copies of one)")
    parser.add_argument("--shape", type=int, nargs=3, default=(184, 630, 630))
    parser.add_argument(
        "--variants", nargs="+", default=DEFAULT_VARIANTS, help="see above; the first is the reference"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="windows per pass (default: fit the device)"
    )
    parser.add_argument(
        "--peak-tflops", type=float, default=989.0, help="bf16 dense peak of the chip (H100/H200 SXM)"
    )
    parser.add_argument(
        "--cpus", type=int, default=os.cpu_count() or 1, help="CPU threads shared by a variant's processes"
    )
    parser.add_argument("--timeout-s", type=float, default=600.0, help="longest a variant may take")
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    try:
        variants = [parse_variant(v) for v in args.variants]
    except ValueError as e:
        parser.error(str(e))
    if any(args.count < v.processes for v in variants):
        parser.error(f"--count {args.count} is fewer than a variant's processes")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device here; --device cpu smoke-runs the benchmark")

    shape = tuple(args.shape)
    uris = _tomograms(shape, args.count, args.data)
    settings = {
        "device": args.device,
        "batch_size": args.batch_size,
        "cpus": args.cpus,
        "shape": shape,
        "peak_tflops": args.peak_tflops,
        "timeout_s": args.timeout_s,
        "flops_per_voxel": _flops_per_voxel(),
    }
    rows = []
    for variant in variants:
        row = run_variant(variant, uris, settings)
        rows.append(row)
        print(_row(rows[0], row), flush=True)
    result = {
        "benchmark": "gpu",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "cpus": args.cpus,
        "shape_zyx": list(shape),
        "count": args.count,
        "flops_per_voxel": settings["flops_per_voxel"],
        "peak_tflops": args.peak_tflops,
        "rows": rows,
    }
    write_result("gpu", result)
    failed = [e for row in rows for e in row["errors"]]
    for error in failed:
        print(f"failed: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
