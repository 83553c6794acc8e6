"""`foxden lease` and `foxden lease end ID`: the command line's side of leases."""
from __future__ import annotations

import json
import sys
import time

__all__ = ["add_parser", "cmd_lease"]


def add_parser(sub, with_config, positive_seconds) -> None:
    """Register `lease [end ID]` on the `foxden` subparsers."""
    le = with_config(sub.add_parser("lease", help="lease a browser for your own Playwright/Puppeteer; "
                                                  "`lease end ID` ends one"))
    le.add_argument("action", nargs="?", choices=["end"], help="end: end the lease ID now")
    le.add_argument("id", nargs="?", help="the lease to end")
    le.add_argument("--engine", choices=["camoufox", "chromium", "firefox"], help="default: the pool's engine")
    le.add_argument("--ttl", type=positive_seconds, metavar="S", help="lifetime (default: [leases] ttl_s)")
    le.add_argument("--idle", type=positive_seconds, metavar="S",
                    help="end after S seconds without a client (default: [leases] idle_s)")
    le.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    le.set_defaults(fn=cmd_lease)


def cmd_lease(args) -> int:
    from foxden import cli
    from foxden.client import ClientError, ServerError

    if (args.action == "end") != (args.id is not None):
        print("foxden: lease end needs the lease's id (and only `lease end` takes one)", file=sys.stderr)
        return cli.EXIT_USAGE
    config = cli._config(args)
    with cli._client(config) as client:
        try:
            if args.action == "end":
                answer = client.end_lease(args.id)
            else:
                answer = client.lease(args.engine, args.ttl, args.idle)
        except ServerError as exc:
            print(f"foxden: {exc}", file=sys.stderr)
            return cli.EXIT_USAGE if exc.code in ("bad_field", "missing_field") else cli.EXIT_JOB
        except ClientError as exc:
            print(f"foxden: {exc}", file=sys.stderr)
            return cli.EXIT_UNAVAILABLE
    if args.json:
        print(json.dumps(answer))
    elif args.action == "end":
        print(f"lease {answer['lease']}: " + ("ended, its browser killed" if answer["existed"]
                                             else "not live (nothing to end)"))
    else:
        left = answer["expires_at"] - time.time()
        print(f"lease {answer['lease']} ({answer['engine']}), expires in {left:.0f}s")
        print(f"endpoint {answer['endpoint']}")
        if "playwright_version" in answer:
            print(f"connect with playwright.firefox.connect(endpoint), Playwright {answer['playwright_version']}")
        else:
            print("connect with playwright.chromium.connect_over_cdp(endpoint), or Puppeteer's connect")
    return cli.EXIT_OK
