"""foxden with its actor transport unsealed, to measure what the MAC costs (benchmarks only; never a config key).

    python -m bench.nomac run -c CONFIG          the daemon, frames unsealed
    python -m bench.nomac bench-run [ARGS...]    python -m bench.run, its daemons unsealed

Frames are still read by the exact-pair unpickler; only the HMAC is gone."""
from __future__ import annotations

import os
import pickle
import sys

from foxden.transport import unpickle

__all__ = ["PlainSerializer", "main"]


class PlainSerializer:
    """Thespian's serializer without the seal: pickle out, the strict unpickler in."""

    def __init__(self, key: bytes):
        self.key = key

    def dumps(self, obj) -> bytes:
        return pickle.dumps(obj, pickle.DEFAULT_PROTOCOL)

    def loads(self, frame: bytes):
        return unpickle.loads(frame)


def unseal_transport() -> None:
    """From now on, transport.install() in this process installs PlainSerializer."""
    from foxden.transport import patch

    patch.SERIALIZER = PlainSerializer


def _run_daemon(argv: list[str]) -> int:
    from foxden import daemon, procs
    from foxden.cli import main as foxden_main
    from foxden.config import load_config

    # `foxden run` re-execs itself as `python -m foxden` to carry its marker
    # in its initial environment; do that here, as this module, instead.
    marker = daemon.instance_marker(load_config(argv[argv.index("-c") + 1])) + "daemon"
    if os.environ.get(procs.MARKER_ENV) != marker:
        os.execve(sys.executable, [sys.executable, "-m", "bench.nomac", *argv],
                  dict(os.environ, **{procs.MARKER_ENV: marker}))
    unseal_transport()
    sys.stderr.write("bench.nomac: the actor transport is UNSEALED (benchmark only)\n")
    return foxden_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:
        return _run_daemon(argv)
    if argv[:1] == ["bench-run"]:
        from bench import run
        from foxden.harness import DaemonProcess

        DaemonProcess.module = "bench.nomac"
        return run.main(argv[1:])
    sys.stderr.write(__doc__ + "\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
