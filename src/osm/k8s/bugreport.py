"""`osm support bug-report` on Kubernetes: one archive of what a person debugging the mesh needs.

It holds the mesh's namespaces and the objects the controller would reject (with their reasons), the
MeshConfig and the policies, the control plane's pods (their status and every container's log), and of
each meshed pod (at most `max_pods`, in name order) its sidecar's config dump, stats and clusters
(through the API server's pod proxy to the admin port; Envoy redacts private keys in the config dump)
and the sidecar's log. Each log contributes at most its last MAX_LOG_BYTES; every file is checked for
private keys before it goes in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from osm.k8s.client import ApiError, KubeClient, Obj
from osm.k8s.resources import PODS
from osm.k8s.snapshot import snapshot
from osm.models.k8s import LABEL_PROXY_UUID
from osm.report import MAX_LOG_BYTES, SIDECAR_FILES, Archive, policies
from osm.state.snapshot import MeshState

MAX_PODS = 100
LOG_LINES = 20_000


async def container_log(kube: KubeClient, namespace: str, pod: str, container: str) -> bytes:
    path = PODS.path(namespace, pod) + "/log"
    query: dict[str, str | int] = {
        "container": container,
        "tailLines": LOG_LINES,
        "limitBytes": MAX_LOG_BYTES,
    }
    try:
        return await kube.get_bytes(path, limit=MAX_LOG_BYTES, query=query)
    except (ApiError, OSError) as e:
        return f"(unavailable: {e})\n".encode()


def _containers(pod: Obj) -> list[str]:
    spec = pod.get("spec") or {}
    return [str(c.get("name")) for c in [*spec.get("initContainers", []), *spec.get("containers", [])]]


async def collect(
    kube: KubeClient,
    out: Path,
    *,
    mesh_name: str,
    osm_namespace: str,
    admin_port: int = 15000,
    max_pods: int = MAX_PODS,
) -> list[str]:
    """Write the archive to `out`; the names it holds."""
    snap = await snapshot(kube, mesh_name=mesh_name, osm_namespace=osm_namespace)
    state = MeshState.build(snap.objects, mesh_name=mesh_name, osm_namespace=osm_namespace)
    meshed = sorted((ns, name) for (ns, name), p in state.pods.items() if LABEL_PROXY_UUID in p.meta.labels)
    with Archive(out) as archive:
        mesh: dict[str, Any] = {
            "mesh": mesh_name,
            "osmNamespace": osm_namespace,
            "namespaces": sorted(snap.monitored),
            "rejected": {str(k): reason for k, reason in sorted(snap.rejected.items(), key=str)},
            "missing": snap.missing,
            "meshedPods": len(meshed),
            "meshedPodsInReport": min(len(meshed), max_pods),
        }
        archive.add_json("mesh.json", mesh)
        archive.add_json("policies.json", policies(state))
        control, _ = await kube.list(PODS.path(osm_namespace))
        for pod in control:
            name = str((pod.get("metadata") or {}).get("name"))
            archive.add_json(f"control-plane/{name}/status.json", pod.get("status") or {})
            for c in _containers(pod):
                archive.add(
                    f"control-plane/{name}/{c}.log", await container_log(kube, osm_namespace, name, c)
                )
        for ns, name in meshed[:max_pods]:
            where = f"pods/{ns}/{name}"
            for file, path in SIDECAR_FILES:
                proxied = f"{PODS.path(ns, name)}:{admin_port}/proxy{path}"
                try:
                    archive.add(f"{where}/{file}", await kube.get_bytes(proxied))
                except (ApiError, OSError) as e:  # a sidecar that does not answer: said in the report
                    archive.add(f"{where}/{file}", f"(unavailable: {e})\n".encode())
            archive.add(f"{where}/envoy.log", await container_log(kube, ns, name, "envoy"))
    return archive.names
