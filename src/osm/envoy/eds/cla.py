"""EDS: one ClusterLoadAssignment per upstream cluster."""

from __future__ import annotations

from typing import Any

from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2

from osm.envoy.common import socket_address
from osm.models.trafficpolicy import UpstreamCluster


def cluster_load_assignment(cluster: UpstreamCluster) -> Any:
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster.service.cluster_name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                lb_endpoints=[
                    endpoint_components_pb2.LbEndpoint(
                        endpoint=endpoint_components_pb2.Endpoint(address=socket_address(e.ip, e.port))
                    )
                    for e in cluster.endpoints
                ]
            )
        ],
    )
