"""A Playwright server for a leased Firefox or Camoufox: Playwright's own node driver runs launchServer."""
from __future__ import annotations

import json
import os
import re
import select
import subprocess
import time
from typing import Any

__all__ = ["PlaywrightServer", "server_options"]

# Run by the node of Playwright's python package, with its playwright-core:
# reads the launch options (JSON) on stdin, prints the server's endpoint and
# its browser's pid as one JSON line, then serves until it is killed.
_SCRIPT = r"""
const pw = require(process.argv[1]);
let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', async () => {
  try {
    const server = await pw.firefox.launchServer(JSON.parse(input));
    process.stdout.write(JSON.stringify({ws: server.wsEndpoint(), pid: server.process().pid}) + '\n');
  } catch (e) {
    process.stderr.write(String((e && e.stack) || e) + '\n');
    process.exit(1);
  }
});
"""


def _camel(key: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)


def server_options(kwargs: dict[str, Any], secret: str) -> dict[str, Any]:
    """launchServer's options from Python launch() kwargs (engines.launch_kwargs): loopback, port 0, `secret` path."""
    out = {_camel(k): v for k, v in kwargs.items() if v is not None}
    if "env" in out:
        out["env"] = {str(k): str(v) for k, v in out["env"].items()}
    out.update(host="127.0.0.1", port=0, wsPath="/" + secret)
    return out


def _driver() -> tuple[str, str]:
    """(node, playwright-core's directory) of the installed Playwright package."""
    from playwright._impl._driver import compute_driver_executable

    node, cli = compute_driver_executable()
    return str(node), os.path.dirname(str(cli))


def driver_version(package_dir: str) -> str:
    """The server's Playwright version: a client must use the same."""
    with open(os.path.join(package_dir, "package.json")) as f:
        return json.load(f)["version"]


class PlaywrightServer:
    """One node process serving one Firefox; both are children of the calling (browser actor) process."""

    def __init__(self, options: dict[str, Any], log_path: str):
        self.options, self.log_path = options, log_path
        self.proc: subprocess.Popen | None = None
        self.ws_endpoint = ""
        self.browser_pid: int | None = None
        self.version = ""

    def start(self, timeout_s: float) -> None:
        """Start node and wait for its endpoint line; raises with its log's tail on failure."""
        node, package = _driver()
        self.version = driver_version(package)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([node, "-e", _SCRIPT, package], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        self.proc.stdin.write(json.dumps(self.options).encode())
        self.proc.stdin.close()
        line = self._first_line(time.monotonic() + timeout_s)
        found = json.loads(line)
        self.ws_endpoint, self.browser_pid = found["ws"], int(found["pid"])

    def _first_line(self, deadline: float) -> bytes:
        out = self.proc.stdout
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([out], [], [], left)[0]:
                raise RuntimeError(f"the Playwright server did not start in time{self._tail()}")
            chunk = os.read(out.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"the Playwright server exited ({self.proc.wait()}){self._tail()}")
            buf += chunk
        return buf.split(b"\n", 1)[0]

    def _tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 1500))
                tail = f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return f"; its log ends: {tail}" if tail else ""
