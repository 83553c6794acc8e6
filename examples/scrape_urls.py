"""Fetch the title of many pages through a running foxden daemon, with the asyncio client.

    python examples/scrape_urls.py -c config.toml https://example.org/ https://example.net/
    python examples/scrape_urls.py -c config.toml -f urls.txt --concurrency 16 > titles.jsonl

Prints one JSON line per URL as its answer arrives (not in input order):
{"url": ..., "status": "ok", "title": ..., "http_status": 200, "error": null, "elapsed_ms": ...}.
Exits 0 if every page loaded, 1 if some did not, 2 on a bad config, 3 if the daemon cannot be reached.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from foxden import AsyncClient, ClientError, ConfigError, job_request


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-c", "--config", default=os.environ.get("FOXDEN_CONFIG", "config.toml"),
                   help="the daemon's config file (default: $FOXDEN_CONFIG or ./config.toml)")
    p.add_argument("-f", "--file", help="read URLs from this file, one a line ('-' = stdin; # starts a comment)")
    p.add_argument("--concurrency", type=int, default=8, help="jobs in flight at once (default: 8)")
    p.add_argument("--timeout", type=float, help="seconds per page (default: the daemon's [jobs] timeout_s)")
    p.add_argument("urls", nargs="*", help="URLs to fetch")
    args = p.parse_args(argv)
    if args.file:
        with (sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")) as f:
            args.urls += [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    if not args.urls:
        p.error("give URLs, or a file of them with -f")
    return args


async def scrape(args: argparse.Namespace) -> int:
    jobs = [job_request(url, timeout_s=args.timeout) for url in args.urls]
    failures = 0
    async with AsyncClient.from_config(args.config) as client:
        async for _, job, answer in client.submit_many(jobs, concurrency=args.concurrency):
            failures += answer.status != "ok"
            print(json.dumps({
                "url": job.url,
                "status": answer.status,
                "title": answer.result.title if answer.result else None,
                "http_status": answer.result.http_status if answer.result else None,
                "error": answer.error.code if answer.error else None,
                "elapsed_ms": answer.elapsed_ms,
            }), flush=True)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(scrape(args))
    except ConfigError as exc:
        print(f"scrape_urls: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"scrape_urls: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
