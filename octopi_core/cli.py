"""``octopi-serve`` domain commands: predict, evaluate, generate, demo, train, tune, promote, retrain,
models, rollback.

The console script's entry point is :mod:`octopi_serve.cli`: it adds the service commands (serve,
gateway, worker, submit) to this parser and hands every other command to :data:`COMMANDS`. Errors the
user can fix (bad URI, corrupt file, unknown class…) are printed as one line on stderr and exit with
status 2; nothing prints a traceback for them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .batch import BatchItem, BatchResult
    from .export import PicksFormat
    from .picks import PicksDocument
    from .stage import Stage

__all__ = ["main", "build_parser", "run_command", "progress_bar", "COMMANDS"]


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
        help="full-depth windows and fitted 128-voxel tiles at 0.0625 overlap: ~2x faster, "
        "slightly less accurate (README, Performance); --window/--overlap still win",
    )
    predict.add_argument("--batch-size", type=int, help="windows per forward pass (default: fit the device)")
    predict.add_argument("--tta", action="store_true", help="average over flips (4x slower)")
    predict.add_argument("--device", help="cpu, cuda, cuda:N (default: GPU when visible)")
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
    group.add_argument("--max-minutes", type=float, help="stop after the epoch that passes this (default 30)")
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
    from .options import parse_window

    try:
        return parse_window(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one domain command (``python -m octopi_core.cli``); the console script is
    :func:`octopi_serve.cli.main`.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 for an error the user can fix, 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    return run_command(args, COMMANDS[args.command])


def run_command(args: argparse.Namespace, handler: Callable[[argparse.Namespace], int]) -> int:
    """Run ``handler(args)``, turning errors the user can fix into one line on stderr.

    Args:
        args: the parsed arguments; ``args.command`` names the command in messages.
        handler: the command's function.

    Returns:
        The handler's exit status; 2 after an ``OctopiError``, ``ValueError`` or ``FileNotFoundError``;
        130 after Ctrl-C.
    """
    from .exceptions import OctopiError

    try:
        return handler(args)
    except (OctopiError, ValueError, FileNotFoundError) as e:
        print(f"octopi-serve {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def progress_bar(quiet: bool):
    """A rich progress bar on stderr (description, bar, percentage, times); hidden when ``quiet``."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=quiet,
        transient=False,
        console=None,
    )


def _predict(args: argparse.Namespace) -> int:
    from .batch import BatchItem, predict_batch
    from .export import PicksFormat, render_picks, write_picks
    from .options import FAST_OVERLAP, FAST_WINDOW_VOX, check_run_name
    from .pipeline import Picker, PredictOptions
    from .stage import Stage

    fast: dict[str, Any] = {"window_vox": FAST_WINDOW_VOX, "overlap": FAST_OVERLAP} if args.fast else {}
    options: dict[str, Any] = fast | {
        k: v
        for k, v in {
            "classes": args.classes,
            "voxel_size_a": args.voxel_size,
            "window_vox": args.window,
            "overlap": args.overlap,
            "batch_size": args.batch_size,
            "tta": args.tta or None,
            "run_name": args.run_name,
        }.items()
        if v is not None
    }
    fmt = PicksFormat(args.format) if args.format else None
    for flag in ("runs", "tomo_type", "pick_session"):
        if getattr(args, flag) and not args.copick:
            raise ValueError(f"--{flag.replace('_', '-')} applies to --copick projects only")
    single = not args.copick and len(args.uris) == 1 and not _is_source(args.uris[0])
    if args.run_name and not single:
        raise ValueError("--run-name names one tomogram; several are named after their files or copick runs")
    write: Callable[[BatchItem, PicksDocument], Sequence[str | Path]] | None
    if single:
        uri = args.uris[0]
        item = BatchItem(uri, check_run_name(args.run_name)) if args.run_name else BatchItem.from_uri(uri)
        items, write, where = [item], None, args.out
    elif args.copick:
        items, write, where, project_classes = _copick_target(args)
        options["classes"] = _copick_classes(args.classes, project_classes)
    else:
        items = _listed_items(args)
        write, where = _batch_writer(args.out, fmt or PicksFormat.JSON, items), args.out
    with progress_bar(args.quiet or not sys.stderr.isatty()) as bar:
        task = bar.add_task("loading model", total=1.0 if single else len(items))
        picker = Picker(args.model, device=args.device)

        def on_stage(index: int, stage: Stage) -> None:
            # The bar follows the tomogram being inferred; reading ahead does not move it.
            if single:
                bar.update(task, description=stage.value)
            elif stage is Stage.INFERRING:
                bar.update(task, description=f"[{index + 1}/{len(items)}] {items[index].run_name}")

        results: list[BatchResult] = []
        for result in predict_batch(
            picker,
            items,
            PredictOptions(**options),
            write=write,
            on_stage=on_stage,
            progress=lambda index, fraction: bar.update(task, completed=index + fraction),
            with_preview=bool(args.preview),
        ):
            results.append(result)
            if result.document is not None and result.preview is not None:
                _write_preview(
                    result, args.preview if single else Path(args.preview) / f"{result.item.run_name}.png"
                )
            if result.document is not None and not single:
                print(f"wrote {_written(result.written)} ({_counts(result.document)})", file=sys.stderr)
        bar.update(task, completed=1.0 if single else len(items), description="done")
    if not single:
        return _batch_summary(results, where)
    doc = results[0].document
    if doc is None:  # one tomogram: its error ends the command, as it always has
        raise results[0].error or RuntimeError("no picks")
    if args.out:
        paths = write_picks(doc, args.out, fmt)
        print(f"wrote {_written(paths)} ({_counts(doc)})", file=sys.stderr)
    else:
        content = render_picks(doc, fmt or PicksFormat.JSON)
        sys.stdout.write(content if isinstance(content, str) else content.decode())
        sys.stdout.write("\n")
    return 0


def _write_preview(result: BatchResult, path: str | Path) -> None:
    # The preview figure of one picked tomogram (octopi_core.preview), next to its picks.
    from .preview import render_preview_png

    if result.preview is None or result.document is None:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(render_preview_png(result.preview, result.document))
    print(f"wrote {target}", file=sys.stderr)


def _is_source(spec: str) -> bool:
    # A .txt list of URIs, or a local folder of tomograms (not itself a zarr store: those stay one URI).
    from .data import SourceKind, source_kind

    if spec.lower().endswith(".txt"):
        return True
    local = Path(spec)
    zarr_marks = (".zgroup", ".zarray", "zarr.json")
    return (
        source_kind(spec) is SourceKind.FOLDER
        and local.is_dir()
        and not any((local / mark).exists() for mark in zarr_marks)
    )


def _listed_items(args: argparse.Namespace) -> list[BatchItem]:
    # Several URIs, folders of tomograms and .txt lists, in the order given.
    from .batch import BatchItem
    from .data import open_source

    items = []
    for spec in args.uris:
        if _is_source(spec):
            source = open_source(spec, voxel_size_a=args.voxel_size, with_truth=False)
            items += [BatchItem(item.tomogram_uri, item.run_name) for item in source]
        else:
            items.append(BatchItem.from_uri(spec))
    if not items:
        raise ValueError("predict needs at least one tomogram URI, folder or list (or --copick CONFIG)")
    return items


def _copick_target(
    args: argparse.Namespace,
) -> tuple[list[BatchItem], Callable[[BatchItem, PicksDocument], list[str]], str, set[str]]:
    # The runs to pick, a writer into the project, where it writes, and the classes the project can hold.
    from .batch import BatchItem
    from .data import open_copick
    from .exceptions import PicksExistError

    if args.uris or args.out or args.format:
        raise ValueError("--copick writes into the project: give no tomogram URIs, --out or --format")
    source = open_copick(
        args.copick, tomo_type=args.tomo_type, voxel_size_a=args.voxel_size, with_truth=False
    )
    runs = args.runs or [item.run_name for item in source]
    known = {item.run_name: item for item in source}
    missing = [run for run in runs if run not in known]
    if missing:
        raise ValueError(
            f"no {source.tomo_type} tomogram in runs {missing} of {args.copick}; runs: {list(known)}"
        )
    user = args.pick_user
    session = args.pick_session or source.next_session_id(user)
    taken = [run for run in runs if (user, session) in source.picks_sessions(run)]
    if taken and not args.overwrite:
        raise PicksExistError(
            f"runs {taken} of {args.copick} have picks of user {user!r}, session {session!r}; "
            "pass --overwrite to replace them, or leave out --pick-session for a new session"
        )

    def write(item: BatchItem, doc: PicksDocument) -> list[str]:
        return source.write_picks(item.run_name, doc, user=user, session=session, overwrite=args.overwrite)

    where = f"{args.copick} as user {user}, session {session}"
    classes = {cls for cls in source.objects.values() if cls is not None}
    return [BatchItem(known[run].tomogram_uri, run) for run in runs], write, where, classes


def _copick_classes(asked: Sequence[str] | None, project_classes: set[str]) -> list[str]:
    # The classes to pick into a copick project: those asked for, or every class it has an object for.
    from .exceptions import DataSourceError
    from .particles import resolve_particles

    names = [p.name for p in resolve_particles(asked) if asked or p.name in project_classes]
    absent = [name for name in names if name not in project_classes]
    if absent or not names:
        raise DataSourceError(
            f"the copick project has no pickable object for {absent or 'any particle class'}; "
            f"its classes: {sorted(project_classes)}"
        )
    return names


def _batch_writer(
    out: str | None, fmt: PicksFormat, items: Sequence[BatchItem]
) -> Callable[[BatchItem, PicksDocument], list[Path]]:
    # Several tomograms: one file per tomogram, <out>/<run_name>.<extension>, checked before any work.
    from .export import render_picks
    from .io import check_output_writable

    if not out:
        raise ValueError("predict with several tomograms needs --out DIR (one picks file per tomogram)")
    if Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"--out {out!r} must be a directory for several tomograms, got a file")
    seen: dict[str, str] = {}
    for item in items:
        if item.run_name in seen:
            raise ValueError(
                f"tomograms {seen[item.run_name]!r} and {item.uri!r} share the run name {item.run_name!r}; "
                "their picks files would overwrite each other"
            )
        seen[item.run_name] = item.uri
    check_output_writable(out)

    def write(item: BatchItem, doc: PicksDocument) -> list[Path]:
        path = Path(out) / f"{item.run_name}.{fmt.extension}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_picks(doc, fmt), encoding="utf-8", newline="\n")
        return [path]

    return write


def _written(paths: Sequence[str | Path]) -> str:
    return ", ".join(str(p) for p in paths)


def _counts(doc: PicksDocument) -> str:
    return ", ".join(f"{name} {n}" for name, n in doc.counts().items())


def _batch_summary(results: Sequence[BatchResult], where: str) -> int:
    # 0: all picked; 1: some failed; 2: all failed (as one failed tomogram is a user error, status 2).
    failed = [r for r in results if not r.ok]
    print(f"picked {len(results) - len(failed)} of {len(results)} tomograms into {where}", file=sys.stderr)
    if not failed:
        return 0
    print(f"{len(failed)} failed:", file=sys.stderr)
    for result in failed:
        print(f"  {result.describe_error()}", file=sys.stderr)
    return 2 if len(failed) == len(results) else 1


def _evaluate(args: argparse.Namespace) -> int:
    from .export import read_picks
    from .metric import score_documents

    picks, truth = read_picks(args.picks), read_picks(args.truth)
    score = score_documents(picks, truth, beta=args.beta)
    print(json.dumps(score.as_dict(), indent=2) if args.json else score.table())
    return 0


def _generate(args: argparse.Namespace) -> int:
    from .synth import HELD_OUT_SETTINGS, PhantomSettings, make_phantom, write_phantom

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
    from .export import write_picks
    from .metric import score_documents
    from .picks import PicksDocument
    from .synth import make_phantom, write_phantom

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


def _run_training(args: argparse.Namespace, *, init_checkpoint: str | None = None):
    """Train as ``args.config`` (file or preset) says, with ``--seed``, ``--output-dir`` and
    ``init_checkpoint`` overriding it; return the result."""
    import logging

    from .train import load_train_config, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = load_train_config(args.config)
    if args.seed is not None:
        import secrets

        seed = secrets.randbelow(2**31) if args.seed == "new" else args.seed
        config = config.model_copy(update={"seed": seed, "output_dir": f"{config.output_dir}-seed{seed}"})
    if args.output_dir:
        config = config.model_copy(update={"output_dir": args.output_dir})
    if init_checkpoint:
        config = config.model_copy(update={"init_checkpoint": init_checkpoint})
    return train(config)


def _train(args: argparse.Namespace) -> int:
    if args.config == "finetune":
        return _finetune(args)
    given = [
        f"--{n.replace('_', '-')}" for n in _FINETUNE_ONLY if getattr(args, n, None) not in (None, False)
    ]
    if given:
        raise ValueError(f"{', '.join(given)} apply to 'train finetune' only")
    print(_run_training(args).model_dump_json(indent=2))
    return 0


def _finetune(args: argparse.Namespace) -> int:
    import logging
    import secrets

    from .model_config import default_checkpoint_dir, read_config
    from .registry import Registry
    from .train.finetune import finetune, finetune_config, open_labelled_source

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not args.data:
        raise ValueError("train finetune needs --data SOURCE (a copick config JSON or a folder)")
    if args.init and args.registry:
        raise ValueError("give --init or --registry, not both")
    init = args.init or (str(Registry(args.registry).resolve()) if args.registry else "default")
    voxel_size_a = read_config(default_checkpoint_dir() if init == "default" else Path(init)).voxel_size_a
    items, provenance = open_labelled_source(
        args.data,
        picks_users=args.picks_user,
        picks_sessions=args.picks_session,
        tomo_type=args.tomo_type,
        voxel_size_a=args.voxel_size,
    )
    seed = secrets.randbelow(2**31) if args.seed == "new" else args.seed
    config = finetune_config(
        output_dir=args.output_dir,
        init_checkpoint=init,
        seed=seed,
        device=args.device,
        max_wall_s=60 * (30.0 if args.max_minutes is None else args.max_minutes),
    )
    result = finetune(
        items,
        config,
        model_voxel_size_a=voxel_size_a,
        holdout=args.holdout or "auto",
        absent_classes_are_background=args.absent_classes_are_background,
        synthetic_fraction=args.synthetic_fraction or 0.0,
        provenance=provenance,
    )
    print(result.model_dump_json(indent=2))
    return 0


def _tune(args: argparse.Namespace) -> int:
    from .synth import PhantomSettings
    from .train import load_train_config, tune_checkpoint

    if args.config:
        config = load_train_config(args.config)
        settings = config.generator_settings(args.data)
    else:
        settings = PhantomSettings()
    settings = settings.model_copy(update={"shape_zyx": tuple(args.shape)})
    chosen = tune_checkpoint(args.checkpoint, settings, count=args.count, window_vox=args.window)
    print(json.dumps(chosen, indent=2))
    return 0


def _promote_checkpoint(args: argparse.Namespace, candidate: str, **data_options: Any) -> int:
    from .pipeline import PredictOptions
    from .promotion import held_out_set, promote
    from .registry import Registry

    evaluation = held_out_set(args.eval_dir, count=args.eval_count, shape_zyx=tuple(args.eval_shape))
    options = PredictOptions(window_vox=args.eval_window) if args.eval_window else PredictOptions()
    result = promote(Registry(args.registry), candidate, evaluation, options=options, **data_options)
    print(json.dumps(result.__dict__, indent=2))
    return 0


def _promote(args: argparse.Namespace) -> int:
    return _promote_checkpoint(args, args.candidate)


def _retrain(args: argparse.Namespace) -> int:
    from .registry import Registry

    if args.data:
        return _retrain_on_data(args)
    given = [
        f"--{n.replace('_', '-')}"
        for n in (*_FINETUNE_ONLY, "min_gain", "max_forgetting")
        if n not in ("init", "registry") and getattr(args, n, None) not in (None, False)
    ]
    if given:
        raise ValueError(f"{', '.join(given)} apply to 'retrain --data SOURCE' only")
    if not args.config:
        raise ValueError("retrain needs a training config or preset, or --data SOURCE")
    start = str(Registry(args.registry).resolve()) if args.from_champion else None
    result = _run_training(args, init_checkpoint=start)
    print(
        f"trained: best checkpoint {result.best_checkpoint} (validation {result.best_score:.4f}); evaluating"
    )
    return _promote_checkpoint(args, result.best_checkpoint)


def _retrain_on_data(args: argparse.Namespace) -> int:
    """Fine-tune the champion on ``--data``, then promote on its held-out part with the synthetic set as guard."""
    import logging
    import secrets

    from .model_config import read_config
    from .promotion import DEFAULT_MAX_FORGETTING_F_BETA, DEFAULT_MIN_GAIN_F_BETA, DataEvaluation
    from .registry import Registry
    from .train import load_train_config
    from .train.finetune import finetune, finetune_config, open_labelled_source, prepare_finetune_data

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    champion = Registry(args.registry).resolve()  # fine-tuning always builds on the champion
    voxel_size_a = read_config(champion).voxel_size_a
    items, provenance = open_labelled_source(
        args.data,
        picks_users=args.picks_user,
        picks_sessions=args.picks_session,
        tomo_type=args.tomo_type,
        voxel_size_a=args.voxel_size,
    )
    base = None if args.config in (None, "finetune") else load_train_config(args.config)
    seed = secrets.randbelow(2**31) if args.seed == "new" else args.seed
    minutes = args.max_minutes if args.max_minutes is not None else (30.0 if base is None else None)
    config = finetune_config(
        base,
        output_dir=args.output_dir,
        init_checkpoint=str(champion),
        seed=seed,
        device=args.device,
        max_wall_s=None if minutes is None else 60 * minutes,
    )
    if seed is not None and not args.output_dir:
        config = config.model_copy(update={"output_dir": f"{config.output_dir}-seed{seed}"})
    data_options = {
        "holdout": args.holdout or "auto",
        "absent_classes_are_background": args.absent_classes_are_background,
        "synthetic_fraction": args.synthetic_fraction or 0.0,
    }
    result = finetune(items, config, model_voxel_size_a=voxel_size_a, provenance=provenance, **data_options)
    print(
        f"fine-tuned: best checkpoint {result.best_checkpoint} (held-out {result.best_score:.4f}); evaluating"
    )
    # The same split again (it depends only on the items, the options and the seed), so candidate and
    # champion are scored on exactly the tomograms or y-blocks the fine-tuning held out.
    held = prepare_finetune_data(
        items,
        model_voxel_size_a=voxel_size_a,
        target_radius_fraction=config.target_radius_fraction,
        seed=config.seed,
        **data_options,
    )
    description = {
        key: provenance.get(key) for key in ("source", "kind", "tomo_type", "picks_users", "picks_sessions")
    }
    description.update(held.provenance["validation"])
    data = DataEvaluation(held.validation, description, args.eval_window or config.val_window_vox)
    return _promote_checkpoint(
        args,
        result.best_checkpoint,
        data=data,
        min_gain_f_beta=DEFAULT_MIN_GAIN_F_BETA if args.min_gain is None else args.min_gain,
        max_forgetting_f_beta=(
            DEFAULT_MAX_FORGETTING_F_BETA if args.max_forgetting is None else args.max_forgetting
        ),
    )


def _models(args: argparse.Namespace) -> int:
    from .registry import Registry

    for entry in Registry(args.registry).entries():
        held_out = entry.config.scores.get("held_out", {}).get("weighted_f_beta")
        validation = entry.config.scores.get("validation", {}).get("weighted_f_beta")
        mark = "*" if entry.champion else " "
        print(
            f"{mark} {entry.version}  held-out {held_out if held_out is not None else '-'}  "
            f"validation {validation if validation is not None else '-'}"
        )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from .registry import Registry

    Registry(args.registry).set_champion(args.version, reason="manual rollback")
    print(f"champion is now {args.version}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "predict": _predict,
    "evaluate": _evaluate,
    "generate": _generate,
    "demo": _demo,
    "train": _train,
    "tune": _tune,
    "promote": _promote,
    "retrain": _retrain,
    "models": _models,
    "rollback": _rollback,
}


if __name__ == "__main__":
    raise SystemExit(main())
