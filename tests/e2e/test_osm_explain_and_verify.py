"""`osm policy explain`, `osm policy check-pods`, `osm verify connectivity` and `osm proxy get` on the
local runtime, each explanation checked against real traffic through real sidecars: allowed (200), a
route the RBAC denies (403), a path no route matches (404), a meshed client no TrafficTarget names
(refused: exit 7), a client outside the mesh (its plaintext dropped: exit 56)."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from envoy.admin.v3 import config_dump_pb2
from google.protobuf import json_format

import osm.envoy.generator
from osm.cli.main import cli
from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import HTTP_200, mesh_config, namespace, pod, service_of, small_mesh, yaml_docs
from tests.e2e.test_e2e_smi_traffic_target import route_policy

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

MESH = (
    mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False})
    + "---\n"
    + yaml_docs(
        namespace("server"),
        namespace("client1"),
        namespace("client2"),
        namespace("stranger"),
        namespace("outsider", meshed=False),
        service_of("server", "server", {"app": "server"}, 80),
        pod("server", "server", ["python3", "-c", HTTP_200.replace("PORT", "80")], labels={"app": "server"}),
        *(pod(ns, ns, labels={"app": ns}) for ns in ("client1", "client2", "stranger", "outsider")),
    )
    + route_policy("client1", "/anything")
    + route_policy("client2", "/foo")
)
PODS = [(ns, ns) for ns in ("server", "client1", "client2", "stranger", "outsider")]


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "explain", MESH, PODS) as m:
        m.wait_repeated(
            lambda: m.request("client1", "client1", "http://server.server/anything") == (0, 200),
            "policy in effect",
        )
        yield m


def osm(m: LocalMesh, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--state-dir", str(m.state_dir)], catch_exceptions=False)


def explained(m: LocalMesh, client: str, path: str) -> dict[str, object]:
    r = osm(m, "policy", "explain", f"{client}/{client}", "server/server", "--path", path, "-o", "json")
    assert r.exit_code == 0, r.output
    out: dict[str, object] = json.loads(r.output)
    return out


@pytest.mark.parametrize(
    ("client", "path", "allowed", "status", "observed"),
    [
        ("client1", "/anything", True, 200, (0, 200)),
        ("client2", "/anything", False, 403, (0, 403)),
        ("client2", "/nowhere", False, 404, (0, 404)),
        ("stranger", "/anything", False, None, (7, 0)),
        ("outsider", "/anything", False, None, (56, 0)),
    ],
)
def test_the_explanation_agrees_with_real_traffic(
    mesh: LocalMesh, client: str, path: str, allowed: bool, status: int | None, observed: tuple[int, int]
) -> None:
    e = explained(mesh, client, path)
    assert (e["allowed"], e["status"]) == (allowed, status), e
    assert mesh.request(client, client, f"http://server.server{path}") == observed
    if client == "stranger":
        assert "no TrafficTarget names ServiceAccount stranger/stranger" in str(e["reason"])
        assert e["objects"]["traffic_targets_allowing"] == []  # type: ignore[index]
    if client == "client2" and status == 403:
        assert "RBAC" in str(e["reason"]) or "rbac" in " ".join(map(str, e["hops"])).lower(), e  # type: ignore[arg-type]
    if client == "outsider":
        assert "has no sidecar" in str(e["reason"])


def test_verify_connectivity_passes_for_an_allowed_pair_and_names_what_is_missing_otherwise(
    mesh: LocalMesh,
) -> None:
    ok = osm(
        mesh,
        "verify",
        "connectivity",
        "--from-pod",
        "client1/client1",
        "--to-pod",
        "server/server",
        "--path",
        "/anything",
    )
    assert ok.exit_code == 0 and "[+] client1/client1 can talk to server/server" in ok.output
    denied = osm(
        mesh, "verify", "connectivity", "--from-pod", "stranger/stranger", "--to-pod", "server/server"
    )
    assert denied.exit_code == 1
    assert "no TrafficTarget names ServiceAccount stranger/stranger" in denied.output
    checked = osm(mesh, "policy", "check-pods", "client1/client1", "server/server")
    assert checked.exit_code == 0 and "server/client1-server" in checked.output
    assert osm(mesh, "policy", "check-pods", "stranger/stranger", "server/server").exit_code == 1


def test_proxy_get_reads_the_sidecars_admin_interface(mesh: LocalMesh, tmp_path: Path) -> None:
    out = tmp_path / "dump.json"
    r = osm(mesh, "proxy", "get", "config_dump", "client1", "-n", "client1", "-f", str(out))
    assert r.exit_code == 0, r.output
    dump = json_format.ParseDict(
        json.loads(out.read_text()), config_dump_pb2.ConfigDump(), ignore_unknown_fields=True
    )
    assert len(dump.configs) >= 5  # bootstrap, clusters, endpoints, listeners, routes, secrets
    assert osm(mesh, "proxy", "get", "ready", "client1", "-n", "client1").output.strip() == "LIVE"
    stats = osm(mesh, "proxy", "get", "stats", "client1", "-n", "client1").output
    assert "cluster_manager.cds.update_success" in stats
    missing = osm(mesh, "proxy", "get", "ready", "outsider", "-n", "outsider")
    assert missing.exit_code != 0 and "has no sidecar" in missing.output


def test_verify_control_plane(mesh: LocalMesh) -> None:
    r = osm(mesh, "verify", "control-plane")
    assert r.exit_code == 0, r.output
    assert "[+] controller process" in r.output and "[+] /health/ready: ok" in r.output
    assert "[+] ADS (xDS) port" in r.output


def test_a_bug_report_holds_logs_dumps_stats_and_policies_but_no_key(mesh: LocalMesh, tmp_path: Path) -> None:
    out = tmp_path / "report.tar.gz"
    r = osm(mesh, "support", "bug-report", "-o", str(out))
    assert r.exit_code == 0, r.output
    with tarfile.open(out) as tar:
        files = {m.name.removeprefix("osm-bug-report/"): tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    for name in ("status.json", "logs/controller.log", "logs/node.log", "policies.json"):
        assert name in files
    assert b"client1-server" in files["policies.json"]
    dump = json.loads(files["pods/client1/client1/config_dump.json"])
    assert {c["@type"].rsplit(".", 1)[1] for c in dump["configs"]} >= {
        "ClustersConfigDump",
        "ListenersConfigDump",
    }
    assert b"cluster_manager.cds.update_success" in files["pods/client1/client1/stats.txt"]
    assert (
        "pods/outsider/outsider/outsider.log" in files
        and "pods/outsider/outsider/config_dump.json" not in files
    )
    assert not [name for name, data in files.items() if b"PRIVATE KEY-----" in data]


def test_policy_check_conflicts_names_ingress_backends_claiming_one_backend(mesh: LocalMesh) -> None:
    assert (
        "No conflicts among IngressBackend resources in namespace server"
        in osm(mesh, "policy", "check-conflicts", "IngressBackend", "-n", "server").output
    )
    two = "".join(
        f"""---
apiVersion: policy.openservicemesh.io/v1alpha1
kind: IngressBackend
metadata: {{name: {name}, namespace: server}}
spec:
  backends: [{{name: server, port: {{number: 80, protocol: http}}}}]
  sources: [{{kind: IPRange, name: 10.250.0.0/16}}]
"""
        for name in ("first", "second")
    )
    (mesh.manifests / "ingress.yaml").write_text(two)
    try:
        mesh.wait(
            lambda: (
                "IngressBackend server/second: backend server port 80 conflicts with IngressBackend "
                "server/first"
                in osm(mesh, "policy", "check-conflicts", "IngressBackend", "-n", "server").output
            ),
            20,
            "the conflict reported",
        )
    finally:
        (mesh.manifests / "ingress.yaml").unlink()
