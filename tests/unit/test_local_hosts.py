"""The pods' hosts files are rewritten in place, and a name lookup never sees one half written."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from osm.local import netops

COMMON = "127.0.0.1 localhost\n10.96.0.10 bookstore.bookstore bookstore.bookstore.svc.cluster.local\n"
MORE = COMMON + "".join(f"10.96.0.{20 + i} extra-{i}.bookstore\n" for i in range(20))


def names(text: str) -> set[str]:
    """What a resolver reads from a hosts file: the names of its non-comment lines."""
    return {n for line in text.splitlines() if not line.startswith("#") for n in line.split()[1:]}


@pytest.fixture
def etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(netops, "NETNS_ETC", tmp_path)
    return tmp_path / "pod-a" / "hosts"


def test_a_shorter_hosts_file_keeps_the_inode_and_holds_only_the_new_names(etc: Path) -> None:
    netops.write_hosts("pod-a", MORE)
    inode, size = etc.stat().st_ino, etc.stat().st_size
    assert names(etc.read_text()) == names(MORE)
    netops.write_hosts("pod-a", COMMON)
    assert etc.stat().st_ino == inode and etc.stat().st_size == size  # running processes mount this inode
    assert names(etc.read_text()) == names(COMMON)
    assert "extra-3.bookstore" not in names(etc.read_text())
    netops.write_hosts("pod-a", MORE)
    assert names(etc.read_text()) == names(MORE)


@pytest.mark.parametrize("short", [0, 1, 2, 7])
def test_padding_reaches_the_old_size_with_a_comment_or_an_empty_line(short: int) -> None:
    text = b"10.0.0.1 a\n"
    out = netops.padded_hosts(text, len(text) + short)
    assert len(out) == len(text) + short and out.startswith(text)
    assert names(out.decode()) == {"a"}
    assert netops.padded_hosts(b"10.0.0.1 a", 0) == text


def test_a_reader_during_rewrites_always_finds_the_names_both_versions_hold(etc: Path) -> None:
    netops.write_hosts("pod-a", MORE)
    stop = threading.Event()
    missing: list[str] = []

    def read() -> None:
        while not stop.is_set():
            seen = names(etc.read_text())
            if "bookstore.bookstore" not in seen:
                missing.append(repr(sorted(seen)))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(3000):
            netops.write_hosts("pod-a", COMMON if i % 2 else MORE)
    finally:
        stop.set()
        reader.join(timeout=10)
    assert not missing, missing[:3]
