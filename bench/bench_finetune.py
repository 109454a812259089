"""Fine-tuning benchmark: the shipped model on a shifted source, before and after `train finetune`.

The shifted source is the phantom generator with its particles, contrast and reconstruction made
otherwise than in any training data: subunit-built complexes (``ShapeModel.SUBUNITS``), the
denoised look (``Reconstruction.DENOISED``) and actin-like filaments (``Crowding.FILAMENTS``).
Four of its tomograms are labelled for fine-tuning, others of the same source (seeds disjoint from
them) measure the gain, and tomograms of the original held-out settings (``HELD_OUT_SETTINGS``)
measure forgetting. Every figure comes from this run; writes bench/results/finetune-<date>.json.

    python bench/bench_finetune.py [--minutes 30] [--train 4] [--eval 3] [--held-out 2] [--shape 128 256 256]
        [--synthetic-fraction 0.25] [--fp32-training] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _data import write_result  # noqa: E402

from octopi_core.data import open_source  # noqa: E402
from octopi_core.export import write_picks  # noqa: E402
from octopi_core.metric import score_documents  # noqa: E402
from octopi_core.pipeline import Picker  # noqa: E402
from octopi_core.synth import HELD_OUT_SETTINGS, PhantomSettings, make_phantom, write_phantom  # noqa: E402
from octopi_core.synth.settings import Crowding, Reconstruction, ShapeModel  # noqa: E402
from octopi_core.train import TrainConfig  # noqa: E402
from octopi_core.train.finetune import finetune, finetune_config  # noqa: E402

SHIFT = {
    "shape_model": ShapeModel.SUBUNITS,
    "reconstruction": Reconstruction.DENOISED,
    "crowding": Crowding.FILAMENTS,
}
TRAIN_SEED, EVAL_SEED = 700_000, 710_000  # the labelled tomograms, and those that measure the gain


def _write_set(folder: Path, seeds: list[int], settings: PhantomSettings, name: str) -> None:
    for seed in seeds:
        phantom = make_phantom(seed, settings)
        run = f"{name}-{seed}"
        path, truth = write_phantom(phantom, folder, run)
        truth.unlink()
        write_picks(phantom.truth_document(run, str(path)), folder / f"{run}.picks.json")


def _score(checkpoint: Path | None, folder: Path) -> dict:
    picker = Picker(checkpoint, device="cpu")
    picks, truth = [], []
    for item in open_source(str(folder)).items:
        picks.append(picker.predict(item.tomogram_uri))
        truth.append(item.truth)
    score = score_documents(picks, truth)
    return {
        "weighted_f_beta": round(score.weighted_f_beta, 4),
        "f_beta": {c.particle: round(c.f_beta, 4) for c in score.classes},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="fine-tuning wall-clock limit")
    parser.add_argument("--train", type=int, default=4, help="labelled shifted tomograms")
    parser.add_argument("--eval", type=int, default=3, help="shifted tomograms that measure the gain")
    parser.add_argument("--held-out", type=int, default=2, help="original held-out tomograms (forgetting)")
    parser.add_argument("--shape", type=int, nargs=3, default=(128, 256, 256), metavar=("Z", "Y", "X"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--synthetic-fraction", type=float, default=0.0, help="share of patches from generated tomograms"
    )
    parser.add_argument(
        "--fp32-training",
        action="store_true",
        help="fine-tune in fp32 (default: bf16 where the CPU does it natively); scoring is unchanged",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="fine-tuning seed (its held-out split and patch draws; default: the fine-tuning default); "
        "the tomograms stay the same, so runs of two seeds differ only in training",
    )
    return parser.parse_args(argv)


def fine_tuning_config(args: argparse.Namespace, output_dir: Path) -> TrainConfig:
    """The fine-tuning run's config: the defaults of `train finetune`, with this run's limits and options."""
    return finetune_config(
        output_dir=str(output_dir),
        threads=args.threads,
        device="cpu",
        max_wall_s=60 * args.minutes,
        amp=not args.fp32_training,
        seed=args.seed,
    )


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    shifted = PhantomSettings(shape_zyx=tuple(args.shape)).model_copy(update=SHIFT)
    held_settings = HELD_OUT_SETTINGS.model_copy(update={"shape_zyx": tuple(args.shape)})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write_set(root / "train", list(range(TRAIN_SEED, TRAIN_SEED + args.train)), shifted, "shifted")
        _write_set(root / "eval", list(range(EVAL_SEED, EVAL_SEED + args.eval)), shifted, "shifted")
        _write_set(root / "held", list(range(900000, 900000 + args.held_out)), held_settings, "held-out")
        before = {"shifted": _score(None, root / "eval"), "held_out": _score(None, root / "held")}
        print("before", before, flush=True)
        config = fine_tuning_config(args, root / "run")
        started = time.monotonic()
        items = open_source(str(root / "train")).items
        result = finetune(
            items,
            config,
            model_voxel_size_a=10.0,
            synthetic_fraction=args.synthetic_fraction,
            provenance={"source": "bench shifted"},
        )
        wall_s = time.monotonic() - started
        best = Path(result.best_checkpoint)
        after = {"shifted": _score(best, root / "eval"), "held_out": _score(best, root / "held")}
        print("after", after, flush=True)
        epochs = [json.loads(line) for line in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    write_result(
        "finetune",
        {
            "args": vars(args),
            "note": "2-core CPU",
            "shift": {k: v.value for k, v in SHIFT.items()},
            "fine_tune": {**result.model_dump(), "wall_s": round(wall_s, 1), "epochs": epochs},
            "before": before,
            "after": after,
        },
    )


if __name__ == "__main__":
    main()
