"""One line per event, ``key=value`` pairs, on stderr: greppable by people and parseable by log shippers.

Call sites log ``"event=name key=%s ..."``; anything else (uvicorn's own lines) is wrapped as a quoted
``msg=``. Tracebacks are folded into one quoted ``exc=`` field so an event never spans several lines.
"""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["KeyValueFormatter", "configure_logging"]


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... event=... k=v``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        message = record.getMessage()
        body = message if message.startswith("event=") else "msg=" + _quote(message)
        line = f"ts={stamp}.{int(record.msecs):03d}Z level={record.levelname.lower()} logger={record.name} {body}"
        if record.exc_info:
            line += " exc=" + _quote(self.formatException(record.exc_info))
        return line


def configure_logging(level: str) -> None:
    """Route every logger (ours, the log's, uvicorn's) through one stderr handler; access log only at debug."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = level.lower() == "debug"
    access.disabled = not access.propagate
    # httpx logs one line per request at info (brokers talk to each other and to the controller all the time)
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG if level.lower() == "debug" else logging.WARNING)
