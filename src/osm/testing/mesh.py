"""The "standard mesh" of the benchmarks and tests, built directly as typed objects (as a state source
would feed them).

services x pods: one ServiceAccount per service, `pods` pods per service, spread over namespaces.
SMI mode adds TrafficTargets (each destination allows a handful of sources, with an HTTPRouteGroup)
and TrafficSplits (an apex over two backend services); permissive mode needs no policy.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from osm.apis.meshconfig import MeshConfig, TrafficSpec
from osm.models.identity import ServiceIdentity
from osm.models.k8s import (
    LABEL_MONITORED_BY,
    LABEL_PROXY_UUID,
    Container,
    Namespace,
    ObjectMeta,
    Pod,
    PodSpec,
    Service,
    ServicePort,
)
from osm.smi.models import (
    HTTPMatch,
    HTTPRouteGroup,
    IdentityRef,
    TrafficSplit,
    TrafficSplitBackend,
    TrafficTarget,
    TrafficTargetRule,
)
from osm.state.decode import MeshObject

PORT = 8080
NAMESPACES = 10
_UUIDS = uuid.UUID("6f1d3c1e-7b0e-4d59-9a43-2f1b7c0c9e21")


def proxy_uuid(namespace: str, name: str) -> str:
    """The pod's proxy UUID, fixed by its name so that runs are repeatable (set as the injector would)."""
    return str(uuid.uuid5(_UUIDS, f"{namespace}/{name}"))


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str
    service: str
    uuid: str
    ip: str

    @property
    def identity(self) -> ServiceIdentity:
        return ServiceIdentity(self.namespace, self.service)

    def cn(self, trust_domain: str = "cluster.local") -> str:
        return f"{self.uuid}.sidecar.{self.service}.{self.namespace}.{trust_domain}"


@dataclass
class Workload:
    mode: str
    services: int
    pods_per_service: int
    objects: list[MeshObject] = field(default_factory=list)
    pods: list[PodRef] = field(default_factory=list)
    targets: list[TrafficTarget] = field(default_factory=list)
    # destination service (ns, name) -> the services whose identities may call it
    clients: dict[tuple[str, str], set[tuple[str, str]]] = field(default_factory=dict)

    def service_ns(self, i: int) -> tuple[str, str]:
        return (f"ns-{i % NAMESPACES}", f"svc-{i}")

    def pods_of(self, svc: tuple[str, str]) -> list[PodRef]:
        return [p for p in self.pods if (p.namespace, p.service) == svc]

    def client_pods(self, svc: tuple[str, str]) -> list[PodRef]:
        """Pods whose config includes `svc`'s cluster (the minimum set an endpoint change must reach)."""
        if self.mode == "permissive":
            return list(self.pods)
        callers = self.clients.get(svc, set())
        return [p for p in self.pods if (p.namespace, p.service) in callers]


def pod_ip(i: int) -> str:
    return f"10.{64 + i // 65536}.{(i // 256) % 256}.{i % 256}"


def build(
    services: int,
    pods_per_service: int = 2,
    *,
    mode: str = "smi",
    targets: int = 50,
    sources_per_target: int = 5,
    splits: int = 20,
    seed: int = 7,
) -> Workload:
    rnd = random.Random(seed)
    sources_per_target = min(sources_per_target, max(1, services // 4))  # small meshes keep some non-callers
    w = Workload(mode, services, pods_per_service)
    permissive = mode == "permissive"
    w.objects.append(
        MeshConfig(traffic=TrafficSpec(enable_egress=True, enable_permissive_traffic_policy_mode=permissive))
    )
    for n in range(NAMESPACES):
        w.objects.append(Namespace(ObjectMeta(name=f"ns-{n}", labels={LABEL_MONITORED_BY: "osm"})))
    k = 0
    for i in range(services):
        ns, name = w.service_ns(i)
        w.objects.append(
            Service(
                ObjectMeta(name=name, namespace=ns),
                (ServicePort(PORT, PORT, "http"),),
                selector={"app": name},
                cluster_ip=f"10.96.{i // 256}.{i % 256}",
            )
        )
        for j in range(pods_per_service):
            pod_name = f"{name}-{j}"
            pod_uuid = proxy_uuid(ns, pod_name)
            ip = pod_ip(k)
            k += 1
            w.objects.append(
                Pod(
                    ObjectMeta(name=pod_name, namespace=ns, labels={"app": name, LABEL_PROXY_UUID: pod_uuid}),
                    PodSpec(service_account=name, containers=(Container(name="app"),)),
                    pod_ip=ip,
                )
            )
            w.pods.append(PodRef(ns, pod_name, name, pod_uuid, ip))
    if permissive:
        return w
    for t in range(min(targets, services)):
        ns, name = w.service_ns(t)
        others = [
            w.service_ns(x)
            for x in rnd.sample(range(services), min(services, sources_per_target + 1))
            if x != t
        ]
        sources = others[:sources_per_target]
        w.objects.append(
            HTTPRouteGroup(
                ObjectMeta(name=f"routes-{t}", namespace=ns),
                (HTTPMatch("read", "/items", ("GET",)), HTTPMatch("write", "/items/.*", ("POST", "PUT"))),
            )
        )
        tt = TrafficTarget(
            ObjectMeta(name=f"tt-{t}", namespace=ns),
            IdentityRef(name, ns),
            tuple(IdentityRef(s[1], s[0]) for s in sources),
            (TrafficTargetRule("HTTPRouteGroup", f"routes-{t}", ()),),
        )
        w.objects.append(tt)
        w.targets.append(tt)
        w.clients[(ns, name)] = set(sources)
    for s in range(min(splits, services // 4)):
        a, b = w.service_ns(targets + 2 * s), w.service_ns(targets + 2 * s + 1)
        if a[0] != b[0]:  # backends must share the apex's namespace
            b = w.service_ns(targets + 2 * s + NAMESPACES)
        apex = f"apex-{s}"
        w.objects.append(
            Service(
                ObjectMeta(name=apex, namespace=a[0]),
                (ServicePort(PORT, PORT, "http"),),
                selector={"apex": apex},
                cluster_ip=f"10.97.{s // 256}.{s % 256}",
            )
        )
        w.objects.append(
            TrafficSplit(
                ObjectMeta(name=f"split-{s}", namespace=a[0]),
                apex,
                (TrafficSplitBackend(a[1], 50), TrafficSplitBackend(b[1], 50)),
            )
        )
    return w
