"""A driver behind the egress proxy: the proxy starts before the browser, and each job's refusals go in its answer."""
from __future__ import annotations

import dataclasses
import ipaddress
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from foxden.drivers.base import Driver
from foxden.egress.policy import EgressPolicy, judge_address, judge_name
from foxden.egress.proxy import EgressProxy, Refusal
from foxden.protocols.errors import ErrorCode
from foxden.protocols.messages import JobSpec, Outcome
from foxden.protocols.options import Proxy

__all__ = ["GuardedDriver", "proxy_refused", "with_refusals"]


class GuardedDriver(Driver):
    """Wraps the driver of one browser whose every connection goes through its own EgressProxy.

    The browser actor runs one job at a time, so what the proxy refused
    between the start and the end of run() is that job's."""

    def __init__(self, make_driver: Callable[[str], Driver], policy: EgressPolicy):
        super().__init__()
        self._policy = policy
        self._proxy = EgressProxy(policy)
        try:
            self._driver = make_driver(self._proxy.start())
        except BaseException:
            self._proxy.stop()
            raise
        self.engine = self._driver.engine

    @property
    def version(self) -> str:  # set by the inner driver's launch()
        return self._driver.version

    def launch(self) -> None:
        self._driver.launch()

    def pids(self) -> list[int]:
        return self._driver.pids()

    def alive(self) -> bool:
        return self._driver.alive()

    def sessions(self) -> tuple[str, ...]:
        return self._driver.sessions()

    def end_session(self, session: str) -> bool:
        return self._driver.end_session(session)

    def storage_state(self, session: str) -> dict | None:
        return self._driver.storage_state(session)

    def run(self, job: JobSpec, budget_s: float) -> Outcome:
        refused = proxy_refused(job.options.proxy, self._policy)
        if refused is not None:
            return refused
        self._proxy.begin_job()
        outcome = self._driver.run(job, budget_s)
        return with_refusals(outcome, self._proxy.refusals(), job.url)

    def close(self, timeout_s: float) -> None:
        try:
            self._driver.close(timeout_s)
        finally:
            self._proxy.stop()


def proxy_refused(proxy: Proxy | None, policy: EgressPolicy, resolve=socket.getaddrinfo) -> Outcome | None:
    """A "failed" blocked_target Outcome when a job's own proxy is a host the policy refuses, else None.

    A job's context sends its traffic to its proxy instead of this browser's
    egress proxy, so the proxy's host is judged here, on every address its
    name resolves to, the way the egress proxy judges a target."""
    if proxy is None:
        return None
    host = urlsplit(proxy.server).hostname or ""
    verdict = judge_name(host, policy)
    if verdict is None or verdict.allowed:
        try:
            addresses = {ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in resolve(host, None)}
        except (OSError, ValueError) as exc:
            return Outcome("failed", error=ErrorCode.NAVIGATION_FAILED.error(
                f"job.proxy: cannot resolve the proxy's host {host}: {exc}"))
        verdicts = [judge_address(host, a, policy) for a in sorted(addresses, key=str)]
        verdict = next((v for v in verdicts if not v.allowed), None)
    if verdict is None or verdict.allowed:
        return None
    return Outcome("failed", error=ErrorCode.BLOCKED_TARGET.error(
        f"job.proxy: the proxy {proxy.server} was not used: {verdict}, refused by the egress policy"))


def with_refusals(outcome: Outcome, refused: Sequence[Refusal], url: str) -> Outcome:
    """The job's outcome given what the proxy refused during it (a pure function).

    A navigation that failed while something was refused, or whose page is
    the proxy's refusal (plain http: the browser shows the proxy's 403 as the
    page), is `failed` with `blocked_target`; an ok result lists the refused
    URLs under `blocked`."""
    if not refused:
        return outcome
    urls = [r.url for r in refused]
    if outcome.status == "failed" and outcome.error and outcome.error.code == ErrorCode.NAVIGATION_FAILED.value:
        return _blocked_target(url, refused[-1])
    if outcome.status != "ok" or outcome.result is None:
        return outcome
    final = outcome.result.final_url
    for r in refused:
        if r.url == final:
            return _blocked_target(url, r)
    return Outcome("ok", result=dataclasses.replace(outcome.result, blocked=tuple(urls)), error=None)


def _blocked_target(url: str, refusal: Refusal) -> Outcome:
    via = "" if refusal.url.rstrip("/") == url.rstrip("/") else f" (it led to {refusal.url})"
    return Outcome("failed", error=ErrorCode.BLOCKED_TARGET.error(
        f"navigate: {url} was not loaded{via}: {refusal.why}, refused by the egress policy"))
