"""Network namespaces for tests: create, join with veth pairs, run processes inside, load iptables rules.

Needs root, iproute2 (`ip`), `iptables`/`iptables-restore` and util-linux `setpriv`;
`have_netns_tools()` says why not.
Every namespace is named `osmt-<random>` and `NetNS.delete()` removes it together with its veth links
(deleting a namespace destroys the veth devices in it, and with them their peers). Processes started in
a namespace are the caller's to stop, by PID.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

__all__ = [
    "NetNS",
    "NetNSError",
    "have_netns_tools",
    "iptables_restore",
    "python_for_uid",
    "setpriv_args",
    "veth_pair",
]

_PREFIX = "osmt-"
_TOOLS = ("ip", "iptables", "iptables-restore", "setpriv")


class NetNSError(RuntimeError):
    """A namespace operation failed; the message carries the command and its stderr."""


def setpriv_args(uid: int) -> list[str]:
    """Command prefix that runs the rest of the command as `uid` (gid = uid, no supplementary groups)."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


@functools.cache
def have_netns_tools() -> str | None:
    """None when network-namespace tests can run here, else the reason they cannot (for pytest.skip)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = [t for t in _TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing tools: {', '.join(missing)}"
    probe = NetNS()
    try:
        probe.create()
    except NetNSError as e:
        return f"cannot create a network namespace: {e}"
    finally:
        probe.delete()
    return None


def _run(
    args: Sequence[str], *, timeout: float = 10.0, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    try:
        cp = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, input=input, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise NetNSError(f"{' '.join(args)}: timed out after {timeout}s") from e
    if check and cp.returncode != 0:
        raise NetNSError(f"{' '.join(args)}: exit {cp.returncode}: {cp.stderr.strip()}")
    return cp


class NetNS:
    """One named network namespace (`ip netns`), created on `create()` and removed on `delete()`."""

    def __init__(self, prefix: str = _PREFIX) -> None:
        self.name = f"{prefix}{secrets.token_hex(4)}"
        self._created = False

    def __repr__(self) -> str:
        return f"NetNS({self.name!r})"

    def __enter__(self) -> NetNS:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.delete()

    @property
    def created(self) -> bool:
        return self._created

    def create(self) -> NetNS:
        """Create the namespace and bring its loopback up. Idempotent."""
        if not self._created:
            _run(["ip", "netns", "add", self.name])
            self._created = True
            _run(["ip", "-n", self.name, "link", "set", "lo", "up"])
        return self

    def delete(self) -> None:
        """Delete the namespace and the veth links in it. Idempotent; a missing namespace is not an error."""
        if self._created or self.name in _list_netns():
            _run(["ip", "netns", "del", self.name], check=False)
        self._created = False

    def exec_args(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def _cmd(self, cmd: Sequence[str], uid: int | None) -> list[str]:
        if not cmd:
            raise ValueError("a command is required")
        return self.exec_args(*(setpriv_args(uid) if uid is not None else []), *cmd)

    def run(
        self,
        *cmd: str,
        check: bool = True,
        timeout: float = 10.0,
        uid: int | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `cmd` in the namespace (as `uid` when given), capturing text output, bounded by `timeout`."""
        return _run(self._cmd(cmd, uid), timeout=timeout, input=input, check=check)

    def popen(self, *cmd: str, uid: int | None = None, **kw: Any) -> subprocess.Popen[Any]:
        """Start `cmd` inside the namespace (as `uid` when given). The caller stops it by PID."""
        return subprocess.Popen(self._cmd(cmd, uid), **kw)


def _list_netns() -> set[str]:
    cp = _run(["ip", "netns", "list"], check=False)
    return {line.split()[0] for line in cp.stdout.splitlines() if line.strip()}


def veth_pair(a: NetNS, b: NetNS | None, a_ip: str, b_ip: str, prefix: int = 24) -> tuple[str, str]:
    """Join `a` and `b` (or `a` and the host when `b` is None) with a veth pair; `a_ip`/`b_ip` get `prefix`.

    Brings up lo and both ends. Returns the (a-side, b-side) link names. Deleting `a` or `b` removes the pair.
    """
    for label, ip in (("a_ip", a_ip), ("b_ip", b_ip)):
        try:
            ipaddress.ip_interface(f"{ip}/{prefix}")
        except ValueError:
            raise ValueError(f"{label}: {ip!r}/{prefix} is not a valid interface address") from None
    tag = secrets.token_hex(3)
    a_if, b_if = f"osmv{tag}a", f"osmv{tag}b"  # 11 characters, under IFNAMSIZ-1 = 15
    a.create()
    if b is not None:
        b.create()
    _run(["ip", "link", "add", a_if, "type", "veth", "peer", "name", b_if])
    try:
        _run(["ip", "link", "set", a_if, "netns", a.name])
        if b is not None:
            _run(["ip", "link", "set", b_if, "netns", b.name])
        _run(["ip", "-n", a.name, "addr", "add", f"{a_ip}/{prefix}", "dev", a_if])
        _run(["ip", "-n", a.name, "link", "set", a_if, "up"])
        b_ip_args = ["ip", "-n", b.name] if b is not None else ["ip"]
        _run([*b_ip_args, "addr", "add", f"{b_ip}/{prefix}", "dev", b_if])
        _run([*b_ip_args, "link", "set", b_if, "up"])
    except NetNSError:
        # The pair may still be in the host namespace; remove whichever end is still visible here.
        _run(["ip", "link", "del", a_if], check=False)
        _run(["ip", "link", "del", b_if], check=False)
        raise
    return a_if, b_if


def iptables_restore(ns: NetNS, rules: str, *, timeout: float = 10.0) -> None:
    """Load `rules` (iptables-restore syntax) into `ns` with `iptables-restore --noflush`."""
    ns.run("iptables-restore", "--noflush", input=rules, timeout=timeout)


@functools.cache
def python_for_uid(uid: int) -> str:
    """A Python interpreter `uid` can execute (the test's own may live under a private home directory)."""
    candidates = [
        sys.executable,
        os.path.realpath(sys.executable),
        "/usr/bin/python3",
        "/usr/local/bin/python3",
    ]
    for cand in dict.fromkeys(candidates):
        if not os.path.exists(cand):
            continue
        try:
            cp = subprocess.run(
                [*setpriv_args(uid), cand, "-I", "-c", "pass"], capture_output=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if cp.returncode == 0:
            return cand
    raise NetNSError(f"no Python interpreter executable by uid {uid} (tried {', '.join(candidates)})")
