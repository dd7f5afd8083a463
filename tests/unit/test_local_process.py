"""Container processes (restart with backoff, stop) and the checks before `osm local up`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from osm.local import preflight, supervisor
from osm.local.runtime import resolve_argv
from osm.models.k8s import Container


async def test_a_crashed_container_restarts_with_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "BACKOFF_START", 0.05)
    starts: list[int] = []
    cp = supervisor.ContainerProcess(
        "crash",
        [sys.executable, "-c", "print('boom'); raise SystemExit(3)"],
        {},
        tmp_path / "crash.log",
        on_start=starts.append,
    )
    task = asyncio.create_task(cp.run())
    try:
        async with asyncio.timeout(10):
            while cp.restarts < 2:
                await asyncio.sleep(0.02)
    finally:
        await cp.stop()
        task.cancel()
    assert cp.last_exit == 3 and len(starts) >= 2
    log = (tmp_path / "crash.log").read_text()
    assert log.count("boom") >= 2 and "exited with 3; restarting" in log


async def test_stop_ends_a_running_container(tmp_path: Path) -> None:
    cp = supervisor.ContainerProcess(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], {}, tmp_path / "s.log"
    )
    task = asyncio.create_task(cp.run())
    async with asyncio.timeout(10):
        while not cp.running:
            await asyncio.sleep(0.02)
        await cp.stop()
        await task
    assert not cp.running and cp.restarts == 0 and cp.last_exit is not None and cp.last_exit < 0


def test_python_commands_run_with_this_interpreter() -> None:
    assert resolve_argv(Container(name="a", command=("python3", "-m", "x"), args=("--y",))) == [
        sys.executable,
        "-m",
        "x",
        "--y",
    ]
    with pytest.raises(ValueError, match="container 'b' has no command"):
        resolve_argv(Container(name="b"))


def test_preflight_names_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    with pytest.raises(preflight.PreflightError, match="needs root"):
        preflight.check(tmp_path)
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    monkeypatch.setattr(
        preflight.shutil, "which", lambda tool: None if tool == "iptables-restore" else "/bin/x"
    )
    with pytest.raises(preflight.PreflightError, match="apt-get install -y iptables"):
        preflight.check(tmp_path)
    monkeypatch.setattr(preflight.sys, "platform", "darwin")
    with pytest.raises(preflight.PreflightError, match="needs Linux"):
        preflight.check(tmp_path)


def test_preflight_refuses_a_state_dir_the_sidecars_cannot_reach(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(preflight.PreflightError, match="not searchable by other users"):
        preflight.check_traversable(private / "state")
