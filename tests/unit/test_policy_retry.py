"""Retry (policy.openservicemesh.io/v1alpha1): what decodes, what is refused and why, and which routes
carry it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from tests.golden.scenarios import ROOT

from osm.catalog import MeshCatalog
from osm.models.errors import ValidationError
from osm.models.trafficpolicy import RetryPolicy
from osm.state.decode import decode
from osm.state.store import Store
from osm.validator.verdict import verdict


def retry(**policy: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policy.openservicemesh.io/v1alpha1",
        "kind": "Retry",
        "metadata": {"name": "r", "namespace": "client"},
        "spec": {
            "source": {"kind": "ServiceAccount", "name": "client", "namespace": "client"},
            "destinations": [{"kind": "Service", "name": "server", "namespace": "server"}],
            "retryPolicy": {
                "retryOn": "5xx",
                "perTryTimeout": "1s",
                "numRetries": 5,
                "retryBackoffBaseInterval": "50ms",
                **policy,
            },
        },
    }


def test_a_retry_decodes_to_envoys_terms() -> None:
    r = decode(retry(retryOn="5xx, unavailable", perTryTimeout="1m30s"))
    assert r is not None and r.KIND == "Retry"
    assert r.policy == RetryPolicy("5xx,unavailable", 90_000, 5, 50)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"retryOn": "5xx,sometimes"}, "spec.retryPolicy.retryOn", "'sometimes' is not a retry condition"),
        ({"retryOn": ""}, "spec.retryPolicy.retryOn", "must not be empty"),
        ({"perTryTimeout": "soon"}, "spec.retryPolicy.perTryTimeout", "invalid"),
        ({"perTryTimeout": "0s"}, "spec.retryPolicy.perTryTimeout", "is under 1ms"),
        ({"retryBackoffBaseInterval": "48h"}, "spec.retryPolicy.retryBackoffBaseInterval", "is over 24h"),
        ({"numRetries": -1}, "spec.retryPolicy.numRetries", "must be >= 0"),
        ({"numRetries": 1000}, "spec.retryPolicy.numRetries", "must be <= 100"),
        ({"numRetries": "5"}, "spec.retryPolicy.numRetries", "must be an integer"),
        ({"numRetries": None}, "spec.retryPolicy.numRetries", "is required"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(change: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(ValidationError) as e:
        decode(retry(**change))
    assert e.value.field == field and reason in str(e.value)
    assert str(e.value).startswith("Retry client/r: ")


def test_sources_and_destinations_are_checked() -> None:
    doc = retry()
    doc["spec"]["source"]["kind"] = "Service"
    with pytest.raises(ValidationError, match=r"spec.source.kind: must be ServiceAccount, got 'Service'"):
        decode(doc)
    doc = retry()
    doc["spec"]["destinations"] = []
    with pytest.raises(ValidationError, match=r"spec\.destinations: needs at least one Service"):
        decode(doc)
    doc = retry()
    del doc["spec"]["destinations"][0]["namespace"]
    with pytest.raises(ValidationError, match=r"spec.destinations\[0\].namespace: is required"):
        decode(doc)


def test_the_validator_refuses_what_the_controller_would_reject() -> None:
    ok, reason = verdict({"operation": "CREATE", "object": retry(retryOn="never")})
    assert not ok and "spec.retryPolicy.retryOn: 'never' is not a retry condition" in reason
    assert verdict({"operation": "CREATE", "object": retry()}) == (True, "")


def _catalog(flag: bool) -> MeshCatalog:
    store = Store()
    for doc in yaml.safe_load_all((ROOT / "scenarios" / "retry" / "mesh.yaml").read_text()):
        if doc["kind"] == "MeshConfig":
            doc["spec"]["featureFlags"]["enableRetryPolicy"] = flag
        obj = decode(doc)
        assert obj is not None
        store.apply(obj)
    return MeshCatalog(store.snapshot())


def _retries(catalog: MeshCatalog, ns: str, pod: str) -> dict[str, RetryPolicy | None]:
    policy = catalog.proxy_policy(catalog.group_for_pod(catalog.state.pods[(ns, pod)]))
    return {up.service.name: up.retry for up in policy.outbound.upstreams}


def test_the_first_retry_for_a_pair_applies_only_with_the_feature_flag() -> None:
    on = _catalog(True)
    assert _retries(on, "shop", "frontend-0") == {
        "frontend": None,
        "catalog": RetryPolicy("5xx,reset", 1500, 3, 25),  # a-frontend-to-catalog, not b-later
        "cache": None,
    }
    assert set(_retries(on, "shop", "catalog-0").values()) == {None}  # another source
    assert set(_retries(_catalog(False), "shop", "frontend-0").values()) == {None}
