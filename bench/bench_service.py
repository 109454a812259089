"""Service benchmark on loopback: status-polling throughput and latency, and end-to-end overhead.

One run starts a private redis-server, the gateway (uvicorn) and one worker, then reports:

1. Overhead: wall time from ``POST /predict`` to the picks in hand, against ``Picker.predict`` called
   directly on the same tomogram with the same model, window and torch threads (aim: under 5%).
   Each service run uses a fresh copy of the tomogram, so no result is reused.
2. Polling: ``--clients`` concurrent clients (keep-alive connections) call ``GET /jobs/{id}`` as fast as
   they can for ``--poll-seconds`` while a job runs; requests per second, p50 and p99 latency.

Usage::

    .venv/bin/python bench/bench_service.py                 # defaults: 64x256x256 tomogram, window 64
    .venv/bin/python bench/bench_service.py --checkpoint octopi_core/models/default --repeats 3

Without ``--checkpoint`` a random-weight model is used whose background logit is raised, so the
segmentation is near-empty and the numbers measure the service, not a pathological localization.
Results are printed and written to ``bench/results/service.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from octopi_serve.client import OctopiClient  # noqa: E402
from octopi_serve.redis_server import RedisServer, free_port  # noqa: E402

_QUIET_BACKGROUND_BIAS = 4.0


def _quiet_checkpoint(directory: Path) -> Path:
    import torch

    from octopi_core.model import build_model, save_checkpoint
    from octopi_core.model_config import ModelConfig

    torch.manual_seed(0)
    model = build_model()
    state = model.state_dict()
    last_bias = [n for n, p in state.items() if p.ndim == 1 and p.shape[0] == ModelConfig().out_channels][-1]
    state[last_bias][0] += _QUIET_BACKGROUND_BIAS
    model.load_state_dict(state)
    save_checkpoint(model, ModelConfig(), directory)
    return directory


def _registry(work: Path, checkpoint: Path) -> tuple[Path, str]:
    from octopi_core.registry import Registry

    registry = Registry(work / "registry")
    version = registry.add(checkpoint)
    registry.set_champion(version, reason="benchmark")
    return work / "registry", version


def _direct_seconds(checkpoint: Path, uri: str, window: int, batch: int, threads: int) -> float:
    import torch

    from octopi_core.pipeline import Picker, PredictOptions

    torch.set_num_threads(threads)
    picker = Picker(checkpoint, device="cpu")
    started = time.perf_counter()
    picker.predict(uri, PredictOptions(window_vox=window, batch_size=batch))
    return time.perf_counter() - started


def _start(work: Path, env: dict, port: int) -> list[subprocess.Popen]:
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    processes = []
    for name, args in (
        ("gateway", ["gateway", "--port", str(port)]),
        ("worker", ["worker", "--name", "bench-1"]),
    ):
        log = open(logs / f"{name}.log", "wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "octopi_serve.cli", *args],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return processes
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"service did not start; see {logs}")


def _service_seconds(client: OctopiClient, uri: str, poll_s: float) -> float:
    started = time.perf_counter()
    job = client.submit(uri)
    job = client.wait(job["id"], poll_s=poll_s)
    if job["status"] != "succeeded":
        raise RuntimeError(f"benchmark job {job['status']}: {job.get('error')}")
    client.picks(job["id"])
    return time.perf_counter() - started


def _poll_load(url: str, job_id: str, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def hammer() -> None:
        mine: list[float] = []
        with httpx.Client(base_url=url, timeout=10) as http:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                try:
                    ok = http.get(f"/jobs/{job_id}").status_code == 200
                except httpx.HTTPError:
                    ok = False
                mine.append(time.perf_counter() - started)
                if not ok:
                    with lock:
                        errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "duration_s": round(elapsed, 2),
        "requests": len(ordered),
        "errors": errors[0],
        "throughput_rps": round(len(ordered) / elapsed, 1),
        "p50_ms": round(1000 * ordered[len(ordered) // 2], 2) if ordered else None,
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2)
        if ordered
        else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 256, 256), metavar=("Z", "Y", "X"))
    parser.add_argument("--window", type=int, default=64, help="sliding window, voxels")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, direct and in the worker")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (median reported)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent polling clients")
    parser.add_argument("--poll-seconds", type=float, default=10.0)
    parser.add_argument(
        "--poll-interval", type=float, default=0.1, help="status polling of the timed runs, s"
    )
    parser.add_argument(
        "--checkpoint", type=Path, help="checkpoint directory (default: a random quiet model)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "service.json")
    args = parser.parse_args(argv)

    from octopi_core.synth import PhantomSettings, make_phantom, write_phantom

    work = Path(tempfile.mkdtemp(prefix="octopi-bench-"))
    processes: list[subprocess.Popen] = []
    redis_server = RedisServer(directory=work / "redis")
    try:
        checkpoint = args.checkpoint or _quiet_checkpoint(work / "checkpoint")
        registry_root, version = _registry(work, checkpoint)
        tomogram, _ = write_phantom(
            make_phantom(7, PhantomSettings(shape_zyx=tuple(args.shape))), work, "bench"
        )
        copies = [work / f"copy-{i}.zarr" for i in range(args.repeats + 2)]  # timed, warm-up, polling
        for copy in copies:
            shutil.copytree(tomogram, copy)

        print(f"direct pipeline on {tuple(args.shape)}, window {args.window}, {args.threads} thread(s) ...")
        _direct_seconds(checkpoint, str(tomogram), args.window, args.batch_size, args.threads)  # warm-up
        direct = [
            _direct_seconds(checkpoint, str(tomogram), args.window, args.batch_size, args.threads)
            for _ in range(args.repeats)
        ]

        redis_server.start()
        port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": redis_server.url,
            "OCTOPI_REGISTRY_URI": str(registry_root),
            "OCTOPI_LOCAL_ROOTS": str(work),
            "OCTOPI_WINDOW_VOX": str(args.window),
            "OCTOPI_BATCH_SIZE": str(args.batch_size),
            "OCTOPI_TORCH_THREADS": str(args.threads),
            "OCTOPI_DEVICE": "cpu",
            "OCTOPI_RATE_LIMIT_PER_MINUTE": "0",
            "OCTOPI_QUEUE_NAME": "bench",
        }
        print("starting redis, gateway and one worker ...")
        processes = _start(work, env, port)
        url = f"http://127.0.0.1:{port}"
        with OctopiClient(url) as client:
            _service_seconds(client, str(copies[-2]), args.poll_interval)  # warm-up, like the direct runs
            service = [
                _service_seconds(client, str(copies[i]), args.poll_interval) for i in range(args.repeats)
            ]
            print(f"polling with {args.clients} clients for {args.poll_seconds:g} s while a job runs ...")
            job = client.submit(str(copies[-1]))
            polling = _poll_load(url, job["id"], args.clients, args.poll_seconds)
            client.wait(job["id"], poll_s=0.5)

        direct_s, service_s = statistics.median(direct), statistics.median(service)
        result = {
            "tomogram_shape_zyx": list(args.shape),
            "window_vox": args.window,
            "batch_size": args.batch_size,
            "torch_threads": args.threads,
            "model": version,
            "repeats": args.repeats,
            "direct_s": [round(t, 3) for t in direct],
            "service_s": [round(t, 3) for t in service],
            "overhead_fraction": round(service_s / direct_s - 1.0, 4),
            "overhead_s": round(service_s - direct_s, 3),
            "poll_interval_s": args.poll_interval,
            "polling": polling,
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\npipeline direct : median {direct_s:7.2f} s   runs {result['direct_s']}")
        print(f"through service : median {service_s:7.2f} s   runs {result['service_s']}")
        print(
            f"overhead        : {100 * result['overhead_fraction']:+.1f}% "
            f"({result['overhead_s']:+.2f} s; aim < 5%)"
        )
        print(
            f"status polling  : {polling['throughput_rps']} req/s with {polling['clients']} clients, "
            f"p50 {polling['p50_ms']} ms, p99 {polling['p99_ms']} ms, {polling['errors']} errors"
        )
        print(f"written to {args.out}")
        return 0
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        redis_server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
