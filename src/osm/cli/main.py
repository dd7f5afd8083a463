"""`osm`: the user CLI."""

from __future__ import annotations

import json
from pathlib import Path

import click

from osm import __version__
from osm.cli.options import STATE_DIR


@click.group()
@click.version_option(__version__, prog_name="osm")
def cli() -> None:
    """Open Service Mesh: an SMI-native, lightweight service mesh."""


@cli.command()
@click.option("--client-only", is_flag=True, help="only the CLI's version")
@click.option("--osm-namespace", default="osm-system", show_default=True)
@click.option("--kubeconfig", envvar="KUBECONFIG", default=None)
def version(client_only: bool, osm_namespace: str, kubeconfig: str | None) -> None:
    """Print the CLI's version, and the control plane's when it is reachable."""
    click.echo(f"osm version {__version__}")
    if not client_only:
        from osm.cli.cluster import controller_version

        click.echo(f"control plane ({osm_namespace}): {controller_version(kubeconfig, osm_namespace)}")


@cli.group()
def local() -> None:
    """Run the mesh on this machine from a directory of Kubernetes YAML."""


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


@local.command("bootstrap")
@click.option(
    "--local",
    "local_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="the manifest directory the controller runs on",
)
@click.option(
    "--state-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="the controller's state directory (holds the mesh CA)",
)
@click.option("--pod", required=True, metavar="NAMESPACE/NAME")
@click.option("--ads-address", required=True, metavar="HOST:PORT")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--admin-port", default=15000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--xds", type=click.Choice(["sotw", "delta"]), default="sotw", show_default=True)
def bootstrap_cmd(
    local_dir: Path, state_dir: Path, pod: str, ads_address: str, out: Path, admin_port: int, xds: str
) -> None:
    """Write bootstrap.yaml and the certificates it names, for POD's sidecar."""
    from osm.local.bootstrap import BootstrapError, find_pod, write_bootstrap

    ns, sep, name = pod.partition("/")
    if not sep or not ns or not name:
        raise click.BadParameter(f"expected NAMESPACE/NAME, got {pod!r}", param_hint="--pod")
    host, port = _host_port(ads_address)
    try:
        written = write_bootstrap(
            find_pod(local_dir, ns, name, state_dir),
            state_dir=state_dir,
            out=out,
            ads_host=host,
            ads_port=port,
            admin_port=admin_port,
            xds=xds,
        )
    except BootstrapError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {written.path} (node {written.node_id})")


STATE_DIR_OPTION = STATE_DIR


def _local_errors() -> tuple[type[Exception], ...]:
    from osm.local.preflight import PreflightError
    from osm.local.up import LocalError

    return (LocalError, PreflightError)


@local.command("up")
@click.argument("manifests", type=click.Path(exists=True, file_okay=False, path_type=Path))
@STATE_DIR_OPTION
@click.option("--detach", "-d", is_flag=True, help="run in the background; stop with `osm local down`")
@click.option("--xds", type=click.Choice(["sotw", "delta"]), default="sotw", show_default=True)
@click.option("--prometheus", is_flag=True, help="also run Prometheus (Debian's package), scraping the mesh")
def up_cmd(manifests: Path, state_dir: Path, detach: bool, xds: str, prometheus: bool) -> None:
    """Run the mesh in MANIFESTS on this machine (root, Linux): pods as network namespaces, real Envoys."""
    from osm.local import up

    try:
        rc = up.up(manifests, state_dir, detach=detach, xds=xds, prometheus=prometheus)
    except _local_errors() as e:
        raise click.ClickException(str(e)) from None
    if detach:
        click.echo(f"local mesh running (state in {state_dir}); `osm local status`, `osm local down`")
    raise SystemExit(rc)


@local.command("down")
@STATE_DIR_OPTION
def down_cmd(state_dir: Path) -> None:
    """Stop the local mesh and remove every namespace, link, rule and process it made."""
    from osm.local import up

    removed = up.down(state_dir)
    click.echo(f"local mesh stopped; removed {len(removed)} network namespaces")


@local.command("status")
@STATE_DIR_OPTION
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
def status_cmd(state_dir: Path, output: str) -> None:
    """List the local mesh's pods (json: with the control plane's endpoints)."""
    from osm.local import up

    status = up.read_status(state_dir)
    if status is None or up.node_pid(state_dir) is None:
        raise click.ClickException(f"no local mesh is running on {state_dir}")
    if output == "json":
        click.echo(json.dumps(status, indent=1))
        return
    rows = [("NAMESPACE", "NAME", "READY", "IP", "SIDECAR", "RESTARTS")]
    for p in status["pods"]:
        restarts = sum(c["restarts"] for c in p["containers"])
        rows.append(
            (
                p["namespace"],
                p["name"],
                "yes" if p["ready"] else "no",
                p["ip"],
                "envoy" if p["meshed"] else "-",
                str(restarts),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    for name, url in (status.get("endpoints") or {}).items():
        click.echo(f"{name}: {url}")


@local.command("logs")
@click.argument("pod")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-c", "--container", default=None, help="envoy, or an app container")
@STATE_DIR_OPTION
def logs_cmd(pod: str, namespace: str, container: str | None, state_dir: Path) -> None:
    """Print a container's log."""
    from osm.local import up

    try:
        path = up.log_path(state_dir, namespace, pod, container)
    except _local_errors() as e:
        raise click.ClickException(str(e)) from None
    click.echo(path.read_text(errors="replace") if path.exists() else "", nl=False)


@local.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("pod")
@click.option("-n", "--namespace", default="default", show_default=True)
@STATE_DIR_OPTION
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def exec_cmd(pod: str, namespace: str, state_dir: Path, command: tuple[str, ...]) -> None:
    """Run COMMAND inside POD's network namespace (osm local exec POD -n NS -- CMD...)."""
    import os

    from osm.local import up

    try:
        argv = up.exec_argv(state_dir, namespace, pod, list(command))
    except _local_errors() as e:
        raise click.ClickException(str(e)) from None
    os.execvp(argv[0], argv)


def _commands() -> None:
    from osm.cli.cluster import install_cmd, mesh_group, metrics_group, namespace_group, uninstall_group
    from osm.cli.demo import demo_cmd
    from osm.cli.inspect import policy_group, proxy_group, support_group, verify_group

    for command in (
        demo_cmd,
        install_cmd,
        uninstall_group,
        namespace_group,
        mesh_group,
        metrics_group,
        proxy_group,
        policy_group,
        verify_group,
        support_group,
    ):
        cli.add_command(command)


_commands()


def main() -> None:
    cli(prog_name="osm")


if __name__ == "__main__":
    main()
