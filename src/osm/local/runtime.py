"""The local runtime: kubelet, endpoints controller and kube-proxy for a directory of manifests.

It watches the same Store as the control plane. Each pod becomes a network namespace on the node's
bridge; a meshed pod gets exactly what the injector would give it: the init container's iptables rules,
Envoy as uid 1500 with the bootstrap the injector would write, then its app containers. Pod IPs and
readiness go back into the Store (the catalog derives endpoints from them); Services get ClusterIPs,
DNS names (a hosts file per pod) and NAT to their ready endpoints in the node namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from osm.apis.meshconfig import IngressGatewayCertSpec
from osm.certificate import ingressgateway
from osm.certificate.manager import XDS_CERT_VALIDITY
from osm.certificate.tresor import TresorCA
from osm.envoy.bootstrap.bootstrap import DRAIN_ARGS
from osm.envoy.common import PORT_METRICS
from osm.injector.iptables import iptables_config_for_pod, iptables_rules
from osm.injector.patch import HEALTHCHECK_CONTAINER, HEALTHCHECK_UID
from osm.injector.probes import rewrite_probes
from osm.local import netops, prometheus
from osm.local.bootstrap import renew_certificate, write_bootstrap
from osm.local.envoybin import envoy_binary
from osm.local.netplan import NODE_IP, Pool, cluster_ip, hosts_file, pod_env, pod_netns, service_nat_rules
from osm.local.prober import ContainerProbes, Prober
from osm.local.supervisor import ContainerProcess
from osm.local.view import write_objects
from osm.local.workloads import (
    REVISION_LABEL,
    TEMPLATE_HASH_LABEL,
    Placement,
    env_values,
    generated_name,
    owner,
    placement,
    pod_for_deployment,
    pod_for_statefulset,
    secret_dir,
    service_entries,
    service_nat,
    spec_fingerprint,
    template_hash,
    with_status,
)
from osm.models.k8s import Container, Pod, Probe, Service, StatefulSet
from osm.state.decode import MeshObject, ObjectKey
from osm.state.snapshot import MeshState
from osm.state.store import Store

log = logging.getLogger(__name__)

PROXY_UID = 1500
ENVOY_ADMIN_PORT = 15000
RENEW_RETRY = 1.0  # seconds: the shortest wait between renewals of a sidecar certificate
PYTHON_NAMES = frozenset({"python", "python3", f"python3.{sys.version_info.minor}"})


@dataclass
class LocalPod:
    namespace: str
    name: str
    index: int
    ip: str
    netns: str
    meshed: bool
    owner: str
    fingerprint: str
    pod: Pod
    dir: Path
    containers: list[ContainerProcess] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    ready: bool = False
    container_ready: dict[str, bool] = field(default_factory=dict)  # app containers, by name
    phase: str = "starting"
    started: float = field(default_factory=time.time)


async def keep_renewed(
    sidecar: Path, pod: Pod, expires: datetime, *, state_dir: Path, validity: timedelta, uid: int | None
) -> None:
    """Renew a sidecar's xDS client certificate whenever a third of its lifetime is left (retrying
    every few seconds if that fails), until cancelled."""
    lifetime = validity.total_seconds()
    while True:
        left = (expires - datetime.now(UTC)).total_seconds()
        await asyncio.sleep(max(RENEW_RETRY, left - lifetime / 3))
        try:
            expires = await asyncio.to_thread(
                renew_certificate, sidecar, pod, state_dir=state_dir, validity=validity, uid=uid
            )
        except Exception as e:
            log.error(
                "pod %s/%s: cannot renew its sidecar certificate: %s", pod.meta.namespace, pod.meta.name, e
            )
            expires = datetime.now(UTC) + timedelta(seconds=lifetime / 3 + RENEW_RETRY)


def resolve_argv(c: Container) -> list[str]:
    """The container's command + args on this machine (`python` means this interpreter)."""
    argv = [*c.command, *c.args]
    if not argv:
        raise ValueError(f"container {c.name!r} has no command: the local runtime runs commands, not images")
    if argv[0] in PYTHON_NAMES:
        argv[0] = sys.executable
    return argv


class Runtime:
    def __init__(
        self,
        store: Store,
        *,
        state_dir: Path,
        sid: str,
        node_ns: str,
        ads_port: int,
        proxy_known: Callable[[str], bool] = lambda uuid: True,
        xds: str = "sotw",
        xds_cert_validity: timedelta = XDS_CERT_VALIDITY,
        extra_status: Callable[[], dict[str, Any]] = dict,
        prometheus_targets: Path | None = None,
        watching: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        self.state_dir = state_dir
        self.sid = sid
        self.node_ns = node_ns
        self.ads_port = ads_port
        self.proxy_known = proxy_known
        self.xds = xds
        self.xds_cert_validity = xds_cert_validity
        self.extra_status = extra_status
        self.watching = watching  # whether edits of the manifests are seen yet (ready waits for it)
        self.prometheus_targets = prometheus_targets  # the sidecars Prometheus scrapes (file_sd), if it runs
        self._targets: list[dict[str, Any]] | None = None
        self.pods: dict[tuple[str, str], LocalPod] = {}
        self.pool = Pool()
        self._cluster_ips: dict[tuple[str, str], str] = {}
        self._dirty = asyncio.Event()
        self._nat = ""
        self._services: list[Any] = []
        self.events: list[str] = []
        self.ready = asyncio.Event()
        self._stopping: set[asyncio.Task[None]] = set()
        self._gateway_dir: Path | None = None
        self._gateway_spec: IngressGatewayCertSpec | None = None
        self._gateway_due = 0.0  # monotonic time of the next check (inf: nothing to keep)
        self._gateway_timer: asyncio.TimerHandle | None = None
        self._sidecar_level: str | None = None  # MeshConfig sidecar.logLevel, as the sidecars have it
        self._level_task: asyncio.Task[None] | None = None
        store.add_mutator(self._admit)
        store.subscribe(self._changed)
        self._objects_changed = True

    # ---- admission: ClusterIPs for Services, runtime status for the pods it runs

    def _admit(self, obj: MeshObject) -> MeshObject:
        if isinstance(obj, Service) and not obj.cluster_ip:
            key = (obj.meta.namespace, obj.meta.name)
            ip = self._cluster_ips.get(key) or cluster_ip(key[0], key[1], self._cluster_ips.values())
            self._cluster_ips[key] = ip
            return replace(obj, cluster_ip=ip)
        if isinstance(obj, Pod):
            lp = self.pods.get((obj.meta.namespace, obj.meta.name))
            if lp is not None and lp.owner == owner(obj):
                return with_status(obj, lp.ip, lp.ready)
        return obj

    def _changed(self, _: Any) -> None:
        self._objects_changed = True
        self._dirty.set()

    def poke(self) -> None:
        """Something the status shows changed: reconcile and write the status again."""
        self._dirty.set()

    def event(self, text: str) -> None:
        log.info("%s", text)
        self.events = [*self.events[-49:], f"{time.strftime('%H:%M:%S')} {text}"]

    # ---- main loop

    async def run(self) -> None:
        try:
            while True:
                await self._dirty.wait()
                self._dirty.clear()
                try:
                    self.reconcile()
                except Exception:
                    log.exception("reconcile failed")
                self.write_status()
                await asyncio.sleep(0.05)
        finally:
            await self.teardown()

    def state(self) -> MeshState:
        return MeshState.build(
            self.store.values(), mesh_name=self.store.mesh_name, osm_namespace=self.store.osm_namespace
        )

    def reconcile(self) -> None:
        state = self.state()
        desired: dict[tuple[str, str], Placement] = {}
        for (ns, name), pod in state.pods.items():
            if not owner(pod):
                desired[(ns, name)] = placement(state, pod)
        for (ns, dname), d in sorted(state.deployments.items()):
            thash = template_hash(d)
            current = [
                lp
                for lp in self._owned(ns, f"Deployment/{dname}")
                if lp.pod.meta.labels.get(TEMPLATE_HASH_LABEL) == thash
            ]
            for lp in current[: d.replicas]:
                desired[(ns, lp.name)] = placement(state, lp.pod)
            for _ in range(d.replicas - len(current)):
                pod = pod_for_deployment(d, generated_name(dname, thash), thash)
                desired[(ns, pod.meta.name)] = placement(state, pod)
        for _key, sts in sorted(state.statefulsets.items()):
            desired.update(self._statefulset_pods(state, sts))
        for key, lp in list(self.pods.items()):
            want = desired.get(key)
            if lp.phase == "stopping":
                continue
            if (
                want is None
                or spec_fingerprint(want.pod.meta, want.pod.spec) != lp.fingerprint
                or want.meshed != lp.meshed
            ):
                self._stop(lp, "deleted" if want is None else "changed")
        for key, want in desired.items():
            if want.error:
                self.event(want.error)
                continue
            if key not in self.pods:
                self._start(want, state)
        self._sync_services(state)
        self._sync_ingress_gateway(state)
        self._sync_sidecar_log_level(state.mesh_config.sidecar.log_level)
        if not self.ready.is_set() and self.watching():
            self.ready.set()

    def _statefulset_pods(self, state: MeshState, sts: StatefulSet) -> dict[tuple[str, str], Placement]:
        """As the StatefulSet controller: ordinals 0..N-1 are kept; a missing one is created when every
        lower one is ready (OrderedReady) or at once (Parallel); after a template change, the highest
        ordinal still on the old revision is replaced, one at a time, once all are ready."""
        ns, sname = sts.meta.namespace, sts.meta.name
        thash = template_hash(sts)
        revision = f"{sname}-{thash}"
        running = {lp.name: lp for lp in self._owned(ns, f"StatefulSet/{sname}")}
        out: dict[tuple[str, str], Placement] = {}
        all_ready = True
        for ordinal in range(sts.replicas):
            have = running.get(f"{sname}-{ordinal}")
            if have is not None:
                out[(ns, have.name)] = placement(state, have.pod)
                all_ready = all_ready and have.ready
            elif all_ready or sts.parallel:
                pod = pod_for_statefulset(sts, ordinal, thash)
                out[(ns, pod.meta.name)] = placement(state, pod)
                all_ready = False
        if all_ready:
            for ordinal in reversed(range(sts.replicas)):
                have = running[f"{sname}-{ordinal}"]
                if have.pod.meta.labels.get(REVISION_LABEL) != revision:
                    out[(ns, have.name)] = placement(state, pod_for_statefulset(sts, ordinal, thash))
                    break
        return out

    def _owned(self, ns: str, owner_ref: str) -> list[LocalPod]:
        """The running pods of a workload, oldest first."""
        mine = (lp for lp in self.pods.values() if lp.owner == owner_ref and lp.namespace == ns)
        return sorted((lp for lp in mine if lp.phase != "stopping"), key=lambda lp: lp.started)

    # ---- the sidecars' log level: MeshConfig sidecar.logLevel, live (Envoy's admin /logging)

    def _sync_sidecar_log_level(self, level: str) -> None:
        """Sidecars start at the MeshConfig's level; when it changes, the running ones are set to it."""
        before, self._sidecar_level = self._sidecar_level, level
        if before is None or before == level:
            return
        if self._level_task is not None:
            self._level_task.cancel()
        running = [lp for lp in self.pods.values() if lp.meshed and lp.phase == "running"]
        self._level_task = asyncio.get_running_loop().create_task(self._set_sidecar_level(running, level))

    async def _set_sidecar_level(self, pods: list[LocalPod], level: str) -> None:
        done = 0
        for lp in pods:
            try:
                status, body = await asyncio.to_thread(
                    netops.http_fetch_in_netns,
                    lp.netns,
                    ENVOY_ADMIN_PORT,
                    f"/logging?level={level}",
                    method="POST",
                    timeout=5,
                )
            except (OSError, netops.NetError) as e:
                status, body = 0, str(e).encode()
            if status == 200:
                done += 1
            else:
                self.event(
                    f"pod {lp.namespace}/{lp.name}: sidecar log level not set to {level}: "
                    f"{status or ''} {body[:200].decode(errors='replace')}".rstrip()
                )
        self.event(f"sidecar log level {level} set in {done} of {len(pods)} running sidecars")

    # ---- the ingress gateway's certificate: the Secret MeshConfig names, as files under the state dir

    def _sync_ingress_gateway(self, state: MeshState) -> None:
        """Checked when the MeshConfig's spec changes, and again when a third of the lifetime is left
        (or a minute has passed); not on every reconcile (it reads the CA and the files)."""
        spec = state.mesh_config.certificate.ingress_gateway
        if spec == self._gateway_spec and time.monotonic() < self._gateway_due:
            return
        self._gateway_spec = spec
        where = None if spec is None else secret_dir(self.state_dir, spec.secret_namespace, spec.secret_name)
        if self._gateway_dir is not None and self._gateway_dir != where:
            shutil.rmtree(self._gateway_dir, ignore_errors=True)
            self.event(f"ingress gateway certificate removed from {self._gateway_dir}")
        self._gateway_dir = where
        if spec is None or where is None:
            self._gateway_due = float("inf")
            return
        now = datetime.now(UTC)
        ca = TresorCA.load_or_create(self.state_dir, now=now)
        current = {k: (where / k).read_bytes() for k in ingressgateway.KEYS if (where / k).is_file()}
        why = ingressgateway.why_reissue(spec, current or None, ca.trust_bundle_pem, now=now)
        if why:
            data = ingressgateway.issue(ca, spec, now=now)
            where.mkdir(parents=True, exist_ok=True)
            for key, content in data.items():
                tmp = where / f".{key}.tmp"
                tmp.write_bytes(content)
                tmp.chmod(0o600 if key == ingressgateway.TLS_KEY else 0o644)
                os.replace(tmp, where / key)
            self.event(
                f"ingress gateway certificate for {', '.join(spec.subject_alt_names)} issued into Secret "
                f"{spec.secret_namespace}/{spec.secret_name} ({where}): {why}"
            )
        # look again when a third of the lifetime is left (or in a minute, whichever is sooner)
        wait = min(60.0, spec.validity_duration / 3)
        self._gateway_due = time.monotonic() + wait
        if self._gateway_timer is not None:
            self._gateway_timer.cancel()
        self._gateway_timer = asyncio.get_running_loop().call_later(wait, self.poke)

    # ---- services: NAT in the node namespace, hosts files in every pod

    def _sync_services(self, state: MeshState) -> None:
        rules = service_nat_rules(service_nat(state))
        if rules != self._nat:
            netops.iptables_restore(self.node_ns, rules, noflush=False)
            self._nat = rules
        entries = service_entries(state)
        if entries != self._services:
            self._services = entries
            for lp in self.pods.values():
                if lp.phase != "stopping":
                    hosts = hosts_file(lp.namespace, lp.name, lp.ip, entries, lp.pod.spec.host_aliases)
                    netops.write_hosts(lp.netns, hosts)

    # ---- pods

    def _start(self, want: Placement, state: MeshState) -> None:
        pod = want.pod
        index, ip = self.pool.take()
        lp = LocalPod(
            namespace=pod.meta.namespace,
            name=pod.meta.name,
            index=index,
            ip=ip,
            netns=pod_netns(self.sid, index),
            meshed=want.meshed,
            owner=owner(pod),
            fingerprint=spec_fingerprint(pod.meta, pod.spec),
            pod=pod,
            dir=self.state_dir / "pods" / pod.meta.namespace / pod.meta.name,
        )
        self.pods[(lp.namespace, lp.name)] = lp
        task = asyncio.create_task(self._run_pod(lp, state), name=f"pod {lp.namespace}/{lp.name}")
        lp.tasks.append(task)

    def _publish(self, lp: LocalPod) -> None:
        """Put the pod, with its IP and readiness, into the Store (the control plane's view)."""
        self.store.apply(with_status(lp.pod, lp.ip, lp.ready))
        self._dirty.set()

    async def _run_pod(self, lp: LocalPod, state: MeshState) -> None:
        try:
            await self._setup_pod(lp, state)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.event(f"pod {lp.namespace}/{lp.name}: failed to start: {e}")
            log.exception("pod %s/%s failed to start", lp.namespace, lp.name)

    async def _setup_pod(self, lp: LocalPod, state: MeshState) -> None:
        if lp.dir.exists():
            shutil.rmtree(lp.dir)
        lp.dir.mkdir(parents=True)
        os.chmod(lp.dir, 0o755)
        await asyncio.to_thread(
            netops.create_pod,
            self.node_ns,
            lp.netns,
            lp.index,
            lp.ip,
            hosts_file(lp.namespace, lp.name, lp.ip, service_entries(state), lp.pod.spec.host_aliases),
        )
        self._publish(lp)
        spec = lp.pod.spec
        probes = rewrite_probes(spec.containers) if lp.meshed else None
        if lp.meshed:
            assert probes is not None
            cfg = iptables_config_for_pod(state.mesh_config, lp.pod.meta.annotations, lp.ip)
            await asyncio.to_thread(netops.iptables_restore, lp.netns, iptables_rules(cfg), noflush=True)
            uuid = lp.pod.proxy_uuid
            # The control plane must know the pod before its proxy connects, or it refuses the proxy.
            await self._wait(lambda: self.proxy_known(uuid), 10)
            sidecar = lp.dir / "sidecar"
            side = state.mesh_config.sidecar
            written = await asyncio.to_thread(
                write_bootstrap,
                lp.pod,
                state_dir=self.state_dir,
                out=sidecar,
                ads_host=NODE_IP,
                ads_port=self.ads_port,
                admin_port=ENVOY_ADMIN_PORT,
                xds=self.xds,
                probes=probes.routes,
                validity=self.xds_cert_validity,
                uid=PROXY_UID,
                tls_versions=(side.tls_min_protocol_version, side.tls_max_protocol_version),
                # 15010 as the injector's bootstrap: /ready and Envoy's Prometheus stats
                metrics_port=PORT_METRICS,
            )
            os.chown(sidecar, PROXY_UID, PROXY_UID)
            lp.tasks.append(
                asyncio.create_task(
                    keep_renewed(
                        sidecar,
                        lp.pod,
                        written.expires,
                        state_dir=self.state_dir,
                        validity=self.xds_cert_validity,
                        uid=PROXY_UID,
                    )
                )
            )
            argv = [
                envoy_binary(),
                "-c",
                str(sidecar / "bootstrap.yaml"),
                "--base-id",
                str(lp.index),
                "--concurrency",
                "1",
                "--log-level",
                state.mesh_config.sidecar.log_level,
                *DRAIN_ARGS,
                "--service-cluster",
                f"{lp.pod.service_account}.{lp.namespace}",
            ]
            self._add_container(lp, "envoy", netops.exec_args(lp.netns, argv, PROXY_UID), {"HOME": "/tmp"})
            if not await self._wait(
                lambda: netops.http_get_in_netns(lp.netns, ENVOY_ADMIN_PORT, "/ready") == 200, 30
            ):
                self.event(
                    f"pod {lp.namespace}/{lp.name}: sidecar not ready after 30 s; starting the app anyway"
                )
        if probes is not None and probes.healthcheck:
            argv = [sys.executable, "-m", "osm.cmd.healthcheck", "--verbosity", "warning"]
            self._add_container(
                lp, HEALTHCHECK_CONTAINER, netops.exec_args(lp.netns, argv, HEALTHCHECK_UID), {"HOME": "/tmp"}
            )
        for c in spec.containers:
            own, unset = env_values(c, lp.pod, lp.ip, NODE_IP)
            if unset:
                self.event(
                    f"pod {lp.namespace}/{lp.name}: container {c.name}: the local runtime has no "
                    f"Secrets or ConfigMaps; left unset: {', '.join(unset)}"
                )
            env = pod_env(lp.name, lp.namespace, lp.ip, lp.pod.service_account, str(lp.dir), own)
            cp = self._add_container(
                lp, c.name, netops.exec_args(lp.netns, resolve_argv(c), c.run_as_user), env
            )
            lp.container_ready[c.name] = False
            prober = Prober(
                cp,
                ContainerProbes(
                    *(
                        probes.probes.get((c.name, kind)) if probes else getattr(c, f"{kind}_probe")
                        for kind in ("startup", "liveness", "readiness")
                    )
                ),
                lambda p: asyncio.to_thread(self._probe_once, lp, p),
                set_ready=functools.partial(self._container_ready, lp, c.name),
                event=lambda text: self.event(f"pod {lp.namespace}/{lp.name}: {text}"),
            )
            lp.tasks.append(
                asyncio.create_task(prober.run(), name=f"probes {lp.namespace}/{lp.name}/{c.name}")
            )
        lp.phase = "running"
        self.event(f"pod {lp.namespace}/{lp.name} started ({lp.ip}{', meshed' if lp.meshed else ''})")

    def _container_ready(self, lp: LocalPod, container: str, ready: bool) -> None:
        """A pod is ready when every app container is (as the kubelet's Ready condition)."""
        lp.container_ready[container] = ready
        pod_ready = lp.phase == "running" and all(lp.container_ready.values())
        if pod_ready != lp.ready:
            lp.ready = pod_ready
            self.event(f"pod {lp.namespace}/{lp.name} {'ready' if pod_ready else 'not ready'}")
            self._publish(lp)

    def _add_container(
        self, lp: LocalPod, name: str, argv: list[str], env: dict[str, str]
    ) -> ContainerProcess:
        cp = ContainerProcess(
            name=name,
            argv=argv,
            env=env,
            log_path=lp.dir / f"{name}.log",
            on_start=lambda pid: self.poke(),  # the status shows its new pid and restart count
        )
        lp.containers.append(cp)
        lp.tasks.append(asyncio.create_task(cp.run(), name=f"{lp.namespace}/{lp.name}/{name}"))
        return cp

    @staticmethod
    async def _wait(check: Callable[[], bool], within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await asyncio.to_thread(check):
                return True
            await asyncio.sleep(0.1)
        return False

    def _probe_once(self, lp: LocalPod, probe: Probe) -> bool:
        """One probe, as the kubelet runs it: HTTP(S) and TCP from the node to the pod's IP, exec in the
        pod. HTTP succeeds on 200-399."""
        port = probe.port if isinstance(probe.port, int) else lp.pod.spec.container_port(probe.port)
        if port is None:
            return False
        if probe.kind == "httpGet":
            code = netops.http_get_in_netns(
                self.node_ns,
                port,
                probe.path or "/",
                timeout=probe.timeout_seconds,
                host=lp.ip,
                https=probe.scheme == "HTTPS",
                headers=probe.headers,
            )
            return 200 <= code < 400
        if probe.kind == "tcpSocket":
            try:
                netops.connect_in_netns(self.node_ns, lp.ip, port, probe.timeout_seconds).close()
                return True
            except (OSError, netops.NetError, TimeoutError):
                return False
        return (
            netops.run_rc(*netops.exec_args(lp.netns, probe.command, None), timeout=probe.timeout_seconds)
            == 0
        )

    def _stop(self, lp: LocalPod, why: str) -> None:
        lp.phase = "stopping"
        self.event(f"pod {lp.namespace}/{lp.name} stopping ({why})")
        task = asyncio.create_task(self._teardown_pod(lp), name=f"stop {lp.namespace}/{lp.name}")
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _teardown_pod(self, lp: LocalPod) -> None:
        if lp.owner:  # the pod object is the runtime's: it goes away with the pod
            self.store.delete(ObjectKey("Pod", lp.namespace, lp.name))
        for cp in reversed(lp.containers):
            await cp.stop()
        for t in lp.tasks:
            t.cancel()
        for t in lp.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await asyncio.to_thread(netops.delete_netns, lp.netns)
        self.pool.release(lp.index)
        if self.pods.get((lp.namespace, lp.name)) is lp:
            del self.pods[(lp.namespace, lp.name)]
        self._dirty.set()

    async def teardown(self) -> None:
        if self._level_task is not None:
            self._level_task.cancel()
        pods = list(self.pods.values())
        await asyncio.gather(*(self._teardown_pod(lp) for lp in pods), return_exceptions=True)
        self.write_status()

    # ---- status for `osm local status/logs/exec`

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "ready": self.ready.is_set(),
            "node_netns": self.node_ns,
            "pods": [
                {
                    "namespace": lp.namespace,
                    "name": lp.name,
                    "ip": lp.ip,
                    "netns": lp.netns,
                    "meshed": lp.meshed,
                    "ready": lp.ready,
                    "phase": lp.phase,
                    "dir": str(lp.dir),
                    "containers": [
                        {
                            "name": c.name,
                            "pid": c.pid,
                            "running": c.running,
                            "restarts": c.restarts,
                            "log": str(c.log_path),
                        }
                        for c in lp.containers
                    ],
                }
                for lp in sorted(self.pods.values(), key=lambda p: (p.namespace, p.name))
            ],
            "events": self.events[-20:],
            **self.extra_status(),
        }

    def write_status(self) -> None:
        path = self.state_dir / "status.json"
        tmp = path.with_suffix(".tmp")
        status = self.status()
        tmp.write_text(json.dumps(status, indent=1))
        os.replace(tmp, path)
        if self._objects_changed:
            self._objects_changed = False
            write_objects(self.state_dir, self.store.values())
        if self.prometheus_targets is not None:
            targets = prometheus.sidecar_targets(self.state(), status["pods"])
            if targets != self._targets:
                self._targets = targets
                prometheus.write_targets(self.prometheus_targets, targets)
