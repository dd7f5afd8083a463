"""Checks before `osm local up` creates anything: one line saying what is missing and how to get it."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

TOOLS = {
    "ip": "apt-get install -y iproute2",
    "iptables-restore": "apt-get install -y iptables",
    "iptables": "apt-get install -y iptables",
    "setpriv": "apt-get install -y util-linux",
    "nsenter": "apt-get install -y util-linux",
    "sysctl": "apt-get install -y procps",
}


class PreflightError(Exception):
    pass


def check(state_dir: Path) -> None:
    if not sys.platform.startswith("linux"):
        raise PreflightError(
            f"osm local needs Linux (network namespaces and iptables); this is {sys.platform}"
        )
    if os.geteuid() != 0:
        raise PreflightError(
            "osm local needs root to create network namespaces and iptables rules; "
            "run it as root (e.g. with sudo)"
        )
    for tool, how in TOOLS.items():
        if shutil.which(tool) is None:
            raise PreflightError(f"osm local needs `{tool}`, which is not installed; install it with: {how}")
    if not Path("/run").is_dir():
        raise PreflightError("osm local needs /run for named network namespaces")
    check_traversable(state_dir)


def check_traversable(state_dir: Path) -> None:
    """Envoy runs as uid 1500 and reads its bootstrap under the state dir: every parent must let it pass."""
    for parent in [*reversed(state_dir.resolve().parents)]:
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            raise PreflightError(
                f"state directory {state_dir}: {parent} is not searchable by other users, so the "
                "sidecars (uid 1500) cannot read their bootstrap; choose another --state-dir "
                "(the default is /var/lib/osm-local)"
            )
