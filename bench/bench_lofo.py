"""Leave-one-family-out: train without a generator family, score the model on that family (issue 17).

For each left-out family this trains the preset (default ``families-refine``: the shipped model
trained further on a mixture of generator families) with that family taken out of its
``train_families``, then scores the result on the family's held-out seeds with the default
``predict`` options, counts summed over ``--count`` tomograms (:func:`bench_families.evaluate_families`).
The shipped model is scored on the same tomograms first. Each family's row is the project's
estimate of how a model trained on the rest does on tomograms made in a way it never saw; the held-out
seeds (980000 + 1000 x index + i) are never trained or tuned on, whatever the mixture.
Writes bench/results/lofo-<date>.json.

    python bench/bench_lofo.py [--preset families-refine] [--minutes 7] [--families sirt denoised ...]
        [--count 2] [--shape 128 256 256] [--device auto] [--threads 2]

At the preset's 7 minutes of training per family, plus tuning and scoring, a whole table takes more than
one 15-minute device session: give a few families per run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _data import write_result  # noqa: E402
from bench_families import evaluate_families  # noqa: E402

from octopi_core.pipeline import Picker  # noqa: E402
from octopi_core.synth import FAMILIES  # noqa: E402
from octopi_core.train import load_train_config, train  # noqa: E402

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="families-refine", help="training preset or config file")
    parser.add_argument(
        "--train-families", nargs="+", choices=list(FAMILIES), help="the mixture (default: the preset's)"
    )
    parser.add_argument(
        "--families", nargs="+", choices=list(FAMILIES), help="families to leave out (default: the mixture's)"
    )
    parser.add_argument("--minutes", type=float, help="training time per family (default: the preset's)")
    parser.add_argument("--count", type=int, default=2, help="held-out tomograms per family")
    parser.add_argument("--shape", type=int, nargs=3, default=(128, 256, 256), metavar=("Z", "Y", "X"))
    parser.add_argument("--device", default=None, help="torch device (default: the preset's)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    preset = load_train_config(args.preset)
    mixture = args.train_families or preset.train_families
    left_out = args.families or [f for f in mixture if f != "generator"]
    if not mixture or any(f not in mixture for f in left_out):
        parser.error(f"every left-out family must be in the training mixture {mixture}")
    device = args.device or preset.device
    picker_device = None if device == "auto" else device  # Picker's own auto
    table: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shipped = Picker(None, device=picker_device)
        print("the shipped model:", flush=True)
        baseline = evaluate_families(shipped, left_out, args.count, tuple(args.shape), root / "shipped")
        for family in left_out:
            config = preset.model_copy(
                update={
                    "train_families": [f for f in mixture if f != family],
                    "output_dir": str(root / f"without-{family}"),
                    "device": device,
                    "threads": args.threads,
                    **({"max_wall_s": 60 * args.minutes} if args.minutes else {}),
                }
            )
            result = train(config)
            print(f"trained without {family}: validation {result.best_score:.3f}", flush=True)
            picker = Picker(result.best_checkpoint, device=picker_device)
            scored = evaluate_families(picker, [family], args.count, tuple(args.shape), root / family)
            table[family] = {
                **scored[family],
                "shipped_weighted_f_beta": baseline[family]["weighted_f_beta"],
                "training": {"epochs_run": result.epochs_run, "stopped_because": result.stopped_because},
            }
    write_result(
        "lofo",
        {
            "preset": args.preset,
            "train_families": mixture,
            "minutes": args.minutes or preset.max_wall_s / 60,
            "count": args.count,
            "shape_zyx": list(args.shape),
            "device": device,
            "baseline": baseline,
            "left_out": table,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
