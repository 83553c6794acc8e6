"""What a browser leaves on the machine: which processes look like one, and its entries in the system temp dir."""
from __future__ import annotations

import os
import tempfile

import psutil

__all__ = ["BROWSERISH", "TMP_PREFIXES", "browserish", "browser_temp_entries"]

# Substrings of a browser process's name or argv[0]: Chromium and its zygotes,
# renderers and GPU process, Firefox, Playwright's Node driver, and crash
# handlers (chrome_crashpad_handler, crashpad_handler), which double-fork out
# of any process tree.
BROWSERISH = ("chrom", "firefox", "node", "crashpad")

# What Playwright, Chromium and Firefox leave in the system temp dir when a
# browser is killed before it can clean up (playwright_chromiumdev_profile-*,
# playwright-artifacts-*, org.chromium.Chromium.*, rust_mozprofile*);
# foxden's browsers keep theirs under the state dir.
TMP_PREFIXES = ("playwright", "org.chromium.Chromium", "rust_mozprofile")


def browserish(p: psutil.Process) -> bool:
    """True if p's name or argv[0] looks like a browser process (False once it is gone)."""
    try:
        name = p.name()
        exe = os.path.basename((p.cmdline() or [""])[0])
    except psutil.Error:
        return False
    return any(k in name or k in exe for k in BROWSERISH)


def browser_temp_entries(tmp: str | None = None) -> set[str]:
    """Names of the browser leftovers (TMP_PREFIXES) in tmp (default: the system temp dir)."""
    tmp = tmp or tempfile.gettempdir()
    try:
        return {n for n in os.listdir(tmp) if n.startswith(TMP_PREFIXES)}
    except OSError:
        return set()
