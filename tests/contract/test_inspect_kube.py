"""`osm policy`, `osm verify` and `osm support bug-report` on Kubernetes: the mesh's objects applied with
the real kubectl (the chart's CRDs, then a namespace of three meshed pods, a Service, a TrafficTarget and
two conflicting IngressBackends), read back by the CLI from the API server as the controller would
read them. The sidecars' admin interfaces are real Envoys behind fakekube's pod proxy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from osm.cli.main import cli
from osm.health.server import HealthServer
from osm.paths import CHART
from osm.testing.envoy import EnvoyProcess, free_port, next_base_id
from tests.contract.conftest import Cluster

PODS = {"web": "10.1.0.1", "api": "10.1.0.2", "intruder": "10.1.0.3"}

MANIFESTS = """
apiVersion: v1
kind: Namespace
metadata: {name: osm-system}
---
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {openservicemesh.io/monitored-by: osm}
---
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config, namespace: osm-system}
spec:
  traffic: {enablePermissiveTrafficPolicyMode: false}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  clusterIP: 10.96.0.20
  selector: {app: api}
  ports: [{name: http, port: 8080, appProtocol: http}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: everything, namespace: shop}
spec:
  matches: [{name: all, pathRegex: ".*", methods: ["*"]}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: web-to-api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop}
  sources: [{kind: ServiceAccount, name: web, namespace: shop}]
  rules: [{kind: HTTPRouteGroup, name: everything, matches: [all]}]
"""

INGRESS_BACKEND = """
apiVersion: policy.openservicemesh.io/v1alpha1
kind: IngressBackend
metadata: {{name: {name}, namespace: shop}}
spec:
  backends: [{{name: api, port: {{number: 8080, protocol: http}}}}]
  sources: [{{kind: IPRange, name: 10.0.0.0/8}}]
"""


def pod(name: str) -> str:
    return f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {name}, namespace: shop}}
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: shop
  labels: {{app: {name}, osm-proxy-uuid: 00000000-0000-0000-0000-00000000000{len(name)}}}
spec:
  serviceAccountName: {name}
  containers:
  - {{name: {name}, image: app, ports: [{{containerPort: 8080}}]}}
  - {{name: envoy, image: envoy}}
"""


@dataclass
class Mesh:
    cluster: Cluster
    kubeconfig: Path
    admin: dict[str, int]  # pod -> its sidecar's admin port on 127.0.0.1


def envoy_config(admin: int, clusters: dict[str, str]) -> str:
    static = [
        {
            "name": name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": name,
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {"endpoint": {"address": {"socket_address": {"address": ip, "port_value": 8080}}}}
                        ]
                    }
                ],
            },
        }
        for name, ip in clusters.items()
    ]
    return json.dumps(
        {
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
            "static_resources": {"clusters": static},
        }
    )


@pytest.fixture
def mesh(cluster: Cluster, tmp_path: Path) -> Iterator[Mesh]:
    cluster.kubectl("apply", "-f", str(CHART / "crds"))
    docs = [MANIFESTS, *(pod(n) for n in PODS)]
    docs += [INGRESS_BACKEND.format(name=n) for n in ("ingress-a", "ingress-b")]
    cluster.kubectl("apply", "-f", "-", stdin="---\n".join(docs))
    for name, ip in PODS.items():
        status = {"podIP": ip, "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        cluster.kubectl(
            "patch",
            "pod",
            name,
            "-n",
            "shop",
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )
    cluster.fk.api.pod_logs["shop/api/envoy"] = b"line one\nline two\n"
    # web's sidecar routes to api's pod; api's and intruder's sidecars have no clusters
    envoys: list[EnvoyProcess] = []
    admin = {name: free_port() for name in PODS}
    try:
        for name, port in admin.items():
            config = tmp_path / f"{name}.json"
            config.write_text(envoy_config(port, {"shop/api|8080": PODS["api"]} if name == "web" else {}))
            envoy = EnvoyProcess(config, port, next_base_id(), tmp_path / f"{name}.log")
            envoys.append(envoy)
            envoy.start()
            envoy.wait_ready(20)
            cluster.fk.api.pod_addresses[f"shop/{name}:15000"] = f"127.0.0.1:{port}"
        yield Mesh(cluster, tmp_path / "kubeconfig", admin)
    finally:
        for envoy in envoys:
            envoy.stop()


def osm(m: Mesh, *args: str) -> tuple[int, str]:
    no_local = str(m.kubeconfig.parent / "no-local-mesh")
    r = CliRunner().invoke(cli, [*args, "--kubeconfig", str(m.kubeconfig), "--state-dir", no_local])
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.output


pytestmark = pytest.mark.envoy


def test_policy_explain_and_check_pods_read_the_clusters_policies(mesh: Mesh) -> None:
    code, out = osm(mesh, "policy", "explain", "shop/web", "shop/api", "--output", "json")
    assert code == 0, out
    allowed = json.loads(out)
    assert allowed["allowed"] is True and allowed["mode"] == "smi"
    assert allowed["objects"]["traffic_targets_allowing"] == ["shop/web-to-api"]
    assert allowed["request"]["ip"] == "10.96.0.20"  # the Service's ClusterIP, as a client calls it
    code, out = osm(mesh, "policy", "explain", "shop/intruder", "shop/api", "--output", "json")
    denied = json.loads(out)
    assert code == 0 and denied["allowed"] is False
    assert "no TrafficTarget names ServiceAccount shop/intruder" in denied["reason"]
    assert osm(mesh, "policy", "check-pods", "shop/web", "shop/api") == (
        0,
        "[+] shop/web is allowed to reach shop/api by: shop/web-to-api\n",
    )
    code, out = osm(mesh, "policy", "check-pods", "shop/intruder", "shop/api")
    assert code == 1 and "[-] no TrafficTarget allows shop/intruder to reach shop/api" in out


def test_check_conflicts_names_the_ingress_backends_claiming_one_port(mesh: Mesh) -> None:
    code, out = osm(mesh, "policy", "check-conflicts", "IngressBackend", "-n", "shop")
    assert code == 0
    assert out.startswith("[+] ") and "ingress-a" in out and "ingress-b" in out
    code, out = osm(mesh, "policy", "check-conflicts", "IngressBackend", "-n", "other")
    assert out == "No conflicts among IngressBackend resources in namespace other\n"


def test_verify_connectivity_checks_the_policies_and_the_sidecars_own_config(mesh: Mesh) -> None:
    code, out = osm(mesh, "verify", "connectivity", "--from-pod", "shop/web", "--to-pod", "shop/api")
    assert code == 0, out
    assert "[+] shop/web can talk to shop/api" in out
    assert "routes to 10.1.0.2 in shop/api|8080" in out
    # denied by the policies: the reason names the missing TrafficTarget
    code, out = osm(mesh, "verify", "connectivity", "--from-pod", "shop/intruder", "--to-pod", "shop/api")
    assert code == 1
    assert "[-] shop/intruder cannot talk to shop/api" in out
    assert "no TrafficTarget names ServiceAccount shop/intruder" in out
    # allowed, but the source's sidecar does not have the configuration: said, and non-zero
    mesh.cluster.kubectl(
        "patch",
        "traffictarget",
        "web-to-api",
        "-n",
        "shop",
        "--type=json",
        "-p",
        json.dumps(
            [
                {
                    "op": "add",
                    "path": "/spec/sources/-",
                    "value": {"kind": "ServiceAccount", "name": "intruder", "namespace": "shop"},
                }
            ]
        ),
    )
    code, out = osm(mesh, "verify", "connectivity", "--from-pod", "shop/intruder", "--to-pod", "shop/api")
    assert code == 1
    assert "the source's sidecar has no cluster shop/api|*" in out
    assert "the configuration allows it" in out


def test_verify_control_plane_names_what_is_missing(mesh: Mesh) -> None:
    code, out = osm(mesh, "verify", "control-plane")
    assert code == 1
    assert "[-] Deployment osm-system/osm-controller:" in out
    assert "[-] osm-controller /health/ready:" in out
    assert "[-] MutatingWebhookConfiguration osm-webhook-osm:" in out


def test_bug_report_holds_the_policies_the_sidecars_and_the_logs(mesh: Mesh, tmp_path: Path) -> None:
    # fakekube's pods/log as kubectl reads it
    assert mesh.cluster.kubectl("logs", "api", "-n", "shop", "-c", "envoy") == "line one\nline two\n"
    assert mesh.cluster.kubectl("logs", "api", "-n", "shop", "-c", "envoy", "--tail=1") == "line two\n"
    assert mesh.cluster.kubectl("logs", "api", "-n", "shop", "-c", "envoy", "--limit-bytes=4") == "line"
    out_file = tmp_path / "report.tar.gz"
    code, out = osm(mesh, "support", "bug-report", "-o", str(out_file), "--max-pods", "2")
    assert code == 0, out
    with tarfile.open(out_file) as tar:
        files = {m.name.removeprefix("osm-bug-report/"): m for m in tar.getmembers()}

        def read(name: str) -> bytes:
            f = tar.extractfile(files[name])
            assert f is not None
            return f.read()

        mesh_doc = json.loads(read("mesh.json"))
        assert mesh_doc["namespaces"] == ["shop"]
        assert (mesh_doc["meshedPods"], mesh_doc["meshedPodsInReport"]) == (3, 2)
        assert "shop/web-to-api" in json.loads(read("policies.json"))["TrafficTarget"]
        # the first two meshed pods by name: api and intruder; web is left out by --max-pods
        assert {n.split("/")[2] for n in files if n.startswith("pods/")} == {"api", "intruder"}
        assert read("pods/shop/api/envoy.log") == b"line one\nline two\n"
        dump = json.loads(read("pods/shop/api/config_dump.json"))
        assert "BootstrapConfigDump" in dump["configs"][0]["@type"]
        assert b"cluster_manager" in read("pods/shop/intruder/stats.txt")
        assert all(
            b"PRIVATE KEY-----" not in read(n) for n in files if tar.getmember(f"osm-bug-report/{n}").isfile()
        )


def test_another_mesh_name_reads_that_meshs_namespaces(mesh: Mesh) -> None:
    mesh.cluster.kubectl("label", "namespace", "shop", "openservicemesh.io/monitored-by=blue", "--overwrite")
    code, out = osm(mesh, "policy", "explain", "shop/web", "shop/api", "--mesh-name", "blue", "-o", "json")
    e = json.loads(out)
    assert code == 0 and e["allowed"] is True
    assert e["hops"] and "sidecar" not in e["reason"]  # through both sidecars of mesh "blue"
    code, out = osm(mesh, "policy", "check-pods", "shop/web", "shop/api")  # mesh "osm": not its namespace
    assert code == 1 and "no pod shop/web" in out


CONTROL_PLANE = """
apiVersion: v1
kind: Service
metadata: {name: osm-controller, namespace: osm-system}
spec:
  selector: {app: osm-controller}
  ports: [{name: http, port: 9091}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: osm-webhook-osm}
webhooks:
- name: osm-inject.k8s.io
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {caBundle: Q0E=, service: {name: osm-injector, namespace: osm-system, path: /mutate}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: osm-validator-mesh-osm}
webhooks:
- name: osm-validator.k8s.io
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {caBundle: Q0E=, service: {name: osm-validator, namespace: osm-system, path: /validate}}
"""


def deployment(name: str) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: osm-system}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: {name}, image: osm}}]}}
"""


@contextlib.contextmanager
def health_server(ready: bool) -> Iterator[int]:
    """The control plane's health server on 127.0.0.1, in a thread of its own; its port."""
    loop = asyncio.new_event_loop()
    server = HealthServer("127.0.0.1:0", ready=lambda: (ready, "ok" if ready else "not synced"))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        yield server.port
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_verify_control_plane_passes_on_a_healthy_control_plane(mesh: Mesh) -> None:
    names = ("osm-controller", "osm-injector", "osm-bootstrap")
    mesh.cluster.kubectl(
        "apply", "-f", "-", stdin="---\n".join([CONTROL_PLANE, *(deployment(n) for n in names)])
    )
    for name in names:
        status = json.dumps({"status": {"replicas": 1, "readyReplicas": 1}})
        mesh.cluster.kubectl(
            "patch",
            "deployment",
            name,
            "-n",
            "osm-system",
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        )
    for ready in (True, False):
        with health_server(ready) as port:
            mesh.cluster.fk.webhooks.services["osm-system/osm-controller:9091"] = f"127.0.0.1:{port}"
            code, out = osm(mesh, "verify", "control-plane")
        if ready:
            assert code == 0, out
            assert "[+] Deployment osm-system/osm-injector: 1/1 ready" in out
            assert "[+] osm-controller /health/ready: ok" in out
            assert "[+] ValidatingWebhookConfiguration osm-validator-mesh-osm: CA bundle in place" in out
        else:
            assert code == 1 and "[-] osm-controller /health/ready:" in out
