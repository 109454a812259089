"""Speed benchmark on a full-size tomogram, every figure measured in this one run.

Prints and writes to bench/results/speed-<date>.json:

1. the network's own time to run once over the tomogram with no overlap (the floor), and the
   end-to-end time of ``octopi-serve predict`` (process start, model load, read, inference,
   localization, write) as a ratio to it (aim ≤ 1.25, must be ≤ 1.5);
2. the network's achieved throughput (FLOP/s counted by torch's FlopCounterMode) as a ratio to a
   plain 3-D convolution's throughput on the same machine (aim ≥ 0.8);
3. our pipeline against MONAI's ``sliding_window_inference`` at 0.5 overlap (the usual way) with
   the same model, in seconds and in CZII weighted F-beta against the generator's truth.

Everything runs in the precision ``predict`` uses (bf16 where the device does it natively, see
``octopi_core.inference.autocast_dtype``; ``--fp32`` for full precision). Where that is not fp32, the
network's floor and the end-to-end ``predict`` are also measured in fp32, for the speed-up. The floor is
also measured for the network as the checkpoint holds it, before ``octopi_core.model.for_inference``.

    python bench/bench_speed.py [--model CKPT] [--window 192,128,128] [--overlap 0.125] [--skip-monai] [--fp32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _data import SHAPE, full_size_tomogram, write_result  # noqa: E402

from octopi_core.export import picks_document_from_voxels, read_picks  # noqa: E402
from octopi_core.inference import auto_batch_size, autocast_dtype, mixed_precision, window_grid  # noqa: E402
from octopi_core.io import load_tomogram  # noqa: E402
from octopi_core.localize import localize_particles  # noqa: E402
from octopi_core.metric import score_documents  # noqa: E402
from octopi_core.model import load_checkpoint  # noqa: E402
from octopi_core.options import DEFAULT_OVERLAP, DEFAULT_WINDOW_VOX, parse_window  # noqa: E402
from octopi_core.pipeline import Picker  # noqa: E402


def conv3d_throughput(device: torch.device, amp: bool, seconds: float = 5.0) -> float:
    """FLOP/s of a plain 3x3x3 convolution, 32 -> 32 channels on 48^3, the network's commonest shape."""
    conv = torch.nn.Conv3d(32, 32, 3, padding=1).to(device).eval()
    x = torch.randn(2, 32, 48, 48, 48, device=device)
    flops = 2 * 32 * 32 * 27 * x[0, 0].numel() * x.shape[0]
    with mixed_precision(device, amp):
        return flops * _runs_per_second(lambda: conv(x), device, seconds)


def _runs_per_second(fn, device: torch.device, seconds: float) -> float:
    with torch.inference_mode():
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or runs < 2:
            fn()
            runs += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        return runs / (time.perf_counter() - start)


def network_flops_per_voxel(model: torch.nn.Module) -> float:
    """A convolution's FLOPs grow with its output voxels, so one small window gives FLOPs per voxel."""
    x = torch.zeros(1, 1, 32, 32, 32)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model.cpu()(x)
    return counter.get_total_flops() / x.numel()


def network_once_over(
    model: torch.nn.Module, volume: np.ndarray, window_vox, batch: int | None, device: torch.device, amp: bool
) -> float:
    """Seconds for the network alone to see every voxel exactly once (the pipeline's window, no overlap)."""
    window = window_grid(volume.shape, window_vox, 0.0).window
    batch = batch or auto_batch_size(window, device)
    padded = [int(np.ceil(n / w) * w) for n, w in zip(volume.shape, window)]
    source = np.zeros(padded, np.float32)
    source[: volume.shape[0], : volume.shape[1], : volume.shape[2]] = volume
    tiles = [
        (z, y, x)
        for z in range(0, padded[0], window[0])
        for y in range(0, padded[1], window[1])
        for x in range(0, padded[2], window[2])
    ]
    model.to(device)
    start = time.perf_counter()
    with torch.inference_mode(), mixed_precision(device, amp):
        for i in range(0, len(tiles), batch):
            chunk = np.stack(
                [
                    source[z : z + window[0], y : y + window[1], x : x + window[2]]
                    for z, y, x in tiles[i : i + batch]
                ]
            )
            model(torch.from_numpy(chunk)[:, None].to(device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    # Padding is work the network did beyond the tomogram: count only the tomogram's share.
    return (time.perf_counter() - start) * np.prod(volume.shape) / np.prod(padded)


def _score(picker: Picker, labels: np.ndarray, confidence: np.ndarray, truth_path: Path, voxel_zyx) -> float:
    found = localize_particles(labels, confidence, voxel_size_zyx_a=voxel_zyx, **picker.localize_settings())
    truth = read_picks(truth_path)[0]
    doc = picks_document_from_voxels(
        found,
        voxel_size_zyx_a=voxel_zyx,
        origin_zyx_a=(0, 0, 0),
        tomogram_uri="",
        run_name=truth.run_name,
        source_voxel_size_zyx_a=voxel_zyx,
        source_shape_zyx=labels.shape,
        model_version=picker.version,
    )
    return score_documents([doc], [truth]).weighted_f_beta


def monai_baseline(picker: Picker, volume: np.ndarray, truth_path: Path, voxel_zyx) -> dict:
    """MONAI sliding_window_inference, 0.5 overlap, 96^3 windows, Gaussian blending: the usual way."""
    from monai.inferers import sliding_window_inference

    start = time.perf_counter()
    with torch.inference_mode(), mixed_precision(picker.device, picker.amp):
        logits = sliding_window_inference(
            torch.from_numpy(volume)[None, None],
            roi_size=(96, 96, 96),
            sw_batch_size=4,
            predictor=picker.model,
            overlap=0.5,
            mode="gaussian",
        )
        # The same reduction as ours (best particle class and its probability), so only the
        # window layout and blending differ.
        confidence, best = torch.softmax(logits.float(), 1)[0, 1:].max(0)
        labels = best + 1
    seconds = time.perf_counter() - start
    score = _score(
        picker, labels.numpy().astype(np.uint8), confidence.numpy().astype(np.float16), truth_path, voxel_zyx
    )
    return {"seconds": seconds, "weighted_f_beta": score}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None)
    parser.add_argument("--window", type=parse_window, default=DEFAULT_WINDOW_VOX, help="N or Z,Y,X voxels")
    parser.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="windows per pass (default: fit the device)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-monai", action="store_true", help="skip the slow MONAI 0.5-overlap baseline")
    parser.add_argument("--fp32", action="store_true", help="run everything in fp32 (predict --fp32)")
    args = parser.parse_args()
    device = torch.device(args.device)
    tomogram, truth = full_size_tomogram()
    picker = Picker(args.model, device=args.device, amp=not args.fp32)
    # The fp32 figures as well, when predict's own precision is another.
    compare_fp32 = not args.fp32 and autocast_dtype(device) is not None
    result: dict = {
        "benchmark": "speed",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "shape_zyx": SHAPE,
        "model_version": picker.version,
        "window": args.window,
        "overlap": args.overlap,
        "precision": str(autocast_dtype(device) if picker.amp else torch.float32).removeprefix("torch."),
    }

    flops_per_voxel = network_flops_per_voxel(picker.model)
    loaded = load_tomogram(str(tomogram))
    once_s = network_once_over(picker.model, loaded.volume, args.window, args.batch_size, device, picker.amp)
    network_flops = flops_per_voxel * loaded.volume.size / once_s
    conv_flops = conv3d_throughput(device, picker.amp)
    result.update(
        {
            "network_flops_per_voxel": flops_per_voxel,
            "network_once_s": once_s,
            "network_tflops": network_flops / 1e12,
            "conv3d_tflops": conv_flops / 1e12,
            "network_vs_conv3d": network_flops / conv_flops,
        }
    )
    # The network as trained and saved (stride-1 transposed convolutions; Picker serves plain ones, for_inference).
    as_trained, _ = load_checkpoint(picker.checkpoint, device=device)
    as_trained_once_s = network_once_over(
        as_trained, loaded.volume, args.window, args.batch_size, device, picker.amp
    )
    result.update(
        {"network_once_as_trained_s": as_trained_once_s, "for_inference_speedup": as_trained_once_s / once_s}
    )
    if compare_fp32:
        fp32_once_s = network_once_over(
            picker.model, loaded.volume, args.window, args.batch_size, device, False
        )
        result.update(
            {"network_once_fp32_s": fp32_once_s, "network_once_speedup_vs_fp32": fp32_once_s / once_s}
        )

    def predict_end_to_end(out: Path, fp32: bool) -> float:
        """Seconds of a whole ``octopi-serve predict`` process, start to exit."""
        command = [
            sys.executable,
            "-m",
            "octopi_core.cli",
            "predict",
            str(tomogram),
            "--out",
            str(out),
            "--quiet",
            "--window",
            ",".join(map(str, args.window)),
            "--overlap",
            str(args.overlap),
            "--device",
            args.device,
        ]
        command += (["--model", args.model] if args.model else []) + (
            ["--batch-size", str(args.batch_size)] if args.batch_size else []
        )
        start = time.perf_counter()
        subprocess.run(command + (["--fp32"] if fp32 else []), check=True)
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "picks.json"
        end_to_end_s = predict_end_to_end(out, args.fp32)
        picks = read_picks(out)[0]
        if compare_fp32:
            fp32_s = predict_end_to_end(Path(scratch) / "fp32.json", True)
            fp32_picks = read_picks(Path(scratch) / "fp32.json")[0]
    ours_score = score_documents([picks], read_picks(truth)).weighted_f_beta
    result.update(
        {
            "end_to_end_s": end_to_end_s,
            "end_to_end_vs_network_once": end_to_end_s / once_s,
            "stage_s": picks.timings_s,
            "weighted_f_beta": ours_score,
        }
    )
    if compare_fp32:
        result["fp32"] = {
            "end_to_end_s": fp32_s,
            "end_to_end_vs_network_once_fp32": fp32_s / fp32_once_s,
            "stage_s": fp32_picks.timings_s,
            "weighted_f_beta": score_documents([fp32_picks], read_picks(truth)).weighted_f_beta,
        }
        result["end_to_end_speedup_vs_fp32"] = fp32_s / end_to_end_s

    if not args.skip_monai:
        baseline = monai_baseline(picker, loaded.volume, truth, loaded.voxel_size_zyx_a)
        result["monai_overlap_0.5"] = baseline
        result["speedup_vs_monai"] = baseline["seconds"] / picks.timings_s["inference"]

    print(json.dumps(result, indent=2))
    write_result("speed", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
