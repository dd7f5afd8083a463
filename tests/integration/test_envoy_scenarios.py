"""Real Envoy, every golden scenario, SotW and delta: Envoy connects over mTLS, ACKs everything and
holds exactly the listeners, clusters, routes and secrets the generators produced for its pod."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tests.golden.scenarios import SCENARIOS, load_state, proxy_resources, scenario_dir

from osm.cmd.controller import Settings
from osm.envoy.ads.sotw import SotwStream
from osm.testing.controlplane import RunningController, sidecars
from osm.testing.envoycheck import EnvoyView, expected_view, holds

pytestmark = pytest.mark.envoy


@pytest.mark.parametrize("xds", ["sotw", "delta"])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_envoy_accepts_scenario(scenario: str, xds: str, tmp_path: Path) -> None:
    expected = proxy_resources(load_state(scenario))
    settings = Settings(
        local_dir=scenario_dir(scenario), state_dir=tmp_path / "state", ads_address="127.0.0.1:0", watch=False
    )
    with RunningController(settings) as ctrl, sidecars(ctrl, sorted(expected), tmp_path, xds=xds) as envoys:
        started = time.monotonic()
        for key, proc in envoys.items():
            proc.wait_ready(20)
            proc.wait_for(
                lambda p=proc, k=key: holds(p, expected[k]), timeout=20, what=f"{key} to hold its config"
            )
        elapsed = time.monotonic() - started
        for key, proc in envoys.items():
            view = EnvoyView.read(proc)
            assert view == expected_view(expected[key])
            assert view.rejected == 0 and view.warming == 0
            assert proc.stat("control_plane.connected_state") == 1
        assert ctrl.controller.ads is not None
        assert ctrl.controller.ads.stats.nacks == 0
        assert ctrl.controller.ads.stats.connected == len(envoys)
        assert elapsed < 20
        if xds == "sotw":
            # Each resource went out once. Envoy asks for its clusters' secrets and then for those and
            # its listeners' ones (likewise routes): the later answers carried only the new names, and
            # Envoy added them to those it held (the views above are complete).
            machines = [s.machine for s in ctrl.controller.ads.streams.values()]
            assert all(isinstance(m, SotwStream) for m in machines)
            sent = sum(m.counters.resources for m in machines)
            held = sum(
                len(st.sent_names) for m in machines if isinstance(m, SotwStream) for st in m.types.values()
            )
            assert sent == held
