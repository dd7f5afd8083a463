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
    for protocol in ("http", "tcp", "grpc"):
        c = UpstreamCluster(
            MeshService("shop", "web", 80, 8080, protocol),
            (ServiceIdentity("shop", "web"),),
            (Endpoint("10.0.0.1", 8080),),
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
