"""Real Envoy: an upstream cluster trusts the shared mesh root and still accepts only the identities that
back its service. Two generated clusters point at one TLS server presenting `web.shop`'s certificate;
the cluster of a service backed by `web.shop` carries traffic, the one backed by another identity does
not complete the handshake."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from osm.certificate.tresor import TresorCA
from osm.envoy.cds import clusters
from osm.envoy.common import socket_address
from osm.envoy.lds.outbound import tcp_proxy_filter
from osm.envoy.sds import secrets
from osm.envoy.sds.secrets import CertMaterial
from osm.models.identity import ServiceIdentity
from osm.models.service import MeshService
from osm.models.trafficpolicy import TLSSettings, UpstreamCluster
from osm.testing.envoy import EnvoyError, EnvoyProcess, envoy_binary, free_port, next_base_id

pytestmark = pytest.mark.envoy

TD = "cluster.local"
CLIENT = ServiceIdentity("front", "client")
SERVER = ServiceIdentity("shop", "web")
TIMEOUT = 10.0


def _json(msg: Any) -> dict[str, Any]:
    import osm.envoy.generator  # noqa: F401  (registers the packed message types)

    out: dict[str, Any] = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return out


def _static_refs(node: Any) -> None:
    """Point the generated SDS references at static secrets: drop their ADS config source."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "tls_certificate_sds_secret_configs":
                for ref in v:
                    ref.pop("sds_config")
            elif k == "validation_context_sds_secret_config":
                v.pop("sds_config")
            else:
                _static_refs(v)
    elif isinstance(node, list):
        for x in node:
            _static_refs(x)


def _cluster(name: str, peers: tuple[ServiceIdentity, ...], server_port: int) -> dict[str, Any]:
    """The generated cluster for service shop/<name>, with a static endpoint instead of EDS."""
    svc = MeshService("shop", name, server_port, server_port, "tcp")
    c = _json(
        clusters.upstream_cluster(
            UpstreamCluster(svc, peers, ()), CLIENT, TLSSettings("TLSv1_2", "TLSv1_3"), TD
        )
    )
    c["type"] = "STATIC"
    del c["eds_cluster_config"]
    c["load_assignment"] = {
        "cluster_name": c["name"],
        "endpoints": [
            {"lb_endpoints": [{"endpoint": {"address": _json(socket_address("127.0.0.1", server_port))}}]}
        ],
    }
    _static_refs(c)
    return c


def _listener(port: int, cluster: str) -> dict[str, Any]:
    return {
        "name": f"to-{port}",
        "address": _json(socket_address("127.0.0.1", port)),
        "filter_chains": [{"filters": [_json(tcp_proxy_filter("t", cluster))]}],
    }


class EchoServer:
    """Echoes one message per mTLS connection, presenting `cert` and requiring a mesh client cert."""

    def __init__(self, cert: tuple[Path, Path], ca_pem: bytes) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*cert)
        self.ctx.load_verify_locations(cadata=ca_pem.decode())
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.set_alpn_protocols(["osm"])
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            try:
                conn.settimeout(TIMEOUT)
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(tls.recv(1024))
            except (OSError, ssl.SSLError):
                conn.close()  # a client that rejects our certificate ends the handshake

    def __enter__(self) -> EchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(TIMEOUT)
        self.sock.close()


def _exchange(port: int) -> bytes:
    """Send one message through Envoy's listener; what comes back before the connection closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(b"ping")
        got = b""
        while True:
            try:
                chunk = s.recv(1024)
            except ConnectionResetError:
                return got
            if not chunk:
                return got
            got += chunk


def test_upstream_cluster_accepts_only_the_identities_backing_its_service(tmp_path: Path) -> None:
    try:
        envoy_binary()
    except EnvoyError as e:
        pytest.skip(str(e))
    now = datetime.now(UTC)
    ca = TresorCA.create(now=now)
    server_cert = ca.issue(SERVER.principal(TD), timedelta(hours=1), now=now)
    client_cert = ca.issue(CLIENT.principal(TD), timedelta(hours=1), now=now)
    (tmp_path / "server.pem").write_bytes(server_cert.cert_pem)
    (tmp_path / "server.key").write_bytes(server_cert.key_pem)
    material = CertMaterial(client_cert.cert_pem, client_cert.key_pem, ca.trust_bundle_pem)

    admin, allowed_port, denied_port = free_port(), free_port(), free_port()
    with EchoServer((tmp_path / "server.pem", tmp_path / "server.key"), ca.trust_bundle_pem) as server:
        allowed = _cluster("web", (SERVER,), server.port)
        # backed by another identity: the same server must not pass as this service
        denied = _cluster("web-admin", (ServiceIdentity("shop", "admin"),), server.port)
        config = {
            "admin": {"address": _json(socket_address("127.0.0.1", admin))},
            "static_resources": {
                "listeners": [
                    _listener(allowed_port, allowed["name"]),
                    _listener(denied_port, denied["name"]),
                ],
                "clusters": [allowed, denied],
                "secrets": [
                    _json(secrets.service_cert_secret(CLIENT, material)),
                    _json(secrets.outbound_root_secret(ca.trust_bundle_pem)),
                ],
            },
        }
        path = tmp_path / "envoy.json"
        path.write_text(json.dumps(config))
        envoy = EnvoyProcess(path, admin, next_base_id(), tmp_path / "envoy.log")
        try:
            envoy.start()
            envoy.wait_ready(timeout=15)
            assert _exchange(allowed_port) == b"ping"
            assert _exchange(denied_port) == b""
            envoy.wait_for(
                lambda: sum(v for k, v in envoy.stats().items() if k.endswith("ssl.fail_verify_san")) >= 1,
                timeout=TIMEOUT,
                what="a SAN verification failure",
            )
            stats = envoy.stats()
            assert [k for k, v in stats.items() if k.endswith("ssl.fail_verify_san") and v] == [
                f"cluster.{denied['name']}.ssl.fail_verify_san"
            ]
            assert stats[f"cluster.{allowed['name']}.ssl.handshake"] >= 1
        finally:
            envoy.stop()
