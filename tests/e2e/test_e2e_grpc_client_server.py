"""Upstream's e2e_grpc_client_server_test.go on the local runtime: a gRPC client calls a gRPC server
(Service port `grpc`, appProtocol detected from its name) through both sidecars, in SMI mode with a
TrafficTarget and an HTTPRouteGroup allowing the call; the call succeeds, repeatedly. Beyond upstream's
case: without the TrafficTarget the call fails (UNAVAILABLE: the client's sidecar has no route to the
server)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import client_server, mesh_config, small_mesh

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

# gRPC without generated code: a generic handler of raw bytes
SERVER = """
import grpc
from concurrent import futures
def say(request, context):
    return b"hello " + request
handler = grpc.method_handlers_generic_handler(
    "hello.HelloService", {"SayHello": grpc.unary_unary_rpc_method_handler(say)})
server = grpc.server(futures.ThreadPoolExecutor(4))
server.add_generic_rpc_handlers((handler,))
server.add_insecure_port("0.0.0.0:9000")
server.start()
server.wait_for_termination()
"""
CLIENT = """
import grpc
with grpc.insecure_channel("server.server.svc.cluster.local:9000") as channel:
    say = channel.unary_unary("/hello.HelloService/SayHello")
    try:
        print(say(b"mesh", timeout=5).decode())
    except grpc.RpcError as e:
        print(e.code().name)
"""
MESH = (
    mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False})
    + "---\n"
    + client_server(SERVER, port=9000, port_name="grpc")
)
POLICY = """
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: grpc-routes, namespace: server}
spec:
  matches: [{name: hello, pathRegex: "/hello.HelloService/.*", methods: [POST]}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: client-to-server, namespace: server}
spec:
  destination: {kind: ServiceAccount, name: server, namespace: server}
  rules: [{kind: HTTPRouteGroup, name: grpc-routes, matches: [hello]}]
  sources: [{kind: ServiceAccount, name: client, namespace: client}]
"""


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(
        tmp_path_factory, "grpc", MESH + POLICY, [("server", "server"), ("client", "client")]
    ) as m:
        yield m


def call(m: LocalMesh, client: str = CLIENT) -> str:
    """What the gRPC client (Python source `client`) prints, run in the client pod."""
    # gRPC's own DNS resolver skips /etc/hosts, where the local runtime puts Service names
    cmd = ["env", "GRPC_DNS_RESOLVER=native", sys.executable, "-c", client]
    return m.exec("client", "client", *cmd, timeout=30).stdout.strip()


def repeated(m: LocalMesh, want: str) -> None:
    m.wait_repeated(lambda: call(m) == want, f"gRPC calls: {want}")


def test_grpc_traffic_from_client_to_server(mesh: LocalMesh) -> None:
    repeated(mesh, "hello mesh")
    (mesh.manifests / "mesh.yaml").write_text(MESH)
    repeated(mesh, "UNAVAILABLE")
    (mesh.manifests / "mesh.yaml").write_text(MESH + POLICY)
    repeated(mesh, "hello mesh")
