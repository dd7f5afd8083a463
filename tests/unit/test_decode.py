from __future__ import annotations

import pytest

from osm.apis.meshconfig import MeshConfig
from osm.models.errors import ValidationError
from osm.models.k8s import Deployment, Endpoints, EndpointSlice, Namespace, Pod, Service, ServiceAccount
from osm.smi.models import HTTPRouteGroup, TCPRoute, TrafficSplit, TrafficTarget
from osm.state.decode import ObjectKey, decode, key_of

META = {"name": "obj", "namespace": "shop"}
SA_REF = {"kind": "ServiceAccount", "name": "sa"}

# (apiVersion, kind, extra fields of a minimal valid document, expected type)
SERVED = [
    ("v1", "Namespace", {}, Namespace),
    ("v1", "ServiceAccount", {}, ServiceAccount),
    ("v1", "Service", {"spec": {"ports": [{"port": 80}]}}, Service),
    ("v1", "Pod", {"spec": {"containers": [{"name": "app"}]}}, Pod),
    ("v1", "Endpoints", {}, Endpoints),
    (
        "discovery.k8s.io/v1",
        "EndpointSlice",
        {"metadata": {**META, "labels": {"kubernetes.io/service-name": "web"}}},
        EndpointSlice,
    ),
    (
        "apps/v1",
        "Deployment",
        {
            "spec": {
                "selector": {"matchLabels": {"app": "a"}},
                "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c"}]}},
            }
        },
        Deployment,
    ),
    (
        "access.smi-spec.io/v1alpha3",
        "TrafficTarget",
        {"spec": {"destination": SA_REF, "sources": [SA_REF], "rules": [{"kind": "TCPRoute", "name": "t"}]}},
        TrafficTarget,
    ),
    ("specs.smi-spec.io/v1alpha4", "HTTPRouteGroup", {"spec": {"matches": [{"name": "m"}]}}, HTTPRouteGroup),
    ("specs.smi-spec.io/v1alpha4", "TCPRoute", {"spec": {}}, TCPRoute),
    (
        "split.smi-spec.io/v1alpha2",
        "TrafficSplit",
        {"spec": {"service": "s", "backends": [{"service": "b", "weight": 1}]}},
        TrafficSplit,
    ),
    ("config.openservicemesh.io/v1alpha2", "MeshConfig", {}, MeshConfig),
]


@pytest.mark.parametrize(("api", "kind", "extra", "cls"), SERVED, ids=[s[1] for s in SERVED])
def test_decode_dispatches_by_api_version_and_kind(api, kind, extra, cls):
    obj = decode({"apiVersion": api, "kind": kind, "metadata": META, **extra})
    assert type(obj) is cls
    assert key_of(obj) == ObjectKey(kind, "" if kind == "Namespace" else "shop", "obj")


@pytest.mark.parametrize(
    ("api", "kind"),
    [
        ("v1", "ConfigMap"),
        ("apps/v1", "DaemonSet"),
        ("config.openservicemesh.io/v1alpha2", "MeshRootCertificate"),
        ("v1", "List"),
    ],
)
def test_decode_ignores_kinds_the_mesh_does_not_watch(api, kind):
    assert decode({"apiVersion": api, "kind": kind, "metadata": META}) is None


@pytest.mark.parametrize(
    ("api", "kind", "served"),
    [
        ("access.smi-spec.io/v1alpha2", "TrafficTarget", "access.smi-spec.io/v1alpha3"),
        ("specs.smi-spec.io/v1alpha3", "HTTPRouteGroup", "specs.smi-spec.io/v1alpha4"),
        ("extensions/v1beta1", "Deployment", "apps/v1"),
        ("discovery.k8s.io/v1beta1", "EndpointSlice", "discovery.k8s.io/v1"),
        ("config.openservicemesh.io/v1alpha1", "MeshConfig", "config.openservicemesh.io/v1alpha2"),
    ],
)
def test_known_kind_at_an_unsupported_version_names_the_served_versions(api, kind, served):
    with pytest.raises(ValidationError) as ei:
        decode({"apiVersion": api, "kind": kind, "metadata": META})
    e = ei.value
    assert (e.kind, e.namespace, e.name, e.field) == (kind, "shop", "obj", "apiVersion")
    assert f"unsupported version {api!r}" in e.reason
    assert served in e.reason
    assert f"{kind} shop/obj: field apiVersion" in str(e)


def test_missing_kind_is_rejected():
    with pytest.raises(ValidationError) as ei:
        decode({"apiVersion": "v1", "metadata": META})
    e = ei.value
    assert (e.kind, e.namespace, e.name, e.field, e.reason) == (
        "<unknown>",
        "shop",
        "obj",
        "kind",
        "is required and must be a string",
    )


def test_missing_api_version_is_rejected_naming_the_kind():
    with pytest.raises(ValidationError) as ei:
        decode({"kind": "Service", "metadata": META})
    e = ei.value
    assert (e.kind, e.namespace, e.name, e.field, e.reason) == (
        "Service",
        "shop",
        "obj",
        "apiVersion",
        "is required and must be a string",
    )


@pytest.mark.parametrize("doc", [["a"], "text", 3])
def test_non_map_documents_are_rejected(doc):
    with pytest.raises(ValidationError, match="document must be a map"):
        decode(doc)


def test_validation_errors_of_the_kind_parser_propagate():
    with pytest.raises(ValidationError) as ei:
        decode({"apiVersion": "v1", "kind": "Service", "metadata": META, "spec": {"ports": [{"port": -1}]}})
    assert (ei.value.kind, ei.value.field) == ("Service", "spec.ports[0].port")


def test_object_key_str():
    assert str(ObjectKey("Service", "shop", "web")) == "Service shop/web"
    assert str(ObjectKey("Namespace", "", "shop")) == "Namespace shop"


def test_a_kind_or_name_of_the_wrong_type_is_rejected_not_crashed_on() -> None:
    # Found by fuzzing: an unhashable kind raised TypeError before any check.
    for doc in ({"apiVersion": "v1", "kind": ["Pod"], "metadata": {"name": "p"}}, {"kind": {"a": 1}}):
        with pytest.raises(ValidationError) as e:
            decode(doc)
        assert e.value.field == "kind"
    with pytest.raises(ValidationError) as e:
        decode({"apiVersion": "v1", "kind": "Service", "metadata": {"name": {"a": 1}}})
    assert e.value.field == "metadata.name"
