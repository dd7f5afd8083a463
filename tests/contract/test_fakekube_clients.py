"""fakekube as the real kubectl 1.37 and helm 4.3 see it: every verb the mesh's tests use works, and
the API server's behaviour they rely on (validation, conflicts, watches) is there."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import yaml

from tests.contract.conftest import Cluster

MINI = Path(__file__).parents[1] / "data" / "charts" / "mini"
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\ndata: {a: '1'}\n"
WIDGET = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 2}\n"
CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
              color: {type: string, enum: [red, blue], default: red}
          status: {type: object, properties: {ready: {type: boolean}}}
"""


def get(c: Cluster, *args: str) -> dict:
    return json.loads(c.kubectl("get", *args, "-o", "json"))


def test_discovery_and_default_namespaces(cluster: Cluster) -> None:
    assert "Server Version: v1.37" in cluster.kubectl("version")
    names = {i["metadata"]["name"] for i in get(cluster, "namespaces")["items"]}
    assert {"default", "kube-system"} <= names
    resources = cluster.kubectl("api-resources")
    for kind in (
        "Pod",
        "Deployment",
        "MutatingWebhookConfiguration",
        "CustomResourceDefinition",
        "EndpointSlice",
    ):
        assert kind in resources


def test_apply_client_and_server_side_label_patch_and_delete(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", "shop")  # a protobuf body
    assert "configmap/c created" in cluster.kubectl("apply", "-f", "-", stdin=CM)
    assert "configured" in cluster.kubectl("apply", "-f", "-", stdin=CM.replace("'1'", "'2', b: x"))
    assert get(cluster, "cm", "c", "-n", "shop")["data"] == {"a": "2", "b": "x"}
    assert "serverside-applied" in cluster.kubectl(
        "apply", "--server-side", "-f", "-", stdin=CM.replace("name: c", "name: d")
    )
    managed = get(cluster, "cm", "d", "-n", "shop", "--show-managed-fields")["metadata"]["managedFields"]
    assert [(m["manager"], m["operation"]) for m in managed] == [("kubectl", "Apply")]
    cluster.kubectl("label", "namespace", "shop", "openservicemesh.io/monitored-by=osm")
    assert get(cluster, "ns", "shop")["metadata"]["labels"]["openservicemesh.io/monitored-by"] == "osm"
    cluster.kubectl(
        "patch", "cm", "c", "-n", "shop", "--type=json", "-p", '[{"op":"remove","path":"/data/b"}]'
    )
    assert get(cluster, "cm", "c", "-n", "shop")["data"] == {"a": "2"}
    cluster.kubectl("delete", "cm", "c", "-n", "shop")
    assert cluster.run("kubectl", "get", "cm", "c", "-n", "shop").returncode != 0


def test_a_strategic_merge_patch_merges_containers_by_name(cluster: Cluster) -> None:
    deploy = yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]},
                },
            },
        }
    )
    cluster.kubectl("apply", "-f", "-", stdin=deploy)
    cluster.kubectl(
        "patch",
        "deployment",
        "web",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"b","image":"b:2"}]}}}}',
    )
    containers = get(cluster, "deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("a", "a:1"), ("b", "b:2")]


def test_custom_resources_follow_their_crd_schema_and_status_subresource(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=CRD)
    bad = cluster.run(
        "kubectl",
        "apply",
        "-f",
        "-",
        stdin=WIDGET.replace("size: 2", "size: 0, color: green"),
    )
    assert bad.returncode != 0
    assert 'Unsupported value: "green"' in bad.stderr and "spec.size" in bad.stderr
    unknown = cluster.run(
        "kubectl",
        "apply",
        "-f",
        "-",
        stdin="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1, junk: 1}\n",
    )
    assert unknown.returncode != 0 and 'unknown field "spec.junk"' in unknown.stderr  # kubectl asks Strict
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 2}\n",
    )
    w = get(cluster, "widget", "w")
    assert w["spec"] == {"size": 2, "color": "red"}  # defaulted from the schema
    cluster.kubectl(
        "patch", "widget", "w", "--subresource=status", "--type=merge", "-p", '{"status":{"ready":true}}'
    )
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=WIDGET.replace("size: 2", "size: 3") + "status: {ready: false}\n",
    )
    w = get(cluster, "widget", "w")
    assert w["spec"]["size"] == 3 and w["status"] == {"ready": True}  # status only through /status
    cluster.kubectl("delete", "crd", "widgets.example.com")
    assert cluster.run("kubectl", "get", "widgets").returncode != 0


def test_get_watch_sees_changes_until_it_is_stopped(cluster: Cluster) -> None:
    proc = subprocess.Popen(
        [str(cluster.tools.kubectl), "get", "configmaps", "-n", "default", "-w", "--request-timeout=20s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cluster.env,
    )
    try:
        deadline = time.monotonic() + 20
        for i in range(100):
            cluster.kubectl("create", "configmap", f"seen-{i}", "-n", "default")
            time.sleep(0.2)  # kubectl's watch starts after its list; keep creating until it reports one
            if time.monotonic() > deadline or i >= 4:
                break
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    assert "seen-4" in out


def test_helm_installs_upgrades_lists_and_uninstalls(cluster: Cluster) -> None:
    assert "STATUS: deployed" in cluster.helm("install", "rel", str(MINI), "-n", "apps", "--create-namespace")
    assert get(cluster, "cm", "rel-config", "-n", "apps")["data"] == {"greeting": "hello"}
    releases = json.loads(cluster.helm("list", "-A", "-o", "json"))
    assert [(r["name"], r["revision"], r["status"]) for r in releases] == [("rel", "1", "deployed")]
    cluster.helm("upgrade", "rel", str(MINI), "-n", "apps", "--set", "greeting=bye")
    assert get(cluster, "cm", "rel-config", "-n", "apps")["data"] == {"greeting": "bye"}
    secrets = [
        s["metadata"]["name"] for s in get(cluster, "secrets", "-n", "apps", "-l", "owner=helm")["items"]
    ]
    assert sorted(secrets) == ["sh.helm.release.v1.rel.v1", "sh.helm.release.v1.rel.v2"]
    cluster.helm("uninstall", "rel", "-n", "apps")
    assert get(cluster, "cm,deployments,secrets", "-n", "apps")["items"] == []
