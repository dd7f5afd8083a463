"""The apps as processes (`python -m osm.demo.<app>`): stats.json appears, SIGTERM exits 0 within 1 s."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import osm
from osm.demo.stats import read_stats
from osm.testing.wait import poll

# runs a module with this process's `osm` package path
BOOT = (
    "import runpy, sys, osm; "
    "[osm.__path__.append(p) for p in sys.argv[1:-1] if p not in osm.__path__]; "
    "runpy.run_module(sys.argv[-1], run_name='__main__', alter_sys=True)"
)


def _start(module: str, pod_dir: Path, **env: str) -> subprocess.Popen[str]:
    full_env = {
        **os.environ,
        "OSM_LOCAL_POD_DIR": str(pod_dir),
        "POD_NAME": "pod-0",
        "POD_NAMESPACE": "demo",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-c", BOOT, *osm.__path__, module],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _sigterm_after_stats(proc: subprocess.Popen[str], stats_path: Path) -> tuple[int, float, str]:
    try:
        # The app writes its stats once it serves (its signal handlers are in place by then).
        poll(lambda: read_stats(stats_path) is not None or proc.poll() is not None, 15)
        assert read_stats(stats_path) is not None, "no stats.json"
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=5)
        elapsed = time.monotonic() - sent
        out = proc.stdout.read() if proc.stdout else ""
        return rc, elapsed, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stdout:
            proc.stdout.close()


@pytest.mark.parametrize(
    ("module", "env", "app"),
    [
        ("osm.demo.bookstore", {"IDENTITY": "bookstore-v2"}, "bookstore-v2"),
        ("osm.demo.bookwarehouse", {"REDIS_PORT": "1"}, "bookwarehouse"),
    ],
)
def test_server_sigterm(tmp_path: Path, module: str, env: dict[str, str], app: str) -> None:
    proc = _start(module, tmp_path, PORT="0", **env)
    rc, elapsed, out = _sigterm_after_stats(proc, tmp_path / "stats.json")
    assert rc == 0, out
    assert elapsed < 1.0, elapsed
    doc = read_stats(tmp_path / "stats.json")
    assert doc is not None
    assert (doc["app"], doc["pod"], doc["namespace"]) == (app, "pod-0", "demo")
    assert "listening on :" in out and "stopped" in out


def test_bookthief_sigterm_with_request_in_flight(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    try:
        port = listener.getsockname()[1]
        proc = _start("osm.demo.bookthief", tmp_path, BOOKSTORE_URL=f"http://127.0.0.1:{port}", TIMEOUT_S="5")
        rc, elapsed, out = _sigterm_after_stats(proc, tmp_path / "stats.json")
    finally:
        listener.close()
    assert rc == 0, out
    assert elapsed < 1.0, elapsed
    doc = read_stats(tmp_path / "stats.json")
    assert doc is not None and doc["app"] == "bookthief"
    assert "bookthief: buying books from" in out


def test_bookbuyer_failure_sentinel_on_stdout(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _start("osm.demo.bookbuyer", tmp_path, BOOKSTORE_URL=f"http://127.0.0.1:{port}", WAIT_MS="10")
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            doc = read_stats(tmp_path / "stats.json")
            if doc is not None and doc["failure"] >= 12:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=5)
        out = proc.stdout.read() if proc.stdout else ""
        if proc.stdout:
            proc.stdout.close()
    assert rc == 0
    assert "MAESTRO, WE HAVE A PROBLEM! THIS TEST FAILED!" in out.splitlines()
    doc = read_stats(tmp_path / "stats.json")
    assert doc is not None and doc["app"] == "bookbuyer" and doc["by_status"]["0"] >= 12
