"""The Envoy test kit drives a real Envoy: static listener -> HCM -> router -> cluster -> http.server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from osm.testing.envoy import (
    SHM_DIR,
    EnvoyError,
    EnvoyProcess,
    dynamic_clusters,
    dynamic_listeners,
    dynamic_route_configs,
    dynamic_secrets,
    envoy_binary,
    free_port,
    next_base_id,
    static_clusters,
    static_listeners,
    warming_count,
)
from osm.testing.wait import wait_until

pytestmark = pytest.mark.envoy

STAT_PREFIX = "ingress_http"


def _static_config(admin_port: int, listener_port: int, backend_port: int) -> dict[str, object]:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listener_port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                        "http_connection_manager.v3.HttpConnectionManager",
                                        "stat_prefix": STAT_PREFIX,
                                        "route_config": {
                                            "name": "local_route",
                                            "virtual_hosts": [
                                                {
                                                    "name": "backend",
                                                    "domains": ["*"],
                                                    "routes": [
                                                        {
                                                            "match": {"prefix": "/"},
                                                            "route": {"cluster": "backend"},
                                                        }
                                                    ],
                                                }
                                            ],
                                        },
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {
                                                    "@type": "type.googleapis.com/"
                                                    "envoy.extensions.filters.http.router.v3.Router"
                                                },
                                            }
                                        ],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "backend",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": "backend",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": "127.0.0.1",
                                                    "port_value": backend_port,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ],
        },
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_port(port: int, timeout: float = 10.0) -> None:
    def answers() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
            return True

    wait_until(answers, timeout, f"http://127.0.0.1:{port}/ answering", tolerate=(OSError,))


@pytest.fixture
def envoy_path() -> str:
    try:
        return envoy_binary()
    except EnvoyError as e:
        pytest.skip(str(e))


def test_static_proxy_end_to_end(tmp_path: Path, envoy_path: str) -> None:
    admin_port, listener_port, backend_port = free_port(), free_port(), free_port()
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "hello.txt").write_text("hello from the backend\n")
    config = tmp_path / "envoy.json"  # JSON is YAML: Envoy reads it by the extension
    config.write_text(json.dumps(_static_config(admin_port, listener_port, backend_port)))
    backend: subprocess.Popen[bytes] | None = None
    envoy = EnvoyProcess(config, admin_port, next_base_id(), tmp_path / "envoy.log")
    try:
        backend = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
                str(tmp_path / "www"),
                str(backend_port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(backend_port)
        envoy.start()
        envoy.wait_ready(timeout=15)
        assert envoy.running
        assert "--base-id" in envoy.command() and str(envoy.base_id) in envoy.command()

        before = envoy.stat(f"http.{STAT_PREFIX}.downstream_rq_total")
        with urllib.request.urlopen(f"http://127.0.0.1:{listener_port}/hello.txt", timeout=5) as resp:
            assert resp.status == 200
            assert resp.headers["server"] == "envoy"
            assert resp.read() == b"hello from the backend\n"
        envoy.wait_for(
            lambda: envoy.stat(f"http.{STAT_PREFIX}.downstream_rq_total") > before,
            timeout=5,
            what="downstream_rq_total to increase",
        )
        stats = envoy.stats()
        assert stats["cluster.backend.upstream_rq_total"] >= 1
        assert all(isinstance(v, int) for v in stats.values())

        dump = envoy.config_dump()
        assert "ingress" in static_listeners(dump)
        assert "backend" in static_clusters(dump)
        assert dynamic_listeners(dump) == {} and dynamic_clusters(dump) == {}
        assert dynamic_route_configs(dump) == {} and dynamic_secrets(dump) == {}
        assert warming_count(dump) == 0
        assert envoy.config_dump(include_eds=True)["configs"]

        with pytest.raises(TimeoutError, match="never true"):
            envoy.wait_for(lambda: False, timeout=0.2, interval=0.05, what="never true")
    finally:
        pid = envoy.pid
        envoy.stop()
        envoy.stop()  # idempotent
        if backend is not None:
            backend.terminate()
            backend.wait(timeout=5)
    assert pid is not None and not _pid_alive(pid)
    assert envoy.returncode is not None


def test_bad_config_fails_fast_with_log_tail(tmp_path: Path, envoy_path: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("static_resources: {listeners: [{name: x, address: 42}]}\n")
    envoy = EnvoyProcess(config, free_port(), next_base_id(), tmp_path / "envoy.log")
    try:
        envoy.start()
        with pytest.raises(EnvoyError, match="exited") as err:
            envoy.wait_ready(timeout=15)
        assert "--- envoy" in str(err.value)
    finally:
        envoy.stop()


def test_two_envoys_side_by_side(tmp_path: Path, envoy_path: str) -> None:
    envoys: list[EnvoyProcess] = []
    try:
        for i in range(2):
            admin = free_port()
            cfg = tmp_path / f"e{i}.yaml"
            cfg.write_text(
                json.dumps(
                    {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}}
                )
            )
            envoys.append(EnvoyProcess(cfg, admin, next_base_id(), tmp_path / f"e{i}.log").start())
        for e in envoys:
            e.wait_ready(timeout=15)
        assert envoys[0].base_id != envoys[1].base_id
    finally:
        for e in envoys:
            e.stop()


def test_next_base_id_is_distinct_and_bounded() -> None:
    ids = [next_base_id() for _ in range(64)]
    assert len(set(ids)) == 64
    assert all(0 < i < 2**16 for i in ids)


def test_config_dump_helpers_tolerate_missing_sections() -> None:
    assert dynamic_listeners({}) == {} and dynamic_clusters({"configs": []}) == {}
    assert warming_count({"configs": [{"@type": "x.ListenersConfigDump"}]}) == 0
    dump = {
        "configs": [
            {
                "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                "dynamic_listeners": [
                    {"name": "a", "active_state": {"listener": {"name": "a"}}},
                    {"name": "b", "warming_state": {"listener": {"name": "b"}}},
                ],
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                "dynamic_active_clusters": [{"cluster": {"name": "c"}}],
                "dynamic_warming_clusters": [{"cluster": {"name": "d"}}],
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
                "dynamic_route_configs": [{"route_config": {"name": "r"}}],
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
                "dynamic_active_secrets": [{"name": "s", "secret": {"name": "s"}}],
                "dynamic_warming_secrets": [{"name": "w"}],
            },
        ]
    }
    assert list(dynamic_listeners(dump)) == ["a"]
    assert list(dynamic_clusters(dump)) == ["c"]
    assert list(dynamic_route_configs(dump)) == ["r"]
    assert list(dynamic_secrets(dump)) == ["s"]
    assert warming_count(dump) == 3


@pytest.mark.skipif(os.geteuid() != 0, reason="starts Envoy as another user")
def test_a_stale_region_of_a_killed_envoy_of_another_user_does_not_stop_a_new_one() -> None:
    """A root Envoy killed with SIGKILL leaves /dev/shm/envoy_shared_memory_<id>; an Envoy of uid 1500
    with the same base id cannot open it and panics ("File exists"), unless the stale region goes."""
    base_id = next_base_id()
    stale = SHM_DIR / f"envoy_shared_memory_{base_id * 10}"
    stale.write_bytes(b"\0" * 64)  # as root: what the killed Envoy left
    work = Path(tempfile.mkdtemp(prefix="osm-shm-"))  # uid 1500 can traverse it (pytest's tmp is 0700)
    envoy = None
    try:
        work.chmod(0o755)
        os.chown(work, 1500, 1500)
        admin = free_port()
        cfg = work / "admin.yaml"
        address = {"socket_address": {"address": "127.0.0.1", "port_value": admin}}
        cfg.write_text(json.dumps({"admin": {"address": address}}))
        envoy = EnvoyProcess(cfg, admin, base_id, work / "envoy.log", uid=1500)
        envoy.start()
        envoy.wait_ready(timeout=15)
        assert stale.stat().st_uid == 1500  # the new Envoy's own region
    finally:
        if envoy is not None:
            envoy.stop()
        shutil.rmtree(work, ignore_errors=True)
