"""Prometheus metrics of the gateway: its own requests, plus job statistics read from Redis at scrape time.

Request counts and latencies are per gateway process. Queue depth, worker count, jobs by final status,
job and inference duration histograms (buckets up to an hour) and tomograms in the last hour come from
Redis (written by the workers, :mod:`worker.jobs.stats`), so every replica reports the same values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from octopi_core.settings import Settings
from worker.jobs import stats
from worker.jobs.lifecycle import running_owners
from worker.jobs.queue import queue_depth
from worker.jobs.workers import live_workers

__all__ = ["ServiceMetrics", "RequestMetricsMiddleware"]

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _RedisStatsCollector:
    """Reads the shared job statistics from Redis on every scrape."""

    def __init__(self, connection_factory: Callable[[], redis.Redis], settings: Settings) -> None:
        self._connection = connection_factory
        self._settings = settings

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("octopi_redis_up", "1 when Redis answered this scrape, else 0")
        try:
            connection = self._connection()
            depth = queue_depth(connection, self._settings)
            workers = len(live_workers(connection))
            owners = running_owners(connection)  # one read: jobs running and busy workers agree
            counts = stats.read_job_counts(connection)
            histograms = {
                name: stats.read_histogram(connection, name)
                for name in (stats.JOB_DURATION, stats.INFERENCE_DURATION)
            }
            per_hour = stats.tomograms_last_hour(connection)
        except redis.exceptions.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("octopi_queue_depth", "jobs waiting in the queue", value=depth)
        yield GaugeMetricFamily("octopi_workers", "workers with a live heartbeat", value=workers)
        yield GaugeMetricFamily("octopi_jobs_running", "jobs being processed now", value=len(owners))
        yield GaugeMetricFamily(
            "octopi_workers_busy",
            "workers holding a running job (one may hold two while it overlaps)",
            value=len(set(owners)),
        )
        yield GaugeMetricFamily(
            "octopi_tomograms_per_hour", "tomograms picked successfully in the last hour", value=per_hour
        )
        finished = CounterMetricFamily("octopi_jobs", "jobs that ended, by final status", labels=["status"])
        for status in ("succeeded", "failed", "cancelled"):
            finished.add_metric([status], counts.get(status, 0))
        yield finished
        for name, metric_name, help_text in (
            (
                stats.JOB_DURATION,
                "octopi_job_duration_seconds",
                "seconds from submission to the end of a job",
            ),
            (
                stats.INFERENCE_DURATION,
                "octopi_inference_duration_seconds",
                "seconds the pipeline spent on one tomogram",
            ),
        ):
            buckets, total, _ = histograms[name]
            yield HistogramMetricFamily(
                metric_name,
                help_text,
                buckets=[("+Inf" if b == float("inf") else repr(b), c) for b, c in buckets],
                sum_value=total,
            )


class ServiceMetrics:
    """The gateway's metric registry: request counters and histograms, plus the Redis statistics collector."""

    def __init__(self, connection_factory: Callable[[], redis.Redis], settings: Settings) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "octopi_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "octopi_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.registry.register(_RedisStatsCollector(connection_factory, settings))


class RequestMetricsMiddleware:
    """Counts requests by route template (not raw path, to bound cardinality), method and status."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def observing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(template, method, str(status[0])).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - started)
