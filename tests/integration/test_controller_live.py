"""The controller with real Envoys, while things change: certificate rotation and bad input."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from osm.cmd.controller import Settings
from osm.testing.controlplane import RunningController, start_sidecar
from osm.testing.envoy import EnvoyProcess, dynamic_clusters, dynamic_route_configs, dynamic_secrets

pytestmark = pytest.mark.envoy
EXAMPLE = Path(__file__).parents[2] / "examples" / "bookstore"


def _secret_chain(proc: EnvoyProcess, name: str) -> str:
    secret: dict[str, Any] = dynamic_secrets(proc.config_dump()).get(name, {})
    return str(secret.get("tls_certificate", {}).get("certificate_chain", {}).get("inline_bytes", ""))


def _split_weights(proc: EnvoyProcess) -> dict[str, int]:
    rc = dynamic_route_configs(proc.config_dump()).get("rds-outbound.14001", {})
    for vh in rc.get("virtual_hosts", []):
        if vh["name"] == "outbound_virtual-host|bookstore.bookstore.svc.cluster.local":
            clusters = vh["routes"][0]["route"]["weighted_clusters"]["clusters"]
            return {c["name"]: int(c["weight"]) for c in clusters}
    return {}


def test_certificate_rotation_reaches_envoy_without_restart(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(EXAMPLE, manifests)
    mesh = manifests / "00-mesh.yaml"
    mesh.write_text(
        mesh.read_text().replace("serviceCertValidityDuration: 24h", "serviceCertValidityDuration: 6s")
    )
    settings = Settings(
        local_dir=manifests,
        state_dir=tmp_path / "state",
        ads_address="127.0.0.1:0",
        rotation_interval=0.5,
        watch=False,
    )
    with RunningController(settings) as ctrl:
        proc = start_sidecar(ctrl, "bookbuyer", "bookbuyer", tmp_path)
        try:
            proc.wait_ready(20)
            name = "service-cert:bookbuyer/bookbuyer"
            proc.wait_for(lambda: _secret_chain(proc, name) != "", timeout=20, what="the service certificate")
            first, pid = _secret_chain(proc, name), proc.pid
            updates = proc.stat("sds.service-cert_bookbuyer/bookbuyer.update_success")
            # 6 s validity: renewed a quarter of its lifetime before expiry, pushed over SDS.
            proc.wait_for(
                lambda: _secret_chain(proc, name) not in ("", first),
                timeout=20,
                what="a rotated service certificate",
            )
            assert proc.pid == pid and proc.running
            assert proc.stat("sds.service-cert_bookbuyer/bookbuyer.update_success") > updates
            assert proc.stat("sds.service-cert_bookbuyer/bookbuyer.update_rejected") == 0
            assert ctrl.controller.ads is not None and ctrl.controller.ads.stats.nacks == 0
        finally:
            proc.stop()


def test_bad_input_is_reported_and_last_good_config_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(EXAMPLE, manifests)
    policies = manifests / "20-policies.yaml"
    good = policies.read_text()
    settings = Settings(local_dir=manifests, state_dir=tmp_path / "state", ads_address="127.0.0.1:0")
    caplog.set_level(logging.INFO)
    with RunningController(settings) as ctrl:
        proc = start_sidecar(ctrl, "bookbuyer", "bookbuyer", tmp_path, xds="delta")
        try:
            proc.wait_ready(20)
            proc.wait_for(
                lambda: (
                    _split_weights(proc)
                    == {"bookstore/bookstore-v1|14001": 75, "bookstore/bookstore-v2|14001": 25}
                ),
                timeout=20,
                what="the 75/25 split",
            )
            # An invalid edit: a negative weight. Reported precisely; the accepted split keeps serving.
            policies.write_text(good.replace("weight: 25", "weight: -5"))
            pattern = re.compile(
                r"20-policies\.yaml \(document \d+\): TrafficSplit bookstore/bookstore-split: "
                r"field spec\.backends\[1\]\.weight: must be >= 0, got -5"
            )
            proc.wait_for(
                lambda: any(pattern.search(r.getMessage()) for r in caplog.records),
                timeout=10,
                what="the rejection to be logged",
            )
            assert _split_weights(proc) == {
                "bookstore/bookstore-v1|14001": 75,
                "bookstore/bookstore-v2|14001": 25,
            }
            assert set(dynamic_clusters(proc.config_dump())) >= {
                "bookstore/bookstore-v1|14001",
                "bookstore/bookstore-v2|14001",
            }
            # The controller still serves: a valid edit reaches Envoy.
            policies.write_text(good.replace("weight: 75", "weight: 10").replace("weight: 25", "weight: 90"))
            proc.wait_for(
                lambda: (
                    _split_weights(proc)
                    == {"bookstore/bookstore-v1|14001": 10, "bookstore/bookstore-v2|14001": 90}
                ),
                timeout=10,
                what="the 10/90 split",
            )
            assert (
                proc.stat(
                    "http.mesh-http-conn-manager.rds-outbound.14001.rds.rds-outbound.14001.update_rejected"
                )
                == 0
            )
        finally:
            proc.stop()
