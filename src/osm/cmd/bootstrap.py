"""osm-bootstrap: installs or updates the mesh's CRDs, creates the MeshConfig `osm-mesh-config` from the
chart's `preset-mesh-config` ConfigMap when it does not exist, and creates (or reuses) the mesh CA
Secret. Then serves `/healthz` on 9091 (the other components' charts wait for it) until stopped.

Every step is idempotent, so a restarted or upgraded bootstrap converges: CRDs are server-side applied
(an upgrade brings their new schemas), an existing MeshConfig is left as the user edited it, and an
existing CA is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from osm import __version__, logging_setup
from osm.apis.meshconfig import MESH_CONFIG_NAME
from osm.cmd.process import StartupError, run, with_cluster
from osm.health.server import HealthServer
from osm.k8s.casecret import load_or_create_ca
from osm.k8s.client import ApiError, KubeClient
from osm.k8s.resources import CONFIG_MAPS, CRDS, MESH_CONFIGS
from osm.paths import CHART

log = logging.getLogger("osm.bootstrap")

PRESET_CONFIG_MAP = "preset-mesh-config"
PRESET_KEY = "preset-mesh-config.json"
RECONCILE_LABEL = "openservicemesh.io/reconcile"
FIELD_MANAGER = "osm-bootstrap"


@dataclass(frozen=True)
class BootstrapSettings:
    mesh_name: str = "osm"
    osm_namespace: str = "osm-system"
    ca_bundle_secret: str = "osm-ca-bundle"
    crds_dir: Path = CHART / "crds"
    http_address: str | None = "0.0.0.0:9091"
    version: str = __version__
    retry: float = 2.0  # between attempts while the API (or a new CRD) is not ready


def load_crds(directory: Path) -> list[dict[str, Any]]:
    crds: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                crds.append(doc)
    if not crds:
        raise FileNotFoundError(f"no CustomResourceDefinitions in {directory}")
    return crds


class Bootstrap:
    def __init__(self, settings: BootstrapSettings, kube: KubeClient) -> None:
        self.settings = settings
        self.kube = kube
        self.done = asyncio.Event()

    async def apply_crds(self) -> list[str]:
        names = []
        for crd in load_crds(self.settings.crds_dir):
            meta = crd.setdefault("metadata", {})
            meta.setdefault("labels", {})[RECONCILE_LABEL] = self.settings.version
            name = str(meta["name"])
            await self.kube.apply(CRDS.path(name=name), crd, field_manager=FIELD_MANAGER)
            names.append(name)
        log.info("applied %d CRDs: %s", len(names), ", ".join(names))
        return names

    async def ensure_mesh_config(self) -> bool:
        """Create the MeshConfig from the preset when it does not exist; whether it was created."""
        ns = self.settings.osm_namespace
        try:
            await self.kube.get(MESH_CONFIGS.path(ns, MESH_CONFIG_NAME))
            return False
        except ApiError as e:
            if not e.not_found:
                raise
        preset = await self.kube.get(CONFIG_MAPS.path(ns, PRESET_CONFIG_MAP))
        text = (preset.get("data") or {}).get(PRESET_KEY)
        if not isinstance(text, str):
            raise StartupError(f"ConfigMap {ns}/{PRESET_CONFIG_MAP} has no key {PRESET_KEY}")
        try:
            spec = json.loads(text)
        except ValueError as e:
            raise StartupError(
                f"ConfigMap {ns}/{PRESET_CONFIG_MAP} key {PRESET_KEY}: not JSON: {e}"
            ) from None
        mesh_config = {
            "apiVersion": MESH_CONFIGS.api_version,
            "kind": "MeshConfig",
            "metadata": {"name": MESH_CONFIG_NAME, "namespace": ns},
            "spec": spec,
        }
        try:
            await self.kube.create(MESH_CONFIGS.path(ns), mesh_config)
        except ApiError as e:
            if not e.conflict:  # created meanwhile by another bootstrap: keep that one
                raise
            return False
        log.info("created MeshConfig %s/%s from ConfigMap %s", ns, MESH_CONFIG_NAME, PRESET_CONFIG_MAP)
        return True

    async def converge(self) -> None:
        """Every step, retried until it holds (the API may be starting; a new CRD takes a moment)."""
        s = self.settings
        while True:
            try:
                await self.apply_crds()
                await self.ensure_mesh_config()
                _, created = await load_or_create_ca(
                    self.kube, s.osm_namespace, s.ca_bundle_secret, now=datetime.now(UTC)
                )
                log.info(
                    "%s the mesh CA Secret %s/%s",
                    "created" if created else "found",
                    s.osm_namespace,
                    s.ca_bundle_secret,
                )
                return
            except (ApiError, OSError, TimeoutError) as e:
                log.warning("bootstrap not complete (%s); retrying in %.0fs", e, s.retry)
                await asyncio.sleep(s.retry)

    def _is_ready(self) -> tuple[bool, str]:
        return (True, "ok") if self.done.is_set() else (False, "bootstrapping")

    async def run(self) -> None:
        health = (
            HealthServer(self.settings.http_address, ready=self._is_ready)
            if self.settings.http_address
            else None
        )
        if health is not None:
            await health.start()
        try:
            await self.converge()
            self.done.set()
            log.info("bootstrap complete")
            await asyncio.Event().wait()  # serve /healthz until stopped
        finally:
            if health is not None:
                await health.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="osm-bootstrap", description="Installs the mesh's CRDs, MeshConfig and CA."
    )
    p.add_argument("--kubeconfig")
    p.add_argument("--mesh-name", default="osm")
    p.add_argument("--osm-namespace", default="osm-system")
    p.add_argument("--osm-version", default=__version__)
    p.add_argument("--ca-bundle-secret-name", default="osm-ca-bundle")
    p.add_argument("--crds-dir", type=Path, default=CHART / "crds")
    p.add_argument("--http-address", default="0.0.0.0:9091")
    p.add_argument("--verbosity", "-v", default="info", choices=["debug", "info", "warning", "error"])
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging_setup.setup(args.verbosity)
    settings = BootstrapSettings(
        mesh_name=args.mesh_name,
        osm_namespace=args.osm_namespace,
        ca_bundle_secret=args.ca_bundle_secret_name,
        crds_dir=args.crds_dir,
        http_address=args.http_address,
        version=args.osm_version,
    )
    try:
        load_crds(settings.crds_dir)
    except (OSError, yaml.YAMLError) as e:
        log.error("%s", e)
        return 1

    async def serve(kube: KubeClient) -> None:
        await Bootstrap(settings, kube).run()

    return run(with_cluster(args.kubeconfig, serve), log)


if __name__ == "__main__":
    raise SystemExit(main())
