from __future__ import annotations

import pytest

from osm.models.errors import ValidationError
from osm.smi.models import HTTPRouteGroup, TCPRoute, TrafficSplit, TrafficTarget


def check(e: ValidationError, kind: str, field: str, reason: str) -> None:
    assert (e.kind, e.namespace, e.name, e.field) == (kind, "shop", "obj", field)
    assert reason in e.reason
    assert f"{kind} shop/obj" in str(e)
    assert field in str(e)


def obj(spec: dict | None) -> dict:
    data: dict = {"metadata": {"name": "obj", "namespace": "shop"}}
    if spec is not None:
        data["spec"] = spec
    return data


# --- TrafficTarget ---------------------------------------------------------------------------------

SA = "ServiceAccount"
DEST = {"kind": SA, "name": "bookstore", "namespace": "shop"}
SOURCES = [{"kind": SA, "name": "bookbuyer", "namespace": "buyers"}]
RULES = [{"kind": "HTTPRouteGroup", "name": "routes", "matches": ["buy"]}]


def test_traffic_target_parses_destination_sources_and_rules():
    tt = TrafficTarget.from_k8s(
        obj(
            {
                "destination": {"kind": SA, "name": "bookstore"},
                "sources": [*SOURCES, {"kind": SA, "name": "local"}],
                "rules": [*RULES, {"kind": "TCPRoute", "name": "tcp"}],
            }
        )
    )
    assert (tt.destination.namespace, tt.destination.name) == ("shop", "bookstore")
    assert [(s.namespace, s.name) for s in tt.sources] == [("buyers", "bookbuyer"), ("shop", "local")]
    assert [(r.kind, r.name, r.matches) for r in tt.rules] == [
        ("HTTPRouteGroup", "routes", ("buy",)),
        ("TCPRoute", "tcp", ()),
    ]


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        (None, "spec", "is required"),
        (
            {"destination": {**DEST, "namespace": "other"}, "sources": SOURCES, "rules": RULES},
            "spec.destination.namespace",
            "must equal the TrafficTarget's namespace 'shop'",
        ),
        ({"sources": SOURCES, "rules": RULES}, "spec.destination", "is required"),
        (
            {"destination": {**DEST, "kind": "Pod"}, "sources": SOURCES, "rules": RULES},
            "spec.destination.kind",
            "must be ServiceAccount",
        ),
        ({"destination": DEST, "rules": RULES}, "spec.sources", "is required"),
        ({"destination": DEST, "sources": [], "rules": RULES}, "spec.sources", "needs at least one source"),
        (
            {"destination": DEST, "sources": [{"kind": SA}], "rules": RULES},
            "spec.sources[0].name",
            "is required",
        ),
        ({"destination": DEST, "sources": SOURCES}, "spec.rules", "is required"),
        ({"destination": DEST, "sources": SOURCES, "rules": []}, "spec.rules", "needs at least one rule"),
        (
            {"destination": DEST, "sources": SOURCES, "rules": [{"kind": "UDPRoute", "name": "u"}]},
            "spec.rules[0].kind",
            "must be HTTPRouteGroup or TCPRoute",
        ),
        (
            {"destination": DEST, "sources": SOURCES, "rules": [{"kind": "TCPRoute"}]},
            "spec.rules[0].name",
            "is required",
        ),
    ],
)
def test_traffic_target_rejections(spec, field, reason):
    with pytest.raises(ValidationError) as ei:
        TrafficTarget.from_k8s(obj(spec))
    check(ei.value, "TrafficTarget", field, reason)


# --- HTTPRouteGroup --------------------------------------------------------------------------------


def test_http_route_group_defaults_and_normalisation():
    rg = HTTPRouteGroup.from_k8s(
        obj(
            {
                "matches": [
                    {"name": "any"},
                    {"name": "buy", "pathRegex": "/books/[0-9]+", "methods": ["get", "Post"]},
                ]
            }
        )
    )
    any_, buy = rg.matches
    assert (any_.path_regex, any_.methods, any_.headers) == (".*", ("*",), ())
    assert (buy.path_regex, buy.methods) == ("/books/[0-9]+", ("GET", "POST"))
    assert rg.match("buy") is buy
    assert rg.match("sell") is None


def test_http_route_group_headers_map_and_list_forms_are_equivalent():
    as_map = {"name": "h", "headers": {"User-Agent": ".*Firefox.*", "X-Id": "[0-9]+"}}
    as_list = {"name": "h", "headers": [{"X-Id": "[0-9]+"}, {"User-Agent": ".*Firefox.*"}]}
    (from_map,) = HTTPRouteGroup.from_k8s(obj({"matches": [as_map]})).matches
    (from_list,) = HTTPRouteGroup.from_k8s(obj({"matches": [as_list]})).matches
    assert from_map.headers == from_list.headers == (("user-agent", ".*Firefox.*"), ("x-id", "[0-9]+"))


@pytest.mark.parametrize(
    ("match", "field", "reason"),
    [
        ({"pathRegex": "/books/("}, "spec.matches[0].pathRegex", "'/books/(' is not a valid RE2 regular"),
        ({"headers": {"x-id": "[0-9"}}, "spec.matches[0].headers.x-id", "'[0-9' is not a valid RE2 regular"),
        ({"headers": [{"x-id": "(("}]}, "spec.matches[0].headers.x-id", "missing )"),
        # Python's re accepts these; Envoy (RE2) does not, and would reject the routes.
        ({"pathRegex": "/books(?=/new)"}, "spec.matches[0].pathRegex", "invalid perl operator: (?="),
        ({"pathRegex": "/(a)/\\1"}, "spec.matches[0].pathRegex", "invalid escape sequence"),
        ({"pathRegex": "(/[a-z]+){1,50}"}, "spec.matches[0].pathRegex", "Envoy refuses more than 100"),
        ({"pathRegex": "x" * 1025}, "spec.matches[0].pathRegex", "at most 1024 are allowed"),
        ({"headers": ["x-id"]}, "spec.matches[0].headers[0]", "must be a map"),
        ({"headers": "x-id"}, "spec.matches[0].headers", "must be a map"),
        ({"methods": ["GET", "FETCH"]}, "spec.matches[0].methods[1]", "unknown HTTP method 'FETCH'"),
        ({"name": None}, "spec.matches[0].name", "is required"),
    ],
)
def test_http_route_group_rejections(match, field, reason):
    """Each invalid match is refused naming its field and the reason."""
    with pytest.raises(ValidationError) as ei:
        HTTPRouteGroup.from_k8s(obj({"matches": [{"name": "m", **match}]}))
    check(ei.value, "HTTPRouteGroup", field, reason)


def test_http_route_group_rejects_duplicate_match_names():
    with pytest.raises(ValidationError) as ei:
        HTTPRouteGroup.from_k8s(obj({"matches": [{"name": "a"}, {"name": "b"}, {"name": "a"}]}))
    check(ei.value, "HTTPRouteGroup", "spec.matches[2].name", "duplicate match name 'a'")


# --- TCPRoute --------------------------------------------------------------------------------------


def test_tcp_route_ports_are_deduplicated_and_sorted():
    assert TCPRoute.from_k8s(obj({"matches": {"ports": [5432, 3306, 5432]}})).ports == (3306, 5432)
    assert TCPRoute.from_k8s(obj({})).ports == ()


@pytest.mark.parametrize("bad", [0, 65536, "80", True])
def test_tcp_route_rejects_bad_ports(bad):
    with pytest.raises(ValidationError) as ei:
        TCPRoute.from_k8s(obj({"matches": {"ports": [80, bad]}}))
    check(ei.value, "TCPRoute", "spec.matches.ports[1]", f"got {bad!r}")


# --- TrafficSplit ----------------------------------------------------------------------------------

BACKENDS = [{"service": "v1", "weight": 90}, {"service": "v2", "weight": 10}]


@pytest.mark.parametrize("apex", ["bookstore", "bookstore.shop", "bookstore.shop.svc.cluster.local"])
def test_traffic_split_apex_short_or_fqdn(apex):
    ts = TrafficSplit.from_k8s(obj({"service": apex, "backends": BACKENDS}))
    assert ts.service == "bookstore"
    assert [(b.service, b.weight) for b in ts.backends] == [("v1", 90), ("v2", 10)]


def test_traffic_split_allows_zero_weight():
    ts = TrafficSplit.from_k8s(obj({"service": "s", "backends": [{"service": "v1", "weight": 0}]}))
    assert ts.backends[0].weight == 0


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"backends": BACKENDS}, "spec.service", "is required"),
        (
            {"service": "bookstore.other.svc.cluster.local", "backends": BACKENDS},
            "spec.service",
            "must be in the TrafficSplit's namespace 'shop'",
        ),
        ({"service": "s"}, "spec.backends", "is required"),
        ({"service": "s", "backends": []}, "spec.backends", "needs at least one backend"),
        (
            {"service": "s", "backends": [*BACKENDS, {"service": "v1", "weight": 1}]},
            "spec.backends[2].service",
            "duplicate backend 'v1'",
        ),
        (
            {"service": "s", "backends": [{"service": "v1", "weight": -1}]},
            "spec.backends[0].weight",
            "must be >= 0",
        ),
        ({"service": "s", "backends": [{"service": "v1"}]}, "spec.backends[0].weight", "is required"),
        # Envoy carries weights (and their sum) as uint32: beyond, generation broke or Envoy NACKed.
        (
            {"service": "s", "backends": [{"service": "v1", "weight": 4294967296}]},
            "spec.backends[0].weight",
            "must be <= 4294967295, got 4294967296",
        ),
        (
            {
                "service": "s",
                "backends": [
                    {"service": "v1", "weight": 3000000000},
                    {"service": "v2", "weight": 3000000000},
                ],
            },
            "spec.backends",
            "the weights add up to 6000000000; their sum must not exceed 4294967295",
        ),
    ],
)
def test_traffic_split_rejections(spec, field, reason):
    with pytest.raises(ValidationError) as ei:
        TrafficSplit.from_k8s(obj(spec))
    check(ei.value, "TrafficSplit", field, reason)


def test_regexes_python_refuses_but_envoy_accepts_are_accepted():
    group = HTTPRouteGroup.from_k8s(obj({"matches": [{"name": "m", "pathRegex": "/books/[a-z]+\\z"}]}))
    assert group.matches[0].path_regex == "/books/[a-z]+\\z"
