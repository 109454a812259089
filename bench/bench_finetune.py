"""Fine-tuning benchmark: the shipped model on a shifted source, before and after `train finetune`.

The shifted source is the phantom generator followed by another reconstruction: a SIRT-like
low-pass (the high frequencies a few SIRT iterations do not reach, Gaussian fall-off to
``--lowpass-a`` Å) and a non-linear grey-level response (signed square root), which the training
data never had. Four tomograms are labelled for fine-tuning, others of the same source measure the
gain, and tomograms of the original held-out settings (``HELD_OUT_SETTINGS``) measure forgetting.
Every figure comes from this run; writes bench/results/finetune-<date>.json.

    python bench/bench_finetune.py [--minutes 30] [--train 4] [--eval 2] [--held-out 2] [--shape 96 192 192]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.fft
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _data import write_result  # noqa: E402

from octopi_core.data import open_source  # noqa: E402
from octopi_core.export import write_picks  # noqa: E402
from octopi_core.metric import score_documents  # noqa: E402
from octopi_core.pipeline import Picker  # noqa: E402
from octopi_core.synth import HELD_OUT_SETTINGS, PhantomSettings, make_phantom, write_phantom  # noqa: E402
from octopi_core.train.finetune import finetune, finetune_config  # noqa: E402


def _shifted(volume: np.ndarray, voxel_size_a: float, lowpass_a: float) -> np.ndarray:
    """A SIRT-like low-pass and a signed square-root grey response of ``volume`` ((Z, Y, X) float32)."""
    spectrum = scipy.fft.rfftn(volume, workers=-1)
    k2 = sum(
        np.square(f).astype(np.float32)
        for f in np.meshgrid(
            scipy.fft.fftfreq(volume.shape[0], d=voxel_size_a),
            scipy.fft.fftfreq(volume.shape[1], d=voxel_size_a),
            scipy.fft.rfftfreq(volume.shape[2], d=voxel_size_a),
            indexing="ij",
            sparse=True,
        )
    )
    spectrum *= np.exp(-0.5 * k2 * lowpass_a**2).astype(np.float32)
    smooth = scipy.fft.irfftn(spectrum, s=volume.shape, workers=-1).astype(np.float32)
    smooth = (smooth - smooth.mean()) / max(float(smooth.std()), 1e-12)
    return np.sign(smooth) * np.sqrt(np.abs(smooth))


def _write_set(
    folder: Path, seeds: list[int], settings: PhantomSettings, shifted: bool, lowpass_a: float
) -> None:
    for seed in seeds:
        phantom = make_phantom(seed, settings)
        if shifted:
            phantom.volume = _shifted(phantom.volume, phantom.voxel_size_zyx_a[0], lowpass_a)
        name = f"{'shifted' if shifted else 'held-out'}-{seed}"
        path, truth = write_phantom(phantom, folder, name)
        truth.unlink()
        write_picks(phantom.truth_document(name, str(path)), folder / f"{name}.picks.json")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="fine-tuning wall-clock limit")
    parser.add_argument("--train", type=int, default=4, help="labelled shifted tomograms")
    parser.add_argument("--eval", type=int, default=2, help="shifted tomograms that measure the gain")
    parser.add_argument("--held-out", type=int, default=2, help="original held-out tomograms (forgetting)")
    parser.add_argument("--shape", type=int, nargs=3, default=(96, 192, 192), metavar=("Z", "Y", "X"))
    parser.add_argument("--lowpass-a", type=float, default=35.0, help="SIRT-like low-pass length, Å")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = PhantomSettings(shape_zyx=tuple(args.shape))
    held_settings = HELD_OUT_SETTINGS.model_copy(update={"shape_zyx": tuple(args.shape)})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write_set(root / "train", list(range(700000, 700000 + args.train)), settings, True, args.lowpass_a)
        _write_set(root / "eval", list(range(710000, 710000 + args.eval)), settings, True, args.lowpass_a)
        _write_set(root / "held", list(range(900000, 900000 + args.held_out)), held_settings, False, 0.0)
        before = {"shifted": _score(None, root / "eval"), "held_out": _score(None, root / "held")}
        print("before", before, flush=True)
        config = finetune_config(
            output_dir=str(root / "run"), threads=args.threads, device="cpu", max_wall_s=60 * args.minutes
        )
        started = time.monotonic()
        items = open_source(str(root / "train")).items
        result = finetune(items, config, model_voxel_size_a=10.0, provenance={"source": "bench shifted"})
        wall_s = time.monotonic() - started
        best = Path(result.best_checkpoint)
        after = {"shifted": _score(best, root / "eval"), "held_out": _score(best, root / "held")}
        print("after", after, flush=True)
    write_result(
        "finetune",
        {
            "args": vars(args),
            "note": "2-core CPU shared with other agents while it ran",
            "fine_tune": {**result.model_dump(), "wall_s": round(wall_s, 1)},
            "before": before,
            "after": after,
        },
    )


if __name__ == "__main__":
    main()
