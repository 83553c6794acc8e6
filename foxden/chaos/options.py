"""A chaos run's options, `--set` overrides, and the private daemon's config they make."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from foxden.chaos.faults import DEFAULT_RATES

__all__ = ["Options", "parse_overrides", "daemon_sections"]


@dataclass
class Options:
    """What a run does; the defaults are `foxden chaos`'s."""

    jobs: int | None = 250  # None: as many as fit in duration_s
    concurrency: int = 8
    pool_size: int = 3
    seed: int | None = None
    duration_s: float | None = None  # stop submitting after this long
    rates: dict = field(default_factory=lambda: dict(DEFAULT_RATES))
    connections: int | None = None  # default: min(concurrency, 4)
    engine: str = "chromium"
    timeout_s: float = 3.0
    jitter_s: float = 0.5
    max_queue: int = 20
    burst_factor: int = 3
    heartbeat_timeout_s: float = 2.0
    sample_interval_s: float = 0.2
    queue_timeout_s: float = 30.0  # [jobs] queue_timeout_s: with it, every job has a deadline for its answer
    slack_s: float = 20.0  # added to that deadline (a loaded machine is slow)
    settle_timeout_s: float = 120.0
    min_each: bool = True  # make every kind with a rate > 0 fire at least once
    workdir: str | None = None
    keep: bool = False  # keep the work dir (it is always kept when the run fails)
    quiet: bool = False
    stop_under_load: bool = False  # SIGTERM the daemon halfway, with jobs in flight (tests the drain)
    overrides: dict = field(default_factory=dict)  # {"section": {"key": value}} over the daemon config


def parse_overrides(items: list[str]) -> dict:
    """["recycle.max_jobs=5", ...] -> {"recycle": {"max_jobs": 5}} (values as JSON when they parse, else strings)."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            raise ValueError(f"--set: expected SECTION.KEY=VALUE, got {item!r}")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        out.setdefault(section, {})[name] = parsed
    return out


def daemon_sections(o: Options, state_dir: str) -> dict:
    """The private daemon's config: short timeouts, a fast watchdog, a high restart intensity, then o.overrides."""
    sections = {
        "daemon": {"state_dir": state_dir, "admin_port": 0, "grace_s": 5.0},
        "pool": {"engine": o.engine, "size": o.pool_size, "launch_timeout_s": 60.0},
        "jobs": {"timeout_s": o.timeout_s, "jitter_s": o.jitter_s, "max_queue": o.max_queue, "retries": 1,
                 "queue_timeout_s": o.queue_timeout_s},
        "watchdog": {"interval_s": 0.25, "heartbeat_timeout_s": o.heartbeat_timeout_s, "kill_grace_s": 0.25,
                     "close_timeout_s": 3.0},
        "restart": {"intensity": 1000, "period_s": 60.0, "backoff_base_s": 0.05, "backoff_max_s": 0.5},
    }
    for section, keys in o.overrides.items():
        sections.setdefault(section, {}).update(keys)
    return sections
