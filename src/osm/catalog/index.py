"""Indexes over one MeshState: mesh services, their pods, identities and endpoints."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

from osm.models.identity import ServiceIdentity
from osm.models.k8s import EndpointSubset, Pod, Service, ServicePort, match_labels
from osm.models.service import Endpoint, MeshService
from osm.smi.models import TrafficSplit
from osm.state.decode import ObjectKey
from osm.state.snapshot import MeshState, NsName

ENDPOINT_KINDS = frozenset({"Pod", "Endpoints", "EndpointSlice"})
# What the index is built from; a change to anything else (MeshConfig, access and routing policies)
# leaves it as it was.
INDEXED_KINDS = ENDPOINT_KINDS | {"Service", "Namespace", "TrafficSplit"}


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
    service_warnings: dict[NsName, list[str]] = field(default_factory=dict)
    split_warnings: list[str] = field(default_factory=list)

    @staticmethod
    def build(
        state: MeshState, previous: MeshIndex | None = None, changed: Collection[ObjectKey] | None = None
    ) -> MeshIndex:
        """Index a snapshot. Given the previous index and the keys that changed since, services the
        change cannot touch are carried over (an endpoint change re-indexes only its services)."""
        if previous is not None and changed is not None and not any(k.kind in INDEXED_KINDS for k in changed):
            return replace(previous, state=state)
        ix = MeshIndex(state)
        reuse = previous is not None and changed is not None and ix._can_reuse(previous, changed)
        ix._build(previous if reuse else None, changed or ())
        return ix

    def _can_reuse(self, previous: MeshIndex, changed: Collection[ObjectKey]) -> bool:
        st, old = self.state, previous.state
        if any(k.kind not in ENDPOINT_KINDS for k in changed):
            return False
        if st.namespaces is not old.namespaces and dict(st.namespaces) != dict(old.namespaces):
            return False
        return len(st.services) == len(old.services) and all(
            old.services.get(k) is v for k, v in st.services.items()
        )

    def affected_services(self, previous: MeshIndex, changed: Collection[ObjectKey]) -> set[NsName]:
        """The services whose endpoints the changed Pods, Endpoints and EndpointSlices can move."""
        out: set[NsName] = set()
        for key in changed:
            ns_name = (key.namespace, key.name)
            if key.kind == "Pod":
                out.update(previous.pod_services.get(ns_name, ()))
                pod = self.state.pods.get(ns_name)
                if pod is not None:
                    out.update(
                        k
                        for k, svc in self.services_by_ns_of(key.namespace)
                        if match_labels(svc.selector, pod.meta.labels)
                    )
            elif key.kind == "Endpoints":
                out.add(ns_name)
            else:  # an EndpointSlice: its service, in either snapshot
                for state in (previous.state, self.state):
                    for (ns, service), slices in state.endpoint_slices.items():
                        if ns == key.namespace and any(x.meta.name == key.name for x in slices):
                            out.add((ns, service))
        return out

    def services_by_ns_of(self, namespace: str) -> list[tuple[NsName, Service]]:
        return [(k, v) for k, v in self.state.services.items() if k[0] == namespace]

    def _build(self, previous: MeshIndex | None, changed: Collection[ObjectKey]) -> None:
        st = self.state
        affected = self.affected_services(previous, changed) if previous is not None else set()
        namespaces = {ns for ns, _ in affected} if previous is not None else None
        # Pods by (namespace, label, value): a selector only scans the pods carrying one of its labels.
        # Carrying an index over, only the namespaces of the services to re-index are needed.
        by_label: dict[tuple[str, str, str], list[Pod]] = defaultdict(list)
        pod_by_ip: dict[str, Pod] = {}
        for (ns, _), pod in sorted(st.pods.items()):
            if (namespaces is None or ns in namespaces) and st.is_monitored(ns):
                for label in pod.meta.labels.items():
                    by_label[(ns, *label)].append(pod)
                if pod.pod_ip:
                    pod_by_ip[pod.pod_ip] = pod

        def selected(ns: str, selector: Mapping[str, str]) -> tuple[Pod, ...]:
            if not selector:
                return ()
            first = min(selector.items(), key=lambda kv: len(by_label.get((ns, *kv), ())))
            return tuple(p for p in by_label.get((ns, *first), ()) if match_labels(selector, p.meta.labels))

        for key, svc in sorted(st.services.items()):
            if not st.is_monitored(key[0]):
                continue
            self.services[key] = svc
            self.services_by_ns.setdefault(key[0], []).append((key, svc))
            if previous is not None and key not in affected:
                self.service_pods[key] = previous.service_pods[key]
                self.service_identities[key] = previous.service_identities[key]
                self.mesh_services[key] = previous.mesh_services[key]
                for m in self.mesh_services[key]:
                    self.endpoints[m] = previous.endpoints[m]
                self.service_warnings[key] = previous.service_warnings.get(key, [])
                continue
            self._index_service(key, svc, selected(key[0], svc.selector), pod_by_ip)
        identity_services: dict[ServiceIdentity, list[NsName]] = defaultdict(list)
        for key, pods in self.service_pods.items():
            for p in pods:
                self.pod_services.setdefault((p.meta.namespace, p.meta.name), []).append(key)
            for ident in self.service_identities[key]:
                identity_services[ident].append(key)
        self.identity_services = {k: tuple(v) for k, v in identity_services.items()}
        if previous is not None:
            self.splits, self.backend_apexes = previous.splits, previous.backend_apexes
            self.split_warnings = previous.split_warnings
        else:
            self._index_splits()
        self.warnings = [w for ws in self.service_warnings.values() for w in ws] + self.split_warnings

    def _index_service(
        self, key: NsName, svc: Service, pods: tuple[Pod, ...], pod_by_ip: dict[str, Pod]
    ) -> None:
        self.service_pods[key] = pods
        self.service_identities[key] = tuple(
            sorted({ServiceIdentity(p.meta.namespace, p.service_account) for p in pods})
        )
        ms = []
        warnings = []
        for port in svc.ports:
            if port.protocol != "TCP":
                continue
            target = self._target_port(key, svc, port, pods)
            if target is None:
                warnings.append(
                    f"Service {key[0]}/{key[1]}: port {port.port}: cannot resolve targetPort "
                    f"{port.target_port!r} (no endpoints or pod port of that name); port skipped"
                )
                continue
            m = MeshService(key[0], key[1], port.port, target, port.app_protocol)
            ms.append(m)
            self.endpoints[m] = self._endpoints(key, port, target, pods, pod_by_ip)
        self.mesh_services[key] = tuple(ms)
        self.service_warnings[key] = warnings

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
                self.split_warnings.append(
                    f"TrafficSplit {ns}/{name}: apex service {split.service!r} does not exist; ignored"
                )
                continue
            if apex in self.splits:
                first = self.splits[apex].meta.name
                self.split_warnings.append(
                    f"TrafficSplit {ns}/{name}: apex {split.service!r} already split by "
                    f"TrafficSplit {ns}/{first}; only the first is honoured"
                )
                continue
            if not any(b.weight for b in split.backends):
                self.split_warnings.append(
                    f"TrafficSplit {ns}/{name}: every backend has weight 0; requests to the apex "
                    f"{split.service!r} have nowhere to go and fail"
                )
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

    def addressed_by_pod(self, key: NsName) -> bool:
        """A headless Service whose pods are each named `<hostname>.<service>` (a StatefulSet's): clients
        reach one pod by its own name, so traffic must go where it was sent."""
        svc = self.services[key]
        pods = self.service_pods.get(key, ())
        return svc.headless and bool(pods) and all(p.spec.subdomain == svc.meta.name for p in pods)

    def addresses(self, key: NsName) -> tuple[str, ...]:
        svc = self.services[key]
        if svc.headless:
            return tuple(sorted({p.pod_ip for p in self.service_pods.get(key, ()) if p.pod_ip}))
        return (svc.cluster_ip,) if svc.cluster_ip else ()
