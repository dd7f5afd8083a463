"""What the demo apps share: environment parsing, stdout logging, SIGTERM handling, the HTTP server base."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

from .stats import STATS_FILE, Stats, StatsWriter

Log = Callable[[str], None]


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"invalid integer in ${name}: {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"invalid number in ${name}: {raw!r}") from None


class StdoutLog:
    """Logs `HH:MM:SS app message` lines to (the current) sys.stdout, flushed."""

    def __init__(self, app: str) -> None:
        self.app = app
        self._lock = threading.Lock()

    def __call__(self, msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {self.app}: {msg}\n"
        with self._lock:
            sys.stdout.write(line)
            sys.stdout.flush()


def print_line(line: str) -> None:
    """Print `line` as is (the sentinels must appear verbatim)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def stats_from_env(app: str) -> Stats:
    pod = env_str("POD_NAME", socket.gethostname())
    return Stats(app, pod=pod, namespace=env_str("POD_NAMESPACE", ""))


def stats_path_from_env() -> Path | None:
    pod_dir = os.environ.get("OSM_LOCAL_POD_DIR", "").strip()
    return Path(pod_dir) / STATS_FILE if pod_dir else None


def install_stop_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop` (call from the main thread)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def wait_for_stop(stop: threading.Event, alive: Callable[[], bool] | None = None) -> None:
    """Block (in short, signal-friendly waits) until `stop` is set or `alive()` turns false."""
    while not stop.wait(0.1):
        if alive is not None and not alive():
            return


def client_app_header(handler: BaseHTTPRequestHandler) -> str | None:
    value = handler.headers.get("client-app")
    return value.strip() if value else None


def read_body(handler: BaseHTTPRequestHandler, limit: int = 1 << 20) -> bytes:
    """Read the request body (also keeps a keep-alive connection in sync)."""
    try:
        length = int(handler.headers.get("content-length") or 0)
    except ValueError:
        length = 0
    return handler.rfile.read(min(length, limit)) if length > 0 else b""


class DispatchHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive (the sidecar reuses connections); every method goes to `_dispatch`."""

    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections (from the sidecar) do not hold a thread forever

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        raise NotImplementedError


class DemoHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that serves from a background thread: `start()`, `stop()`, `port`."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], stats: Stats, log: Log
    ) -> None:
        super().__init__(address, handler)
        self.stats = stats
        self.log = log
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=f"serve-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(1.0)
            self._thread = None
        self.server_close()


def run_server_main(app: str, make: Callable[[Stats, Log], DemoHTTPServer], banner: str) -> int:
    """The main of a server app: serve until SIGTERM/SIGINT, keep stats.json fresh, exit 0."""
    stop = threading.Event()
    install_stop_signals(stop)
    log = StdoutLog(app)
    stats = stats_from_env(app)
    writer = StatsWriter(stats, stats_path_from_env(), log=log)
    server = make(stats, log)
    writer.start()
    server.start()
    log(f"{banner} (listening on :{server.port})")
    try:
        wait_for_stop(stop)
    finally:
        server.stop()
        writer.stop(timeout=0.5)
        log("stopped")
    return 0
