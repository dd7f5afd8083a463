"""The Kubernetes source (client, informers, KubeSource) against fakekube: list, watch, bookmarks,
410 Gone, API restarts, namespaces joining and leaving the mesh, invalid objects, absent CRDs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from osm.k8s.client import ApiError, ClientLimits, KubeClient, Obj
from osm.k8s.informer import InformerSettings
from osm.k8s.resources import CRDS, MESH_CONFIGS, NAMESPACES, PODS, SERVICES, TRAFFIC_SPLITS
from osm.k8s.source import KubeSource
from osm.models.k8s import LABEL_MONITORED_BY
from osm.state.decode import ObjectKey
from osm.state.store import Store
from osm.testing.fakekube import FakeKube
from osm.testing.fakekube.types import BUILTIN
from osm.testing.kubeobjects import open_crd
from osm.testing.wait import wait_for

pytestmark = pytest.mark.asyncio

FAST = InformerSettings(watch_seconds=30, backoff_min=0.05, backoff_max=0.2, absent_retry=0.2)


@dataclass
class Env:
    fk: FakeKube
    kube: KubeClient
    store: Store
    source: KubeSource


def namespace(name: str, mesh: str | None = "osm") -> Obj:
    labels = {LABEL_MONITORED_BY: mesh} if mesh else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def service(ns: str, name: str, port: object = 80) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port}]},
    }


def pod(ns: str, name: str, ip: str = "10.0.0.5") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"serviceAccountName": name, "containers": [{"name": "app", "image": "x"}]},
        "status": {"podIP": ip},
    }


async def connect(fk: FakeKube, tmp_path: Path, limits: ClientLimits | None = None) -> KubeClient:
    kubeconfig = fk.write_kubeconfig(tmp_path / "kubeconfig")
    if limits is None:
        return await KubeClient.connect(kubeconfig)
    client = await KubeClient.connect(kubeconfig)
    client.limits = limits
    return client


@contextlib.asynccontextmanager
async def running(kube: KubeClient, store: Store) -> AsyncIterator[KubeSource]:
    source = KubeSource(kube, store, settings=FAST)
    task = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.synced.wait(), 10)
        yield source
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def env(fk: FakeKube, tmp_path: Path) -> AsyncIterator[Env]:
    kube = await connect(fk, tmp_path)
    try:
        await kube.create(NAMESPACES.path(), namespace("bookstore"))
        await kube.create(NAMESPACES.path(), namespace("elsewhere", mesh=None))
        await kube.create(SERVICES.path("bookstore"), service("bookstore", "bookstore"))
        await kube.create(SERVICES.path("elsewhere"), service("elsewhere", "web"))
        store = Store()
        async with running(kube, store) as source:
            yield Env(fk, kube, store, source)
    finally:
        await kube.close()


def key(kind: str, ns: str, name: str) -> ObjectKey:
    return ObjectKey(kind, ns, name)


async def test_lists_the_mesh_namespaces_then_follows_their_changes(env: Env) -> None:
    store, kube = env.store, env.kube
    assert store.get(key("Service", "bookstore", "bookstore")) is not None
    assert store.get(key("Service", "elsewhere", "web")) is None  # not in the mesh
    assert store.get(key("Namespace", "", "elsewhere")) is not None  # namespaces are all known
    assert env.source.monitored() == {"bookstore"}

    await kube.create(PODS.path("bookstore"), pod("bookstore", "bookstore-v1"))
    await wait_for(lambda: store.get(key("Pod", "bookstore", "bookstore-v1")) is not None, 5, "pod added")
    await kube.create(PODS.path("elsewhere"), pod("elsewhere", "web-1"))

    changed = await kube.get(PODS.path("bookstore", "bookstore-v1"))
    changed["metadata"]["labels"]["version"] = "v1"
    await kube.replace(PODS.path("bookstore", "bookstore-v1"), changed)

    def version() -> str:
        p = store.get(key("Pod", "bookstore", "bookstore-v1"))
        return p.meta.labels.get("version", "") if p is not None else ""

    await wait_for(lambda: version() == "v1", 5, "pod updated")
    await kube.delete(PODS.path("bookstore", "bookstore-v1"))
    await wait_for(lambda: store.get(key("Pod", "bookstore", "bookstore-v1")) is None, 5, "pod deleted")
    assert store.get(key("Pod", "elsewhere", "web-1")) is None


async def test_a_namespace_joining_brings_its_objects_and_leaving_takes_them(env: Env) -> None:
    store, kube = env.store, env.kube
    await kube.apply(NAMESPACES.path(name="elsewhere"), namespace("elsewhere"), field_manager="test")
    await wait_for(lambda: store.get(key("Service", "elsewhere", "web")) is not None, 5, "joined")
    assert env.source.monitored() == {"bookstore", "elsewhere"}

    await kube.replace(
        NAMESPACES.path(name="elsewhere"),
        {**namespace("elsewhere", mesh="another-mesh"), "metadata": {"name": "elsewhere", "labels": {}}},
    )
    await wait_for(lambda: store.get(key("Service", "elsewhere", "web")) is None, 5, "left")
    assert store.get(key("Service", "bookstore", "bookstore")) is not None


async def test_an_invalid_update_keeps_the_accepted_version(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    store, kube = env.store, env.kube
    k = key("Service", "bookstore", "bookstore")
    accepted = store.get(k)
    current = await kube.get(SERVICES.path("bookstore", "bookstore"))
    bad = service("bookstore", "bookstore", port="eighty")
    bad["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    with caplog.at_level(logging.ERROR, logger="osm.k8s.source"):
        await kube.replace(SERVICES.path("bookstore", "bookstore"), bad)
        await wait_for(lambda: k in env.source.rejected, 5, "rejection")
    assert store.get(k) == accepted
    assert "Service bookstore/bookstore" in env.source.rejected[k]
    assert "port" in env.source.rejected[k]
    assert any(getattr(r, "err_code", "") == "E9202" for r in caplog.records)

    await kube.delete(SERVICES.path("bookstore", "bookstore"))
    await wait_for(lambda: store.get(k) is None, 5, "deleted")
    assert k not in env.source.rejected


async def test_after_410_it_lists_again_and_sees_what_was_deleted_in_the_gap(env: Env) -> None:
    store, fk = env.store, env.fk
    services = next(t for t in BUILTIN if t.kind == "Service")
    informer = next(i for i in env.source.namespaced if i.resource is SERVICES)
    lists = informer.lists
    await fk.stop()  # the API server goes away; meanwhile the object is deleted and history compacted
    fk.store.delete(services, "bookstore", "bookstore")
    fk.compact()
    await fk.serve()
    await wait_for(
        lambda: store.get(key("Service", "bookstore", "bookstore")) is None, 10, "delete seen by relisting"
    )
    assert informer.lists == lists + 1


async def test_an_api_restart_resumes_the_watch_without_listing_again(env: Env) -> None:
    store, kube, fk = env.store, env.kube, env.fk
    informer = next(i for i in env.source.namespaced if i.resource is PODS)
    lists, watches = informer.lists, informer.watches
    await fk.restart(down=0.2)
    await kube.create(PODS.path("bookstore"), pod("bookstore", "after-restart"))
    await wait_for(lambda: store.get(key("Pod", "bookstore", "after-restart")) is not None, 10, "pod")
    assert informer.lists == lists
    assert informer.watches > watches


async def test_bookmarks_move_the_resource_version_on(env: Env) -> None:
    informer = next(i for i in env.source.namespaced if i.resource is SERVICES)
    before = int(informer.resource_version)
    for i in range(3):  # changes of a kind this informer does not watch
        await env.kube.create(
            "/api/v1/namespaces/default/configmaps",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}},
        )
    latest = int(
        (await env.kube.get("/api/v1/namespaces/default/configmaps/c2"))["metadata"]["resourceVersion"]
    )
    assert latest > before
    await wait_for(lambda: int(informer.resource_version) >= latest, 5, "a bookmark")


async def test_kinds_whose_crd_is_absent_start_empty_and_arrive_with_it(env: Env) -> None:
    assert all(i.synced.is_set() for i in env.source.informers)
    await env.kube.create(CRDS.path(), open_crd(TRAFFIC_SPLITS))
    split = {
        "apiVersion": TRAFFIC_SPLITS.api_version,
        "kind": "TrafficSplit",
        "metadata": {"name": "split", "namespace": "bookstore"},
        "spec": {"service": "bookstore", "backends": [{"service": "bookstore", "weight": 1}]},
    }
    await env.kube.create(TRAFFIC_SPLITS.path("bookstore"), split)
    await wait_for(
        lambda: env.store.get(key("TrafficSplit", "bookstore", "split")) is not None, 10, "the TrafficSplit"
    )


async def test_only_the_mesh_config_of_the_osm_namespace_is_read(env: Env) -> None:
    await env.kube.create(CRDS.path(), open_crd(MESH_CONFIGS))
    await env.kube.create(NAMESPACES.path(), namespace("osm-system", mesh=None))
    for ns in ("osm-system", "bookstore"):
        mc = {
            "apiVersion": MESH_CONFIGS.api_version,
            "kind": "MeshConfig",
            "metadata": {"name": "osm-mesh-config", "namespace": ns},
            "spec": {"traffic": {"enablePermissiveTrafficPolicyMode": True}},
        }
        await env.kube.create(MESH_CONFIGS.path(ns), mc)
    await wait_for(
        lambda: env.store.get(key("MeshConfig", "osm-system", "osm-mesh-config")) is not None,
        10,
        "MeshConfig",
    )
    assert env.store.snapshot().permissive
    assert env.store.get(key("MeshConfig", "bookstore", "osm-mesh-config")) is None


async def test_an_event_over_the_size_limit_fails_the_watch_and_keeps_the_state(
    fk: FakeKube, tmp_path: Path
) -> None:
    kube = await connect(fk, tmp_path, ClientLimits(max_object_bytes=4096))
    try:
        await kube.create(NAMESPACES.path(), namespace("bookstore"))
        await kube.create(SERVICES.path("bookstore"), service("bookstore", "small"))
        store = Store()
        async with running(kube, store) as source:
            informer = next(i for i in source.namespaced if i.resource is SERVICES)
            big = service("bookstore", "big")
            big["metadata"]["annotations"] = {"note": "x" * 10_000}
            await kube.create(SERVICES.path("bookstore"), big)
            await wait_for(lambda: informer.failures >= 2, 5, "the watch failing on the large event")
            assert store.get(key("Service", "bookstore", "small")) is not None
            assert store.get(key("Service", "bookstore", "big")) is None
        with pytest.raises(ApiError) as err:  # a list page over the page limit is refused too
            kube.limits = ClientLimits(max_page_bytes=2048)
            await kube.list(SERVICES.path("bookstore"))
        assert err.value.status == 413
    finally:
        await kube.close()


async def test_watches_the_server_ends_at_once_are_retried_with_backoff(env: Env) -> None:
    informer = next(i for i in env.source.namespaced if i.resource is PODS)
    env.fk.api.closing = True  # every watch now ends at once, empty
    try:
        before = informer.watches
        await asyncio.sleep(1.0)
        reconnects = informer.watches - before
    finally:
        env.fk.api.closing = False
    # backoff 0.05 s doubling to 0.2 s: about six in a second (a tight loop would make hundreds)
    assert 2 <= reconnects <= 10, reconnects
    await env.kube.create(PODS.path("bookstore"), pod("bookstore", "later"))
    await wait_for(lambda: env.store.get(key("Pod", "bookstore", "later")) is not None, 5, "watching again")


async def test_the_osm_policy_kinds_arrive_through_their_informers(env: Env) -> None:
    """Retry, UpstreamTrafficSetting, IngressBackend and Egress, with the chart's own CRDs."""
    import yaml

    from osm.k8s.resources import EGRESSES, INGRESS_BACKENDS, RETRIES, UPSTREAM_TRAFFIC_SETTINGS
    from osm.paths import CHART

    for f in ("policy_retry", "policy_upstream_traffic_setting", "policy_ingress_backend", "policy_egress"):
        await env.kube.create(CRDS.path(), yaml.safe_load((CHART / "crds" / f"{f}.yaml").read_text()))
    sa = {"kind": "ServiceAccount", "name": "bookbuyer", "namespace": "bookstore"}
    objects = {
        RETRIES: {
            "source": sa,
            "destinations": [{"kind": "Service", "name": "bookstore", "namespace": "bookstore"}],
            "retryPolicy": {
                "retryOn": "5xx",
                "perTryTimeout": "1s",
                "numRetries": 3,
                "retryBackoffBaseInterval": "25ms",
            },
        },
        UPSTREAM_TRAFFIC_SETTINGS: {"host": "bookstore.bookstore.svc.cluster.local"},
        INGRESS_BACKENDS: {
            "backends": [{"name": "bookstore", "port": {"number": 14001, "protocol": "http"}}],
            "sources": [{"kind": "IPRange", "name": "10.0.0.0/8"}],
        },
        EGRESSES: {"sources": [sa], "ports": [{"number": 5432, "protocol": "tcp"}]},
    }
    for resource, spec in objects.items():
        body = {
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": "p", "namespace": "bookstore"},
            "spec": spec,
        }
        await env.kube.create(resource.path("bookstore"), body)
    for resource in objects:
        await wait_for(
            lambda r=resource: env.store.get(key(r.kind, "bookstore", "p")) is not None, 20, resource.kind
        )
