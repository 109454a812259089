"""``evaluate``, ``generate`` and ``demo``: score picks, write synthetic tomograms, run the whole demo."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .parser import build_parser
from .predict import _predict

__all__ = ["_evaluate", "_generate", "_demo"]


def _evaluate(args: argparse.Namespace) -> int:
    from ..export import read_picks
    from ..metric import score_documents

    picks, truth = read_picks(args.picks), read_picks(args.truth)
    score = score_documents(picks, truth, beta=args.beta)
    print(json.dumps(score.as_dict(), indent=2) if args.json else score.table())
    return 0


def _generate(args: argparse.Namespace) -> int:
    from ..synth import HELD_OUT_SETTINGS, PhantomSettings, make_phantom, write_phantom

    settings = HELD_OUT_SETTINGS if args.held_out else PhantomSettings()
    fmt, zarr_format = ("zarr", 3) if args.format == "zarr3" else (args.format, 2)
    for i in range(args.count):
        phantom = make_phantom(args.seed + i, settings, shape_zyx=tuple(args.shape) if args.shape else None)
        path, truth = write_phantom(
            phantom, args.out, f"synthetic-{args.seed + i:04d}", fmt=fmt, zarr_format=zarr_format
        )
        print(f"{path}  truth: {truth}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ..export import write_picks
    from ..metric import score_documents
    from ..picks import PicksDocument
    from ..synth import make_phantom, write_phantom

    out = Path(args.out)
    print(f"1/3 generating a synthetic {tuple(args.shape)} tomogram (seed {args.seed}) in {out}/")
    phantom = make_phantom(args.seed, shape_zyx=tuple(args.shape))
    tomogram, truth_path = write_phantom(phantom, out, "demo", fmt="zarr")
    print(f"2/3 picking particles in {tomogram} with the shipped model")
    rc = _predict(
        build_parser().parse_args(["predict", str(tomogram), "--out", str(out / "demo.picks.json")])
    )
    if rc:
        return rc
    picks = PicksDocument.model_validate_json((out / "demo.picks.json").read_text())
    write_picks(picks, out / "demo.picks.csv")
    truth = PicksDocument.model_validate_json(truth_path.read_text())
    print("3/3 scoring the picks against the generator's truth (CZII F-beta, beta = 4)\n")
    print(score_documents([picks], [truth]).table())
    print(f"\npicks: {out / 'demo.picks.json'} and {out / 'demo.picks.csv'}; timings (s): {picks.timings_s}")
    return 0
