from __future__ import annotations

import pytest

from osm.models.errors import ValidationError
from osm.models.k8s import (
    Deployment,
    Endpoints,
    EndpointSlice,
    Namespace,
    Pod,
    Probe,
    Service,
    ServiceAccount,
    StatefulSet,
)


def check(e: ValidationError, kind: str, ns: str, name: str, field: str, reason: str) -> None:
    assert (e.kind, e.namespace, e.name, e.field) == (kind, ns, name, field)
    assert reason in e.reason
    ref = f"{kind} {ns}/{name}" if ns else f"{kind} {name}"
    assert ref in str(e)
    assert field in str(e)


def service(*ports: dict, **spec: object) -> dict:
    return {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"ports": list(ports), **spec}}


def pod(spec: dict | None = None, status: dict | None = None, labels: dict | None = None) -> dict:
    data: dict = {
        "metadata": {"name": "web-1", "namespace": "shop", "labels": labels or {}},
        "spec": spec if spec is not None else {"containers": [{"name": "app"}]},
    }
    if status is not None:
        data["status"] = status
    return data


# --- metadata, Namespace, ServiceAccount -----------------------------------------------------------


def test_namespace_is_cluster_scoped_and_reports_its_mesh():
    ns = Namespace.from_k8s(
        {"metadata": {"name": "shop", "labels": {"openservicemesh.io/monitored-by": "osm"}}}
    )
    assert ns.meta.namespace == ""
    assert ns.monitored_by == "osm"
    assert Namespace.from_k8s({"metadata": {"name": "other"}}).monitored_by == ""


def test_namespaced_object_without_namespace_defaults_to_default():
    sa = ServiceAccount.from_k8s({"metadata": {"name": "bookbuyer"}})
    assert (sa.meta.namespace, sa.meta.name) == ("default", "bookbuyer")


def test_metadata_labels_and_annotations_are_strings():
    sa = ServiceAccount.from_k8s(
        {"metadata": {"name": "a", "labels": {"v": 2, "on": True}, "annotations": {"x": "y"}, "uid": "u"}}
    )
    assert sa.meta.labels == {"v": "2", "on": "true"}
    assert sa.meta.annotations == {"x": "y"}
    assert sa.meta.uid == "u"


@pytest.mark.parametrize(
    ("metadata", "ns", "name", "field", "reason"),
    [
        (None, "", "", "metadata", "is required"),
        ({"namespace": "shop"}, "shop", "", "metadata.name", "is required"),
        ({"name": "Web", "namespace": "shop"}, "shop", "Web", "metadata.name", "RFC 1123 subdomain"),
        ({"name": "web", "namespace": "Shop"}, "Shop", "web", "metadata.namespace", "RFC 1123 label"),
        ({"name": "web", "namespace": 3}, "", "web", "metadata.namespace", "must be a string"),
        ({"name": "web", "namespace": "shop", "labels": ["x"]}, "shop", "web", "metadata.labels", "map"),
    ],
)
def test_bad_metadata_is_rejected(metadata, ns, name, field, reason):
    with pytest.raises(ValidationError) as ei:
        ServiceAccount.from_k8s({"metadata": metadata} if metadata is not None else {})
    e = ei.value
    assert (e.kind, e.namespace, e.name, e.field) == ("ServiceAccount", ns, name, field)
    assert reason in e.reason


def test_namespace_name_with_a_dot_is_rejected():
    with pytest.raises(ValidationError) as ei:
        Namespace.from_k8s({"metadata": {"name": "team.shop"}})
    check(ei.value, "Namespace", "", "team.shop", "metadata.name", "RFC 1123 label")


# --- Service ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "app_protocol", "expected"),
    [
        ("", None, "http"),
        ("web", None, "http"),
        ("http-web", None, "http"),
        ("tcp-db", None, "tcp"),
        ("grpc-api", None, "grpc"),
        ("tcp-server-first-mysql", None, "tcp-server-first"),
        ("TCP-DB", None, "tcp"),
        ("tcpish", None, "http"),
        ("tcp-db", "http", "http"),
        ("http-web", "tcp", "tcp"),
        ("web", "GRPC", "grpc"),
        ("web", "tcp-server-first", "tcp-server-first"),
        ("tcp-x", "h2c", "http"),
        ("web", "https", "tcp"),
    ],
)
def test_service_port_protocol_prefers_app_protocol_then_port_name(name, app_protocol, expected):
    port: dict = {"port": 80, "name": name}
    if app_protocol is not None:
        port["appProtocol"] = app_protocol
    (p,) = Service.from_k8s(service(port)).ports
    assert p.app_protocol == expected


def test_service_ports_target_ports_and_selector():
    svc = Service.from_k8s(
        service(
            {"name": "a", "port": 80},
            {"name": "b", "port": 81, "targetPort": 8081},
            {"name": "c", "port": 82, "targetPort": "8082"},
            {"name": "d", "port": 83, "targetPort": "http-alt", "protocol": "udp"},
            selector={"app": "web"},
        )
    )
    assert [(p.port, p.target_port) for p in svc.ports] == [
        (80, 80),
        (81, 8081),
        (82, 8082),
        (83, "http-alt"),
    ]
    assert svc.ports[3].protocol == "UDP"
    assert svc.selector == {"app": "web"}
    assert svc.cluster_ip == ""
    assert not svc.headless


@pytest.mark.parametrize(
    ("cluster_ip", "headless"), [("None", True), ("10.96.0.10", False), ("fd00::a", False)]
)
def test_service_cluster_ip(cluster_ip, headless):
    svc = Service.from_k8s(service({"port": 80}, clusterIP=cluster_ip))
    assert svc.cluster_ip == cluster_ip
    assert svc.headless is headless


@pytest.mark.parametrize(
    ("ports", "spec", "field", "reason"),
    [
        (
            [{"port": 80, "appProtocol": "mongo"}],
            {},
            "spec.ports[0].appProtocol",
            "unsupported protocol 'mongo'",
        ),
        ([{"port": 80, "appProtocol": 7}], {}, "spec.ports[0].appProtocol", "must be a string"),
        (
            [{"name": "a", "port": 80}, {"name": "b", "port": 80}],
            {},
            "spec.ports[1].port",
            "duplicate port 80",
        ),
        ([{"name": "a", "port": 80}, {"port": 81}], {}, "spec.ports", "every port needs a name"),
        ([{"port": 0}], {}, "spec.ports[0].port", "must be >= 1"),
        ([{"port": 70000}], {}, "spec.ports[0].port", "must be <= 65535"),
        ([{"name": "a"}], {}, "spec.ports[0].port", "is required"),
        ([{"port": 80, "targetPort": 0}], {}, "spec.ports[0].targetPort", "between 1 and 65535"),
        ([{"port": 80, "targetPort": True}], {}, "spec.ports[0].targetPort", "port number or a port name"),
        ([{"port": 80, "targetPort": ""}], {}, "spec.ports[0].targetPort", "port number or a port name"),
        ([{"port": 80, "protocol": "HTTP"}], {}, "spec.ports[0].protocol", "must be TCP, UDP or SCTP"),
        ([{"port": 80}], {"clusterIP": "10.0.0"}, "spec.clusterIP", "'10.0.0' is not an IP address"),
        ([{"port": 80}], {"selector": "app"}, "spec.selector", "must be a map"),
    ],
)
def test_service_rejections(ports, spec, field, reason):
    with pytest.raises(ValidationError) as ei:
        Service.from_k8s(service(*ports, **spec))
    check(ei.value, "Service", "shop", "web", field, reason)


@pytest.mark.parametrize("target", ["0", "70000"])
def test_service_numeric_string_target_port_is_range_checked(target):
    with pytest.raises(ValidationError) as ei:
        Service.from_k8s(service({"port": 80, "targetPort": target}))
    check(ei.value, "Service", "shop", "web", "spec.ports[0].targetPort", "between 1 and 65535")


def test_service_may_use_one_port_number_for_tcp_and_udp():
    svc = Service.from_k8s(
        service(
            {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}
        )
    )
    assert [(p.port, p.protocol) for p in svc.ports] == [(53, "UDP"), (53, "TCP")]


# --- Pod -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec_extra", "expected"),
    [
        ({}, "default"),
        ({"serviceAccount": "legacy"}, "legacy"),
        ({"serviceAccountName": "bookbuyer"}, "bookbuyer"),
    ],
)
def test_pod_service_account(spec_extra, expected):
    assert Pod.from_k8s(pod({"containers": [{"name": "app"}], **spec_extra})).service_account == expected


@pytest.mark.parametrize(
    ("status", "ready"),
    [
        (None, True),
        ({"phase": "Running"}, True),
        ({"conditions": [{"type": "Ready", "status": "True"}]}, True),
        ({"conditions": [{"type": "Ready", "status": "False"}]}, False),
        ({"conditions": [{"type": "PodScheduled", "status": "False"}]}, True),
        ({"phase": "Succeeded", "conditions": [{"type": "Ready", "status": "True"}]}, False),
        ({"phase": "Failed"}, False),
    ],
)
def test_pod_readiness_from_conditions_and_phase(status, ready):
    assert Pod.from_k8s(pod(status=status)).ready is ready


def test_pod_ip_and_proxy_uuid():
    p = Pod.from_k8s(pod(status={"podIP": "10.1.2.3"}, labels={"osm-proxy-uuid": "u-1"}))
    assert p.pod_ip == "10.1.2.3"
    assert p.proxy_uuid == "u-1"
    assert Pod.from_k8s(pod()).proxy_uuid == ""


def test_pod_containers_ports_env_and_probes():
    spec = {
        "hostNetwork": True,
        "initContainers": [{"name": "init", "command": ["sh", "-c", "true"]}],
        "containers": [
            {
                "name": "app",
                "image": "nginx",
                "args": ["-g", "daemon off;"],
                "env": [{"name": "A", "value": "1"}, {"name": "B"}],
                "ports": [
                    {"containerPort": 8080, "name": "http"},
                    {"containerPort": 9000, "protocol": "udp"},
                ],
                "readinessProbe": {"httpGet": {"port": "http"}, "periodSeconds": 5},
                "livenessProbe": {"tcpSocket": {"port": 8080}, "failureThreshold": 1},
                "startupProbe": {"exec": {"command": ["cat", "/ok"]}},
                "securityContext": {"runAsUser": 1000},
            },
            {"name": "side"},
        ],
    }
    p = Pod.from_k8s(pod(spec))
    app, side = p.spec.containers
    assert p.spec.host_network is True
    assert [c.name for c in p.spec.init_containers] == ["init"]
    assert app.image == "nginx"
    assert app.args == ("-g", "daemon off;")
    assert [(e.name, e.value) for e in app.env] == [("A", "1"), ("B", "")]
    assert [(cp.container_port, cp.name, cp.protocol) for cp in app.ports] == [
        (8080, "http", "TCP"),
        (9000, "", "UDP"),
    ]
    assert p.spec.container_port("http") == 8080
    assert p.spec.container_port("nope") is None
    assert app.readiness_probe == Probe(kind="httpGet", port="http", path="/", period_seconds=5)
    assert app.liveness_probe == Probe(kind="tcpSocket", port=8080, failure_threshold=1)
    assert app.startup_probe == Probe(kind="exec", command=("cat", "/ok"))
    assert app.run_as_user == 1000
    assert side.readiness_probe is None
    assert side.run_as_user is None


@pytest.mark.parametrize(
    ("spec", "status", "field", "reason"),
    [
        (
            {"containers": [{"name": "app"}], "serviceAccountName": "Bad_SA"},
            None,
            "spec.serviceAccountName",
            "'Bad_SA'",
        ),
        (
            {"containers": [{"name": "app"}]},
            {"podIP": "10.1.2"},
            "status.podIP",
            "'10.1.2' is not an IP address",
        ),
        ({"containers": [{"name": "a"}, {"name": "a"}]}, None, "spec.containers", "must be unique"),
        ({"containers": [{"image": "x"}]}, None, "spec.containers[0].name", "is required"),
        (
            {"containers": [{"name": "a", "ports": [{"name": "p"}]}]},
            None,
            "spec.containers[0].ports[0].containerPort",
            "is required",
        ),
        (
            {"containers": [{"name": "a", "env": [{"value": "1"}]}]},
            None,
            "spec.containers[0].env[0].name",
            "is required",
        ),
        (
            {"containers": [{"name": "a", "readinessProbe": {"periodSeconds": 3}}]},
            None,
            "spec.containers[0].readinessProbe",
            "needs one of",
        ),
        (
            {"containers": [{"name": "a", "livenessProbe": {"tcpSocket": {"port": 0}}}]},
            None,
            "spec.containers[0].livenessProbe.tcpSocket.port",
            "port number",
        ),
        (
            {"containers": [{"name": "a", "startupProbe": {"exec": {}, "periodSeconds": 0}}]},
            None,
            "spec.containers[0].startupProbe.periodSeconds",
            "must be >= 1",
        ),
        (
            {"containers": [{"name": "a", "securityContext": {"runAsUser": -1}}]},
            None,
            "spec.containers[0].securityContext.runAsUser",
            "must be >= 0",
        ),
    ],
)
def test_pod_rejections(spec, status, field, reason):
    with pytest.raises(ValidationError) as ei:
        Pod.from_k8s(pod(spec, status))
    check(ei.value, "Pod", "shop", "web-1", field, reason)


# --- Endpoints / EndpointSlice ---------------------------------------------------------------------


def test_endpoints_ready_and_not_ready_addresses_with_target_refs():
    ep = Endpoints.from_k8s(
        {
            "metadata": {"name": "web", "namespace": "shop"},
            "subsets": [
                {
                    "addresses": [{"ip": "10.0.0.1", "targetRef": {"kind": "Pod", "name": "web-1"}}],
                    "notReadyAddresses": [{"ip": "10.0.0.2", "targetRef": {"kind": "Node", "name": "n1"}}],
                    "ports": [{"port": 8080, "name": "http"}],
                }
            ],
        }
    )
    assert ep.service == "web"
    (subset,) = ep.subsets
    assert [(a.ip, a.ready, a.pod_name) for a in subset.addresses] == [
        ("10.0.0.1", True, "web-1"),
        ("10.0.0.2", False, ""),
    ]
    assert [(p.port, p.name, p.protocol) for p in subset.ports] == [(8080, "http", "TCP")]


@pytest.mark.parametrize(
    ("subset", "field", "reason"),
    [
        ({"addresses": [{"ip": "nope"}]}, "subsets[0].addresses[0].ip", "'nope' is not an IP address"),
        ({"notReadyAddresses": [{}]}, "subsets[0].notReadyAddresses[0].ip", "is required"),
        ({"ports": [{"port": 99999}]}, "subsets[0].ports[0].port", "must be <= 65535"),
    ],
)
def test_endpoints_rejections(subset, field, reason):
    with pytest.raises(ValidationError) as ei:
        Endpoints.from_k8s({"metadata": {"name": "web", "namespace": "shop"}, "subsets": [subset]})
    check(ei.value, "Endpoints", "shop", "web", field, reason)


def slice_doc(**extra: object) -> dict:
    return {
        "metadata": {"name": "web-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
        **extra,
    }


def test_endpoint_slice_normalised_to_one_subset():
    es = EndpointSlice.from_k8s(
        slice_doc(
            endpoints=[
                {"addresses": ["10.0.0.1", "10.0.0.2"], "targetRef": {"kind": "Pod", "name": "web-1"}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": False}},
            ],
            ports=[{"port": 8080, "name": "http"}],
        )
    )
    assert es.service == "web"
    assert [(a.ip, a.ready, a.pod_name) for a in es.subset.addresses] == [
        ("10.0.0.1", True, "web-1"),
        ("10.0.0.2", True, "web-1"),
        ("10.0.0.3", False, ""),
    ]
    assert [p.port for p in es.subset.ports] == [8080]


def test_fqdn_endpoint_slice_has_no_ip_addresses():
    es = EndpointSlice.from_k8s(slice_doc(addressType="FQDN", endpoints=[{"addresses": ["db.example.com"]}]))
    assert es.subset.addresses == ()


def test_endpoint_slice_requires_the_service_name_label():
    with pytest.raises(ValidationError) as ei:
        EndpointSlice.from_k8s({"metadata": {"name": "web-abc", "namespace": "shop"}})
    check(ei.value, "EndpointSlice", "shop", "web-abc", "metadata.labels", "kubernetes.io/service-name")


@pytest.mark.parametrize(
    ("extra", "field", "reason"),
    [
        ({"addressType": "IPv5"}, "addressType", "must be IPv4, IPv6 or FQDN"),
        ({"endpoints": [{"addresses": ["10.0.0.1", "x"]}]}, "endpoints[0].addresses[1]", "'x' is not an IP"),
        (
            {"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": "yes"}}]},
            "endpoints[0].conditions.ready",
            "boolean",
        ),
    ],
)
def test_endpoint_slice_rejections(extra, field, reason):
    with pytest.raises(ValidationError) as ei:
        EndpointSlice.from_k8s(slice_doc(**extra))
    check(ei.value, "EndpointSlice", "shop", "web-abc", field, reason)


# --- Deployment ------------------------------------------------------------------------------------


def deployment(spec: dict) -> dict:
    return {"metadata": {"name": "web", "namespace": "shop"}, "spec": spec}


def test_deployment_template_is_parsed():
    d = Deployment.from_k8s(
        deployment(
            {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "version": "v1"}, "annotations": {"a": "b"}},
                    "spec": {"serviceAccountName": "web", "containers": [{"name": "app"}]},
                },
            }
        )
    )
    assert d.replicas == 1
    assert d.selector == {"app": "web"}
    assert d.template.labels == {"app": "web", "version": "v1"}
    assert d.template.annotations == {"a": "b"}
    assert d.template.spec.service_account == "web"


TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app"}]}}


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        (None, "spec", "is required"),
        ({"template": TEMPLATE}, "spec.selector", "is required"),
        ({"selector": {}, "template": TEMPLATE}, "spec.selector.matchLabels", "is required"),
        (
            {"selector": {"matchLabels": {"app": "api"}}, "template": TEMPLATE},
            "spec.template.metadata.labels",
            "must match",
        ),
        ({"selector": {"matchLabels": {"app": "web"}}}, "spec.template", "is required"),
        (
            {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": TEMPLATE["metadata"]}},
            "spec.template.spec",
            "is required",
        ),
        (
            {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE, "replicas": -1},
            "spec.replicas",
            "must be >= 0",
        ),
    ],
)
def test_deployment_rejections(spec, field, reason):
    with pytest.raises(ValidationError) as ei:
        Deployment.from_k8s(
            deployment(spec) if spec is not None else {"metadata": {"name": "web", "namespace": "shop"}}
        )
    check(ei.value, "Deployment", "shop", "web", field, reason)


# --- StatefulSet -----------------------------------------------------------------------------------


def test_statefulset_is_parsed_with_its_governing_service_and_pod_policy():
    s = StatefulSet.from_k8s(
        {
            "metadata": {"name": "zk", "namespace": "shop"},
            "spec": {
                "replicas": 3,
                "serviceName": "zk-headless",
                "selector": {"matchLabels": {"app": "web"}},
                "template": TEMPLATE,
            },
        }
    )
    assert (s.replicas, s.service_name, s.parallel) == (3, "zk-headless", False)
    assert s.template.labels == {"app": "web"}
    parallel = StatefulSet.from_k8s(
        {
            "metadata": {"name": "zk", "namespace": "shop"},
            "spec": {
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": {"app": "web"}},
                "template": TEMPLATE,
            },
        }
    )
    assert parallel.parallel and parallel.replicas == 1


@pytest.mark.parametrize(
    ("extra", "field", "reason"),
    [
        ({"podManagementPolicy": "Random"}, "spec.podManagementPolicy", "neither OrderedReady nor Parallel"),
        ({"serviceName": "Not_A_Label"}, "spec.serviceName", "RFC 1123 label"),
        ({"replicas": -2}, "spec.replicas", "must be >= 0"),
    ],
)
def test_statefulset_rejections(extra, field, reason):
    spec = {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE, **extra}
    with pytest.raises(ValidationError) as ei:
        StatefulSet.from_k8s({"metadata": {"name": "zk", "namespace": "shop"}, "spec": spec})
    check(ei.value, "StatefulSet", "shop", "zk", field, reason)
