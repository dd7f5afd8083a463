"""End-to-end tests run the local mesh (network namespaces, iptables, real Envoys): root on Linux only."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from osm.testing.netns import have_netns_tools


@pytest.fixture(scope="session")
def local_mesh_capable() -> None:
    reason = have_netns_tools()
    if reason:
        pytest.skip(reason)


@contextlib.contextmanager
def small_mesh(
    tmp_path_factory: pytest.TempPathFactory, name: str, manifests: str, pods: list[tuple[str, str]]
) -> Iterator[LocalMesh]:
    """A local mesh of one manifest file (`mesh.yaml`), up until the block ends; then nothing is left."""
    directory = tmp_path_factory.mktemp(name) / "manifests"
    directory.mkdir()
    (directory / "mesh.yaml").write_text(manifests)
    m = LocalMesh(directory)
    try:
        m.up()
        m.wait_ready(pods)
        yield m
    finally:
        m.down()
        assert m.leftovers() == []
        shutil.rmtree(m.state_dir, ignore_errors=True)
