"""osm-controller: the control plane, on a Kubernetes cluster, a manifest directory, or the local runtime's
feed (local mode)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import socket
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from osm import __version__, logging_setup
from osm.apis.meshconfig import PYTHON_LOG_LEVELS
from osm.certificate.manager import XDS_CERT_VALIDITY, CertificateManager, RotationLoop
from osm.certificate.tresor import TresorCA
from osm.certificate.types import Certificate
from osm.cmd.gctune import GcTuner
from osm.cmd.process import run, until_signalled
from osm.debugger import DebugServer, DebugView
from osm.envoy.ads.cache import XdsCache
from osm.envoy.ads.server import DEFAULT_LIMITS, AdsLimits, AdsServer, server_credentials
from osm.envoy.dump import config_dump
from osm.health.server import HealthServer
from osm.k8s.casecret import load_or_create_ca
from osm.k8s.client import KubeClient
from osm.k8s.ingresssecret import IngressGatewaySecret
from osm.k8s.ownership import BootstrapSecretOwner
from osm.k8s.reconcile import keep_applied
from osm.k8s.renewal import BootstrapCertRenewer
from osm.k8s.resources import VALIDATING_WEBHOOKS
from osm.k8s.source import KubeSource
from osm.local.feed import FeedSource
from osm.local.source import DEFAULT_SOURCE_LIMITS, ManifestSource, SourceLimits
from osm.local.uuids import ProxyUuids
from osm.messaging.debounce import Debouncer
from osm.metrics import ControlPlaneMetrics, ErrCodeCounter
from osm.state.decode import ObjectKey
from osm.state.snapshot import MeshState
from osm.state.store import Event, Store
from osm.validator.webhook import (
    VALIDATOR_SERVICE,
    Validator,
    validating_webhook_configuration,
)
from osm.validator.webhook import default_config_name as validator_config_name
from osm.webhook.http import serve, server_ssl

log = logging.getLogger("osm.controller")

DEFAULT_LOCAL_ADS = "127.0.0.1:15128"
DEFAULT_KUBE_ADS = "0.0.0.0:15128"
DEFAULT_KUBE_HTTP = "0.0.0.0:9091"
DEFAULT_KUBE_DEBUG = "0.0.0.0:9092"
DEFAULT_KUBE_WEBHOOK = "0.0.0.0:9093"


@dataclass(frozen=True)
class Settings:
    local_dir: Path | None  # the manifest directory; None with `feed_fd` or `kubernetes`
    state_dir: Path | None  # where the local CA and proxy UUIDs are kept (not used on Kubernetes)
    ads_address: str = DEFAULT_LOCAL_ADS
    mesh_name: str = "osm"
    osm_namespace: str = "osm-system"
    trust_domain: str = "cluster.local"
    # A change waits for 30 ms of quiet, but never more than 150 ms after the first one: under continuous
    # churn every change reaches the proxies within about 0.15 s plus the push (OSM: 2 s and 10 s).
    debounce_quiet: float = 0.03
    debounce_max: float = 0.15
    rotation_interval: float = 5.0
    watch: bool = True
    tune_gc: bool = False  # process entry points only: see cmd/gctune.py
    limits: AdsLimits = DEFAULT_LIMITS
    source_limits: SourceLimits = DEFAULT_SOURCE_LIMITS
    feed_fd: int | None = None  # the local runtime's feed (a socket inherited from it) instead of a directory
    kubernetes: bool = False  # the API server is the source (see `Controller.on_kubernetes`)
    ca_bundle_secret: str = "osm-ca-bundle"
    http_address: str | None = None  # HOST:PORT of /health/ready, /health/alive and /version (9091)
    # HOST:PORT of the debug server (9092), served while MeshConfig observability.enableDebugServer is on
    debug_address: str | None = None
    webhook_address: str | None = None  # HOST:PORT of the validating webhook (9093; on Kubernetes)
    validator_config_name: str = ""  # "" : osm-validator-mesh-<mesh>
    reconcile_interval: float = 30.0  # how often the webhook configuration is checked (and restored)
    xds_cert_validity: timedelta = XDS_CERT_VALIDITY  # of a renewed sidecar xDS certificate (Kubernetes)
    renew_check_interval: float = 60.0  # how often the bootstrap Secrets due for renewal are renewed


def _now() -> datetime:
    return datetime.now(UTC)


class Controller:
    """Store <- source; debounced snapshots -> ADS server; tresor CA with rotation."""

    def __init__(
        self, settings: Settings, *, ca: TresorCA | None = None, kube: KubeClient | None = None
    ) -> None:
        self.settings = settings
        self.store = Store(mesh_name=settings.mesh_name, osm_namespace=settings.osm_namespace)
        if ca is None:
            if settings.state_dir is None:
                raise ValueError("the controller needs a CA or a state directory to keep one in")
            ca = TresorCA.load_or_create(settings.state_dir, now=_now())
        self.ca = ca
        self.metrics = ControlPlaneMetrics()
        self.certs = CertificateManager(self.ca, clock=_now, on_issued=self.metrics.cert_issued)
        self.cache = XdsCache(self.certs, trust_domain=settings.trust_domain)
        self.kube = kube
        self.source: ManifestSource | FeedSource | KubeSource
        self.renewer: BootstrapCertRenewer | None = None  # on Kubernetes: the sidecars' xDS certificates
        self.gateway_secret: IngressGatewaySecret | None = None  # on Kubernetes: the ingress gateway's
        if kube is not None:
            self.gateway_secret = IngressGatewaySecret(
                kube, self.ca, check_interval=settings.renew_check_interval
            )
            self.renewer = BootstrapCertRenewer(
                kube,
                self.certs.issue_internal,
                trust_domain=settings.trust_domain,
                validity=settings.xds_cert_validity,
                check_interval=settings.renew_check_interval,
            )
            self.source = KubeSource(kube, self.store, pod_hooks=(BootstrapSecretOwner(kube), self.renewer))
        elif settings.feed_fd is not None:
            self.source = FeedSource(socket.socket(fileno=settings.feed_fd), self.store)
        elif settings.local_dir is not None and settings.state_dir is not None:
            self.source = ManifestSource(
                settings.local_dir,
                self.store,
                uuids=ProxyUuids.in_dir(settings.state_dir),
                limits=settings.source_limits,
            )
        else:
            raise ValueError("the controller needs a source: Kubernetes, a manifest directory or a feed")
        self.ads: AdsServer | None = None
        self.state: MeshState | None = None
        self.ready = asyncio.Event()
        self.health: HealthServer | None = None
        self.validator_port = 0
        self._keep: tuple[KubeClient, str, dict[str, Any]] | None = None  # the webhook configuration kept
        self._loop: asyncio.AbstractEventLoop | None = None
        self.gc = GcTuner() if settings.tune_gc else None
        self.metrics.version_info.set(1, __version__, "", "")
        self.debug: DebugServer | None = None
        self._debug_toggle: asyncio.Task[None] | None = None
        self.store.subscribe(self._count_event)

    @classmethod
    async def on_kubernetes(cls, settings: Settings, kube: KubeClient) -> Controller:
        """A controller whose source is the API server and whose CA is the Secret `ca_bundle_secret`
        of the OSM namespace (created if absent)."""
        ca, created = await load_or_create_ca(
            kube, settings.osm_namespace, settings.ca_bundle_secret, now=_now()
        )
        log.info(
            "%s the mesh CA in Secret %s/%s",
            "created" if created else "loaded",
            settings.osm_namespace,
            settings.ca_bundle_secret,
        )
        return cls(settings, ca=ca, kube=kube)

    def _count_event(self, ev: Event) -> None:
        """osm_k8s_api_event_count: each change of the source, as `<Kind><Added|Updated|Deleted>`."""
        self.metrics.k8s_api_event_count.inc(f"{ev.key.kind}{ev.type.value.capitalize()}", ev.key.namespace)

    def _mesh_metrics(self, state: MeshState) -> None:
        mc = state.mesh_config
        self.metrics.resource_namespace_count.set(sum(1 for ns in state.namespaces if state.is_monitored(ns)))
        flags = mc.feature_flags
        for name, on in (
            ("enableWASMStats", flags.enable_wasm_stats),
            ("enableEgressPolicy", flags.enable_egress_policy),
            ("enableEnvoyActiveHealthChecks", flags.enable_envoy_active_health_checks),
            ("enableRetryPolicy", flags.enable_retry_policy),
        ):
            self.metrics.feature_flag_enabled.set(1 if on else 0, name)

    def _follow_log_level(self, state: MeshState) -> None:
        """The controller logs at MeshConfig observability.osmLogLevel, live, once a MeshConfig is in
        place (before, at --verbosity)."""
        if state.mesh_config_problem:
            return
        level = PYTHON_LOG_LEVELS[state.mesh_config.observability.osm_log_level]
        root = logging.getLogger()
        if root.level != level:
            root.setLevel(level)
            logging.getLogger(__name__).log(
                max(level, logging.INFO) if level <= logging.CRITICAL else logging.CRITICAL,
                "log level %s (MeshConfig observability.osmLogLevel)",
                state.mesh_config.observability.osm_log_level,
            )

    # ---- the debug server, switched live by MeshConfig observability.enableDebugServer

    def _want_debug(self, on: bool) -> None:
        if self.settings.debug_address is None or self._loop is None:
            return
        if on == (self.debug is not None) and (self._debug_toggle is None or self._debug_toggle.done()):
            return
        previous = self._debug_toggle
        self._debug_toggle = self._loop.create_task(self._switch_debug(on, previous))

    async def _switch_debug(self, on: bool, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous  # switches happen in order
        address = self.settings.debug_address
        assert address is not None
        if on and self.debug is None:
            server = DebugServer(address, self._debug_view())
            try:
                await server.start()
            except OSError as e:
                log.error("cannot start the debug server on %s: %s", address, e)
                return
            self.debug = server
            log.info("debug server on %s:%d (observability.enableDebugServer)", server.host, server.port)
        elif not on and self.debug is not None:
            server, self.debug = self.debug, None
            await server.stop()
            log.info("debug server stopped (observability.enableDebugServer is false)")

    def _debug_view(self) -> DebugView:
        def streams() -> list[Any]:
            return list(self.ads.streams.values()) if self.ads is not None else []

        def proxies() -> list[dict[str, Any]]:
            return [
                {
                    "uuid": s.proxy.cn.uuid,
                    "cn": str(s.proxy.cn),
                    "pod": f"{s.proxy.pod_namespace}/{s.proxy.pod_name}",
                    "identity": str(s.identity),
                    "xds": s.protocol,
                    "connected_at": datetime.fromtimestamp(s.connected_at, UTC).isoformat(),
                    "config_error": s.failed,
                }
                for s in sorted(streams(), key=lambda s: str(s.proxy.cn))
            ]

        def dump(uuid: str) -> dict[str, Any] | None:
            found = next((s for s in streams() if s.proxy.cn.uuid == uuid and s.resources is not None), None)
            return None if found is None or found.resources is None else config_dump(found.resources)

        def certs() -> list[dict[str, Any]]:
            return [
                {
                    "cn": c.cn,
                    "serial": f"{c.serial:x}",
                    "not_before": c.not_before.isoformat(),
                    "not_after": c.not_after.isoformat(),
                }
                for c in self.certs.issued()
            ]

        def xds() -> dict[str, Any]:
            return {
                str(s.proxy.cn): {
                    kind: [datetime.fromtimestamp(t, UTC).isoformat() for t in times]
                    for kind, times in sorted(s.requested.items())
                }
                for s in streams()
            }

        def state() -> MeshState:
            return self.state if self.state is not None else self.store.snapshot()

        def policies() -> dict[str, Any]:
            st = state()
            return {
                "TrafficTarget": st.traffic_targets,
                "HTTPRouteGroup": st.http_route_groups,
                "TCPRoute": st.tcp_routes,
                "TrafficSplit": st.traffic_splits,
                "Retry": st.retries,
                "UpstreamTrafficSetting": st.upstream_traffic_settings,
                "IngressBackend": st.ingress_backends,
                "Egress": st.egresses,
            }

        def mesh_config() -> dict[str, Any]:
            st = state()
            return {"spec": st.mesh_config, "problem": st.mesh_config_problem}

        def namespaces() -> list[str]:
            st = state()
            return sorted(ns for ns in st.namespaces if st.is_monitored(ns))

        def feature_flags() -> dict[str, bool]:
            f = state().mesh_config.feature_flags
            return {
                "enableWASMStats": f.enable_wasm_stats,
                "enableEgressPolicy": f.enable_egress_policy,
                "enableEnvoyActiveHealthChecks": f.enable_envoy_active_health_checks,
                "enableRetryPolicy": f.enable_retry_policy,
            }

        return DebugView(proxies, dump, certs, xds, policies, mesh_config, namespaces, feature_flags)

    @property
    def port(self) -> int:
        return self.ads.port if self.ads is not None else 0

    def _adopt(self, state: MeshState, changed: set[ObjectKey] | None = None) -> None:
        validity = timedelta(seconds=state.mesh_config.certificate.service_cert_validity_duration)
        if validity != self.certs.service_validity:
            self.certs.set_service_validity(validity)
        self.state = state
        self._mesh_metrics(state)
        self._follow_log_level(state)
        self._want_debug(state.mesh_config.observability.enable_debug_server)
        if self.gateway_secret is not None:
            self.gateway_secret.want(state.mesh_config.certificate.ingress_gateway)
        assert self.ads is not None
        woken = self.ads.update(state, changed)
        if isinstance(self.source, FeedSource):
            self.source.ack()  # the runtime may start the sidecars of the pods this snapshot holds
        log.info(
            "snapshot %d: %d objects, %d proxies to update, mode %s",
            state.version,
            len(self.store),
            woken,
            "permissive" if state.permissive else "smi",
        )
        if self.gc is not None:
            self.gc.settled()

    def _flush(self, keys: set[ObjectKey]) -> None:
        self.metrics.events_queued.set(0)
        log.debug("changes: %s", ", ".join(sorted(str(k) for k in keys)))
        self._adopt(self.store.snapshot(), keys)

    def _on_rotated(self, cert: Certificate) -> None:
        identity = self.cache.identity_for_cn(cert.cn)
        log.info(
            "certificate rotated: %s (serial %x, expires %s)",
            cert.cn,
            cert.serial,
            cert.not_after.isoformat(),
        )
        if identity is not None and self._loop is not None and self.ads is not None:
            self._loop.call_soon(self.ads.identity_changed, identity)

    async def run(self) -> None:
        s = self.settings
        health = self.health = (
            HealthServer(s.http_address, ready=self._is_ready, metrics=self.metrics)
            if s.http_address
            else None
        )
        errors = ErrCodeCounter(self.metrics.error_err_code_count)
        logging.getLogger().addHandler(errors)
        feeding: asyncio.Task[None] | None = None
        validator: web.AppRunner | None = None
        try:
            if health is not None:
                await health.start()
            if isinstance(self.source, FeedSource | KubeSource):
                feeding = asyncio.create_task(self.source.run())
                synced = asyncio.create_task(self.source.synced.wait())
                try:
                    await asyncio.wait({feeding, synced}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    synced.cancel()
                if feeding.done():
                    await feeding  # raises: the source ended before its first list
            else:
                self.source.load()
            if self.kube is not None and s.webhook_address:
                validator = await self._start_validator(self.kube, s.webhook_address)
            await self._serve(feeding)
        finally:
            if validator is not None:
                await validator.cleanup()
            if feeding is not None and not feeding.done():
                feeding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeding
            if health is not None:
                await health.stop()
            if self._debug_toggle is not None:
                self._debug_toggle.cancel()
            if self.debug is not None:
                await self.debug.stop()
                self.debug = None
            logging.getLogger().removeHandler(errors)

    async def _start_validator(self, kube: KubeClient, address: str) -> web.AppRunner:
        """Serve the validating webhook over HTTPS and register its ValidatingWebhookConfiguration."""
        s = self.settings
        cert = self.certs.issue_internal(f"{VALIDATOR_SERVICE}.{s.osm_namespace}.svc")
        runner, self.validator_port = await serve(
            Validator().app(self.metrics), address, server_ssl(cert.cert_pem, cert.key_pem)
        )
        name = s.validator_config_name or validator_config_name(s.mesh_name)
        body = validating_webhook_configuration(
            name, mesh_name=s.mesh_name, osm_namespace=s.osm_namespace, ca_pem=self.ca.trust_bundle_pem
        )
        path = VALIDATING_WEBHOOKS.path(name=name)
        try:
            await kube.apply(path, body, field_manager="osm-controller")
        except BaseException:
            await runner.cleanup()
            raise
        self._keep = (kube, path, body)
        log.info("validating webhook on port %d, registered as %s", self.validator_port, name)
        return runner

    async def _serve(self, feeding: asyncio.Task[None] | None) -> None:
        self._loop = asyncio.get_running_loop()
        s = self.settings
        server_cert = self.certs.issue_internal(f"ads.{s.trust_domain}")
        creds = server_credentials(server_cert.cert_pem, server_cert.key_pem, self.ca.trust_bundle_pem)
        self.ads = AdsServer(
            self.cache, address=s.ads_address, credentials=creds, limits=s.limits, metrics=self.metrics
        )
        if self.gc is not None:
            self.gc.install()
        self._adopt(self.store.snapshot())
        await self.ads.start()
        debouncer: Debouncer[ObjectKey] = Debouncer(
            self._flush, quiet=s.debounce_quiet, max_wait=s.debounce_max
        )

        def queued(ev: Event) -> None:
            debouncer.notify(ev.key)
            self.metrics.events_queued.set(debouncer.pending)

        self.store.subscribe(queued)
        self.certs.subscribe(self._on_rotated)
        self.ready.set()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(debouncer.run())
                tg.create_task(RotationLoop(self.certs, interval=s.rotation_interval).run())
                if self.gateway_secret is not None:
                    tg.create_task(self.gateway_secret.run())
                if feeding is not None:
                    tg.create_task(_await(feeding))
                if self._keep is not None:
                    kube, path, body = self._keep
                    tg.create_task(
                        keep_applied(
                            kube, path, body, field_manager="osm-controller", interval=s.reconcile_interval
                        )
                    )
                elif s.watch and isinstance(self.source, ManifestSource):
                    tg.create_task(self.source.watch())
        finally:
            self.ready.clear()
            await self.ads.stop(0.5)

    def _is_ready(self) -> tuple[bool, str]:
        if not self.ready.is_set():
            if isinstance(self.source, KubeSource | FeedSource) and not self.source.synced.is_set():
                return False, "the source has not listed every watched kind yet"
            return False, "the xDS server is not serving yet"
        return True, "ok"


async def _await(task: asyncio.Task[None]) -> None:
    await task


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="osm-controller", description="The OSM control plane.")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--local",
        metavar="DIR",
        type=Path,
        help="run on a directory of Kubernetes YAML instead of a cluster",
    )
    source.add_argument("--feed-fd", type=int, help=argparse.SUPPRESS)  # the local runtime's feed
    p.add_argument(
        "--kubeconfig",
        help="the cluster's kubeconfig (default: $KUBECONFIG, ~/.kube/config, else in-cluster)",
    )
    p.add_argument("--state-dir", metavar="DIR", type=Path, help="where the local mesh CA is kept (--local)")
    p.add_argument(
        "--ads-address",
        help=f"HOST:PORT for the ADS gRPC server (default: {DEFAULT_KUBE_ADS} on Kubernetes, "
        f"{DEFAULT_LOCAL_ADS} locally)",
    )
    p.add_argument(
        "--http-address",
        help=f"HOST:PORT for /health/ready, /health/alive and /version (default: {DEFAULT_KUBE_HTTP} on "
        "Kubernetes, none locally)",
    )
    p.add_argument(
        "--debug-address",
        help=f"HOST:PORT for the debug server while MeshConfig observability.enableDebugServer is true "
        f"(default: {DEFAULT_KUBE_DEBUG} on Kubernetes, none locally)",
    )
    p.add_argument(
        "--webhook-address",
        help=f"HOST:PORT of the validating webhook (default: {DEFAULT_KUBE_WEBHOOK} on Kubernetes; '': none)",
    )
    p.add_argument("--validator-webhook-config", default="", help="default: osm-validator-mesh-<mesh-name>")
    p.add_argument(
        "--ca-bundle-secret-name", default="osm-ca-bundle", help="the Secret that holds the mesh CA"
    )
    p.add_argument("--mesh-name", default="osm")
    p.add_argument("--osm-namespace", default="osm-system")
    p.add_argument("--trust-domain", default="cluster.local")
    p.add_argument("--verbosity", "-v", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"override a limit (repeatable): {', '.join(LIMIT_NAMES)}",
    )
    return p.parse_args(argv)


LIMIT_NAMES = [f.name for f in fields(AdsLimits)] + [f.name for f in fields(SourceLimits)]


def parse_limits(items: list[str]) -> tuple[AdsLimits, SourceLimits]:
    """`NAME=VALUE` overrides of the xDS server's and the manifest source's limits."""
    ads: dict[str, float] = {}
    source: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in LIMIT_NAMES:
            raise ValueError(
                f"--limit {item!r}: expected NAME=VALUE with NAME one of {', '.join(LIMIT_NAMES)}"
            )
        kind = next(f.type for f in (*fields(AdsLimits), *fields(SourceLimits)) if f.name == name)
        try:
            number = float(value) if kind in ("float", float) else int(value)
        except ValueError:
            raise ValueError(f"--limit {item!r}: {value!r} is not a number") from None
        if number < 0:
            raise ValueError(f"--limit {item!r}: must not be negative")
        (ads if name in AdsLimits.__dataclass_fields__ else source)[name] = number
    return replace(DEFAULT_LIMITS, **ads), replace(DEFAULT_SOURCE_LIMITS, **source)  # type: ignore[arg-type]


def fd_limits(limits: AdsLimits) -> AdsLimits:
    """Raise the soft file limit to what `max_connections` needs (plus room for everything else); when
    the hard limit is lower, lower max_connections to fit it, and say so."""
    room = 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = limits.max_connections + room
    if soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft < want:
        fitted = max(1, soft - room)
        log.warning(
            "the file limit (%d) allows %d xDS connections, not %d", soft, fitted, limits.max_connections
        )
        return replace(limits, max_connections=fitted)
    return limits


async def _serve(settings: Settings, kubeconfig: str | None = None) -> None:
    kube: KubeClient | None = None
    try:
        if settings.kubernetes:
            kube = await KubeClient.connect(kubeconfig)
            log.info("watching the Kubernetes API at %s", kube.host)
            controller = await Controller.on_kubernetes(settings, kube)
        else:
            controller = Controller(settings)
        await until_signalled(controller.run())
        log.info("controller stopped")
    finally:
        if kube is not None:
            await kube.close()


def settings_from(args: argparse.Namespace, limits: AdsLimits, source_limits: SourceLimits) -> Settings:
    """The settings of parsed arguments: Kubernetes unless --local (or the runtime's feed) is given."""
    kubernetes = args.local is None and args.feed_fd is None
    if not kubernetes and args.state_dir is None:
        raise ValueError("--state-dir is required with --local")
    return Settings(
        local_dir=args.local,
        feed_fd=args.feed_fd,
        state_dir=args.state_dir,
        ads_address=args.ads_address or (DEFAULT_KUBE_ADS if kubernetes else DEFAULT_LOCAL_ADS),
        http_address=args.http_address or (DEFAULT_KUBE_HTTP if kubernetes else None),
        debug_address=args.debug_address or (DEFAULT_KUBE_DEBUG if kubernetes else None),
        webhook_address=(
            args.webhook_address
            if args.webhook_address is not None
            else (DEFAULT_KUBE_WEBHOOK if kubernetes else None)
        ),
        validator_config_name=args.validator_webhook_config,
        mesh_name=args.mesh_name,
        osm_namespace=args.osm_namespace,
        trust_domain=args.trust_domain,
        tune_gc=True,
        limits=limits,
        source_limits=source_limits,
        kubernetes=kubernetes,
        ca_bundle_secret=args.ca_bundle_secret_name,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging_setup.setup(args.verbosity)
    try:
        limits, source_limits = parse_limits(args.limit)
    except ValueError as e:
        log.error("%s", e)
        return 2
    if args.local is not None and not args.local.is_dir():
        log.error("--local %s is not a directory", args.local)
        return 2
    try:
        settings = settings_from(args, fd_limits(limits), source_limits)
    except ValueError as e:
        log.error("%s", e)
        return 2
    return run(_serve(settings, args.kubeconfig), log)


if __name__ == "__main__":
    raise SystemExit(main())
