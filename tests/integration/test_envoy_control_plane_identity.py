"""The sidecar and the control plane prove who they are to each other, with short-lived certificates.

- Envoy accepts configuration only from a server whose certificate names the control plane
  (`ads.<trust-domain>`): a server holding any other mesh certificate configures nothing.
- The sidecar's xDS client certificate is short-lived; renewed in place, it keeps the sidecar connected
  through several lifetimes (connections are recycled, so each reconnects with the renewed one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from osm.cmd.controller import Settings
from osm.envoy.ads.server import AdsLimits
from osm.local.bootstrap import find_pod, write_bootstrap
from osm.local.runtime import keep_renewed
from osm.models.k8s import Pod
from osm.testing.controlplane import RunningController
from osm.testing.envoy import EnvoyProcess, dynamic_clusters, free_port, next_base_id
from osm.testing.wait import wait_until

pytestmark = pytest.mark.envoy
EXAMPLE = Path(__file__).parents[2] / "examples" / "bookstore"


def _sidecar(ctrl: RunningController, tmp_path: Path, validity: timedelta) -> tuple[EnvoyProcess, Path]:
    pod = find_pod(EXAMPLE, "bookbuyer", "bookbuyer", ctrl.settings.state_dir)
    out, admin = tmp_path / "sidecar", free_port()
    written = write_bootstrap(
        pod,
        state_dir=ctrl.settings.state_dir,
        out=out,
        ads_host="127.0.0.1",
        ads_port=ctrl.port,
        admin_port=admin,
        validity=validity,
    )
    return EnvoyProcess(written.path, admin, next_base_id(), out / "envoy.log"), out


def test_a_server_with_another_mesh_certificate_cannot_configure_the_sidecar(tmp_path: Path) -> None:
    settings = Settings(
        local_dir=EXAMPLE, state_dir=tmp_path / "state", ads_address="127.0.0.1:0", watch=False
    )
    # A rogue control plane: same CA, but a service's certificate instead of the control plane's.
    rogue = RunningController(settings)
    certs = rogue.controller.certs
    certs.issue_internal = lambda cn, *a, **k: rogue.controller.ca.issue(  # type: ignore[method-assign]
        "bookstore.bookstore.cluster.local", timedelta(hours=1), now=certs.now()
    )
    with rogue:
        proc, _ = _sidecar(rogue, tmp_path, timedelta(hours=1))
        with proc:
            wait_until(
                lambda: proc.stat("cluster.osm-controller.ssl.fail_verify_san") >= 1,
                20,
                "the sidecar refusing the server's certificate",
                tolerate=(OSError,),
            )
            assert dynamic_clusters(proc.config_dump()) == {}
            assert rogue.controller.ads is not None and rogue.controller.ads.stats.connects == 0


def test_a_renewed_sidecar_certificate_keeps_the_sidecar_connected_through_several_lifetimes(
    tmp_path: Path,
) -> None:
    settings = Settings(
        local_dir=EXAMPLE,
        state_dir=tmp_path / "state",
        ads_address="127.0.0.1:0",
        watch=False,
        limits=AdsLimits(max_connection_age=1.5, max_connection_age_grace=0.5),
    )
    validity = timedelta(seconds=6)
    with RunningController(settings) as ctrl:
        proc, out = _sidecar(ctrl, tmp_path, validity)
        pod = find_pod(EXAMPLE, "bookbuyer", "bookbuyer", settings.state_dir)
        renewer = _Renewer(out, pod, settings.state_dir, validity)
        try:
            with proc:
                proc.wait_ready(20)
                ads = ctrl.controller.ads
                assert ads is not None
                proc.wait_for(lambda: bool(dynamic_clusters(proc.config_dump())), timeout=20, what="clusters")
                first_connects = ads.stats.connects
                serials: set[str] = set()

                def renewed_three_times() -> bool:
                    serials.add(_xds_serial(proc))
                    return len(serials) >= 4

                wait_until(renewed_three_times, 40, "three renewals of the sidecar certificate", interval=0.5)
                # Through all that, the sidecar kept (re)connecting with a valid certificate.
                assert ads.stats.connects > first_connects  # connections were recycled ...
                wait_until(lambda: ads.stats.connected == 1, 10, "the sidecar connected")
                assert ads.stats.rejected == 0  # ... and no reconnect presented an expired certificate
                assert proc.stat("control_plane.connected_state") == 1
        finally:
            renewer.stop()


class _Renewer:
    """keep_renewed() on its own event loop in a thread, as the runtime runs it for each meshed pod."""

    def __init__(self, out: Path, pod: Pod, state_dir: Path, validity: timedelta) -> None:
        self._loop = asyncio.new_event_loop()
        expires = datetime.now(UTC) + validity
        self._task = self._loop.create_task(
            keep_renewed(out, pod, expires, state_dir=state_dir, validity=validity, uid=None)
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._task)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(10)
        self._loop.close()


def _xds_serial(proc: EnvoyProcess) -> str:
    certs = json.loads(proc.admin_get("/certs"))["certificates"]
    for c in certs:
        for chain in c.get("cert_chain", []):
            for san in chain.get("subject_alt_names", []):
                if ".sidecar." in san.get("dns", ""):
                    return str(chain["serial_number"])
    return ""
