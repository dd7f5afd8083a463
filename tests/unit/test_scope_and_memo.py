"""The two rules that make pushes scoped and cheap, held to account on random changes to a mesh:

- memo keys: a generator that has built every earlier state (and memoized its parts by their keys)
  gives each proxy exactly the config a fresh generator gives it: no key leaves out an input;
- scope (osm.envoy.scope): a proxy outside a change's scope has exactly the config it had before.
"""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.golden.scenarios import FAKE_CERT

from osm.apis.meshconfig import MeshConfig
from osm.apis.policy import Egress, IngressBackend, IngressBackendPort, Ref, Retry, UpstreamTrafficSetting
from osm.catalog import MeshCatalog
from osm.envoy.generator import ConfigGenerator
from osm.envoy.scope import scope_of_change
from osm.envoy.types import ORDER, ProxyResources
from osm.models.identity import ServiceIdentity
from osm.models.k8s import ObjectMeta, Pod, Service, ServicePort
from osm.models.trafficpolicy import (
    ConnectionSettings,
    HTTPRateLimit,
    RetryPolicy,
    TCPRateLimit,
    UpstreamSettings,
)
from osm.smi.models import (
    HTTPMatch,
    HTTPRouteGroup,
    IdentityRef,
    TrafficSplit,
    TrafficSplitBackend,
    TrafficTarget,
)
from osm.state.decode import MeshObject, ObjectKey, key_of
from osm.state.snapshot import NsName
from osm.state.store import Store
from osm.testing.mesh import build


def versions(res: ProxyResources) -> dict[str, dict[str, str]]:
    return {t: dict(res.version_map(t)) for t in ORDER}


def configs(
    catalog: MeshCatalog, gen: ConfigGenerator
) -> dict[NsName, tuple[ProxyResources, frozenset[NsName]]]:
    """Each meshed pod's resources, and the services whose clusters they hold (its deps)."""
    out = {}
    for key, pod in catalog.state.pods.items():
        if catalog.state.is_monitored(pod.meta.namespace):
            policy = catalog.proxy_policy(catalog.group_for_pod(pod))
            deps = frozenset((c.service.namespace, c.service.name) for c in policy.outbound.clusters)
            deps |= policy.inbound.ingress_sources  # as the xDS cache counts them
            out[key] = (gen.resources(policy, FAKE_CERT), deps)
    return out


def random_change(store: Store, rnd: random.Random) -> set[ObjectKey]:
    """Apply one change a user or the runtime could make; the keys it changed."""
    objs = store.values()
    pods = [o for o in objs if isinstance(o, Pod)]
    services = [o for o in objs if isinstance(o, Service)]
    targets = [o for o in objs if isinstance(o, TrafficTarget)]
    groups = [o for o in objs if isinstance(o, HTTPRouteGroup)]
    splits = [o for o in objs if isinstance(o, TrafficSplit)]
    retries = [o for o in objs if isinstance(o, Retry)]
    choice = rnd.randrange(15)
    new: MeshObject | None = None
    gone: ObjectKey | None = None
    if choice == 0 and pods:
        p = rnd.choice(pods)
        new = replace(p, pod_ip=f"10.99.{rnd.randrange(256)}.{rnd.randrange(256)}")
    elif choice == 1 and pods:
        p = rnd.choice(pods)
        new = replace(p, ready=not p.ready)
    elif choice == 2 and pods:
        gone = key_of(rnd.choice(pods))
    elif choice == 3 and targets:
        tt = rnd.choice(targets)
        other = rnd.choice(services)
        new = replace(tt, sources=(*tt.sources, IdentityRef(other.meta.name, other.meta.namespace)))
    elif choice == 4 and targets:
        gone = key_of(rnd.choice(targets))
    elif choice == 5 and groups:
        g = rnd.choice(groups)
        new = replace(g, matches=(HTTPMatch("read", f"/items/{rnd.randrange(9)}", ("GET",)),))
    elif choice == 6 and splits:
        sp = rnd.choice(splits)
        w = rnd.randrange(0, 101)
        new = replace(
            sp,
            backends=(
                TrafficSplitBackend(sp.backends[0].service, w),
                *(TrafficSplitBackend(b.service, 100 - w) for b in sp.backends[1:]),
            ),
        )
    elif choice == 8 and groups:  # the TrafficTargets using it grant nothing: their sources lose access
        gone = key_of(rnd.choice(groups))
    elif choice == 7 and services:
        svc = rnd.choice(services)
        new = replace(svc, ports=(ServicePort(8080 + rnd.randrange(3), 8080, "http"),))
    elif choice == 9 and pods and services:  # a client's retry policy to a service, added or edited
        p, svc = rnd.choice(pods), rnd.choice(services)
        new = Retry(
            meta=ObjectMeta(name=f"retry-{rnd.randrange(3)}", namespace=p.meta.namespace),
            source=Ref("ServiceAccount", p.service_account, p.meta.namespace),
            destinations=(Ref("Service", svc.meta.name, svc.meta.namespace),),
            policy=RetryPolicy("5xx", 1000, rnd.randrange(1, 6), 25),
        )
    elif choice == 10 and retries:
        gone = key_of(rnd.choice(retries))
    elif choice == 13 and pods:  # egress for a client, added, edited or removed
        p = rnd.choice(pods)
        meta = ObjectMeta(name=f"egress-{rnd.randrange(2)}", namespace=p.meta.namespace)
        if rnd.randrange(3) == 0:
            gone = ObjectKey("Egress", meta.namespace, meta.name)
        else:
            new = Egress(
                meta=meta,
                sources=(Ref("ServiceAccount", p.service_account, p.meta.namespace),),
                hosts=("api.example.com",),
                ip_ranges=(f"10.{rnd.randrange(9)}.0.0/16",),
                ports=((80, "http"), (8443 + rnd.randrange(2), "tcp")),
                route_groups=tuple(g.meta.name for g in groups[:1] if g.meta.namespace == p.meta.namespace),
                traffic_setting="",
            )
    elif choice == 12 and services:  # ingress to a service port from another service's endpoints
        svc, src = rnd.choice(services), rnd.choice(services)
        meta = ObjectMeta(name="ingress", namespace=svc.meta.namespace)
        if rnd.randrange(3) == 0:
            gone = ObjectKey("IngressBackend", meta.namespace, meta.name)
        else:
            port = svc.ports[0].target_port if isinstance(svc.ports[0].target_port, int) else 8080
            new = IngressBackend(
                meta=meta,
                backends=(IngressBackendPort(svc.meta.name, port, "http"),),
                source_services=((src.meta.namespace, src.meta.name),),
                ip_ranges=(f"10.{rnd.randrange(9)}.0.0/16",),
                principals=(),
            )
    elif choice == 11 and services:  # a service's traffic setting, added, edited or removed
        svc = rnd.choice(services)
        meta = ObjectMeta(name=f"uts-{rnd.randrange(2)}", namespace=svc.meta.namespace)
        if rnd.randrange(3) == 0:
            gone = ObjectKey("UpstreamTrafficSetting", meta.namespace, meta.name)
        else:
            new = UpstreamTrafficSetting(
                meta=meta,
                host=f"{svc.meta.name}.{svc.meta.namespace}.svc.cluster.local",
                upstream=UpstreamSettings(ConnectionSettings(max_connections=rnd.randrange(1, 9)), None),
                tcp_rate_limit=TCPRateLimit(rnd.randrange(1, 9), 1000),
                http_rate_limit=HTTPRateLimit(rnd.randrange(1, 9), 1000) if rnd.randrange(2) else None,
                route_limits=(),
            )
    else:
        mc = next((o for o in objs if isinstance(o, MeshConfig)), None)
        flags = mc.feature_flags if mc is not None else None
        if mc is not None and flags is not None and rnd.randrange(3) == 0:
            new = replace(mc, feature_flags=replace(flags, enable_retry_policy=not flags.enable_retry_policy))
        elif mc is not None and flags is not None and rnd.randrange(2):
            new = replace(
                mc, feature_flags=replace(flags, enable_egress_policy=not flags.enable_egress_policy)
            )
        elif mc is not None:
            new = replace(mc, traffic=replace(mc.traffic, enable_egress=not mc.traffic.enable_egress))
    if new is not None:
        store.apply(new)
        return {key_of(new)}
    if gone is not None:
        store.delete(gone)
        return {gone}
    return set()


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.sampled_from(["smi", "permissive"]))
def test_scoped_and_memoized_configs_equal_a_full_recomputation(rnd: random.Random, mode: str) -> None:
    store = Store()
    for obj in build(10, 2, mode=mode, seed=rnd.randrange(100)).objects:
        if isinstance(obj, MeshConfig):  # the policies' feature flags on (changes turn them off and on)
            flags = replace(obj.feature_flags, enable_retry_policy=True, enable_egress_policy=True)
            obj = replace(obj, feature_flags=flags)
        store.apply(obj)
    memo = ConfigGenerator()
    state = store.snapshot()
    catalog = MeshCatalog(state)
    before = configs(catalog, memo)
    for _ in range(6):
        changed = random_change(store, rnd)
        state = store.snapshot()
        previous, catalog = catalog, MeshCatalog(state, catalog, changed)
        after = configs(catalog, memo)
        fresh = configs(MeshCatalog(state), ConfigGenerator())
        # memo keys: the memoizing generator's output is a fresh generator's
        assert {k: versions(r) for k, (r, _) in after.items()} == {
            k: versions(r) for k, (r, _) in fresh.items()
        }
        # scope: what the change cannot touch is unchanged
        scope = scope_of_change(previous.index, catalog.index, changed)
        if scope is not None:
            for key, (res, deps) in before.items():
                if key not in after:
                    continue
                pod = previous.state.pods[key]
                identity = ServiceIdentity(pod.meta.namespace, pod.service_account)
                if not scope.touches(deps, key, identity):
                    assert versions(after[key][0]) == versions(res), (changed, key)
        before = after


def test_deleting_any_route_group_changes_no_proxy_outside_the_scope() -> None:
    """A TrafficTarget whose routes are gone grants nothing: its sources lose the destination."""
    objects = build(10, 1, mode="smi", targets=8, sources_per_target=1, seed=3).objects
    groups = [key_of(o) for o in objects if isinstance(o, HTTPRouteGroup)]
    assert groups
    for group in groups:
        store = Store()
        for obj in objects:
            store.apply(obj)
        previous = MeshCatalog(store.snapshot())
        before = configs(previous, ConfigGenerator())
        store.delete(group)
        catalog = MeshCatalog(store.snapshot(), previous, {group})
        after = configs(catalog, ConfigGenerator())
        scope = scope_of_change(previous.index, catalog.index, {group})
        assert scope is not None
        changed = {key for key in before if versions(after[key][0]) != versions(before[key][0])}
        for key in changed:
            pod = previous.state.pods[key]
            identity = ServiceIdentity(pod.meta.namespace, pod.service_account)
            assert scope.touches(before[key][1], key, identity), (group, key)
