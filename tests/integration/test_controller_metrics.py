"""The controller's /metrics on its HTTP port: the families fed outside the ADS server (source events,
namespaces, feature flags, version, certificates issued, HTTP responses, logged error codes)."""

from __future__ import annotations

import contextlib
import logging
import shutil
import urllib.request
from pathlib import Path

from osm import __version__
from osm.cmd.controller import Settings
from osm.testing.controlplane import RunningController
from osm.testing.wait import wait_until

EXAMPLE = Path(__file__).parents[2] / "examples" / "bookstore"


def get(port: int, path: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read().decode()


def test_the_controller_serves_its_metrics(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(EXAMPLE, manifests)
    settings = Settings(
        local_dir=manifests,
        state_dir=tmp_path / "state",
        ads_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        watch=False,
    )
    with RunningController(settings) as ctrl:
        health = ctrl.controller.health
        assert health is not None
        port = health.port
        assert get(port, "/health/ready")[0] == 200
        logging.getLogger("osm.test").error("a coded error", extra={"err_code": "E9001"})
        status, content_type, text = get(port, "/metrics")
        assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
        assert f'osm_version_info{{version="{__version__}",build_date="",git_commit=""}} 1' in text
        assert 'osm_k8s_api_event_count{type="PodAdded",namespace="bookbuyer"}' in text
        assert "osm_resource_namespace_count 4" in text  # bookbuyer, bookthief, bookstore, bookwarehouse
        assert 'osm_feature_flag_enabled{feature_flag="enableRetryPolicy"}' in text
        assert 'osm_http_response_total{code="200",method="GET",path="/health/ready"} 1' in text
        assert 'osm_error_err_code_count{err_code="E9001"} 1' in text
        issued = ctrl.controller.metrics.cert_issued_count.value()
        assert issued >= 1  # the ADS server's own certificate at least
        assert f"osm_cert_issued_count {int(issued)}" in text
        # a path that is not a route is counted under one label, not its own
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/no/such/{'x' * 50}", timeout=5)
        except urllib.error.HTTPError as e:
            assert e.code == 404
        wait_until(
            lambda: (
                'osm_http_response_total{code="404",method="GET",path="unmatched"} 1'
                in get(port, "/metrics")[2]
            ),
            5,
            "the 404 counted",
        )


def test_the_log_level_follows_the_mesh_config_live(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(EXAMPLE, manifests)
    mesh = manifests / "00-mesh.yaml"
    text = mesh.read_text()

    def level(name: str) -> str:
        return text.replace("  certificate:\n", f"  observability: {{osmLogLevel: {name}}}\n  certificate:\n")

    root = logging.getLogger()
    before = root.level
    settings = Settings(
        local_dir=manifests, state_dir=tmp_path / "state", ads_address="127.0.0.1:0", watch=True
    )
    try:
        with RunningController(settings):
            wait_until(lambda: root.level == logging.INFO, 10, "the MeshConfig's default level, info")
            mesh.write_text(level("debug"))
            wait_until(lambda: root.level == logging.DEBUG, 20, "debug")
            mesh.write_text(level("error"))
            wait_until(lambda: root.level == logging.ERROR, 20, "error")
            mesh.write_text(level("loud"))  # refused, naming the field: the level in effect stays
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: root.level != logging.ERROR, 2, "a change")
            assert root.level == logging.ERROR
    finally:
        root.setLevel(before)
