"""Prometheus metrics, derived from the live status document on every scrape."""
from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger("foxden.metrics")

BROWSER_STATES = ("starting", "idle", "busy", "stopping")
JOB_STATUSES = ("ok", "failed", "timeout", "rejected")


class StatusCollector(Collector):
    """Turns one status document per scrape into metric families.

    Nothing is counted here: every value is read from the document, so the
    metrics cannot drift from `foxden status`. A document that cannot be
    fetched yields foxden_up 0 and nothing else, rather than stale values."""

    def __init__(self, fetch_status: Callable[[], dict]):
        self.fetch_status = fetch_status
        # The HTTP server runs a thread per request; overlapping scrapes must
        # not share fetch_status (e.g. one blocking Client) at the same time.
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        try:
            with self._lock:
                status = self.fetch_status()
        except Exception as exc:  # noqa: BLE001 - any failure to fetch means "down", and the scrape must still answer
            log.warning("metrics: status unavailable: %s", exc)
            yield _gauge("foxden_up", "1 if the daemon's status could be fetched for this scrape", 0)
            return
        yield _gauge("foxden_up", "1 if the daemon's status could be fetched for this scrape", 1)
        yield from status_metrics(status)


def status_metrics(st: dict) -> Iterator[Metric]:
    """The metric families of one status document."""
    browsers = GaugeMetricFamily("foxden_browsers", "Browsers by engine and state", labels=["engine", "state"])
    counts: dict[tuple[str, str], int] = {}
    # Every state of the pool's engine is exported, zeros included, so a
    # graph of idle browsers drops to 0 instead of vanishing.
    for state in BROWSER_STATES:
        counts[(st["engine"], state)] = 0
    for child in st["children"]:
        key = (child["engine"], child["state"])
        counts[key] = counts.get(key, 0) + 1
    for (engine, state), n in sorted(counts.items()):
        browsers.add_metric([engine, state], n)
    yield browsers
    yield _gauge("foxden_browsers_live", "Live browsers (the supervisor's derived count)", st["browsers"]["live"])

    totals = st["totals"]
    jobs = CounterMetricFamily("foxden_jobs", "Answered jobs by status", labels=["status"])
    for status in JOB_STATUSES:
        jobs.add_metric([status], totals.get(status, 0))
    yield jobs
    yield _counter_by("foxden_job_errors", "Jobs answered with an error, by error code", "code", st["errors"])
    yield CounterMetricFamily("foxden_jobs_submitted", "Jobs accepted by the dispatcher", value=totals["submitted"])
    yield CounterMetricFamily("foxden_jobs_retried", "Attempts retried after their browser died",
                              value=totals["retried"])
    yield _histogram(st["durations"])
    yield _gauge("foxden_queue_depth", "Jobs waiting for a browser", st["queue"]["depth"])
    yield _gauge("foxden_jobs_in_flight", "Jobs running on a browser", st["queue"]["in_flight"])

    yield _counter_by("foxden_watchdog_kills", "Browsers killed by the watchdog, by reason", "reason",
                      st["watchdog"]["kills_by_reason"])
    yield _gauge("foxden_lingering_processes", "Processes of dead browsers still alive after SIGKILL (killed again each tick)",
                 len(st["watchdog"].get("lingering", [])))
    if "transport" in st:
        yield _counter_by("foxden_transport_refused_frames",
                          "Frames and messages refused at the actor ports, by reason", "reason",
                          st["transport"]["refused_by_reason"])
    yield CounterMetricFamily("foxden_restarts", "Browser restarts by the supervisor", value=st["restarts"])
    yield _counter_by("foxden_browser_exits", "Browser actors that exited, by reason", "reason", st["exits"])

    pss = GaugeMetricFamily("foxden_browser_pss_bytes", "Proportional set size of a browser and its processes",
                            labels=["browser", "engine"])
    for child in st["children"]:
        pss.add_metric([child["id"], child["engine"]], child["pss_bytes"])
    yield pss

    inv = st["invariants"]
    yield _gauge("foxden_invariant_violations", "Invariants violated in this status sample", len(inv["violations"]))
    yield _gauge("foxden_invariants_ok", "1 if every invariant held in this status sample", int(inv["ok"]))
    pool = st["pool"]
    yield _gauge("foxden_pool_failed", "1 if the supervisor gave up on the pool (restart intensity exceeded)",
                 int(pool["state"] == "failed"))
    yield _gauge("foxden_pool_target", "Browsers the supervisor currently aims to keep", pool["target"])
    yield _gauge("foxden_pool_held_back", "1 if a browser start is held back (e.g. too little free memory)",
                 int(bool(pool["held_back"])))


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter_by(name: str, doc: str, label: str, values: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _histogram(d: dict) -> HistogramMetricFamily:
    # The dispatcher keeps per-bucket counts with a final +Inf bucket;
    # Prometheus wants cumulative ones.
    cumulative, buckets = 0, []
    for bound, count in zip([*d["buckets"], math.inf], d["counts"], strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == math.inf else repr(float(bound)), cumulative))
    return HistogramMetricFamily("foxden_job_duration_seconds", "Time from submission to answer, all attempts",
                                 buckets=buckets, sum_value=d["sum_s"])


class MetricsServer:
    """The /metrics endpoint on 127.0.0.1; close() is idempotent."""

    def __init__(self, httpd, thread: threading.Thread):
        self._httpd, self._thread = httpd, thread
        self.port: int = httpd.server_port
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def start_metrics_server(port: int, fetch_status: Callable[[], dict]) -> MetricsServer:
    """Serve /metrics on 127.0.0.1:port (0 = a free port) from a daemon thread.

    Raises OSError (EADDRINUSE, ...) if the port cannot be bound."""
    # A registry of our own: the process-wide default one would mix in the
    # metrics of whatever process hosts us, and keep ours after close().
    registry = CollectorRegistry()
    registry.register(StatusCollector(fetch_status))
    httpd, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    return MetricsServer(httpd, thread)
