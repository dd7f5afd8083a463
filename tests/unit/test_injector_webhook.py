"""The injection patch (pure) and the webhook's review, with an in-memory backend."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509

from osm.apis.meshconfig import MeshConfig
from osm.certificate.tresor import TresorCA
from osm.certificate.types import Certificate
from osm.injector.patch import InjectorConfig, inject, native_sidecar
from osm.injector.webhook import Injector
from osm.models.identity import ProxyCertCN
from osm.models.k8s import Namespace
from osm.testing.fakekube.patch import json_patch
from osm.webhook.http import MAX_REVIEW_BYTES

NOW = datetime.now(UTC)
CA = TresorCA.create(now=NOW)


def namespace(name: str, **annotations: str) -> Namespace:
    return Namespace.from_k8s(
        {
            "metadata": {
                "name": name,
                "labels": {"openservicemesh.io/monitored-by": "osm"},
                "annotations": annotations,
            }
        }
    )


def mesh_config(**sidecar: Any) -> MeshConfig:
    return MeshConfig.from_k8s(
        {
            "apiVersion": "config.openservicemesh.io/v1alpha2",
            "kind": "MeshConfig",
            "metadata": {"name": "osm-mesh-config", "namespace": "osm-system"},
            "spec": {"sidecar": sidecar},
        }
    )


class Backend:
    def __init__(self, mesh: MeshConfig | None = None, **namespaces: Namespace) -> None:
        self.namespaces = namespaces
        self.mesh = mesh or MeshConfig()
        self.secrets: list[dict[str, Any]] = []

    async def namespace(self, name: str) -> Namespace | None:
        return self.namespaces.get(name)

    def mesh_config(self) -> MeshConfig:
        return self.mesh

    def issue(self, cn: str) -> Certificate:
        return CA.issue(cn, timedelta(hours=1), now=NOW)

    async def create_secret(self, secret: dict[str, Any]) -> None:
        self.secrets.append(secret)


def pod(**extra: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "bookbuyer-", "namespace": "bookbuyer", "labels": {"app": "bookbuyer"}},
        "spec": {
            "serviceAccountName": "bookbuyer",
            "containers": [
                {
                    "name": "app",
                    "image": "demo",
                    "livenessProbe": {"httpGet": {"port": 8080, "path": "/live"}, "timeoutSeconds": 3},
                    "startupProbe": {"tcpSocket": {"port": 8080}},
                }
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }
    p["metadata"].update(extra.pop("metadata", {}))
    p["spec"].update(extra)
    return p


def review(obj: Any, *, uid: str = "u-1", operation: str = "CREATE", dry_run: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": operation,
            "namespace": "bookbuyer",
            "object": obj,
            "dryRun": dry_run,
        },
    }


def patched(original: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    ops = json.loads(base64.b64decode(answer["response"]["patch"]))
    result: dict[str, Any] = json_patch(original, ops)
    return result


def test_the_patch_adds_a_native_sidecar_and_keeps_the_pod() -> None:
    cert = CA.issue("x", timedelta(hours=1), now=NOW)
    original = pod()
    injection = inject(
        original,
        "bookbuyer",
        mesh_config(
            envoyImage="envoy:custom",
            resources={"limits": {"cpu": "1"}},
            logLevel="debug",
            enableNativeSidecar=True,
        ),
        InjectorConfig(),
        namespace_annotations={"openservicemesh.io/metrics": "enabled"},
        proxy_uuid="0f0e",
        cert_pem=cert.cert_pem,
        key_pem=cert.key_pem,
        ca_pem=CA.trust_bundle_pem,
    )
    out = json_patch(original, injection.patch)
    assert out["metadata"]["labels"] == {"app": "bookbuyer", "osm-proxy-uuid": "0f0e"}
    assert out["metadata"]["annotations"]["prometheus.io/port"] == "15010"
    init, envoy, healthcheck = out["spec"]["initContainers"]
    assert init["securityContext"]["capabilities"] == {"add": ["NET_ADMIN"]}
    assert envoy["image"] == "envoy:custom" and envoy["resources"] == {"limits": {"cpu": "1"}}
    assert envoy["args"][:2] == ["--log-level", "debug"]
    # The app starts once Envoy has its config; the TCP-probe shim is a native sidecar too (a Job ends)
    assert envoy["startupProbe"]["httpGet"] == {"path": "/ready", "port": 15010}
    assert healthcheck["name"] == "osm-healthcheck" and healthcheck["restartPolicy"] == "Always"
    assert healthcheck["args"] == ["--verbosity", "debug"]
    assert [v["name"] for v in out["spec"]["volumes"]] == ["data", "envoy-bootstrap-config-volume"]
    app = out["spec"]["containers"][0]
    assert app["livenessProbe"]["httpGet"] == {"port": 15901, "path": "/osm-liveness-probe", "scheme": "HTTP"}
    assert app["livenessProbe"]["timeoutSeconds"] == 3
    assert app["startupProbe"] == {  # the kubelet asks osm-healthcheck to dial the app's port
        "httpGet": {
            "port": 15904,
            "path": "/osm-healthcheck",
            "httpHeaders": [{"name": "Original-Tcp-Port", "value": "8080"}],
        }
    }
    assert original["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] == 8080  # not mutated
    # The bootstrap routes the rewritten probe back to the app, and names the proxy's certificate
    boot = yaml.safe_load(base64.b64decode(injection.secret["data"]["bootstrap.yaml"]))
    assert boot["node"]["id"] == injection.cert_cn == "0f0e.sidecar.bookbuyer.bookbuyer.cluster.local"
    listeners = [lis["name"] for lis in boot["static_resources"]["listeners"]]
    assert listeners == ["liveness_listener", "inbound-prometheus-listener"]
    assert boot["dynamic_resources"]["lds_config"]["initial_fetch_timeout"] == "0s"
    assert injection.secret["metadata"]["name"] == "envoy-bootstrap-config-0f0e"


def test_the_legacy_layout_appends_envoy_to_the_containers() -> None:
    cert = CA.issue("x", timedelta(hours=1), now=NOW)
    injection = inject(
        pod(),
        "bookbuyer",
        MeshConfig(),
        InjectorConfig(envoy_image="envoy:default"),
        namespace_annotations={},
        proxy_uuid="1",
        cert_pem=cert.cert_pem,
        key_pem=cert.key_pem,
        ca_pem=CA.trust_bundle_pem,
    )
    out = json_patch(pod(), injection.patch)
    assert [c["name"] for c in out["spec"]["initContainers"]] == ["osm-init"]
    assert [c["name"] for c in out["spec"]["containers"]] == ["app", "envoy", "osm-healthcheck"]
    assert not any("restartPolicy" in c for c in out["spec"]["containers"])
    assert "startupProbe" not in out["spec"]["containers"][1]
    assert out["spec"]["containers"][1]["image"] == "envoy:default"
    # Upstream's Envoy: live with no config after its initial-fetch timeouts, as before
    boot = yaml.safe_load(base64.b64decode(injection.secret["data"]["bootstrap.yaml"]))
    assert "initial_fetch_timeout" not in boot["dynamic_resources"]["lds_config"]


def test_a_pod_without_tcp_probes_gets_no_healthcheck_container() -> None:
    cert = CA.issue("x", timedelta(hours=1), now=NOW)
    plain = pod()
    del plain["spec"]["containers"][0]["startupProbe"]
    injection = inject(
        plain,
        "bookbuyer",
        MeshConfig(),
        InjectorConfig(),
        namespace_annotations={},
        proxy_uuid="2",
        cert_pem=cert.cert_pem,
        key_pem=cert.key_pem,
        ca_pem=CA.trust_bundle_pem,
    )
    out = json_patch(plain, injection.patch)
    assert [c["name"] for c in out["spec"]["containers"]] == ["app", "envoy"]
    # Its sidecar answers /ready and its stats on 15010; without the namespace's metrics annotation the
    # pod is not annotated for Prometheus' scrape
    boot = yaml.safe_load(base64.b64decode(injection.secret["data"]["bootstrap.yaml"]))
    (metrics,) = [
        x
        for x in boot["static_resources"]["listeners"]
        if x["address"]["socket_address"]["port_value"] == 15010
    ]
    routes = metrics["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0][
        "routes"
    ]
    assert [r["match"] for r in routes] == [{"path": "/ready"}, {"path": "/stats/prometheus"}]
    assert "prometheus.io/scrape" not in out["metadata"].get("annotations", {})


def test_a_pod_using_the_healthcheck_name_is_refused() -> None:
    cert = CA.issue("x", timedelta(hours=1), now=NOW)
    clash = pod()
    clash["spec"]["containers"].append({"name": "osm-healthcheck", "image": "mine"})
    with pytest.raises(ValueError, match=r"spec.containers\[1\].name: 'osm-healthcheck' is the sidecar's"):
        inject(
            clash,
            "bookbuyer",
            MeshConfig(),
            InjectorConfig(),
            namespace_annotations={},
            proxy_uuid="3",
            cert_pem=cert.cert_pem,
            key_pem=cert.key_pem,
            ca_pem=CA.trust_bundle_pem,
        )


async def test_a_review_injects_issues_the_proxy_certificate_and_creates_the_secret() -> None:
    backend = Backend(bookbuyer=namespace("bookbuyer"))
    answer = await Injector(backend, InjectorConfig()).review(review(pod()))
    assert answer["response"]["uid"] == "u-1" and answer["response"]["allowed"]
    out = patched(pod(), answer)
    uuid = out["metadata"]["labels"]["osm-proxy-uuid"]
    (secret,) = backend.secrets
    cert_pem = base64.b64decode(secret["data"]["sds_cert.pem"])
    (cn,) = x509.load_pem_x509_certificate(cert_pem).subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert ProxyCertCN.parse(str(cn.value)) == ProxyCertCN.parse(
        f"{uuid}.sidecar.bookbuyer.bookbuyer.cluster.local"
    )


@pytest.mark.parametrize(
    ("obj", "ns", "reason"),
    [
        (pod(), None, "not in the mesh"),
        (pod(hostNetwork=True), namespace("bookbuyer"), "host network"),
        (
            pod(metadata={"annotations": {"openservicemesh.io/sidecar-injection": "no"}}),
            namespace("bookbuyer"),
            "opted out",
        ),
        (
            pod(volumes=[{"name": "envoy-bootstrap-config-volume", "secret": {"secretName": "x"}}]),
            namespace("bookbuyer"),
            "already injected",
        ),
    ],
)
async def test_pods_that_get_no_sidecar_are_admitted_unchanged(
    obj: Any, ns: Namespace | None, reason: str
) -> None:
    backend = Backend(**({"bookbuyer": ns} if ns else {}))
    answer = await Injector(backend, InjectorConfig()).review(review(obj))
    assert answer["response"]["allowed"], reason
    assert "patch" not in answer["response"] and not backend.secrets


async def test_invalid_pods_are_refused_naming_the_reason_and_dry_runs_leave_no_secret() -> None:
    backend = Backend(bookbuyer=namespace("bookbuyer", **{"openservicemesh.io/sidecar-injection": "maybe"}))
    answer = await Injector(backend, InjectorConfig()).review(review(pod()))
    assert not answer["response"]["allowed"]
    assert (
        "namespace bookbuyer annotation openservicemesh.io/sidecar-injection='maybe'"
        in (answer["response"]["status"]["message"])
    )
    backend = Backend(bookbuyer=namespace("bookbuyer"))
    bad_probe = pod()
    bad_probe["spec"]["containers"][0]["livenessProbe"] = {"httpGet": {"port": 0}}
    answer = await Injector(backend, InjectorConfig()).review(review(bad_probe))
    message = answer["response"]["status"]["message"]
    assert not answer["response"]["allowed"] and "livenessProbe.httpGet" in message and "port" in message
    answer = await Injector(backend, InjectorConfig()).review(review(pod(), dry_run=True))
    assert answer["response"]["allowed"] and "patch" in answer["response"] and not backend.secrets
    answer = await Injector(backend, InjectorConfig()).review(review(pod(), operation="UPDATE"))
    assert answer["response"]["allowed"] and "patch" not in answer["response"]


async def test_the_http_handler_bounds_and_checks_its_input() -> None:
    backend = Backend(bookbuyer=namespace("bookbuyer"))
    injector = Injector(backend, InjectorConfig())
    async with TestClient(TestServer(injector.app())) as client:
        ok = await client.post("/mutate-pod-creation", json=review(pod()))
        assert ok.status == 200 and (await ok.json())["response"]["allowed"]
        for body in (b"not json", json.dumps({"kind": "AdmissionReview", "apiVersion": "v1beta1"}).encode()):
            bad = await client.post("/mutate-pod-creation", data=body)
            assert bad.status == 400
        big = await client.post("/mutate-pod-creation", data=b" " * (MAX_REVIEW_BYTES + 1))
        assert big.status == 413


def test_native_sidecar_is_chosen_by_the_pod_annotation_over_the_mesh_config() -> None:
    on, off = mesh_config(enableNativeSidecar=True), MeshConfig()
    key = "openservicemesh.io/native-sidecar"
    assert native_sidecar(on, {}) and not native_sidecar(off, {})
    assert native_sidecar(off, {key: "enabled"}) and not native_sidecar(on, {key: "no"})
    with pytest.raises(ValueError, match=r"openservicemesh.io/native-sidecar='sometimes'"):
        native_sidecar(on, {key: "sometimes"})
