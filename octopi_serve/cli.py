"""The ``octopi-serve`` console script: the service commands here, every domain command in octopi_core.

``serve`` supervises the whole stack (:func:`octopi_serve.stack.run_stack`), ``gateway`` runs the HTTP
gateway (:func:`app.server.run_gateway`), ``worker`` one worker (:func:`worker.main.run_worker`) and
``submit`` sends a tomogram to a running service (:class:`octopi_serve.client.OctopiClient`). Predict,
evaluate, train and the other domain commands are parsed and run by :mod:`octopi_core.cli`; one parser
holds both, so ``octopi-serve --help`` lists them all. Each owner is imported only when its command
runs, so ``submit`` never loads torch and ``gateway`` never loads the worker.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from octopi_core import cli as core_cli

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The console script's parser: the domain commands of :mod:`octopi_core.cli`, then the service ones.

    Returns:
        The parser; ``command`` holds the chosen subcommand's name.
    """
    return core_cli.build_parser(extra_commands=_add_service_commands)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``octopi-serve``: run a service command here, any other in :mod:`octopi_core.cli`.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 when a waited-for job did not succeed or the gateway died,
        2 for an error the user can fix, 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    handler = _SERVICE_COMMANDS.get(args.command) or core_cli.COMMANDS[args.command]
    return core_cli.run_command(args, handler)


def _add_service_commands(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve", help="run the whole service: Redis (unless REDIS_URL), gateway and workers"
    )
    serve.add_argument("--host", help="listen address (default OCTOPI_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default OCTOPI_PORT or 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")

    gateway = commands.add_parser("gateway", help="run the HTTP gateway (needs Redis: REDIS_URL)")
    gateway.add_argument("--host", help="listen address (default OCTOPI_HOST or 127.0.0.1)")
    gateway.add_argument("--port", type=int, help="listen port (default OCTOPI_PORT or 8000)")

    worker = commands.add_parser("worker", help="run one worker: load the model once, process queued jobs")
    worker.add_argument("--name", help="worker name (default <host>-<pid>-<hex>)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")

    submit = commands.add_parser(
        "submit", help="submit a tomogram to a running service; --wait for the picks"
    )
    submit.add_argument("uri", help="tomogram URI as the service sees it (local paths are made absolute)")
    submit.add_argument("--server", help="gateway URL (default OCTOPI_SERVER_URL or http://127.0.0.1:8000)")
    submit.add_argument("--api-key", help="bearer token (default OCTOPI_API_KEY)")
    submit.add_argument("--wait", action="store_true", help="poll with a progress bar until the job ends")
    submit.add_argument("--out", help="with --wait: write the picks here (default: print them)")
    submit.add_argument(
        "--format",
        default="json",
        choices=["json", "csv", "star", "copick", "ndjson"],
        help="picks format to fetch (default json)",
    )
    submit.add_argument("--model", dest="model_version", help="model version (default: the champion)")
    submit.add_argument("--classes", nargs="+", help="class names to pick (default: all)")
    submit.add_argument("--voxel-size", type=float, help="override the tomogram's voxel size, Å")
    submit.add_argument("--tta", action="store_true", help="test-time augmentation (4x slower)")
    submit.add_argument(
        "--match-spectrum",
        action="store_true",
        help="match the tomogram's power spectrum to the model's training data first (README)",
    )
    submit.add_argument("--output-uri", help="also write picks files there (directory or s3:// prefix)")
    submit.add_argument("--output-formats", nargs="+", help="formats written to --output-uri (default json)")
    submit.add_argument(
        "--idempotency-key", help="repeat a submission safely: the same key returns the same job"
    )
    submit.add_argument("--poll", type=float, default=1.0, help="seconds between polls (default 1)")
    submit.add_argument("--quiet", action="store_true", help="no progress bar")


def _service_logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _serve(args: argparse.Namespace) -> int:
    from octopi_core.settings import get_settings

    from .stack import run_stack

    _service_logging()
    return run_stack(get_settings(), workers=args.workers, host=args.host, port=args.port)


def _gateway(args: argparse.Namespace) -> int:
    from app.server import run_gateway
    from octopi_core.settings import get_settings

    _service_logging()
    return run_gateway(get_settings(), host=args.host, port=args.port)


def _worker(args: argparse.Namespace) -> int:
    from octopi_core.settings import get_settings
    from worker.main import run_worker

    _service_logging()
    return run_worker(get_settings(), name=args.name, burst=args.burst)


def _submit(args: argparse.Namespace) -> int:
    import httpx

    from .client import OctopiClient, ServiceCallError

    try:
        with OctopiClient(args.server, api_key=args.api_key) as client:
            job = client.submit(
                args.uri,
                model_version=args.model_version,
                classes=args.classes,
                voxel_size_a=args.voxel_size,
                tta=args.tta,
                match_spectrum=args.match_spectrum,
                formats=args.output_formats,
                output_uri=args.output_uri,
                idempotency_key=args.idempotency_key,
            )
            print(
                f"job {job['id']}: {job['status']} ({client.server_url}{job['links']['self']})",
                file=sys.stderr,
            )
            if not args.wait:
                print(json.dumps(job, indent=2))
                return 0
            with core_cli.progress_bar(args.quiet or not sys.stderr.isatty()) as bar:
                task = bar.add_task(job["status"], total=1.0)

                def show(state: dict) -> None:
                    where = state.get("stage") or state["status"]
                    if state["status"] == "queued" and state.get("queue_position") is not None:
                        where = f"queued (position {state['queue_position']})"
                    bar.update(task, completed=state.get("progress", 0.0), description=where)

                job = client.wait(job["id"], poll_s=args.poll, on_update=show)
            if job["status"] != "succeeded":
                problem = job.get("error") or {}
                print(f"job {job['id']} {job['status']}: {problem.get('detail', '')}", file=sys.stderr)
                return 1
            content = client.picks(job["id"], args.format)
    except ServiceCallError as e:
        print(f"octopi-serve submit: error: {e}", file=sys.stderr)
        return 2
    except httpx.HTTPError as e:
        print(f"octopi-serve submit: cannot reach the service: {e}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(content)
        counts = ", ".join(f"{name} {n}" for name, n in job.get("counts", {}).items())
        print(f"wrote {args.out} ({counts})", file=sys.stderr)
    else:
        sys.stdout.write(content if content.endswith("\n") else content + "\n")
    return 0


_SERVICE_COMMANDS = {"serve": _serve, "gateway": _gateway, "worker": _worker, "submit": _submit}


if __name__ == "__main__":
    raise SystemExit(main())
