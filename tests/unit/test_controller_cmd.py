"""osm-controller's command line and log format."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from osm.cmd import controller
from osm.logging_setup import JsonFormatter


def test_arguments_and_defaults(tmp_path: Path) -> None:
    args = controller.parse_args(["--local", str(tmp_path), "--state-dir", str(tmp_path / "s")])
    assert (
        args.ads_address == "127.0.0.1:15128"
        and args.mesh_name == "osm"
        and args.trust_domain == "cluster.local"
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
