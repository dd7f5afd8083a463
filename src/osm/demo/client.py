"""The buyer loop shared by bookbuyer and bookthief.

Each iteration GETs /books-bought and /buy-a-book/new from the bookstore, each on a fresh connection
(`Connection: close`) so the mesh load-balances every request and a denied request shows up as a failure.
Success is a 200; a connection error or timeout is status 0. The bookstore version that answered comes
from the `identity` response header.

Environment: CLIENT_APP [bookbuyer], BOOKSTORE_URL [http://bookstore.bookstore:14001], WAIT_MS [200],
TIMEOUT_S [2], CI_MIN_SUCCESS_THRESHOLD [5], EXPECTED_RESPONSE_CODE [200] (the code the sentinels count
as success; e.g. 0 for a bookthief that must be denied), POD_NAME, POD_NAMESPACE, OSM_LOCAL_POD_DIR.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from .common import (
    Log,
    StdoutLog,
    env_float,
    env_int,
    env_str,
    install_stop_signals,
    print_line,
    stats_from_env,
    stats_path_from_env,
    wait_for_stop,
)
from .stats import Stats, StatsWriter

SUCCESS_SENTINEL: Final = "MAESTRO! THIS TEST SUCCEEDED!"
FAILURE_SENTINEL: Final = "MAESTRO, WE HAVE A PROBLEM! THIS TEST FAILED!"
FAILURE_THRESHOLD: Final = 10
PATHS: Final = ("/books-bought", "/buy-a-book/new")
DEFAULT_BOOKSTORE_URL: Final = "http://bookstore.bookstore:14001"


@dataclass(frozen=True)
class ClientConfig:
    client_app: str = "bookbuyer"
    bookstore_url: str = DEFAULT_BOOKSTORE_URL
    wait_ms: int = 200
    timeout_s: float = 2.0
    success_threshold: int = 5
    failure_threshold: int = FAILURE_THRESHOLD
    expected_status: int = 200

    @classmethod
    def from_env(cls, default_app: str = "bookbuyer") -> ClientConfig:
        return cls(
            client_app=env_str("CLIENT_APP", default_app),
            bookstore_url=env_str("BOOKSTORE_URL", DEFAULT_BOOKSTORE_URL),
            wait_ms=env_int("WAIT_MS", 200),
            timeout_s=env_float("TIMEOUT_S", 2.0),
            success_threshold=env_int("CI_MIN_SUCCESS_THRESHOLD", 5),
            expected_status=env_int("EXPECTED_RESPONSE_CODE", 200),
        )


@dataclass(frozen=True)
class Outcome:
    path: str
    status: int  # 0 = no response
    version: str | None = None
    books_bought: str | None = None
    error: str | None = None


class SentinelTracker:
    """Says when to print the CI sentinels: once per streak of `success_threshold` successes or
    `failure_threshold` failures; a streak broken by the other outcome re-arms its sentinel."""

    def __init__(self, success_threshold: int = 5, failure_threshold: int = FAILURE_THRESHOLD) -> None:
        self.success_threshold = max(1, success_threshold)
        self.failure_threshold = max(1, failure_threshold)
        self.successes = 0
        self.failures = 0

    def observe(self, ok: bool) -> str | None:
        if ok:
            self.failures = 0
            self.successes += 1
            return SUCCESS_SENTINEL if self.successes == self.success_threshold else None
        self.successes = 0
        self.failures += 1
        return FAILURE_SENTINEL if self.failures == self.failure_threshold else None


class BookstoreClient:
    """Makes one request per call, on a fresh connection."""

    def __init__(self, config: ClientConfig) -> None:
        url = urlsplit(config.bookstore_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(
                f"BOOKSTORE_URL must be http://host[:port][/prefix], got {config.bookstore_url!r}"
            )
        self.config = config
        self.host = url.hostname
        self.port = url.port or 80
        self.prefix = url.path.rstrip("/")
        self.headers = {
            "client-app": config.client_app,
            "user-agent": f"{config.client_app}/1.0",
            "accept": "application/json",
            "connection": "close",
        }

    def get(self, path: str) -> Outcome:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.config.timeout_s)
        try:
            conn.request("GET", self.prefix + path, headers=self.headers)
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as e:
            detail = "timed out" if isinstance(e, TimeoutError) else (str(e) or "no response")
            return Outcome(path, 0, error=f"GET {path}: {type(e).__name__}: {detail}")
        finally:
            conn.close()
        error = None
        if resp.status != 200:
            text = body[:200].decode("utf-8", "replace").strip()
            error = f"GET {path}: HTTP {resp.status} {resp.reason}" + (f": {text}" if text else "")
        return Outcome(
            path,
            resp.status,
            version=resp.getheader("identity"),
            books_bought=resp.getheader("booksbought"),
            error=error,
        )


def run(
    iterations: int | None = None,
    config: ClientConfig | None = None,
    *,
    stats: Stats | None = None,
    stop: threading.Event | None = None,
    log: Log | None = None,
    emit: Log = print_line,
) -> Stats:
    """Run the buyer loop for `iterations` iterations (None = until `stop` is set); return the stats.

    `log` gets event lines (a path's outcome changed); `emit` gets the sentinel lines verbatim.
    """
    config = config or ClientConfig()
    stats = stats or Stats(config.client_app)
    stop = stop or threading.Event()
    log = log or StdoutLog(config.client_app)
    client = BookstoreClient(config)
    tracker = SentinelTracker(config.success_threshold, config.failure_threshold)
    last_status: dict[str, int] = {}
    log(f"buying books from {config.bookstore_url} every {config.wait_ms} ms")
    done = 0
    while (iterations is None or done < iterations) and not stop.is_set():
        for path in PATHS:
            if stop.is_set():
                break
            out = client.get(path)
            stats.record_client(out.status, out.version, out.error, path=path)
            if last_status.get(path) != out.status:
                last_status[path] = out.status
                detail = out.error or f"identity={out.version} booksbought={out.books_bought}"
                log(f"GET {path} -> {out.status} ({detail})")
            sentinel = tracker.observe(out.status == config.expected_status)
            if sentinel is not None:
                emit(sentinel)
        done += 1
        if (iterations is None or done < iterations) and config.wait_ms > 0:
            stop.wait(config.wait_ms / 1000)
    return stats


def main(default_app: str = "bookbuyer") -> int:
    """`python -m osm.demo.bookbuyer|bookthief`: loop until SIGTERM/SIGINT, then exit 0."""
    config = ClientConfig.from_env(default_app)
    BookstoreClient(config)  # validate BOOKSTORE_URL before starting
    stop = threading.Event()
    install_stop_signals(stop)
    log = StdoutLog(config.client_app)
    stats = stats_from_env(config.client_app)
    writer = StatsWriter(stats, stats_path_from_env(), log=log)
    writer.start()
    loop = threading.Thread(
        target=run, kwargs={"config": config, "stats": stats, "stop": stop, "log": log}, daemon=True
    )
    loop.start()
    try:
        wait_for_stop(stop, loop.is_alive)
    finally:
        crashed = not stop.is_set()
        stop.set()
        loop.join(0.5)  # a request still in flight is abandoned (daemon thread)
        writer.stop(timeout=0.3)
        log("loop crashed" if crashed else "stopped")
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main(env_str("CLIENT_APP", "bookbuyer")))
