"""The package as users install it (a wheel, not the source tree): the chart with its CRDs, the demo and
example manifests, and the four entry points are in it. A wheel installed into a fresh environment is
checked end to end in CI's install step (`make install-check`)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    cp = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if cp.returncode != 0:
        pytest.fail(f"pip wheel failed: {cp.stderr[-2000:]}")
    (path,) = out.glob("osm-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_holds_the_chart_the_manifests_and_the_entry_points(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    crds = {n for n in names if n.startswith("osm/data/charts/osm/crds/") and n.endswith(".yaml")}
    assert len(crds) == 10
    for name in ("Chart.yaml", "values.yaml", "templates/deployments.yaml", "templates/rbac.yaml"):
        assert f"osm/data/charts/osm/{name}" in names
    assert len({n for n in names if n.startswith("osm/data/demo/")}) == 7
    assert "osm/data/examples/bookstore/00-mesh.yaml" in names
    entry_points = next(wheel.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    for script in ("osm =", "osm-controller =", "osm-injector =", "osm-bootstrap =", "osm-healthcheck ="):
        assert script in entry_points
