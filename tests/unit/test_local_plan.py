"""The local runtime's pure parts: addresses, hosts files, NAT, workloads, sidecar decision, probes."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from osm.envoy.bootstrap.bootstrap import ProbeRoute
from osm.injector.decision import InjectionError, must_inject
from osm.injector.probes import rewrite_probes
from osm.local import netplan, workloads
from osm.local.netplan import Pool, ServiceEntry, ServicePortNAT, hosts_file, service_nat_rules
from osm.models.k8s import Deployment, Namespace, Pod
from osm.state.decode import decode
from osm.state.snapshot import MeshState


def ns(
    name: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> Namespace:
    return Namespace.from_k8s(
        {"metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}}}
    )


MONITORED = {"openservicemesh.io/monitored-by": "osm"}


@pytest.mark.parametrize(
    ("namespace", "pod_annotation", "host_network", "expected"),
    [
        (ns("app", MONITORED), None, False, True),
        (ns("app", MONITORED), "disabled", False, False),
        (ns("app", MONITORED, {"openservicemesh.io/sidecar-injection": "disabled"}), None, False, False),
        (ns("app", MONITORED, {"openservicemesh.io/sidecar-injection": "disabled"}), "enabled", False, True),
        (ns("app", MONITORED), None, True, False),  # hostNetwork pods never get one
        (ns("app", {"openservicemesh.io/monitored-by": "other-mesh"}), None, False, False),
        (ns("app"), "enabled", False, False),  # not monitored
        (ns("osm-system", MONITORED), None, False, False),
        (ns("kube-system", MONITORED), None, False, False),
        (ns("app", {**MONITORED, "openservicemesh.io/ignore": "true"}), None, False, False),
        (None, None, False, False),
    ],
)
def test_must_inject(
    namespace: Namespace | None, pod_annotation: str | None, host_network: bool, expected: bool
) -> None:
    annotations = {"openservicemesh.io/sidecar-injection": pod_annotation} if pod_annotation else {}
    assert (
        must_inject(
            namespace, annotations, host_network=host_network, mesh_name="osm", osm_namespace="osm-system"
        )
        is expected
    )


def test_must_inject_rejects_an_unknown_annotation_value() -> None:
    with pytest.raises(InjectionError, match=r"pod annotation openservicemesh\.io/sidecar-injection='maybe'"):
        must_inject(
            ns("app", MONITORED),
            {"openservicemesh.io/sidecar-injection": "maybe"},
            host_network=False,
            mesh_name="osm",
            osm_namespace="osm-system",
        )


def pod(spec: dict[str, Any], name: str = "p", namespace: str = "app", **meta: Any) -> Pod:
    return Pod.from_k8s({"metadata": {"name": name, "namespace": namespace, **meta}, "spec": spec})


def test_http_probes_move_to_the_sidecar_and_tcp_probes_to_osm_healthcheck() -> None:
    p = pod(
        {
            "containers": [
                {
                    "name": "app",
                    "ports": [{"name": "web", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": "web"}, "timeoutSeconds": 3},
                    "livenessProbe": {"tcpSocket": {"port": 8080}},
                    "startupProbe": {"httpGet": {"path": "/s", "port": 8443, "scheme": "HTTPS"}},
                }
            ]
        }
    )
    out = rewrite_probes(p.spec.containers)
    assert out.routes == (
        ProbeRoute("readiness", 8080, "/ready", timeout_seconds=3),
        ProbeRoute("startup", 8443, "/s", https=True),
    )
    ready = out.probes[("app", "readiness")]
    assert (ready.port, ready.path) == (15902, "/osm-readiness-probe")
    startup = out.probes[("app", "startup")]
    assert (startup.port, startup.scheme, startup.path) == (
        15903,
        "HTTPS",
        "/s",
    )  # TLS passes through: path kept
    live = out.probes[("app", "liveness")]
    assert (live.kind, live.port, live.path) == ("httpGet", 15904, "/osm-healthcheck")
    assert live.headers == (("Original-Tcp-Port", "8080"),)
    assert out.healthcheck
    assert not rewrite_probes(
        pod({"containers": [{"name": "a", "readinessProbe": {"exec": {"command": ["t"]}}}]}).spec.containers
    ).healthcheck


def test_pool_hands_out_the_lowest_free_address() -> None:
    pool = Pool()
    assert [pool.take() for _ in range(3)] == [(2, "10.250.0.2"), (3, "10.250.0.3"), (4, "10.250.0.4")]
    pool.release(3)
    assert pool.take() == (3, "10.250.0.3")


def test_cluster_ips_are_stable_and_unique() -> None:
    a = netplan.cluster_ip("shop", "web", [])
    assert a == netplan.cluster_ip("shop", "web", []) and a.startswith("10.251.")
    assert netplan.cluster_ip("shop", "web", [a]) != a  # a collision probes onwards


def test_hosts_file_resolves_short_names_only_in_the_pods_namespace() -> None:
    text = hosts_file(
        "shop",
        "web-0",
        "10.250.0.5",
        [ServiceEntry("shop", "web", "10.251.0.9"), ServiceEntry("db", "pg", "10.251.0.10")],
    )
    lines = text.splitlines()
    assert "10.250.0.5\tweb-0" in lines
    assert "10.251.0.9\tweb web.shop web.shop.svc web.shop.svc.cluster.local" in lines
    assert "10.251.0.10\tpg.db pg.db.svc pg.db.svc.cluster.local" in lines


def test_service_nat_balances_over_endpoints_and_rejects_ports_without_any() -> None:
    rules = service_nat_rules(
        [
            ServicePortNAT("10.251.0.9", 80, (("10.250.0.2", 8080), ("10.250.0.3", 8080))),
            ServicePortNAT("10.251.0.10", 5432, ()),
        ]
    ).splitlines()
    dnat = [r for r in rules if "-j DNAT" in r]
    assert dnat == [
        "-A OSM_LOCAL_SERVICES -d 10.251.0.9/32 -p tcp -m tcp --dport 80 -m statistic --mode random "
        "--probability 0.50000 -j DNAT --to-destination 10.250.0.2:8080",
        "-A OSM_LOCAL_SERVICES -d 10.251.0.9/32 -p tcp -m tcp --dport 80 "
        "-j DNAT --to-destination 10.250.0.3:8080",
    ]
    assert (
        "-A OSM_LOCAL_REJECT -d 10.251.0.10/32 -p tcp -m tcp --dport 5432 -j REJECT --reject-with tcp-reset"
        in rules
    )
    assert rules.count("COMMIT") == 2 and "-A POSTROUTING -m conntrack --ctstate DNAT -j MASQUERADE" in rules


DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: app}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, command: [python3, -m, http.server], ports: [{name: http, containerPort: 8080}]}
"""


def test_deployment_pods_get_generated_names_a_template_hash_and_an_owner() -> None:
    d = decode(yaml.safe_load(DEPLOY))
    assert isinstance(d, Deployment)
    h = workloads.template_hash(d)
    assert len(h) == 10 and h == workloads.template_hash(d)
    name = workloads.generated_name("web", h)
    assert name.startswith(f"web-{h}-") and len(name) == len(f"web-{h}-") + 5
    p = workloads.pod_for_deployment(d, name, h)
    assert p.meta.labels["app"] == "web" and p.meta.labels["pod-template-hash"] == h and p.proxy_uuid
    assert workloads.owner(p) == "Deployment/web"
    changed = decode(yaml.safe_load(DEPLOY.replace("http.server", "http.server, '9090'")))
    assert isinstance(changed, Deployment) and workloads.template_hash(changed) != h


def test_service_nat_plan_uses_ready_pods_and_named_ports() -> None:
    docs = [
        yaml.safe_load(DEPLOY),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "app"},
            "spec": {
                "clusterIP": "10.251.0.7",
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    ]
    objs: list[Any] = [decode(d) for d in docs]
    d = objs[0]
    ready = workloads.with_status(workloads.pod_for_deployment(d, "web-a", "h"), "10.250.0.2", True)
    unready = workloads.with_status(workloads.pod_for_deployment(d, "web-b", "h"), "10.250.0.3", False)
    state = MeshState.build([*objs, ready, unready])
    assert workloads.service_nat(state) == [ServicePortNAT("10.251.0.7", 80, (("10.250.0.2", 8080),))]
    assert workloads.service_entries(state) == [
        ServiceEntry("app", "web", "10.251.0.7"),
        ServiceEntry("osm-system", "osm-controller", "10.250.0.1"),
    ]


def test_placement_reports_a_bad_injection_annotation() -> None:
    state = MeshState.build([ns("app", MONITORED)])
    bad = pod({"containers": []}, annotations={"openservicemesh.io/sidecar-injection": "sometimes"})
    result = workloads.placement(state, bad)
    assert not result.meshed and "Pod app/p" in result.error and "sometimes" in result.error
    assert workloads.placement(state, pod({"containers": []})).meshed


def test_spec_fingerprint_ignores_the_proxy_uuid_but_not_the_spec() -> None:
    p = pod({"containers": [{"name": "a", "command": ["x"]}]}, labels={"app": "a"})
    with_uuid = workloads.with_status(p, "10.250.0.9", True)
    assert workloads.spec_fingerprint(p.meta, p.spec) == workloads.spec_fingerprint(
        with_uuid.meta, with_uuid.spec
    )
    other = pod({"containers": [{"name": "a", "command": ["y"]}]}, labels={"app": "a"})
    assert workloads.spec_fingerprint(p.meta, p.spec) != workloads.spec_fingerprint(other.meta, other.spec)
