"""The controller's debug server: it comes and goes with MeshConfig observability.enableDebugServer,
shows a real Envoy connected, that proxy's config as an Envoy ConfigDump, certificates, xDS requests,
policies and MeshConfig, profiles the process on demand, and never shows a private key."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from envoy.admin.v3 import config_dump_pb2
from google.protobuf import json_format

from osm.cmd.controller import Settings
from osm.testing.controlplane import RunningController, start_sidecar
from osm.testing.wait import wait_until

pytestmark = pytest.mark.envoy
EXAMPLE = Path(__file__).parents[2] / "examples" / "bookstore"
ENDPOINTS = (
    "/debug",
    "/debug/proxy",
    "/debug/certs",
    "/debug/xds",
    "/debug/policies",
    "/debug/config",
    "/debug/namespaces",
    "/debug/feature-flags",
)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=40) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def refused(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/debug", timeout=2)
    except urllib.error.URLError as e:
        return isinstance(e.reason, ConnectionRefusedError)
    return False


def test_the_debug_server_follows_the_mesh_config_and_explains_the_proxies(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(EXAMPLE, manifests)
    mesh = manifests / "00-mesh.yaml"
    off = mesh.read_text()
    on = off.replace("  certificate:\n", "  observability: {enableDebugServer: true}\n  certificate:\n")
    assert on != off
    port = 0
    settings = Settings(
        local_dir=manifests,
        state_dir=tmp_path / "state",
        ads_address="127.0.0.1:0",
        debug_address="127.0.0.1:0",
        watch=True,
    )
    with RunningController(settings) as ctrl:
        c = ctrl.controller
        assert c.debug is None  # off until the MeshConfig says so
        proc = start_sidecar(ctrl, "bookbuyer", "bookbuyer", tmp_path)
        try:
            proc.wait_ready(20)
            for _ in range(2):  # upstream's case: on, off, on, off
                mesh.write_text(on)
                wait_until(lambda: c.debug is not None, 20, "the debug server started")
                assert c.debug is not None
                port = c.debug.port
                wait_until(lambda p=port: get(p, "/debug")[0] == 200, 10, "the debug server answers")
                mesh.write_text(off)
                wait_until(lambda p=port: c.debug is None and refused(p), 20, "the debug server stopped")
            mesh.write_text(on)
            wait_until(lambda: c.debug is not None, 20, "the debug server started")
            assert c.debug is not None
            port = c.debug.port

            status, body = get(port, "/debug/proxy")
            assert status == 200
            [proxy] = json.loads(body)
            assert (proxy["pod"], proxy["identity"], proxy["xds"]) == (
                "bookbuyer/bookbuyer",
                "bookbuyer.bookbuyer",
                "sotw",
            )
            status, body = get(port, f"/debug/proxy?uuid={proxy['uuid']}")
            assert status == 200
            dump = json_format.ParseDict(json.loads(body), config_dump_pb2.ConfigDump())  # a valid ConfigDump
            assert len(dump.configs) == 5
            served = {c["cluster"]["name"] for c in json.loads(body)["configs"][0]["dynamic_active_clusters"]}
            envoy_has = {
                c["cluster"]["name"]
                for conf in proc.config_dump()["configs"]
                for c in conf.get("dynamic_active_clusters", [])
            }
            assert (
                served == envoy_has and "bookstore/bookstore-v1|14001" in served
            )  # what it serves, Envoy has
            assert get(port, "/debug/proxy?uuid=nope")[0] == 404

            certs = json.loads(get(port, "/debug/certs")[1])
            assert any(cert["cn"].startswith("bookbuyer.bookbuyer") for cert in certs)
            assert all(set(cert) == {"cn", "serial", "not_before", "not_after"} for cert in certs)
            xds = json.loads(get(port, "/debug/xds")[1])
            assert set(next(iter(xds.values()))) >= {"CDS", "LDS"}
            policies = json.loads(get(port, "/debug/policies")[1])
            assert "bookstore/bookbuyer-access-bookstore-v1" in policies["TrafficTarget"]
            config = json.loads(get(port, "/debug/config")[1])
            assert config["spec"]["observability"]["enable_debug_server"] is True
            assert json.loads(get(port, "/debug/namespaces")[1]) == [
                "bookbuyer",
                "bookstore",
                "bookthief",
                "bookwarehouse",
            ]
            assert json.loads(get(port, "/debug/feature-flags")[1])["enableRetryPolicy"] is False

            for path in ENDPOINTS:  # never a private key, anywhere
                assert "PRIVATE KEY" not in get(port, path)[1], path
            assert "PRIVATE KEY" not in get(port, f"/debug/proxy?uuid={proxy['uuid']}")[1]
            assert '"[redacted]"' in get(port, f"/debug/proxy?uuid={proxy['uuid']}")[1]

            status, profile = get(port, "/debug/pprof/profile?seconds=0.5")
            assert status == 200 and "function calls" in profile
            assert get(port, "/debug/pprof/profile?seconds=999")[0] == 400
            assert "tracing started" in get(port, "/debug/pprof/heap")[1]
            status, heap = get(port, "/debug/pprof/heap")
            assert status == 200 and "traced:" in heap
        finally:
            proc.stop()
