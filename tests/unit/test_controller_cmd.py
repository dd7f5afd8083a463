"""osm-controller's command line and log format."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from osm.cmd import controller
from osm.logging_setup import JsonFormatter


def _settings(*argv: str) -> controller.Settings:
    return controller.settings_from(
        controller.parse_args(list(argv)), controller.DEFAULT_LIMITS, controller.DEFAULT_SOURCE_LIMITS
    )


def test_arguments_and_defaults(tmp_path: Path) -> None:
    local = _settings("--local", str(tmp_path), "--state-dir", str(tmp_path / "s"))
    assert (local.ads_address, local.http_address, local.kubernetes) == ("127.0.0.1:15128", None, False)
    assert local.mesh_name == "osm" and local.trust_domain == "cluster.local"
    kube = _settings("--mesh-name", "m2", "--ca-bundle-secret-name", "ca")
    assert kube.kubernetes and kube.local_dir is None and kube.state_dir is None
    assert (kube.ads_address, kube.http_address, kube.webhook_address) == (
        "0.0.0.0:15128",
        "0.0.0.0:9091",
        "0.0.0.0:9093",
    )
    assert (kube.mesh_name, kube.ca_bundle_secret, kube.osm_namespace) == ("m2", "ca", "osm-system")
    with pytest.raises(ValueError, match="--state-dir is required"):
        _settings("--local", str(tmp_path))


def test_an_unusable_kubeconfig_is_a_clear_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    monkeypatch.setattr(controller.logging_setup, "setup", lambda *a, **k: None)
    with caplog.at_level(logging.ERROR):
        assert controller.main(["--kubeconfig", str(bad)]) == 1
    assert any(
        f"cannot load the Kubernetes configuration from {bad}" in r.getMessage() for r in caplog.records
    )


def test_missing_directory_is_a_clear_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rc = controller.main(["--local", str(tmp_path / "missing"), "--state-dir", str(tmp_path / "s")])
    assert rc == 2


def test_log_lines_are_json_with_level_component_and_message() -> None:
    record = logging.LogRecord("osm.controller", logging.WARNING, __file__, 1, "hello %s", ("mesh",), None)
    line = json.loads(JsonFormatter().format(record))
    assert (
        line["level"] == "warning"
        and line["component"] == "osm.controller"
        and line["message"] == "hello mesh"
    )
    assert line["time"].endswith("Z")


def test_limits_are_configurable_by_name_and_checked() -> None:
    from osm.cmd.controller import parse_limits

    ads, source = parse_limits(["max_connections=100", "handshake_timeout=2.5", "max_file_bytes=1000"])
    assert (ads.max_connections, ads.handshake_timeout, source.max_file_bytes) == (100, 2.5, 1000)
    for bad, reason in (
        ("nope=1", "NAME one of"),
        ("max_files=x", "is not a number"),
        ("max_names=-1", "negative"),
    ):
        with pytest.raises(ValueError, match=reason):
            parse_limits([bad])


def test_the_file_limit_is_raised_for_the_connection_limit_or_the_limit_lowered() -> None:
    import resource

    from osm.cmd.controller import fd_limits
    from osm.envoy.ads.server import AdsLimits

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        fitted = fd_limits(AdsLimits(max_connections=10**9))
        assert fitted.max_connections < 10**9  # the hard limit cannot hold a billion sockets
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= min(fitted.max_connections, 1)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
