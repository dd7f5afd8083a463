"""Upstream clusters composed from shared serialized parts equal the ones built as messages."""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from google.protobuf import json_format

from osm.envoy.cds import clusters
from osm.models.identity import ServiceIdentity
from osm.models.service import Endpoint, MeshService
from osm.models.trafficpolicy import TLSSettings, UpstreamCluster


def as_json(msg: Any) -> dict[str, Any]:
    import osm.envoy.generator  # noqa: F401  (registers the packed message types)

    out: dict[str, Any] = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return out


def test_composed_cluster_equals_the_built_one() -> None:
    tls = TLSSettings("TLSv1_2", "TLSv1_3")
    for protocol, per_pod in (("http", False), ("tcp", False), ("grpc", False), ("tcp", True)):
        c = UpstreamCluster(
            MeshService("shop", "web", 80, 8080, protocol),
            (ServiceIdentity("shop", "web"),),
            (Endpoint("10.0.0.1", 8080),),
            per_pod=per_pod,
        )
        me = ServiceIdentity("front", "client")
        parts = clusters.upstream_cluster_parts(c, tls, "cluster.local")
        composed = cluster_pb2.Cluster.FromString(
            clusters.compose_upstream_cluster(parts, clusters.own_certificate_field(me))
        )
        # Compared as JSON: packed sub-messages (Any) may order their fields differently, as protobuf allows.
        assert as_json(composed) == as_json(clusters.upstream_cluster(c, me, tls, "cluster.local"))
        other = cluster_pb2.Cluster.FromString(
            clusters.compose_upstream_cluster(
                parts, clusters.own_certificate_field(ServiceIdentity("x", "y"))
            )
        )
        assert as_json(other) != as_json(composed)  # the proxy's own certificate is in the composed bytes
        assert "service-cert:front/client" in str(as_json(composed))


def _validation(c: UpstreamCluster) -> dict[str, Any]:
    tls = TLSSettings("TLSv1_2", "TLSv1_3")
    built = as_json(clusters.upstream_cluster(c, ServiceIdentity("front", "client"), tls, "cluster.local"))
    combined: dict[str, Any] = built["transport_socket"]["typed_config"]["common_tls_context"][
        "combined_validation_context"
    ]
    return combined


def test_a_cluster_accepts_only_the_identities_backing_its_service_and_trusts_the_shared_root() -> None:
    svc = MeshService("shop", "web", 80, 8080, "http")
    web, v2 = ServiceIdentity("shop", "web"), ServiceIdentity("shop", "web-v2")
    peers = (v2, web, web)
    combined = _validation(UpstreamCluster(svc, peers, ()))
    sans = combined["default_validation_context"]["match_typed_subject_alt_names"]
    assert [(m["san_type"], m["matcher"]["exact"]) for m in sans] == [
        ("DNS", "web-v2.shop.cluster.local"),
        ("DNS", "web.shop.cluster.local"),
    ]
    assert combined["validation_context_sds_secret_config"]["name"] == "root-cert-for-mtls-outbound"


def test_a_cluster_without_backing_identities_accepts_no_certificate() -> None:
    # An empty list would accept any certificate the mesh CA signed.
    combined = _validation(UpstreamCluster(MeshService("shop", "web", 80, 8080, "http"), (), ()))
    [only] = combined["default_validation_context"]["match_typed_subject_alt_names"]
    assert only["matcher"]["exact"] == clusters.NO_PEER


def test_a_per_pod_cluster_goes_to_the_address_dialed_and_an_other_one_balances_over_eds() -> None:
    tls = TLSSettings("TLSv1_2", "TLSv1_3")
    me = ServiceIdentity("front", "client")
    svc = MeshService("shop", "zk", 2888, 2888, "tcp")
    per_pod = as_json(
        clusters.upstream_cluster(UpstreamCluster(svc, (), (), per_pod=True), me, tls, "cluster.local")
    )
    assert (per_pod["type"], per_pod["lb_policy"]) == ("ORIGINAL_DST", "CLUSTER_PROVIDED")
    assert "eds_cluster_config" not in per_pod and "transport_socket" in per_pod  # still mTLS
    balanced = as_json(clusters.upstream_cluster(UpstreamCluster(svc, (), ()), me, tls, "cluster.local"))
    assert balanced["type"] == "EDS" and "eds_cluster_config" in balanced
