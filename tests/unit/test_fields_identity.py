from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from osm.models.errors import ValidationError
from osm.models.fields import Doc, parse_duration
from osm.models.identity import ProxyCertCN, ServiceIdentity
from osm.models.k8s import Pod
from osm.models.service import MeshService


def check(e: ValidationError, kind: str, ns: str, name: str, field: str, reason: str) -> None:
    assert (e.kind, e.namespace, e.name, e.field) == (kind, ns, name, field)
    assert reason in e.reason
    assert f"{kind} {ns}/{name}" in str(e)
    assert field in str(e)


def doc(data: dict) -> Doc:
    return Doc(data, "Widget", "shop", "w1", "spec")


# --- Doc -------------------------------------------------------------------------------------------


def test_doc_reads_typed_values_and_defaults():
    d = doc({"s": "x", "i": 3, "b": True, "l": ["a", "b"], "m": {"k": 1, "t": True}})
    assert d.str("s") == "x"
    assert d.str("absent", "dflt") == "dflt"
    assert d.int("i", lo=1, hi=3) == 3
    assert d.int("absent", 7) == 7
    assert d.bool("b") is True
    assert d.strs("l") == ("a", "b")
    assert d.str_map("m") == {"k": "1", "t": "true"}
    assert d.objs("absent") == []


@pytest.mark.parametrize(
    ("read", "field", "reason"),
    [
        (lambda d: d.str("i"), "spec.i", "must be a string, got int"),
        (lambda d: d.str("missing", required=True), "spec.missing", "is required"),
        (lambda d: d.str("empty", required=True), "spec.empty", "must not be empty"),
        (lambda d: d.int("b"), "spec.b", "must be an integer, got bool"),
        (lambda d: d.int("i", lo=5), "spec.i", "must be >= 5, got 3"),
        (lambda d: d.int("i", hi=2), "spec.i", "must be <= 2, got 3"),
        (lambda d: d.bool("s"), "spec.s", "must be a boolean"),
        (lambda d: d.obj("s"), "spec.s", "must be an object"),
        (lambda d: d.seq("s"), "spec.s", "must be a list"),
        (lambda d: d.objs("l"), "spec.l[1]", "must be an object, got str"),
        (lambda d: d.strs("n"), "spec.n[1]", "must be a string, got int"),
        (lambda d: d.str_map("m"), "spec.m.k", "must be a string, got list"),
        (lambda d: d.obj("o").str("x"), "spec.o.x", "must be a string"),
    ],
)
def test_doc_errors_name_the_object_and_the_full_field_path(read, field, reason):
    data = {"s": "x", "i": 3, "b": True, "empty": "", "l": [{}, "x"], "n": ["a", 1], "m": {"k": []}}
    with pytest.raises(ValidationError) as ei:
        read(doc({**data, "o": {"x": 1}}))
    check(ei.value, "Widget", "shop", "w1", field, reason)


# --- parse_duration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("24h", 86400),
        ("1h30m", 5400),
        ("90s", 90),
        ("250ms", 0.25),
        ("1.5h", 5400),
        ("0", 0),
        ("10us", 1e-5),
        ("10µs", 1e-5),
        ("5ns", 5e-9),
        (" 2m ", 120),
    ],
)
def test_parse_duration_accepts_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "   ", "h", "10", "5d", "1h 2m", "m5"])
def test_parse_duration_rejects_malformed_text(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 10_000))
def test_parse_duration_of_hms_sum(h, m, s):
    assert parse_duration(f"{h}h{m}m{s}s") == h * 3600 + m * 60 + s


@given(st.lists(st.tuples(st.integers(0, 1000), st.sampled_from(["h", "m", "s"])), min_size=1, max_size=6))
def test_parse_duration_sums_components_in_any_order(parts):
    text = "".join(f"{n}{unit}" for n, unit in parts)
    assert parse_duration(text) == sum(n * {"h": 3600, "m": 60, "s": 1}[unit] for n, unit in parts)


# --- identities ------------------------------------------------------------------------------------


def test_service_identity_forms():
    ident = ServiceIdentity("bookstore", "bookbuyer")
    assert str(ident) == "bookbuyer.bookstore"
    assert ident.k8s == "bookstore/bookbuyer"
    assert ident.principal() == "bookbuyer.bookstore.cluster.local"
    assert ident.principal("example.org") == "bookbuyer.bookstore.example.org"


def test_proxy_cert_cn_parse_keeps_a_dotted_trust_domain():
    cn = ProxyCertCN.parse("0f1c.sidecar.bookbuyer.bookstore.cluster.local")
    assert cn.uuid == "0f1c"
    assert cn.kind == "sidecar"
    assert cn.identity == ServiceIdentity("bookstore", "bookbuyer")
    assert cn.trust_domain == "cluster.local"


@pytest.mark.parametrize(
    "bad", ["", "uuid", "uuid.sidecar.sa.ns", "uuid..sa.ns.td", "uuid.sidecar.sa.ns.", ".sidecar.sa.ns.td"]
)
def test_proxy_cert_cn_parse_rejects_malformed_cns(bad):
    with pytest.raises(ValueError, match=re.escape("<uuid>.<kind>.<sa>.<ns>.<trust-domain>")) as ei:
        ProxyCertCN.parse(bad)
    assert repr(bad) in str(ei.value)


label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)


@given(label, label, label, label, st.lists(label, min_size=1, max_size=4))
def test_proxy_cert_cn_str_parse_round_trip(uuid, kind, sa, ns, td_labels):
    cn = ProxyCertCN(uuid, kind, ServiceIdentity(ns, sa), ".".join(td_labels))
    parsed = ProxyCertCN.parse(str(cn))
    assert parsed == cn
    assert str(parsed.identity) == f"{sa}.{ns}"


def test_pod_with_dotted_service_account_gets_a_cn_that_names_it():
    data = {
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": {"serviceAccountName": "api.v1", "containers": [{"name": "app"}]},
    }
    try:
        pod = Pod.from_k8s(data)
    except ValidationError as e:  # rejecting the name is an acceptable fix too
        assert e.field == "spec.serviceAccountName"
        return
    ident = ServiceIdentity("shop", pod.service_account)
    cn = ProxyCertCN("u1", "sidecar", ident, "cluster.local")
    assert ProxyCertCN.parse(str(cn)).identity == ident


# --- MeshService names -----------------------------------------------------------------------------

SVC = MeshService(namespace="bookstore", name="bookstore-v1", port=14001, target_port=8080, protocol="http")


def test_mesh_service_cluster_and_chain_names_use_the_right_port():
    assert SVC.k8s == "bookstore/bookstore-v1"
    assert SVC.fqdn() == "bookstore-v1.bookstore.svc.cluster.local"
    assert SVC.cluster_name == "bookstore/bookstore-v1|8080"
    assert SVC.local_cluster_name == "bookstore/bookstore-v1|8080|local"
    assert SVC.outbound_chain_name == "outbound_bookstore/bookstore-v1_14001_http"
    assert SVC.inbound_chain_name == "inbound_bookstore/bookstore-v1_8080_http"


def test_mesh_service_hostnames_from_another_namespace():
    hosts = SVC.hostnames(same_namespace=False)
    assert "bookstore-v1" not in hosts
    assert "bookstore-v1:14001" not in hosts
    bases = [
        "bookstore-v1.bookstore",
        "bookstore-v1.bookstore.svc",
        "bookstore-v1.bookstore.svc.cluster",
        "bookstore-v1.bookstore.svc.cluster.local",
    ]
    assert set(hosts) == set(bases)  # no `:<port>` forms: route configs ignore the port when matching
    assert len(hosts) == len(set(hosts))


def test_mesh_service_hostnames_in_the_same_namespace_add_the_short_name():
    hosts = SVC.hostnames(same_namespace=True, cluster_domain="example.org")
    assert set(hosts) - set(SVC.hostnames(same_namespace=False, cluster_domain="example.org")) == {
        "bookstore-v1"
    }
    assert "bookstore-v1.bookstore.svc.example" in hosts
    assert "bookstore-v1.bookstore.svc.example.org" in hosts
    assert not any("cluster" in h for h in hosts)
