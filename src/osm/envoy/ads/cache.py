"""The xDS view of one MeshState: who a connecting proxy is, and the resources of each proxy group.

Resources are computed lazily per ProxyGroup (identity + services its pod backs) and shared by every
proxy of the group; the generator memoizes individual resources across groups and snapshots.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Hashable
from dataclasses import dataclass

from osm import errcode
from osm.catalog import MeshCatalog, ProxyGroup
from osm.certificate.manager import CertificateManager
from osm.envoy.generator import ConfigGenerator, GenerationError
from osm.envoy.scope import Scope, scope_of_change
from osm.envoy.sds.secrets import CertMaterial
from osm.envoy.types import ProxyResources
from osm.models.identity import PROXY_KIND_SIDECAR, ProxyCertCN, ServiceIdentity
from osm.models.k8s import Pod
from osm.models.trafficpolicy import UpstreamCluster
from osm.state.decode import ObjectKey
from osm.state.snapshot import MeshState, NsName

log = logging.getLogger(__name__)

SWEEP_EVERY = 16  # snapshots and rotations between sweeps of the generator's memo


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
        self.previous_catalog: MeshCatalog | None = None
        self._groups: dict[ProxyGroup, ProxyResources] = {}
        self._deps: dict[ProxyGroup, frozenset[NsName]] = {}
        # One deps set per distinct upstream tuple (permissive mode: per namespace, not per group).
        self._deps_of: dict[tuple[UpstreamCluster, ...], frozenset[NsName]] = {}
        # The generator parts each served group uses (carried over when a group is adopted), so that
        # every SWEEP_EVERY changes the memo keeps what is still served, however long ago it was built.
        self._parts: dict[ProxyGroup, tuple[Hashable, ...]] = {}
        self._previous_parts: dict[ProxyGroup, tuple[Hashable, ...]] = {}
        self._changes = 0
        self._cn_identity: dict[str, ServiceIdentity] = {}
        self._warned: set[str] = set()
        self._config_problem = ""

    def identity_for_cn(self, cn: str) -> ServiceIdentity | None:
        """The identity whose service certificate has this CN (known once it was issued through here)."""
        return self._cn_identity.get(cn)

    def update(self, state: MeshState, changed: Collection[ObjectKey] | None = None) -> None:
        """Adopt a new snapshot; nothing is computed until a proxy asks."""
        self.state = state
        self.previous_catalog = self.catalog
        self.catalog = MeshCatalog(state, self.catalog, changed)
        self.catalog.trust_domain = self.trust_domain
        self._maybe_sweep()
        self._previous_parts, self._parts = self._parts, {}
        self._groups = {}
        self._deps = {}
        self._deps_of = {}
        warnings = set(self.catalog.warnings)
        for w in sorted(warnings - self._warned):  # each problem once, not on every snapshot
            log.warning("%s", w, extra={"err_code": errcode.POLICY_WARNING})
        self._warned = warnings
        problem = state.mesh_config_problem
        if problem != self._config_problem:
            if problem:  # the mesh runs on closed defaults: loudly
                log.error("%s", problem, extra={"err_code": errcode.MESH_CONFIG_MISSING})
            else:
                log.info("MeshConfig %s/osm-mesh-config is in place", state.osm_namespace)
            self._config_problem = problem

    def adopt(self, group: ProxyGroup, resources: ProxyResources, deps: frozenset[NsName]) -> None:
        """Carry a group's resources over to this snapshot (the caller knows nothing they used changed)."""
        if group in self._groups:
            return
        self._groups[group] = resources
        self._deps[group] = deps
        parts = self._previous_parts.get(group)
        if parts is not None:
            self._parts[group] = parts

    def deps(self, group: ProxyGroup) -> frozenset[NsName]:
        return self._deps.get(group, frozenset())

    def scope(self, changed: Collection[ObjectKey]) -> Scope | None:
        """Which proxies the changes since the previous snapshot can affect (see osm.envoy.scope)."""
        if self.catalog is None or self.previous_catalog is None:
            return None
        return scope_of_change(self.previous_catalog.index, self.catalog.index, changed)

    def invalidate_identity(self, identity: ServiceIdentity) -> None:
        """Forget cached resources of groups of one identity (its certificate was rotated)."""
        self._groups = {g: r for g, r in self._groups.items() if g.identity != identity}
        self._maybe_sweep()

    def _maybe_sweep(self) -> None:
        """Every SWEEP_EVERY changes, drop the generator parts no served group uses."""
        self._changes += 1
        if self._changes % SWEEP_EVERY == 0:
            self.generator.sweep(k for parts in self._parts.values() for k in parts)

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

    def resources(self, group: ProxyGroup, previous: ProxyResources | None = None) -> ProxyResources:
        """The group's resources in this snapshot; `previous` (what a proxy of it holds) lends the
        generator whatever did not change."""
        cached = self._groups.get(group)
        if cached is not None:
            return cached
        assert self.catalog is not None
        try:
            policy = self.catalog.proxy_policy(group)
        except Exception as e:
            raise GenerationError(("policy", group), e) from e
        res = self.generator.resources(policy, self.cert_material(group.identity), previous)
        self._groups[group] = res
        self._parts[group] = self.generator.last_parts
        upstream = policy.outbound.clusters
        deps = self._deps_of.get(upstream)
        if deps is None:
            deps = self._deps_of[upstream] = frozenset(
                (c.service.namespace, c.service.name) for c in upstream
            )
        # an ingress source's endpoints are this proxy's allowed source addresses
        self._deps[group] = deps | policy.inbound.ingress_sources if policy.inbound.ingress_sources else deps
        return res
