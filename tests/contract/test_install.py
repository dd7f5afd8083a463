"""Installing the mesh on a cluster, end to end on fakekube: `osm install` (the chart, through the real
helm), the control plane's own entry points running against the API as their pods would
(osm-bootstrap, osm-controller, osm-injector), `osm namespace add`, pods applied with the real kubectl
injected, `osm mesh list`, then `osm uninstall mesh` removing what was installed."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from osm import __version__
from osm.apis.meshconfig import MeshConfig
from osm.cli.main import cli
from osm.models.trafficpolicy import Tracing
from osm.paths import CHART
from osm.testing import kubetools
from osm.testing.envoy import free_port
from osm.testing.fakekube import FakeKube
from osm.testing.wait import wait_until

from .conftest import Cluster

APPS = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: bookstore, namespace: bookstore}
---
apiVersion: v1
kind: Service
metadata: {name: bookstore, namespace: bookstore}
spec:
  selector: {app: bookstore}
  ports: [{name: http, port: 14001}]
---
apiVersion: v1
kind: Pod
metadata: {name: bookstore-v1, namespace: bookstore, labels: {app: bookstore}}
spec:
  serviceAccountName: bookstore
  containers:
    - name: bookstore
      image: demo
      ports: [{containerPort: 14001, name: http}]
      readinessProbe: {httpGet: {port: http, path: /ready}}
"""


class Processes:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", f"osm.cmd.{name}", *args], stdout=log, stderr=subprocess.STDOUT
        )
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


@pytest.fixture
def cluster_with_webhooks(tools: kubetools.Tools, tmp_path: Path) -> Iterator[tuple[Cluster, dict[str, int]]]:
    ports = {"injector": free_port(), "validator": free_port(), "controller-http": free_port()}
    services = {
        "osm-system/osm-injector": f"127.0.0.1:{ports['injector']}",
        "osm-system/osm-validator": f"127.0.0.1:{ports['validator']}",
        "osm-system/osm-controller:9091": f"127.0.0.1:{ports['controller-http']}",
    }
    with FakeKube(bookmark_interval=0.2, services=services) as fk:
        kubeconfig = fk.write_kubeconfig(tmp_path / "kubeconfig")
        yield Cluster(fk, tools, tools.env(kubeconfig, tmp_path / "home")), ports


def osm(cluster: Cluster, *args: str) -> str:
    kubeconfig = cluster.env["KUBECONFIG"]
    result = CliRunner().invoke(
        cli, [*args], env={"KUBECONFIG": kubeconfig, "HELM_BIN": str(cluster.tools.helm)}
    )
    assert result.exit_code == 0, f"osm {' '.join(args)}: {result.output}"
    return result.output


def test_install_dry_run_prints_what_helm_template_renders(
    cluster_with_webhooks: tuple[Cluster, dict[str, int]],
) -> None:
    cluster, _ = cluster_with_webhooks
    tracing = ["--set", "osm.tracing.enable=true", "--set", "osm.tracing.address=zipkin.tracing"]
    printed = osm(cluster, "install", "--dry-run", "--set", "osm.enableEgress=false", *tracing)
    rendered = cluster.helm(
        "template",
        "osm",
        str(CHART),
        "--namespace",
        "osm-system",
        "--set",
        "osm.meshName=osm",
        "--set",
        "osm.osmNamespace=osm-system",
        "--set",
        "osm.enableEgress=false",
        *tracing,
    )
    assert printed == rendered
    preset = next(d for d in yaml.safe_load_all(printed) if d and d["kind"] == "ConfigMap")
    spec = json.loads(preset["data"]["preset-mesh-config.json"])
    assert spec["traffic"]["enableEgress"] is False
    # the MeshConfig osm-bootstrap would create: tracing to the address given, upstream's other defaults
    mc = MeshConfig.from_k8s(
        {"metadata": {"name": "osm-mesh-config", "namespace": "osm-system"}, "spec": spec}
    )
    assert mc.observability.tracing == Tracing("zipkin.tracing", 9411, "/api/v2/spans")


def test_install_run_inject_and_uninstall(
    cluster_with_webhooks: tuple[Cluster, dict[str, int]], tmp_path: Path
) -> None:
    cluster, ports = cluster_with_webhooks
    kubeconfig = cluster.env["KUBECONFIG"]
    out = osm(cluster, "install", "--no-wait")
    assert "OSM installed" in out
    assert "osm" in cluster.helm("list", "-n", "osm-system")
    deployments = json.loads(cluster.kubectl("get", "deployments", "-n", "osm-system", "-o", "json"))
    assert {d["metadata"]["name"] for d in deployments["items"]} == {
        "osm-controller",
        "osm-injector",
        "osm-bootstrap",
    }
    # a second mesh is refused while one is installed
    second = CliRunner().invoke(
        cli,
        ["install", "--mesh-name", "other"],
        env={"KUBECONFIG": kubeconfig, "HELM_BIN": str(cluster.tools.helm)},
    )
    assert second.exit_code != 0 and "a mesh is already installed: osm (osm-system)" in second.output

    procs = Processes(tmp_path)
    http = {"bootstrap": free_port(), "controller": ports["controller-http"], "injector": free_port()}
    try:
        common = ["--kubeconfig", kubeconfig, "--verbosity", "debug"]
        procs.start("bootstrap", *common, "--http-address", f"127.0.0.1:{http['bootstrap']}")
        wait_until(
            lambda: http_status(f"http://127.0.0.1:{http['bootstrap']}/healthz") == 200,
            30,
            "osm-bootstrap ready",
            detail=lambda: procs.log("bootstrap"),
        )
        mesh_config = json.loads(
            cluster.kubectl("get", "meshconfig", "osm-mesh-config", "-n", "osm-system", "-o", "json")
        )
        assert (
            mesh_config["spec"]["traffic"]["enablePermissiveTrafficPolicyMode"] is True
        )  # the chart's default
        cluster.kubectl("get", "secret", "osm-ca-bundle", "-n", "osm-system")

        ads = free_port()
        procs.start(
            "controller",
            *common,
            "--ads-address",
            f"127.0.0.1:{ads}",
            "--http-address",
            f"127.0.0.1:{http['controller']}",
            "--webhook-address",
            f"127.0.0.1:{ports['validator']}",
        )
        procs.start(
            "injector",
            *common,
            "--webhook-address",
            f"127.0.0.1:{ports['injector']}",
            "--http-address",
            f"127.0.0.1:{http['injector']}",
            "--ads-host",
            "127.0.0.1",
            "--ads-port",
            str(ads),
        )
        for name, path in (("controller", "/health/ready"), ("injector", "/healthz")):
            wait_until(
                lambda name=name, path=path: http_status(f"http://127.0.0.1:{http[name]}{path}") == 200,
                30,
                f"osm-{name} ready",
                detail=lambda name=name: procs.log(name),
            )

        # osm version reaches the controller through the API server's service proxy
        assert f"control plane (osm-system): {__version__}" in osm(cluster, "version")

        cluster.kubectl("create", "namespace", "bookstore")
        assert "successfully added to mesh [osm]" in osm(cluster, "namespace", "add", "bookstore")
        assert "bookstore  osm   enabled" in osm(cluster, "namespace", "list")
        cluster.kubectl("apply", "-f", "-", stdin=APPS)
        pod = json.loads(cluster.kubectl("get", "pod", "bookstore-v1", "-n", "bookstore", "-o", "json"))
        assert [c["name"] for c in pod["spec"]["containers"]] == ["bookstore", "envoy"]
        uuid = pod["metadata"]["labels"]["osm-proxy-uuid"]
        cluster.kubectl("get", "secret", f"envoy-bootstrap-config-{uuid}", "-n", "bookstore")
        assert "metrics enabled in namespace [bookstore]" in osm(
            cluster, "metrics", "enable", "--namespace", "bookstore"
        )

        def annotations(kind: str, name: str) -> dict[str, str]:
            args = ("get", kind, name, "-o", "json") + (("-n", "bookstore") if kind == "pod" else ())
            got: dict[str, str] = json.loads(cluster.kubectl(*args))["metadata"].get("annotations") or {}
            return got

        assert annotations("namespace", "bookstore")["openservicemesh.io/metrics"] == "enabled"
        scrape = annotations("pod", "bookstore-v1")
        assert (scrape["prometheus.io/scrape"], scrape["prometheus.io/port"]) == ("true", "15010")
        osm(cluster, "metrics", "disable", "--namespace", "bookstore")
        assert "openservicemesh.io/metrics" not in annotations("namespace", "bookstore")
        assert "prometheus.io/scrape" not in annotations("pod", "bookstore-v1")
        assert "osm        osm-system" in osm(cluster, "mesh", "list")
        assert "successfully removed from mesh [osm]" in osm(cluster, "namespace", "remove", "bookstore")
        assert "no namespaces in mesh [osm]" in osm(cluster, "namespace", "list")
        labels = json.loads(cluster.kubectl("get", "namespace", "bookstore", "-o", "json"))["metadata"][
            "labels"
        ]
        assert "openservicemesh.io/monitored-by" not in labels
        osm(cluster, "namespace", "ignore", "bookstore")
        labels = json.loads(cluster.kubectl("get", "namespace", "bookstore", "-o", "json"))["metadata"][
            "labels"
        ]
        assert labels["openservicemesh.io/ignore"] == "true"
    finally:
        procs.stop()

    out = osm(cluster, "uninstall", "mesh", "-f", "--delete-cluster-wide-resources")
    assert "MutatingWebhookConfiguration osm-webhook-osm" in out
    assert "ValidatingWebhookConfiguration osm-validator-mesh-osm" in out
    assert "CRD meshconfigs.config.openservicemesh.io" in out
    assert "osm" not in cluster.helm("list", "-n", "osm-system").split("\n", 1)[1]
    assert json.loads(cluster.kubectl("get", "deployments", "-n", "osm-system", "-o", "json"))["items"] == []
    assert "no osm control planes found" in osm(cluster, "mesh", "list")
    assert "control plane (osm-system): unreachable" in osm(cluster, "version")


def test_the_chart_lints_and_every_rendered_manifest_validates(cluster: Cluster) -> None:
    assert "0 chart(s) failed" in cluster.helm("lint", str(CHART))
    for values in ([], ["--set", "osm.enableNativeSidecar=true", "--set", "osm.osmNamespace=mesh-system"]):
        rendered = cluster.helm("template", "osm", str(CHART), "--include-crds", "-n", "osm-system", *values)
        docs = [d for d in yaml.safe_load_all(rendered) if d]
        assert {d["kind"] for d in docs} >= {
            "CustomResourceDefinition",
            "Deployment",
            "Service",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "ConfigMap",
        }
        for doc in docs:
            kubernetes_validate.validate(doc, "1.33.0", strict=True)
