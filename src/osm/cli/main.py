"""`osm`: the user CLI."""

from __future__ import annotations

from pathlib import Path

import click

from osm import __version__


@click.group()
@click.version_option(__version__, prog_name="osm")
def cli() -> None:
    """Open Service Mesh: an SMI-native, lightweight service mesh."""


@cli.command()
def version() -> None:
    """Print the CLI version."""
    click.echo(f"osm version {__version__}")


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
            find_pod(local_dir, ns, name),
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


def main() -> None:
    cli(prog_name="osm")


if __name__ == "__main__":
    main()
