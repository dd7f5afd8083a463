from __future__ import annotations

import logging

import pytest

from osm.apis.meshconfig import MeshConfig
from osm.models.k8s import EndpointSlice, Namespace, Pod, Service
from osm.state.decode import ObjectKey
from osm.state.snapshot import MeshState
from osm.state.store import Event, EventType, Store


def service(name: str = "web", port: int = 80, ns: str = "shop") -> Service:
    return Service.from_k8s(
        {"metadata": {"name": name, "namespace": ns}, "spec": {"ports": [{"port": port}]}}
    )


def namespace(name: str, mesh: str | None = None) -> Namespace:
    labels = {"openservicemesh.io/monitored-by": mesh} if mesh else {}
    return Namespace.from_k8s({"metadata": {"name": name, "labels": labels}})


def pod(name: str, uuid: str | None, ns: str = "shop") -> Pod:
    labels = {"osm-proxy-uuid": uuid} if uuid else {}
    return Pod.from_k8s(
        {
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "c"}]},
        }
    )


def mesh_config(name: str = "osm-mesh-config", ns: str = "osm-system") -> MeshConfig:
    return MeshConfig.from_k8s(
        {
            "metadata": {"name": name, "namespace": ns},
            "spec": {"traffic": {"enablePermissiveTrafficPolicyMode": True}},
        }
    )


def endpoint_slice(name: str, svc: str, ns: str = "shop") -> EndpointSlice:
    return EndpointSlice.from_k8s(
        {"metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc}}}
    )


KEY = ObjectKey("Service", "shop", "web")


@pytest.fixture
def store_and_events() -> tuple[Store, list[Event]]:
    store = Store()
    events: list[Event] = []
    store.subscribe(events.append)
    return store, events


# --- Store -----------------------------------------------------------------------------------------


def test_apply_new_object_emits_added(store_and_events):
    store, events = store_and_events
    svc = service()
    assert store.apply(svc) is True
    assert events == [Event(EventType.ADDED, KEY, None, svc)]
    assert store.get(KEY) is svc
    assert list(store.keys()) == [KEY]
    assert len(store) == 1


def test_apply_changed_object_emits_updated_with_old_and_new(store_and_events):
    store, events = store_and_events
    v1, v2 = service(port=80), service(port=81)
    store.apply(v1)
    assert store.apply(v2) is True
    assert events[-1] == Event(EventType.UPDATED, KEY, v1, v2)
    assert store.get(KEY) is v2


def test_reapplying_an_identical_object_emits_nothing(store_and_events):
    store, events = store_and_events
    store.apply(service())
    assert store.apply(service()) is False  # equal, though a different instance
    assert [e.type for e in events] == [EventType.ADDED]


def test_delete_emits_deleted_once(store_and_events):
    store, events = store_and_events
    svc = service()
    store.apply(svc)
    assert store.delete(KEY) is True
    assert store.delete(KEY) is False
    assert events[1:] == [Event(EventType.DELETED, KEY, svc, None)]
    assert store.get(KEY) is None
    assert len(store) == 0


def test_unsubscribe_stops_events():
    store = Store()
    events: list[Event] = []
    unsubscribe = store.subscribe(events.append)
    store.apply(service("a"))
    unsubscribe()
    store.apply(service("b"))
    assert [e.key.name for e in events] == ["a"]


def test_a_failing_listener_does_not_stop_the_others(caplog):
    store = Store()
    seen: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    store.subscribe(broken)
    store.subscribe(lambda e: seen.append(e.key.name))
    with caplog.at_level(logging.ERROR, logger="osm.state.store"):
        store.apply(service("a"))
        store.apply(service("b"))
    assert seen == ["a", "b"]
    assert store.get(ObjectKey("Service", "shop", "b")) is not None
    assert any("Service shop/a" in r.getMessage() and r.exc_info for r in caplog.records)


def test_snapshots_are_versioned_and_frozen_at_their_tick():
    store = Store()
    store.apply(service())
    first = store.snapshot()
    store.delete(KEY)
    second = store.snapshot()
    assert second.version > first.version
    assert ("shop", "web") in first.services
    assert ("shop", "web") not in second.services
    with pytest.raises(TypeError):
        first.services[("shop", "x")] = service("x")  # type: ignore[index]


# --- MeshState -------------------------------------------------------------------------------------


def test_pods_by_uuid_indexes_only_labelled_pods():
    a, b, unlabelled = pod("a", "u-1"), pod("b", "u-2"), pod("c", None)
    clash = pod("a", "u-1", ns="other")
    state = MeshState.build([a, b, unlabelled, clash])
    assert set(state.pods_by_uuid) == {"u-1", "u-2"}
    assert set(state.pods_by_uuid["u-1"]) == {a, clash}
    assert state.pods_by_uuid["u-2"] == (b,)
    assert ("shop", "c") in state.pods


def test_is_monitored_needs_the_mesh_label_on_the_namespace():
    state = MeshState.build([namespace("shop", "osm"), namespace("other", "other-mesh"), namespace("plain")])
    assert state.is_monitored("shop")
    assert not state.is_monitored("other")
    assert not state.is_monitored("plain")
    assert not state.is_monitored("missing")


def test_is_monitored_follows_the_store_mesh_name():
    store = Store(mesh_name="other-mesh")
    store.apply(namespace("shop", "osm"))
    store.apply(namespace("other", "other-mesh"))
    state = store.snapshot()
    assert (state.is_monitored("shop"), state.is_monitored("other")) == (False, True)


@pytest.mark.parametrize(
    ("config", "permissive", "problem"),
    [
        (mesh_config(), True, ""),
        (mesh_config(name="my-config"), False, "MeshConfig osm-system/my-config is ignored"),
        (mesh_config(ns="default"), False, "MeshConfig default/osm-mesh-config is ignored"),
    ],
)
def test_mesh_config_is_honoured_only_by_name_in_the_osm_namespace(config, permissive, problem):
    state = MeshState.build([config])
    assert state.permissive is permissive
    assert problem in state.mesh_config_problem and bool(problem) == bool(state.mesh_config_problem)


def test_without_its_mesh_config_the_mesh_runs_closed_and_says_why():
    state = MeshState.build([])
    assert state.permissive is False
    assert state.mesh_config.traffic.enable_egress is False
    assert state.mesh_config_problem.startswith("MeshConfig osm-system/osm-mesh-config does not exist")
    assert "runs closed" in state.mesh_config_problem


def test_mesh_config_follows_the_store_osm_namespace():
    store = Store(osm_namespace="mesh")
    store.apply(mesh_config(ns="osm-system"))
    assert store.snapshot().permissive is False
    store.apply(mesh_config(ns="mesh"))
    assert store.snapshot().permissive is True


def test_endpoint_slices_are_grouped_by_service_and_sorted_by_name():
    s_b, s_a, other, elsewhere = (
        endpoint_slice("web-b", "web"),
        endpoint_slice("web-a", "web"),
        endpoint_slice("api-x", "api"),
        endpoint_slice("web-z", "web", ns="other"),
    )
    state = MeshState.build([s_b, other, s_a, elsewhere])
    assert state.endpoint_slices[("shop", "web")] == (s_a, s_b)
    assert state.endpoint_slices[("shop", "api")] == (other,)
    assert state.endpoint_slices[("other", "web")] == (elsewhere,)


def test_objects_are_indexed_by_kind_and_namespaced_name():
    svc, p = service(), pod("web-1", "u")
    state = MeshState.build([svc, p, namespace("shop", "osm")])
    assert state.services == {("shop", "web"): svc}
    assert state.pods == {("shop", "web-1"): p}
    assert set(state.namespaces) == {"shop"}
    assert dict(state.traffic_targets) == {}
