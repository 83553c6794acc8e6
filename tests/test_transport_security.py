"""The actor transport as an attacker meets it: sealed frames first, then an exact allow-list, then init-once."""
from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from foxden import procs
from foxden.transport import mac, refusals, unpickle
from foxden.transport.patch import FrameRefused, SealedSerializer

# --- frames and gadgets, as an outsider would build them ----------------------


def dotted_gadget(canary: Path, module: str = "foxden.config", name: str = "os.system") -> bytes:
    """A protocol-4 pickle that, unpickled by a walking find_class, runs `touch canary`.

    STACK_GLOBAL(module, name) resolves `name` attribute by attribute from
    an allowed module (foxden.config imports os), then REDUCE calls it."""
    def text(s: str) -> bytes:
        data = s.encode()
        return b"\x8c" + bytes([len(data)]) + data  # SHORT_BINUNICODE

    return (b"\x80\x04" + text(module) + text(name) + b"\x93"  # PROTO 4, STACK_GLOBAL
            + text(f"touch {canary}") + b"\x85" + b"R" + b".")  # TUPLE1, REDUCE, STOP


def global_ref(module: str, name: str) -> bytes:
    """A protocol-4 pickle that only names module.name (STACK_GLOBAL, STOP)."""
    return dotted_gadget(Path("unused"), module, name).split(b"\x93")[0] + b"\x93."


def frame(payload: bytes, key: bytes | None = None) -> bytes:
    """Thespian's framing (b"<length>>" + payload), sealed when a key is given."""
    if key is not None:
        payload = mac.seal(key, payload)
    return f"{len(payload)}>".encode() + payload


def envelope(message, reply_port: int) -> bytes:
    """A Thespian (sender, message) pickle whose sender is our own listener."""
    from thespian.actors import ActorAddress
    from thespian.system.transport.IPBase import TCPv4ActorAddress

    return pickle.dumps((ActorAddress(TCPv4ActorAddress("127.0.0.1", reply_port, external=True)), message))


def decode_frames(data: bytes) -> list:
    """What came back on a socket, decoded with the strict unpickler (sealed or not)."""
    out = []
    while b">" in data:
        size, _, rest = data.partition(b">")
        try:
            n = int(size)
        except ValueError:
            break
        payload, data = rest[:n], rest[n:]
        for candidate in (payload[mac.OVERHEAD:], payload):
            try:
                out.append(unpickle.loads(candidate))
                break
            except Exception:  # noqa: BLE001 - not this layout; try the other
                continue
    return out


def read_all(sock: socket.socket, wait_s: float) -> bytes:
    """Everything the peer sends until it closes or wait_s passes without data."""
    sock.settimeout(wait_s)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except OSError:
        pass
    return got


def send_and_read(port: int, data: bytes, wait_s: float = 3.0) -> bytes:
    """Connect, send one frame, read whatever comes back."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(data)
            return read_all(s, wait_s)
    except OSError:
        return b""


class ReplyListener:
    """A port an attacker gives as its sender address; records any message sent back to it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                self.received += read_all(conn, 2.0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def instance_ports(d) -> set[int]:
    """Every listening TCP port of the daemon's processes (found by marker and by descent)."""
    pids = {d.proc.pid} | {p.pid for p in procs.descendants(d.proc.pid)}
    pids |= {p.pid for p in procs.find_marked(d.state_prefix)}
    return {c.laddr.port for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.pid in pids}


def served_ports(d, ports: set[int]) -> set[int]:
    """The ports read all the time: the daemon's own (inherited by every forked child) is read
    only while the daemon waits on an answer from its actors (at stop)."""
    own = {c.laddr.port for c in psutil.Process(d.proc.pid).net_connections("tcp")
           if c.status == psutil.CONN_LISTEN}
    return ports - own


def control_messages(d, reply_port: int) -> dict[str, bytes]:
    """Thespian control messages and a second InitSupervisor, as pickles (not yet framed)."""
    from thespian.actors import ValidateSource
    from thespian.system.messages.admin import QueryExists, RegisterSourceAuthority
    from thespian.system.transport.IPBase import TCPv4ActorAddress
    from thespian.actors import ActorAddress

    from foxden.config import load_config
    from foxden.protocols.messages import InitSupervisor

    me = ActorAddress(TCPv4ActorAddress("127.0.0.1", reply_port, external=True))
    config = load_config(d.config_path)
    evil = dataclasses.replace(config, pool=dataclasses.replace(config.pool, executable_path="/bin/false"))
    return {
        "QueryExists": envelope(QueryExists(), reply_port),
        "RegisterSourceAuthority": envelope(RegisterSourceAuthority(me), reply_port),
        "ValidateSource": envelope(ValidateSource("f00d", b"PK\x05\x06" + bytes(18), "evil.zip"), reply_port),
        "InitSupervisor": envelope(InitSupervisor(evil, None, "x", me, 0), reply_port),
    }


# --- unit: the seal -------------------------------------------------------------


def test_a_sealed_frame_opens_with_its_own_key_only():
    key, other = mac.new_key(), mac.new_key()
    sealed = mac.seal(key, b"payload")
    assert len(sealed) == mac.OVERHEAD + len(b"payload")
    assert mac.unseal(key, sealed) == b"payload"
    with pytest.raises(mac.BadTag):
        mac.unseal(other, sealed)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(mac.BadTag):
        mac.unseal(key, tampered)
    with pytest.raises(mac.BadTag):
        mac.unseal(key, sealed[:mac.TAG_BYTES - 1])
    with pytest.raises(mac.BadTag):
        mac.unseal(key, pickle.dumps("unsealed"))


def test_an_unsealed_gadget_is_refused_before_it_is_unpickled(tmp_path):
    canary = tmp_path / "canary"
    serializer = SealedSerializer(mac.new_key())
    before = refusals.counts()["mac"]
    with pytest.raises(FrameRefused):
        serializer.loads(pickle.dumps(("sender", "message")))
    with pytest.raises(FrameRefused):
        serializer.loads(dotted_gadget(canary))
    assert not canary.exists()
    assert refusals.counts()["mac"] == before + 2
    assert serializer.loads(serializer.dumps(("sender", "message"))) == ("sender", "message")


def test_a_frame_sealed_with_another_instances_key_is_refused():
    mine, theirs = SealedSerializer(mac.new_key()), SealedSerializer(mac.new_key())
    with pytest.raises(FrameRefused):
        mine.loads(theirs.dumps("hello"))


def test_a_forged_ack_on_a_socket_we_opened_is_retried_not_raised():
    """Whoever answers a send (say, a process that took a dead actor's port) cannot end the sender."""
    from types import SimpleNamespace

    from thespian.system.transport import TCPTransport
    from thespian.system.transport.streamBuffer import ReceiveBuffer

    from foxden.transport import patch

    patch._guard_ack_path(TCPTransport.TCPTransport)
    serializer = SealedSerializer(mac.new_key())
    paused = []
    intent = SimpleNamespace(ackbuf=ReceiveBuffer(serializer.loads), backoffPause=paused.append, stage=None)
    sender = SimpleNamespace(_XMITStepRetry="retry", _nextTransmitStep=lambda i: f"next:{i.stage}")
    forged = frame(pickle.dumps("ACK"))  # a well-formed ACK, unsealed
    assert TCPTransport.TCPTransport._check_XMIT_4_done(sender, intent, forged) == "next:retry"
    assert paused == [True]


def test_a_frame_length_that_never_ends_or_is_too_large_is_refused_before_it_is_buffered():
    from thespian.system.transport.streamBuffer import ReceiveBuffer

    from foxden.transport.patch import MAX_FRAME_BYTES, bounded_receive_buffer

    bounded = bounded_receive_buffer(ReceiveBuffer)  # the length checks alone
    before = refusals.counts()["frame"]
    with pytest.raises(FrameRefused):
        bounded(pickle.loads).addMore(b"1" * 20)
    buf = bounded(pickle.loads)
    buf.addMore(b"12345")  # a header may arrive in pieces
    with pytest.raises(FrameRefused):
        buf.addMore(b"67890123")
    with pytest.raises(FrameRefused):
        bounded(pickle.loads).addMore(f"{MAX_FRAME_BYTES + 1}>".encode() + b"x" * 10)
    assert refusals.counts()["frame"] == before + 3
    ok = bounded(pickle.loads)
    data = pickle.dumps("hello")
    ok.addMore(f"{len(data)}>".encode() + data)
    assert ok.completed() == ("hello", b"")


def test_a_strangers_frame_is_refused_after_its_first_bytes_not_its_announced_body():
    from thespian.system.transport.streamBuffer import ReceiveBuffer

    from foxden.transport.patch import bounded_receive_buffer

    serializer = SealedSerializer(mac.new_key())
    bounded = bounded_receive_buffer(ReceiveBuffer, serializer.length_ok)
    before = refusals.counts()["mac"]
    buf = bounded(serializer.loads)
    buf.addMore(b"100000000>" + b"\0" * 8)  # a length tag needs 16 bytes: not judged yet
    with pytest.raises(FrameRefused):
        buf.addMore(b"\0" * 8)
    with pytest.raises(FrameRefused):  # a sealed frame's tag does not fit another length
        sealed = mac.seal(serializer.key, b"x" * 10)
        bounded(serializer.loads).addMore(f"{len(sealed) + 1}>".encode() + sealed + b"y")
    assert refusals.counts()["mac"] == before + 2
    ok = bounded(serializer.loads)
    data = serializer.dumps(("sender", "message"))
    ok.addMore(f"{len(data)}>".encode() + data[:10])  # in pieces, as it may arrive
    ok.addMore(data[10:])
    assert ok.completed() == (("sender", "message"), b"")


# --- unit: the allow-list -------------------------------------------------------


def test_the_dotted_name_gadget_is_real_and_the_unpickler_refuses_it(tmp_path):
    canary = tmp_path / "canary"
    pickle.loads(dotted_gadget(canary))  # plain pickle walks foxden.config -> os -> system and runs it
    assert canary.exists(), "the gadget should work against an unrestricted unpickler"
    canary.unlink()
    with pytest.raises(unpickle.RefusedPickle, match="foxden.config.os.system"):
        unpickle.loads(dotted_gadget(canary))
    assert not canary.exists()


@pytest.mark.parametrize("module, name", [
    ("foxden.config", "dataclasses.inspect.attrgetter"),  # the reported chain's first step
    ("foxden.config", "Config.__init__"),
    ("foxden.protocols.messages", "dataclass"),  # a function that module imports
    ("foxden.config", "load_config"),  # a function that module defines
    ("foxden.config", "_Section"),  # a private helper class
    ("thespian.actors", "ValidateSource"),  # Thespian source loading
    ("thespian.actors", "ValidatedSource"),
    ("thespian.system.messages.admin", "RegisterSourceAuthority"),
    ("psutil", "Process"),
    ("builtins", "eval"),
    ("os", "system"),
    ("posix", "system"),
])
def test_the_unpickler_refuses_everything_but_exact_pairs(module, name, tmp_path):
    with pytest.raises(unpickle.RefusedPickle):
        unpickle.loads(dotted_gadget(tmp_path / "canary", module, name))
    assert not (tmp_path / "canary").exists()


def test_recording_the_pairs_refuses_exactly_what_production_refuses(tmp_path, monkeypatch):
    record = tmp_path / "pairs.tsv"
    monkeypatch.setenv("FOXDEN_PICKLE_RECORD", str(record))
    with pytest.raises(unpickle.RefusedPickle):
        unpickle.loads(dotted_gadget(tmp_path / "canary"))
    from foxden.protocols.messages import Ping

    assert unpickle.loads(pickle.dumps(Ping(1))) == Ping(1)
    assert not (tmp_path / "canary").exists()
    assert record.read_text().splitlines() == ["foxden.config\tos.system", "foxden.protocols.messages\tPing"]


def test_the_unpickler_never_imports_a_module_a_frame_names(tmp_path, monkeypatch):
    canary = tmp_path / "imported"
    (tmp_path / "fx_not_yet_imported.py").write_text(f"open({str(canary)!r}, 'w').close()\nclass Thing: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    allowed = unpickle.allowed_pairs() | {("fx_not_yet_imported", "Thing")}
    with pytest.raises(unpickle.RefusedPickle, match="not imported"):
        unpickle.loads(global_ref("fx_not_yet_imported", "Thing"), allowed)
    assert "fx_not_yet_imported" not in sys.modules and not canary.exists()
    # Naming foxden.__main__ used to import it, and its import ran the CLI (sys.exit).
    with pytest.raises(unpickle.RefusedPickle):
        unpickle.loads(global_ref("foxden.__main__", "main"))


def test_the_unpickler_accepts_what_foxden_exchanges():
    from thespian.actors import ActorAddress, ActorExitRequest
    from thespian.system.messages.admin import QueryExists
    from thespian.system.transport.IPBase import TCPv4ActorAddress

    from foxden.config import default_config
    from foxden.engines import EngineChoice
    from foxden.protocols.messages import InitSupervisor, Ping

    addr = ActorAddress(TCPv4ActorAddress("127.0.0.1", 1234, external=True))
    engine = EngineChoice("chromium", "/usr/bin/chromium", "test")
    for msg in (Ping(3), InitSupervisor(default_config(Path("/tmp")), engine, "i", addr, 1), ActorExitRequest(),
                (addr, QueryExists()), logging.LogRecord("x", 20, "p", 1, "m", None, None)):
        assert type(unpickle.loads(pickle.dumps(msg))) is type(msg)


def test_importing_foxden_main_does_nothing():
    out = subprocess.run([sys.executable, "-c", "import foxden.__main__; print('still here')"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "still here\n", out


# --- unit: counting and logging refusals -----------------------------------------


def test_refusals_counted_in_forked_processes_add_up_and_a_killed_holder_wedges_nobody():
    counters = refusals.SharedCounters()
    children = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            for _ in range(50):
                counters.add(refusals.Refusal.MAC)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    assert counters.read()["mac"] == 200
    # A process killed while it holds the lock (the watchdog SIGKILLs actors).
    import fcntl

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        fcntl.lockf(counters.fd, fcntl.LOCK_EX, counters.SLOT, 0)
        os.write(w, b"x")
        time.sleep(60)
        os._exit(0)
    os.read(r, 1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    counters.add(refusals.Refusal.MAC)
    assert counters.read()["mac"] == 201


def test_refusals_are_logged_at_a_bounded_rate(caplog):
    caplog.set_level(logging.WARNING, "foxden.transport")
    for _ in range(100):
        refusals.refused(refusals.Refusal.SOURCE_LOADING, "test")
    lines = [r for r in caplog.records if "source_loading" in r.getMessage()]
    assert len(lines) <= 1


def test_the_thespian_admin_refuses_every_source_loading_request():
    from types import SimpleNamespace

    from thespian.actors import ValidatedSource, ValidateSource
    from thespian.system.messages.admin import PendingActorResponse, RegisterSourceAuthority
    from thespian.system.systemAdmin import ThespianAdmin

    from foxden.transport import patch

    patch._refuse_source_loading()
    before = refusals.counts()["source_loading"]
    sent = []
    admin = SimpleNamespace(_sendPendingActorResponse=lambda env, addr, errorCode: sent.append(errorCode))
    for msg in (RegisterSourceAuthority("me"), ValidateSource("h", b"zip"), ValidatedSource("h", b"zip")):
        handler = getattr(ThespianAdmin, "h_" + type(msg).__name__)
        # True keeps the admin running (Thespian's own handlers return None, which stops it).
        assert handler(admin, SimpleNamespace(message=msg, sender="me")) is True
    assert ThespianAdmin._get_source_for_hash(admin, "f00d", "envelope") is True
    assert sent == [PendingActorResponse.ERROR_Invalid_SourceHash]
    assert ThespianAdmin._get_source_for_hash(admin, None, "envelope") is None  # foxden's own actors
    assert refusals.counts()["source_loading"] == before + 4


# --- unit: init once --------------------------------------------------------------


def test_an_actor_accepts_its_init_message_once(caplog):
    from foxden.actors.base import FoxdenActor
    from foxden.protocols.messages import InitAdmin

    class Probe(FoxdenActor):
        role = "probe"
        inits = 0

        def receiveMsg_InitAdmin(self, msg, sender):
            self.inits += 1

    actor = Probe()
    before = refusals.counts()["second_init"]
    actor.receiveMessage(InitAdmin(None, "a", None, None), "first")
    actor.receiveMessage(InitAdmin(None, "b", None, None), "second")
    assert actor.inits == 1
    assert refusals.counts()["second_init"] == before + 1


# --- unit: the key file -----------------------------------------------------------


def _key_file(tmp_path: Path, mode: int = 0o600, data: bytes | None = None) -> Path:
    path = tmp_path / "foxden.key"
    path.write_bytes(data if data is not None else secrets.token_hex(32).encode() + b"\n")
    path.chmod(mode)
    return path


def test_a_key_file_others_could_read_is_refused_with_the_fix(tmp_path):
    good = _key_file(tmp_path)
    assert len(mac.read_key_file(good)) == 64
    for mode in (0o640, 0o604, 0o620, 0o602):
        good.chmod(mode)
        with pytest.raises(mac.KeyFileError, match=r"key_file .*foxden.key.*chmod 600"):
            mac.read_key_file(good)
    good.chmod(0o600)
    link = tmp_path / "link.key"
    link.symlink_to(good)
    with pytest.raises(mac.KeyFileError, match="symlink"):
        mac.read_key_file(link)
    with pytest.raises(mac.KeyFileError, match="at least 32"):
        mac.read_key_file(_key_file(tmp_path, data=b"short"))
    if os.geteuid() == 0:
        other = _key_file(tmp_path)
        os.chown(other, 65534, 65534)
        with pytest.raises(mac.KeyFileError, match="owned by uid 65534"):
            mac.read_key_file(other)


def test_key_file_is_read_relative_to_the_config_and_not_resolved(tmp_path):
    from foxden.config import parse_config

    (tmp_path / "real.key").write_text("x")
    (tmp_path / "link.key").symlink_to(tmp_path / "real.key")
    config = parse_config({"daemon": {"key_file": "link.key"}}, base_dir=tmp_path)
    assert config.daemon.key_file == tmp_path / "link.key"  # so that read_key_file can refuse the link
    assert parse_config({}, base_dir=tmp_path).daemon.key_file is None


def test_the_daemon_refuses_to_start_with_a_key_file_others_can_read(make_daemon, tmp_path):
    key = _key_file(tmp_path, 0o644)
    d = make_daemon({"daemon": {"key_file": str(key)}}, start=False)
    d.expect_failure = True
    with pytest.raises(RuntimeError, match=r"\[daemon\] key_file .*mode 0644"):
        d.start(timeout=60)
    assert d.proc.wait(30) == 2


# --- through a real daemon ----------------------------------------------------------


def _attack_every_port(d, frames: dict[str, bytes]) -> tuple[set[int], dict[tuple[int, str], bytes]]:
    ports = instance_ports(d)
    jobs = [(port, name, data) for port in ports for name, data in frames.items()]
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda j: send_and_read(j[0], j[2]), jobs))
    return ports, {(port, name): reply for (port, name, _), reply in zip(jobs, replies)}


def _answered(replies: dict, listener: ReplyListener) -> list:
    """Any Thespian answer (a QueryAck, ...) that came back to the attacker."""
    from thespian.actors import ActorSystemMessage

    found = []
    for where, data in list(replies.items()) + [("listener", listener.received)]:
        for obj in decode_frames(data):
            msg = obj[1] if isinstance(obj, tuple) and len(obj) == 2 else obj
            if isinstance(msg, ActorSystemMessage):
                found.append((where, type(msg).__name__))
    return found


def _refused_metric(st: dict) -> dict[str, float]:
    """foxden_transport_refused_frames_total by reason, as Prometheus would scrape it from `st`."""
    from foxden.metrics import status_metrics

    family = next(m for m in status_metrics(st) if m.name == "foxden_transport_refused_frames")
    return {s.labels["reason"]: s.value for s in family.samples if s.name.endswith("_total")}


def _healthy(d, site) -> dict:
    with d.client(timeout=120) as c:
        assert c.submit(site.url("/page/1")).status == "ok"
    st = d.status()
    assert st["browsers"]["live"] == 1 and st["invariants"]["ok"], st
    return st


@pytest.mark.browser
def test_an_outsider_without_the_key_runs_nothing_on_any_actor_port(make_daemon, site, tmp_path):
    d = make_daemon({"pool": {"size": 1}})
    canary = tmp_path / "pwned"
    listener = ReplyListener()
    try:
        before = d.status()
        frames = {"gadget": dotted_gadget(canary), **control_messages(d, listener.port)}
        framed = {name: frame(p) for name, p in frames.items()}
        # Refused after its first bytes, not after the 100 MB it announces.
        framed["announces 100 MB"] = b"100000000>" + bytes(64)
        malformed = {"endless header": b"9" * 64, "huge length": b"99999999999>" + b"x" * 64}
        ports, replies = _attack_every_port(d, {**framed, **malformed})
        assert len(ports) >= 8, ports  # daemon, Thespian admin + logger, supervisor, dispatcher, admin, gateway, browser
        _healthy(d, site)
        time.sleep(1)  # an answer would have come by now (the job above took longer)
        assert not _answered(replies, listener), "a Thespian process answered an unauthenticated frame"
        assert not canary.exists(), "the gadget ran code in the daemon"
        served = served_ports(d, ports)
        expected = len(served) * len(framed)
        st = d.wait_until(lambda s: s["transport"]["refused_by_reason"]["mac"] >= expected
                          and s["transport"]["refused_by_reason"]["frame"] >= len(served) * len(malformed), timeout=60)
        assert st["transport"]["refused_by_reason"]["frame"] == len(served) * len(malformed), st["transport"]
        assert st["transport"]["refused_frames"] == expected + len(served) * len(malformed), st["transport"]
        assert st["pids"] == before["pids"], "an actor process was replaced"
        assert _refused_metric(st)["mac"] == expected
        assert instance_ports(d) == ports, "a listener went away"
    finally:
        listener.close()
    assert d.stop() == 0
    assert not canary.exists()
    log = Path(d.log_path).read_text()
    assert "refused on an actor port (mac)" in log
    assert log.count("refused on an actor port (mac)") < expected  # rate-limited per process


@pytest.mark.browser
def test_a_key_holder_still_meets_the_allow_list_the_source_refusal_and_init_once(make_daemon, site, tmp_path):
    key_path = _key_file(tmp_path)
    key = mac.read_key_file(key_path)
    d = make_daemon({"pool": {"size": 1}, "daemon": {"key_file": str(key_path)}})
    canary = tmp_path / "pwned"
    listener = ReplyListener()
    try:
        messages = control_messages(d, listener.port)
        frames = {"gadget": frame(dotted_gadget(canary), key),
                  "RegisterSourceAuthority": frame(messages["RegisterSourceAuthority"], key),
                  "ValidateSource": frame(messages["ValidateSource"], key),
                  "InitSupervisor": frame(messages["InitSupervisor"], key)}
        ports, _ = _attack_every_port(d, frames)
        served = served_ports(d, ports)
        want = len(served) * 3  # the gadget and both source-loading messages name classes off the list
        st = d.wait_until(lambda s: s["transport"]["refused_by_reason"]["pickle"] >= want
                          and s["transport"]["refused_by_reason"]["second_init"] >= 1, timeout=60)
        by_reason = st["transport"]["refused_by_reason"]
        assert by_reason["pickle"] == want and by_reason["second_init"] == 1 and by_reason["mac"] == 0, by_reason
        st = _healthy(d, site)  # the pool still runs the real browser, not /bin/false
        assert not canary.exists()
    finally:
        listener.close()
    assert d.stop() == 0
    assert "a second InitSupervisor" in Path(d.log_path).read_text()
