"""The validating webhook: verdicts (the mesh's own decoder's), and the HTTP handler's bounds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from osm.validator.verdict import verdict
from osm.validator.webhook import Validator, validating_webhook_configuration
from osm.webhook.http import MAX_REVIEW_BYTES


def request(obj: Any, operation: str = "CREATE", namespace: str = "bookstore") -> dict[str, Any]:
    return {"uid": "u", "operation": operation, "namespace": namespace, "object": obj}


def target(dest_ns: str = "bookstore", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "access.smi-spec.io/v1alpha3",
        "kind": "TrafficTarget",
        "metadata": {"name": "t"},
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": "bookstore", "namespace": dest_ns},
            "sources": [{"kind": "ServiceAccount", "name": "bookbuyer", "namespace": "bookbuyer"}],
            "rules": [{"kind": "HTTPRouteGroup", "name": "routes", "matches": ["all"]}],
            **spec,
        },
    }


def routes(path: str) -> dict[str, Any]:
    return {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "HTTPRouteGroup",
        "metadata": {"name": "routes", "namespace": "bookstore"},
        "spec": {"matches": [{"name": "all", "pathRegex": path}]},
    }


def split(weight: Any) -> dict[str, Any]:
    return {
        "apiVersion": "split.smi-spec.io/v1alpha2",
        "kind": "TrafficSplit",
        "metadata": {"name": "s", "namespace": "bookstore"},
        "spec": {"service": "bookstore", "backends": [{"service": "bookstore-v1", "weight": weight}]},
    }


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (target("bookbuyer"), "field spec.destination.namespace: must equal the TrafficTarget's namespace"),
        (routes("(unclosed"), "field spec.matches[0].pathRegex"),
        (split(4294967296), "field spec.backends[0].weight"),
        (split("ten"), "field spec.backends[0].weight"),
        (
            {
                "apiVersion": "config.openservicemesh.io/v1alpha2",
                "kind": "MeshConfig",
                "metadata": {"name": "osm-mesh-config", "namespace": "osm-system"},
                "spec": {"sidecar": {"logLevel": "loud"}},
            },
            "field spec.sidecar.logLevel",
        ),
    ],
)
def test_invalid_policies_are_denied_naming_the_field(obj: dict[str, Any], reason: str) -> None:
    ok, why = verdict(request(obj))
    assert not ok and reason in why


def test_valid_policies_unknown_kinds_and_deletes_are_allowed() -> None:
    assert verdict(request(target())) == (True, "")
    assert verdict(request(routes("/books/.*"))) == (True, "")
    assert verdict(request({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})) == (
        True,
        "",
    )
    assert verdict(request(target("bookbuyer"), operation="DELETE")) == (True, "")


async def test_the_handler_answers_denies_and_bounds() -> None:
    validator = Validator()
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request(target("x"))}
    async with TestClient(TestServer(validator.app())) as client:
        r = await client.post("/validate", json=review)
        body = await r.json()
        assert r.status == 200 and body["response"]["uid"] == "u" and not body["response"]["allowed"]
        assert "spec.destination.namespace" in body["response"]["status"]["message"]
        assert validator.denied == 1
        bad = await client.post("/validate", data=json.dumps({"kind": "AdmissionReview"}))
        assert bad.status == 400 and "only admission.k8s.io/v1" in await bad.text()
        big = await client.post("/validate", data=b"{" * (MAX_REVIEW_BYTES + 1))
        assert big.status == 413


def test_the_configuration_covers_the_policies_and_the_mesh_config() -> None:
    config = validating_webhook_configuration("v", mesh_name="osm", osm_namespace="osm-system", ca_pem=b"ca")
    policy, mesh = config["webhooks"]
    assert policy["namespaceSelector"]["matchLabels"] == {"openservicemesh.io/monitored-by": "osm"}
    assert {r["resources"][0] for r in policy["rules"]} == {
        "traffictargets",
        "httproutegroups",
        "tcproutes",
        "trafficsplits",
        "retries",
        "upstreamtrafficsettings",
        "ingressbackends",
        "egresses",
    }
    assert mesh["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "osm-system"}
