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
