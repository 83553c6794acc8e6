"""`foxden run`: start the actor system, wire the actors, wait for a signal, stop cleanly."""
from __future__ import annotations

import errno
import fcntl
import logging
import gc
import os
import signal
import socket
import sys
import time
import uuid

import psutil

from foxden import fsafety, procs
from foxden.config import Config
from foxden.logs import log_defs, setup_logging
from foxden.protocols.messages import (
    CloseGateway,
    Drain,
    Drained,
    Initialized,
    InitAdmin,
    InitCluster,
    InitDispatcher,
    InitGateway,
    InitSupervisor,
)

log = logging.getLogger("foxden.daemon")

EXIT_OK, EXIT_ERROR, EXIT_CONFIG = 0, 1, 2
ACTORS = {
    "supervisor": "foxden.supervisor.actor.SupervisorActor",
    "dispatcher": "foxden.actors.dispatcher.DispatcherActor",
    "admin": "foxden.actors.admin.AdminActor",
    "gateway": "foxden.actors.gateway.GatewayActor",
}


CLUSTER_ACTOR = "foxden.cluster.leader.ClusterActor"


def cluster_capabilities(config: Config) -> dict:
    """The actor system's capabilities for its [cluster] role: a member names its node and joins the leader."""
    cluster = config.cluster
    if cluster.role == "member":
        from foxden.config import leader_address

        host, port = leader_address(config)
        return {"Convention Address.IPv4": (host, port), "foxden-node": cluster.node, "foxden-role": "member"}
    if cluster.role == "leader":
        return {"foxden-role": "leader"}
    return {}


class StartupError(Exception):
    """The daemon could not start; the message says why and what to do."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR):
        super().__init__(message)
        self.exit_code = exit_code


def instance_marker(config: Config) -> str:
    """This daemon instance's marker prefix: "<state-tag>:<instance>/"."""
    current = os.environ.get(procs.MARKER_ENV, "")
    tag = procs.state_tag(config.daemon.state_dir)
    if current.startswith(tag + ":") and current.endswith("/daemon"):
        return current[: -len("daemon")]
    return f"{tag}:{uuid.uuid4().hex[:10]}/"


def reexec_marked(config: Config) -> None:
    """Re-exec this process with the instance marker in its initial environment.

    Thespian forks the actor processes from us; a forked child's
    /proc/PID/environ is its parent's *initial* environment, so only a marker
    that was there at exec time marks the actors too (os.environ changes are
    invisible to psutil)."""
    marker = instance_marker(config) + "daemon"
    if os.environ.get(procs.MARKER_ENV) == marker:
        return
    env = dict(os.environ, **{procs.MARKER_ENV: marker})
    os.execve(sys.executable, [sys.executable, "-m", "foxden", *sys.argv[1:]], env)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def transport_key(config: Config) -> bytes:
    """The actor transport's key: [cluster] key_file's on a cluster node, else [daemon] key_file's, or a new
    random one (never written anywhere)."""
    from foxden import transport

    if config.cluster.role != "standalone":
        try:
            return transport.read_key_file(config.cluster.key_file)
        except transport.KeyFileError as exc:
            raise StartupError(f"[cluster] key_file: {exc}", EXIT_CONFIG) from None
    if config.daemon.key_file is None:
        if config.daemon.multi_host:
            log.warning("[daemon] multi_host without [daemon] key_file: this instance's key is random, so no "
                        "other host can send to it; give every host the same key_file")
        return transport.new_key()
    try:
        return transport.read_key_file(config.daemon.key_file)
    except transport.KeyFileError as exc:
        raise StartupError(str(exc), EXIT_CONFIG) from None


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As Thespian binds it: a port whose last connections are in TIME_WAIT
        # (a daemon restarted at once) is free; one with a listener is not.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(f"[daemon] admin_port {port} is in use (another foxden or Thespian system?); "
                                   "pick another port, or 0 for a free one") from None
            raise


class Daemon:
    """One running daemon: its actor system, its actors, its pid file."""

    def __init__(self, config: Config):
        self.config = config
        self.marker = instance_marker(config)
        self.instance = self.marker.split(":", 1)[1].rstrip("/")
        self.asys = None
        self.addrs: dict = {}
        self.pids: dict[str, int] = {}
        self.metrics = None
        self.http = None  # foxden.http.keeper.HttpKeeper when [http] port is set
        self.exit_code = EXIT_OK
        self.stop_requested = False
        self.lock_fd: int | None = None
        self.port = 0
        self.next_registration = 0.0  # a member: when to check its node actor again (_rejoin_if_orphaned)
        self.registrations = 0
        self.state_dir = str(config.daemon.state_dir)
        self.pid_path = os.path.join(self.state_dir, procs.PID_FILE)

    # --- start -----------------------------------------------------------------

    def start(self) -> None:
        # The state dir first: nothing is read, written or killed on behalf
        # of a state dir another user could change.
        self._check_paths()
        self._lock_pid_file()
        self._reap_earlier_instances()
        try:
            fsafety.ensure_private_subdir(self.state_dir, procs.BROWSERS)
        except fsafety.UnsafePath as exc:
            raise StartupError(str(exc), EXIT_CONFIG) from None
        choice = self._choose_engine()
        # Before anything is forked: every actor inherits it. The browsers run
        # [pool] browser_nice levels below, so that the watchdog, heartbeats
        # and status never wait for a CPU behind fifty renderers.
        nice = procs.set_nice(self.config.daemon.nice)
        if nice != self.config.daemon.nice:
            log.info("control plane at nice %d: nice %d needs root, CAP_SYS_NICE or systemd's Nice=", nice,
                     self.config.daemon.nice)
        port = self.config.daemon.admin_port or free_port()
        _check_port_free(port)
        procs.become_subreaper()
        os.environ.setdefault("THESPLOG_FILE", os.path.join(self.state_dir, "thespian.log"))
        self.port = port
        if self.config.cluster.role == "member":
            from foxden.cluster.member import Local, set_local

            # Before the actor system forks its admin: the node actor the
            # leader places here finds the member's own settings in it.
            set_local(Local(self.config, choice, self.marker, os.getpid()))
        self._start_actor_system(port)
        if self.config.cluster.role == "member":
            self.next_registration = time.monotonic() + 2 * self.config.cluster.dead_after_s  # the first one is on
            log.info("ready: member node %s, %s browsers of %s once the leader at %s places its node, admin "
                     "%s:%d, pid %d", self.config.cluster.node, self.config.pool.size, choice.name,
                     self.config.cluster.leader, self.config.cluster.bind, port, os.getpid())
            return
        reply = self._create_actors(choice)
        if self.config.metrics.port:
            self._start_metrics()
        if self.config.http.port:
            self._start_http()
        log.info("ready: %s browsers of %s, socket %s, admin port %d, pid %d%s", self.config.pool.size, choice.name,
                 reply.detail["socket"], port, os.getpid(),
                 f", cluster leader (node {self.config.cluster.node})" if self.config.cluster.role == "leader" else "")

    def _choose_engine(self):
        """The engine and driver to run (exit 2 when none fits), logged with the sandbox and egress set-up."""
        from foxden import engines
        from foxden.drivers import driver_name

        try:
            choice = engines.resolve_engine(self.config.pool.engine, self.config.pool.executable_path)
        except engines.EngineUnavailable as exc:
            raise StartupError(str(exc), EXIT_CONFIG) from None
        driver = driver_name(choice.name, self.config.pool.driver)
        if driver == "cdp" and choice.name != "chromium":
            raise StartupError(f"[pool] driver: cdp drives chromium only, and the engine is {choice.name}"
                               " (use driver = \"auto\" or \"playwright\")", EXIT_CONFIG)
        log.info("engine: %s (%s), driver %s", choice.name, choice.reason, driver)
        if choice.name == "chromium":
            log.info("chromium sandbox: %s", engines.sandbox_note())
        jobs = self.config.jobs
        if not jobs.allow_private or jobs.deny_hosts:
            log.info("egress: every browser connects through a loopback proxy of its own (allow_private = %s,"
                     " %d allow_hosts, %d deny_hosts)", str(jobs.allow_private).lower(), len(jobs.allow_hosts),
                     len(jobs.deny_hosts))
        return choice

    def _start_actor_system(self, port: int) -> None:
        from thespian.actors import ActorSystem

        from foxden import transport

        # Every frame between our processes is sealed with this key, which
        # every process forked from here inherits in memory.
        cluster = self.config.cluster
        transport.install(transport_key(self.config), config=self.config,
                          loopback_only=not self.config.daemon.multi_host,
                          bind=None if cluster.role == "standalone" else cluster.bind)
        # Every actor process is forked from here (through Thespian's admin).
        # Frozen, the objects we have now are never visited by an actor's
        # garbage collector: their pages stay shared, and an actor's first
        # full collection does not page in every extension module it has
        # inherited (it did: +0.4 MB of RssFile each in the dispatcher and
        # the gateway, once, around their 2,000th and 4,000th job).
        gc.collect()
        gc.freeze()
        self.asys = ActorSystem(
            "multiprocTCPBase",
            capabilities={"Admin Port": port, "foxden": self.instance, **cluster_capabilities(self.config)},
            logDefs=log_defs(self.config),
            transientUnique=True,
        )

    def _create_actors(self, choice):
        """Create and initialise the four actors (five on a leader); the gateway's Initialized reply."""
        role = self.config.cluster.role
        for name, cls in ACTORS.items():
            if name == "supervisor" and role == "leader" and self.config.pool.size == 0:
                continue  # a leader without browsers of its own
            self.addrs[name] = self.asys.createActor(cls)
        a = self.addrs
        # On a leader the cluster actor stands between the dispatcher and every
        # pool, its own included (docs/cluster.md); standalone, nothing changes.
        pools = a.get("supervisor")
        if role == "leader":
            from foxden.cluster.leader import GLOBAL_NAME

            a["cluster"] = pools = self.asys.createActor(CLUSTER_ACTOR, globalName=GLOBAL_NAME)
        if "supervisor" in a:
            self._init("supervisor", InitSupervisor(self.config, choice, self.marker.rstrip("/"),
                                                    a["dispatcher"] if role != "leader" else a["cluster"],
                                                    os.getpid()))
        if role == "leader":
            self._init("cluster", InitCluster(self.config, a["dispatcher"], a.get("supervisor"),
                                              f"{self.config.cluster.bind}:{self.port}"))
        self._init("dispatcher", InitDispatcher(self.config, pools, choice.name))
        self._init("admin", InitAdmin(self.config, self.instance, pools, a["dispatcher"]))
        reply = self._init("gateway", InitGateway(self.config, self.instance, a["dispatcher"], a["admin"],
                                                   a.get("supervisor")))
        if "error" in reply.detail:
            raise StartupError(f"gateway cannot listen on {self.config.daemon.socket}: {reply.detail['error']}")
        return reply

    def _start_metrics(self) -> None:
        from foxden.client import Client
        from foxden.metrics import start_metrics_server

        daemon = self.config.daemon

        def fetch_status() -> dict:
            # The same path as `foxden status`: values are derived per scrape, never kept twice.
            with Client(daemon.socket, token=daemon.token, timeout=10) as client:
                return client.status()

        try:
            self.metrics = start_metrics_server(self.config.metrics.port, fetch_status)
        except OSError as exc:
            raise StartupError(f"[metrics] port {self.config.metrics.port}: cannot listen on 127.0.0.1: "
                               f"{exc.strerror or exc}") from None
        log.info("metrics on http://127.0.0.1:%d/metrics", self.metrics.port)

    def _start_http(self) -> None:
        from foxden.http.keeper import HttpKeeper

        keeper = HttpKeeper(self.config)
        try:
            keeper.start()
        except OSError as exc:
            raise StartupError(f"[http] port {self.config.http.port}: cannot listen on {self.config.http.host}: "
                               f"{exc.strerror or exc}") from None
        self.http = keeper
        log.info("http API on http://%s:%d/ (pid %d)", self.config.http.host, keeper.port, keeper.proc.pid)

    def _init(self, role: str, msg) -> Initialized:
        reply = self.asys.ask(self.addrs[role], msg, 30)
        if not isinstance(reply, Initialized):
            raise StartupError(f"the {role} actor did not start (answered {reply!r})")
        self.pids[role] = reply.pid
        if role == "supervisor":
            try:
                self.pids["thespian-admin"] = psutil.Process(reply.pid).ppid()
            except psutil.Error:
                pass
        return reply

    def _reap_earlier_instances(self) -> None:
        """Kill what an earlier daemon of this state dir left behind (SIGKILL, OOM).

        Its processes carry the same state tag in their marker; we hold the
        pid-file lock, so no live daemon owns them."""
        found: list[psutil.Process] = []

        def log_found(batch: list[psutil.Process]) -> None:
            # What is left may still fork (a supervisor restarting a browser),
            # so kill_marked scans again until nothing is found; each batch is logged.
            for proc in batch:
                log.warning("reaping process %s left by an earlier instance", procs.describe(proc))
            found.extend(batch)

        survivors = procs.end_instance(procs.state_tag(self.state_dir) + ":", self.state_dir,
                                       timeout=5.0, reap=True, on_found=log_found)
        if found:
            log.warning("reaped %d processes of an earlier instance%s", len(found) - len(survivors),
                        f"; {len(survivors)} survived SIGKILL" if survivors else "")

    def _check_paths(self) -> None:
        """The state dir (made 0700) and the socket's dir must be ours alone: exit 2 naming the path if not."""
        try:
            fsafety.ensure_state_dir(self.state_dir)
            fsafety.check_socket_path(self.config.daemon.socket)
        except fsafety.UnsafePath as exc:
            raise StartupError(str(exc), EXIT_CONFIG) from None

    def _lock_pid_file(self) -> None:
        try:
            # O_NOFOLLOW: a symlink planted here must not get its target truncated.
            fd = fsafety.open_nofollow(self.pid_path, os.O_RDWR | os.O_CREAT, 0o644)
        except fsafety.UnsafePath as exc:
            raise StartupError(str(exc), EXIT_CONFIG) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise StartupError(f"another foxden daemon (pid {other or '?'}) is running on {self.state_dir}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.lock_fd = fd
        # The lock must die with this process alone. Thespian forks every actor,
        # and a forked child shares the locked file description: a daemon
        # SIGKILLed while its actors are hung left the lock held by them, and the
        # next daemon refused to start ("another daemon is running", its pid
        # dead) instead of reaping them.
        os.register_at_fork(after_in_child=self._drop_inherited_lock)

    def _drop_inherited_lock(self) -> None:
        if self.lock_fd is not None:
            try:
                os.close(self.lock_fd)
            except OSError:
                pass
            self.lock_fd = None

    # --- run -------------------------------------------------------------------

    def wait(self) -> None:
        """Block until SIGTERM/SIGINT, reaping orphans that re-parent to us."""
        def on_signal(signum, frame):
            self.stop_requested = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        watch = procs.ExitWatch(self.pids)
        try:
            self._watch(watch)
        finally:
            watch.close()

    def _watch(self, watch: procs.ExitWatch) -> None:
        while not self.stop_requested:
            # A signal does not cut the wait short (PEP 475), so the timeout
            # bounds how long a stop request waits to be seen.
            dead = watch.wait(0.2)
            procs.reap_children()
            if self.config.cluster.role == "member":
                self._rejoin_if_orphaned()
            if self.http is not None:
                self.http.tick()  # a dead HTTP process is restarted: it holds no job (the daemon does)
            if dead:
                # Without its supervisor (or the dispatcher that holds the
                # jobs) nothing guarantees cleanup or answers any more. Like
                # an OTP supervisor whose intensity is spent, we stop and
                # exit non-zero; the service manager restarts us, and the
                # next start reaps anything that escaped.
                log.critical("the %s process (pid %s) died; stopping everything and exiting %d so that "
                             "the service manager restarts foxden", ", ".join(dead),
                             ", ".join(str(self.pids[r]) for r in dead), EXIT_ERROR)
                self.exit_code = EXIT_ERROR
                self.abort()
                return

    def _rejoin_if_orphaned(self) -> None:
        """A member without a welcomed node actor registers with the leader again (a restarted leader)."""
        from foxden.cluster import member

        now = time.monotonic()
        if now < self.next_registration:
            return
        self.next_registration = now + self.config.cluster.dead_after_s
        if member.needs_registration(member.read_owner(self.state_dir), procs.pid_alive):
            self.registrations += 1
            self.asys.updateCapability("foxden-registration", self.registrations)  # Thespian re-registers

    # --- stop ------------------------------------------------------------------

    def stop(self) -> None:
        """Drain jobs, stop the pool, close the gateway, shut Thespian down, sweep. Idempotent."""
        if self.asys is None:
            self._release()
            return
        grace = self.config.daemon.grace_s
        try:
            if "dispatcher" in self.addrs and "gateway" in self.addrs:
                bound = grace + self.config.watchdog.close_timeout_s + 15
                reply = self.asys.ask(self.addrs["dispatcher"], Drain(grace), bound)
                if not isinstance(reply, Drained):
                    log.error("drain did not finish in %.0fs (%r); killing what is left", bound, reply)
                self.asys.ask(self.addrs["gateway"], CloseGateway(), 5)
        except Exception:
            log.exception("error while draining")
        self._stop_http()  # after the gateway flushed every answer: HTTP requests in flight got theirs
        try:
            self.asys.shutdown()
        except Exception:
            log.exception("error while shutting the actor system down")
        self.asys = None
        self._sweep()
        self._release()
        log.info("stopped")

    def abort(self) -> None:
        """Stop without draining: kill every process of this instance, then release."""
        self.asys = None  # its processes are about to be killed; shutdown() would wait on them
        self._sweep()
        self._release()

    def _sweep(self) -> None:
        """Kill anything of this instance that outlived the actor system."""
        left: list[psutil.Process] = []
        survivors = procs.end_instance(self.marker, self.state_dir, also=procs.descendants(os.getpid()),
                                       timeout=5.0, reap=True, on_found=left.extend)
        if left:
            log.info("swept %d leftover processes: %s", len(left), "; ".join(procs.describe(p) for p in left))
        if survivors:
            log.error("processes survived the sweep: %s", [p.pid for p in survivors])

    def _stop_http(self) -> None:
        if self.http is not None:
            try:
                self.http.stop()
            except Exception:
                log.exception("error while stopping the HTTP process")
            self.http = None

    def _release(self) -> None:
        self._stop_http()
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        if self.lock_fd is not None:
            try:
                os.unlink(self.pid_path)
            except OSError:
                pass
            os.close(self.lock_fd)
            self.lock_fd = None


def run(config: Config) -> int:
    """Run the daemon in the foreground until a signal; returns the exit code."""
    setup_logging(config)
    daemon = Daemon(config)
    try:
        daemon.start()
    except StartupError as exc:
        log.error("%s", exc)
        daemon.stop()
        return exc.exit_code
    except BaseException:
        log.exception("startup failed")
        daemon.stop()
        return EXIT_ERROR
    try:
        daemon.wait()
    finally:
        daemon.stop()
    return daemon.exit_code
