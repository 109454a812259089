"""Training-data benchmark: how fast batches are cut on the CPU, one thread against several.

On a GPU the training step of the ``gpu-refine`` recipe (eight 96³ patches, bf16) takes ~33 ms
on an H200 (bench/results/gpu-training-probe-20261130.json), so the CPU must cut a batch faster
than that or the GPU waits. Prints ms per batch for each thread count and the speed-up over one
thread, all measured in this run (interleaved, repeated), and writes
bench/results/train-data-<date>.json.

    python bench/bench_train_data.py [--threads 2] [--steps 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _data import write_result  # noqa: E402

from octopi_core.train import load_train_config  # noqa: E402
from octopi_core.train.sampling import cut_batches as _cut_batches  # noqa: E402
from octopi_core.train.sampling import make_sample as _make_sample  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2, help="the thread count compared with one")
    parser.add_argument("--steps", type=int, default=40, help="batches per timing")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = load_train_config("gpu-refine").model_copy(update={"steps_per_epoch": args.steps})
    pool = [_make_sample(seed, config.train_settings, config.target_radius_fraction) for seed in range(3)]
    ms: dict[int, list[float]] = {1: [], args.threads: []}
    for repeat in range(args.repeats):
        for threads in ms:  # interleaved, so drifts in machine load hit both alike
            run = config.model_copy(update={"data_threads": threads})
            start = time.perf_counter()
            batches = sum(1 for _ in _cut_batches(pool, run, epoch=repeat))
            ms[threads].append((time.perf_counter() - start) / batches * 1000)
    median = {threads: statistics.median(values) for threads, values in ms.items()}
    result = {
        "benchmark": "train-data",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "batch": f"{config.batch_size} x {config.patch_vox}^3",
        "ms_per_batch": ms,
        "median_ms_per_batch": median,
        "speedup": median[1] / median[args.threads],
    }
    print(json.dumps(result, indent=2))
    write_result("train-data", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
