"""Logging on stderr, as text or JSON lines, for the daemon and (via Thespian) its actors."""
from __future__ import annotations

import json
import logging
import os
import sys
import time

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, pid, instance, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "instance": os.environ.get("FOXDEN_OWNER", "").split("/")[0] or None,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def _formatter_spec(config) -> dict:
    if config.daemon.log_format == "json":
        return {"()": "foxden.logs.JsonFormatter"}
    return {"format": TEXT_FORMAT}


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


def setup_logging(config) -> None:
    """Configure this process's root logger like the actors'."""
    import logging.config

    logging.config.dictConfig(log_defs(config))
    logging.getLogger().handlers[0].stream = sys.stderr
