"""Golden tests: scenario manifests -> each proxy's Envoy resources (snake_case JSON, sorted keys).

Run `pytest tests/golden --update-golden` to rewrite the expected files after an intended change,
then review the diff. Every golden test also checks the resources' internal consistency.
"""

from __future__ import annotations

import json

import pytest

from osm.testing.golden import consistency_errors, dumps, resources_json
from tests.golden.scenarios import ROOT, SCENARIOS, load_state, proxy_resources


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden(scenario: str, update_golden: bool) -> None:
    state = load_state(scenario)
    resources = proxy_resources(state)
    assert resources, f"scenario {scenario} has no meshed pods"
    expected_dir = ROOT / "expected" / scenario
    if update_golden:
        expected_dir.mkdir(parents=True, exist_ok=True)
        for old in expected_dir.glob("*.json"):
            old.unlink()
    for (ns, name), res in resources.items():
        assert consistency_errors(res) == [], f"{scenario} {ns}/{name}"
        path = expected_dir / f"{ns}_{name}.json"
        actual = dumps(resources_json(res))
        if update_golden:
            path.write_text(actual)
            continue
        assert path.exists(), f"missing golden file {path}; run pytest --update-golden"
        assert json.loads(actual) == json.loads(path.read_text()), (
            f"{path} differs; review, then --update-golden"
        )
    files = {p.name for p in expected_dir.glob("*.json")}
    assert files == {f"{ns}_{name}.json" for ns, name in resources}, "stale golden files"


def test_consistency_check_detects_dangling_references() -> None:
    """The check itself must fail on a broken config: drop the EDS of one cluster and a route config."""
    from osm.envoy.types import TYPE_ENDPOINT, TYPE_ROUTE, ProxyResources

    res = proxy_resources(load_state("smi_http"))[("buyer", "buyer")]
    kept = [r for t in res.by_type for r in res.get(t).values() if t not in (TYPE_ENDPOINT, TYPE_ROUTE)]
    errors = consistency_errors(ProxyResources.of(kept))
    assert any(e.startswith("CDS cluster store/store|14001 has no EDS") for e in errors)
    assert any("LDS references missing RDS rds-outbound.14001" in e for e in errors)
