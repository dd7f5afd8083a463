"""Envoy as uid 1500 inside a namespace with OSM's rules: the app's outbound traffic goes through it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from osm.injector.iptables import IptablesConfig, iptables_rules
from osm.testing.envoy import EnvoyError, EnvoyProcess, envoy_binary, next_base_id
from osm.testing.netns import NetNS, have_netns_tools, iptables_restore, veth_pair

pytestmark = [pytest.mark.netns, pytest.mark.envoy]

CLIENT_IP = "10.231.9.1"
SERVER_IP = "10.231.9.2"
APP_PORT = 18080
PROXY_UID = 1500

INTERCEPT_CONFIG = {
    "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}},
    "static_resources": {
        "listeners": [
            {
                "name": "outbound",
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15001}},
                "listener_filters": [
                    {
                        "name": "envoy.filters.listener.original_dst",
                        "typed_config": {
                            "@type": "type.googleapis.com/"
                            "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
                        },
                    }
                ],
                "filter_chains": [
                    {
                        "filters": [
                            {
                                "name": "envoy.filters.network.tcp_proxy",
                                "typed_config": {
                                    "@type": "type.googleapis.com/"
                                    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                                    "stat_prefix": "outbound_tcp",
                                    "cluster": "passthrough",
                                },
                            }
                        ]
                    }
                ],
            }
        ],
        "clusters": [
            {
                "name": "passthrough",
                "type": "ORIGINAL_DST",
                "lb_policy": "CLUSTER_PROVIDED",
                "connect_timeout": "1s",
            }
        ],
    },
}

CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
s.settimeout(3)
s.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.split(b"\r\n", 1)[0].decode(errors="replace"))
"""


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory the proxy uid can read and write (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="osmt-envoy-"))
    try:
        os.chown(path, PROXY_UID, PROXY_UID)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_outbound_through_envoy_as_proxy_uid(workdir: Path) -> None:
    reason = have_netns_tools()
    if reason:
        pytest.skip(reason)
    try:
        envoy_binary()
    except EnvoyError as e:
        pytest.skip(str(e))
    client, server = NetNS(), NetNS()
    http: subprocess.Popen[bytes] | None = None
    envoy: EnvoyProcess | None = None
    try:
        veth_pair(client, server, CLIENT_IP, SERVER_IP)
        iptables_restore(client, iptables_rules(IptablesConfig()))
        http = server.popen(
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            SERVER_IP,
            str(APP_PORT),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        config = workdir / "envoy.json"
        config.write_text(json.dumps(INTERCEPT_CONFIG))
        envoy = EnvoyProcess(
            config, 15000, next_base_id(), workdir / "envoy.log", uid=PROXY_UID, netns=client.name
        )
        envoy.start()
        envoy.wait_ready(timeout=15)

        deadline = time.monotonic() + 10
        while True:  # the backend may still be starting: retry, bounded
            cp = client.run(
                sys.executable, "-I", "-c", CLIENT, SERVER_IP, str(APP_PORT), check=False, timeout=15
            )
            # Until the backend listens, Envoy accepts the intercepted connection and closes it empty.
            if cp.stdout.strip() or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert cp.stdout.strip().startswith("HTTP/1.0 200"), cp.stderr
        envoy.wait_for(
            lambda: envoy is not None and envoy.stat("listener.0.0.0.0_15001.downstream_cx_total") >= 1,
            timeout=5,
            what="the outbound listener to count the connection",
        )
        assert envoy.stat("cluster.passthrough.upstream_cx_total") >= 1
    finally:
        if envoy is not None:
            envoy.stop()
        if http is not None and http.poll() is None:
            http.terminate()
            http.wait(timeout=5)
        client.delete()
        server.delete()
