"""What the kubelet sees of a meshed pod, through real Envoys and the real osm-healthcheck server.

- The sidecar's port 15010 answers `/ready` once Envoy has its first config (a native sidecar's startup
  probe) and `/stats/prometheus`; nothing else of Envoy's
  admin interface is reachable through it.
- A native sidecar's Envoy waits for its config however long the control plane takes (Envoy's default
  gives up after 15 s per type and goes live empty; a control with 1 s shows it): the app starts with
  the mesh's config in place.
- A TCP probe, as the injector rewrites it, is answered by osm-healthcheck dialling the app's port from
  inside the pod: 200 while the app listens, 503 once it does not.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from osm.apis.meshconfig import MeshConfig
from osm.cmd.controller import Settings
from osm.health.tcpcheck import TcpHealthcheck
from osm.injector.patch import InjectorConfig, inject
from osm.local.bootstrap import find_pod, write_bootstrap
from osm.testing.controlplane import RunningController
from osm.testing.envoy import EnvoyProcess, dynamic_clusters, free_port, next_base_id
from osm.testing.wait import wait_until

EXAMPLE = Path(__file__).parents[2] / "examples" / "bookstore"


def _get(port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()


def _refused(port: int) -> bool:
    try:
        _get(port, "/ready")
    except (urllib.error.URLError, ConnectionError, http.client.HTTPException):
        return True
    return False


def _sidecar(
    tmp_path: Path, name: str, state: Path, ads_port: int, fetch_timeout: str | None
) -> tuple[EnvoyProcess, int]:
    """An Envoy from the bookbuyer pod's bootstrap as the injector writes it for a native sidecar
    (`fetch_timeout`: another initial-fetch timeout written over it); its 15010 listener's port."""
    metrics_port, admin = free_port(), free_port()
    written = write_bootstrap(
        find_pod(EXAMPLE, "bookbuyer", "bookbuyer", state),
        state_dir=state,
        out=tmp_path / name,
        ads_host="127.0.0.1",
        ads_port=ads_port,
        admin_port=admin,
        metrics_port=metrics_port,
        wait_for_config=True,
    )
    if fetch_timeout is not None:
        boot = yaml.safe_load(written.path.read_text())
        for kind in ("cds_config", "lds_config"):
            boot["dynamic_resources"][kind]["initial_fetch_timeout"] = fetch_timeout
        written.path.write_text(yaml.safe_dump(boot))
    return EnvoyProcess(written.path, admin, next_base_id(), tmp_path / f"{name}.log"), metrics_port


@pytest.mark.envoy
def test_a_native_sidecar_is_ready_only_once_its_config_arrives_however_late(tmp_path: Path) -> None:
    ads_port = free_port()
    state = tmp_path / "state"
    settings = Settings(local_dir=EXAMPLE, state_dir=state, ads_address=f"127.0.0.1:{ads_port}", watch=False)
    with RunningController(settings):  # the controller assigns the pod its proxy uuid
        find_pod(EXAMPLE, "bookbuyer", "bookbuyer", state)
    native, native_port = _sidecar(tmp_path, "native", state, ads_port, None)
    # The control: Envoy giving up on its first config after 1 s per type (its default is 15 s), as
    # every Envoy without the native sidecar's setting eventually does.
    control, control_port = _sidecar(tmp_path, "control", state, ads_port, "1s")
    with native, control:
        # No control plane. The control goes live, empty, and answers ready; the native sidecar does not.
        wait_until(lambda: not _refused(control_port), 20, "the control ready", tolerate=(OSError,))
        assert _get(control_port, "/ready") == (200, "LIVE\n")
        assert dynamic_clusters(control.config_dump()) == {}
        time.sleep(3)
        assert _refused(native_port), "a sidecar without config must not look ready"
        assert dynamic_clusters(native.config_dump()) == {}
        with RunningController(settings):
            wait_until(lambda: not _refused(native_port), 20, "15010 accepting", tolerate=(OSError,))
            assert _get(native_port, "/ready") == (200, "LIVE\n")
            assert "bookstore/bookstore-v1|14001" in dynamic_clusters(native.config_dump())
            status, text = _get(native_port, "/stats/prometheus")
            assert status == 200 and "envoy_cluster_upstream_cx_total" in text
            # The rest of the admin interface stays on 127.0.0.1:15000.
            assert _get(native_port, "/config_dump")[0] == 404
            assert _get(native_port, "/stats/prometheus/../config_dump")[0] == 404
            assert _get(native_port, "/quitquitquit", method="POST")[0] == 404
            assert native.running


def _app_pod(probe: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "db-0", "namespace": "data", "annotations": {}},
        "spec": {
            "serviceAccountName": "db",
            "containers": [
                {"name": "db", "image": "db", "ports": [{"containerPort": 0}], "livenessProbe": probe}
            ],
        },
    }


def _kubelet_probe(probe: dict[str, Any], healthcheck_port: int) -> int:
    """Run an httpGet probe as the kubelet does (the pod's IP being 127.0.0.1 here): its status."""
    get = probe["httpGet"]
    assert get["port"] == 15904
    headers = {h["name"]: h["value"] for h in get.get("httpHeaders", [])}
    return _get(healthcheck_port, get["path"], headers=headers)[0]


def test_a_rewritten_tcp_probe_follows_the_app_through_osm_healthcheck() -> None:
    from datetime import UTC, datetime, timedelta

    from osm.certificate.tresor import TresorCA

    app = socket.socket()
    app.bind(("127.0.0.1", 0))
    app.listen(8)
    app_port = app.getsockname()[1]
    pod = _app_pod({"tcpSocket": {"port": app_port}, "periodSeconds": 5})
    pod["spec"]["containers"][0]["ports"][0]["containerPort"] = app_port
    now = datetime.now(UTC)
    ca = TresorCA.create(now=now)
    cert = ca.issue("x", timedelta(hours=1), now=now)
    injection = inject(
        pod,
        "data",
        MeshConfig(),
        InjectorConfig(),
        namespace_annotations={},
        proxy_uuid="0f0e0d0c-0000-4000-8000-000000000001",
        cert_pem=cert.cert_pem,
        key_pem=cert.key_pem,
        ca_pem=ca.trust_bundle_pem,
    )
    containers = next(op["value"] for op in injection.patch if op["path"] == "/spec/containers")
    probe = containers[0]["livenessProbe"]
    assert "tcpSocket" not in probe and probe["periodSeconds"] == 5
    assert [c["name"] for c in containers] == ["db", "envoy", "osm-healthcheck"]

    async def main() -> None:
        server = TcpHealthcheck("127.0.0.1:0")
        await server.start()
        try:
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, _kubelet_probe, probe, server.port) == 200
            app.close()
            assert await loop.run_in_executor(None, _kubelet_probe, probe, server.port) == 503
            bad: list[tuple[dict[str, str], str]] = [
                ({}, "header Original-Tcp-Port is missing"),
                ({"Original-Tcp-Port": "http"}, "not a port number"),
                ({"Original-Tcp-Port": "70000"}, "a port is 1-65535"),
            ]
            for headers, reason in bad:
                status, text = await loop.run_in_executor(
                    None, functools.partial(_get, server.port, "/osm-healthcheck", headers=headers)
                )
                assert status == 400 and reason in text
        finally:
            await server.stop()
            app.close()

    asyncio.run(main())
