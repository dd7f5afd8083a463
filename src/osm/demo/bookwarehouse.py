"""The bookwarehouse: restocks bookstores, keeping its stock in Redis (over TCP, through the mesh).

POST /restock-books {"restock": n} -> INCRBY books n -> 200 {"stock": total}; a Redis failure -> 503 with
the error text; GET /healthz/ready -> 200 (not counted); anything else 404.

Environment: PORT [14001], REDIS_HOST [redis.bookwarehouse], REDIS_PORT [6379], TIMEOUT_S [2],
POD_NAME, POD_NAMESPACE, OSM_LOCAL_POD_DIR.
"""

from __future__ import annotations

import json
import threading
from typing import Final, cast

from .common import (
    DemoHTTPServer,
    DispatchHandler,
    Log,
    client_app_header,
    env_float,
    env_int,
    env_str,
    read_body,
    run_server_main,
)
from .resp import RedisClient, RedisError
from .stats import Stats

APP: Final = "bookwarehouse"
STOCK_KEY: Final = "books"
HEALTH_PATHS: Final = frozenset({"/healthz/ready", "/healthz/alive"})
OTHER_PATH: Final = "(other)"


class BookwarehouseServer(DemoHTTPServer):
    def __init__(self, address: tuple[str, int], *, redis: RedisClient, stats: Stats, log: Log) -> None:
        super().__init__(address, _Handler, stats, log)
        self.redis = redis
        self._lock = threading.Lock()
        self._last_redis_error: str | None = None

    def restock(self, n: int) -> int:
        """INCRBY the stock; raises RedisError. Logs when Redis starts/stops failing."""
        try:
            stock = self.redis.incrby(STOCK_KEY, n)
        except RedisError as e:
            self._redis_state(f"redis error: {e}")
            raise
        self._redis_state(None)
        return stock

    def _redis_state(self, error: str | None) -> None:
        with self._lock:
            changed = error != self._last_redis_error
            self._last_redis_error = error
        if changed:
            self.log(error or f"redis {self.redis.host}:{self.redis.port} OK")

    def server_close(self) -> None:
        super().server_close()
        self.redis.close()


class _Handler(DispatchHandler):
    def _dispatch(self) -> None:
        srv = cast(BookwarehouseServer, self.server)
        body = read_body(self)
        path = self.path.split("?", 1)[0]
        if self.command == "GET" and path in HEALTH_PATHS:
            self._reply(200, {"status": "ok"})
            return
        client = client_app_header(self)
        if self.command != "POST" or path != "/restock-books":
            srv.stats.record_server(OTHER_PATH, client, 404)
            self._reply(404, {"error": "not found"})
            return
        n = _restock_amount(body)
        if n is None:
            error = 'bad request: expected JSON {"restock": <non-negative int>}'
            srv.stats.record_server(path, client, 400, error)
            self._reply(400, {"error": error})
            return
        try:
            stock = srv.restock(n)
        except RedisError as e:
            error = f"redis error: {e}"
            srv.stats.record_server(path, client, 503, error)
            self._reply(503, error)
            return
        srv.stats.record_server(path, client, 200)
        self._reply(200, {"stock": stock})

    def _reply(self, status: int, doc: dict[str, object] | str) -> None:
        if isinstance(doc, str):
            body, ctype = (doc + "\n").encode(), "text/plain; charset=utf-8"
        else:
            body, ctype = json.dumps(doc).encode(), "application/json"
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.send_header("identity", APP)
        self.end_headers()
        self.wfile.write(body)


def _restock_amount(body: bytes) -> int | None:
    if not body.strip():
        return 1
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    n = doc.get("restock", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        return None
    return n


def serve(
    port: int = 14001,
    *,
    host: str = "0.0.0.0",
    redis_host: str = "redis.bookwarehouse",
    redis_port: int = 6379,
    timeout_s: float = 2.0,
    stats: Stats | None = None,
    log: Log | None = None,
) -> BookwarehouseServer:
    """Start a bookwarehouse serving in a background thread; the caller calls `.stop()`."""
    server = BookwarehouseServer(
        (host, port),
        redis=RedisClient(redis_host, redis_port, timeout_s),
        stats=stats or Stats(APP),
        log=log or (lambda _msg: None),
    )
    server.start()
    return server


def main() -> int:
    port = env_int("PORT", 14001)
    redis_host = env_str("REDIS_HOST", "redis.bookwarehouse")
    redis_port = env_int("REDIS_PORT", 6379)
    timeout_s = env_float("TIMEOUT_S", 2.0)

    def make(stats: Stats, log: Log) -> DemoHTTPServer:
        redis = RedisClient(redis_host, redis_port, timeout_s)
        return BookwarehouseServer(("0.0.0.0", port), redis=redis, stats=stats, log=log)

    return run_server_main(APP, make, f"{APP} keeping stock in redis {redis_host}:{redis_port}")


if __name__ == "__main__":
    raise SystemExit(main())
