"""The local runtime as the kubelet and cluster DNS would be: env from the downward API, headless
Services resolving to every ready pod, and a StatefulSet-style pod's `<hostname>.<subdomain>` name."""

from __future__ import annotations

from typing import Any

import pytest

from osm.local.netplan import ServiceEntry, hosts_file
from osm.local.workloads import env_values, service_entries
from osm.models.errors import ValidationError
from osm.models.k8s import Pod
from osm.state.decode import decode
from osm.state.snapshot import MeshState


def pod(name: str, ip: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "db",
            "uid": f"uid-{name}",
            "labels": {"app": "db", "tier": "x"},
        },
        "spec": {"serviceAccountName": "db", "containers": [{"name": "c", "command": ["sleep"]}], **spec},
        "status": {"podIP": ip},
    }


def test_env_from_the_downward_api() -> None:
    env = [
        {"name": "PLAIN", "value": "v"},
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    p = decode(pod("db-0", "10.250.0.9", containers=[{"name": "c", "command": ["x"], "env": env}]))
    assert isinstance(p, Pod)
    values, unset = env_values(p.spec.containers[0], p, "10.250.0.9", "10.250.0.1")
    assert values == {"PLAIN": "v", "NAME": "db-0", "NS": "db", "IP": "10.250.0.9", "SA": "db", "TIER": "x"}
    assert unset == ["PASSWORD (valueFrom.secretKeyRef)"]


def test_an_unknown_field_path_is_refused_naming_the_field() -> None:
    env = [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.secret"}}}]
    with pytest.raises(ValidationError) as e:
        decode(pod("db-0", "10.250.0.9", containers=[{"name": "c", "env": env}]))
    assert e.value.field == "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath"
    assert "not a pod field" in str(e.value)


def test_a_headless_service_resolves_to_each_ready_pod_and_pods_by_hostname() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db", "namespace": "db"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]},
    }
    not_ready = pod("db-2", "10.250.0.12", hostname="db-2", subdomain="db")
    not_ready["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    docs = [
        service,
        pod("db-0", "10.250.0.10", hostname="db-0", subdomain="db"),
        pod("db-1", "10.250.0.11", hostname="db-1", subdomain="db"),
        not_ready,
    ]
    state = MeshState.build([o for o in (decode(d) for d in docs) if o is not None])
    entries = service_entries(state)
    assert entries == [
        ServiceEntry("osm-system", "osm-controller", "10.250.0.1"),  # the control plane, on the node
        ServiceEntry("db", "db", "10.250.0.10"),
        ServiceEntry("db", "db-0.db", "10.250.0.10"),
        ServiceEntry("db", "db", "10.250.0.11"),
        ServiceEntry("db", "db-1.db", "10.250.0.11"),
    ]
    hosts = hosts_file("app", "app-0", "10.250.0.20", entries, [("10.1.1.1", ("api.example.com",))])
    assert "10.250.0.10\tdb.db db.db.svc db.db.svc.cluster.local" in hosts
    assert "10.250.0.11\tdb.db db.db.svc db.db.svc.cluster.local" in hosts
    assert "10.250.0.10\tdb-0.db.db db-0.db.db.svc db-0.db.db.svc.cluster.local" in hosts
    assert "10.1.1.1\tapi.example.com" in hosts
    assert "10.250.0.12" not in hosts
