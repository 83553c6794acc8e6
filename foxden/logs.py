"""Logging on stderr, as text or JSON lines, for the daemon and (via Thespian) its actors."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time

from foxden.procs import MARKER_ENV

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
# Context carried by every record: which daemon, which actor, and when known
# the browser, job and session a line is about.
CONTEXT_FIELDS = ("instance", "actor", "browser", "job", "session")
_context: dict[str, str] = {}
_base_factory = logging.getLogRecordFactory()


def _record_factory(*args, **kwargs) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    for key in CONTEXT_FIELDS:
        setattr(record, key, _context.get(key))
    return record


def install_context(actor: str) -> None:
    """Stamp every record of this process with the instance and actor (and set_context's fields)."""
    _context["instance"] = os.environ.get(MARKER_ENV, "").split("/")[0] or None
    _context["actor"] = actor
    logging.setLogRecordFactory(_record_factory)


def set_context(**fields) -> None:
    """Set context fields for every later record of this process (a browser actor's id)."""
    _context.update({k: v for k, v in fields.items() if v is not None})


@contextlib.contextmanager
def context(**fields):
    """Add browser/job/session fields to the records logged inside the block."""
    saved = dict(_context)
    _context.update({k: v for k, v in fields.items() if v is not None})
    try:
        yield
    finally:
        _context.clear()
        _context.update(saved)


class TextFormatter(logging.Formatter):
    """The text format, with the context fields that are set appended as key=value."""

    def __init__(self):
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_FIELDS[2:] if getattr(record, k, None))
        return f"{line} [{extra}]" if extra else line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, pid, instance, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        doc.setdefault("instance", os.environ.get(MARKER_ENV, "").split("/")[0] or None)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def _formatter_spec(config) -> dict:
    if config.daemon.log_format == "json":
        return {"()": "foxden.logs.JsonFormatter"}
    return {"()": "foxden.logs.TextFormatter"}


def log_defs(config) -> dict:
    """logging.config dict that Thespian applies in its logger process for all actors."""
    level = config.daemon.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"foxden": _formatter_spec(config)},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "foxden", "level": level}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {"thespian": {"level": "WARNING"}},
    }


def write_stderr(config, logger: logging.Logger, level: int, msg: str, *args) -> None:
    """Format one record as the configured handlers would and write it to this process's stderr.

    For an actor whose Thespian logger process is gone: its records would go
    nowhere, and Thespian refuses handlers on an actor's loggers."""
    record = logger.makeRecord(logger.name, level, "(direct)", 0, msg, args, None)
    formatter = JsonFormatter() if config.daemon.log_format == "json" else TextFormatter()
    sys.stderr.write(formatter.format(record) + "\n")
    sys.stderr.flush()


def setup_logging(config) -> None:
    """Configure this process's root logger like the actors'."""
    import logging.config

    logging.config.dictConfig(log_defs(config))
    install_context("daemon")
    logging.getLogger().handlers[0].stream = sys.stderr
