"""The bookstore mesh on the local runtime: policy enforced on real traffic between real sidecars.

One mesh serves the tests of this module, in order; each test leaves the manifests as it found them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from osm.demo.manifests import SIDECARS
from osm.testing.localmesh import LocalMesh
from osm.testing.sniff import Sniffer
from osm.testing.wait import poll

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

DEMO = Path(__file__).parents[2] / "demo"
BOOKSTORE = "http://bookstore.bookstore:14001"
EXTRA = """
apiVersion: v1
kind: Namespace
metadata: {name: outside}
---
apiVersion: v1
kind: Pod
metadata: {name: outsider, namespace: outside}
spec:
  containers: [{name: shell, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Service
metadata: {name: plain, namespace: outside}
spec:
  selector: {app: plain}
  ports: [{name: http, port: 8080, targetPort: web}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: plain, namespace: outside}
spec:
  replicas: 2
  selector: {matchLabels: {app: plain}}
  template:
    metadata: {labels: {app: plain}}
    spec:
      containers:
      - name: web
        command: [python3, -m, http.server, "9090"]
        ports: [{name: web, containerPort: 9090}]
        readinessProbe: {httpGet: {path: /, port: web}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: tester, namespace: bookbuyer, labels: {app: tester}}
spec:
  serviceAccountName: bookbuyer
  containers: [{name: shell, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: thief-tester, namespace: bookthief, labels: {app: thief-tester}}
spec:
  serviceAccountName: bookthief
  containers: [{name: shell, command: [sleep, "3600"]}]
"""
PODS = [
    *SIDECARS,
    ("outside", "outsider"),
    ("bookbuyer", "tester"),
    ("bookthief", "thief-tester"),
]

SPLIT_COUNTER = """
import collections, json, sys, urllib.request
seen = collections.Counter()
for _ in range(int(sys.argv[1])):
    url = "http://bookstore.bookstore:14001/books-bought"
    req = urllib.request.Request(url, headers={"client-app": "e2e-split"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            seen[r.headers.get("identity", "?")] += 1
    except Exception as e:
        seen["error"] += 1
print(json.dumps(seen))
"""
PING = """
import socket, sys
try:
    s = socket.create_connection(("redis.bookwarehouse", 6379), timeout=3)
    s.settimeout(3)
    s.sendall(b"PING\\r\\n")
    print(s.recv(64).decode().strip() or "closed")
except OSError as e:
    print(type(e).__name__)
"""


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    manifests = tmp_path_factory.mktemp("manifests") / "demo"
    shutil.copytree(DEMO, manifests)
    (manifests / "90-e2e.yaml").write_text(EXTRA)
    m = LocalMesh(manifests)
    host_rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    try:
        m.up()
        m.wait_ready(PODS)
        yield m
    finally:
        m.down()
        assert m.leftovers() == []
        after = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
        strip = [line for line in after.splitlines() if not line.startswith("#")]
        assert strip == [line for line in host_rules.splitlines() if not line.startswith("#")]
        shutil.rmtree(m.state_dir, ignore_errors=True)


def split_weights_at_tester(m: LocalMesh) -> dict[str, int]:
    """The weights of the bookstore split in the tester's sidecar's routes (its config dump)."""
    dump = json.loads(
        m.exec(
            "bookbuyer",
            "tester",
            "curl",
            "-s",
            "http://127.0.0.1:15000/config_dump?resource=dynamic_route_configs",
        ).stdout
    )
    for rc in dump.get("configs", []):
        for vh in rc.get("route_config", {}).get("virtual_hosts", []):
            if vh["name"] == "outbound_virtual-host|bookstore.bookstore.svc.cluster.local":
                clusters = vh["routes"][0]["route"]["weighted_clusters"]["clusters"]
                return {c["name"].split("|")[0].rsplit("-", 1)[-1]: int(c["weight"]) for c in clusters}
    return {}


def seen_clients(m: LocalMesh) -> dict[str, int]:
    out: dict[str, int] = {}
    for prefix in ("bookstore-v1-", "bookstore-v2-"):
        for k, v in m.stats("bookstore", prefix).get("by_client", {}).items():
            out[k] = out.get(k, 0) + v
    return out


def py(m: LocalMesh, ns: str, pod: str, code: str, *args: str, timeout: float = 60) -> str:
    cp = m.exec(ns, pod, sys.executable, "-c", code, *args, timeout=timeout)
    return cp.stdout.strip()


def test_smi_allows_a_traffic_target_and_denies_the_rest(mesh: LocalMesh) -> None:
    mesh.wait(
        lambda: mesh.curl("bookbuyer", "tester", f"{BOOKSTORE}/books-bought") == 200, 30, "tester allowed"
    )
    thief = mesh.curl("bookthief", "thief-tester", f"{BOOKSTORE}/books-bought", "-H", "client-app: e2e-thief")
    assert thief == 0
    assert mesh.curl("bookbuyer", "tester", f"{BOOKSTORE}/books-bought", "-H", "client-app: e2e-buyer") == 200
    # Once the app has counted the later, allowed request, it would have counted the denied one too.
    mesh.wait(lambda: seen_clients(mesh).get("e2e-buyer") == 1, 10, "the app to count the allowed request")
    clients = seen_clients(mesh)
    assert "e2e-thief" not in clients and "bookthief" not in clients  # the server app never saw them

    # The demo apps agree: bookbuyer buys, bookthief only fails. Their counters are written periodically,
    # so wait until both have recorded an outcome.
    def both_counted() -> bool:
        buyer, thief = mesh.stats("bookbuyer", "bookbuyer-"), mesh.stats("bookthief", "bookthief-")
        return bool(buyer["success"] > 0 and thief["success"] + thief["failure"] > 0)

    mesh.wait(both_counted, 20, "bookbuyer and bookthief to record outcomes")
    thief_stats = mesh.stats("bookthief", "bookthief-")
    assert thief_stats["success"] == 0 and thief_stats["failure"] > 0


def test_http_route_group_allows_a_path_and_method_and_denies_others(mesh: LocalMesh) -> None:
    post = mesh.curl(
        "bookbuyer", "tester", f"{BOOKSTORE}/books-bought", "-X", "POST", "-H", "client-app: e2e-post"
    )
    assert post == 404  # no route for POST
    assert mesh.curl("bookbuyer", "tester", f"{BOOKSTORE}/admin", "-H", "client-app: e2e-admin") == 404
    assert mesh.curl("bookbuyer", "tester", f"{BOOKSTORE}/buy-a-book/new", "-H", "client-app: e2e-get") == 200
    mesh.wait(lambda: seen_clients(mesh).get("e2e-get") == 1, 10, "the app to count the allowed request")
    clients = seen_clients(mesh)
    assert "e2e-post" not in clients and "e2e-admin" not in clients


def test_tcp_route_governs_database_traffic(mesh: LocalMesh) -> None:
    assert py(mesh, "bookwarehouse", "bookwarehouse-", PING) == "+PONG"
    assert py(mesh, "bookbuyer", "tester", PING) != "+PONG"  # no TrafficTarget to redis
    before = mesh.stats("bookwarehouse", "bookwarehouse-")["success"]
    mesh.wait(
        lambda: mesh.stats("bookwarehouse", "bookwarehouse-")["success"] > before, 20, "restocks into Redis"
    )


def test_traffic_between_sidecars_is_mtls_on_the_wire(mesh: LocalMesh) -> None:
    handshakes = mesh.envoy_stat("bookstore", "bookstore-v1-", "listener.0.0.0.0_15003.ssl.handshake")
    # Everything bookstore-v1 sends and receives, captured on its pod's interface.
    sniffer = Sniffer(mesh.pod("bookstore", "bookstore-v1-")["netns"], "eth0").start()
    try:
        for _ in range(5):
            assert mesh.curl("bookbuyer", "tester", f"{BOOKSTORE}/books-bought") == 200
        # the capture thread has seen the five exchanges (a request and a response each)
        poll(lambda: sum(1 for s in sniffer.segments if s.payload and 14001 in (s.sport, s.dport)) >= 10, 5)
    finally:
        segments = sniffer.stop()
    pod_ips = {p["ip"] for p in mesh.status()["pods"]}
    mesh_traffic = [
        s
        for s in segments
        if s.payload and s.src in pod_ips and s.dst in pod_ips and 14001 in (s.sport, s.dport)
    ]
    assert mesh_traffic, "no traffic between pods on the bookstore port was captured"
    assert not any(b"HTTP/1.1" in s.payload or b"GET /" in s.payload for s in mesh_traffic)
    assert any(s.payload[:1] in (b"\x16", b"\x17") and s.payload[1:2] == b"\x03" for s in mesh_traffic)  # TLS
    # Every connection bookstore-v1's sidecar accepted from the mesh was a TLS handshake.
    inbound = "listener.0.0.0.0_15003."
    assert mesh.envoy_stat("bookstore", "bookstore-v1-", inbound + "ssl.handshake") >= max(handshakes, 1)


def test_a_plaintext_client_outside_the_mesh_cannot_reach_a_meshed_app(mesh: LocalMesh) -> None:
    pod_ip = mesh.pod("bookstore", "bookstore-v1-")["ip"]
    assert mesh.curl("outside", "outsider", "http://bookstore-v1.bookstore:14001/books-bought") == 0
    assert mesh.curl("outside", "outsider", f"http://{pod_ip}:14001/books-bought") == 0
    assert "outsider" not in seen_clients(mesh)


def test_cluster_ips_reach_ready_endpoints_outside_the_mesh(mesh: LocalMesh) -> None:
    """kube-proxy's job: a pod without a sidecar reaches a Service's ready endpoints through its ClusterIP;
    a meshed pod reaches the same (non-mesh) service through its sidecar's egress passthrough."""
    mesh.wait(
        lambda: len([p for p in mesh.pods("outside", "plain-") if p["ready"]]) == 2, 30, "two plain pods"
    )
    assert {mesh.curl("outside", "outsider", "http://plain.outside:8080/") for _ in range(6)} == {200}
    assert mesh.curl("outside", "outsider", "http://plain.outside.svc.cluster.local:8080/") == 200
    assert mesh.curl("bookbuyer", "tester", "http://plain.outside:8080/") == 200


def test_traffic_split_80_20(mesh: LocalMesh) -> None:
    split = "50-traffic-split.yaml"
    old = "{service: bookstore-v1, weight: 50}\n  - {service: bookstore-v2, weight: 50}"
    new = "{service: bookstore-v1, weight: 80}\n  - {service: bookstore-v2, weight: 20}"
    mesh.edit(split, old, new)
    try:
        mesh.wait(
            lambda: split_weights_at_tester(mesh) == {"v1": 80, "v2": 20},
            30,
            "the tester's sidecar to get 80/20",
        )
        counts = json.loads(py(mesh, "bookbuyer", "tester", SPLIT_COUNTER, "600", timeout=120))
        total = counts.get("bookstore-v1", 0) + counts.get("bookstore-v2", 0)
        assert total >= 500 and counts.get("error", 0) == 0, counts
        share = counts["bookstore-v1"] / total
        assert abs(share - 0.8) <= 0.06, counts  # 6 points is over 3 standard deviations at n = 500
    finally:
        mesh.edit(split, new, old)


def test_policy_edits_take_effect_without_restart(mesh: LocalMesh) -> None:
    policies = "40-policies.yaml"
    src = "  - {kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer}\n"
    gone = "  - {kind: ServiceAccount, name: nobody, namespace: bookbuyer}\n"
    text = (mesh.manifests / policies).read_text()
    pid = mesh.status()["pid"]
    (mesh.manifests / policies).write_text(text.replace(src, gone))
    try:
        mesh.wait(
            lambda: mesh.curl("bookbuyer", "tester", f"{BOOKSTORE}/books-bought") != 200, 20, "access revoked"
        )
    finally:
        (mesh.manifests / policies).write_text(text)
    mesh.wait(
        lambda: mesh.curl("bookbuyer", "tester", f"{BOOKSTORE}/books-bought") == 200, 20, "access restored"
    )
    assert mesh.status()["pid"] == pid  # the same control plane and runtime throughout


IN_PLACE_UPDATES = "listener_manager.listener_in_place_updated"
DRAINING = ("listener_manager.total_filter_chains_draining", "listener_manager.total_listeners_draining")


def test_scaling_a_deployment_and_adding_a_service_are_live(mesh: LocalMesh) -> None:
    deploy = "20-bookstore.yaml"
    old = "metadata: {name: bookstore-v2, namespace: bookstore}\nspec:\n  replicas: 1"
    new = "metadata: {name: bookstore-v2, namespace: bookstore}\nspec:\n  replicas: 2"
    mesh.edit(deploy, old, new)
    try:
        mesh.wait(
            lambda: len([p for p in mesh.pods("bookstore", "bookstore-v2-") if p["ready"]]) == 2,
            60,
            "two bookstore-v2 pods",
        )
    finally:
        mesh.edit(deploy, new, old)
    mesh.wait(lambda: len(mesh.pods("bookstore", "bookstore-v2-")) == 1, 60, "back to one bookstore-v2 pod")
    extra = mesh.manifests / "91-extra-service.yaml"
    extra.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: shop, namespace: bookstore}\nspec:\n"
        "  selector: {app: bookstore}\n  ports: [{name: http, port: 14001}]\n"
    )
    try:
        for ns, pod in (("outside", "outsider"), ("bookbuyer", "tester")):
            mesh.wait(
                lambda ns=ns, pod=pod: (
                    mesh.exec(ns, pod, "getent", "hosts", "shop.bookstore").returncode == 0
                ),
                20,
                f"the new service name resolves in {ns}/{pod}",
            )
        cp = mesh.exec("bookbuyer", "tester", "getent", "hosts", "shop.bookstore")
        assert cp.returncode == 0 and cp.stdout.split()[0].startswith("10.251.")
        mesh.wait(
            lambda: mesh.curl("bookbuyer", "tester", "http://shop.bookstore:14001/books-bought") == 200,
            20,
            "the new service reachable through the sidecars",
        )
        updates = mesh.envoy_stat("bookbuyer", "tester", IN_PLACE_UPDATES)
        draining = [mesh.envoy_stat("bookbuyer", "tester", d) for d in DRAINING]
    finally:
        extra.unlink()
    # The service leaves the outbound listener's filter chain matcher only: the HTTP chain it shared with
    # the other services on its port stays, so Envoy updates the listener in place and drains nothing
    # more (earlier tests' edits may still be draining).
    mesh.wait(
        lambda: mesh.envoy_stat("bookbuyer", "tester", IN_PLACE_UPDATES) > updates,
        20,
        "the outbound listener updated in place",
    )
    after = [mesh.envoy_stat("bookbuyer", "tester", d) for d in DRAINING]
    assert all(a <= b for a, b in zip(after, draining, strict=True)), (DRAINING, draining, after)


def test_permissive_mode_lets_every_meshed_pair_talk(mesh: LocalMesh) -> None:
    config = "00-mesh.yaml"
    mesh.edit(config, "enablePermissiveTrafficPolicyMode: false", "enablePermissiveTrafficPolicyMode: true")
    try:
        mesh.wait(
            lambda: mesh.curl("bookthief", "thief-tester", f"{BOOKSTORE}/books-bought") == 200,
            20,
            "bookthief allowed",
        )
        assert mesh.curl("bookbuyer", "tester", f"{BOOKSTORE}/books-bought") == 200
        assert (
            mesh.curl("bookthief", "thief-tester", "http://bookwarehouse.bookwarehouse:14001/healthz/ready")
            == 200
        )
        assert py(mesh, "bookbuyer", "tester", PING) == "+PONG"
    finally:
        mesh.edit(
            config, "enablePermissiveTrafficPolicyMode: true", "enablePermissiveTrafficPolicyMode: false"
        )
    mesh.wait(
        lambda: mesh.curl("bookthief", "thief-tester", f"{BOOKSTORE}/books-bought") == 0,
        20,
        "bookthief denied again",
    )
