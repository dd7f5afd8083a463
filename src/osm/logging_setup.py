"""Structured log lines (one JSON object per line), as OSM's zerolog output.

A record's `err_code` (see osm.errcode) becomes a field of its line. A message longer than
MAX_MESSAGE characters is cut, so that no input can make one log line arbitrarily long.
"""

from __future__ import annotations

import json
import logging
import sys
import time

MAX_MESSAGE = 8192


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else f"{text[:MAX_MESSAGE]}... ({len(text) - MAX_MESSAGE} more)"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "component": record.name,
            "message": _bounded(record.getMessage()),
        }
        code = getattr(record, "err_code", None)
        if code:
            out["err_code"] = code
        if record.exc_info:
            out["error"] = _bounded(self.formatException(record.exc_info))
        return json.dumps(out)


def setup(level: str = "info", *, json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("watchfiles", "asyncio", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
