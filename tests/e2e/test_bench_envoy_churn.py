"""B6 on the local mesh, one short round: real sidecars take every policy edit and drop no request.

No timing is asserted; the instrument must run, see each xDS type applied, and count what it claims.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import envoy_churn

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]


def test_policies_change_under_load_without_failures_or_rejections(local_mesh_capable: None) -> None:
    result = envoy_churn.run(rounds=1, settle=1.0, wait_ms=20)
    assert result["edits"] == 10 and result["unsettled_edits"] == 0
    assert result["update_rejected"] == 0 and result["update_rejected_total"] == 0
    assert result["failed_requests"] == 0, result["flows"]
    assert all(f["requests"] > 0 for f in result["flows"].values()), result["flows"]
    latency = result["apply_latency"]
    # The split edits reach RDS, the egress flips LDS, the new Service adds clusters and endpoints.
    assert {"CDS", "EDS", "LDS", "RDS"} <= set(latency)
    assert {"split-apply", "split-revert"} <= set(latency["RDS"]["by_edit_median_s"])
    assert {"egress-apply", "egress-revert"} <= set(latency["LDS"]["by_edit_median_s"])
    assert "service-apply" in latency["CDS"]["by_edit_median_s"]
    assert all(0 < v["p50_s"] <= v["max_s"] for v in latency.values())
