"""The HTTP process: `python -m foxden.http`, started by the daemon with its settings as JSON on stdin."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys

from aiohttp import web

from foxden import procs
from foxden.http.app import HttpApi, make_app
from foxden.http.link import keep_alive
from foxden.http.settings import HttpSettings

__all__ = ["main", "serve"]

log = logging.getLogger("foxden.http")
SHUTDOWN_TIMEOUT_S = 5.0


async def serve(settings: HttpSettings, stop: asyncio.Event) -> None:
    """Serve on the daemon's listening socket until `stop` is set, then finish the requests in flight."""
    from foxden import __version__

    api = HttpApi(settings, __version__)
    runner = web.AppRunner(make_app(api), access_log=None, keepalive_timeout=settings.idle_timeout_s,
                           shutdown_timeout=SHUTDOWN_TIMEOUT_S, handle_signals=False)
    await runner.setup()
    sock = socket.socket(fileno=settings.listen_fd)
    await web.SockSite(runner, sock, shutdown_timeout=SHUTDOWN_TIMEOUT_S).start()
    pinger = asyncio.get_running_loop().create_task(
        keep_alive([api.jobs, api.control], min(60.0, settings.daemon_idle_timeout_s / 3)))
    log.info("http: serving on %s (pid %d)", sock.getsockname()[:2], os.getpid())
    try:
        await stop.wait()
    finally:
        pinger.cancel()
        await runner.cleanup()
        for task in list(api.background):
            task.cancel()
        await api.jobs.close()
        await api.control.close()


async def _main(settings: HttpSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def orphan_watch() -> None:
        # PR_SET_PDEATHSIG covers a daemon that dies; this covers one that died before it was set.
        while os.getppid() == settings.parent_pid:
            await asyncio.sleep(1.0)
        log.error("http: the daemon (pid %d) is gone; exiting", settings.parent_pid)
        stop.set()

    watch = loop.create_task(orphan_watch())
    try:
        await serve(settings, stop)
    finally:
        watch.cancel()


def _setup_logging(settings: HttpSettings) -> None:
    """Log like the daemon and its actors (stderr, text or JSON lines), as actor "http"."""
    import logging.config
    from types import SimpleNamespace

    from foxden.logs import install_context, log_defs

    daemon = SimpleNamespace(log_level=settings.log_level, log_format=settings.log_format)
    logging.config.dictConfig(log_defs(SimpleNamespace(daemon=daemon)))
    install_context("http")


def main() -> int:
    procs.stop_with_parent(signal.SIGTERM)
    settings = HttpSettings.from_json(sys.stdin.readline())
    _setup_logging(settings)
    asyncio.run(_main(settings))
    return 0
