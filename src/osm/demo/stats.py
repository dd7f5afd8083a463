"""Cumulative per-app counters, written atomically as `stats.json` for the dashboard to read.

Readers compute rates from the deltas between two snapshots (see `osm.demo.dashboard.rates`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STATS_FILE = "stats.json"
WRITE_INTERVAL_S = 0.5


class Stats:
    """Thread-safe counters for one app; `snapshot()` gives the stats.json document."""

    def __init__(
        self,
        app: str,
        pod: str = "",
        namespace: str = "",
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.pod = pod
        self.namespace = namespace
        self._clock = clock
        self._lock = threading.Lock()
        self.started = clock()
        self._requests = 0
        self._success = 0
        self._failure = 0
        self._by_status: dict[str, int] = {}
        self._by_version: dict[str, int] = {}
        self._by_path: dict[str, int] = {}
        self._by_client: dict[str, int] = {}
        self._restock_success = 0
        self._restock_failure = 0
        self._last_error: str | None = None

    def record_client(
        self, status: int, version: str | None, error: str | None, *, path: str | None = None
    ) -> None:
        """One request made by a client app: success iff 200; status 0 = no response (connection error)."""
        with self._lock:
            self._count(status, ok=status == 200)
            if version:
                _incr(self._by_version, version)
            if path is not None:
                _incr(self._by_path, path)
            if error:
                self._last_error = error

    def record_server(self, path: str, client: str | None, status: int, error: str | None = None) -> None:
        """One request served: success iff 2xx/3xx; `client` is the request's `client-app` header."""
        with self._lock:
            self._count(status, ok=200 <= status < 400)
            _incr(self._by_path, path)
            _incr(self._by_client, client or "unknown")
            if error:
                self._last_error = error

    def record_restock(self, ok: bool, error: str | None = None) -> None:
        """One bookstore -> bookwarehouse restock call (counted apart from the requests served)."""
        with self._lock:
            if ok:
                self._restock_success += 1
            else:
                self._restock_failure += 1
            if error:
                self._last_error = error

    def _count(self, status: int, *, ok: bool) -> None:
        self._requests += 1
        if ok:
            self._success += 1
        else:
            self._failure += 1
        _incr(self._by_status, str(status))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "app": self.app,
                "pod": self.pod,
                "namespace": self.namespace,
                "time": self._clock(),
                "started": self.started,
                "requests": self._requests,
                "success": self._success,
                "failure": self._failure,
                "by_status": dict(self._by_status),
                "by_version": dict(self._by_version),
                "by_path": dict(self._by_path),
                "by_client": dict(self._by_client),
                "restock_success": self._restock_success,
                "restock_failure": self._restock_failure,
                "last_error": self._last_error,
            }

    def write(self, path: Path | str) -> dict[str, Any]:
        """Atomically replace `path` with the current snapshot (temp file in the same dir + os.replace)."""
        snap = self.snapshot()
        write_json_atomic(Path(path), snap)
        return snap


def _incr(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_stats(path: Path | str) -> dict[str, Any] | None:
    """The stats document at `path`, or None if it is missing, partial or not a JSON object."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def summary_line(prev: dict[str, Any], cur: dict[str, Any]) -> str | None:
    """A one-line description of what changed between two snapshots, or None if nothing did."""
    d_req = cur["requests"] - prev["requests"]
    d_rok = cur["restock_success"] - prev["restock_success"]
    d_rfail = cur["restock_failure"] - prev["restock_failure"]
    if d_req == 0 and d_rok == 0 and d_rfail == 0:
        return None
    parts = [
        f"+{d_req} req (ok +{cur['success'] - prev['success']}, fail +{cur['failure'] - prev['failure']})"
    ]
    for label, key in (("status", "by_status"), ("version", "by_version"), ("client", "by_client")):
        deltas = _deltas(prev[key], cur[key])
        if deltas:
            parts.append(f"{label} " + " ".join(f"{k}=+{v}" for k, v in deltas.items()))
    if d_rok or d_rfail:
        parts.append(f"restock ok +{d_rok} fail +{d_rfail}")
    parts.append(f"total {cur['requests']}")
    return "; ".join(parts)


def _deltas(prev: dict[str, int], cur: dict[str, int]) -> dict[str, int]:
    out = {k: v - prev.get(k, 0) for k, v in sorted(cur.items())}
    return {k: v for k, v in out.items() if v}


class StatsWriter(threading.Thread):
    """Daemon thread writing `stats` to `path` every `interval` s (and once more on `stop()`).

    With `log`, also logs a summary line (at most one per `log_interval` s) whenever the counters moved.
    `path` may be None (no file; logging only).
    """

    def __init__(
        self,
        stats: Stats,
        path: Path | str | None,
        *,
        interval: float = WRITE_INTERVAL_S,
        log: Callable[[str], None] | None = None,
        log_interval: float = 1.0,
    ) -> None:
        super().__init__(name=f"stats-writer-{stats.app}", daemon=True)
        self.stats = stats
        self.path = Path(path) if path is not None else None
        self.interval = interval
        self._log = log
        self._log_interval = log_interval
        self._stopped = threading.Event()
        self._tick_lock = threading.Lock()
        self._last_logged = stats.snapshot()
        self._last_log_time = 0.0
        self._last_write_error: str | None = None
        self.writes = 0

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.tick()

    def tick(self) -> None:
        with self._tick_lock:
            snap = self.stats.snapshot()
            if self.path is not None:
                try:
                    write_json_atomic(self.path, snap)
                    self.writes += 1
                    self._last_write_error = None
                except OSError as e:
                    msg = f"cannot write {self.path}: {e}"
                    if msg != self._last_write_error and self._log is not None:
                        self._log(msg)
                    self._last_write_error = msg
            if self._log is not None:
                now = time.monotonic()
                if now - self._last_log_time >= self._log_interval:
                    line = summary_line(self._last_logged, snap)
                    if line is not None:
                        self._log(line)
                    self._last_logged = snap
                    self._last_log_time = now

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread and write a final snapshot."""
        self._stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)
        self.tick()
