"""Browser drivers: how a browser actor launches and talks to the one browser it owns."""
from __future__ import annotations

import os

from foxden.drivers.base import BrowserDied, Driver

__all__ = ["BrowserDied", "Driver", "open_driver", "driver_name"]


def driver_name(engine: str, configured: str) -> str:
    """The driver an engine runs on: "cdp" or "playwright" (`[pool] driver`, "auto" by default).

    Chromium runs on foxden's own CDP connection unless told otherwise: no
    Playwright driver (node, ~80 MB PSS and a hop per call) per browser.
    Firefox and Camoufox speak BiDi and Juggler, which only Playwright drives."""
    if configured == "auto":
        return "cdp" if engine == "chromium" else "playwright"
    return configured


def open_driver(choice, pool, tmpdir: str, jobs=None) -> Driver:
    """A driver for `choice` (an engines.EngineChoice) under `pool` ([pool] config); not launched yet.

    When `jobs` ([jobs] config) restricts egress, the browser gets an egress
    proxy of its own (started here) and every connection goes through it;
    otherwise no proxy runs at all."""
    if jobs is not None:
        from foxden.egress import policy_for

        policy = policy_for(jobs)
        if policy.restricts:
            from foxden.egress.guard import GuardedDriver

            return GuardedDriver(lambda proxy: _driver(choice, pool, tmpdir, proxy), policy)
    return _driver(choice, pool, tmpdir, None)


def _driver(choice, pool, tmpdir: str, proxy: str | None) -> Driver:
    name = driver_name(choice.name, pool.driver)
    if name == "cdp":
        from foxden import engines
        from foxden.drivers.chromium import ChromiumDriver

        command = engines.chromium_command(choice, headless=pool.headless, extra_args=pool.args,
                                           user_data_dir=os.path.join(tmpdir, "profile"), proxy=proxy)
        return ChromiumDriver(command, launch_timeout_s=pool.launch_timeout_s, log_dir=tmpdir,
                              nice=pool.browser_nice)
    from foxden.drivers.playwright_driver import PlaywrightDriver

    return PlaywrightDriver(choice, headless=pool.headless, extra_args=pool.args, nice=pool.browser_nice,
                            proxy=proxy)
