"""UpstreamTrafficSetting (policy.openservicemesh.io/v1alpha1): what decodes, what is refused and why,
and where the catalog puts it (the clients' clusters; the server's listener and routes)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from tests.golden.scenarios import ROOT

from osm.catalog import MeshCatalog
from osm.models.errors import ValidationError
from osm.models.trafficpolicy import (
    ConnectionSettings,
    HTTPRateLimit,
    OutlierDetection,
    TCPRateLimit,
    UpstreamSettings,
)
from osm.state.decode import decode
from osm.state.store import Store
from osm.validator.verdict import verdict


def uts(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policy.openservicemesh.io/v1alpha1",
        "kind": "UpstreamTrafficSetting",
        "metadata": {"name": "u", "namespace": "server"},
        "spec": {"host": "server.server.svc.cluster.local", **spec},
    }


def test_a_setting_decodes_with_upstreams_defaults() -> None:
    obj = decode(
        uts(
            connectionSettings={"http": {"maxPendingRequests": 1}},
            rateLimit={"local": {"http": {"requests": 1, "unit": "minute"}}},
            httpRoutes=[{"path": ".*", "rateLimit": {"local": {"http": {"requests": 2, "unit": "hour"}}}}],
        )
    )
    assert obj is not None
    assert obj.upstream == UpstreamSettings(  # type: ignore[union-attr]
        ConnectionSettings(max_pending_requests=1), None
    )
    assert obj.http_rate_limit == HTTPRateLimit(1, 60_000)  # type: ignore[union-attr]
    assert obj.route_limits == ((".*", HTTPRateLimit(2, 3_600_000)),)  # type: ignore[union-attr]
    assert obj.tcp_rate_limit is None and obj.service() == "server"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"host": "Server!"}, "spec.host", "is not a DNS name"),
        ({"host": "server.other.svc.cluster.local"}, "spec.host", "a Service of namespace 'other'"),
        (
            {"connectionSettings": {"tcp": {"maxConnections": -1}}},
            "spec.connectionSettings.tcp.maxConnections",
            ">= 0",
        ),
        (
            {"connectionSettings": {"tcp": {"connectTimeout": "fast"}}},
            "spec.connectionSettings.tcp.connectTimeout",
            "invalid",
        ),
        (
            {"connectionSettings": {"http": {"maxRequests": 2**32}}},
            "spec.connectionSettings.http.maxRequests",
            "<= 4294967295",
        ),
        (
            {"rateLimit": {"local": {"http": {"requests": 1, "unit": "day"}}}},
            "spec.rateLimit.local.http.unit",
            "second, minute, hour",
        ),
        (
            {"rateLimit": {"local": {"http": {"requests": 0, "unit": "second"}}}},
            "spec.rateLimit.local.http.requests",
            ">= 1",
        ),
        (
            {"rateLimit": {"local": {"http": {"requests": 1, "unit": "second", "responseStatusCode": 200}}}},
            "spec.rateLimit.local.http.responseStatusCode",
            "an HTTP error status",
        ),
        (
            {
                "rateLimit": {
                    "local": {
                        "http": {
                            "requests": 1,
                            "unit": "second",
                            "responseHeadersToAdd": [{"name": "a b", "value": "x"}],
                        }
                    }
                }
            },
            "spec.rateLimit.local.http.responseHeadersToAdd[0].name",
            "not an HTTP header name",
        ),
        (
            {"rateLimit": {"local": {"tcp": {"unit": "second"}}}},
            "spec.rateLimit.local.tcp.connections",
            "is required",
        ),
        (
            {
                "httpRoutes": [
                    {"path": "(", "rateLimit": {"local": {"http": {"requests": 1, "unit": "second"}}}}
                ]
            },
            "spec.httpRoutes[0].path",
            "'('",
        ),
        ({"httpRoutes": [{"path": "/a"}]}, "spec.httpRoutes[0].rateLimit.local.http", "is required"),
        (
            {"outlierDetection": {"consecutiveErrors": 0, "interval": "1s", "baseEjectionTime": "1s"}},
            "spec.outlierDetection.consecutiveErrors",
            ">= 1",
        ),
        (
            {
                "outlierDetection": {
                    "consecutiveErrors": 1,
                    "interval": "1s",
                    "baseEjectionTime": "1s",
                    "maxEjectionPercent": 101,
                }
            },
            "spec.outlierDetection.maxEjectionPercent",
            "<= 100",
        ),
    ],
)
def test_a_bad_setting_is_refused_naming_the_field(spec: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(ValidationError) as e:
        decode(uts(**spec))
    assert e.value.field == field and reason in str(e.value), str(e.value)
    ok, message = verdict({"operation": "CREATE", "object": uts(**spec)})
    assert not ok and message == str(e.value)


def test_an_egress_host_is_accepted_and_names_no_service() -> None:
    obj = decode(uts(host="api.example.com"))
    assert obj is not None and obj.service() is None  # type: ignore[union-attr]


def _catalog() -> MeshCatalog:
    store = Store()
    for doc in yaml.safe_load_all(
        (ROOT / "scenarios" / "upstream_traffic_setting" / "mesh.yaml").read_text()
    ):
        obj = decode(doc)
        assert obj is not None
        store.apply(obj)
    return MeshCatalog(store.snapshot())


def test_the_catalog_puts_each_part_where_upstream_enforces_it() -> None:
    catalog = _catalog()
    pods = catalog.state.pods
    buyer = catalog.proxy_policy(catalog.group_for_pod(pods[("buyer", "buyer")]))
    settings = {c.service.name: c.settings for c in buyer.outbound.clusters}
    assert settings == {
        "store": UpstreamSettings(
            ConnectionSettings(100, 2000, 200, 50, 10, 3), OutlierDetection(5, 10_000, 30_000, 50)
        ),
        "ledger": None,  # its setting has rate limits only
    }
    store = catalog.proxy_policy(catalog.group_for_pod(pods[("store", "store-0")]))
    inbound = {s.service.name: s for s in store.inbound.services}
    assert inbound["store"].tcp_rate_limit == TCPRateLimit(20, 1000, 5)
    assert inbound["ledger"].tcp_rate_limit == TCPRateLimit(1, 60_000)
    (vhost,) = inbound["store"].virtual_hosts
    assert vhost.rate_limit == HTTPRateLimit(10, 1000, 0, 503, (("x-rate-limited", "true"),))
    assert vhost.route_limits == (("/books", HTTPRateLimit(100, 60_000)),)
    assert any(
        "UpstreamTrafficSetting store/store-again: host store.store.svc.cluster.local already has" in w
        for w in catalog.warnings
    )
