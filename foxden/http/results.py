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
    size: int = 0
    expires_at: float | None = None  # None while pending: a job always gets its answer, then the clock runs


class ResultStore:
    """id -> pending, or (HTTP status, body) until `ttl_s` after the answer; at most `capacity` ids and
    `max_bytes` of answers (beyond it the oldest answers are forgotten first: see evicted)."""

    def __init__(self, ttl_s: float, capacity: int, max_bytes: int = 1 << 62):
        self.ttl_s, self.capacity, self.max_bytes = ttl_s, capacity, max_bytes
        self._entries: dict[str, _Entry] = {}
        self.bytes = 0  # the answers' sizes, as the caller measured them
        self.evicted = 0  # answers forgotten before their expiry to stay within max_bytes

    def __len__(self) -> int:
        return len(self._entries)

    def expire(self, now: float) -> int:
        """Forget answers past their expiry; returns how many."""
        gone = [k for k, e in self._entries.items() if e.expires_at is not None and e.expires_at <= now]
        for k in gone:
            self.bytes -= self._entries.pop(k).size
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

    def answer(self, job_id: str, status: int, body: dict, now: float, size: int = 0) -> None:
        """The answer of a reserved id (`size` bytes); it is kept until now + ttl_s, or until newer
        answers need its room under max_bytes (oldest answers go first; pending ids are never dropped)."""
        entry = self._entries.setdefault(job_id, _Entry())
        entry.status, entry.body, entry.expires_at, entry.size = status, body, now + self.ttl_s, size
        self.bytes += size
        answered = sorted((e.expires_at, k) for k, e in self._entries.items() if e.expires_at is not None)
        for _, key in answered:
            if self.bytes <= self.max_bytes:
                break
            if key != job_id:
                self.bytes -= self._entries.pop(key).size
                self.evicted += 1

    def get(self, job_id: str, now: float) -> tuple[Kept, int, dict | None]:
        """(what is kept, its HTTP status, its body) for `job_id`."""
        self.expire(now)
        entry = self._entries.get(job_id)
        if entry is None:
            return Kept.UNKNOWN, 0, None
        if entry.expires_at is None:
            return Kept.PENDING, 0, None
        return Kept.DONE, entry.status, entry.body
