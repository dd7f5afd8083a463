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
