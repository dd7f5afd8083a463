"""Kubernetes document -> typed mesh object, by apiVersion and kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from osm.apis.meshconfig import CONFIG_API, MeshConfig
from osm.models.errors import ValidationError
from osm.models.k8s import (
    Deployment,
    Endpoints,
    EndpointSlice,
    Namespace,
    Pod,
    Service,
    ServiceAccount,
)
from osm.smi.models import (
    ACCESS_API,
    SPECS_API,
    SPLIT_API,
    HTTPRouteGroup,
    TCPRoute,
    TrafficSplit,
    TrafficTarget,
)

MeshObject = (
    Namespace
    | ServiceAccount
    | Service
    | Pod
    | Endpoints
    | EndpointSlice
    | Deployment
    | TrafficTarget
    | HTTPRouteGroup
    | TCPRoute
    | TrafficSplit
    | MeshConfig
)


@dataclass(frozen=True, slots=True, order=True)
class ObjectKey:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


# (apiVersion, kind) -> parser. Only the versions OSM serves.
_PARSERS: dict[tuple[str, str], Callable[[Mapping[str, Any]], MeshObject]] = {
    ("v1", "Namespace"): Namespace.from_k8s,
    ("v1", "ServiceAccount"): ServiceAccount.from_k8s,
    ("v1", "Service"): Service.from_k8s,
    ("v1", "Pod"): Pod.from_k8s,
    ("v1", "Endpoints"): Endpoints.from_k8s,
    ("discovery.k8s.io/v1", "EndpointSlice"): EndpointSlice.from_k8s,
    ("apps/v1", "Deployment"): Deployment.from_k8s,
    (ACCESS_API, "TrafficTarget"): TrafficTarget.from_k8s,
    (SPECS_API, "HTTPRouteGroup"): HTTPRouteGroup.from_k8s,
    (SPECS_API, "TCPRoute"): TCPRoute.from_k8s,
    (SPLIT_API, "TrafficSplit"): TrafficSplit.from_k8s,
    (CONFIG_API, "MeshConfig"): MeshConfig.from_k8s,
}
KNOWN_KINDS = frozenset(kind for _, kind in _PARSERS)
CLUSTER_SCOPED = frozenset({"Namespace"})


def key_of(obj: MeshObject) -> ObjectKey:
    return ObjectKey(obj.KIND, obj.meta.namespace, obj.meta.name)


def decode(doc: Mapping[str, Any]) -> MeshObject | None:
    """Decode one document. Returns None for kinds the mesh does not watch; raises ValidationError."""
    if not isinstance(doc, Mapping):
        raise ValidationError("<unknown>", "", "", "", f"document must be a map, got {type(doc).__name__}")
    api = doc.get("apiVersion")
    kind = doc.get("kind")
    meta = doc.get("metadata")
    name = str(meta.get("name", "")) if isinstance(meta, Mapping) else ""
    ns = str(meta.get("namespace") or "") if isinstance(meta, Mapping) else ""
    if not ns and kind not in CLUSTER_SCOPED:
        ns = "default"  # as ObjectMeta.parse does, so the error names the same object
    if not isinstance(kind, str) or not kind:
        raise ValidationError("<unknown>", ns, name, "kind", "is required")
    if not isinstance(api, str) or not api:
        raise ValidationError(kind, ns, name, "apiVersion", "is required")
    parser = _PARSERS.get((api, kind))
    if parser is None:
        if kind in KNOWN_KINDS:
            served = sorted(a for a, k in _PARSERS if k == kind)
            raise ValidationError(
                kind,
                ns,
                name,
                "apiVersion",
                f"unsupported version {api!r}; the mesh serves {', '.join(served)}",
            )
        return None
    return parser(doc)
