"""`osm proxy get`, `osm policy check-pods|explain`, `osm verify connectivity`: see into the mesh.

They work on the local mesh (its pods found through the runtime's state directory, `--state-dir`, as
`osm local`): a sidecar's admin interface is read inside its pod's network namespace, and the mesh
state is the runtime's (the objects the control plane sees).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from osm import errcode
from osm.catalog import MeshCatalog
from osm.cli.cluster import with_kube
from osm.envoy.explain import ExplainError, Explanation, explain
from osm.k8s.client import KubeClient
from osm.local import bugreport, netops
from osm.local.up import read_status
from osm.local.view import LocalView, ViewError
from osm.local.workloads import nat_of

STATE_DIR = click.option(
    "--state-dir",
    default="/var/lib/osm-local",
    show_default=True,
    envvar="OSM_LOCAL_STATE_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="the local mesh's state directory (as `osm local`)",
)

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


@click.group("proxy")
def proxy_group() -> None:
    """Read a sidecar's Envoy admin interface."""


@proxy_group.command("get")
@click.argument("query", type=click.Choice(sorted(QUERIES)))
@click.argument("pod")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-f", "--file", "out", type=click.Path(dir_okay=False, path_type=Path), help="write it here")
@click.option("--admin-port", default=15000, show_default=True, hidden=True, type=click.IntRange(1, 65535))
@click.option("--kubeconfig", envvar="KUBECONFIG", default=None, help="on Kubernetes: the cluster's")
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
    if read_status(state_dir) is not None:
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
        proxied = f"/api/v1/namespaces/{namespace}/pods/{pod}:{admin_port}/proxy{path}"

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


def _explain(view: LocalView, src: tuple[str, str], dst: tuple[str, str], **kw: Any) -> Explanation:
    state = view.state()
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
@STATE_DIR
def policy_explain(
    source: str, destination: str, port: int | None, method: str, path: str, output: str, state_dir: Path
) -> None:
    """Would a request from SOURCE (NS/POD) to DESTINATION (NS/POD) be allowed, and if not, why."""
    src, dst = _pod_ref(source, "SOURCE"), _pod_ref(destination, "DESTINATION")
    e = _explain(_view(state_dir), src, dst, port=port, method=method.upper(), path=path)
    if output == "json":
        click.echo(json.dumps(e.to_json(), indent=1))
    else:
        _print(e, src, dst)


@policy_group.command("check-conflicts")
@click.argument("kind", type=click.Choice(["IngressBackend"], case_sensitive=False))
@click.option("-n", "--namespace", required=True)
@STATE_DIR
def policy_check_conflicts(kind: str, namespace: str, state_dir: Path) -> None:
    """Whether resources of KIND in NAMESPACE conflict (IngressBackends claiming one backend port)."""
    conflicts = MeshCatalog(_view(state_dir).state()).ingress_conflicts(namespace)
    for c in conflicts:
        click.echo(f"[+] {c}")
    if not conflicts:
        click.echo(f"No conflicts among IngressBackend resources in namespace {namespace}")


@policy_group.command("check-pods")
@click.argument("source")
@click.argument("destination")
@STATE_DIR
def policy_check_pods(source: str, destination: str, state_dir: Path) -> None:
    """Whether SMI policies let SOURCE (NS/POD) reach DESTINATION (NS/POD), and which TrafficTargets."""
    src, dst = _pod_ref(source, "SOURCE"), _pod_ref(destination, "DESTINATION")
    view = _view(state_dir)
    state = view.state()
    for ns, name in (src, dst):
        if (ns, name) not in state.pods:
            raise click.ClickException(f"no pod {ns}/{name}")
    if state.permissive:
        click.echo(f"[+] permissive mode: {src[0]}/{src[1]} may reach {dst[0]}/{dst[1]} without SMI policies")
        return
    e = _explain(view, src, dst)
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
@STATE_DIR
def verify_connectivity(
    from_pod: str, to_pod: str, to_port: int | None, app_protocol: str | None, path: str, state_dir: Path
) -> None:
    """Exit 0 when FROM-POD can talk to TO-POD; else non-zero, with the reason (the configuration's
    explanation, as `osm policy explain`)."""
    src, dst = _pod_ref(from_pod, "--from-pod"), _pod_ref(to_pod, "--to-pod")
    view = _view(state_dir)
    e = _explain(view, src, dst, port=to_port, path=path)
    if app_protocol == "tcp" and "host" in e.request:
        e.request = {k: v for k, v in e.request.items() if k in ("ip", "port")} | {"protocol": "tcp"}
    ok, seen = _try(view, src, e)
    if ok and e.allowed:
        click.echo(f"[+] {src[0]}/{src[1]} can talk to {dst[0]}/{dst[1]} ({seen})")
        return
    click.echo(f"[-] {src[0]}/{src[1]} cannot talk to {dst[0]}/{dst[1]} ({seen})")
    _print(e, src, dst)
    if e.allowed:
        click.echo("  the configuration allows it: look at the destination's app and the sidecars' logs")
    raise SystemExit(1)


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
@STATE_DIR
def verify_control_plane(state_dir: Path) -> None:
    """Check that the control plane runs, is ready, and serves xDS; exit non-zero naming what is not."""
    view = _view(state_dir)
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
    for what, ok, detail in checks:
        click.echo(f"[{'+' if ok else '-'}] {what}: {detail}")
    if not all(ok for _, ok, _ in checks):
        raise SystemExit(1)


@support_group.command("bug-report")
@click.option(
    "--out-file",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="default: osm-bug-report-<time>.tar.gz",
)
@STATE_DIR
def support_bug_report(out_file: Path | None, state_dir: Path) -> None:
    """One archive: control-plane logs and status, every container's log, every sidecar's config dump
    and stats, the MeshConfig and policies (never a private key)."""
    view = _view(state_dir)
    out = out_file or Path(f"osm-bug-report-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz")
    names = bugreport.collect(view, out)
    click.echo(f"wrote {out} ({len(names)} files)")
