"""`osm demo --script` walks upstream's demo steps on the local mesh and leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from osm.testing.localmesh import LocalMesh

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]


def test_demo_script_passes(local_mesh_capable: None) -> None:
    state = Path(tempfile.mkdtemp(prefix="osm-demo-"))
    os.chmod(state, 0o755)
    try:
        cp = subprocess.run(
            [sys.executable, "-m", "osm.cli.main", "demo", "--script", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        out = cp.stdout + cp.stderr
        assert cp.returncode == 0, out
        assert out.count("PASS  step") == 4 and "demo script passed" in out, out
        assert LocalMesh(Path("unused"), state).leftovers() == []
    finally:
        LocalMesh(Path("unused"), state).cleanup()
        shutil.rmtree(state, ignore_errors=True)
