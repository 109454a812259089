"""Per-family evaluation: a model on generator families it was not trained on (issue 17).

For each named family of :data:`octopi_core.synth.FAMILIES` (tomograms made in other ways: shape
model, reconstruction, tilt geometry, binning and voxel size, crowding) this makes ``--count``
tomograms on the family's held-out seeds (980000 + 1000 x index + i, disjoint from training,
validation, tuning and the held-out sets 900000-3, 960000-3, 970000-7), picks them with the
default ``predict`` options (:class:`~octopi_core.pipeline.Picker`) and scores them with the CZII
metric, counts summed over the family's tomograms. ``generator`` is the original generator on new
seeds, the reference for the others. These tomograms must never train or tune a model.
Writes bench/results/families-<date>.json.

    python bench/bench_families.py [--model DIR] [--count 2] [--shape 128 256 256] [--families a b ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _data import write_result  # noqa: E402

from octopi_core.metric import Score, score_documents  # noqa: E402
from octopi_core.particles import PARTICLE_CLASSES  # noqa: E402
from octopi_core.pipeline import Picker  # noqa: E402
from octopi_core.synth import FAMILIES, family_seeds, make_phantom, write_phantom  # noqa: E402

__all__ = ["evaluate_families", "main", "score_entry"]


def evaluate_families(
    picker: Picker, families: list[str], count: int, shape_zyx: tuple[int, int, int], folder: Path
) -> dict:
    """Score ``picker`` on ``count`` tomograms of each family.

    Args:
        picker: the loaded model, predicting with the default options.
        families: keys of :data:`~octopi_core.synth.FAMILIES`.
        count: tomograms per family.
        shape_zyx: tomogram shape, voxels.
        folder: where the tomograms are written (OME-Zarr) and read back from.

    Returns:
        ``{family: {"seeds", "weighted_f_beta", "classes": {name: {precision, recall, f_beta, tp, fp, fn}}, "s"}}``.
    """
    table: dict[str, dict] = {}
    for family in families:
        started = time.perf_counter()
        seeds = family_seeds(family, count)
        picks, truth = [], []
        for seed in seeds:
            phantom = make_phantom(seed, FAMILIES[family], shape_zyx=shape_zyx)
            path, _ = write_phantom(phantom, folder, f"{family}-{seed}")
            picks.append(picker.predict(str(path)))
            truth.append(phantom.truth_document(f"{family}-{seed}", str(path)))
        table[family] = {
            "seeds": seeds,
            **score_entry(score_documents(picks, truth)),
            "s": round(time.perf_counter() - started, 1),
        }
        print(_row(family, table[family]), flush=True)
    return table


def score_entry(score: Score) -> dict:
    """A score as the benchmarks' JSON holds it: ``{"weighted_f_beta", "classes": {name: {...}}}``."""
    return {
        "weighted_f_beta": round(score.weighted_f_beta, 3),
        "classes": {
            c.particle: {
                "precision": round(c.precision, 3),
                "recall": round(c.recall, 3),
                "f_beta": round(c.f_beta, 3),
                "tp": c.tp,
                "fp": c.fp,
                "fn": c.fn,
            }
            for c in score.classes
        },
    }


def _row(family: str, entry: dict) -> str:
    classes = " ".join(
        f"{c['f_beta']:.3f} ({c['precision']:.2f}/{c['recall']:.2f})" for c in entry["classes"].values()
    )
    return f"{family:15s} {entry['weighted_f_beta']:.3f}  {classes}  [{entry['s']} s]"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--count", type=int, default=2, help="tomograms per family")
    parser.add_argument("--shape", type=int, nargs=3, default=(128, 256, 256), metavar=("Z", "Y", "X"))
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--device", default=None, help="torch device (default: auto)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    picker = Picker(args.model, device=args.device)
    print(
        "family          weighted  per class F-beta (precision/recall):",
        ", ".join(p.name for p in PARTICLE_CLASSES),
    )
    with tempfile.TemporaryDirectory() as tmp:
        table = evaluate_families(picker, args.families, args.count, tuple(args.shape), Path(tmp))
    write_result(
        "families",
        {
            "model": str(args.model or "octopi_core/models/default"),
            "count": args.count,
            "shape_zyx": list(args.shape),
            "families": table,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
