"""OSM's interception rules, loaded into a real network namespace, redirect what upstream redirects."""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import Iterator

import pytest

from osm.injector.iptables import IptablesConfig, iptables_rules
from osm.testing.netns import NetNS, have_netns_tools, iptables_restore, python_for_uid, veth_pair
from osm.testing.wait import wait_until

pytestmark = pytest.mark.netns

CLIENT_IP = "10.231.7.1"
SERVER_IP = "10.231.7.2"
APP_PORT = 18080
PROXY_UID = 1500

# Connect, send an HTTP/1.0 request, print "OK <first response line>" or "REFUSED".
CLIENT = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    s = socket.create_connection((host, port), timeout=3)
except ConnectionRefusedError:
    print("REFUSED")
    sys.exit(0)
s.settimeout(3)
s.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print("OK", data.split(b"\r\n", 1)[0].decode(errors="replace"))
"""

# Stand-in for Envoy's listener: accept one connection, answer with its SO_ORIGINAL_DST.
LISTENER = r"""
import socket, struct, sys
SO_ORIGINAL_DST = 80
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1])))
ls.listen(8)
print("READY", flush=True)
ls.settimeout(15)
conn, _ = ls.accept()
raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
(port,) = struct.unpack("!H", raw[2:4])
msg = "ORIG %s:%d" % (socket.inet_ntoa(raw[4:8]), port)
conn.settimeout(5)
conn.sendall(msg.encode() + b"\r\n")
conn.shutdown(socket.SHUT_WR)
while conn.recv(65536):  # drain the request, or closing with unread data would reset the connection
    pass
conn.close()
print(msg, flush=True)
"""

# Exit 0 once something accepts on host:port (polled by the test, bounded).
PROBE = r"""
import socket, sys
socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
"""


def _stop(proc: subprocess.Popen[str] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no output from pid {proc.pid} within {timeout}s")
    return proc.stdout.readline().strip()


def _wait_listening(ns: NetNS, host: str, port: int, timeout: float = 10.0) -> None:
    wait_until(
        lambda: ns.run(sys.executable, "-c", PROBE, host, str(port), check=False, timeout=5).returncode == 0,
        timeout,
        f"{host}:{port} in {ns.name} listening",
        interval=0.1,
    )


def _connect(ns: NetNS, host: str, port: int, uid: int | None = None) -> str:
    python = python_for_uid(uid) if uid is not None else sys.executable
    cp = ns.run(python, "-I", "-c", CLIENT, host, str(port), uid=uid, timeout=15)
    return cp.stdout.strip()


def _start_listener(ns: NetNS, port: int) -> subprocess.Popen[str]:
    proc = ns.popen(sys.executable, "-I", "-c", LISTENER, str(port), stdout=subprocess.PIPE, text=True)
    assert _read_line(proc, 10) == "READY"
    return proc


@pytest.fixture
def namespaces() -> Iterator[tuple[NetNS, NetNS]]:
    reason = have_netns_tools()
    if reason:
        pytest.skip(reason)
    client, server = NetNS(), NetNS()
    try:
        veth_pair(client, server, CLIENT_IP, SERVER_IP)
        iptables_restore(client, iptables_rules(IptablesConfig()))
        yield client, server
    finally:
        client.delete()
        server.delete()


def test_outbound_is_redirected_except_for_the_proxy_uid(namespaces: tuple[NetNS, NetNS]) -> None:
    client, server = namespaces
    http: subprocess.Popen[str] | None = None
    listener: subprocess.Popen[str] | None = None
    try:
        http = server.popen(
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            SERVER_IP,
            str(APP_PORT),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        _wait_listening(server, SERVER_IP, APP_PORT)

        # The app (uid 0) is redirected to 15001, where nothing listens yet.
        assert _connect(client, SERVER_IP, APP_PORT) == "REFUSED"
        # The proxy's own traffic (uid 1500) goes straight through.
        assert _connect(client, SERVER_IP, APP_PORT, uid=PROXY_UID).startswith("OK HTTP/1.0 200")

        # With a stand-in on 15001, the app's connection lands there and keeps its original destination.
        listener = _start_listener(client, 15001)
        assert _connect(client, SERVER_IP, APP_PORT) == f"OK ORIG {SERVER_IP}:{APP_PORT}"
        out, _ = listener.communicate(timeout=10)
        assert out.strip() == f"ORIG {SERVER_IP}:{APP_PORT}"
    finally:
        _stop(listener)
        _stop(http)


def test_inbound_is_redirected_except_for_skipped_ports(namespaces: tuple[NetNS, NetNS]) -> None:
    client, server = namespaces
    listener: subprocess.Popen[str] | None = None
    try:
        listener = _start_listener(client, 15003)
        # Metrics port 15010 is never redirected: nothing listens on it, so it is refused.
        assert _connect(server, CLIENT_IP, 15010) == "REFUSED"
        # Any other inbound TCP port reaches the inbound listener, original destination intact.
        assert _connect(server, CLIENT_IP, APP_PORT) == f"OK ORIG {CLIENT_IP}:{APP_PORT}"
        out, _ = listener.communicate(timeout=10)
        assert out.strip() == f"ORIG {CLIENT_IP}:{APP_PORT}"
    finally:
        _stop(listener)


def test_rules_load_only_into_the_namespace(namespaces: tuple[NetNS, NetNS]) -> None:
    client, server = namespaces
    rules = client.run("iptables", "-t", "nat", "-S", "OSM_PROXY_OUTBOUND").stdout
    assert "-A OSM_PROXY_OUTBOUND -j OSM_PROXY_OUT_REDIRECT" in rules
    assert server.run("iptables", "-t", "nat", "-S", "OSM_PROXY_OUTBOUND", check=False).returncode != 0
