"""Upstream's e2e_grpc_secure_origination_test.go on the local runtime: the gRPC server does its own TLS
(a self-signed certificate, as grpcbin's port 9001), its Service port says `appProtocol: tcp`, and the
client does TLS without checking the certificate (grpcurl -insecure). The sidecars carry the app's TLS as
TCP inside mTLS, allowed by a TCPRoute of port 9001 and a TrafficTarget: the call succeeds 5 times in a
row; with the TrafficTarget and the TCPRoute deleted it fails 5 times in a row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import SELF_SIGNED, client_server, mesh_config, small_mesh, tcp_allow
from tests.e2e.test_e2e_grpc_client_server import call

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

SERVER = (
    SELF_SIGNED
    + """
import grpc
from concurrent import futures
def say(request, context):
    return b"hello " + request
handler = grpc.method_handlers_generic_handler(
    "hello.HelloService", {"SayHello": grpc.unary_unary_rpc_method_handler(say)})
server = grpc.server(futures.ThreadPoolExecutor(4))
server.add_generic_rpc_handlers((handler,))
chain = open(pem, "rb").read()
cert = chain[: chain.index(b"-----END CERTIFICATE-----") + 26]
key = chain[len(cert):]
server.add_secure_port("0.0.0.0:9001", grpc.ssl_server_credentials([(key, cert)]))
server.start()
server.wait_for_termination()
"""
)
# grpcurl -insecure: TLS, whatever certificate the server shows (fetched first, then trusted)
CLIENT = """
import grpc, ssl
target = ("server.server.svc.cluster.local", 9001)
try:
    pem = ssl.get_server_certificate(target, timeout=5).encode()
except OSError as e:
    print(type(e).__name__)
    raise SystemExit(0)
creds = grpc.ssl_channel_credentials(root_certificates=pem)
options = [("grpc.ssl_target_name_override", "localhost")]
with grpc.secure_channel("%s:%d" % target, creds, options) as channel:
    say = channel.unary_unary("/hello.HelloService/SayHello")
    try:
        print(say(b"mesh", timeout=5).decode())
    except grpc.RpcError as e:
        print(e.code().name)
"""
MESH = (
    mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False})
    + "---\n"
    + client_server(SERVER, port=9001, port_name="api", app_protocol="tcp")
)
ALLOW_PORT = tcp_allow(("client", "client"), ("server", "server"), "routes", [9001])


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "grpc-secure", MESH, [("server", "server"), ("client", "client")]) as m:
        yield m


def test_grpc_traffic_tls_from_the_app_carried_as_tcp_inside_mtls(mesh: LocalMesh) -> None:
    (mesh.manifests / "policy.yaml").write_text(ALLOW_PORT)
    mesh.wait_repeated(lambda: call(mesh, CLIENT) == "hello mesh", "TLS gRPC calls succeed")
    (mesh.manifests / "policy.yaml").write_text("")
    mesh.wait_repeated(lambda: call(mesh, CLIENT) != "hello mesh", "TLS gRPC calls fail without the policy")
