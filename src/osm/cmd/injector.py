"""osm-injector: the sidecar-injection webhook (HTTPS 9090 `/mutate-pod-creation`, HTTP 9091 `/healthz`).

On start it loads the mesh CA from its Secret (creating it when the controller has not yet), serves
the webhook with a certificate for `osm-injector.<osm-namespace>.svc` signed by that CA, and applies
its MutatingWebhookConfiguration with the CA as caBundle. It reads Namespaces and the MeshConfig from
the API (informers) and creates each injected pod's bootstrap Secret.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from osm import __version__, logging_setup
from osm.apis.meshconfig import MESH_CONFIG_NAME, MeshConfig
from osm.certificate.manager import XDS_CERT_VALIDITY, CertificateManager
from osm.certificate.types import Certificate
from osm.cmd.process import run, with_cluster
from osm.health.server import HealthServer
from osm.injector.patch import (
    DEFAULT_ENVOY_IMAGE,
    DEFAULT_HEALTHCHECK_IMAGE,
    DEFAULT_INIT_IMAGE,
    InjectorConfig,
)
from osm.injector.registration import INJECTOR_SERVICE, default_config_name, mutating_webhook_configuration
from osm.injector.webhook import Injector
from osm.k8s.casecret import load_or_create_ca
from osm.k8s.client import ApiError, KubeClient
from osm.k8s.reconcile import keep_applied
from osm.k8s.resources import MUTATING_WEBHOOKS, NAMESPACES, SECRETS
from osm.k8s.source import KubeSource
from osm.metrics import ControlPlaneMetrics
from osm.models.k8s import Namespace
from osm.state.decode import ObjectKey
from osm.state.store import Store
from osm.webhook.http import serve, server_ssl

log = logging.getLogger("osm.injector")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class InjectorSettings:
    config: InjectorConfig
    webhook_address: str = "0.0.0.0:9090"
    http_address: str | None = "0.0.0.0:9091"
    webhook_config_name: str = ""  # "" : osm-webhook-<mesh>
    ca_bundle_secret: str = "osm-ca-bundle"
    register: bool = True  # apply the MutatingWebhookConfiguration (and keep it applied)
    reconcile_interval: float = 30.0  # how often it is checked
    xds_cert_validity: timedelta = XDS_CERT_VALIDITY  # the sidecar's; the controller renews it


class KubeBackend:
    """What the webhook needs from the cluster."""

    def __init__(
        self,
        kube: KubeClient,
        store: Store,
        certs: CertificateManager,
        xds_cert_validity: timedelta = XDS_CERT_VALIDITY,
    ) -> None:
        self.kube = kube
        self.store = store
        self.certs = certs
        self.xds_cert_validity = xds_cert_validity

    async def namespace(self, name: str) -> Namespace | None:
        """From the cache; from the API when the cache does not have it yet (a pod created right after
        its namespace)."""
        obj = self.store.get(ObjectKey("Namespace", "", name))
        if isinstance(obj, Namespace):
            return obj
        try:
            return Namespace.from_k8s(await self.kube.get(NAMESPACES.path(name=name)))
        except ApiError as e:
            if e.not_found:
                return None
            raise

    def mesh_config(self) -> MeshConfig:
        obj = self.store.get(ObjectKey("MeshConfig", self.store.osm_namespace, MESH_CONFIG_NAME))
        return obj if isinstance(obj, MeshConfig) else MeshConfig()

    def issue(self, cn: str) -> Certificate:
        return self.certs.issue_internal(cn, self.xds_cert_validity)

    async def create_secret(self, secret: dict[str, Any]) -> None:
        await self.kube.create(SECRETS.path(secret["metadata"]["namespace"]), secret)


class InjectorServer:
    def __init__(self, settings: InjectorSettings, kube: KubeClient) -> None:
        self.settings = settings
        self.kube = kube
        cfg = settings.config
        self.store = Store(mesh_name=cfg.mesh_name, osm_namespace=cfg.osm_namespace)
        self.source = KubeSource(kube, self.store, namespaced=())
        self.ready = asyncio.Event()
        self.injector: Injector | None = None
        self.port = 0
        self.health: HealthServer | None = None
        self.metrics = ControlPlaneMetrics()
        self.metrics.version_info.set(1, __version__, "", "")

    def _is_ready(self) -> tuple[bool, str]:
        return (True, "ok") if self.ready.is_set() else (False, "the webhook is not serving yet")

    async def run(self) -> None:
        s, cfg = self.settings, self.settings.config
        if s.http_address:
            self.health = HealthServer(s.http_address, ready=self._is_ready, metrics=self.metrics)
            await self.health.start()
        runner: web.AppRunner | None = None
        watching = asyncio.create_task(self.source.run())
        try:
            ca, _ = await load_or_create_ca(self.kube, cfg.osm_namespace, s.ca_bundle_secret, now=_now())
            certs = CertificateManager(ca, clock=_now, on_issued=self.metrics.cert_issued)
            self.injector = Injector(KubeBackend(self.kube, self.store, certs, s.xds_cert_validity), cfg)
            server_cert = certs.issue_internal(f"{INJECTOR_SERVICE}.{cfg.osm_namespace}.svc")
            context = server_ssl(server_cert.cert_pem, server_cert.key_pem)
            runner, self.port = await serve(self.injector.app(self.metrics), s.webhook_address, context)
            await self.source.synced.wait()
            keeper: asyncio.Task[None] | None = None
            if s.register:
                name = s.webhook_config_name or default_config_name(cfg.mesh_name)
                body = mutating_webhook_configuration(
                    name,
                    mesh_name=cfg.mesh_name,
                    osm_namespace=cfg.osm_namespace,
                    ca_pem=ca.trust_bundle_pem,
                    version=cfg.version,
                )
                path = MUTATING_WEBHOOKS.path(name=name)
                await self.kube.apply(path, body, field_manager="osm-injector")
                log.info("registered MutatingWebhookConfiguration %s", name)
                keeper = asyncio.create_task(
                    keep_applied(
                        self.kube, path, body, field_manager="osm-injector", interval=s.reconcile_interval
                    )
                )
            self.ready.set()
            log.info("injecting sidecars on port %d", self.port)
            try:
                await watching
            finally:
                if keeper is not None:
                    keeper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await keeper
        finally:
            self.ready.clear()
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
            if runner is not None:
                await runner.cleanup()
            if self.health is not None:
                await self.health.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="osm-injector", description="The OSM sidecar-injection webhook.")
    p.add_argument("--kubeconfig")
    p.add_argument("--mesh-name", default="osm")
    p.add_argument("--osm-namespace", default="osm-system")
    p.add_argument("--trust-domain", default="cluster.local")
    p.add_argument("--ca-bundle-secret-name", default="osm-ca-bundle")
    p.add_argument("--webhook-config-name", default="", help="default: osm-webhook-<mesh-name>")
    p.add_argument("--webhook-address", default="0.0.0.0:9090")
    p.add_argument("--http-address", default="0.0.0.0:9091")
    p.add_argument("--ads-host", default="", help="default: osm-controller.<osm-namespace>.svc.cluster.local")
    p.add_argument("--ads-port", type=int, default=15128)
    p.add_argument("--envoy-image", default=DEFAULT_ENVOY_IMAGE, help="when the MeshConfig names none")
    p.add_argument(
        "--init-container-image", default=DEFAULT_INIT_IMAGE, help="when the MeshConfig names none"
    )
    p.add_argument(
        "--healthcheck-image",
        default=DEFAULT_HEALTHCHECK_IMAGE,
        help="the image of the osm-healthcheck container (pods with TCP probes)",
    )
    p.add_argument("--xds", choices=["sotw", "delta"], default="sotw")
    p.add_argument("--verbosity", "-v", default="info", choices=["debug", "info", "warning", "error"])
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> InjectorSettings:
    return InjectorSettings(
        config=InjectorConfig(
            mesh_name=args.mesh_name,
            osm_namespace=args.osm_namespace,
            trust_domain=args.trust_domain,
            ads_host=args.ads_host,
            ads_port=args.ads_port,
            xds=args.xds,
            envoy_image=args.envoy_image,
            init_image=args.init_container_image,
            healthcheck_image=args.healthcheck_image,
            version=__version__,
        ),
        webhook_address=args.webhook_address,
        http_address=args.http_address,
        webhook_config_name=args.webhook_config_name,
        ca_bundle_secret=args.ca_bundle_secret_name,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging_setup.setup(args.verbosity)
    settings = settings_from(args)

    async def serve(kube: KubeClient) -> None:
        await InjectorServer(settings, kube).run()

    return run(with_cluster(args.kubeconfig, serve), log)


if __name__ == "__main__":
    raise SystemExit(main())
