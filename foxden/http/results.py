"""The answers of ?wait=false jobs, kept [http] results_ttl_s after they arrive; pure (the clock is passed in)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Kept", "ResultStore", "StoreFull"]


class StoreFull(Exception):
    """[http] max_results jobs are kept, none of them expired."""


class Kept(Enum):
    """What the store holds for an id."""

    UNKNOWN = "unknown"  # never kept, or expired
    PENDING = "pending"  # accepted, no answer yet
    DONE = "done"        # answered; kept until its expiry


@dataclass
class _Entry:
    status: int = 0  # the HTTP status of the answer, once it exists
    body: dict | None = None
    expires_at: float | None = None  # None while pending: a job always gets its answer, then the clock runs


class ResultStore:
    """id -> pending, or (HTTP status, body) until `ttl_s` after the answer; at most `capacity` ids."""

    def __init__(self, ttl_s: float, capacity: int):
        self.ttl_s, self.capacity = ttl_s, capacity
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def expire(self, now: float) -> int:
        """Forget answers past their expiry; returns how many."""
        gone = [k for k, e in self._entries.items() if e.expires_at is not None and e.expires_at <= now]
        for k in gone:
            del self._entries[k]
        return len(gone)

    def reserve(self, job_id: str, now: float) -> bool:
        """Keep `job_id` as pending; False if it is already kept. Raises StoreFull at capacity."""
        self.expire(now)
        if job_id in self._entries:
            return False
        if len(self._entries) >= self.capacity:
            raise StoreFull(f"{len(self._entries)} jobs are kept ([http] max_results); retry later")
        self._entries[job_id] = _Entry()
        return True

    def answer(self, job_id: str, status: int, body: dict, now: float) -> None:
        """The answer of a reserved id; it is kept until now + ttl_s."""
        entry = self._entries.setdefault(job_id, _Entry())
        entry.status, entry.body, entry.expires_at = status, body, now + self.ttl_s

    def get(self, job_id: str, now: float) -> tuple[Kept, int, dict | None]:
        """(what is kept, its HTTP status, its body) for `job_id`."""
        self.expire(now)
        entry = self._entries.get(job_id)
        if entry is None:
            return Kept.UNKNOWN, 0, None
        if entry.expires_at is None:
            return Kept.PENDING, 0, None
        return Kept.DONE, entry.status, entry.body
