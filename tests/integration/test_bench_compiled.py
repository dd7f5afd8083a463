"""The compiled fleet (bench/loadgen.c) against the bench control plane: it must receive what the Python
fleet receives, so the two measure the same cold start (no timings are asserted)."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import compiled, harness
from bench.simproxy import Markers, SimProxy

from osm.testing.mesh import build


async def python_cold_start(n: int, mode: str, xds: str) -> dict[str, Any]:
    state_dir = Path(tempfile.mkdtemp(prefix="osm-bench-"))
    cp = harness.CP(n // 2, mode, state_dir)
    fleet = None
    try:
        _, creds = harness.issue_certs(state_dir, build(n // 2, 2, mode=mode), n)
        markers = Markers()
        proxies = [
            SimProxy(i, cn, c, f"127.0.0.1:{cp.port}", delta=xds == "delta", markers=markers)
            for i, (cn, c) in enumerate(creds)
        ]
        fleet = harness.Fleet(proxies, [asyncio.create_task(p.run()) for p in proxies], markers)
        assert await harness.wait_until(lambda: all(p.complete_at for p in proxies), 30)
        return {
            "bytes": statistics.mean(p.bytes for p in proxies),
            "responses": statistics.mean(p.responses for p in proxies),
        }
    finally:
        if fleet is not None:
            await asyncio.wait_for(fleet.close(), 30)
        cp.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.mark.parametrize("mode", ["smi", "permissive"])
@pytest.mark.parametrize("xds", ["sotw", "delta"])
def test_the_compiled_fleet_receives_what_the_python_fleet_receives(xds: str, mode: str) -> None:
    got = asyncio.run(asyncio.wait_for(compiled.cold_start(12, mode, xds, limit_s=30), 90))
    assert got["complete"] and got["complete_count"] == 12, got
    assert not got["errors"] and got["nacks"] == 0 and got["rejected"] == 0
    assert got["load_util"] is not None and got["cp_cpu_s"] > 0
    python = asyncio.run(asyncio.wait_for(python_cold_start(12, mode, xds), 90))
    # the same subscriptions: as many responses, and the same bytes up to nonce lengths
    assert got["responses_per_proxy"] == python["responses"]
    assert abs(got["bytes_per_proxy"] - python["bytes"]) <= 0.01 * python["bytes"]


def test_a_build_failure_names_the_source_and_the_compiler_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "false")
    with pytest.raises(RuntimeError, match=r"cannot build loadgen\.c"):
        compiled.build(tmp_path / "loadgen")
    assert not (tmp_path / "loadgen").exists()
