"""What a browser actor needs of a browser driver: launch, run a job, liveness, close."""
from __future__ import annotations

from foxden.protocols.messages import JobSpec, Outcome


class BrowserDied(Exception):
    """The browser died during a job: no answer from the driver, the supervisor answers for it."""


class Driver:
    """One launched browser, owned by exactly one browser actor.

    A driver never cancels its own job: run() blocks until the attempt ends,
    and an attempt that overruns is ended by the supervisor killing the
    actor and its processes. close() must return within about timeout_s
    whatever the browser does (a frozen one never answers)."""

    engine = ""
    version = ""

    def launch(self) -> None:
        """Start the browser; raises engines.EngineUnavailable for a binary that cannot run."""
        raise NotImplementedError

    def pids(self) -> list[int]:
        """The browser's processes, its main process first (empty once it is gone)."""
        raise NotImplementedError

    def alive(self) -> bool:
        """True while the browser runs and its connection is open."""
        raise NotImplementedError

    def run(self, job: JobSpec, budget_s: float) -> Outcome:
        """Run one attempt; an Outcome if the browser survived it, else BrowserDied."""
        raise NotImplementedError

    def sessions(self) -> tuple[str, ...]:
        """The sessions whose contexts this browser holds."""
        raise NotImplementedError

    def end_session(self, session: str) -> bool:
        """Close session's context; False if this browser held none by that name."""
        raise NotImplementedError

    def storage_state(self, session: str) -> dict | None:
        """The session's cookies and localStorage in Playwright's storage-state shape; None if no context holds it.

        A JobSpec with `restore` makes the session's context afresh from such a state."""
        return None

    def close(self, timeout_s: float) -> None:
        """Close politely, then by force; idempotent; returns within ~timeout_s."""
        raise NotImplementedError
