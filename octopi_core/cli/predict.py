"""``predict``: one tomogram, several (URIs, folders, .txt lists) or the runs of a copick project."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .runner import progress_bar

if TYPE_CHECKING:
    from ..batch import BatchItem, BatchResult
    from ..export import PicksFormat
    from ..picks import PicksDocument
    from ..stage import Stage

__all__ = ["_predict"]


def _predict(args: argparse.Namespace) -> int:
    from ..batch import BatchItem, predict_batch
    from ..export import PicksFormat, render_picks, write_picks
    from ..options import FAST_OVERLAP, FAST_WINDOW_VOX, check_run_name
    from ..pipeline import Picker, PredictOptions
    from ..stage import Stage

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
            "match_spectrum": args.match_spectrum or None,
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
        picker = Picker(args.model, device=args.device, amp=not args.fp32)

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
    from ..preview import render_preview_png

    if result.preview is None or result.document is None:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(render_preview_png(result.preview, result.document))
    print(f"wrote {target}", file=sys.stderr)


def _is_source(spec: str) -> bool:
    # A .txt list of URIs, or a local folder of tomograms (not itself a zarr store: those stay one URI).
    from ..data import SourceKind, source_kind

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
    from ..batch import BatchItem
    from ..data import open_source

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
    from ..batch import BatchItem
    from ..data import open_copick
    from ..exceptions import PicksExistError

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
    from ..exceptions import DataSourceError
    from ..particles import resolve_particles

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
    from ..export import render_picks
    from ..io import check_output_writable

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
