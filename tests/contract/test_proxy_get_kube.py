"""`osm proxy get` on Kubernetes: the sidecar's admin interface through the API server's pod proxy
(`pods/NAME:15000/proxy/...`), here a real Envoy behind fakekube's pod proxy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from osm.cli.main import cli
from osm.testing.envoy import EnvoyProcess, free_port, next_base_id
from osm.testing.fakekube import FakeKube

pytestmark = pytest.mark.envoy


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, int]]:
    admin = free_port()
    config = tmp_path / "envoy.json"
    config.write_text(
        json.dumps({"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}})
    )
    envoy = EnvoyProcess(config, admin, next_base_id(), tmp_path / "envoy.log")
    with FakeKube() as fk:
        try:
            envoy.start()
            envoy.wait_ready(20)
            kubeconfig = fk.write_kubeconfig(tmp_path / "kubeconfig")
            fk.store.create(
                fk.store.type_of("", "v1", "namespaces"),
                "",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
            )
            fk.store.create(
                fk.store.type_of("", "v1", "pods"),
                "shop",
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "web", "namespace": "shop"},
                    "spec": {"containers": [{"name": "web", "image": "x"}]},
                    "status": {"podIP": "127.0.0.1"},
                },
            )
            yield str(kubeconfig), admin
        finally:
            envoy.stop()


def osm(kubeconfig: str, admin: int, tmp_path: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(
        cli,
        [
            *args,
            "--admin-port",
            str(admin),
            "--kubeconfig",
            kubeconfig,
            "--state-dir",
            str(tmp_path / "no-local-mesh"),
        ],
    )
    return r.exit_code, r.output


def test_proxy_get_reads_the_sidecar_through_the_pod_proxy(cluster: tuple[str, int], tmp_path: Path) -> None:
    kubeconfig, admin = cluster
    assert osm(kubeconfig, admin, tmp_path, "proxy", "get", "ready", "web", "-n", "shop") == (0, "LIVE\n")
    code, dump = osm(kubeconfig, admin, tmp_path, "proxy", "get", "config_dump", "web", "-n", "shop")
    assert code == 0 and "BootstrapConfigDump" in json.loads(dump)["configs"][0]["@type"]
    code, out = osm(kubeconfig, admin, tmp_path, "proxy", "get", "ready", "nope", "-n", "shop")
    assert code != 0 and "pod shop/nope" in out and "not found" in out.lower()
