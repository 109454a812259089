"""Soak benchmark: steady client load while workers are SIGKILLed and Redis restarted; no job may be lost.

One run starts a private Redis (append-only file, fsync every write: what the service relies on to survive
a Redis restart), the gateway and ``--workers`` workers on loopback, serving a random "quiet" model on
small synthetic tomograms (about a second per job on a 2-core CPU). For ``--minutes``, ``--clients``
threads send ``--rate-per-s`` requests per second in all: submit (mostly a fresh copy of the tomogram, some
an already submitted one, which exercises result reuse), poll ``GET /jobs/{id}``, cancel and fetch picks.
Meanwhile, at random moments drawn from ``--seed``, a worker is SIGKILLed (and a new one started, as the
``serve`` supervisor does) and Redis is SIGKILLed and started again on the same port. Then the chaos stops,
and the jobs get ``--drain-s`` seconds to finish.

The service's promise (README, "The service"; ``tests/service/test_redis_restart.py``): a job accepted
with 202 ends succeeded, cancelled, or failed with a named error (a job whose worker died
``OCTOPI_MAX_TRIES`` times fails as ``worker-lost``), and its record stays; while Redis is away the
gateway answers 503 and recovers. A job is **lost** when, after the drain, it is still queued or
running, its record is gone (404), it failed without a named problem type, or it succeeded and its
picks cannot be fetched. Reported: jobs submitted / succeeded / cancelled / failed (by problem type) /
lost, the outcome of every call, p50/p99 latency of status calls, and the peak RSS of the workers
(``VmHWM`` from ``/proc``, sampled twice a second). Raw figures go to ``bench/results/soak-<time>.json``.

Usage::

    .venv/bin/python bench/bench_soak.py --minutes 3
    .venv/bin/python bench/bench_soak.py --minutes 0.5 --kill-every-s 12 --redis-restart-every-s 15

Exit status 1 when a job was lost or a gateway or worker died by itself.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _data import write_result  # noqa: E402
from _stack import ServiceStack  # noqa: E402

from worker.jobs.keys import RUNNING_KEY, job_key, rq_job_id  # noqa: E402

__all__ = ["main"]

_FINAL = {"succeeded", "failed", "cancelled"}
_OPS = ("submit", "status", "cancel", "fetch")
_OP_WEIGHTS = (0.3, 0.45, 0.1, 0.15)  # ~0.6 submits/s at the default rate: a steady queue for 2 workers
_REUSE_FRACTION = 0.15  # submits of an already submitted tomogram (the same job's result is reused)
_REQUEST_TIMEOUT_S = 15.0
_QUIET_BACKGROUND_BIAS = 4.0  # raises the background logit: near-empty segmentations, fast localization
_SAMPLE_EVERY_S = 0.5  # memory sampling interval
_SERIES_EVERY_S = 10.0  # RSS kept for the raw results this often, to show growth over a long soak


@dataclass
class _Ledger:
    """What the clients saw, shared by their threads (every change under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: dict[str, str] = field(default_factory=dict)  # job id -> tomogram URI
    last_status: dict[str, str] = field(default_factory=dict)  # job id -> status last seen
    calls: Counter = field(default_factory=Counter)  # "<op> <HTTP status or error class>" -> count
    status_latency_s: list[float] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)

    def pick(self, rng: random.Random, *, status: set[str] | None, open_only: bool = False) -> str | None:
        """A random job id: last seen in one of ``status``, or not yet seen final (``open_only``)."""
        with self.lock:
            ids = [
                i
                for i, s in self.last_status.items()
                if (status is None or s in status) and not (open_only and s in _FINAL)
            ]
        return rng.choice(ids) if ids else None


class _TomogramPool:
    """Fresh copies of one small OME-Zarr tomogram, so that each submit is a new job, not a reused result."""

    def __init__(self, base: Path, directory: Path) -> None:
        self.base, self.directory = base, directory
        directory.mkdir(parents=True, exist_ok=True)
        self._count = 0
        self._lock = threading.Lock()

    def fresh(self) -> str:
        with self._lock:
            self._count += 1
            path = self.directory / f"tomo-{self._count:05d}.zarr"
        shutil.copytree(self.base, path)
        return str(path)


def _quiet_registry(work: Path) -> tuple[Path, str]:
    """A model registry whose champion is a random-weight model that finds almost nothing."""
    import torch

    from octopi_core.model import build_model, save_checkpoint
    from octopi_core.model_config import ModelConfig
    from octopi_core.registry import Registry

    torch.manual_seed(0)
    model = build_model()
    state = model.state_dict()
    last_bias = [n for n, p in state.items() if p.ndim == 1 and p.shape[0] == ModelConfig().out_channels][-1]
    state[last_bias][0] += _QUIET_BACKGROUND_BIAS
    model.load_state_dict(state)
    save_checkpoint(model, ModelConfig(), work / "checkpoint")
    registry = Registry(work / "registry")
    version = registry.add(work / "checkpoint")
    registry.set_champion(version, reason="soak benchmark")
    return work / "registry", version


def _call(
    ledger: _Ledger, op: str, http: httpx.Client, method: str, path: str, **kw
) -> httpx.Response | None:
    """One request; its outcome is counted as ``"<op> <status code>"`` or ``"<op> <error class>"``."""
    started = time.perf_counter()
    try:
        response = http.request(method, path, **kw)
        outcome = str(response.status_code)
    except httpx.HTTPError as e:
        response, outcome = None, type(e).__name__
    elapsed_s = time.perf_counter() - started
    with ledger.lock:
        ledger.calls[f"{op} {outcome}"] += 1
        if op == "status":
            ledger.status_latency_s.append(elapsed_s)
    return response


def _client_step(http: httpx.Client, ledger: _Ledger, pool: _TomogramPool, rng: random.Random) -> None:
    op = rng.choices(_OPS, _OP_WEIGHTS)[0]
    if op == "submit":
        with ledger.lock:
            used = list(ledger.accepted.values())
        uri = rng.choice(used) if used and rng.random() < _REUSE_FRACTION else pool.fresh()
        response = _call(ledger, op, http, "POST", "/predict", json={"tomogram_uri": uri})
        if response is not None and response.status_code in (200, 202):
            job = response.json()
            with ledger.lock:
                ledger.accepted[job["id"]] = uri
                ledger.last_status[job["id"]] = job["status"]
        return
    job_id = (
        ledger.pick(rng, status={"succeeded"})
        if op == "fetch"
        else ledger.pick(rng, status=None, open_only=True)
    ) or ledger.pick(rng, status=None)
    if job_id is None:
        return
    if op == "status":
        response = _call(ledger, op, http, "GET", f"/jobs/{job_id}")
        if response is not None and response.status_code == 200:
            with ledger.lock:
                ledger.last_status[job_id] = response.json()["status"]
    elif op == "cancel":
        _call(ledger, op, http, "DELETE", f"/jobs/{job_id}")
    else:
        response = _call(ledger, op, http, "GET", f"/jobs/{job_id}/picks")
        with ledger.lock:
            seen_succeeded = ledger.last_status.get(job_id) == "succeeded"
            if response is not None and seen_succeeded and response.status_code not in (200, 503):
                ledger.anomalies.append(f"picks of succeeded job {job_id}: HTTP {response.status_code}")


def _client(
    url: str, ledger: _Ledger, pool: _TomogramPool, seed: int, interval_s: float, stop_at: float
) -> None:
    """Open-loop load: one request every ``interval_s`` (jittered), without catching up after slow calls."""
    rng = random.Random(seed)
    next_at = time.monotonic() + rng.uniform(0.0, interval_s)
    with httpx.Client(base_url=url, timeout=_REQUEST_TIMEOUT_S) as http:
        while True:
            pause_s = next_at - time.monotonic()
            if pause_s > 0:
                time.sleep(pause_s)
            if time.monotonic() >= stop_at:
                return
            _client_step(http, ledger, pool, rng)
            next_at = max(next_at + interval_s * rng.uniform(0.5, 1.5), time.monotonic())


class _Chaos:
    """Kills a worker and restarts Redis at seeded random moments; restarts children that died by themselves.

    Each worker slot runs one worker at a time, named ``soak-<slot>-<generation>``: a worker started after a
    kill needs a new name, because the killed one's heartbeat key lives on until it expires.
    """

    def __init__(self, stack: ServiceStack, args: argparse.Namespace, began: float) -> None:
        self.stack, self.args, self.began = stack, args, began
        self.rng = random.Random(args.seed)
        self.generation = dict.fromkeys(range(args.workers), 1)
        self.events: list[dict] = []
        self.crashes: list[dict] = []
        self.peak_rss: dict[str, dict[str, int]] = {}  # process name -> {"hwm_bytes", "rss_bytes"}
        self.rss_series_mib: dict[str, list[tuple[float, float]]] = {}  # process name -> [(t_s, MiB)]
        self.stop = threading.Event()
        self.calm = threading.Event()  # set once the chaos is over (no kill or restart in progress)

    def names(self) -> list[str]:
        return [f"soak-{slot}-{gen}" for slot, gen in self.generation.items()]

    def _event(self, what: str, **details: object) -> None:
        self.events.append({"t_s": round(time.monotonic() - self.began, 2), "event": what, **details})
        print(f"  [{self.events[-1]['t_s']:7.1f} s] {what} {details or ''}", flush=True)

    def _next(self, every_s: float) -> float:
        return time.monotonic() + every_s * self.rng.uniform(0.5, 1.5) if every_s > 0 else float("inf")

    def run(self, until: float) -> None:
        """Until ``until`` (monotonic) or :attr:`stop`: sample memory, supervise, kill and restart."""
        try:
            self._run(until)
        finally:
            self.calm.set()  # also when it failed: the benchmark must not wait for it forever

    def _run(self, until: float) -> None:
        next_kill = self._next(self.args.kill_every_s)
        next_redis = self._next(self.args.redis_restart_every_s)
        while not self.stop.wait(_SAMPLE_EVERY_S):
            self.sample_memory()
            self.supervise()
            now = time.monotonic()
            if now >= until:
                self.calm.set()  # chaos is over; keep supervising and sampling through the drain
                continue
            if now >= next_kill:
                self._kill_worker()
                next_kill = self._next(self.args.kill_every_s)
            if now >= next_redis:
                self.stack.restart_redis(self.args.redis_down_s)
                self._event("redis SIGKILL + restart", down_s=self.args.redis_down_s)
                next_redis = self._next(self.args.redis_restart_every_s)

    def _kill_worker(self) -> None:
        """SIGKILL a worker, one running a job when there is one (that is what re-queueing is for)."""
        slots = list(self.generation)
        busy = [s for s in slots if f"soak-{s}-{self.generation[s]}" in _busy_workers(self.stack)]
        slot = self.rng.choice(busy or slots)
        name = f"soak-{slot}-{self.generation[slot]}"
        self.sample_memory()
        self.stack.kill_worker(name)
        self.generation[slot] += 1
        self.stack.start_worker(f"soak-{slot}-{self.generation[slot]}")
        self._event("worker SIGKILL", worker=name, busy=bool(busy))

    def supervise(self) -> None:
        """Record and replace a gateway or worker that exited without being killed here."""
        if self.stack.gateway is not None and self.stack.gateway.poll() is not None:
            self.crashes.append({"process": "gateway", "returncode": self.stack.gateway.returncode})
            self._event(
                "gateway exited", returncode=self.stack.gateway.returncode, log=self.stack.log_tail("gateway")
            )
            self.stack.start_gateway()
        for slot in self.generation:
            name = f"soak-{slot}-{self.generation[slot]}"
            process = self.stack.workers.get(name)
            if process is not None and process.poll() is not None:
                self.crashes.append({"process": name, "returncode": process.returncode})
                self._event(
                    "worker exited", worker=name, returncode=process.returncode, log=self.stack.log_tail(name)
                )
                del self.stack.workers[name]
                self.generation[slot] += 1
                self.stack.start_worker(f"soak-{slot}-{self.generation[slot]}")

    def sample_memory(self) -> None:
        """Keep each child's highest VmHWM (peak RSS) and latest VmRSS, read from /proc."""
        children = {"gateway": self.stack.gateway, **self.stack.workers}
        for name, process in children.items():
            if process is None:
                continue
            figures = _proc_memory_bytes(process.pid)
            if figures:
                peak = self.peak_rss.setdefault(name, {"hwm_bytes": 0, "rss_bytes": 0})
                peak["hwm_bytes"] = max(peak["hwm_bytes"], figures["VmHWM"])
                peak["rss_bytes"] = figures["VmRSS"]
                series = self.rss_series_mib.setdefault(name, [])
                t_s = time.monotonic() - self.began
                if not series or t_s - series[-1][0] >= _SERIES_EVERY_S:
                    series.append((round(t_s, 1), round(figures["VmRSS"] / 2**20, 1)))


def _busy_workers(stack: ServiceStack) -> set[str]:
    """Names of the workers that own a running attempt now (none while Redis is away)."""
    try:
        with redis.Redis.from_url(stack.redis.url, socket_timeout=2) as connection:
            owners = connection.hvals(RUNNING_KEY)
    except redis.exceptions.RedisError:
        return set()
    return {owner.decode().rsplit("|", 1)[0] for owner in owners}


def _rq_view(stack: ServiceStack, job_id: str) -> dict:
    """Where a lost job's current attempt is in RQ and in our running hash (to say how it got lost)."""
    from rq import Queue
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    with redis.Redis.from_url(stack.redis.url) as connection:
        attempt = int(connection.hget(job_key(job_id), "attempt") or 0)
        rq_id = rq_job_id(job_id, attempt)
        view: dict = {
            "attempt": attempt,
            "rq_job_id": rq_id,
            "in_queue": rq_id in Queue(stack.env["OCTOPI_QUEUE_NAME"], connection=connection).job_ids,
            "in_running_hash": bool(connection.hexists(RUNNING_KEY, job_id)),
        }
        try:
            job = Job.fetch(rq_id, connection=connection)
        except NoSuchJobError:
            return view | {"rq_status": None}
        return view | {
            "rq_status": str(job.get_status()),
            "rq_worker": job.worker_name,
            "rq_enqueued_at": str(job.enqueued_at),
            "rq_started_at": str(job.started_at),
        }


def _proc_memory_bytes(pid: int) -> dict[str, int]:
    """``{"VmRSS": bytes, "VmHWM": bytes}`` of a live process (empty once it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    figures = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0]) * 1024  # reported in kB
    return figures if len(figures) == 2 else {}


def _final_states(url: str, ids: list[str], drain_s: float) -> dict[str, dict | int]:
    """Each job's final record (or the HTTP status when there is none), waiting up to ``drain_s`` for
    unfinished jobs; 503s and connection errors are retried until then."""
    states: dict[str, dict | int] = {}
    deadline = time.monotonic() + drain_s
    with httpx.Client(base_url=url, timeout=_REQUEST_TIMEOUT_S) as http:
        pending = list(ids)
        while pending:
            waiting = []
            for job_id in pending:
                try:
                    response = http.get(f"/jobs/{job_id}")
                except httpx.HTTPError:
                    waiting.append(job_id)
                    continue
                if response.status_code == 200:
                    record = states[job_id] = response.json()
                    if record["status"] not in _FINAL:
                        waiting.append(job_id)
                elif response.status_code == 503:
                    waiting.append(job_id)
                else:
                    states[job_id] = response.status_code
            pending = waiting
            if pending and time.monotonic() >= deadline:
                break
            if pending:
                time.sleep(1.0)
        for job_id in pending:
            states.setdefault(job_id, 0)  # never answered after the drain
        for job_id, state in states.items():  # a succeeded job's picks must be there
            if isinstance(state, dict) and state["status"] == "succeeded":
                state["_picks_http"] = http.get(f"/jobs/{job_id}/picks").status_code
    return states


def _lost_reason(state: dict | int) -> str | None:
    """Why a job counts as lost, or None when it ended as the service promises."""
    if not isinstance(state, dict):
        return "record gone (HTTP 404)" if state == 404 else f"no answer (HTTP {state})"
    if state["status"] not in _FINAL:
        return f"still {state['status']} after the drain"
    if state["status"] == "failed" and (state.get("error") or {}).get("type", "about:blank") == "about:blank":
        return "failed without a named error"
    if state["status"] == "succeeded" and state["_picks_http"] != 200:
        return f"succeeded but picks answer HTTP {state['_picks_http']}"
    return None


def _compact(job_id: str, state: dict | int) -> dict:
    """The figures of one job's final record worth keeping in the raw results."""
    if not isinstance(state, dict):
        return {"id": job_id, "http": state}
    return {
        "id": job_id,
        "status": state["status"],
        "tries": state.get("tries"),
        "worker": state.get("worker"),
        "error_type": (state.get("error") or {}).get("type"),
        "reused_from": state.get("reused_from"),
        "timings_s": state.get("timings_s"),
    }


def _longest_series(series: dict[str, list[tuple[float, float]]]) -> dict | None:
    """The longest-lived worker's RSS after its first minute (start-up and warm-up done) and at the end."""
    name, points = max(series.items(), key=lambda item: item[1][-1][0] - item[1][0][0], default=("", []))
    settled = [p for p in points if p[0] - points[0][0] >= 60.0]
    if len(settled) < 2:
        return None
    return {"worker": name, "from": settled[0], "to": settled[-1]}


def _percentile_ms(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else None


def _summary(ledger: _Ledger, states: dict[str, dict | int], chaos: _Chaos) -> dict:
    ends = Counter(s["status"] for s in states.values() if isinstance(s, dict) and s["status"] in _FINAL)
    failed_types = Counter(
        (s.get("error") or {}).get("type", "about:blank").rsplit(":", 1)[-1]
        for s in states.values()
        if isinstance(s, dict) and s["status"] == "failed"
    )
    lost = {i: r for i, s in states.items() if (r := _lost_reason(s))}
    job_s = [
        s["timings_s"]["total"]
        for s in states.values()
        if isinstance(s, dict) and s["status"] == "succeeded" and "total" in s.get("timings_s", {})
    ]
    workers = {k: v for k, v in chaos.peak_rss.items() if k != "gateway"}
    return {
        "jobs": {
            "submitted": len(ledger.accepted),
            "succeeded": ends["succeeded"],
            "cancelled": ends["cancelled"],
            "failed": ends["failed"],
            "lost": len(lost),
            "reused": sum(1 for s in states.values() if isinstance(s, dict) and s.get("reused_from")),
            "retried": sum(1 for s in states.values() if isinstance(s, dict) and s.get("tries", 0) > 1),
        },
        "failed_by_type": dict(failed_types),
        "lost_jobs": [{"id": i, "why": r, "record": states[i]} for i, r in lost.items()],
        "calls": dict(sorted(ledger.calls.items())),
        "job_records": [_compact(i, s) for i, s in states.items()],
        "job_pipeline_s": {
            "count": len(job_s),
            "p50": round(statistics.median(job_s), 3) if job_s else None,
            "max": round(max(job_s), 3) if job_s else None,
        },
        "status_latency_ms": {
            "count": len(ledger.status_latency_s),
            "p50": _percentile_ms(ledger.status_latency_s, 0.50),
            "p99": _percentile_ms(ledger.status_latency_s, 0.99),
            "max": _percentile_ms(ledger.status_latency_s, 1.0),
            "mean": round(1000 * statistics.fmean(ledger.status_latency_s), 2)
            if ledger.status_latency_s
            else None,
        },
        "peak_worker_rss_bytes": max((v["hwm_bytes"] for v in workers.values()), default=0),
        "peak_gateway_rss_bytes": chaos.peak_rss.get("gateway", {}).get("hwm_bytes", 0),
        "memory_by_process": chaos.peak_rss,
        "rss_series_mib": chaos.rss_series_mib,
        "longest_worker_rss_mib": _longest_series(
            {k: v for k, v in chaos.rss_series_mib.items() if k != "gateway"}
        ),
        "events": chaos.events,
        "crashes": chaos.crashes,
        "anomalies": ledger.anomalies,
    }


def _print_table(result: dict) -> None:
    jobs, latency = result["jobs"], result["status_latency_ms"]
    mib = 2**20
    rows = [
        ("jobs submitted (202)", jobs["submitted"]),
        ("succeeded / cancelled / failed", f"{jobs['succeeded']} / {jobs['cancelled']} / {jobs['failed']}"),
        ("failed by type", result["failed_by_type"] or "-"),
        ("LOST", jobs["lost"]),
        ("reused results / retried jobs", f"{jobs['reused']} / {jobs['retried']}"),
        (
            "job pipeline time, p50 / max",
            f"{result['job_pipeline_s']['p50']} / {result['job_pipeline_s']['max']} s",
        ),
        ("status calls, p50 / p99 / max", f"{latency['p50']} / {latency['p99']} / {latency['max']} ms"),
        ("peak worker RSS", f"{result['peak_worker_rss_bytes'] / mib:.0f} MiB"),
        ("longest-lived worker RSS (t_s, MiB)", _growth(result["longest_worker_rss_mib"])),
        ("peak gateway RSS", f"{result['peak_gateway_rss_bytes'] / mib:.0f} MiB"),
        ("worker kills / redis restarts", f"{result['worker_kills']} / {result['redis_restarts']}"),
        ("crashes, anomalies", f"{len(result['crashes'])}, {len(result['anomalies'])}"),
    ]
    print()
    for label, value in rows:
        print(f"{label:<36} {value}")
    print("calls: " + ", ".join(f"{k}: {v}" for k, v in result["calls"].items()))
    for lost in result["lost_jobs"]:
        record = lost["record"]
        print(
            f"LOST {lost['id']}: {lost['why']}; {record.get('_rq', '') if isinstance(record, dict) else ''}"
        )


def _growth(longest: dict | None) -> str:
    return f"{longest['from']} -> {longest['to']} ({longest['worker']})" if longest else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the load, minutes")
    parser.add_argument(
        "--rate-per-s", type=float, default=2.0, help="requests per second, all clients together"
    )
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--kill-every-s", type=float, default=40.0, help="mean seconds between worker SIGKILLs; 0: none"
    )
    parser.add_argument(
        "--redis-restart-every-s",
        type=float,
        default=60.0,
        help="mean seconds between Redis restarts; 0: none",
    )
    parser.add_argument("--redis-down-s", type=float, default=2.0, help="how long Redis stays down, seconds")
    parser.add_argument(
        "--drain-s", type=float, default=180.0, help="time the jobs get to finish after the load"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the chaos and the clients")
    parser.add_argument("--shape", type=int, nargs=3, default=(32, 64, 64), metavar=("Z", "Y", "X"))
    parser.add_argument("--window", type=int, default=32, help="sliding window, voxels")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate_per_s <= 0 or args.clients < 1 or args.workers < 1:
        raise SystemExit("--minutes and --rate-per-s must be positive, --clients and --workers at least 1")

    from octopi_core.synth import PhantomSettings, make_phantom, write_phantom

    work = Path(tempfile.mkdtemp(prefix="octopi-soak-"))
    stack: ServiceStack | None = None
    keep = False
    try:
        registry, version = _quiet_registry(work)
        base, _ = write_phantom(
            make_phantom(args.seed, PhantomSettings(shape_zyx=tuple(args.shape))), work, "base"
        )
        pool = _TomogramPool(base, work / "tomograms")
        stack = ServiceStack(
            work,
            registry=registry,
            local_roots=[work],
            env_extra={"OCTOPI_WINDOW_VOX": str(args.window)},
        )
        print(
            f"starting redis (append-only), the gateway and {args.workers} worker(s) in {work} ...",
            flush=True,
        )
        chaos = _Chaos(stack, args, time.monotonic())
        stack.start(chaos.names())
        ledger = _Ledger()
        load_s = 60.0 * args.minutes
        began = chaos.began = time.monotonic()
        print(
            f"load: {args.rate_per_s:g} requests/s from {args.clients} clients for {load_s:.0f} s", flush=True
        )
        chaos_thread = threading.Thread(target=chaos.run, args=(began + load_s,), daemon=True)
        chaos_thread.start()
        clients = [
            threading.Thread(
                target=_client,
                args=(
                    stack.url,
                    ledger,
                    pool,
                    args.seed * 1000 + i,
                    args.clients / args.rate_per_s,
                    began + load_s,
                ),
            )
            for i in range(args.clients)
        ]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        chaos.calm.wait()  # a kill or Redis restart in progress ends before the drain
        print(f"draining: {len(ledger.accepted)} jobs get up to {args.drain_s:g} s to finish ...", flush=True)
        drain_began = time.monotonic()
        states = _final_states(stack.url, list(ledger.accepted), args.drain_s)
        for job_id, state in states.items():
            if _lost_reason(state) and isinstance(state, dict):
                state["_rq"] = _rq_view(stack, job_id)
        chaos.stop.set()
        chaos_thread.join()
        result = {
            "minutes": args.minutes,
            "rate_per_s": args.rate_per_s,
            "clients": args.clients,
            "workers": args.workers,
            "kill_every_s": args.kill_every_s,
            "redis_restart_every_s": args.redis_restart_every_s,
            "redis_down_s": args.redis_down_s,
            "seed": args.seed,
            "tomogram_shape_zyx": list(args.shape),
            "window_vox": args.window,
            "model": version,
            "load_s": round(load_s, 1),
            "drain_s": round(time.monotonic() - drain_began, 1),
            "worker_kills": sum(e["event"] == "worker SIGKILL" for e in chaos.events),
            "redis_restarts": sum(e["event"].startswith("redis") for e in chaos.events),
            **_summary(ledger, states, chaos),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _print_table(result)
        write_result("soak", result)
        if result["jobs"]["lost"] or result["crashes"]:
            keep = True  # the logs and Redis's append-only file, to see what happened
            print(f"kept {work} (logs/, redis/appendonly*) for inspection")
            return 1
        return 0
    finally:
        if stack is not None:
            stack.stop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
