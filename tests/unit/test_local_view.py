"""The CLI's view of a local mesh: the runtime's objects read back only from its own regular file; an
HTTP/1.1 chunked answer joined."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from osm.local import netops
from osm.local.view import OBJECTS_FILE, ViewError, read_objects, write_objects
from osm.models.k8s import Namespace, ObjectMeta


def test_objects_round_trip_and_a_planted_file_is_refused(tmp_path: Path) -> None:
    ns = Namespace(meta=ObjectMeta(name="shop", namespace=""))
    write_objects(tmp_path, [ns])
    assert read_objects(tmp_path) == [ns]
    assert (os.stat(tmp_path / OBJECTS_FILE).st_mode & 0o777) == 0o600
    os.chmod(tmp_path / OBJECTS_FILE, 0o666)  # anyone could have written it
    with pytest.raises(ViewError, match="not a regular file written by the local runtime"):
        read_objects(tmp_path)
    (tmp_path / OBJECTS_FILE).unlink()
    (tmp_path / "elsewhere").write_bytes(b"x")
    (tmp_path / OBJECTS_FILE).symlink_to(tmp_path / "elsewhere")  # never followed
    with pytest.raises(ViewError, match="cannot read"):
        read_objects(tmp_path)


def test_a_chunked_body_is_joined() -> None:
    assert netops.dechunk(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n") == b"hello world"
    with pytest.raises(netops.NetError, match="malformed"):
        netops.dechunk(b"zz\r\nhello\r\n")


def test_a_bug_report_leaves_out_keys_and_keeps_log_tails_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from osm import report
    from osm.local import bugreport

    monkeypatch.setattr(bugreport, "MAX_LOG_BYTES", 10)
    log = tmp_path / "x.log"
    log.write_bytes(b"0123456789abcdefghij")
    assert bugreport._tail(log) == b"abcdefghij"
    assert bugreport._tail(tmp_path / "missing.log").startswith(b"(unreadable")
    assert report.safe(b"-----BEGIN PRIVATE KEY-----\nxx") == b"(left out: it holds a private key)\n"
    assert report.safe(b"plain") == b"plain"
