"""B1 with the compiled fleet (`loadgen.c`): a cold start whose load side keeps up with the control plane.

The Python fleet (simproxy.py) needs more CPU to receive a permissive mesh's cold start at N = 2,000
than the control plane needs to send it, so its core sets the pace there. `loadgen` subscribes and
ACKs the same way (CDS and LDS by wildcard, then EDS, RDS and SDS by the names they refer to; the tests
check it receives what the Python fleet receives) in C, on one thread.

`build()` compiles it on first use (cc, OpenSSL's headers: Debian's gcc and libssl-dev) into
`.venv/lib/osm-bench/loadgen`; `cold_start(n, mode, xds)` runs one cold start against a fresh control
plane, the fleet pinned to the load core, and returns the same figures as the harness's B1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from osm.testing.mesh import build as build_workload

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "bench" / "loadgen.c"
BINARY = ROOT / ".venv" / "lib" / "osm-bench" / "loadgen"
LOAD_CPU = 1
SERVER_NAME = "ads.cluster.local"


def build(binary: Path = BINARY) -> Path:
    """The compiled fleet, built if missing or older than its source."""
    if binary.exists() and binary.stat().st_mtime >= SOURCE.stat().st_mtime:
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    tmp = binary.with_suffix(".tmp")
    cmd = [cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(tmp), str(SOURCE), "-lssl", "-lcrypto"]
    got = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if got.returncode != 0:
        raise RuntimeError(f"cannot build {SOURCE.name} ({' '.join(cmd)}): {got.stderr.strip()[-2000:]}")
    tmp.replace(binary)
    return binary


def _config(
    state_dir: Path, port: int, ca_pem: bytes, creds: list[tuple[str, Any]], delta: bool, limit_s: float
) -> Path:
    """The fleet's config: each proxy's certificate and key (harness.issue_certs) as files."""
    d = state_dir / "fleet"
    d.mkdir(exist_ok=True)
    (d / "ca.pem").write_bytes(ca_pem)
    lines = [f"127.0.0.1 {port} {SERVER_NAME} {d / 'ca.pem'} {int(delta)} {limit_s:g}"]
    for i, (cn, c) in enumerate(creds):
        (d / f"{i}.crt").write_bytes(c.cert_pem)
        key = d / f"{i}.key"
        key.write_bytes(c.key_pem)
        key.chmod(0o600)
        lines.append(f"{cn} {d / f'{i}.crt'} {key}")
    cfg = d / "fleet.conf"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


async def cold_start(n: int, mode: str, xds: str, *, limit_s: float = 180) -> dict[str, Any]:
    """All n proxies of the standard mesh connect at once to a fresh control plane: seconds until the
    last is fully configured, the control plane's CPU and peak RSS, and the fleet's CPU share."""
    from bench.harness import CP, issue_certs  # the harness imports this module: import at call time

    binary = build()
    state_dir = Path(tempfile.mkdtemp(prefix="osm-bench-c-"))
    services = n // 2
    w = build_workload(services, 2, mode=mode)
    cp = CP(services, mode, state_dir)
    proc: asyncio.subprocess.Process | None = None
    try:
        await cp.call(op="gc")
        ca_pem, creds = issue_certs(state_dir, w, n)
        cfg = _config(state_dir, cp.port, ca_pem, creds, xds == "delta", limit_s)
        pin = LOAD_CPU if LOAD_CPU in os.sched_getaffinity(0) else None
        proc = await asyncio.create_subprocess_exec(
            str(binary),
            str(cfg),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 24,  # one JSON line with every proxy's figures
            preexec_fn=(lambda: os.sched_setaffinity(0, {pin})) if pin is not None else None,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        ready = await asyncio.wait_for(proc.stderr.readline(), 60)
        if b"ready" not in ready:
            raise RuntimeError(f"loadgen did not start: {ready.decode(errors='replace')}")
        before = await cp.call(op="stats")
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), limit_s + 30)
        after = await cp.call(op="stats")
        got = json.loads(line)
    finally:
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.wait_for(proc.wait(), 10)
        cp.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
    done = [t for t in got["complete"] if t is not None]
    last = max(done) if len(done) == n else None
    return {
        "seconds": round(last, 3) if last is not None else None,
        "complete": last is not None,
        "complete_count": len(done),
        "cp_cpu_s": round(after["cpu_s"] - before["cpu_s"], 3),
        "cp_peak_rss_mb": round(after["hwm_mb"], 1),
        "load_cpu_s": round(got["cpu_s"], 3),
        "load_util": round(got["cpu_s"] / last, 3) if last else None,
        "nacks": after["nacks"] - before["nacks"],
        "rejected": after["rejected"] - before["rejected"],
        "errors": got["errors"],
        "bytes_per_proxy": round(sum(got["bytes"]) / n),
        "responses_per_proxy": sum(got["responses"]) / n,
    }
