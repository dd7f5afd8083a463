"""Golden injection: each case's admission answer (the patched pod, or admitted unchanged, or refused)
and the bootstrap it names, compared with tests/golden/injection/<case>.yaml. Every patched pod
validates against the Kubernetes Pod schema. `pytest tests/golden --update-golden` rewrites them.

A hypothesis test over pod specs: the patch always applies and never duplicates a container, port or
volume name (a pod using the sidecar's names is refused instead)."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osm.apis.meshconfig import MeshConfig
from osm.certificate.tresor import TresorCA
from osm.certificate.types import Certificate
from osm.injector.patch import InjectorConfig, inject
from osm.injector.webhook import Injector
from osm.models.k8s import Namespace
from osm.testing.fakekube.patch import json_patch

EXPECTED = Path(__file__).parent / "injection"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CA = TresorCA.create(now=NOW)
FIXED_UUID = "7c5d0e2a-1111-4222-8333-944455556666"
K8S_VERSION = "1.33.0"


class Backend:
    def __init__(self, monitored: bool = True) -> None:
        labels = {"openservicemesh.io/monitored-by": "osm"} if monitored else {}
        self.ns = Namespace.from_k8s({"metadata": {"name": "bookstore", "labels": labels}})
        self.secrets: list[dict[str, Any]] = []

    async def namespace(self, name: str) -> Namespace | None:
        return self.ns

    def mesh_config(self) -> MeshConfig:
        return MeshConfig()

    def issue(self, cn: str) -> Certificate:
        return CA.issue(cn, timedelta(hours=1), now=NOW)

    async def create_secret(self, secret: dict[str, Any]) -> None:
        self.secrets.append(secret)


def container(**extra: Any) -> dict[str, Any]:
    return {"name": "bookstore", "image": "openservicemesh/bookstore:v1", **extra}


def pod(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "bookstore-v1-5d8f7c-",
            "namespace": "bookstore",
            "labels": {"app": "bookstore", "version": "v1", "pod-template-hash": "5d8f7c"},
            "annotations": annotations or {},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "bookstore-v1-5d8f7c", "uid": "r-1"}
            ],
        },
        "spec": {"serviceAccountName": "bookstore", "containers": [container()], **spec},
    }


PROBES = container(
    ports=[{"name": "http", "containerPort": 14001}, {"name": "https", "containerPort": 14443}],
    livenessProbe={"httpGet": {"port": "http", "path": "/liveness"}, "timeoutSeconds": 2},
    readinessProbe={"httpGet": {"port": 14443, "path": "/ready", "scheme": "HTTPS"}},
    startupProbe={"tcpSocket": {"port": 14001}},
)
CASES: dict[str, tuple[dict[str, Any], bool]] = {
    "deployment-pod": (pod(), True),
    "probes-http-https-tcp": (pod(containers=[PROBES]), True),
    "exclusions-by-annotation": (
        pod(
            {
                "openservicemesh.io/outbound-port-exclusion-list": "6379, 5432",
                "openservicemesh.io/inbound-port-exclusion-list": "9000",
                "openservicemesh.io/outbound-ip-range-exclusion-list": "10.1.0.0/16",
                "openservicemesh.io/outbound-ip-range-inclusion-list": "10.0.0.0/8,192.168.1.7/32",
            }
        ),
        True,
    ),
    "native-sidecar": (pod({"openservicemesh.io/native-sidecar": "enabled"}, containers=[PROBES]), True),
    "injection-disabled": (pod({"openservicemesh.io/sidecar-injection": "disabled"}), True),
    "unmonitored-namespace": (pod(), False),
    "reserved-port-refused": (pod(containers=[container(ports=[{"containerPort": 15000}])]), True),
}


def review(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "review-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": "bookstore",
            "object": obj,
        },
    }


def outcome(obj: dict[str, Any], monitored: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr("osm.injector.webhook.uuid.uuid4", lambda: FIXED_UUID)
    backend = Backend(monitored)
    answer = asyncio.run(Injector(backend, InjectorConfig()).review(review(obj)))["response"]
    if not answer["allowed"]:
        return {"refused": answer["status"]["message"]}
    if "patch" not in answer:
        return {"admitted": "unchanged"}
    ops = json.loads(base64.b64decode(answer["patch"]))
    patched = json_patch(obj, ops)
    (secret,) = backend.secrets
    boot = yaml.safe_load(base64.b64decode(secret["data"]["bootstrap.yaml"]))
    return {
        "patched_pod": patched,
        "bootstrap_secret": {"name": secret["metadata"]["name"], "keys": sorted(secret["data"])},
        "bootstrap.yaml": boot,
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_injection_golden(case: str, update_golden: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    obj, monitored = CASES[case]
    got = outcome(obj, monitored, monkeypatch)
    if "patched_pod" in got:
        named = {
            **got["patched_pod"],
            "metadata": {**got["patched_pod"]["metadata"], "name": "bookstore-v1-x"},
        }
        kubernetes_validate.validate(named, K8S_VERSION, strict=True)
    path = EXPECTED / f"{case}.yaml"
    text = yaml.safe_dump(got, sort_keys=True, width=120)
    if update_golden or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if not update_golden:
            pytest.fail(f"wrote missing golden file {path}; check it and commit it")
    assert text == path.read_text(), f"{case}: differs from {path} (run with --update-golden after checking)"


NAMES = st.sampled_from(["app", "web", "envoy", "osm-init", "sidecar", "worker", "db"])
PORT_NAMES = st.sampled_from(["http", "grpc", "proxy-admin", "metrics", "admin", "liveness-port"])
PORTS = st.one_of(st.integers(1, 65535), st.sampled_from([15000, 15001, 15003, 15010, 15901, 15904, 8080]))


@st.composite
def pod_specs(draw: st.DrawFn) -> dict[str, Any]:
    """Valid pods: container names unique in the pod, port names and numbers too."""
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    ports = draw(
        st.lists(
            st.fixed_dictionaries({"containerPort": PORTS, "name": PORT_NAMES}),
            max_size=6,
            unique_by=(lambda p: p["containerPort"], lambda p: p["name"]),
        )
    )
    split = draw(st.integers(0, len(names) - 1))
    containers: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        own = ports[i :: len(names)]
        c: dict[str, Any] = {"name": name, "image": "x", "ports": own}
        if own and draw(st.booleans()):
            c["readinessProbe"] = {"httpGet": {"port": own[0]["name"], "path": "/ready"}}
        containers.append(c)
    volumes = draw(
        st.lists(
            st.sampled_from(["data", "config", "envoy-bootstrap-config-volume", "tmp"]).map(
                lambda n: {"name": n, "emptyDir": {}}
            ),
            max_size=3,
            unique_by=lambda v: v["name"],
        )
    )
    annotations = draw(
        st.fixed_dictionaries(
            {}, optional={"openservicemesh.io/native-sidecar": st.sampled_from(["enabled", "no"])}
        )
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "bookstore", "annotations": annotations},
        "spec": {"containers": containers[split:], "initContainers": containers[:split], "volumes": volumes},
    }


def _duplicates(items: list[str]) -> set[str]:
    return {x for x in items if items.count(x) > 1}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pod_specs())
def test_the_patch_applies_and_never_duplicates_a_name(obj: dict[str, Any]) -> None:
    cert = CA.issue("x", timedelta(hours=1), now=NOW)
    try:
        injection = inject(
            obj,
            "bookstore",
            MeshConfig(),
            InjectorConfig(),
            namespace_annotations={},
            proxy_uuid=FIXED_UUID,
            cert_pem=cert.cert_pem,
            key_pem=cert.key_pem,
            ca_pem=CA.trust_bundle_pem,
        )
    except ValueError as e:  # the pod uses one of the sidecar's names or ports: refused, saying which
        assert "sidecar" in str(e)
        return
    patched = json_patch(obj, injection.patch)
    spec = patched["spec"]
    every = [*spec.get("initContainers", []), *spec["containers"]]
    assert not _duplicates([c["name"] for c in every])
    assert not _duplicates([v["name"] for v in spec["volumes"]])
    assert not _duplicates([p["name"] for c in every for p in c.get("ports", [])])
    assert not _duplicates([p["containerPort"] for c in every for p in c.get("ports", [])])
    assert sum(c["name"] == "envoy" for c in every) == 1
