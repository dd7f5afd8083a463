"""Upstream's e2e_deployment_client_headless_server_test.go on the local runtime (smaller: 2 client
namespaces of 2 replicas, a server of 3 replicas; upstream runs 5 x 5 and 5).

SMI mode, a simple allow policy per client namespace; the server is a Deployment behind a headless
Service, each replica answering with a `podname` header taken from `valueFrom.fieldRef:
metadata.name`. Every client pod calls `server.server:8080` (the headless name: each ready replica's
address): all get 200, repeatedly, and every server replica is seen answering.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import PODNAME_SERVER, podname_calls, small_mesh

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

CLIENTS = ("client0", "client1")
REPLICAS = 3
MESH = """
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config, namespace: osm-system}
spec:
  traffic: {enablePermissiveTrafficPolicyMode: false}
---
apiVersion: v1
kind: Namespace
metadata: {name: server, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: server}
spec:
  clusterIP: None
  selector: {app: server}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: server, namespace: server}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: server}}
  template:
    metadata: {labels: {app: server}}
    spec:
      serviceAccountName: server
      containers:
      - name: server
        command: [python3, -c, SERVER]
        env: [{name: XHTTPBIN_podname, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
""".replace("REPLICAS", str(REPLICAS)).replace("SERVER", json.dumps(PODNAME_SERVER.replace("PORT", "8080")))
CLIENT = """
---
apiVersion: v1
kind: Namespace
metadata: {name: NS, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: NS, namespace: NS}
spec:
  replicas: 2
  selector: {matchLabels: {app: NS}}
  template:
    metadata: {labels: {app: NS}}
    spec:
      serviceAccountName: NS
      containers: [{name: NS, command: [sleep, "3600"]}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: NS, namespace: server}
spec:
  matches: [{name: all, pathRegex: ".*", methods: ["*"]}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: NS, namespace: server}
spec:
  destination: {kind: ServiceAccount, name: server, namespace: server}
  rules: [{kind: HTTPRouteGroup, name: NS, matches: [all]}]
  sources: [{kind: ServiceAccount, name: NS, namespace: NS}]
"""


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    manifests = MESH + "".join(CLIENT.replace("NS", ns) for ns in CLIENTS)
    pods = [("server", "server-")] + [(ns, f"{ns}-") for ns in CLIENTS]
    with small_mesh(tmp_path_factory, "headless", manifests, pods) as m:
        m.wait(lambda: len(m.pods("server", "server-")) == REPLICAS, 60, "the server's replicas")
        m.wait_ready([("server", p["name"]) for p in m.pods("server", "server-")])
        for ns in CLIENTS:
            m.wait(lambda ns=ns: len(m.pods(ns, f"{ns}-")) == 2, 60, f"{ns}'s replicas")
            m.wait_ready([(ns, p["name"]) for p in m.pods(ns, f"{ns}-")])
        yield m


def test_http_traffic_from_client_deployments_to_a_headless_service_deployment(mesh: LocalMesh) -> None:
    server_pods = {p["name"] for p in mesh.pods("server", "server-")}
    assert len(server_pods) == REPLICAS
    seen: set[str] = set()

    def all_succeed() -> bool:
        ok = True
        for ns in CLIENTS:
            for pod in mesh.pods(ns, f"{ns}-"):
                for status, name in podname_calls(mesh, ns, pod["name"], "http://server.server:8080/", 6):
                    ok = ok and status == 200
                    if status == 200:
                        seen.add(name)
        return ok

    mesh.wait_repeated(all_succeed, "rounds of every client pod's requests answered 200", timeout=120)
    assert seen == server_pods  # every server replica answered (upstream: unique servers == replicas)
