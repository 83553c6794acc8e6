"""A driver behind the egress proxy: the proxy starts before the browser, and each job's refusals go in its answer."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from foxden.drivers.base import Driver
from foxden.egress.policy import EgressPolicy
from foxden.egress.proxy import EgressProxy, Refusal
from foxden.protocols.errors import ErrorCode
from foxden.protocols.messages import JobSpec, Outcome

__all__ = ["GuardedDriver", "with_refusals"]


class GuardedDriver(Driver):
    """Wraps the driver of one browser whose every connection goes through its own EgressProxy.

    The browser actor runs one job at a time, so what the proxy refused
    between the start and the end of run() is that job's."""

    def __init__(self, make_driver: Callable[[str], Driver], policy: EgressPolicy):
        super().__init__()
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
        self._proxy.begin_job()
        outcome = self._driver.run(job, budget_s)
        return with_refusals(outcome, self._proxy.refusals(), job.url)

    def close(self, timeout_s: float) -> None:
        try:
            self._driver.close(timeout_s)
        finally:
            self._proxy.stop()


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
