"""Upstream's e2e_permissive_trafficsplit_test.go on the local runtime, both contexts (appProtocol http
and tcp on the backends and the apex), at a smaller scale (3 backends of 2 replicas, 2 client namespaces
of 2 replicas): permissive mode, no SMI policy. Every client pod's requests to the apex get 200 and every
backend pod answers, 5 rounds in a row; then every client pod's requests straight to each backend Service
get 200, 2 rounds in a row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import small_mesh
from tests.e2e.test_e2e_trafficsplit import manifests, split_reaches_every_backend, wait_replicas

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]


@pytest.fixture(scope="module", params=["http", "tcp"])
def mesh(
    request: pytest.FixtureRequest, local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalMesh]:
    with small_mesh(
        tmp_path_factory, f"permissive-split-{request.param}", manifests(request.param, True), []
    ) as m:
        wait_replicas(m)
        yield m


def test_permissive_split_reaches_every_backend(mesh: LocalMesh) -> None:
    split_reaches_every_backend(mesh)
