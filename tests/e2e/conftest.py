"""End-to-end tests run the local mesh (network namespaces, iptables, real Envoys): root on Linux only."""

from __future__ import annotations

import pytest

from osm.testing.netns import have_netns_tools


@pytest.fixture(scope="session")
def local_mesh_capable() -> None:
    reason = have_netns_tools()
    if reason:
        pytest.skip(reason)
