"""IngressBackend (policy.openservicemesh.io/v1alpha1): what decodes, what is refused and why, and
what the backend's sidecar is told."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from tests.golden.scenarios import ROOT

from osm.catalog import MeshCatalog
from osm.models.errors import ValidationError
from osm.models.trafficpolicy import IngressRoute
from osm.state.decode import decode
from osm.state.store import Store
from osm.validator.verdict import verdict


def ingress(
    backends: list[dict[str, Any]] | None = None, sources: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "policy.openservicemesh.io/v1alpha1",
        "kind": "IngressBackend",
        "metadata": {"name": "ib", "namespace": "server"},
        "spec": {
            "backends": backends
            if backends is not None
            else [{"name": "server", "port": {"number": 80, "protocol": "http"}}],
            "sources": sources
            if sources is not None
            else [{"kind": "Service", "name": "nginx", "namespace": "ingress"}],
        },
    }


def test_an_ingress_backend_decodes() -> None:
    obj = decode(
        ingress(
            sources=[
                {"kind": "Service", "name": "nginx", "namespace": "ingress"},
                {"kind": "IPRange", "name": "10.0.0.7/8"},
                {"kind": "AuthenticatedPrincipal", "name": "nginx.ingress.cluster.local"},
            ]
        )
    )
    assert obj is not None
    assert obj.source_services == (("ingress", "nginx"),)  # type: ignore[union-attr]
    assert obj.ip_ranges == ("10.0.0.0/8",)  # type: ignore[union-attr]
    assert obj.principals == ("nginx.ingress.cluster.local",)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("doc", "field", "reason"),
    [
        (
            ingress(backends=[{"name": "server", "port": {"number": 80, "protocol": "grpc"}}]),
            "spec.backends[0].port.protocol",
            "must be http or https",
        ),
        (
            ingress(backends=[{"name": "server", "port": {"number": 0, "protocol": "http"}}]),
            "spec.backends[0].port.number",
            ">= 1",
        ),
        (
            ingress(backends=[{"name": "server", "port": {"number": 80, "protocol": "http"}}] * 2),
            "spec.backends[1]",
            "backend server port 80 is listed twice",
        ),
        (
            ingress(backends=[{"name": "server", "port": {"number": 443, "protocol": "https"}}]),
            "spec.backends[0].tls",
            "needs an AuthenticatedPrincipal source",
        ),
        (ingress(sources=[{"kind": "Pod", "name": "x"}]), "spec.sources[0].kind", "must be one of Service"),
        (ingress(sources=[{"kind": "Service", "name": "nginx"}]), "spec.sources[0].namespace", "is required"),
        (
            ingress(sources=[{"kind": "IPRange", "name": "10.0.0.300/8"}]),
            "spec.sources[0].name",
            "is not a CIDR",
        ),
        (ingress(sources=[]), "spec.sources", "needs at least one source"),
        (ingress(backends=[]), "spec.backends", "needs at least one backend"),
    ],
)
def test_a_bad_ingress_backend_is_refused_naming_the_field(
    doc: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as e:
        decode(doc)
    assert e.value.field == field and reason in str(e.value), str(e.value)
    ok, message = verdict({"operation": "CREATE", "object": doc})
    assert not ok and message == str(e.value)


def test_https_without_client_validation_needs_no_principal() -> None:
    doc = ingress(
        backends=[
            {
                "name": "server",
                "port": {"number": 443, "protocol": "https"},
                "tls": {"skipClientCertValidation": True},
            }
        ]
    )
    assert decode(doc) is not None


def test_the_backends_sidecar_gets_the_sources_addresses_and_principals() -> None:
    store = Store()
    for doc in yaml.safe_load_all((ROOT / "scenarios" / "ingress_backend" / "mesh.yaml").read_text()):
        obj = decode(doc)
        assert obj is not None
        store.apply(obj)
    catalog = MeshCatalog(store.snapshot())
    policy = catalog.proxy_policy(catalog.group_for_pod(catalog.state.pods[("store", "store-0")]))
    http, https = policy.inbound.ingress
    assert http == IngressRoute(
        service=http.service, protocol="http", source_ranges=("10.244.9.10/32", "192.168.0.0/16")
    )
    assert (http.service.name, http.service.target_port) == ("store", 14001)
    assert https.protocol == "https" and https.source_ranges == ("10.244.9.10/32",)
    assert https.principals == ("nginx.ingress.cluster.local",) and https.require_client_cert
    assert https.sni_hosts == ("store.store.svc.cluster.local",)
    assert policy.inbound.ingress_sources == frozenset({("ingress", "nginx")})
    assert any(
        "IngressBackend store/b-store-again: backend store port 14001 conflicts with IngressBackend "
        "store/a-store-http; ignored" in w
        for w in catalog.warnings
    )


def test_an_ingress_sources_new_address_reaches_the_backends_sidecar() -> None:
    """The ingress's endpoints are the backend proxy's deps: a change to them is in scope for it."""
    from dataclasses import replace

    from osm.envoy.scope import scope_of_change
    from osm.models.identity import ServiceIdentity
    from osm.state.decode import key_of

    store = Store()
    for doc in yaml.safe_load_all((ROOT / "scenarios" / "ingress_backend" / "mesh.yaml").read_text()):
        obj = decode(doc)
        assert obj is not None
        store.apply(obj)
    before = MeshCatalog(store.snapshot())
    nginx = before.state.pods[("ingress", "nginx-0")]
    moved = replace(nginx, pod_ip="10.244.9.99")
    store.apply(moved)
    after = MeshCatalog(store.snapshot(), before, {key_of(moved)})
    store_pod = after.state.pods[("store", "store-0")]
    old_policy = before.proxy_policy(before.group_for_pod(store_pod))
    new_policy = after.proxy_policy(after.group_for_pod(store_pod))
    assert new_policy.inbound.ingress[0].source_ranges == ("10.244.9.99/32", "192.168.0.0/16")
    assert new_policy.inbound != old_policy.inbound
    scope = scope_of_change(before.index, after.index, {key_of(moved)})
    assert scope is not None
    outbound_deps = frozenset((c.service.namespace, c.service.name) for c in old_policy.outbound.clusters)
    identity = ServiceIdentity("store", "store")
    assert not scope.touches(outbound_deps, ("store", "store-0"), identity)  # not by its clusters ...
    assert scope.touches(outbound_deps | old_policy.inbound.ingress_sources, ("store", "store-0"), identity)
