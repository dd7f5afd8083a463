"""MeshState: one frozen snapshot of everything the mesh watches, with the indexes the catalog needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from osm.apis.meshconfig import MESH_CONFIG_NAME, MeshConfig
from osm.apis.policy import Egress, IngressBackend, Retry, UpstreamTrafficSetting
from osm.models.k8s import (
    Deployment,
    Endpoints,
    EndpointSlice,
    Namespace,
    Pod,
    Service,
    ServiceAccount,
    StatefulSet,
)
from osm.smi.models import HTTPRouteGroup, TCPRoute, TrafficSplit, TrafficTarget
from osm.state.decode import MeshObject

NsName = tuple[str, str]
T = TypeVar("T")

DEFAULT_MESH_NAME = "osm"
DEFAULT_OSM_NAMESPACE = "osm-system"


def _frozen(d: dict[NsName, T]) -> Mapping[NsName, T]:
    return MappingProxyType(d)


@dataclass(frozen=True)
class MeshState:
    """Everything watched, at one tick. Build with `MeshState.build`; never mutate."""

    version: int
    mesh_name: str
    osm_namespace: str
    mesh_config: MeshConfig
    namespaces: Mapping[str, Namespace]
    service_accounts: Mapping[NsName, ServiceAccount]
    services: Mapping[NsName, Service]
    pods: Mapping[NsName, Pod]
    endpoints: Mapping[NsName, Endpoints]
    endpoint_slices: Mapping[NsName, tuple[EndpointSlice, ...]]  # keyed by (ns, service)
    deployments: Mapping[NsName, Deployment]
    statefulsets: Mapping[NsName, StatefulSet]
    traffic_targets: Mapping[NsName, TrafficTarget]
    http_route_groups: Mapping[NsName, HTTPRouteGroup]
    tcp_routes: Mapping[NsName, TCPRoute]
    traffic_splits: Mapping[NsName, TrafficSplit]
    retries: Mapping[NsName, Retry]
    upstream_traffic_settings: Mapping[NsName, UpstreamTrafficSetting]
    ingress_backends: Mapping[NsName, IngressBackend]
    egresses: Mapping[NsName, Egress]
    pods_by_uuid: Mapping[str, tuple[Pod, ...]] = field(repr=False)
    # Why the mesh runs on defaults or ignores a MeshConfig ("" when the MeshConfig is in place).
    mesh_config_problem: str = ""

    @staticmethod
    def build(
        objects: Iterable[MeshObject],
        *,
        version: int = 0,
        mesh_name: str = DEFAULT_MESH_NAME,
        osm_namespace: str = DEFAULT_OSM_NAMESPACE,
    ) -> MeshState:
        namespaces: dict[str, Namespace] = {}
        by_kind: dict[str, dict[NsName, MeshObject]] = {}
        slices: dict[NsName, list[EndpointSlice]] = {}
        mesh_config: MeshConfig | None = None
        ignored: list[str] = []
        for obj in objects:
            if isinstance(obj, Namespace):
                namespaces[obj.meta.name] = obj
            elif isinstance(obj, MeshConfig):
                if obj.meta.name == MESH_CONFIG_NAME and obj.meta.namespace == osm_namespace:
                    mesh_config = obj
                else:
                    ignored.append(f"{obj.meta.namespace}/{obj.meta.name}")
            elif isinstance(obj, EndpointSlice):
                slices.setdefault((obj.meta.namespace, obj.service), []).append(obj)
            else:
                by_kind.setdefault(obj.KIND, {})[(obj.meta.namespace, obj.meta.name)] = obj

        def kind(name: str, _t: type[T]) -> Mapping[NsName, T]:
            return _frozen(by_kind.get(name, {}))  # type: ignore[arg-type]

        problem = ""
        if mesh_config is None:
            problem = (
                f"MeshConfig {osm_namespace}/{MESH_CONFIG_NAME} does not exist: the mesh runs closed "
                "(SMI mode: no traffic without a TrafficTarget; egress off) until it does"
            )
        if ignored:
            problem += "; " if problem else ""
            problem += (
                f"MeshConfig {', '.join(sorted(ignored))} is ignored: the mesh reads only "
                f"{osm_namespace}/{MESH_CONFIG_NAME}"
            )
        pods = kind("Pod", Pod)
        uuids: dict[str, list[Pod]] = {}
        for p in pods.values():
            if p.proxy_uuid:
                uuids.setdefault(p.proxy_uuid, []).append(p)
        return MeshState(
            version=version,
            mesh_name=mesh_name,
            osm_namespace=osm_namespace,
            mesh_config=mesh_config if mesh_config is not None else MeshConfig(),
            namespaces=MappingProxyType(namespaces),
            service_accounts=kind("ServiceAccount", ServiceAccount),
            services=kind("Service", Service),
            pods=pods,
            endpoints=kind("Endpoints", Endpoints),
            endpoint_slices=_frozen(
                {k: tuple(sorted(v, key=lambda s: s.meta.name)) for k, v in slices.items()}
            ),
            deployments=kind("Deployment", Deployment),
            statefulsets=kind("StatefulSet", StatefulSet),
            traffic_targets=kind("TrafficTarget", TrafficTarget),
            http_route_groups=kind("HTTPRouteGroup", HTTPRouteGroup),
            tcp_routes=kind("TCPRoute", TCPRoute),
            traffic_splits=kind("TrafficSplit", TrafficSplit),
            retries=kind("Retry", Retry),
            upstream_traffic_settings=kind("UpstreamTrafficSetting", UpstreamTrafficSetting),
            ingress_backends=kind("IngressBackend", IngressBackend),
            egresses=kind("Egress", Egress),
            pods_by_uuid=MappingProxyType({k: tuple(v) for k, v in uuids.items()}),
            mesh_config_problem=problem,
        )

    def is_monitored(self, namespace: str) -> bool:
        ns = self.namespaces.get(namespace)
        return ns is not None and ns.monitored_by == self.mesh_name

    @property
    def permissive(self) -> bool:
        return self.mesh_config.permissive
