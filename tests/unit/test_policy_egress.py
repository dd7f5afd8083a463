"""Egress (policy.openservicemesh.io/v1alpha1): what decodes, what is refused and why, and how one
source's policies merge port by port."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from tests.golden.scenarios import ROOT

from osm.catalog import MeshCatalog
from osm.models.errors import ValidationError
from osm.models.trafficpolicy import EgressHost, EgressPort
from osm.state.decode import decode
from osm.state.store import Store
from osm.validator.verdict import verdict


def egress(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policy.openservicemesh.io/v1alpha1",
        "kind": "Egress",
        "metadata": {"name": "eg", "namespace": "client"},
        "spec": {
            "sources": [{"kind": "ServiceAccount", "name": "client", "namespace": "client"}],
            "hosts": ["httpbin.org"],
            "ports": [{"number": 80, "protocol": "http"}],
            **spec,
        },
    }


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        (
            {"sources": [{"kind": "Service", "name": "a", "namespace": "b"}]},
            "spec.sources[0].kind",
            "ServiceAccount",
        ),
        ({"hosts": ["Not A Host"]}, "spec.hosts[0]", "is not a host name"),
        ({"hosts": []}, "spec.ports[0].protocol", "http egress needs spec.hosts"),
        ({"ipAddresses": ["1.2.3.4/99"]}, "spec.ipAddresses[0]", "is not a CIDR"),
        (
            {"ports": [{"number": 80, "protocol": "udp"}]},
            "spec.ports[0].protocol",
            "must be one of http, https",
        ),
        ({"ports": [{"number": 70000, "protocol": "tcp"}]}, "spec.ports[0].number", "<= 65535"),
        (
            {"ports": [{"number": 80, "protocol": "http"}, {"number": 80, "protocol": "tcp"}]},
            "spec.ports[1].number",
            "given twice with different protocols",
        ),
        (
            {"matches": [{"apiGroup": "specs.smi-spec.io/v1alpha4", "kind": "TCPRoute", "name": "x"}]},
            "spec.matches[0].kind",
            "must be specs.smi-spec.io HTTPRouteGroup or policy.openservicemesh.io UpstreamTrafficSetting",
        ),
        (
            {
                "matches": [
                    {
                        "apiGroup": "policy.openservicemesh.io/v1alpha1",
                        "kind": "UpstreamTrafficSetting",
                        "name": "a",
                    },
                    {
                        "apiGroup": "policy.openservicemesh.io/v1alpha1",
                        "kind": "UpstreamTrafficSetting",
                        "name": "b",
                    },
                ]
            },
            "spec.matches[1].kind",
            "at most one UpstreamTrafficSetting",
        ),
    ],
)
def test_a_bad_egress_is_refused_naming_the_field(spec: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(ValidationError) as e:
        decode(egress(**spec))
    assert e.value.field == field and reason in str(e.value), str(e.value)
    ok, message = verdict({"operation": "CREATE", "object": egress(**spec)})
    assert not ok and message == str(e.value)


def test_a_tcp_egress_needs_no_host() -> None:
    obj = decode(egress(hosts=[], ports=[{"number": 5432, "protocol": "tcp"}], ipAddresses=["10.1.2.3/8"]))
    assert obj is not None and obj.ip_ranges == ("10.0.0.0/8",)  # type: ignore[union-attr]


def _catalog(flag: bool = True) -> MeshCatalog:
    store = Store()
    for doc in yaml.safe_load_all((ROOT / "scenarios" / "egress" / "mesh.yaml").read_text()):
        if doc["kind"] == "MeshConfig":
            doc["spec"]["featureFlags"]["enableEgressPolicy"] = flag
        obj = decode(doc)
        assert obj is not None
        store.apply(obj)
    return MeshCatalog(store.snapshot())


def _egress_ports(catalog: MeshCatalog, pod: str) -> tuple[EgressPort, ...]:
    policy = catalog.proxy_policy(catalog.group_for_pod(catalog.state.pods[("apps", pod)]))
    return policy.outbound.egress_ports


def test_one_sources_policies_merge_port_by_port() -> None:
    catalog = _catalog()
    assert _egress_ports(catalog, "app") == (
        EgressPort(80, "http", (EgressHost("httpbin.org", (("/status.*", "GET", ()),)),)),
        EgressPort(443, "https", (EgressHost("*.example.com"), EgressHost("httpbin.org"))),
        EgressPort(5432, "tcp", (), ("10.0.0.0/8",)),
    )
    assert _egress_ports(catalog, "other") == ()  # no Egress names it
    assert any("Egress apps/d-conflict: port 443 is https by another Egress" in w for w in catalog.warnings)


def test_without_the_feature_flag_egress_policies_do_nothing() -> None:
    assert _egress_ports(_catalog(flag=False), "app") == ()
