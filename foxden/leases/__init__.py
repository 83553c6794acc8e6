"""Leased browsers: one browser of its own for a caller's Playwright or Puppeteer (see docs/leases.md)."""
from __future__ import annotations

from foxden.leases.terms import (LeaseRefused, LeaseTerms, admit, decide_terms, endpoint_url, lease_verdict, new_id,
                                 new_secret)

__all__ = ["LeaseRefused", "LeaseTerms", "admit", "decide_terms", "endpoint_url", "lease_verdict", "new_id",
           "new_secret"]
