"""The local runtime's kubelet probes: startup gates the others, liveness restarts, readiness flips."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from osm.local import supervisor
from osm.local.prober import ContainerProbes, Prober
from osm.models.k8s import Probe


def probe(name: str, threshold: int = 3) -> Probe:
    # period 0: the test drives time by the scripted results, not by sleeping
    return Probe(kind="exec", command=(name,), period_seconds=0, failure_threshold=threshold)


class Script:
    """Answers each probe from a per-probe list of results (the last one repeats); records the calls."""

    def __init__(self, results: dict[str, list[bool]]) -> None:
        self.results = results
        self.calls: list[str] = []

    async def __call__(self, p: Probe) -> bool:
        name = p.command[0]
        self.calls.append(name)
        seq = self.results[name]
        out = seq.pop(0) if len(seq) > 1 else seq[0]
        await asyncio.sleep(0.001)
        return out


async def run_prober(
    tmp_path: Path,
    probes: ContainerProbes,
    script: Script,
    until: Callable[[supervisor.ContainerProcess, list[bool], list[str]], bool],
) -> tuple[supervisor.ContainerProcess, list[bool], list[str]]:
    cp = supervisor.ContainerProcess(
        "app", [sys.executable, "-c", "import time; time.sleep(60)"], {}, tmp_path / "app.log"
    )
    ready: list[bool] = []
    events: list[str] = []
    prober = Prober(cp, probes, script, set_ready=ready.append, event=events.append)
    tasks = [asyncio.create_task(cp.run()), asyncio.create_task(prober.run())]
    try:
        async with asyncio.timeout(20):
            while not until(cp, ready, events):
                await asyncio.sleep(0.01)
    finally:
        tasks[1].cancel()
        await cp.stop()
        tasks[0].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return cp, ready, events


async def test_liveness_failing_threshold_times_in_a_row_restarts_the_container(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "BACKOFF_START", 0.05)
    # two failures, a success (the count starts again), then three failures: one restart; then healthy
    script = Script({"live": [False, False, True, False, False, False, True]})
    cp, _, events = await run_prober(
        tmp_path,
        ContainerProbes(liveness=probe("live")),
        script,
        lambda cp, _r, _e: cp.starts >= 2 and len(script.calls) >= 10,
    )
    assert cp.restarts == 1 and cp.starts == 2
    assert events == ["container app: liveness probe failed 3 times; restarting it"]


async def test_the_startup_probe_gates_liveness_and_readiness_and_restarts_when_it_keeps_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "BACKOFF_START", 0.05)
    # first run: startup fails twice (threshold 2) -> restart; second run: it passes on its second try
    script = Script({"start": [False, False, False, True], "live": [True], "ready": [True]})
    probes = ContainerProbes(startup=probe("start", 2), liveness=probe("live"), readiness=probe("ready"))
    cp, _, events = await run_prober(tmp_path, probes, script, lambda _c, r, _e: True in r)
    assert cp.starts == 2
    assert events == ["container app: startup probe failed 2 times; restarting it"]
    first_other = min(script.calls.index("live"), script.calls.index("ready"))
    assert script.calls[:first_other] == ["start"] * 4


async def test_readiness_turns_ready_on_a_success_and_unready_after_threshold_failures(
    tmp_path: Path,
) -> None:
    script = Script({"ready": [False, True, False, False, True, False, False, False]})
    _, ready, events = await run_prober(
        tmp_path,
        ContainerProbes(readiness=probe("ready")),
        script,
        lambda _c, _r, _e: len(script.calls) >= 8,
    )
    # set_ready(False) at start, then one value per check: unready only after 3 failures in a row
    assert ready[:9] == [False, False, True, True, True, True, True, True, False]
    assert events == []


async def test_without_a_readiness_probe_a_started_container_is_ready(tmp_path: Path) -> None:
    _, ready, _ = await run_prober(tmp_path, ContainerProbes(), Script({}), lambda _c, r, _e: True in r)
    assert ready == [False, True]
