"""Upstream's e2e_statefulsets_test.go on the local runtime.

Upstream installs a three-member ZooKeeper StatefulSet (helm chart) with `localProxyMode: PodIP`, a
TCPRoute of its ports (2181, 3181, 2888, 3888) and a TrafficTarget from its ServiceAccount to itself,
then asserts that `zkServer.sh status` succeeds in every member (the quorum formed through the
sidecars). Here each member is a small Python peer in place of ZooKeeper: it listens on the four ports,
and its status command connects to every member by its stable name
`zookeeper-<i>.zookeeper-headless.zookeeper.svc.cluster.local` on the peer ports and exits 0 only when
all answer with their pod names. The members start in order (OrderedReady), each after the one before
is ready (a TCP readiness probe, run through osm-healthcheck).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import small_mesh

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

REPLICAS = 3
PORTS = (2181, 3181, 2888, 3888)
PEER = """
import os, socketserver, threading
class H(socketserver.StreamRequestHandler):
    def handle(self):
        if self.rfile.readline().strip() == b"ruok":
            self.wfile.write(os.environ["POD_NAME"].encode() + b"\\n")
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
servers = [S(("0.0.0.0", p), H) for p in PORTS]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
""".replace("PORTS", repr(PORTS))
STATUS = """
import socket, sys
members = [f"zookeeper-{i}" for i in range(REPLICAS)]
bad = []
for m in members:
    for port in (2888, 3888):
        try:
            name = f"{m}.zookeeper-headless.zookeeper.svc.cluster.local"
            with socket.create_connection((name, port), 3) as s:
                s.sendall(b"ruok\\n")
                got = s.makefile().readline().strip()
        except OSError as e:
            got = repr(e)
        if got != m:
            bad.append(f"{m}:{port}: {got}")
print("; ".join(bad) or "quorum")
sys.exit(1 if bad else 0)
""".replace("REPLICAS", str(REPLICAS))
MESH = f"""
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {{name: osm-mesh-config, namespace: osm-system}}
spec:
  traffic: {{enablePermissiveTrafficPolicyMode: false}}
  sidecar: {{localProxyMode: PodIP}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: zookeeper, labels: {{openservicemesh.io/monitored-by: osm}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: zookeeper-headless, namespace: zookeeper}}
spec:
  clusterIP: None
  selector: {{app: zookeeper}}
  ports: {json.dumps([{"name": f"tcp-{p}", "port": p, "targetPort": p, "appProtocol": "tcp"} for p in PORTS])}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: zookeeper, namespace: zookeeper}}
spec:
  replicas: {REPLICAS}
  serviceName: zookeeper-headless
  selector: {{matchLabels: {{app: zookeeper}}}}
  template:
    metadata: {{labels: {{app: zookeeper}}}}
    spec:
      serviceAccountName: zookeeper
      containers:
      - name: zookeeper
        command: [python3, -c, {json.dumps(PEER)}]
        env: [{{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
        ports: {json.dumps([{"containerPort": p} for p in PORTS])}
        readinessProbe: {{tcpSocket: {{port: 2181}}, periodSeconds: 1}}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {{name: zookeeper, namespace: zookeeper}}
spec:
  matches: {{ports: {list(PORTS)}}}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {{name: zookeeper, namespace: zookeeper}}
spec:
  destination: {{kind: ServiceAccount, name: zookeeper, namespace: zookeeper}}
  rules: [{{kind: TCPRoute, name: zookeeper}}]
  sources: [{{kind: ServiceAccount, name: zookeeper, namespace: zookeeper}}]
"""
MEMBERS = [f"zookeeper-{i}" for i in range(REPLICAS)]


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "statefulset", MESH, [("zookeeper", m) for m in MEMBERS]) as m:
        yield m


def test_statefulset_members_reach_each_other_by_their_stable_names(mesh: LocalMesh) -> None:
    pods = {p["name"]: p for p in mesh.pods("zookeeper", "zookeeper-")}
    assert sorted(pods) == MEMBERS  # stable names <name>-<ordinal>, no more
    assert all(p["meshed"] and p["ready"] for p in pods.values())

    def every_member_sees_the_quorum() -> bool:
        return all(
            mesh.exec("zookeeper", member, "python3", "-c", STATUS).returncode == 0 for member in MEMBERS
        )

    # upstream: WaitForRepeatedSuccess(every member's status exits 0, 1, 90 s)
    mesh.wait_repeated(every_member_sees_the_quorum, "every member's status exits 0", times=1, timeout=90)
    out = mesh.exec("zookeeper", "zookeeper-0", "python3", "-c", STATUS).stdout.strip()
    assert out == "quorum"


def test_members_start_in_order_each_after_the_one_before_is_ready(mesh: LocalMesh) -> None:
    events = mesh.status()["events"]
    order = [e.split()[2] for e in events if " started (" in e and "zookeeper/zookeeper-" in e]
    assert order[:REPLICAS] == [f"zookeeper/{m}" for m in MEMBERS]
    ready_at = {e.split()[2]: i for i, e in enumerate(events) if e.endswith(" ready")}
    started_at = {e.split()[2]: i for i, e in enumerate(events) if " started (" in e}
    for before, after in itertools.pairwise(MEMBERS):
        assert ready_at[f"zookeeper/{before}"] < started_at[f"zookeeper/{after}"]
