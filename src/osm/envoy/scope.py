"""Which proxies a change can affect: the rule that lets a change recompute only those (pure).

A proxy's config is a function of its group's policy (envoy/generator.py), and a policy reads only
what the catalog indexes for it. So a change reaches:
- endpoints (Pods, Endpoints, EndpointSlices): the clients of the services they back (the proxies
  whose config holds those services' clusters) and the changed pods' own proxies; a pod that changes
  which identities back a service changes who may reach it: any proxy;
- a TrafficTarget: its destination and its old and new sources;
- an HTTPRouteGroup or TCPRoute: the destinations of the TrafficTargets that use it, and the sources of
  the Egress policies that use it;
- an Egress: its old and new sources;
- a TrafficSplit: the clients and the pods of its apex and its backends;
- a Retry: its old and new source identities (whose routes carry its policy);
- an UpstreamTrafficSetting: the clients and the pods of its (old and new) service;
- an IngressBackend: the pods of its backends (its source Services' endpoints are the deps of those
  pods' proxies, so their changes reach them as endpoint changes do);
- anything else (Services, MeshConfig, Namespaces, ServiceAccounts, Deployments): any proxy.

tests/unit/test_scope_and_memo.py holds the rule to account: after random changes to a mesh, every
proxy outside the scope has exactly the config a full recomputation gives it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from osm.catalog.index import ENDPOINT_KINDS, MeshIndex
from osm.models.identity import ServiceIdentity
from osm.state.decode import ObjectKey
from osm.state.snapshot import NsName


@dataclass
class Scope:
    """The proxies a change can affect: holders of these services' clusters, these pods, these identities."""

    services: set[NsName] = field(default_factory=set)
    pods: set[NsName] = field(default_factory=set)
    identities: set[ServiceIdentity] = field(default_factory=set)

    def touches(self, deps: frozenset[NsName], pod: NsName, identity: ServiceIdentity) -> bool:
        """Whether a proxy (its config's upstream services, its pod, its identity) is in the scope."""
        return bool(deps & self.services) or pod in self.pods or identity in self.identities


def scope_of_change(old: MeshIndex, new: MeshIndex, changed: Collection[ObjectKey]) -> Scope | None:
    """Which proxies the changes between two indexed snapshots can affect; None when it could be any."""
    sc = Scope()
    endpoints = [k for k in changed if k.kind in ENDPOINT_KINDS]
    if endpoints:
        sc.services = new.affected_services(old, endpoints)
        # A pod that changes which identities back a service changes who may reach it: any proxy.
        if any(old.service_identities.get(s) != new.service_identities.get(s) for s in sc.services):
            return None
        sc.pods = {(k.namespace, k.name) for k in endpoints if k.kind == "Pod"}
    states = (old.state, new.state)
    for key in changed:
        ns_name = (key.namespace, key.name)
        if key.kind in ENDPOINT_KINDS:
            continue
        if key.kind == "TrafficTarget":
            for state in states:
                tt = state.traffic_targets.get(ns_name)
                if tt is not None:
                    sc.identities.add(ServiceIdentity(tt.destination.namespace, tt.destination.name))
                    sc.identities |= {ServiceIdentity(s.namespace, s.name) for s in tt.sources}
        elif key.kind in ("HTTPRouteGroup", "TCPRoute"):
            for state in states:
                for tt in state.traffic_targets.values():
                    if tt.meta.namespace == key.namespace and any(
                        r.kind == key.kind and r.name == key.name for r in tt.rules
                    ):
                        sc.identities.add(ServiceIdentity(tt.destination.namespace, tt.destination.name))
                for eg in state.egresses.values():  # route groups narrow HTTP egress too
                    if eg.meta.namespace == key.namespace and key.name in eg.route_groups:
                        sc.identities |= {ServiceIdentity(s.namespace, s.name) for s in eg.sources}
        elif key.kind == "Egress":
            for state in states:
                egress = state.egresses.get(ns_name)
                if egress is not None:
                    sc.identities |= {ServiceIdentity(s.namespace, s.name) for s in egress.sources}
        elif key.kind == "Retry":
            for state in states:
                retry = state.retries.get(ns_name)
                if retry is not None:
                    sc.identities.add(ServiceIdentity(retry.source.namespace, retry.source.name))
        elif key.kind == "UpstreamTrafficSetting":
            # the clients' clusters of its service, and its pods' inbound rate limits
            for ix in (old, new):
                uts = ix.state.upstream_traffic_settings.get(ns_name)
                svc = uts.service() if uts is not None else None
                if svc is None:
                    continue
                split = ix.splits.get((key.namespace, svc))  # backends answer their apex's hostnames
                backends = [b.service for b in split.backends] if split is not None else []
                for name in (svc, *backends):
                    sc.services.add((key.namespace, name))
                    pods = ix.service_pods.get((key.namespace, name), ())
                    sc.pods |= {(p.meta.namespace, p.meta.name) for p in pods}
        elif key.kind == "IngressBackend":  # the pods of its (old and new) backend services
            for ix in (old, new):
                ingress = ix.state.ingress_backends.get(ns_name)
                for b in ingress.backends if ingress is not None else ():
                    pods = ix.service_pods.get((key.namespace, b.name), ())
                    sc.pods |= {(p.meta.namespace, p.meta.name) for p in pods}
        elif key.kind == "TrafficSplit":
            for ix in (old, new):
                split = ix.state.traffic_splits.get(ns_name)
                if split is None:
                    continue
                for svc in (split.service, *(b.service for b in split.backends)):
                    sc.services.add((key.namespace, svc))
                    sc.pods |= {
                        (p.meta.namespace, p.meta.name) for p in ix.service_pods.get((key.namespace, svc), ())
                    }
        else:
            return None
    return sc
