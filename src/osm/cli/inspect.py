"""`osm proxy get`, `osm policy check-pods|check-conflicts|explain`, `osm verify connectivity|control-plane`,
`osm support bug-report`: see into the mesh.

Each works on the local mesh when one runs on `--state-dir` (as `osm local`): a sidecar's admin
interface is read inside its pod's network namespace, and the mesh state is the runtime's (the objects
the control plane sees). Otherwise on Kubernetes (`--kubeconfig`): the mesh state is listed from the API
server as the controller would read it, and a sidecar's admin interface is read through the API
server's pod proxy.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from osm import errcode
from osm.catalog import MeshCatalog
from osm.cli.cluster import (
    DEPLOYMENTS,
    kubeconfig_option,
    mesh_name_option,
    namespace_option,
    with_kube,
)
from osm.cli.options import STATE_DIR
from osm.envoy.explain import ExplainError, Explanation, explain
from osm.injector.registration import default_config_name as injector_config_name
from osm.k8s import bugreport as kube_bugreport
from osm.k8s.client import ApiError, KubeClient
from osm.k8s.resources import MUTATING_WEBHOOKS, PODS, SERVICES, VALIDATING_WEBHOOKS
from osm.k8s.snapshot import snapshot
from osm.local import bugreport, netops
from osm.local.up import read_status
from osm.local.view import LocalView, ViewError
from osm.local.workloads import nat_of
from osm.models.k8s import LABEL_PROXY_UUID
from osm.state.snapshot import MeshState
from osm.validator.webhook import default_config_name as validator_config_name

# upstream's queries, and the admin path each reads
QUERIES = {
    "config_dump": "/config_dump",
    "clusters": "/clusters",
    "listeners": "/listeners",
    "routes": "/config_dump?resource=dynamic_route_configs",
    "stats": "/stats",
    "certs": "/certs",
    "ready": "/ready",
}


def _pod_ref(value: str, what: str) -> tuple[str, str]:
    ns, sep, name = value.partition("/")
    if not sep or not ns or not name:
        raise click.BadParameter(f"expected NAMESPACE/POD, got {value!r}", param_hint=what)
    return ns, name


def _view(state_dir: Path) -> LocalView:
    try:
        return LocalView.open(state_dir)
    except ViewError as e:
        raise click.ClickException(str(e)) from None


ADMIN_PORT = click.option(
    "--admin-port", default=15000, show_default=True, hidden=True, type=click.IntRange(1, 65535)
)


def kube_options(f: Any) -> Any:
    """--kubeconfig, --mesh-name, --osm-namespace: where the mesh is when no local one runs."""
    return kubeconfig_option(mesh_name_option(namespace_option(f)))


def _local(state_dir: Path) -> bool:
    return read_status(state_dir) is not None


async def _kube_state(kube: KubeClient, mesh_name: str, osm_namespace: str) -> MeshState:
    snap = await snapshot(kube, mesh_name=mesh_name, osm_namespace=osm_namespace)
    for note in snap.missing:
        click.echo(f"note: {note}", err=True)
    for reason in sorted(snap.rejected.values()):
        click.echo(f"note: left out, as the controller would: {reason}", err=True)
    return MeshState.build(snap.objects, mesh_name=mesh_name, osm_namespace=osm_namespace)


def _state(state_dir: Path, kubeconfig: str | None, mesh_name: str, osm_namespace: str) -> MeshState:
    """The mesh's state: the local mesh's on `state_dir` if one runs there, else the cluster's."""
    if _local(state_dir):
        return _view(state_dir).state()

    async def load(kube: KubeClient) -> MeshState:
        return await _kube_state(kube, mesh_name, osm_namespace)

    return with_kube(kubeconfig, load)


@click.group("proxy")
def proxy_group() -> None:
    """Read a sidecar's Envoy admin interface."""


@proxy_group.command("get")
@click.argument("query", type=click.Choice(sorted(QUERIES)))
@click.argument("pod")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-f", "--file", "out", type=click.Path(dir_okay=False, path_type=Path), help="write it here")
@ADMIN_PORT
@kubeconfig_option
@STATE_DIR
def proxy_get(
    query: str,
    pod: str,
    namespace: str,
    out: Path | None,
    admin_port: int,
    kubeconfig: str | None,
    state_dir: Path,
) -> None:
    """Print QUERY (config_dump, clusters, listeners, routes, stats, certs, ready) of POD's sidecar: in
    the local mesh on --state-dir when one runs there, else on Kubernetes (through the API server's pod
    proxy to the sidecar's admin port)."""
    path = QUERIES[query]
    if _local(state_dir):
        view = _view(state_dir)
        try:
            status, body = view.admin(namespace, pod, path)
        except (ViewError, netops.NetError, OSError) as e:
            raise click.ClickException(f"pod {namespace}/{pod}: {e}") from None
        if status != 200:
            raise click.ClickException(
                f"pod {namespace}/{pod}: the sidecar answered {status}: {body[:200]!r}"
            )
    else:
        proxied = f"{PODS.path(namespace, pod)}:{admin_port}/proxy{path}"

        async def fetch(kube: KubeClient) -> bytes:
            return await kube.get_bytes(proxied)

        try:
            body = with_kube(kubeconfig, fetch)
        except click.ClickException as e:
            raise click.ClickException(f"pod {namespace}/{pod}: {e.message}") from None
    if out is not None:
        out.write_bytes(body)
        click.echo(f"wrote {len(body)} bytes to {out}")
    else:
        click.echo(body.decode(errors="replace"), nl=False)


@click.group("policy")
def policy_group() -> None:
    """What the mesh's policies allow."""


def _explain(state: MeshState, src: tuple[str, str], dst: tuple[str, str], **kw: Any) -> Explanation:
    try:
        return explain(state, src, dst, nat=nat_of(state), **kw)
    except ExplainError as e:
        raise click.ClickException(str(e)) from None


def _print(e: Explanation, src: tuple[str, str], dst: tuple[str, str]) -> None:
    verdict = "ALLOWED" if e.allowed else "DENIED"
    r = e.request
    what = f"{r.get('method', '')} {r.get('host', r['ip'])}:{r['port']}{r.get('path', '')}".strip()
    click.echo(f"{verdict}: {src[0]}/{src[1]} -> {dst[0]}/{dst[1]} ({what}, {r['protocol']}, {e.mode} mode)")
    click.echo(f"  {e.reason}")
    if e.status is not None:
        click.echo(f"  the client gets HTTP {e.status}")
    for hop in e.hops:
        click.echo(f"  via {hop}")
    for kind, names in sorted(e.objects.items()):
        if names:
            click.echo(f"  {kind}: {', '.join(names)}")


@policy_group.command("explain")
@click.argument("source")
@click.argument("destination")
@click.option("--port", type=click.IntRange(1, 65535), help="the destination's service or pod port")
@click.option("--method", default="GET", show_default=True)
@click.option("--path", default="/", show_default=True)
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
@kube_options
@STATE_DIR
def policy_explain(
    source: str,
    destination: str,
    port: int | None,
    method: str,
    path: str,
    output: str,
    kubeconfig: str | None,
    mesh_name: str,
    osm_namespace: str,
    state_dir: Path,
) -> None:
    """Would a request from SOURCE (NS/POD) to DESTINATION (NS/POD) be allowed, and if not, why."""
    src, dst = _pod_ref(source, "SOURCE"), _pod_ref(destination, "DESTINATION")
    state = _state(state_dir, kubeconfig, mesh_name, osm_namespace)
    e = _explain(state, src, dst, port=port, method=method.upper(), path=path)
    if output == "json":
        click.echo(json.dumps(e.to_json(), indent=1))
    else:
        _print(e, src, dst)


@policy_group.command("check-conflicts")
@click.argument("kind", type=click.Choice(["IngressBackend"], case_sensitive=False))
@click.option("-n", "--namespace", required=True)
@kube_options
@STATE_DIR
def policy_check_conflicts(
    kind: str, namespace: str, kubeconfig: str | None, mesh_name: str, osm_namespace: str, state_dir: Path
) -> None:
    """Whether resources of KIND in NAMESPACE conflict (IngressBackends claiming one backend port)."""
    state = _state(state_dir, kubeconfig, mesh_name, osm_namespace)
    conflicts = MeshCatalog(state).ingress_conflicts(namespace)
    for c in conflicts:
        click.echo(f"[+] {c}")
    if not conflicts:
        click.echo(f"No conflicts among IngressBackend resources in namespace {namespace}")


@policy_group.command("check-pods")
@click.argument("source")
@click.argument("destination")
@kube_options
@STATE_DIR
def policy_check_pods(
    source: str,
    destination: str,
    kubeconfig: str | None,
    mesh_name: str,
    osm_namespace: str,
    state_dir: Path,
) -> None:
    """Whether SMI policies let SOURCE (NS/POD) reach DESTINATION (NS/POD), and which TrafficTargets."""
    src, dst = _pod_ref(source, "SOURCE"), _pod_ref(destination, "DESTINATION")
    state = _state(state_dir, kubeconfig, mesh_name, osm_namespace)
    for ns, name in (src, dst):
        if (ns, name) not in state.pods:
            raise click.ClickException(f"no pod {ns}/{name}")
    if state.permissive:
        click.echo(f"[+] permissive mode: {src[0]}/{src[1]} may reach {dst[0]}/{dst[1]} without SMI policies")
        return
    e = _explain(state, src, dst)
    allowing = e.objects.get("traffic_targets_allowing", [])
    if allowing:
        click.echo(f"[+] {src[0]}/{src[1]} is allowed to reach {dst[0]}/{dst[1]} by: {', '.join(allowing)}")
    else:
        click.echo(f"[-] no TrafficTarget allows {src[0]}/{src[1]} to reach {dst[0]}/{dst[1]}")
        raise SystemExit(1)


@click.group("verify")
def verify_group() -> None:
    """Check the mesh end to end."""


def _try(view: LocalView, src: tuple[str, str], e: Explanation) -> tuple[bool, str]:
    """Send the request for real from the source pod: whether the destination's app answered."""
    pod = view.pod(*src)
    r = e.request
    try:
        if "host" in r:
            status, _ = netops.http_fetch_in_netns(
                pod["netns"], r["port"], r.get("path", "/"), host=r["ip"], host_header=r["host"], timeout=5
            )
            ok = status not in (403, 404, 429, 502, 503, 504)
            return ok, f"HTTP {status}"
        with netops.connect_in_netns(pod["netns"], r["ip"], r["port"], 5) as s:
            s.settimeout(1.0)
            try:
                closed = s.recv(1) == b""
            except TimeoutError:
                closed = False  # open and quiet: the server waits for the client
            return not closed, "the connection was closed at once" if closed else "connected"
    except (OSError, netops.NetError) as err:
        return False, f"no connection: {err}"


@verify_group.command("connectivity")
@click.option("--from-pod", "from_pod", required=True, metavar="NS/POD")
@click.option("--to-pod", "to_pod", required=True, metavar="NS/POD")
@click.option("--to-port", type=click.IntRange(1, 65535), help="the destination's service or pod port")
@click.option("--app-protocol", type=click.Choice(["http", "tcp", "grpc"]), help="default: the port's")
@click.option("--path", default="/", show_default=True, help="the HTTP request's path")
@ADMIN_PORT
@kube_options
@STATE_DIR
def verify_connectivity(
    from_pod: str,
    to_pod: str,
    to_port: int | None,
    app_protocol: str | None,
    path: str,
    admin_port: int,
    kubeconfig: str | None,
    mesh_name: str,
    osm_namespace: str,
    state_dir: Path,
) -> None:
    """Exit 0 when FROM-POD can talk to TO-POD; else non-zero, with the reason (the configuration's
    explanation, as `osm policy explain`). Locally the request is sent for real from FROM-POD; on
    Kubernetes the sidecars' own configuration is checked (FROM-POD's routes to TO-POD, TO-POD's is
    live)."""
    src, dst = _pod_ref(from_pod, "--from-pod"), _pod_ref(to_pod, "--to-pod")
    if _local(state_dir):
        view = _view(state_dir)
        e = _explain(view.state(), src, dst, port=to_port, path=path)
        if app_protocol == "tcp" and "host" in e.request:
            e.request = {k: v for k, v in e.request.items() if k in ("ip", "port")} | {"protocol": "tcp"}
        ok, seen = _try(view, src, e)
    else:

        async def check(kube: KubeClient) -> tuple[Explanation, bool, str]:
            state = await _kube_state(kube, mesh_name, osm_namespace)
            e = _explain(state, src, dst, port=to_port, path=path)
            ok, seen = await _sidecars_agree(kube, state, src, dst, e, admin_port)
            return e, ok, seen

        e, ok, seen = with_kube(kubeconfig, check)
    if ok and e.allowed:
        click.echo(f"[+] {src[0]}/{src[1]} can talk to {dst[0]}/{dst[1]} ({seen})")
        return
    click.echo(f"[-] {src[0]}/{src[1]} cannot talk to {dst[0]}/{dst[1]} ({seen})")
    _print(e, src, dst)
    if e.allowed:
        click.echo("  the configuration allows it: look at the destination's app and the sidecars' logs")
    raise SystemExit(1)


async def _sidecars_agree(
    kube: KubeClient,
    state: MeshState,
    src: tuple[str, str],
    dst: tuple[str, str],
    e: Explanation,
    admin_port: int,
) -> tuple[bool, str]:
    """Whether the sidecars have what the explanation says they should: the source's a cluster of the
    destination's Service with the destination's pod among its endpoints, the destination's (if it has
    one) its configuration in place (`/ready`: LIVE)."""

    def admin(pod: tuple[str, str], path: str) -> str:
        return f"{PODS.path(*pod)}:{admin_port}/proxy{path}"

    source, dest = state.pods[src], state.pods[dst]
    if LABEL_PROXY_UUID not in source.meta.labels:
        return True, "the source has no sidecar"
    services = e.objects.get("services", [])
    if not e.allowed or not services:
        return True, "not checked against the sidecars: " + ("denied" if not e.allowed else "no Service")
    prefix = f"{services[0]}|"
    try:
        clusters = (await kube.get_bytes(admin(src, "/clusters"))).decode(errors="replace")
    except (ApiError, OSError) as err:
        return False, f"the source's sidecar does not answer: {err}"
    lines = [line for line in clusters.splitlines() if line.startswith(prefix)]
    if not lines:
        return (
            False,
            f"the source's sidecar has no cluster {prefix}* (not configured by the control plane yet?)",
        )
    if dest.pod_ip and not any(f"::{dest.pod_ip}:" in line for line in lines):
        return False, f"the source's sidecar has no endpoint {dest.pod_ip} in {prefix}*"
    cluster = lines[0].split("::", 1)[0]
    if LABEL_PROXY_UUID in dest.meta.labels:
        try:
            ready = (await kube.get_bytes(admin(dst, "/ready"))).decode(errors="replace").strip()
        except (ApiError, OSError) as err:
            return False, f"the destination's sidecar does not answer: {err}"
        if ready != "LIVE":
            return False, f"the destination's sidecar is {ready or 'not ready'}"
    return True, f"the source's sidecar routes to {dest.pod_ip} in {cluster}; the destination's is live"


@click.group("support")
def support_group() -> None:
    """Help with problems."""


@support_group.command("error-info")
@click.argument("code", required=False)
def support_error_info(code: str | None) -> None:
    """The error codes log lines carry (`err_code`), or the meaning of CODE."""
    if code is not None:
        found = errcode.lookup(code.upper())
        if found is None:
            raise click.ClickException(f"no error code {code!r} (`osm support error-info` lists them)")
        click.echo(f"{found.code}  {found.name}\n  {found.meaning}")
        return
    for c in errcode.table():
        click.echo(f"{c.code}  {c.name}\n  {c.meaning}")


@verify_group.command("control-plane")
@kube_options
@STATE_DIR
def verify_control_plane(kubeconfig: str | None, mesh_name: str, osm_namespace: str, state_dir: Path) -> None:
    """Check that the control plane runs, is ready, and serves xDS; exit non-zero naming what is not."""
    if _local(state_dir):
        checks = _local_control_plane(_view(state_dir))
    else:

        async def run(kube: KubeClient) -> list[tuple[str, bool, str]]:
            return await _kube_control_plane(kube, mesh_name, osm_namespace)

        checks = with_kube(kubeconfig, run)
    for what, ok, detail in checks:
        click.echo(f"[{'+' if ok else '-'}] {what}: {detail}")
    if not all(ok for _, ok, _ in checks):
        raise SystemExit(1)


def _local_control_plane(view: LocalView) -> list[tuple[str, bool, str]]:
    ctrl = view.status.get("controller") or {}
    node = view.status.get("node_netns", "")
    checks: list[tuple[str, bool, str]] = []
    checks.append(("controller process", bool(ctrl.get("running")), f"pid {ctrl.get('pid')}"))
    host, _, port = str(ctrl.get("http", "")).rpartition(":")
    try:
        status, body = netops.http_fetch_in_netns(node, int(port), "/health/ready", host=host, timeout=5)
        checks.append(("/health/ready", status == 200, body.decode(errors="replace").strip()))
    except (OSError, netops.NetError, ValueError) as e:
        checks.append(("/health/ready", False, str(e)))
    ads_host, _, ads_port = str(ctrl.get("ads", "")).rpartition(":")
    try:
        netops.connect_in_netns(node, ads_host, int(ads_port), 5).close()
        checks.append(("ADS (xDS) port", True, f"{ads_host}:{ads_port} accepts connections"))
    except (OSError, netops.NetError, ValueError) as e:
        checks.append(("ADS (xDS) port", False, f"{ads_host}:{ads_port}: {e}"))
    return checks


async def _kube_control_plane(kube: KubeClient, mesh_name: str, ns: str) -> list[tuple[str, bool, str]]:
    """The control plane's Deployments are ready, the controller answers /health/ready (through the
    API server's service proxy), and both webhook configurations carry a CA bundle."""
    checks: list[tuple[str, bool, str]] = []
    for name in ("osm-controller", "osm-injector", "osm-bootstrap"):
        try:
            d = await kube.get(DEPLOYMENTS.path(ns, name))
        except ApiError as e:
            checks.append((f"Deployment {ns}/{name}", False, e.message if e.status == 404 else str(e)))
            continue
        want = int((d.get("spec") or {}).get("replicas", 1))
        ready = int((d.get("status") or {}).get("readyReplicas") or 0)
        checks.append((f"Deployment {ns}/{name}", want >= 1 and ready >= want, f"{ready}/{want} ready"))
    try:
        body = await kube.get_bytes(f"{SERVICES.path(ns, 'osm-controller')}:9091/proxy/health/ready")
        checks.append(("osm-controller /health/ready", True, body.decode(errors="replace").strip()))
    except (ApiError, OSError) as e:
        checks.append(("osm-controller /health/ready", False, str(e)))
    for resource, name in (
        (MUTATING_WEBHOOKS, injector_config_name(mesh_name)),
        (VALIDATING_WEBHOOKS, validator_config_name(mesh_name)),
    ):
        what = f"{resource.kind} {name}"
        try:
            config = await kube.get(resource.path(name=name))
        except ApiError as e:
            checks.append((what, False, e.message if e.status == 404 else str(e)))
            continue
        hooks = config.get("webhooks") or []
        bundled = bool(hooks) and all((h.get("clientConfig") or {}).get("caBundle") for h in hooks)
        checks.append((what, bundled, "CA bundle in place" if bundled else "a webhook has no CA bundle"))
    return checks


@support_group.command("bug-report")
@click.option(
    "--out-file",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="default: osm-bug-report-<time>.tar.gz",
)
@click.option(
    "--max-pods",
    default=kube_bugreport.MAX_PODS,
    show_default=True,
    type=click.IntRange(0, 10_000),
    help="on Kubernetes: the meshed pods whose sidecars the report holds, at most",
)
@ADMIN_PORT
@kube_options
@STATE_DIR
def support_bug_report(
    out_file: Path | None,
    max_pods: int,
    admin_port: int,
    kubeconfig: str | None,
    mesh_name: str,
    osm_namespace: str,
    state_dir: Path,
) -> None:
    """One archive: control-plane logs and status, every sidecar's config dump, stats and log, the
    MeshConfig and policies (never a private key)."""
    out = out_file or Path(f"osm-bug-report-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz")
    if _local(state_dir):
        names = bugreport.collect(_view(state_dir), out)
    else:

        async def run(kube: KubeClient) -> list[str]:
            return await kube_bugreport.collect(
                kube,
                out,
                mesh_name=mesh_name,
                osm_namespace=osm_namespace,
                admin_port=admin_port,
                max_pods=max_pods,
            )

        names = with_kube(kubeconfig, run)
    click.echo(f"wrote {out} ({len(names)} files)")
