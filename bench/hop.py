"""What sealing the actor transport costs per hop: ``python -m bench.hop``.

Two measurements, each with the frames sealed (HMAC-SHA256, the daemon's
way), unsealed (the strict unpickler alone, bench/nomac.py) and Thespian's
own plain pickle:

- serialize + verify: one frame through Thespian's own framing
  (streamBuffer.toSendBuffer, then ReceiveBuffer.addMore/completed) with
  the serializer each mode installs, for messages foxden really sends;
- round trip: ``ActorSystem.ask`` of an echo actor on a real
  multiprocTCPBase system (two hops, each a TCP connection's frame + ACK),
  in a fresh process per mode.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import time
import types

from thespian.actors import Actor

from foxden.protocols.messages import Assign, JobDone, JobSpec, Outcome, Ping, StatusReport

MODES = ("sealed", "unsealed", "pickle")


class Echo(Actor):
    """Answers every Ping with the same Ping."""

    def receiveMessage(self, msg, sender):
        if isinstance(msg, Ping):
            self.send(sender, msg)


def _sender():
    from thespian.actors import ActorAddress
    from thespian.system.transport.IPBase import TCPv4ActorAddress

    return ActorAddress(TCPv4ActorAddress("127.0.0.1", 40000, external=True))


def sample_messages() -> dict[str, object]:
    """Envelopes (sender, message) as Thespian frames them, small to large."""
    spec = JobSpec("k1", "job-1", "http://127.0.0.1:8000/page/1", eval="document.title", timeout_s=30.0)
    result = {"final_url": spec.url, "http_status": 200, "title": "Page 1", "content_length": 5123,
              "eval": {"links": [f"/page/{i}" for i in range(40)]}}
    status = {"children": [{"id": f"b{i}", "pid": 1000 + i, "browser_pids": list(range(8)), "state": "idle",
                            "jobs_done": i, "sessions": []} for i in range(16)],
              "totals": {"submitted": 1000, "ok": 990, "failed": 5, "timeout": 5, "rejected": 0}}
    addr = _sender()
    return {
        "Ping": (addr, Ping(7)),
        "Assign": (addr, Assign("b1", spec, 32.0)),
        "JobDone": (addr, JobDone("b1", "k1", Outcome("ok", result))),
        "StatusReport(16 browsers)": (addr, StatusReport(None, status)),
        "ACK": "ACK",  # each hop's answer frame (streamBuffer.ackPacket)
    }


def serializer(mode: str):
    from foxden.transport import new_key, unpickle
    from foxden.transport.patch import SealedSerializer

    from bench.nomac import PlainSerializer

    if mode == "sealed":
        return SealedSerializer(new_key())
    if mode == "unsealed":
        return PlainSerializer(b"")
    return types.SimpleNamespace(dumps=pickle.dumps, loads=pickle.loads) if mode == "pickle" else unpickle


def one_frame_us(ser, envelope, n: int) -> float:
    """CPU µs to frame one envelope and read it back, as Thespian's TCP transport does.

    CPU time of this process (not wall time), least of 7 runs: on a machine
    shared with other work, waiting for a CPU is not the serializer's cost."""
    from thespian.system.transport.streamBuffer import ReceiveBuffer, toSendBuffer

    runs = []
    for _ in range(7):
        t0 = time.process_time()
        for _ in range(n):
            data = toSendBuffer(envelope, ser.dumps)
            buf = ReceiveBuffer(ser.loads)
            buf.addMore(data)
            buf.completed()
        runs.append((time.process_time() - t0) / n * 1e6)
    return min(runs)


def micro(n: int) -> dict:
    out = {}
    for name, envelope in sample_messages().items():
        size = len(pickle.dumps(envelope))
        row = {"bytes": size}
        for mode in MODES:
            row[mode] = round(one_frame_us(serializer(mode), envelope, n), 2)
        row["mac_us"] = round(row["sealed"] - row["unsealed"], 2)
        out[name] = row
    return out


def round_trip(mode: str, asks: int) -> dict:
    """In this process: a real multiprocTCPBase system with `mode`'s serializer, `asks` echo round trips."""
    from thespian.actors import ActorSystem

    from foxden import transport
    from foxden.daemon import free_port

    if mode == "unsealed":
        from bench.nomac import unseal_transport

        unseal_transport()
    if mode != "pickle":
        transport.install(transport.new_key())
    asys = ActorSystem("multiprocTCPBase", capabilities={"Admin Port": free_port()}, transientUnique=True)
    try:
        echo = asys.createActor(Echo)
        for i in range(50):
            assert asys.ask(echo, Ping(i), 30) == Ping(i)
        times = []
        for i in range(asks):
            t0 = time.perf_counter()
            reply = asys.ask(echo, Ping(i), 30)
            times.append((time.perf_counter() - t0) * 1e6)
            assert reply == Ping(i), reply
    finally:
        asys.shutdown()
    times.sort()
    return {"mode": mode, "asks": asks, "median_us": round(statistics.median(times)),
            "min_us": round(times[0]), "p10_us": round(times[len(times) // 10]), "p90_us": round(times[len(times) * 9 // 10])}


def round_trips(asks: int, rounds: int) -> list[dict]:
    """Each mode in a fresh process, `rounds` times, alternating (the machine's load drifts)."""
    out = []
    for _ in range(rounds):
        for mode in MODES:
            proc = subprocess.run([sys.executable, "-m", "bench.hop", "--one-round-trip", mode, "--asks", str(asks)],
                                  capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"round trip ({mode}) failed:\n{proc.stderr[-3000:]}")
            out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hop", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="frames per timing run of the microbenchmark (2000)")
    p.add_argument("--asks", type=int, default=300, help="echo round trips per actor-system run (300)")
    p.add_argument("--rounds", type=int, default=2, help="actor-system runs per mode, alternating (2)")
    p.add_argument("--one-round-trip", choices=MODES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one_round_trip:
        print(json.dumps(round_trip(args.one_round_trip, args.asks)))
        return 0
    print(json.dumps({"load_avg": os.getloadavg(), "cpus": os.cpu_count()}))
    print(json.dumps({"micro_us_per_frame": micro(args.n)}))
    runs = round_trips(args.asks, args.rounds)
    for run in runs:
        print(json.dumps({"round_trip": run}))
    summary = {m: {k: statistics.median(r[k] for r in runs if r["mode"] == m) for k in ("min_us", "p10_us",
                                                                                     "median_us")}
               for m in MODES}
    print(json.dumps({"round_trip_us": summary,
                      "mac_per_hop_us_from_p10": round((summary["sealed"]["p10_us"] - summary["unsealed"]["p10_us"]) / 2,
                                                       1),
                      "load_avg_after": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
