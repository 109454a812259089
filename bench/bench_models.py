"""Which model and which window layout to ship: every candidate on the same held-out tomograms (issue 17).

Each model (``--models name=checkpoint``; ``shipped`` is the shipped model) picks, with each layout
(``--layouts``: ``default``, ``fast``, or ``Z,Y,X/overlap``; ``+tta`` adds test-time flips, ``+spectrum``
spectrum matching), the
sixteen held-out tomograms of the README's table (``HELD_OUT_SETTINGS``, 128x256x256, seeds
900000-3, 960000-3 and 970000-7; ``--held-out`` picks sets) and ``--family-count`` tomograms of every generator family on the
family's held-out seeds (see bench/bench_families.py). Counts are summed within each set and scored
with the CZII metric. Each row is compared with the first (the first model, first layout): a
candidate should lose nothing, on the held-out sets together and on each family. ``--edges`` says where
a row's picks differ from the first row's: within one particle radius of the row layout's window edges
inside the tomogram, or away from them (is a layout's loss its tiles' borders, or its window size?). ``--precision amp fp32``
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

import numpy as np  # noqa: E402
from _data import DATA_DIR, write_result  # noqa: E402
from bench_families import score_entry  # noqa: E402

from octopi_core import options as predict_options  # noqa: E402
from octopi_core.inference import autocast_dtype, window_grid  # noqa: E402
from octopi_core.metric import score_documents  # noqa: E402
from octopi_core.particles import PARTICLE_CLASSES  # noqa: E402
from octopi_core.picks import PicksDocument, points_array  # noqa: E402
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
    """``default``, ``fast`` or ``Z,Y,X/overlap``, each optionally followed by ``+tta`` (test-time flips)
    and ``+spectrum`` (spectrum matching), in either order."""
    base, *extras = spec.split("+")
    unknown = set(extras) - {"tta", "spectrum"}
    if unknown:
        raise argparse.ArgumentTypeError(
            f"layout {spec!r}: +{', +'.join(sorted(unknown))}? want +tta, +spectrum"
        )
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
                f"layout {spec!r}: want default, fast or Z,Y,X/overlap[+tta][+spectrum]"
            ) from None
        if len(window) != 3:
            raise argparse.ArgumentTypeError(f"layout {spec!r}: the window needs three sizes, z,y,x")
    return Layout(
        spec,
        predict_options.PredictOptions(
            window_vox=window, overlap=overlap, tta="tta" in extras, match_spectrum="spectrum" in extras
        ),
    )


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
    family_first: int = 0,
) -> dict:
    """The named held-out sets and one set per family (its held-out seeds from number ``family_first`` on),
    generated once under ``data``."""
    sets = {
        name: held_out_set(data, count=count, seed=seed, shape_zyx=held_out_shape, settings=HELD_OUT_SETTINGS)
        for name, (seed, count) in HELD_OUT_SETS.items()
        if name in held_out
    }
    for family in families:
        first = family_seeds(family, family_first + family_count)[family_first]  # they run on from there
        sets[family] = held_out_set(
            data, count=family_count, seed=first, shape_zyx=family_shape, settings=FAMILIES[family]
        )
    return sets


def score_row(
    picker: Picker,
    layout: Layout,
    sets: dict[str, EvaluationSet],
    families: list[str],
    keep: dict[str, tuple[list, list]] | None = None,
) -> dict:
    """One model with one layout over every set: per-set scores, the held-out sets together, the family mean.
    ``keep``, when given, receives each set's picks and truth by set name."""
    row: dict = {"sets": {}, "inference_s": 0.0}
    held_out_picks, held_out_truth = [], []
    for name, evaluation in sets.items():
        started = time.perf_counter()
        picks, truth = pick_evaluation(picker, evaluation, layout.options)
        row["inference_s"] += time.perf_counter() - started
        if keep is not None:
            keep[name] = (picks, truth)
        row["sets"][name] = score_entry(score_documents(picks, truth))
        if name in HELD_OUT_SETS:
            held_out_picks += picks
            held_out_truth += truth
    # None when no held-out set was asked for (--held-out with no names: families only)
    row["held_out"] = score_entry(score_documents(held_out_picks, held_out_truth)) if held_out_truth else None
    scores = [row["sets"][f]["weighted_f_beta"] for f in families]
    row["family_mean"] = round(sum(scores) / len(scores), 3) if scores else None
    row["family_min"] = min(scores, default=None)
    row["inference_s"] = round(row["inference_s"], 1)
    return row


def _interior_edges(doc: PicksDocument, layout: Layout, voxel_a: float) -> list[np.ndarray]:
    """Per axis (zyx), where ``layout``'s windows begin or end inside the tomogram ``doc`` was picked in, in
    the network's voxels (the tomogram is resampled to ``voxel_a`` before its windows are cut)."""
    shape_zyx = [round(n * v / voxel_a) for n, v in zip(doc.shape_zyx or (), doc.voxel_size_xyz_a[::-1])]
    grid = window_grid(shape_zyx, layout.options.window_vox, layout.options.overlap)
    return [
        np.array(sorted({s for s in starts if s > 0} | {s + size for s in starts if s + size < length}))
        for starts, size, length in zip(grid.starts, grid.window, shape_zyx)
    ]


def _edge_distance_vox(points_xyz_a: np.ndarray, edges_zyx: list[np.ndarray], voxel_a: float) -> np.ndarray:
    """Each point's distance to the nearest of ``edges_zyx`` (see :func:`_interior_edges`), in voxels."""
    distance = np.full(len(points_xyz_a), np.inf)
    for axis_zyx, edges in enumerate(edges_zyx):
        if edges.size:
            coordinate = points_xyz_a[:, 2 - axis_zyx, None] / voxel_a
            distance = np.minimum(distance, np.abs(coordinate - edges[None]).min(axis=1))
    return distance


def _within(points: np.ndarray, others: np.ndarray, distance_a: float) -> np.ndarray:
    if not len(points) or not len(others):
        return np.zeros(len(points), bool)
    return (np.linalg.norm(points[:, None] - others[None], axis=2) <= distance_a).any(axis=1)


def edge_breakdown(
    reference: list[PicksDocument],
    row: list[PicksDocument],
    truth: list[PicksDocument],
    layout: Layout,
    voxel_a: float,
) -> dict:
    """Where ``row``'s picks differ from ``reference``'s, near ``layout``'s window edges or away from them.

    A true particle or a pick is near an edge when it lies within its class radius of one. Found and
    false are as the CZII metric counts them (within half the radius of a true particle of the class).
    """
    counts = {
        key: {"near_edges": 0, "elsewhere": 0}
        for key in ("particles", "lost", "gained", "false_reference", "false_row")
    }

    def add(key: str, mask: np.ndarray, near: np.ndarray) -> None:
        counts[key]["near_edges"] += int((mask & near).sum())
        counts[key]["elsewhere"] += int((mask & ~near).sum())

    for ref_doc, row_doc, truth_doc in zip(reference, row, truth):
        edges = _interior_edges(row_doc, layout, voxel_a)
        for particle in PARTICLE_CLASSES:
            true = points_array(truth_doc.picks.get(particle.name, []))
            ref = points_array(ref_doc.picks.get(particle.name, []))
            new = points_array(row_doc.picks.get(particle.name, []))
            match_a = 0.5 * particle.radius_a
            radius_vox = particle.radius_a / voxel_a
            near = _edge_distance_vox(true, edges, voxel_a) <= radius_vox
            found_ref, found_new = _within(true, ref, match_a), _within(true, new, match_a)
            add("particles", np.ones(len(true), bool), near)
            add("lost", found_ref & ~found_new, near)
            add("gained", ~found_ref & found_new, near)
            add(
                "false_reference",
                ~_within(ref, true, match_a),
                _edge_distance_vox(ref, edges, voxel_a) <= radius_vox,
            )
            add(
                "false_row",
                ~_within(new, true, match_a),
                _edge_distance_vox(new, edges, voxel_a) <= radius_vox,
            )
    return counts


def _edge_summary(edges: dict[str, dict]) -> str:
    total = {
        key: [sum(e[key][where] for e in edges.values()) for where in ("near_edges", "elsewhere")]
        for key in next(iter(edges.values()))
    }
    return ", ".join(f"{key} {near}/{elsewhere}" for key, (near, elsewhere) in total.items())


def _compare(row: dict, reference: dict, families: list[str]) -> dict:
    deltas = {
        f: round(row["sets"][f]["weighted_f_beta"] - reference["sets"][f]["weighted_f_beta"], 3)
        for f in families
    }
    return {
        "held_out": None
        if row["held_out"] is None
        else round(row["held_out"]["weighted_f_beta"] - reference["held_out"]["weighted_f_beta"], 3),
        "families": deltas,
        "families_lost": sorted(f for f, d in deltas.items() if d < 0),
        "worst_family_delta": min(deltas.values(), default=None),
    }


def _print_row(label: str, row: dict, names: list[str]) -> None:
    cells = " ".join(f"{row['sets'][n]['weighted_f_beta']:.3f}" for n in names)
    mean = "" if row["family_mean"] is None else f" mean {row['family_mean']:.3f}"
    held_out = "" if row["held_out"] is None else f"  held-out {row['held_out']['weighted_f_beta']:.3f}"
    print(
        f"{label:32s} {cells}{held_out}{mean}  [{row['inference_s']} s]",
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
    parser.add_argument(
        "--family-first",
        type=int,
        default=0,
        help="number of the first held-out seed of each family (default 0; another draw: 8, 12...)",
    )
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
    parser.add_argument(
        "--edges",
        action="store_true",
        help="say where each row's picks differ from the first row's: near its window edges or elsewhere",
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
        args.family_first,
    )
    names = list(sets)
    print(f"{'model / layout':32s} {' '.join(names)}")
    rows: list[dict] = []
    first_picks: dict[str, tuple[list, list]] = {}
    for (model_name, checkpoint), precision in itertools.product(args.models, args.precision):
        picker = Picker(checkpoint, device=args.device, amp=PRECISIONS[precision])
        label = model_name if args.precision == ["amp"] else f"{model_name} ({precision})"
        for layout in args.layouts:
            row = {"model": label, "checkpoint": str(picker.checkpoint), "version": picker.version}
            row |= {
                "precision": precision,
                "dtype": str(autocast_dtype(picker.device) if picker.amp else None),
            }
            kept: dict[str, tuple[list, list]] = {}
            row |= {"layout": layout.name, **score_row(picker, layout, sets, args.families, kept)}
            if rows:
                row["against_first"] = _compare(row, rows[0], args.families)
                if args.edges:
                    row["edges"] = {
                        name: edge_breakdown(
                            first_picks[name][0], picks, truth, layout, picker.config.voxel_size_a
                        )
                        for name, (picks, truth) in kept.items()
                    }
            else:
                first_picks = kept
            rows.append(row)
            _print_row(f"{label} / {layout.name}", row, names)
    for row in rows[1:]:
        against = row["against_first"]
        held_out = "none" if against["held_out"] is None else f"{against['held_out']:+.3f}"
        print(
            f"{row['model']} / {row['layout']} against {rows[0]['model']} / {rows[0]['layout']}: held-out "
            f"{held_out}, families lost {len(against['families_lost'])}/{len(args.families)} "
            f"{against['families_lost']}, worst {against['worst_family_delta']}"
        )
        if "edges" in row:
            print(f"  where it differs (near its window edges / elsewhere): {_edge_summary(row['edges'])}")
    write_result(
        "models",
        {
            "held_out_shape_zyx": list(args.held_out_shape),
            "family_count": args.family_count,
            "family_first": args.family_first,
            "family_shape_zyx": list(args.family_shape),
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
