"""The xDS view of one MeshState: who a connecting proxy is, and the resources of each proxy group.

Resources are computed lazily per ProxyGroup (identity + services its pod backs) and shared by every
proxy of the group; the generator memoizes individual resources across groups and snapshots.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

from osm.catalog import MeshCatalog, ProxyGroup
from osm.certificate.manager import CertificateManager
from osm.envoy.generator import ConfigGenerator
from osm.envoy.sds.secrets import CertMaterial
from osm.envoy.types import ProxyResources
from osm.models.identity import PROXY_KIND_SIDECAR, ProxyCertCN, ServiceIdentity
from osm.models.k8s import Pod, match_labels
from osm.state.decode import ObjectKey
from osm.state.snapshot import MeshState, NsName

log = logging.getLogger(__name__)


class ProxyRejected(Exception):
    """A connecting proxy whose certificate does not match a known pod."""


@dataclass(frozen=True, slots=True)
class ProxyIdentity:
    cn: ProxyCertCN
    pod_namespace: str
    pod_name: str


class XdsCache:
    def __init__(self, certs: CertificateManager, *, trust_domain: str = "cluster.local") -> None:
        self.certs = certs
        self.trust_domain = trust_domain
        self.generator = ConfigGenerator()
        self.state: MeshState | None = None
        self.catalog: MeshCatalog | None = None
        self._groups: dict[ProxyGroup, ProxyResources] = {}
        self._deps: dict[ProxyGroup, frozenset[NsName]] = {}
        self._cn_identity: dict[str, ServiceIdentity] = {}
        self._warned: set[str] = set()

    def identity_for_cn(self, cn: str) -> ServiceIdentity | None:
        """The identity whose service certificate has this CN (known once it was issued through here)."""
        return self._cn_identity.get(cn)

    def update(self, state: MeshState) -> None:
        """Adopt a new snapshot; nothing is computed until a proxy asks."""
        self.state = state
        self.catalog = MeshCatalog(state)
        self.catalog.trust_domain = self.trust_domain
        self.generator.new_generation()
        self._groups = {}
        self._deps = {}
        warnings = set(self.catalog.warnings)
        for w in sorted(warnings - self._warned):  # each problem once, not on every snapshot
            log.warning("%s", w)
        self._warned = warnings

    def adopt(self, group: ProxyGroup, resources: ProxyResources, deps: frozenset[NsName]) -> None:
        """Carry a group's resources over to this snapshot (the caller knows nothing they used changed)."""
        self._groups.setdefault(group, resources)
        self._deps.setdefault(group, deps)

    def deps(self, group: ProxyGroup) -> frozenset[NsName]:
        return self._deps.get(group, frozenset())

    def endpoint_scope(
        self, previous: MeshState, changed: Collection[ObjectKey]
    ) -> tuple[frozenset[NsName], frozenset[NsName]] | None:
        """For a change made only of endpoints (Pods, Endpoints, EndpointSlices): the services whose
        endpoints moved and the pods that changed. None when anything else changed (recompute all)."""
        assert self.state is not None
        services: set[NsName] = set()
        pods: set[NsName] = set()
        for key in changed:
            ns_name = (key.namespace, key.name)
            if key.kind == "Pod":
                pods.add(ns_name)
                for state in (previous, self.state):
                    pod = state.pods.get(ns_name)
                    if pod is None:
                        continue
                    for (sns, sname), svc in state.services.items():
                        if sns == key.namespace and match_labels(svc.selector, pod.meta.labels):
                            services.add((sns, sname))
            elif key.kind in ("Endpoints", "EndpointSlice"):
                services.add(ns_name if key.kind == "Endpoints" else self._slice_service(previous, key))
            else:
                return None
        # An apex's clusters are its backends': clients of a split hold the backends as deps already.
        return frozenset(services), frozenset(pods)

    def _slice_service(self, previous: MeshState, key: ObjectKey) -> NsName:
        for state in (previous, self.state):
            assert state is not None
            for (ns, service), slices in state.endpoint_slices.items():
                if ns == key.namespace and any(s.meta.name == key.name for s in slices):
                    return (ns, service)
        return (key.namespace, key.name)

    def invalidate_identity(self, identity: ServiceIdentity) -> None:
        """Forget cached resources of groups of one identity (its certificate was rotated)."""
        self._groups = {g: r for g, r in self._groups.items() if g.identity != identity}

    def authenticate(self, cn_text: str) -> tuple[ProxyIdentity, Pod]:
        try:
            cn = ProxyCertCN.parse(cn_text)
        except ValueError as e:
            raise ProxyRejected(str(e)) from None
        if cn.kind != PROXY_KIND_SIDECAR:
            raise ProxyRejected(f"certificate CN {cn_text!r}: unsupported proxy kind {cn.kind!r}")
        if cn.trust_domain != self.trust_domain:
            raise ProxyRejected(
                f"certificate CN {cn_text!r}: trust domain {cn.trust_domain!r} is not {self.trust_domain!r}"
            )
        pod = self.pod_for(cn)
        return ProxyIdentity(cn, pod.meta.namespace, pod.meta.name), pod

    def pod_for(self, cn: ProxyCertCN) -> Pod:
        if self.state is None:
            raise ProxyRejected("the control plane has no mesh state yet")
        pods = self.state.pods_by_uuid.get(cn.uuid, ())
        if len(pods) != 1:
            raise ProxyRejected(
                f"proxy {cn.uuid}: {'no pod' if not pods else 'several pods'} with label "
                f"osm-proxy-uuid={cn.uuid}"
            )
        pod = pods[0]
        if pod.meta.namespace != cn.identity.namespace or pod.service_account != cn.identity.name:
            raise ProxyRejected(
                f"proxy {cn.uuid}: certificate is for {cn.identity.k8s} but pod "
                f"{pod.meta.namespace}/{pod.meta.name} runs as "
                f"{pod.meta.namespace}/{pod.service_account}"
            )
        if not self.state.is_monitored(pod.meta.namespace):
            raise ProxyRejected(
                f"proxy {cn.uuid}: namespace {pod.meta.namespace!r} is not in mesh {self.state.mesh_name!r}"
            )
        return pod

    def group_for(self, pod: Pod) -> ProxyGroup:
        assert self.catalog is not None
        return self.catalog.group_for_pod(pod)

    def cert_material(self, identity: ServiceIdentity) -> CertMaterial:
        cn = identity.principal(self.trust_domain)
        self._cn_identity[cn] = identity
        cert = self.certs.service_cert(cn)
        return CertMaterial(cert.cert_pem, cert.key_pem, cert.trust_bundle_pem)

    def resources(self, group: ProxyGroup) -> ProxyResources:
        cached = self._groups.get(group)
        if cached is not None:
            return cached
        assert self.catalog is not None
        policy = self.catalog.proxy_policy(group)
        res = self.generator.resources(policy, self.cert_material(group.identity))
        self._groups[group] = res
        self._deps[group] = frozenset((c.service.namespace, c.service.name) for c in policy.outbound.clusters)
        return res
