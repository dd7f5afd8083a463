"""The golden scenarios: manifest directories, and each proxy's generated resources."""

from __future__ import annotations

from pathlib import Path

from osm.catalog import MeshCatalog
from osm.envoy.generator import ConfigGenerator
from osm.envoy.sds.secrets import CertMaterial
from osm.envoy.types import ProxyResources
from osm.local.source import ManifestSource
from osm.state.snapshot import MeshState
from osm.state.store import Store
from osm.testing.mesh import build

ROOT = Path(__file__).parent
SCENARIOS = sorted(p.name for p in (ROOT / "scenarios").iterdir() if p.is_dir())
# Fixed certificate material keeps golden files stable; real certificates are exercised with Envoy.
FAKE_CERT = CertMaterial(b"<service cert chain>", b"<service key>", b"<mesh trust bundle>")


def scenario_dir(name: str) -> Path:
    return ROOT / "scenarios" / name


def load_state(name: str) -> MeshState:
    store = Store()
    source = ManifestSource(scenario_dir(name), store)
    source.load()
    errors = [e for errs in source.errors.values() for e in errs]
    assert not errors, f"scenario {name} has invalid documents: {errors}"
    return store.snapshot()


def proxy_resources(state: MeshState) -> dict[tuple[str, str], ProxyResources]:
    catalog = MeshCatalog(state)
    generator = ConfigGenerator()
    out = {}
    for key, pod in sorted(state.pods.items()):
        if state.is_monitored(pod.meta.namespace):
            out[key] = generator.resources(catalog.proxy_policy(catalog.group_for_pod(pod)), FAKE_CERT)
    return out


def scenario_and_standard_meshes() -> list[tuple[str, MeshState]]:
    """Every golden scenario and a small standard mesh (bench/workload.py) in SMI and permissive mode."""
    out = [(name, load_state(name)) for name in SCENARIOS]
    for mode in ("smi", "permissive"):
        out.append((f"standard-{mode}", MeshState.build(build(12, 2, mode=mode).objects)))
    return out
