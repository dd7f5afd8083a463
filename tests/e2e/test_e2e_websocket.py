"""A WebSocket through two sidecars (issue item: upgrades as upstream's sidecars pass them): the client's
Upgrade request crosses its sidecar and the server's, the server answers 101 with the right
Sec-WebSocket-Accept, and frames flow both ways on the upgraded connection (mTLS between the sidecars)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import client_server, mesh_config, small_mesh

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

# A minimal RFC 6455 echo server and client (text frames under 126 bytes), with no library.
SERVER = """
import base64, hashlib, socketserver
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
class H(socketserver.StreamRequestHandler):
    def handle(self):
        headers = {}
        line = self.rfile.readline()
        while line not in (b"\\r\\n", b""):
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
            line = self.rfile.readline()
        if headers.get("upgrade", "").lower() != "websocket":
            self.wfile.write(b"HTTP/1.1 400 Bad Request\\r\\ncontent-length: 0\\r\\n\\r\\n")
            return
        digest = hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()
        accept = base64.b64encode(digest).decode()
        answer = ("HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\n"
                  "Connection: Upgrade\\r\\nSec-WebSocket-Accept: " + accept + "\\r\\n\\r\\n")
        self.wfile.write(answer.encode())
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            n = head[1] & 0x7F
            mask = self.rfile.read(4)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(n)))
            reply = b"echo:" + data
            self.wfile.write(bytes([0x81, len(reply)]) + reply)
            self.wfile.flush()
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", 8080), H).serve_forever()
"""
CLIENT = """
import base64, hashlib, os, socket, sys
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
key = base64.b64encode(os.urandom(16)).decode()
s = socket.create_connection(("server.server.svc.cluster.local", 8080), timeout=5)
s.sendall(("GET /chat HTTP/1.1\\r\\nHost: server.server.svc.cluster.local:8080\\r\\n"
           "Upgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Key: " + key +
           "\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n").encode())
f = s.makefile("rb")
status = f.readline().decode().strip()
headers = {}
line = f.readline()
while line not in (b"\\r\\n", b""):
    k, _, v = line.decode().partition(":")
    headers[k.strip().lower()] = v.strip()
    line = f.readline()
expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
replies = []
for word in ("hello", "mesh"):
    mask = os.urandom(4)
    data = word.encode()
    s.sendall(bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
    head = f.read(2)
    replies.append(f.read(head[1] & 0x7F).decode())
print(status, headers.get("sec-websocket-accept") == expected, *replies)
"""
MESH = mesh_config(traffic={"enablePermissiveTrafficPolicyMode": True}) + "---\n" + client_server(SERVER)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "ws", MESH, [("server", "server"), ("client", "client")]) as m:
        yield m


def test_a_websocket_crosses_two_sidecars(mesh: LocalMesh) -> None:
    want = "HTTP/1.1 101 Switching Protocols True echo:hello echo:mesh"
    out = [""]

    def upgraded() -> bool:
        out[0] = mesh.exec("client", "client", "python3", "-c", CLIENT).stdout.strip()
        return out[0] == want

    mesh.wait(upgraded, 60, "the WebSocket upgraded and echoing")
    # the upgraded connection went sidecar to sidecar: the server's inbound listener saw it over mTLS
    stats = mesh.envoy_stats("server", "server", r"^listener\.0\.0\.0\.0_15003\.ssl\.handshake$")
    assert stats.get("listener.0.0.0.0_15003.ssl.handshake", 0) >= 1
    upgrades = mesh.envoy_stats("client", "client", r"downstream_cx_upgrades_total$")
    assert sum(upgrades.values()) >= 1, upgrades
