"""Which model and which window layout to ship: every candidate on the same held-out tomograms (issue 17).

Each model (``--models name=checkpoint``; ``shipped`` is the shipped model) picks, with each layout
(``--layouts``: ``default``, ``fast``, or ``Z,Y,X/overlap``; ``+tta`` adds test-time flips), the
sixteen held-out tomograms of the README's table (``HELD_OUT_SETTINGS``, 128x256x256, seeds
900000-3, 960000-3 and 970000-7; ``--held-out`` picks sets) and ``--family-count`` tomograms of every generator family on the
family's held-out seeds (see bench/bench_families.py). Counts are summed within each set and scored
with the CZII metric. Each row is compared with the first (the first model, first layout): a
candidate should lose nothing, on the held-out sets together and on each family. ``--precision amp fp32``
scores each model in both precisions (amp, the default: bf16 where the device does it natively). Tomograms are written
once under ``--data`` and reused by later runs. None of these tomograms may train or tune a model.
Writes bench/results/models-<date>.json.

    python bench/bench_models.py --models shipped new=runs/families-refine/best --layouts default fast
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _data import DATA_DIR, write_result  # noqa: E402
from bench_families import score_entry  # noqa: E402

from octopi_core import options as predict_options  # noqa: E402
from octopi_core.inference import autocast_dtype  # noqa: E402
from octopi_core.metric import score_documents  # noqa: E402
from octopi_core.pipeline import Picker  # noqa: E402
from octopi_core.promotion import EvaluationSet, held_out_set, pick_evaluation  # noqa: E402
from octopi_core.synth import FAMILIES, HELD_OUT_SETTINGS, family_seeds  # noqa: E402

__all__ = ["Layout", "main", "parse_layout"]

PRECISIONS = {"amp": True, "fp32": False}  # Picker(amp=...)
HELD_OUT_SETS = {"900000-3": (900_000, 4), "960000-3": (960_000, 4), "970000-7": (970_000, 8)}


@dataclass(frozen=True)
class Layout:
    """A window layout as the command line names it, with the options it predicts with."""

    name: str
    options: predict_options.PredictOptions


def parse_layout(spec: str) -> Layout:
    """``default``, ``fast`` or ``Z,Y,X/overlap``, each optionally followed by ``+tta``."""
    base, tta = (spec[: -len("+tta")], True) if spec.endswith("+tta") else (spec, False)
    if base == "default":
        window, overlap = predict_options.DEFAULT_WINDOW_VOX, predict_options.DEFAULT_OVERLAP
    elif base == "fast":
        window, overlap = predict_options.FAST_WINDOW_VOX, predict_options.FAST_OVERLAP
    else:
        try:
            zyx, overlap_text = base.split("/")
            window = tuple(int(v) for v in zyx.split(","))
            overlap = float(overlap_text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"layout {spec!r}: want default, fast or Z,Y,X/overlap[+tta]"
            ) from None
        if len(window) != 3:
            raise argparse.ArgumentTypeError(f"layout {spec!r}: the window needs three sizes, z,y,x")
    return Layout(spec, predict_options.PredictOptions(window_vox=window, overlap=overlap, tta=tta))


def _parse_model(spec: str) -> tuple[str, str | None]:
    name, _, checkpoint = spec.partition("=")
    if not checkpoint and name != "shipped":
        raise argparse.ArgumentTypeError(f"model {spec!r}: want shipped or name=checkpoint-folder")
    return name, checkpoint or None


def evaluation_sets(
    data: Path,
    held_out: list[str],
    held_out_shape: tuple,
    families: list[str],
    family_count: int,
    family_shape: tuple,
) -> dict:
    """The named held-out sets and one set per family, generated once under ``data``."""
    sets = {
        name: held_out_set(data, count=count, seed=seed, shape_zyx=held_out_shape, settings=HELD_OUT_SETTINGS)
        for name, (seed, count) in HELD_OUT_SETS.items()
        if name in held_out
    }
    for family in families:
        first = family_seeds(family, family_count)[0]  # a family's seeds run on from its first
        sets[family] = held_out_set(
            data, count=family_count, seed=first, shape_zyx=family_shape, settings=FAMILIES[family]
        )
    return sets


def score_row(picker: Picker, layout: Layout, sets: dict[str, EvaluationSet], families: list[str]) -> dict:
    """One model with one layout over every set: per-set scores, the held-out sets together, the family mean."""
    row: dict = {"sets": {}, "inference_s": 0.0}
    held_out_picks, held_out_truth = [], []
    for name, evaluation in sets.items():
        started = time.perf_counter()
        picks, truth = pick_evaluation(picker, evaluation, layout.options)
        row["inference_s"] += time.perf_counter() - started
        row["sets"][name] = score_entry(score_documents(picks, truth))
        if name in HELD_OUT_SETS:
            held_out_picks += picks
            held_out_truth += truth
    row["held_out"] = score_entry(score_documents(held_out_picks, held_out_truth))
    scores = [row["sets"][f]["weighted_f_beta"] for f in families]
    row["family_mean"] = round(sum(scores) / len(scores), 3) if scores else None
    row["family_min"] = min(scores, default=None)
    row["inference_s"] = round(row["inference_s"], 1)
    return row


def _compare(row: dict, reference: dict, families: list[str]) -> dict:
    deltas = {
        f: round(row["sets"][f]["weighted_f_beta"] - reference["sets"][f]["weighted_f_beta"], 3)
        for f in families
    }
    return {
        "held_out": round(row["held_out"]["weighted_f_beta"] - reference["held_out"]["weighted_f_beta"], 3),
        "families": deltas,
        "families_lost": sorted(f for f, d in deltas.items() if d < 0),
        "worst_family_delta": min(deltas.values(), default=None),
    }


def _print_row(label: str, row: dict, names: list[str]) -> None:
    cells = " ".join(f"{row['sets'][n]['weighted_f_beta']:.3f}" for n in names)
    mean = "" if row["family_mean"] is None else f" mean {row['family_mean']:.3f}"
    print(
        f"{label:32s} {cells}  held-out {row['held_out']['weighted_f_beta']:.3f}{mean}  [{row['inference_s']} s]",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models", nargs="+", type=_parse_model, default=[("shipped", None)], metavar="NAME=DIR"
    )
    parser.add_argument("--layouts", nargs="+", type=parse_layout, default=[parse_layout("default")])
    parser.add_argument("--held-out", nargs="*", default=list(HELD_OUT_SETS), choices=list(HELD_OUT_SETS))
    parser.add_argument(
        "--held-out-shape", type=int, nargs=3, default=(128, 256, 256), metavar=("Z", "Y", "X")
    )
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--family-count", type=int, default=4, help="tomograms per family")
    parser.add_argument("--family-shape", type=int, nargs=3, default=(96, 192, 192), metavar=("Z", "Y", "X"))
    parser.add_argument("--data", type=Path, default=DATA_DIR / "models", help="where the tomograms are kept")
    parser.add_argument("--device", default=None, help="torch device (default: auto)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=list(PRECISIONS),
        default=["amp"],
        help="amp: mixed precision where the device does it natively (the default); fp32: full precision",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sets = evaluation_sets(
        args.data,
        args.held_out,
        tuple(args.held_out_shape),
        args.families,
        args.family_count,
        tuple(args.family_shape),
    )
    names = list(sets)
    print(f"{'model / layout':32s} {' '.join(names)}")
    rows: list[dict] = []
    for (model_name, checkpoint), precision in itertools.product(args.models, args.precision):
        picker = Picker(checkpoint, device=args.device, amp=PRECISIONS[precision])
        label = model_name if args.precision == ["amp"] else f"{model_name} ({precision})"
        for layout in args.layouts:
            row = {"model": label, "checkpoint": str(picker.checkpoint), "version": picker.version}
            row |= {
                "precision": precision,
                "dtype": str(autocast_dtype(picker.device) if picker.amp else None),
            }
            row |= {"layout": layout.name, **score_row(picker, layout, sets, args.families)}
            if rows:
                row["against_first"] = _compare(row, rows[0], args.families)
            rows.append(row)
            _print_row(f"{label} / {layout.name}", row, names)
    for row in rows[1:]:
        against = row["against_first"]
        print(
            f"{row['model']} / {row['layout']} against {rows[0]['model']} / {rows[0]['layout']}: held-out "
            f"{against['held_out']:+.3f}, families lost {len(against['families_lost'])}/{len(args.families)} "
            f"{against['families_lost']}, worst {against['worst_family_delta']}"
        )
    write_result(
        "models",
        {
            "held_out_shape_zyx": list(args.held_out_shape),
            "family_count": args.family_count,
            "family_shape_zyx": list(args.family_shape),
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
