"""Foxden's configuration: a TOML file parsed strictly into frozen dataclasses."""
from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import re
import socket
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foxden.envconfig import env_overrides, merge_overrides

# Linux's sockaddr_un.sun_path is 108 bytes including the terminating NUL;
# a longer path fails only at bind() time, far from the config that caused it.
_MAX_SOCKET_PATH_BYTES = 107


class ConfigError(Exception):
    """A configuration that cannot be used; says which file and which key."""

    def __init__(self, message: str, key: str | None = None, path: Path | None = None):
        # All three go to Exception so the error survives pickling across actors.
        super().__init__(message, key, path)
        self.message = message
        self.key = key
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path is not None else self.message


@dataclass(frozen=True)
class DaemonConfig:
    """[daemon]: where state lives and how clients reach the daemon."""

    state_dir: Path
    admin_port: int
    token: str | None
    socket: Path
    tcp_port: int
    grace_s: float
    multi_host: bool
    log_level: str
    log_format: str
    nice: int  # the control plane's nice value, where the daemon may set it (see procs.raise_priority)
    key_file: Path | None = None  # the actor transport's key; None = a random one per start (foxden.transport)
    max_connections: int = 1024  # client connections at once; unauthenticated ones are shed first
    header_timeout_s: float = 10.0  # a frame (and, before it, the hello) must be complete within this
    idle_timeout_s: float = 300.0  # an authenticated connection with nothing in flight is closed after this
    max_inflight_per_connection: int = 256  # unanswered requests one connection may have


@dataclass(frozen=True)
class PoolConfig:
    """[pool]: which browser to run and how many of them."""

    engine: str
    executable_path: str | None
    driver: str  # auto | cdp | playwright (see foxden.drivers.driver_name)
    size: int
    headless: bool
    launch_timeout_s: float
    args: tuple[str, ...]
    min: int  # elastic bounds; both equal `size` unless set
    max: int
    prewarm: int
    idle_shrink_s: float
    memory_headroom_mb: int
    launch_concurrency: int  # browsers starting at once, at most
    browser_nice: int  # browsers run this many nice levels below the control plane


@dataclass(frozen=True)
class JobsConfig:
    """[jobs]: limits applied to each client job."""

    timeout_s: float
    jitter_s: float
    max_queue: int
    retries: int
    queue_timeout_s: float
    allow_private: bool
    max_result_mb: float  # a larger encoded result is answered result_too_large, measured in the browser actor
    allow_hosts: tuple[str, ...] = ()  # egress exceptions: CIDRs, host names, *.domain (foxden.egress.policy)
    deny_hosts: tuple[str, ...] = ()  # egress refusals; win over allow_hosts and apply even with allow_private
    max_timeout_s: float = 300.0  # a job asking for a longer timeout_s is rejected (bad_input)


@dataclass(frozen=True)
class WatchdogConfig:
    """[watchdog]: how hung browsers are detected and put down."""

    interval_s: float
    heartbeat_timeout_s: float
    kill_grace_s: float
    close_timeout_s: float


@dataclass(frozen=True)
class RestartConfig:
    """[restart]: the supervisor's restart policy, Erlang/OTP style."""

    policy: str
    strategy: str
    intensity: int
    period_s: float
    backoff_base_s: float
    backoff_max_s: float


@dataclass(frozen=True)
class MetricsConfig:
    """[metrics]: the optional metrics endpoint."""

    port: int


@dataclass(frozen=True)
class RecycleConfig:
    """[recycle]: when a healthy browser is retired and replaced (0 = that rule is off)."""

    max_jobs: int
    max_age_s: float
    max_pss_mb: int
    degrade_factor: float
    degrade_min_jobs: int


@dataclass(frozen=True)
class SessionsConfig:
    """[sessions]: how many named browser contexts may live, and for how long unused."""

    max: int = 256
    idle_s: float = 300.0
    persist: bool = True  # snapshot a session's storage state after each job; restore it on another browser


@dataclass(frozen=True)
class ClusterConfig:
    """[cluster]: this node's role in a cluster of foxdens (docs/cluster.md); standalone = one box, as before."""

    role: str = "standalone"  # standalone | leader | member
    bind: str = "127.0.0.1"  # the address this node's Thespian ports listen on
    leader: str = ""  # "HOST:PORT" of the leader's admin port: where a member joins
    key_file: Path | None = None  # the shared key sealing every frame between nodes (required off standalone)
    node: str = ""  # this node's name; "" = the host name
    heartbeat_s: float = 1.0  # a member's node supervisor reports this often
    dead_after_s: float = 5.0  # a node unheard this long is lost (leader), a leader unheard this long fences (member)


@dataclass(frozen=True)
class LeasesConfig:
    """[leases]: how many browsers may be leased at once, and for how long."""

    max: int = 2
    ttl_s: float = 600.0
    idle_s: float = 60.0
    max_ttl_s: float = 3600.0
    max_idle_s: float = 600.0


@dataclass(frozen=True)
class HttpConfig:
    """[http]: the optional HTTP API (foxden.http), a client of the daemon's own socket."""

    port: int = 0  # 0 = off
    host: str = "127.0.0.1"  # an address other than loopback requires [daemon] token
    results_ttl_s: float = 300.0  # a ?wait=false job's answer is kept this long after it arrives
    max_results: int = 10000  # ?wait=false jobs kept (pending or answered) at once
    max_results_mb: int = 512  # their answers' bytes; beyond it the oldest answers are forgotten first
    max_body_kb: int = 1024  # a larger request body is refused (413)
    max_inflight: int = 256  # requests to the daemon at once (<= [daemon] max_inflight_per_connection)
    idle_timeout_s: float = 60.0  # a connection without a complete request for this long is closed
    body_timeout_s: float = 10.0  # a request body must arrive within this


@dataclass(frozen=True)
class Config:
    """The whole configuration; `source` is the file it came from, if any."""

    daemon: DaemonConfig
    pool: PoolConfig
    jobs: JobsConfig
    watchdog: WatchdogConfig
    restart: RestartConfig
    metrics: MetricsConfig
    recycle: RecycleConfig
    sessions: SessionsConfig = SessionsConfig()
    leases: LeasesConfig = LeasesConfig()
    http: HttpConfig = HttpConfig()
    source: Path | None = None
    cluster: ClusterConfig = ClusterConfig()

    def replace(self, **sections: Any) -> Config:
        """Copy with sections swapped: pass a section object, or a dict of its
        fields to change, e.g. cfg.replace(pool={"size": 1}). Not validated."""
        changes = {
            name: dataclasses.replace(getattr(self, name), **value) if isinstance(value, dict) else value
            for name, value in sections.items()
        }
        return dataclasses.replace(self, **changes)


_SECTIONS: dict[str, type] = {
    "daemon": DaemonConfig,
    "pool": PoolConfig,
    "jobs": JobsConfig,
    "watchdog": WatchdogConfig,
    "restart": RestartConfig,
    "metrics": MetricsConfig,
    "recycle": RecycleConfig,
    "sessions": SessionsConfig,
    "cluster": ClusterConfig,
    "leases": LeasesConfig,
    "http": HttpConfig,
}

_PORT = (0, 65535)


def default_config(base_dir: Path | None = None) -> Config:
    """The configuration an empty file gives, relative paths under `base_dir` (default: cwd)."""
    return parse_config({}, base_dir=Path.cwd() if base_dir is None else Path(base_dir))


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a TOML file; relative paths in it are relative to its directory.

    FOXDEN_<SECTION>_<KEY> variables of `environ` (default os.environ) override the file's keys and
    are validated like them; an error about one names the variable (foxden.envconfig)."""
    # Absolute so errors and `source` stay meaningful after the daemon changes directory.
    path = Path(path).absolute()
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("no such file", path=path) from None
    except tomllib.TOMLDecodeError as e:
        # The decoder's message already ends with "(at line N, column M)".
        raise ConfigError(f"invalid TOML: {e}", path=path) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text: {e}", path=path) from None
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror or e}", path=path) from None
    return _with_env(data, os.environ if environ is None else environ, base_dir=path.parent, source=path)


def _with_env(data: dict, environ: Mapping[str, str], *, base_dir: Path, source: Path | None) -> Config:
    """parse_config of `data` overridden by the environment; errors about an overridden key name its variable."""
    try:
        overrides = env_overrides(environ, _SECTIONS)
    except ValueError as exc:
        raise ConfigError(str(exc), path=source) from None
    try:
        return parse_config(merge_overrides(data, overrides), base_dir=base_dir, source=source)
    except ConfigError as exc:
        culprit = next((o for o in overrides if exc.key == f"{o.section}.{o.key}"), None)
        if culprit is None:
            raise
        raise ConfigError(f"{culprit.variable}={_show(culprit.raw)} (overrides [{culprit.section}] "
                          f"{culprit.key}): {exc.message.split(': ', 1)[-1]}", exc.key, source) from None


def config_from_overrides(overrides: dict, *, base_dir: Path) -> Config:
    """Defaults plus `overrides` ({"pool": {"size": 1}}), validated like a file."""
    return parse_config(overrides, base_dir=base_dir)


def parse_config(data: dict, *, base_dir: Path, source: Path | None = None) -> Config:
    """Validate already-decoded TOML `data`; errors name `source` when given."""
    for name, value in data.items():
        if name not in _SECTIONS:
            raise ConfigError(f"unknown section [{name}]{_suggest(name, _SECTIONS, '[{}]')}", name, source)
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] must be a table, got {_show(value)}", name, source)
    base_dir = Path(base_dir).resolve()
    s = {name: _Section(name, data.get(name, {}), base_dir, source) for name in _SECTIONS}
    cluster = _cluster(s["cluster"])
    return Config(
        daemon=_daemon(s["daemon"]),
        pool=_pool(s["pool"], least=0 if cluster.role == "leader" else 1),
        jobs=_jobs(s["jobs"]),
        watchdog=_watchdog(s["watchdog"]),
        restart=_restart(s["restart"]),
        metrics=MetricsConfig(port=s["metrics"].integer("port", 0, *_PORT)),
        recycle=_recycle(s["recycle"]),
        sessions=SessionsConfig(max=s["sessions"].integer("max", 256, 1),
                                idle_s=s["sessions"].number("idle_s", 300.0, gt=0),
                                persist=s["sessions"].boolean("persist", True)),
        leases=_leases(s["leases"]),
        http=_http(s["http"], s["daemon"]),
        source=source,
        cluster=cluster,
    )


_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _cluster(s: _Section) -> ClusterConfig:
    role = s.choice("role", "standalone", ("standalone", "leader", "member"))
    node = s.string("node", "") or socket.gethostname().split(".")[0]
    if not _NODE_NAME.fullmatch(node):
        s.fail("node", f"{_show(node)} is not a node name: letters, digits, '.', '_' and '-', at most 63, "
                       "starting with a letter or digit")
    leader = s.string("leader", "")
    if role == "member" and not _host_port(leader):
        s.fail("leader", f"a member needs the leader's admin address as \"HOST:PORT\", got {_show(leader)}")
    if leader and not _host_port(leader):
        s.fail("leader", f"must be \"HOST:PORT\" (PORT 1..65535), got {_show(leader)}")
    key_file = _key_file(s)
    if role != "standalone" and key_file is None:
        s.fail("key_file", f"a {role} needs the cluster's shared key: a file of >= 32 bytes, mode 0600, "
                           "the same on every node (openssl rand -hex 32 > cluster.key)")
    bind = s.string("bind", "127.0.0.1")
    try:
        ipaddress.IPv4Address(bind)
    except ValueError:
        s.fail("bind", f"must be an IPv4 address (Thespian's convention is IPv4), got {_show(bind)}")
    heartbeat = s.number("heartbeat_s", 1.0, gt=0, le=60)
    dead_after = s.number("dead_after_s", 5.0, gt=0, le=3600)
    if dead_after < 2 * heartbeat:
        s.fail("dead_after_s", f"must be at least 2 x heartbeat_s ({2 * heartbeat:g}), got {dead_after:g}: "
                               "one late heartbeat must not lose a node")
    return ClusterConfig(role=role, bind=bind, leader=leader, key_file=key_file, node=node,
                         heartbeat_s=heartbeat, dead_after_s=dead_after)


def _host_port(value: str) -> tuple[str, int] | None:
    """("HOST", PORT) from "HOST:PORT", or None."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def leader_address(config: Config) -> tuple[str, int]:
    """The [cluster] leader as (host, port); only for a config whose role is member."""
    found = _host_port(config.cluster.leader)
    assert found is not None, "validated by parse_config"
    return found


def _leases(s: _Section) -> LeasesConfig:
    max_ttl_s, max_idle_s = s.number("max_ttl_s", 3600.0, gt=0), s.number("max_idle_s", 600.0, gt=0)
    ttl_s = s.number("ttl_s", min(600.0, max_ttl_s), gt=0)
    idle_s = s.number("idle_s", min(60.0, max_idle_s), gt=0)
    if ttl_s > max_ttl_s:
        s.fail("ttl_s", f"{ttl_s:g} is more than max_ttl_s ({max_ttl_s:g})")
    if idle_s > max_idle_s:
        s.fail("idle_s", f"{idle_s:g} is more than max_idle_s ({max_idle_s:g})")
    return LeasesConfig(max=s.integer("max", 2, 0), ttl_s=ttl_s, idle_s=idle_s, max_ttl_s=max_ttl_s,
                        max_idle_s=max_idle_s)
def _http(s: _Section, daemon: _Section) -> HttpConfig:
    host = s.string("host", "127.0.0.1")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        s.fail("host", f"must be an IP address (e.g. \"127.0.0.1\", \"0.0.0.0\", \"::\"), got {_show(host)}")
    if not loopback and not daemon.string("token", ""):
        s.fail("host", f"{_show(host)} needs [daemon] token: without one, anyone who can reach {host} could "
                       "submit jobs; set [daemon] token, or host = \"127.0.0.1\"")
    per_connection = daemon.integer("max_inflight_per_connection", 256, 1)
    # The default follows the daemon's cap, so lowering that cap alone is never a config error.
    inflight = s.integer("max_inflight", min(256, per_connection), 1)
    if inflight > per_connection:
        s.fail("max_inflight", f"must be <= [daemon] max_inflight_per_connection ({per_connection}): the HTTP "
                               f"API sends every request over one connection to the daemon, got {inflight}")
    return HttpConfig(
        port=s.integer("port", 0, *_PORT),
        host=host,
        results_ttl_s=s.number("results_ttl_s", 300.0, gt=0),
        max_results=s.integer("max_results", 10000, 1),
        max_results_mb=s.integer("max_results_mb", 512, 1),
        # At most the wire's own frame limit: a larger job could not be sent to the daemon anyway.
        max_body_kb=s.integer("max_body_kb", 1024, 1, 1024),
        max_inflight=inflight,
        idle_timeout_s=s.number("idle_timeout_s", 60.0, gt=0),
        body_timeout_s=s.number("body_timeout_s", 10.0, gt=0),
    )


def _daemon(s: _Section) -> DaemonConfig:
    state_dir = s.path("state_dir", ".foxden")
    if state_dir is None:
        s.fail("state_dir", "must not be empty")
    socket = s.path("socket", "") or state_dir / "foxden.sock"
    size = len(os.fsencode(socket))
    if size > _MAX_SOCKET_PATH_BYTES:
        s.fail("socket", f"{_show(str(socket))} is {size} bytes, more than the {_MAX_SOCKET_PATH_BYTES} "
                         "an AF_UNIX socket path allows; use a shorter state_dir or set socket explicitly")
    token, tcp_port = s.string("token", "") or None, s.integer("tcp_port", 0, *_PORT)
    if tcp_port and token is None:
        # The Unix socket is owner-only; a TCP port on 127.0.0.1 is open to every local user.
        s.fail("tcp_port", f"{tcp_port} needs [daemon] token: without one, every local user could "
                           "submit jobs on 127.0.0.1; set [daemon] token, or tcp_port = 0 (the Unix socket only)")
    return DaemonConfig(
        state_dir=state_dir,
        admin_port=s.integer("admin_port", 1900, *_PORT),
        token=token,
        socket=socket,
        tcp_port=tcp_port,
        grace_s=s.number("grace_s", 10.0, ge=0),
        multi_host=s.boolean("multi_host", False),
        log_level=s.choice("log_level", "info", ("debug", "info", "warning", "error")),
        log_format=s.choice("log_format", "text", ("text", "json")),
        nice=s.integer("nice", -10, -20, 19),
        key_file=_key_file(s),
        max_connections=s.integer("max_connections", 1024, 1),
        header_timeout_s=s.number("header_timeout_s", 10.0, gt=0),
        idle_timeout_s=s.number("idle_timeout_s", 300.0, gt=0),
        max_inflight_per_connection=s.integer("max_inflight_per_connection", 256, 1),
    )


def _key_file(s: _Section) -> Path | None:
    # Absolute but not symlink-resolved: the daemon opens it O_NOFOLLOW and
    # checks its owner and mode (foxden.transport.mac.read_key_file).
    raw = s.string("key_file", "")
    return Path(os.path.normpath(s.base_dir / Path(raw).expanduser())) if raw else None


def _pool(s: _Section, least: int = 1) -> PoolConfig:
    size = s.integer("size", 2, least, 512)  # 0 only on a cluster's leader: it may run no browser of its own
    # Unset bounds mean a fixed pool of `size`; set ones make it elastic.
    lo = s.integer("min", 0, 0, 512) or None
    hi = s.integer("max", 0, 0, 512) or None
    lo = lo if lo is not None else min(size, hi or size)
    hi = hi if hi is not None else max(size, lo)
    if lo > hi:
        s.fail("min", f"must be <= max ({hi}), got {lo}")
    return PoolConfig(
        engine=s.choice("engine", "auto", ("auto", "chromium", "firefox", "camoufox")),
        executable_path=s.executable("executable_path"),
        driver=s.choice("driver", "auto", ("auto", "cdp", "playwright")),
        size=min(max(size, lo), hi),
        headless=s.boolean("headless", True),
        launch_timeout_s=s.number("launch_timeout_s", 30.0, gt=0),
        args=s.strings("args"),
        min=lo,
        max=hi,
        prewarm=s.integer("prewarm", 1, 0, 64),
        idle_shrink_s=s.number("idle_shrink_s", 60.0, gt=0),
        memory_headroom_mb=s.integer("memory_headroom_mb", 1024, 0),
        launch_concurrency=s.integer("launch_concurrency", 0, 0, 64) or max(2, os.cpu_count() or 2),
        browser_nice=s.integer("browser_nice", 10, 0, 19),
    )


def _recycle(s: _Section) -> RecycleConfig:
    return RecycleConfig(
        max_jobs=s.integer("max_jobs", 0, 0),
        max_age_s=s.number("max_age_s", 0.0, ge=0),
        max_pss_mb=s.integer("max_pss_mb", 0, 0),
        degrade_factor=s.number("degrade_factor", 4.0, ge=0),
        degrade_min_jobs=s.integer("degrade_min_jobs", 20, 1),
    )


def _jobs(s: _Section) -> JobsConfig:
    longest = s.number("max_timeout_s", 300.0, gt=0)
    timeout = s.number("timeout_s", 30.0, gt=0)
    if timeout > longest:
        s.fail("timeout_s", f"must be <= max_timeout_s ({longest:g}), got {_show(timeout)}")
    return JobsConfig(
        timeout_s=timeout,
        jitter_s=s.number("jitter_s", 2.0, ge=0),
        max_queue=s.integer("max_queue", 1000, 1),
        retries=s.integer("retries", 1, 0, 10),
        queue_timeout_s=s.number("queue_timeout_s", 300.0, gt=0),
        allow_private=s.boolean("allow_private", True),
        allow_hosts=s.host_rules("allow_hosts"),
        deny_hosts=s.host_rules("deny_hosts"),
        # At most 48: the answer must fit the client's 64 MiB frame with its envelope.
        max_result_mb=s.number("max_result_mb", 16.0, gt=0, le=48),
        max_timeout_s=longest,
    )


def _watchdog(s: _Section) -> WatchdogConfig:
    interval = s.number("interval_s", 1.0, gt=0, le=60)
    heartbeat = s.number("heartbeat_timeout_s", 5.0, gt=0)
    # The watchdog only looks once per interval, so a shorter timeout would
    # condemn healthy browsers whose heartbeat simply had not been checked yet.
    if heartbeat <= interval:
        s.fail("heartbeat_timeout_s", f"must be greater than interval_s ({interval}), got {_show(heartbeat)}")
    return WatchdogConfig(
        interval_s=interval,
        heartbeat_timeout_s=heartbeat,
        kill_grace_s=s.number("kill_grace_s", 1.0, ge=0),
        close_timeout_s=s.number("close_timeout_s", 5.0, gt=0),
    )


def _restart(s: _Section) -> RestartConfig:
    base = s.number("backoff_base_s", 0.1, ge=0)
    cap = s.number("backoff_max_s", 5.0, ge=0)
    if cap < base:
        s.fail("backoff_max_s", f"must be >= backoff_base_s ({base}), got {_show(cap)}")
    return RestartConfig(
        policy=s.choice("policy", "permanent", ("permanent", "transient", "temporary")),
        strategy=s.choice("strategy", "one_for_one", ("one_for_one", "one_for_all", "rest_for_one")),
        intensity=s.integer("intensity", 10, 0),
        period_s=s.number("period_s", 60.0, gt=0),
        backoff_base_s=base,
        backoff_max_s=cap,
    )


class _Section:
    """Typed, range-checked access to one table; rejects keys it does not know."""

    def __init__(self, name: str, table: dict, base_dir: Path, source: Path | None):
        self.name, self.table, self.base_dir, self.source = name, table, base_dir, source
        known = [f.name for f in dataclasses.fields(_SECTIONS[name])]
        for key in table:
            if key not in known:
                self.fail(key, f"unknown key{_suggest(key, known, '{}')}")

    def fail(self, key: str, detail: str) -> None:
        raise ConfigError(f"[{self.name}] {key}: {detail}", f"{self.name}.{key}", self.source)

    def integer(self, key: str, default: int, lo: int, hi: int | None = None) -> int:
        value = self.table.get(key, default)
        # bool is an int subclass in Python, but `true` is never a sensible count.
        if not isinstance(value, int) or isinstance(value, bool) or value < lo or (hi is not None and value > hi):
            rule = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
            self.fail(key, f"must be an integer {rule}, got {_show(value)}")
        return value

    def number(self, key: str, default: float, *, gt: float | None = None,
               ge: float | None = None, le: float | None = None) -> float:
        value = self.table.get(key, default)
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and (gt is None or value > gt) and (ge is None or value >= ge) and (le is None or value <= le))
        if not ok:
            rules = [f"{op} {bound:g}" for op, bound in ((">", gt), (">=", ge), ("<=", le)) if bound is not None]
            self.fail(key, f"must be a number {' and '.join(rules)}, got {_show(value)}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {_show(value)}")
        return value

    def string(self, key: str, default: str) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str):
            self.fail(key, f"must be a string, got {_show(value)}")
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str) or value not in choices:
            hint = _suggest(value, choices, '"{}"') if isinstance(value, str) else ""
            listed = ", ".join(f'"{c}"' for c in choices)
            self.fail(key, f"must be one of {listed}, got {_show(value)}{hint}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, f"must be a list of strings, got {_show(value)}")
        return tuple(value)

    def host_rules(self, key: str) -> tuple[str, ...]:
        """A list of egress rules (addresses, CIDRs, host names, *.domain), each checked."""
        from foxden.egress.policy import parse_rules

        rules = self.strings(key)
        try:
            parse_rules(rules)
        except ValueError as exc:
            self.fail(key, f"{exc}; expected entries like \"10.0.0.0/8\", \"api.example.com\" or \"*.example.com\"")
        return rules

    def path(self, key: str, default: str) -> Path | None:
        """An absolute, symlink-resolved path, or None for the empty string."""
        raw = self.string(key, default)
        return (self.base_dir / Path(raw).expanduser()).resolve() if raw else None

    def executable(self, key: str) -> str | None:
        raw = self.string(key, "")
        if not raw:
            return None
        # Absolute but not symlink-resolved: some launchers are symlinks to
        # wrappers or multi-call binaries that behave by the name they were run as.
        return os.path.normpath(self.base_dir / Path(raw).expanduser())


def _suggest(word: str, known: Iterable[str], fmt: str) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {fmt.format(close[0])}?)" if close else ""


def _show(value: Any) -> str:
    """A value as it would be written in TOML, so users recognise what they typed."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)
