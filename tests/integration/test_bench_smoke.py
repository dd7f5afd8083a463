"""A small run of the benchmark harness, so the instrument cannot rot (no timings are asserted)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import harness


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
