"""Contract tests: fakekube (and the mesh's Kubernetes clients) against the real kubectl and helm."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from osm.testing import kubetools
from osm.testing.fakekube import FakeKube


@dataclass
class Cluster:
    fk: FakeKube
    tools: kubetools.Tools
    env: dict[str, str]

    def run(
        self, tool: str, *args: str, stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        binary = self.tools.kubectl if tool == "kubectl" else self.tools.helm
        return subprocess.run(
            [str(binary), *args],
            capture_output=True,
            text=True,
            env=self.env,
            input=stdin,
            timeout=timeout,
            check=False,
        )

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        cp = self.run("kubectl", *args, stdin=stdin)
        assert cp.returncode == 0, f"kubectl {' '.join(args)}: {cp.stdout}{cp.stderr}"
        return cp.stdout

    def helm(self, *args: str) -> str:
        cp = self.run("helm", *args)
        assert cp.returncode == 0, f"helm {' '.join(args)}: {cp.stdout}{cp.stderr}"
        return cp.stdout


@pytest.fixture(scope="session")
def tools() -> kubetools.Tools:
    found = kubetools.find()
    if found is None:
        pytest.skip("kubectl and helm are not installed: python -m osm.testing.kubetools --install")
    return found


@pytest.fixture
async def fk() -> AsyncIterator[FakeKube]:
    """fakekube on the test's own event loop."""
    kube = FakeKube(bookmark_interval=0.2)
    await kube.serve()
    try:
        yield kube
    finally:
        await kube.stop()


@pytest.fixture
def cluster(tools: kubetools.Tools, tmp_path: Path) -> Iterator[Cluster]:
    with FakeKube(bookmark_interval=0.2) as fk:
        kubeconfig = fk.write_kubeconfig(tmp_path / "kubeconfig")
        yield Cluster(fk, tools, tools.env(kubeconfig, tmp_path / "home"))
