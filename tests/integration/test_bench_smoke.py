"""A small run of the benchmark harness, so the instrument cannot rot (no timings are asserted)."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import harness
from bench.simproxy import Markers, SimProxy

from osm.envoy.types import TYPE_LISTENER
from osm.testing.mesh import build


@pytest.mark.parametrize("xds", ["sotw", "delta"])
def test_harness_smoke(xds: str) -> None:
    row = asyncio.run(
        harness.scenario(
            12, "smi", xds, churn_rates=[20], churn_seconds=1.0, policy_changes=2, idle_seconds=0.2
        )
    )
    b1 = row["b1"]
    assert b1["complete"] and b1["complete_count"] == 12 and not b1["errors"] and b1["nacks"] == 0
    assert row["b4"]["mb_per_proxy"] > 0
    (b2,) = row["b2"]
    assert (
        b2["missed"] == 0 and b2["changes"] == 20 and b2["push_ratio"] is not None and b2["push_ratio"] <= 1
    )
    assert row["b3"]["order_violations"] == 0 and row["b3"]["changes"] == 2
    assert row["b5"]["proxies"] == 12 and row["b5"]["bytes_total"] > 0
    assert row["serialize_s"] > 0


def test_messages_per_proxy_repeats_each_type_as_often_as_a_proxy_got_it() -> None:
    cds, sds = "type.googleapis.com/cds", "type.googleapis.com/sds"
    before = {cds: (10, 1_000), sds: (0, 0)}
    after = {cds: (14, 1_400), sds: (8, 1_000)}  # 4 proxies: one more CDS each, two SDS each
    assert harness.messages_per_proxy(after, before, 4) == [
        {"type_url": cds, "bytes": 100},
        {"type_url": sds, "bytes": 125},
        {"type_url": sds, "bytes": 125},
    ]
    assert harness.messages_per_proxy(before, before, 4) == []


def test_cold_start_reference_at_toy_scale() -> None:
    messages = [
        {"type_url": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "bytes": 3000},
        {"type_url": "type.googleapis.com/envoy.config.listener.v3.Listener", "bytes": 1500},
    ]
    ref = asyncio.run(asyncio.wait_for(harness.cold_start_reference(4, messages), timeout=60))
    assert ref["all_acked"] is True
    assert abs(ref["seconds"] - (ref["connect_s"] + ref["push_s"])) < 0.0011  # each rounded to ms
    assert ref["connect_s"] > 0 and ref["push_s"] > 0
    assert ref["bytes_per_proxy"] >= 4500  # both messages, with their response headers


@pytest.mark.parametrize("client", ["h2", "grpc"])
@pytest.mark.parametrize("xds", ["sotw", "delta"])
def test_a_dropped_proxy_reconnects_as_envoy_does_and_is_served_again(xds: str, client: str) -> None:
    async def run() -> None:
        state_dir = Path(tempfile.mkdtemp(prefix="osm-bench-"))
        cp = harness.CP(6, "smi", state_dir)
        fleet = None
        try:
            _, creds = harness.issue_certs(state_dir, build(6, 2, mode="smi"), 4)
            markers = Markers()
            target = f"127.0.0.1:{cp.port}"
            proxies = [
                SimProxy(i, cn, c, target, delta=xds == "delta", markers=markers, client=client)
                for i, (cn, c) in enumerate(creds)
            ]
            fleet = harness.Fleet(proxies, [asyncio.create_task(p.run()) for p in proxies], markers)
            assert await harness.wait_until(lambda: all(p.complete_at for p in proxies), 30)
            p = proxies[0]
            got = p.subs[TYPE_LISTENER].responses
            assert "dropped" in await cp.call(op="drop", cn=p.cn)
            # a new stream, subscribed again: the listeners come anew
            assert await harness.wait_until(
                lambda: p.reconnects == 1 and p.subs[TYPE_LISTENER].responses > got, 30
            )
            assert p.lost == ["UNAVAILABLE: bench: dropped"] and p.error is None  # both clients say why
            assert "error" not in await cp.call(op="stream", cn=p.cn)
            # and it is pushed to like the others
            markers.expect(TYPE_LISTENER, b"outbound-egress-filter-chain", 1, absent=True)
            await cp.call(op="egress")
            assert await harness.wait_until(lambda: len(markers.seen[1]) == 4, 30)
            assert [q.reconnects for q in proxies] == [1, 0, 0, 0]
        finally:
            if fleet is not None:
                await asyncio.wait_for(fleet.close(), 30)
            cp.stop()
            shutil.rmtree(state_dir, ignore_errors=True)

    asyncio.run(asyncio.wait_for(run(), 120))
