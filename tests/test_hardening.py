"""Thespian's transport, hardened: loopback-only ports, and crafted pickles that do not run."""
from __future__ import annotations

import os
import pickle
import socket

import psutil
import pytest

from foxden import transport
from foxden.transport import unpickle as safepickle

pytestmark = pytest.mark.browser


class _Exploit:
    """Unpickling this would create a marker file (if it were allowed to run)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _thespian_frame(payload: bytes) -> bytes:
    # Thespian's stream framing: b"<length>>" then the pickle.
    return f"{len(payload)}>".encode() + payload


def test_allow_list_refuses_callables_and_unknown_classes():
    evil = pickle.dumps(_Exploit("/tmp/never"))
    with pytest.raises(safepickle.RefusedPickle, match="posix.system|os.system"):
        safepickle.loads(evil)
    with pytest.raises(safepickle.RefusedPickle):
        safepickle.loads(pickle.dumps(psutil.Process))  # a class, but not one we exchange
    with pytest.raises(safepickle.RefusedPickle):
        safepickle.loads(pickle.dumps(transport.install))  # a function in an allowed package
    from foxden.protocols.messages import Ping
    assert safepickle.loads(pickle.dumps(Ping(3))) == Ping(3)


def _listening_ports(pids: set[int]) -> list[tuple[str, int]]:
    out = []
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN and c.pid in pids:
            out.append((c.laddr.ip, c.laddr.port))
    return out


def test_daemon_ports_are_loopback_and_crafted_pickles_do_not_run(make_daemon, site, tmp_path):
    d = make_daemon({"pool": {"size": 1}})
    marker = tmp_path / "pwned"
    pids = {d.proc.pid} | {p.pid for p in psutil.Process(d.proc.pid).children(recursive=True)}
    ports = _listening_ports(pids)
    assert len(ports) >= 5, ports  # the Thespian admin, the logger and every actor listen
    assert all(ip == "127.0.0.1" for ip, _ in ports), f"listening beyond loopback: {ports}"
    payload = _thespian_frame(pickle.dumps(_Exploit(str(marker))))
    for ip, port in ports:
        with socket.create_connection((ip, port), timeout=5) as s:
            s.sendall(payload)
            try:
                s.recv(100)
            except OSError:
                pass
    with d.client() as c:
        a = c.submit(site.url("/page/1"))
    assert a.status == "ok"
    assert not marker.exists(), "a crafted pickle ran code in the daemon"
    st = d.status()
    assert st["browsers"]["live"] == 1 and st["invariants"]["ok"]
