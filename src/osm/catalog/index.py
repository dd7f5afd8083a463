"""Indexes over one MeshState: mesh services, their pods, identities and endpoints."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from osm.models.identity import ServiceIdentity
from osm.models.k8s import EndpointSubset, Pod, Service, ServicePort, match_labels
from osm.models.service import Endpoint, MeshService
from osm.smi.models import TrafficSplit
from osm.state.snapshot import MeshState, NsName


@dataclass(frozen=True, slots=True)
class ResolvedEndpoint:
    endpoint: Endpoint
    identity: ServiceIdentity | None  # the ServiceAccount of the pod behind it, when known


@dataclass
class MeshIndex:
    """Built once per snapshot; read-only afterwards."""

    state: MeshState
    warnings: list[str] = field(default_factory=list)
    services: dict[NsName, Service] = field(default_factory=dict)
    mesh_services: dict[NsName, tuple[MeshService, ...]] = field(default_factory=dict)
    service_pods: dict[NsName, tuple[Pod, ...]] = field(default_factory=dict)
    service_identities: dict[NsName, tuple[ServiceIdentity, ...]] = field(default_factory=dict)
    identity_services: dict[ServiceIdentity, tuple[NsName, ...]] = field(default_factory=dict)
    endpoints: dict[MeshService, tuple[ResolvedEndpoint, ...]] = field(default_factory=dict)
    splits: dict[NsName, TrafficSplit] = field(default_factory=dict)  # by (ns, apex)
    backend_apexes: dict[NsName, tuple[NsName, ...]] = field(default_factory=dict)  # backend -> apexes
    services_by_ns: dict[str, list[tuple[NsName, Service]]] = field(default_factory=dict)
    pod_services: dict[NsName, list[NsName]] = field(default_factory=dict)  # pod -> services selecting it

    @staticmethod
    def build(state: MeshState) -> MeshIndex:
        ix = MeshIndex(state)
        ix._build()
        return ix

    def _build(self) -> None:
        st = self.state
        # Pods by (namespace, label, value): a selector only scans the pods carrying one of its labels.
        by_label: dict[tuple[str, str, str], list[Pod]] = defaultdict(list)
        pod_by_ip: dict[str, Pod] = {}
        for (ns, _), pod in sorted(st.pods.items()):
            if st.is_monitored(ns):
                for label in pod.meta.labels.items():
                    by_label[(ns, *label)].append(pod)
                if pod.pod_ip:
                    pod_by_ip[pod.pod_ip] = pod

        def selected(ns: str, selector: Mapping[str, str]) -> tuple[Pod, ...]:
            if not selector:
                return ()
            first = min(selector.items(), key=lambda kv: len(by_label.get((ns, *kv), ())))
            return tuple(p for p in by_label.get((ns, *first), ()) if match_labels(selector, p.meta.labels))

        identity_services: dict[ServiceIdentity, list[NsName]] = defaultdict(list)
        for key, svc in sorted(st.services.items()):
            if not st.is_monitored(key[0]):
                continue
            self.services[key] = svc
            self.services_by_ns.setdefault(key[0], []).append((key, svc))
            pods = selected(key[0], svc.selector)
            self.service_pods[key] = pods
            for p in pods:
                self.pod_services.setdefault((p.meta.namespace, p.meta.name), []).append(key)
            idents = sorted({ServiceIdentity(p.meta.namespace, p.service_account) for p in pods})
            self.service_identities[key] = tuple(idents)
            for ident in idents:
                identity_services[ident].append(key)
            ms = []
            for port in svc.ports:
                if port.protocol != "TCP":
                    continue
                target = self._target_port(key, svc, port, pods)
                if target is None:
                    self.warnings.append(
                        f"Service {key[0]}/{key[1]}: port {port.port}: cannot resolve targetPort "
                        f"{port.target_port!r} (no endpoints or pod port of that name); port skipped"
                    )
                    continue
                m = MeshService(key[0], key[1], port.port, target, port.app_protocol)
                ms.append(m)
                self.endpoints[m] = self._endpoints(key, port, target, pods, pod_by_ip)
            self.mesh_services[key] = tuple(ms)
        self.identity_services = {k: tuple(v) for k, v in identity_services.items()}
        self._index_splits()

    def _subsets(self, key: NsName) -> tuple[EndpointSubset, ...] | None:
        ep = self.state.endpoints.get(key)
        if ep is not None:
            return ep.subsets
        slices = self.state.endpoint_slices.get(key)
        if slices:
            return tuple(s.subset for s in slices)
        return None

    def _target_port(self, key: NsName, svc: Service, port: ServicePort, pods: tuple[Pod, ...]) -> int | None:
        subsets = self._subsets(key)
        if subsets:
            for s in subsets:
                for p in s.ports:
                    if p.name == port.name or (len(s.ports) == 1 and len(svc.ports) == 1):
                        return p.port
        if isinstance(port.target_port, int):
            return port.target_port
        for pod in pods:
            n = pod.spec.container_port(port.target_port)
            if n is not None:
                return n
        return None

    def _endpoints(
        self, key: NsName, port: ServicePort, target: int, pods: tuple[Pod, ...], pod_by_ip: dict[str, Pod]
    ) -> tuple[ResolvedEndpoint, ...]:
        ns = key[0]
        subsets = self._subsets(key)
        out: set[ResolvedEndpoint] = set()
        if subsets is not None:
            for s in subsets:
                number = next((p.port for p in s.ports if p.name == port.name), None)
                if number is None and len(s.ports) == 1:
                    number = s.ports[0].port
                if number is None:
                    continue
                for a in s.addresses:
                    if not a.ready:
                        continue
                    pod = self.state.pods.get((ns, a.pod_name)) if a.pod_name else pod_by_ip.get(a.ip)
                    ident = ServiceIdentity(pod.meta.namespace, pod.service_account) if pod else None
                    out.add(ResolvedEndpoint(Endpoint(a.ip, number), ident))
        else:  # no Endpoints object: act as the endpoints controller over ready pods with an IP
            for pod in pods:
                if pod.ready and pod.pod_ip:
                    out.add(
                        ResolvedEndpoint(
                            Endpoint(pod.pod_ip, target),
                            ServiceIdentity(pod.meta.namespace, pod.service_account),
                        )
                    )
        return tuple(sorted(out, key=lambda e: (e.endpoint.ip, e.endpoint.port)))

    def _index_splits(self) -> None:
        apexes: dict[NsName, list[NsName]] = defaultdict(list)
        for (ns, name), split in sorted(self.state.traffic_splits.items()):
            if not self.state.is_monitored(ns):
                continue
            apex = (ns, split.service)
            if apex not in self.services:
                self.warnings.append(
                    f"TrafficSplit {ns}/{name}: apex service {split.service!r} does not exist; ignored"
                )
                continue
            if apex in self.splits:
                first = self.splits[apex].meta.name
                self.warnings.append(
                    f"TrafficSplit {ns}/{name}: apex {split.service!r} already split by "
                    f"TrafficSplit {ns}/{first}; only the first is honoured"
                )
                continue
            self.splits[apex] = split
            for b in split.backends:
                apexes[(ns, b.service)].append(apex)
        self.backend_apexes = {k: tuple(v) for k, v in apexes.items()}

    def services_for_pod(self, pod: Pod) -> tuple[MeshService, ...]:
        keys = self.pod_services.get((pod.meta.namespace, pod.meta.name))
        if keys is None or self.state.pods.get((pod.meta.namespace, pod.meta.name)) is not pod:
            # A pod this snapshot does not hold (or holds another version of): match its labels directly.
            keys = [
                k
                for k, svc in self.services_by_ns.get(pod.meta.namespace, ())
                if match_labels(svc.selector, pod.meta.labels)
            ]
        out: list[MeshService] = []
        for key in keys:
            out.extend(self.mesh_services.get(key, ()))
        return tuple(sorted(out))

    def addresses(self, key: NsName) -> tuple[str, ...]:
        svc = self.services[key]
        if svc.headless:
            return tuple(sorted({p.pod_ip for p in self.service_pods.get(key, ()) if p.pod_ip}))
        return (svc.cluster_ip,) if svc.cluster_ip else ()
