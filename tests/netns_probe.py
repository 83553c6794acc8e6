"""A Thespian convention across network namespaces with foxden's sealed transport: a trivial actor placed by capability.

Run (inside a namespace, with tests/ on sys.path) as
``python -c 'import netns_probe; netns_probe.main()' ROLE NODE ADDRESS LEADER_ADDRESS PORT KEY_FILE``.
Each prints ``{"ready": NODE}`` once its actor system runs. ROLE ``member``
joins the convention at LEADER_ADDRESS:PORT (start it after the leader:
Thespian retries a failed first registration only after minutes) and stays
until its stdin closes; ROLE ``leader`` starts the convention, waits until an
actor can be placed on every node named in the FOXDEN_PROBE_NODES
environment variable (comma-separated), asks each placed actor where it runs,
prints one JSON line and shuts its system down.
"""
from __future__ import annotations

import json
import os
import sys
import time

from thespian.actors import Actor, ActorSystem

__all__ = ["Where", "main"]


class Where(Actor):
    """Answers any message with (node, pid, network namespace inode, the message)."""

    @staticmethod
    def actorSystemCapabilityCheck(capabilities, requirements):  # noqa: N802 - Thespian's name
        return capabilities.get("node") == requirements.get("node")

    def receiveMessage(self, message, sender):  # noqa: N802 - Thespian's name
        if isinstance(message, str):
            node = os.environ.get("FOXDEN_PROBE_NODE", "")
            self.send(sender, (node, os.getpid(), os.stat("/proc/self/ns/net").st_ino, message))


def _start(role: str, node: str, address: str, leader: str, port: int, key_file: str) -> ActorSystem:
    from foxden import transport

    os.environ["FOXDEN_PROBE_NODE"] = node
    os.environ["THESPIAN_BASE_IPADDR"] = address  # the address Thespian binds and hands out
    # foxden's own seal and allow-list (which holds Thespian's convention messages since issue 16).
    transport.install(transport.read_key_file(key_file), loopback_only=False)
    caps = {"Admin Port": port, "Convention Address.IPv4": (leader, port), "node": node}
    return ActorSystem("multiprocTCPBase", caps, logDefs={"version": 1, "disable_existing_loggers": False})


def _place(asys: ActorSystem, node: str, deadline: float) -> tuple:
    """Create a Where on `node` (retrying until the member has registered) and ask it; (answer, seconds)."""
    t0 = time.monotonic()
    while True:
        try:
            addr = asys.createActor(Where, targetActorRequirements={"node": node})
            break
        except Exception:  # noqa: BLE001 - NoCompatibleSystemForActor until the member registered
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    placed = time.monotonic() - t0
    t1 = time.monotonic()
    answer = asys.ask(addr, "where?", 10)
    return answer, placed, time.monotonic() - t1


def main(argv: list[str] | None = None) -> None:
    role, node, address, leader, port, key_file = (argv or sys.argv[1:])[:6]
    asys = _start(role, node, address, leader, int(port), key_file)
    try:
        print(json.dumps({"ready": node}), flush=True)
        if role == "member":
            sys.stdin.read()  # until the test closes our stdin
            return
        deadline = time.monotonic() + float(os.environ.get("FOXDEN_PROBE_WAIT_S", "30"))
        out = {}
        for target in filter(None, os.environ.get("FOXDEN_PROBE_NODES", "").split(",")):
            try:
                answer, placed, rtt = _place(asys, target, deadline)
                out[target] = {"answer": list(answer) if answer else None, "placed_s": round(placed, 3),
                               "ask_s": round(rtt, 4)}
            except Exception as exc:  # noqa: BLE001 - reported, the test decides
                out[target] = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(out), flush=True)
    finally:
        asys.shutdown()
