"""The ``octopi-serve`` parser: the domain subcommands and their arguments."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["build_parser", "_FINETUNE_ONLY"]


def build_parser(
    extra_commands: Callable[[argparse._SubParsersAction], None] | None = None,
) -> argparse.ArgumentParser:
    """The ``octopi-serve`` parser with the domain subcommands.

    Args:
        extra_commands: called with the subparsers after the domain commands are added, to add more
            (the service commands of :mod:`octopi_serve.cli`); default None (domain commands only).

    Returns:
        The parser; ``command`` holds the chosen subcommand's name.
    """
    parser = argparse.ArgumentParser(
        prog="octopi-serve", description="Particle picking in cryo-ET tomograms (Octopi U-Net)."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser(
        "predict",
        help="pick particles in tomograms",
        description="Pick particles in one tomogram, or in several with one model load: the next tomogram "
        "is read while the current one is inferred. With several, a tomogram that fails is named in a "
        "summary and the others are still picked; the exit status is 0 when all were picked, 1 when some "
        "failed, 2 when all failed (or for a bad argument).",
    )
    predict.add_argument(
        "uris",
        nargs="*",
        metavar="URI",
        help="tomograms: local paths, file://, http(s):// or s3:// (OME-Zarr or MRC); a local folder of "
        "tomograms; a .txt file of URIs, one a line",
    )
    predict.add_argument("--model", help="checkpoint directory or Octopi .pth (default: the shipped model)")
    predict.add_argument(
        "--out",
        help="one tomogram: the output file (copick: a directory), default JSON on stdout; several: a "
        "directory that receives <run_name>.<extension> for each",
    )
    predict.add_argument(
        "--format",
        default=None,
        choices=["json", "csv", "star", "copick", "ndjson"],
        help="output format (default: from --out's extension, else json)",
    )
    predict.add_argument("--classes", nargs="+", help="class names to pick (default: all)")
    predict.add_argument("--voxel-size", type=float, help="override the tomogram's voxel size, Å")
    predict.add_argument(
        "--window", type=_window, help="sliding-window size, voxels: N or Z,Y,X (multiples of 4)"
    )
    predict.add_argument("--overlap", type=float, help="window overlap fraction in [0, 1)")
    predict.add_argument(
        "--fast",
        action="store_true",
        help="full-depth windows and fitted 128-voxel tiles at 0.0625 overlap: 1.7-1.9x faster, "
        "0.02 less accurate (README, Performance); --window/--overlap still win",
    )
    predict.add_argument("--batch-size", type=int, help="windows per forward pass (default: fit the device)")
    predict.add_argument("--tta", action="store_true", help="average over flips (4x slower)")
    predict.add_argument(
        "--match-spectrum",
        action="store_true",
        help="bring each tomogram's power spectrum to the model's training data first: for SIRT-like, "
        "denoised or binned reconstructions (README, Spectrum matching)",
    )
    predict.add_argument("--device", help="cpu, cuda, cuda:N (default: GPU when visible)")
    predict.add_argument(
        "--fp32",
        action="store_true",
        help="run the network in fp32 (default: bf16 where the device does it natively: CUDA GPUs and "
        "CPUs with AVX512-BF16 or AMX)",
    )
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.add_argument(
        "--run-name",
        help="name of the run in the picks (one tomogram only; default: from the URI, or the copick run)",
    )
    predict.add_argument(
        "--preview",
        metavar="PNG",
        help="also draw the picks over slabs and sections of the tomogram: a PNG file for one tomogram, "
        "a folder (PNG/<run_name>.png) for several",
    )
    copick = predict.add_argument_group(
        "copick", "pick the runs of a copick project and write the picks into it (instead of URIs and --out)"
    )
    copick.add_argument("--copick", metavar="CONFIG", help="the project's copick config JSON")
    copick.add_argument("--runs", nargs="+", metavar="RUN", help="runs to pick (default: every run)")
    copick.add_argument("--tomo-type", help="tomogram type, e.g. wbp (default: the only one there is)")
    copick.add_argument("--pick-user", default="octopi", help="copick user of the picks (default: octopi)")
    copick.add_argument(
        "--pick-session", help="copick session of the picks (default: a new one, one past the user's last)"
    )
    copick.add_argument("--overwrite", action="store_true", help="replace picks of the same user and session")

    evaluate = commands.add_parser("evaluate", help="score picks against truth with the CZII F-beta metric")
    evaluate.add_argument("picks", help="picks file or directory (json, csv, star, copick, ndjson)")
    evaluate.add_argument("truth", help="truth file or directory, same formats")
    evaluate.add_argument("--beta", type=float, default=4.0)
    evaluate.add_argument("--json", action="store_true", help="print the score as JSON")

    generate = commands.add_parser("generate", help="write synthetic tomograms with their truth")
    generate.add_argument("out", help="output directory")
    generate.add_argument("--count", type=int, default=1)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None)
    generate.add_argument("--format", choices=["zarr", "zarr3", "mrc"], default="zarr")
    generate.add_argument("--held-out", action="store_true", help="use the held-out generator settings")

    demo = commands.add_parser("demo", help="generate a tomogram, pick it with the shipped model, score it")
    demo.add_argument("--out", default="demo-output")
    demo.add_argument("--seed", type=int, default=2026)
    demo.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), default=(128, 256, 256))

    train = commands.add_parser(
        "train",
        help="train a model from a YAML/TOML config or a preset (card, cpu, cpu-refine*, gpu-refine, tiny); "
        "'train finetune --data SOURCE' fine-tunes a model on your labelled tomograms",
    )
    train.add_argument("config", help="a preset or a YAML/TOML config file, or 'finetune'")
    _run_arguments(train)
    _finetune_arguments(train)

    tune = commands.add_parser(
        "tune", help="tune a checkpoint's pick threshold on generated tomograms (in place)"
    )
    tune.add_argument("checkpoint", help="checkpoint directory")
    tune.add_argument("--count", type=int, default=2, help="tomograms to tune on")
    tune.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), default=(128, 256, 256))
    tune.add_argument(
        "--config",
        help="tune on this training config's (or preset's) validation settings "
        "(default: the generator's defaults)",
    )
    tune.add_argument(
        "--data",
        choices=("validation", "training"),
        default="validation",
        help="which of the config's generator settings to tune on: its validation settings or its "
        "(usually broader) training settings",
    )
    tune.add_argument(
        "--window",
        type=_window,
        default=None,
        help="window, voxels: N or Z,Y,X (default: the inference default)",
    )

    promote = commands.add_parser(
        "promote", help="score a candidate checkpoint against the champion; promote if better"
    )
    promote.add_argument("candidate", help="checkpoint directory")
    _registry_arguments(promote)

    retrain = commands.add_parser(
        "retrain",
        help="train -> evaluate -> promote (what the retraining CronJob runs); with --data, fine-tune the "
        "champion on your labelled tomograms and promote only if it is better on their held-out part",
    )
    retrain.add_argument(
        "config",
        nargs="?",
        help="training config file or preset; with --data, the recipe to fine-tune with (default: the "
        "fine-tuning defaults, also 'finetune')",
    )
    _run_arguments(retrain)
    retrain.add_argument(
        "--from-champion",
        action="store_true",
        help="start from the registry's champion (the shipped model while none is promoted) instead "
        "of the config's init_checkpoint, so that scheduled runs build on each other",
    )
    _registry_arguments(retrain)
    _finetune_arguments(retrain, start_options=False)
    retrain.add_argument(
        "--min-gain",
        type=float,
        default=None,
        help="with --data: the candidate must beat the champion on the held-out data by more than 0 and "
        "at least this weighted F-beta (default 0.0)",
    )
    retrain.add_argument(
        "--max-forgetting",
        type=float,
        default=None,
        help="with --data: the candidate may score at most this much lower than the champion on the "
        "synthetic held-out set (default 0.02)",
    )

    models = commands.add_parser("models", help="list the registry's models and the champion")
    models.add_argument("--registry", required=True, help="registry root: directory or s3://bucket/prefix")

    rollback = commands.add_parser("rollback", help="point the champion at an earlier registered version")
    rollback.add_argument("version")
    rollback.add_argument("--registry", required=True, help="registry root: directory or s3://bucket/prefix")
    if extra_commands is not None:
        extra_commands(commands)
    return parser


def _registry_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", required=True, help="registry root: directory or s3://bucket/prefix")
    parser.add_argument(
        "--eval-dir", default="runs/held-out", help="where held-out tomograms are generated (reused)"
    )
    parser.add_argument("--eval-count", type=int, default=4, help="held-out tomograms")
    parser.add_argument("--eval-shape", type=int, nargs=3, metavar=("Z", "Y", "X"), default=(128, 256, 256))
    parser.add_argument(
        "--eval-window", type=_window, default=None, help="inference window for the evaluation, voxels"
    )


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", help="override the config's output_dir")
    parser.add_argument(
        "--seed",
        type=_seed,
        help="override the config's seed (tomograms, patches, initialisation): "
        "N, or 'new' for a random one, so that a scheduled retraining sees "
        "new data every run; the run goes to <output_dir>-seed<N> and the "
        "checkpoint records the seed",
    )


def _finetune_arguments(parser: argparse.ArgumentParser, *, start_options: bool = True) -> None:
    # retrain takes these without --init/--registry: it always starts from its registry's champion.
    group = parser.add_argument_group(
        "fine-tuning (train finetune --data SOURCE)",
        "Fine-tune the champion (or --init) on labelled tomograms: a copick project or a folder of NAME.zarr "
        "+ NAME.picks.json. Held out for validation, early stopping and threshold tuning: a quarter of the "
        "tomograms from four on, else the last quarter of each along y. The best checkpoint goes to "
        "OUTPUT_DIR/best (default runs/finetune).",
    )
    group.add_argument("--data", help="copick config JSON or folder of tomograms with picks files")
    group.add_argument(
        "--picks-user", action="append", help="copick user whose picks are the truth (repeat to merge users)"
    )
    group.add_argument("--picks-session", action="append", help="copick session, one per --picks-user")
    group.add_argument("--tomo-type", help="copick tomogram type (default: the only one)")
    group.add_argument("--voxel-size", type=float, help="copick voxel spacing or the folder's voxel size, Å")
    if start_options:
        group.add_argument(
            "--init", help="checkpoint to start from (default: the registry's champion or shipped)"
        )
        group.add_argument("--registry", help="start from this registry's champion (directory or s3://...)")
    group.add_argument(
        "--max-minutes",
        type=float,
        help="time for the whole run: reading, training, the last validation and the tuning (default 30)",
    )
    group.add_argument("--device", help="cpu, cuda, cuda:N (default: a GPU when visible)")
    group.add_argument(
        "--absent-classes-are-background",
        action="store_true",
        help="treat every class as labelled in every tomogram (default: only the classes its picks name; "
        "the others are masked in the loss and the score)",
    )
    group.add_argument(
        "--synthetic-fraction",
        type=float,
        help="share of patches from generated tomograms, so unlabelled classes are not forgotten (default 0)",
    )
    group.add_argument(
        "--holdout", choices=("auto", "tomograms", "blocks"), help="how validation data are held out"
    )


_FINETUNE_ONLY = (
    "data",
    "picks_user",
    "picks_session",
    "tomo_type",
    "voxel_size",
    "init",
    "registry",
    "max_minutes",
    "device",
    "absent_classes_are_background",
    "synthetic_fraction",
    "holdout",
)


def _seed(text: str) -> int | str:
    if text == "new":
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"seed must be a non-negative integer or 'new', got {text!r}")


def _window(text: str) -> tuple[int, int, int]:
    from ..options import parse_window

    try:
        return parse_window(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
