"""The `osm` verbs for a Kubernetes cluster: install, uninstall mesh, namespace, mesh list, version.

They talk to the API server with the same client as the control plane (osm.k8s) and install through
the `helm` binary (the chart ships inside the package).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from osm import __version__
from osm.cli.options import STATE_DIR
from osm.injector.registration import default_config_name as injector_config_name
from osm.k8s.client import ApiError, ConfigError, KubeClient, Obj
from osm.k8s.resources import (
    CRDS,
    MUTATING_WEBHOOKS,
    NAMESPACES,
    PODS,
    SECRETS,
    VALIDATING_WEBHOOKS,
    Resource,
)
from osm.models.k8s import (
    ANNOTATION_METRICS,
    ANNOTATION_SIDECAR_INJECTION,
    LABEL_IGNORE,
    LABEL_MONITORED_BY,
    LABEL_PROXY_UUID,
)
from osm.paths import CHART
from osm.validator.webhook import default_config_name as validator_config_name

T = TypeVar("T")

DEPLOYMENTS = Resource("apps/v1", "Deployment", "deployments")
CONTROL_PLANE = ("osm-controller", "osm-injector", "osm-bootstrap")
MESH_GROUPS = (
    "access.smi-spec.io",
    "specs.smi-spec.io",
    "split.smi-spec.io",
    "config.openservicemesh.io",
    "policy.openservicemesh.io",
)

kubeconfig_option = click.option(
    "--kubeconfig", envvar="KUBECONFIG", default=None, help="default: $KUBECONFIG or ~/.kube/config"
)
mesh_name_option = click.option("--mesh-name", default="osm", show_default=True)
namespace_option = click.option(
    "--osm-namespace", default="osm-system", show_default=True, help="the control plane's namespace"
)


def with_kube(kubeconfig: str | None, work: Callable[[KubeClient], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            kube = await KubeClient.connect(kubeconfig)
        except ConfigError as e:
            raise click.ClickException(f"{e}\nPoint --kubeconfig (or KUBECONFIG) at your cluster.") from None
        async with kube:
            try:
                return await work(kube)
            except ApiError as e:
                raise click.ClickException(f"the Kubernetes API refused: {e}") from None
            except OSError as e:
                raise click.ClickException(f"cannot reach the Kubernetes API at {kube.host}: {e}") from None

    return asyncio.run(main())


# ---------------------------------------------------------------- install / uninstall


def helm_binary(given: str | None) -> str:
    found = given or os.environ.get("HELM_BIN") or shutil.which("helm")
    if not found or not Path(found).exists():
        raise click.ClickException(
            "osm install needs the helm binary (Helm 3.8 or later): install Helm, or point --helm "
            "(or $HELM_BIN) at it"
        )
    return found


def helm_args(
    verb: str, mesh_name: str, osm_namespace: str, chart: Path, sets: Sequence[str], timeout: str
) -> list[str]:
    args = [verb, mesh_name, str(chart), "--namespace", osm_namespace]
    if verb == "install":
        args += ["--create-namespace", "--timeout", timeout]
    args += ["--set", f"osm.meshName={mesh_name}", "--set", f"osm.osmNamespace={osm_namespace}"]
    for s in sets:
        args += ["--set", s]
    return args


def _helm(helm: str, args: list[str], kubeconfig: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    return subprocess.run([helm, *args], capture_output=True, text=True, env=env, check=False, timeout=900)


async def existing_meshes(kube: KubeClient) -> list[dict[str, str]]:
    items, _ = await kube.list(DEPLOYMENTS.path(), {"labelSelector": "app=osm-controller"})
    out = []
    for d in items:
        labels = (d.get("metadata") or {}).get("labels") or {}
        out.append(
            {
                "mesh": labels.get("app.kubernetes.io/instance", ""),
                "namespace": d["metadata"].get("namespace", ""),
                "version": labels.get("app.kubernetes.io/version", ""),
            }
        )
    return sorted(out, key=lambda m: (m["mesh"], m["namespace"]))


async def wait_rollout(kube: KubeClient, namespace: str, within: float, tick: Callable[[str], None]) -> None:
    """Until every control plane Deployment has its replicas available (or TimeoutError)."""
    deadline = time.monotonic() + within
    while True:
        waiting = []
        for name in CONTROL_PLANE:
            try:
                d = await kube.get(DEPLOYMENTS.path(namespace, name))
            except ApiError as e:
                if not e.not_found:
                    raise
                waiting.append(f"{name} (not created)")
                continue
            want = int((d.get("spec") or {}).get("replicas", 1))
            have = int((d.get("status") or {}).get("availableReplicas") or 0)
            if have < want:
                waiting.append(f"{name} {have}/{want}")
        if not waiting:
            return
        tick("waiting for " + ", ".join(waiting))
        if time.monotonic() >= deadline:
            raise TimeoutError("not available in time: " + ", ".join(waiting))
        await asyncio.sleep(1.0)


def _seconds(timeout: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if timeout[-1] in units:
            return float(timeout[:-1]) * units[timeout[-1]]
        return float(timeout)
    except (ValueError, IndexError):
        raise click.BadParameter(f"expected a duration such as 90s or 5m, got {timeout!r}") from None


@click.command("install")
@mesh_name_option
@namespace_option
@kubeconfig_option
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="a chart value (repeatable)")
@click.option("--timeout", default="5m", show_default=True, help="how long to wait for the control plane")
@click.option("--dry-run", is_flag=True, help="print the manifests instead of installing")
@click.option(
    "--wait/--no-wait", default=True, show_default=True, help="wait for the control plane to be ready"
)
@click.option("--enforce-single-mesh/--no-enforce-single-mesh", default=True, show_default=True)
@click.option("--helm", "helm_path", default=None, help="the helm binary (default: $HELM_BIN, then PATH)")
@click.option("--osm-chart-path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None)
def install_cmd(
    mesh_name: str,
    osm_namespace: str,
    kubeconfig: str | None,
    sets: tuple[str, ...],
    timeout: str,
    dry_run: bool,
    wait: bool,
    enforce_single_mesh: bool,
    helm_path: str | None,
    osm_chart_path: Path | None,
) -> None:
    """Install the control plane in a cluster (the chart, through helm)."""
    helm = helm_binary(helm_path)
    chart = osm_chart_path or CHART
    seconds = _seconds(timeout)
    if dry_run:
        cp = _helm(helm, helm_args("template", mesh_name, osm_namespace, chart, sets, timeout), kubeconfig)
        if cp.returncode != 0:
            raise click.ClickException(f"helm template failed:\n{cp.stderr.strip()}")
        click.echo(cp.stdout, nl=False)
        return

    async def check(kube: KubeClient) -> None:
        meshes = await existing_meshes(kube)
        same = [m for m in meshes if m["mesh"] == mesh_name]
        if same:
            raise click.ClickException(
                f"mesh {mesh_name!r} is already installed in namespace {same[0]['namespace']}; "
                "`osm uninstall mesh` first, or pick another --mesh-name"
            )
        if meshes and enforce_single_mesh:
            names = ", ".join(f"{m['mesh']} ({m['namespace']})" for m in meshes)
            raise click.ClickException(
                f"a mesh is already installed: {names}; one mesh per cluster unless --no-enforce-single-mesh"
            )

    with_kube(kubeconfig, check)
    cp = _helm(helm, helm_args("install", mesh_name, osm_namespace, chart, sets, timeout), kubeconfig)
    if cp.returncode != 0:
        raise click.ClickException(f"helm install failed:\n{cp.stderr.strip()}")
    click.echo(f"OSM installed: mesh {mesh_name!r} in namespace {osm_namespace!r}")
    if not wait:
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("waiting for the control plane...") as status:

        async def rollout(kube: KubeClient) -> None:
            await wait_rollout(kube, osm_namespace, seconds, lambda text: status.update(text))

        try:
            with_kube(kubeconfig, rollout)
        except TimeoutError as e:
            raise click.ClickException(
                f"the control plane is {e}; see `kubectl get pods -n {osm_namespace}` and the pods' logs"
            ) from None
    click.echo("the control plane is ready; add namespaces with `osm namespace add NAMESPACE`")


@click.group("uninstall")
def uninstall_group() -> None:
    """Remove a mesh from the cluster."""


@uninstall_group.command("mesh")
@mesh_name_option
@namespace_option
@kubeconfig_option
@click.option("-f", "--force", is_flag=True, help="do not ask for confirmation")
@click.option(
    "-a",
    "--delete-cluster-wide-resources",
    is_flag=True,
    help="also delete the mesh's CRDs (and every policy object with them) and the CA Secret",
)
@click.option("--delete-namespace", is_flag=True, help="also delete the control plane's namespace")
@click.option("--ca-bundle-secret-name", default="osm-ca-bundle", show_default=True)
@click.option("--helm", "helm_path", default=None)
def uninstall_mesh_cmd(
    mesh_name: str,
    osm_namespace: str,
    kubeconfig: str | None,
    force: bool,
    delete_cluster_wide_resources: bool,
    delete_namespace: bool,
    ca_bundle_secret_name: str,
    helm_path: str | None,
) -> None:
    """Uninstall MESH: the release, the webhook configurations its components made, and optionally
    the cluster-wide resources and the namespace. Sidecars stay until their pods restart."""
    helm = helm_binary(helm_path)
    if not force:
        click.confirm(f"Uninstall mesh {mesh_name!r} from namespace {osm_namespace!r}?", abort=True)
    cp = _helm(helm, ["uninstall", mesh_name, "--namespace", osm_namespace], kubeconfig)
    if cp.returncode != 0 and "not found" not in cp.stderr:
        raise click.ClickException(f"helm uninstall failed:\n{cp.stderr.strip()}")
    removed: list[str] = []

    async def delete(kube: KubeClient, path: str, what: str) -> None:
        try:
            await kube.delete(path)
            removed.append(what)
        except ApiError as e:
            if not e.not_found:
                raise

    async def cleanup(kube: KubeClient) -> None:
        await delete(
            kube,
            MUTATING_WEBHOOKS.path(name=injector_config_name(mesh_name)),
            f"MutatingWebhookConfiguration {injector_config_name(mesh_name)}",
        )
        await delete(
            kube,
            VALIDATING_WEBHOOKS.path(name=validator_config_name(mesh_name)),
            f"ValidatingWebhookConfiguration {validator_config_name(mesh_name)}",
        )
        if delete_cluster_wide_resources:
            items, _ = await kube.list(CRDS.path())
            for crd in items:
                group = (crd.get("spec") or {}).get("group")
                if group in MESH_GROUPS:
                    name = crd["metadata"]["name"]
                    await delete(kube, CRDS.path(name=name), f"CRD {name}")
            await delete(
                kube,
                SECRETS.path(osm_namespace, ca_bundle_secret_name),
                f"Secret {osm_namespace}/{ca_bundle_secret_name}",
            )
        if delete_namespace:
            await delete(kube, NAMESPACES.path(name=osm_namespace), f"Namespace {osm_namespace}")

    with_kube(kubeconfig, cleanup)
    click.echo(f"mesh {mesh_name!r} uninstalled" + (f"; deleted {', '.join(removed)}" if removed else ""))


# ---------------------------------------------------------------- namespaces and meshes


def _merge_patch(kube: KubeClient, path: str, body: Obj) -> Awaitable[Obj]:
    return kube.request("PATCH", path, body=body, content_type="application/merge-patch+json")


@click.group("namespace")
def namespace_group() -> None:
    """Add namespaces to a mesh, remove them, list them."""


@namespace_group.command("add")
@click.argument("namespaces", nargs=-1, required=True)
@mesh_name_option
@kubeconfig_option
@click.option("--disable-sidecar-injection", is_flag=True, help="join the mesh without injecting sidecars")
def namespace_add(
    namespaces: tuple[str, ...], mesh_name: str, kubeconfig: str | None, disable_sidecar_injection: bool
) -> None:
    """Add NAMESPACES to the mesh (label openservicemesh.io/monitored-by=MESH): new pods get sidecars."""

    async def add(kube: KubeClient) -> None:
        for ns in namespaces:
            current = await kube.get(NAMESPACES.path(name=ns))
            owner = ((current.get("metadata") or {}).get("labels") or {}).get(LABEL_MONITORED_BY)
            if owner and owner != mesh_name:
                raise click.ClickException(
                    f"namespace {ns} is already in mesh {owner!r}; remove it from there first"
                )
            injection = "disabled" if disable_sidecar_injection else "enabled"
            await _merge_patch(
                kube,
                NAMESPACES.path(name=ns),
                {
                    "metadata": {
                        "labels": {LABEL_MONITORED_BY: mesh_name},
                        "annotations": {ANNOTATION_SIDECAR_INJECTION: injection},
                    }
                },
            )
            click.echo(f"namespace [{ns}] successfully added to mesh [{mesh_name}]")

    with_kube(kubeconfig, add)


@namespace_group.command("remove")
@click.argument("namespaces", nargs=-1, required=True)
@mesh_name_option
@kubeconfig_option
def namespace_remove(namespaces: tuple[str, ...], mesh_name: str, kubeconfig: str | None) -> None:
    """Remove NAMESPACES from the mesh (their pods keep their sidecars until restarted)."""

    async def remove(kube: KubeClient) -> None:
        for ns in namespaces:
            current = await kube.get(NAMESPACES.path(name=ns))
            owner = ((current.get("metadata") or {}).get("labels") or {}).get(LABEL_MONITORED_BY)
            if owner != mesh_name:
                raise click.ClickException(f"namespace {ns} is not in mesh {mesh_name!r}")
            patch = {
                "metadata": {
                    "labels": {LABEL_MONITORED_BY: None},
                    "annotations": {ANNOTATION_SIDECAR_INJECTION: None},
                }
            }
            await _merge_patch(kube, NAMESPACES.path(name=ns), patch)
            click.echo(f"namespace [{ns}] successfully removed from mesh [{mesh_name}]")

    with_kube(kubeconfig, remove)


@namespace_group.command("ignore")
@click.argument("namespaces", nargs=-1, required=True)
@kubeconfig_option
def namespace_ignore(namespaces: tuple[str, ...], kubeconfig: str | None) -> None:
    """Make the webhooks skip NAMESPACES (label openservicemesh.io/ignore=true)."""

    async def ignore(kube: KubeClient) -> None:
        for ns in namespaces:
            await _merge_patch(
                kube, NAMESPACES.path(name=ns), {"metadata": {"labels": {LABEL_IGNORE: "true"}}}
            )
            click.echo(f"namespace [{ns}] is ignored by the mesh's webhooks")

    with_kube(kubeconfig, ignore)


@namespace_group.command("list")
@mesh_name_option
@kubeconfig_option
def namespace_list(mesh_name: str, kubeconfig: str | None) -> None:
    """List the namespaces of a mesh."""

    async def listing(kube: KubeClient) -> list[Obj]:
        items, _ = await kube.list(NAMESPACES.path(), {"labelSelector": f"{LABEL_MONITORED_BY}={mesh_name}"})
        return items

    items = with_kube(kubeconfig, listing)
    if not items:
        click.echo(f"no namespaces in mesh [{mesh_name}]")
        return
    rows = [("NAMESPACE", "MESH", "SIDECAR-INJECTION")]
    for ns in sorted(items, key=lambda n: str(n["metadata"]["name"])):
        meta = ns["metadata"]
        injection = (meta.get("annotations") or {}).get(ANNOTATION_SIDECAR_INJECTION, "enabled")
        rows.append((meta["name"], mesh_name, injection))
    _table(rows)


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@click.group("metrics")
def metrics_group() -> None:
    """Turn the sidecars' Prometheus stats on or off, per namespace."""


# what Prometheus' usual Kubernetes scrape configuration reads from a pod
SCRAPE_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": "15010",
    "prometheus.io/path": "/stats/prometheus",
}


def _namespaces(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("name at least one namespace", param_hint="--namespace")
    return names


def _switch_local_metrics(namespaces: list[str], status: dict[str, Any], on: bool) -> None:
    """The local mesh: the Namespaces' annotation, in the manifests that define them (its Prometheus
    follows it; the local runtime has no pod annotations to set)."""
    from osm.local.annotate import AnnotateError, annotate_namespace

    root = Path(status.get("manifests") or "")
    if not root.is_dir():
        raise click.ClickException("the local mesh does not say where its manifests are (restart it)")
    for ns in namespaces:
        try:
            path = annotate_namespace(root, ns, {ANNOTATION_METRICS: "enabled" if on else None})
        except AnnotateError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"metrics {'enabled' if on else 'disabled'} in namespace [{ns}] (written to {path})")


def _switch_metrics(namespaces: list[str], kubeconfig: str | None, on: bool) -> None:
    async def switch(kube: KubeClient) -> None:
        for ns in namespaces:
            current = await kube.get(NAMESPACES.path(name=ns))
            if not ((current.get("metadata") or {}).get("labels") or {}).get(LABEL_MONITORED_BY):
                raise click.ClickException(f"namespace [{ns}] is not in a mesh (`osm namespace add {ns}`)")
            annotation = {ANNOTATION_METRICS: "enabled" if on else None}
            await _merge_patch(kube, NAMESPACES.path(name=ns), {"metadata": {"annotations": annotation}})
            pods, _ = await kube.list(PODS.path(ns), {"labelSelector": LABEL_PROXY_UUID})
            scrape = {k: (v if on else None) for k, v in SCRAPE_ANNOTATIONS.items()}
            for pod in pods:
                name = (pod.get("metadata") or {}).get("name", "")
                await _merge_patch(kube, PODS.path(ns, name), {"metadata": {"annotations": scrape}})
            click.echo(
                f"metrics {'enabled' if on else 'disabled'} in namespace [{ns}] ({len(pods)} meshed pods "
                "annotated for Prometheus' scrape of /stats/prometheus on 15010)"
            )

    with_kube(kubeconfig, switch)


def _metrics(namespaces: str, kubeconfig: str | None, state_dir: Path, on: bool) -> None:
    from osm.local.up import read_status

    status = read_status(state_dir)
    if status is not None:
        _switch_local_metrics(_namespaces(namespaces), status, on)
    else:
        _switch_metrics(_namespaces(namespaces), kubeconfig, on)


@metrics_group.command("enable")
@click.option("--namespace", "namespaces", required=True, help="namespaces, comma-separated")
@kubeconfig_option
@STATE_DIR
def metrics_enable(namespaces: str, kubeconfig: str | None, state_dir: Path) -> None:
    """Annotate NAMESPACES openservicemesh.io/metrics=enabled, and their meshed pods for scraping."""
    _metrics(namespaces, kubeconfig, state_dir, True)


@metrics_group.command("disable")
@click.option("--namespace", "namespaces", required=True, help="namespaces, comma-separated")
@kubeconfig_option
@STATE_DIR
def metrics_disable(namespaces: str, kubeconfig: str | None, state_dir: Path) -> None:
    """Remove the metrics annotations from NAMESPACES and their pods."""
    _metrics(namespaces, kubeconfig, state_dir, False)


@click.group("mesh")
def mesh_group() -> None:
    """Meshes installed in the cluster."""


@mesh_group.command("list")
@kubeconfig_option
@STATE_DIR
def mesh_list(kubeconfig: str | None, state_dir: Path) -> None:
    """List the meshes installed in the cluster (or the local mesh running on --state-dir)."""
    from osm.local.up import read_status

    if read_status(state_dir) is not None:
        _table(
            [
                ("MESH NAME", "NAMESPACE", "VERSION", "WHERE"),
                ("osm", "osm-system", __version__, f"local: {state_dir}"),
            ]
        )
        return
    meshes = with_kube(kubeconfig, existing_meshes)
    if not meshes:
        click.echo("no osm control planes found")
        return
    _table(
        [("MESH NAME", "NAMESPACE", "VERSION")] + [(m["mesh"], m["namespace"], m["version"]) for m in meshes]
    )


def controller_version(kubeconfig: str | None, osm_namespace: str) -> str:
    """The controller's /version through the API server's service proxy, or why it is unreachable."""

    async def fetch(kube: KubeClient) -> Any:
        path = f"/api/v1/namespaces/{osm_namespace}/services/osm-controller:9091/proxy/version"
        return await kube.get(path)

    try:
        doc = with_kube(kubeconfig, fetch)
    except click.ClickException as e:
        return f"unreachable ({e.message.splitlines()[0]})"
    return str(doc.get("version", "unknown"))
