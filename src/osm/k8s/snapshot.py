"""The mesh's objects as the controller would see them, listed once from the API server (for the CLI's
`osm policy`, `osm verify` and `osm support bug-report` on Kubernetes).

The same filtering and decoding as the controller's source: every Namespace, the MeshConfig of the OSM
namespace, the watched kinds in the mesh's namespaces; an object that does not decode is left out and
reported with its reason. A kind whose CRD is not installed is reported, not fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from osm.k8s.client import ApiError, KubeClient
from osm.k8s.resources import MESH_CONFIGS, MESH_NAMESPACED, NAMESPACES, Resource
from osm.k8s.source import KubeSource
from osm.state.decode import MeshObject, ObjectKey
from osm.state.store import Store


@dataclass
class Snapshot:
    objects: list[MeshObject]
    rejected: dict[ObjectKey, str] = field(default_factory=dict)  # objects left out: why
    missing: list[str] = field(default_factory=list)  # kinds the API server does not serve
    monitored: frozenset[str] = frozenset()  # the mesh's namespaces


async def snapshot(kube: KubeClient, *, mesh_name: str, osm_namespace: str) -> Snapshot:
    store = Store(mesh_name=mesh_name, osm_namespace=osm_namespace)
    source = KubeSource(kube, store)
    missing: list[str] = []
    lists: list[tuple[Resource, str]] = [
        (NAMESPACES, NAMESPACES.path()),
        (MESH_CONFIGS, MESH_CONFIGS.path(osm_namespace)),
        *((r, r.path()) for r in MESH_NAMESPACED),
    ]
    for resource, path in lists:
        try:
            items, _ = await kube.list(path)
        except ApiError as e:
            if e.status != 404:
                raise
            missing.append(f"{resource.kind} ({resource.api_version}): not served by the API server")
            continue
        for item in items:  # a list's items carry no apiVersion and kind
            item["apiVersion"], item["kind"] = resource.api_version, resource.kind
        source.replace(resource, items)
    return Snapshot(list(store.values()), dict(source.rejected), missing, source.monitored())
