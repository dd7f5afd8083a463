"""The bookstore (v1 or v2 by $IDENTITY): sells books and restocks each sale from bookwarehouse.

GET /books-bought -> 200 {"books_bought": n}; GET /buy-a-book/new -> sells one book (n += 1) and POSTs
/restock-books {"restock": 1} to bookwarehouse in the background; GET /healthz/ready -> 200 (not counted);
anything else 404. Every response carries `identity: <IDENTITY>` and `booksbought: n`.

Environment: PORT [14001], IDENTITY [bookstore-v1], BOOKWAREHOUSE_URL [http://bookwarehouse.bookwarehouse:14001],
TIMEOUT_S [2], POD_NAME, POD_NAMESPACE, OSM_LOCAL_POD_DIR.
"""

from __future__ import annotations

import http.client
import json
import threading
from typing import Final, cast
from urllib.parse import urlsplit

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
from .stats import Stats

DEFAULT_WAREHOUSE_URL: Final = "http://bookwarehouse.bookwarehouse:14001"
HEALTH_PATHS: Final = frozenset({"/healthz/ready", "/healthz/alive"})
MAX_PENDING_RESTOCKS: Final = 32
OTHER_PATH: Final = "(other)"


class BookstoreServer(DemoHTTPServer):
    def __init__(
        self,
        address: tuple[str, int],
        *,
        identity: str,
        warehouse_url: str,
        stats: Stats,
        log: Log,
        timeout_s: float = 2.0,
    ) -> None:
        url = urlsplit(warehouse_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"BOOKWAREHOUSE_URL must be http://host[:port], got {warehouse_url!r}")
        super().__init__(address, _Handler, stats, log)
        self.identity = identity
        self.warehouse_host = url.hostname
        self.warehouse_port = url.port or 80
        self.warehouse_path = url.path.rstrip("/") + "/restock-books"
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._books_bought = 0
        self._pending = threading.BoundedSemaphore(MAX_PENDING_RESTOCKS)
        self._last_restock_error: str | None = None

    @property
    def books_bought(self) -> int:
        with self._lock:
            return self._books_bought

    def sell(self) -> int:
        with self._lock:
            self._books_bought += 1
            n = self._books_bought
        if self._pending.acquire(blocking=False):
            threading.Thread(target=self._restock, name="restock", daemon=True).start()
        else:
            self._restock_done(f"restock: more than {MAX_PENDING_RESTOCKS} restocks pending")
        return n

    def _restock(self) -> None:
        try:
            self._restock_done(self._post_restock())
        finally:
            self._pending.release()

    def _post_restock(self) -> str | None:
        """POST /restock-books; None on success, else the error."""
        body = json.dumps({"restock": 1}).encode()
        headers = {
            "client-app": "bookstore",
            "user-agent": f"{self.identity}/1.0",
            "content-type": "application/json",
            "connection": "close",
        }
        conn = http.client.HTTPConnection(self.warehouse_host, self.warehouse_port, timeout=self.timeout_s)
        try:
            conn.request("POST", self.warehouse_path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read()[:200].decode("utf-8", "replace").strip()
        except (OSError, http.client.HTTPException) as e:
            detail = "timed out" if isinstance(e, TimeoutError) else (str(e) or "no response")
            return f"restock: {type(e).__name__}: {detail}"
        finally:
            conn.close()
        if resp.status != 200:
            return f"restock: HTTP {resp.status} {resp.reason}" + (f": {text}" if text else "")
        return None

    def _restock_done(self, error: str | None) -> None:
        self.stats.record_restock(error is None, error)
        with self._lock:
            changed = error != self._last_restock_error
            self._last_restock_error = error
        if changed:  # log when the restock outcome changes
            self.log(error or "restocking from bookwarehouse works")


class _Handler(DispatchHandler):
    def _dispatch(self) -> None:
        srv = cast(BookstoreServer, self.server)
        read_body(self)
        path = self.path.split("?", 1)[0]
        get = self.command == "GET"
        if get and path in HEALTH_PATHS:
            self._reply(srv, 200, {"status": "ok"}, srv.books_bought)
            return
        if get and path == "/books-bought":
            n = srv.books_bought
            status = 200
        elif get and path == "/buy-a-book/new":
            n = srv.sell()
            status = 200
        else:
            n = srv.books_bought
            status = 404
        srv.stats.record_server(path if status == 200 else OTHER_PATH, client_app_header(self), status)
        self._reply(srv, status, {"books_bought": n} if status == 200 else {"error": "not found"}, n)

    def _reply(self, srv: BookstoreServer, status: int, doc: dict[str, object], n: int) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("identity", srv.identity)
        self.send_header("booksbought", str(n))
        self.end_headers()
        self.wfile.write(body)


def serve(
    port: int = 14001,
    *,
    host: str = "0.0.0.0",
    identity: str = "bookstore-v1",
    warehouse_url: str = DEFAULT_WAREHOUSE_URL,
    stats: Stats | None = None,
    log: Log | None = None,
    timeout_s: float = 2.0,
) -> BookstoreServer:
    """Start a bookstore serving in a background thread; the caller calls `.stop()`."""
    server = BookstoreServer(
        (host, port),
        identity=identity,
        warehouse_url=warehouse_url,
        stats=stats or Stats(identity),
        log=log or (lambda _msg: None),
        timeout_s=timeout_s,
    )
    server.start()
    return server


def main() -> int:
    identity = env_str("IDENTITY", "bookstore-v1")
    port = env_int("PORT", 14001)
    warehouse_url = env_str("BOOKWAREHOUSE_URL", DEFAULT_WAREHOUSE_URL)
    timeout_s = env_float("TIMEOUT_S", 2.0)

    def make(stats: Stats, log: Log) -> DemoHTTPServer:
        return BookstoreServer(
            ("0.0.0.0", port),
            identity=identity,
            warehouse_url=warehouse_url,
            stats=stats,
            log=log,
            timeout_s=timeout_s,
        )

    return run_server_main(identity, make, f"{identity} restocking from {warehouse_url}")


if __name__ == "__main__":
    raise SystemExit(main())
