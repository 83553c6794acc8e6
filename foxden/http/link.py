"""The HTTP process's connection to the daemon's socket: an AsyncClient, remade when it breaks, kept from idling."""
from __future__ import annotations

import asyncio
import logging

from foxden.aclient import AsyncClient
from foxden.client import BrokenByDaemonError, ClosedByCallerError, UnreachableError

__all__ = ["DaemonLink", "LinkDown"]

log = logging.getLogger("foxden.http")


class LinkDown(Exception):
    """The daemon could not be reached, or the connection broke with the request in flight (its answer is lost)."""


class DaemonLink:
    """One connection to the daemon (rid-multiplexed: many requests at once), opened on first use."""

    def __init__(self, socket_path: str, token: str | None, name: str):
        self._socket, self._token, self.name = socket_path, token, name
        self._client: AsyncClient | None = None
        self._lock = asyncio.Lock()
        self.inflight = 0  # requests of ours waiting on this link

    async def _connected(self) -> AsyncClient:
        async with self._lock:
            if self._client is None:
                client = AsyncClient(self._socket, token=self._token)
                await client.connect()
                self._client = client
            return self._client

    async def call(self, method: str, *args, timeout: float | None = None, **kwargs):
        """`AsyncClient.<method>(*args, **kwargs)`; raises LinkDown when the daemon is out of reach,
        ServerError when it refused the request, asyncio.TimeoutError past `timeout`."""
        self.inflight += 1
        try:
            client = await self._connected()
            return await asyncio.wait_for(getattr(client, method)(*args, **kwargs), timeout)
        except (UnreachableError, BrokenByDaemonError, ClosedByCallerError) as exc:
            await self._drop(client=None)
            raise LinkDown(str(exc)) from None
        finally:
            self.inflight -= 1

    async def _drop(self, client: AsyncClient | None) -> None:
        async with self._lock:
            stale, self._client = self._client, None
        if stale is not None:
            await stale.close()

    async def close(self) -> None:
        await self._drop(client=None)


async def keep_alive(links: list[DaemonLink], interval_s: float) -> None:
    """Ping every idle link each `interval_s` (well within the daemon's [daemon] idle_timeout_s), for ever.

    A busy link is not idle for the daemon either, and a ping there could take the last of its
    [daemon] max_inflight_per_connection slots from a job."""
    while True:
        await asyncio.sleep(interval_s)
        for link in links:
            if link.inflight:
                continue
            try:
                await link.call("ping", timeout=interval_s)
            except Exception as exc:  # noqa: BLE001 - the next request reconnects; this only keeps it warm
                log.debug("http: keep-alive ping on the %s link failed: %s", link.name, exc)
