"""What the daemon hands its HTTP process (as JSON on its stdin: the token never reaches argv or environ)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

__all__ = ["HttpSettings"]


@dataclass(frozen=True)
class HttpSettings:
    """The HTTP process's whole configuration; `listen_fd` is the socket the daemon bound for it."""

    socket: str  # the daemon's client socket
    token: str | None
    listen_fd: int
    parent_pid: int  # the daemon: the HTTP process ends itself when it is gone
    results_ttl_s: float = 300.0
    max_results: int = 10000
    max_results_mb: int = 512
    max_body_kb: int = 1024
    max_inflight: int = 256
    idle_timeout_s: float = 60.0
    body_timeout_s: float = 10.0
    max_queue: int = 1000  # [jobs] max_queue, for /readyz
    daemon_idle_timeout_s: float = 300.0  # [daemon] idle_timeout_s: the links ping well within it
    serve_metrics: bool = True  # [metrics] port is 0: /metrics is served here
    log_level: str = "info"
    log_format: str = "text"

    @classmethod
    def from_config(cls, config, listen_fd: int, parent_pid: int) -> "HttpSettings":
        h = config.http
        return cls(socket=str(config.daemon.socket), token=config.daemon.token, listen_fd=listen_fd,
                   parent_pid=parent_pid, results_ttl_s=h.results_ttl_s, max_results=h.max_results,
                   max_results_mb=h.max_results_mb,
                   max_body_kb=h.max_body_kb, max_inflight=h.max_inflight, idle_timeout_s=h.idle_timeout_s,
                   body_timeout_s=h.body_timeout_s, max_queue=config.jobs.max_queue,
                   daemon_idle_timeout_s=config.daemon.idle_timeout_s, serve_metrics=config.metrics.port == 0,
                   log_level=config.daemon.log_level, log_format=config.daemon.log_format)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "HttpSettings":
        return cls(**json.loads(text))

    def __repr__(self) -> str:
        # The token never reaches a log, even through a repr.
        shown = dataclasses.replace(self, token=None if self.token is None else "***")
        return "HttpSettings(" + ", ".join(f"{f.name}={getattr(shown, f.name)!r}"
                                           for f in dataclasses.fields(self)) + ")"
