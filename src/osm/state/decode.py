"""Kubernetes document -> typed mesh object, by apiVersion and kind."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from osm.apis.meshconfig import CONFIG_API, MeshConfig
from osm.apis.policy import POLICY_API, Egress, IngressBackend, Retry, UpstreamTrafficSetting
from osm.models.errors import ValidationError
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
    | StatefulSet
    | TrafficTarget
    | HTTPRouteGroup
    | TCPRoute
    | TrafficSplit
    | MeshConfig
    | Retry
    | UpstreamTrafficSetting
    | IngressBackend
    | Egress
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
    ("apps/v1", "StatefulSet"): StatefulSet.from_k8s,
    (ACCESS_API, "TrafficTarget"): TrafficTarget.from_k8s,
    (SPECS_API, "HTTPRouteGroup"): HTTPRouteGroup.from_k8s,
    (SPECS_API, "TCPRoute"): TCPRoute.from_k8s,
    (SPLIT_API, "TrafficSplit"): TrafficSplit.from_k8s,
    (CONFIG_API, "MeshConfig"): MeshConfig.from_k8s,
    (POLICY_API, "Retry"): Retry.from_k8s,
    (POLICY_API, "UpstreamTrafficSetting"): UpstreamTrafficSetting.from_k8s,
    (POLICY_API, "IngressBackend"): IngressBackend.from_k8s,
    (POLICY_API, "Egress"): Egress.from_k8s,
}
KNOWN_KINDS = frozenset(kind for _, kind in _PARSERS)
CLUSTER_SCOPED = frozenset({"Namespace"})

# The kinds of the API groups the mesh reads from, including those it does not watch: a document of
# one of these groups with any other kind is a typo (e.g. `TrafficSplitt`), reported rather than
# ignored, so that it cannot silently delete the object its document used to define.
_GROUP_KINDS: dict[str, frozenset[str]] = {
    "": frozenset(
        {
            "Binding",
            "ComponentStatus",
            "ConfigMap",
            "Endpoints",
            "Event",
            "LimitRange",
            "List",
            "Namespace",
            "Node",
            "PersistentVolume",
            "PersistentVolumeClaim",
            "Pod",
            "PodTemplate",
            "ReplicationController",
            "ResourceQuota",
            "Secret",
            "Service",
            "ServiceAccount",
        }
    ),
    "apps": frozenset({"ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"}),
    "discovery.k8s.io": frozenset({"EndpointSlice"}),
    "access.smi-spec.io": frozenset({"TrafficTarget"}),
    "specs.smi-spec.io": frozenset({"HTTPRouteGroup", "TCPRoute", "UDPRoute"}),
    "split.smi-spec.io": frozenset({"TrafficSplit"}),
    "config.openservicemesh.io": frozenset({"MeshConfig", "MeshRootCertificate"}),
    "policy.openservicemesh.io": frozenset({"Egress", "IngressBackend", "Retry", "UpstreamTrafficSetting"}),
}


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def document_ref(doc: Any) -> tuple[str, str] | None:
    """The (namespace, name) a document names, when its metadata is well-formed enough to tell."""
    if not isinstance(doc, Mapping):
        return None
    meta = doc.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    name, ns = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str) or not name or not isinstance(ns, str | None):
        return None
    if not ns:
        kind = doc.get("kind")
        ns = "" if isinstance(kind, str) and kind in CLUSTER_SCOPED else "default"
    return ns, name


def key_of(obj: MeshObject) -> ObjectKey:
    return ObjectKey(obj.KIND, obj.meta.namespace, obj.meta.name)


def decode(doc: Mapping[str, Any]) -> MeshObject | None:
    """Decode one document. Returns None for kinds the mesh does not watch; raises ValidationError."""
    if not isinstance(doc, Mapping):
        raise ValidationError("<unknown>", "", "", "", f"document must be a map, got {type(doc).__name__}")
    api = doc.get("apiVersion")
    kind = doc.get("kind")
    # The object the document names, as far as its metadata is well-formed (ObjectMeta.parse reports
    # what is not), so that an error names the same object.
    ns, name = document_ref(doc) or ("", "")
    if not isinstance(kind, str) or not kind:
        raise ValidationError("<unknown>", ns, name, "kind", "is required and must be a string")
    if not isinstance(api, str) or not api:
        raise ValidationError(kind, ns, name, "apiVersion", "is required and must be a string")
    parser = _PARSERS.get((api, kind))
    if parser is None:
        group_kinds = _GROUP_KINDS.get(_group(api))
        if group_kinds is not None and kind not in group_kinds:
            close = difflib.get_close_matches(kind, sorted(group_kinds), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValidationError(kind, ns, name, "kind", f"unknown kind {kind!r} in {api}{hint}")
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
