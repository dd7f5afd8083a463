"""Would this request be allowed, and if not, which policy, listener, route or certificate is at
fault? Answered from the mesh state alone (pure): the request is sent through the configuration the
control plane generates for both sidecars (osm.envoy.simulate), and the SMI policies between the two
identities are named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from osm.envoy.sds.secrets import CertMaterial
from osm.envoy.simulate import Request, SimulationError, mesh_proxies
from osm.models.k8s import PROTOCOL_GRPC, PROTOCOL_HTTP, Pod, Service, match_labels
from osm.state.snapshot import MeshState

Nat = Callable[[str, int], list[tuple[str, int]]]
_NO_CERT = CertMaterial(b"", b"", b"")  # the simulation reads no certificate bytes


class ExplainError(Exception):
    """The question names something the mesh does not have (a pod, a port)."""


@dataclass
class Explanation:
    allowed: bool
    reason: str
    result: str  # served | egress | refused | closed | http-error
    status: int | None  # the HTTP status the client would get (None: TCP, or no answer)
    mode: str  # permissive | smi
    request: dict[str, Any]
    hops: list[str] = field(default_factory=list)
    objects: dict[str, list[str]] = field(default_factory=dict)  # the policies and services involved

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _pod(state: MeshState, ns: str, name: str) -> Pod:
    pod = state.pods.get((ns, name))
    if pod is None:
        raise ExplainError(f"no pod {ns}/{name}")
    return pod


def _target(state: MeshState, dst: Pod, port: int | None) -> tuple[Service | None, int, str]:
    """The Service (and its port and protocol) a client would call to reach `dst`."""
    services = [
        svc
        for (ns, _), svc in sorted(state.services.items())
        if ns == dst.meta.namespace and svc.selector and match_labels(svc.selector, dst.meta.labels)
    ]
    for svc in services:
        for sp in svc.ports:
            if port is None or port in (sp.port, sp.target_port):
                return svc, sp.port, sp.app_protocol
    if port is None and not services:
        raise ExplainError(f"no Service selects pod {dst.meta.namespace}/{dst.meta.name}: give --port")
    if port is None:
        raise ExplainError(f"no port of the Services of pod {dst.meta.namespace}/{dst.meta.name}")
    return None, port, PROTOCOL_HTTP


def _policies(state: MeshState, src: Pod, dst: Pod) -> dict[str, list[str]]:
    """The TrafficTargets to the destination's ServiceAccount: those that list the source's, and the
    others."""
    allowing: list[str] = []
    others: list[str] = []
    for (ns, name), tt in sorted(state.traffic_targets.items()):
        d = tt.destination
        if ns != dst.meta.namespace or (d.namespace, d.name) != (dst.meta.namespace, dst.service_account):
            continue
        sources = {(s.namespace, s.name) for s in tt.sources}
        (allowing if (src.meta.namespace, src.service_account) in sources else others).append(f"{ns}/{name}")
    return {"traffic_targets_allowing": allowing, "traffic_targets_to_destination": others}


def explain(
    state: MeshState,
    src: tuple[str, str],
    dst: tuple[str, str],
    *,
    port: int | None = None,
    method: str = "GET",
    path: str = "/",
    nat: Nat | None = None,
    trust_domain: str = "cluster.local",
) -> Explanation:
    source, dest = _pod(state, *src), _pod(state, *dst)
    svc, svc_port, protocol = _target(state, dest, port)
    http = protocol in (PROTOCOL_HTTP, PROTOCOL_GRPC)
    if svc is not None and svc.cluster_ip and not svc.headless:
        ip, host = svc.cluster_ip, f"{svc.meta.name}.{svc.meta.namespace}.svc.{trust_domain}"
    else:
        ip = dest.pod_ip
        host = f"{svc.meta.name}.{svc.meta.namespace}.svc.{trust_domain}" if svc is not None else dest.pod_ip
    request: dict[str, Any] = {"ip": ip, "port": svc_port, "protocol": protocol}
    if http:
        request.update(host=host, method=method, path=path)
    mode = "permissive" if state.permissive else "smi"
    objects = _policies(state, source, dest)
    if svc is not None:
        objects["services"] = [f"{svc.meta.namespace}/{svc.meta.name}"]
    src_name = f"{src[0]}/{src[1]}"
    if not ip:
        return Explanation(
            False, f"pod {dst[0]}/{dst[1]} has no IP yet", "refused", None, mode, request, [], objects
        )
    proxies = mesh_proxies(state, _NO_CERT, nat, trust_domain)
    dest_meshed = dest.pod_ip in proxies.by_ip
    if src not in proxies.by_pod:
        if dest_meshed:
            reason = (
                f"pod {src_name} has no sidecar: the sidecar of {dst[0]}/{dst[1]} takes only mTLS from the "
                "mesh (or plaintext from an IngressBackend's sources)"
            )
            return Explanation(False, reason, "closed", None, mode, request, [], objects)
        return Explanation(
            True,
            "neither pod has a sidecar: the mesh is not involved",
            "served",
            None,
            mode,
            request,
            [],
            objects,
        )
    req = Request(ip, svc_port, host if http else "", path, method)
    try:
        outcomes = proxies.send(src[0], src[1], req)
    except SimulationError as e:
        return Explanation(
            False, f"the configuration cannot be followed: {e}", "unknown", None, mode, request, [], objects
        )
    failed = [o for o in outcomes if not o.allowed]
    chosen = failed[0] if failed else outcomes[0]
    hops = [str(h) for h in chosen.hops]
    if not failed:
        return Explanation(
            True, chosen.reason or "allowed", chosen.result, chosen.status, mode, request, hops, objects
        )
    reason = chosen.reason
    if mode == "smi" and not objects["traffic_targets_allowing"] and dest_meshed:
        reason += (
            f"; no TrafficTarget names ServiceAccount {src[0]}/{source.service_account} as a source of "
            f"ServiceAccount {dst[0]}/{dest.service_account} (SMI mode denies what no TrafficTarget allows)"
        )
    return Explanation(False, reason, chosen.result, chosen.status, mode, request, hops, objects)
