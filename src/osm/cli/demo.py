"""`osm demo`: the bookstore demo on the local mesh, with a live dashboard or a scripted walk-through.

The script follows upstream's demo: permissive mode (bookthief succeeds), SMI mode (bookthief fails,
bookbuyer succeeds), a TrafficTarget for bookthief (it succeeds), and the split moved to bookstore-v2
(v2 serves nearly all). Each step edits the manifests, then waits for its expectation to hold over a
window of live traffic, and reports how long convergence took.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

from osm.apis.meshconfig import MeshConfig
from osm.cli.options import STATE_DIR
from osm.demo.dashboard import build_rows, collect, render
from osm.demo.manifests import THIEF_TARGET
from osm.local import up
from osm.models.errors import ValidationError
from osm.paths import DATA

WINDOW = 2.0  # seconds of traffic an expectation must hold over
STEP_TIMEOUT = 45.0


def default_manifests() -> Path:
    return DATA / "demo"


def traffic_mode(manifests: Path) -> str:
    """The mode the mesh runs in, as the control plane reads 00-mesh.yaml (closed without a MeshConfig)."""
    for doc in yaml.safe_load_all((manifests / "00-mesh.yaml").read_text()):
        if isinstance(doc, dict) and doc.get("kind") == "MeshConfig":
            try:
                return "permissive" if MeshConfig.from_k8s(doc).permissive else "SMI"
            except ValidationError:
                return "SMI (MeshConfig rejected)"
    return "SMI (no MeshConfig)"


class Observer:
    """Samples the apps' counters; answers whether a condition held over the last WINDOW seconds."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.samples: list[tuple[float, dict[str, dict[str, Any]]]] = []

    def sample(self) -> dict[str, dict[str, Any]]:
        status = up.read_status(self.state_dir) or {"pods": []}
        stats = collect(Path(p["dir"]) for p in status["pods"])
        by_app = {str(s.get("app")): s for s in stats.values()}
        self.samples = [*self.samples[-400:], (time.monotonic(), by_app)]
        return by_app

    def delta(self, app: str, window: float) -> dict[str, Any] | None:
        """Counter deltas of `app` over the last `window` seconds (None until the window is covered)."""
        now = self.samples[-1][0]
        start = next((s for s in self.samples if s[0] >= now - window - 0.3), None)
        if start is None or now - start[0] < window * 0.9:
            return None
        a, b = start[1].get(app), self.samples[-1][1].get(app)
        if a is None or b is None or a.get("started") != b.get("started"):
            return None
        versions = {k: v - a.get("by_version", {}).get(k, 0) for k, v in b.get("by_version", {}).items()}
        return {
            "success": b["success"] - a["success"],
            "failure": b["failure"] - a["failure"],
            "versions": versions,
        }


def succeeds(app: str) -> Callable[[Observer], bool]:
    def check(o: Observer) -> bool:
        d = o.delta(app, WINDOW)
        return d is not None and d["success"] >= 3 and d["failure"] == 0

    return check


def fails(app: str) -> Callable[[Observer], bool]:
    def check(o: Observer) -> bool:
        d = o.delta(app, WINDOW)
        return d is not None and d["success"] == 0 and d["failure"] >= 3

    return check


def version_share(app: str, version: str, at_least: float) -> Callable[[Observer], bool]:
    def check(o: Observer) -> bool:
        d = o.delta(app, WINDOW * 1.5)
        if d is None:
            return False
        versions: dict[str, int] = d["versions"]
        total = sum(versions.values())
        return total >= 10 and versions.get(version, 0) / total >= at_least

    return check


@dataclass(frozen=True)
class Step:
    title: str
    edit: Callable[[Path], None]
    expect: tuple[tuple[str, Callable[[Observer], bool]], ...]


def _replace(file: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(manifests: Path) -> None:
        path = manifests / file
        text = path.read_text()
        if old not in text:
            raise click.ClickException(f"demo manifests: {old!r} not found in {path}")
        path.write_text(text.replace(old, new))

    return edit


def _append(file: str, text: str) -> Callable[[Path], None]:
    def edit(manifests: Path) -> None:
        with open(manifests / file, "a") as f:
            f.write(text)

    return edit


STEPS = (
    Step(
        "permissive mode: every meshed app may call every other",
        _replace(
            "00-mesh.yaml",
            "enablePermissiveTrafficPolicyMode: false",
            "enablePermissiveTrafficPolicyMode: true",
        ),
        (("bookbuyer succeeds", succeeds("bookbuyer")), ("bookthief succeeds", succeeds("bookthief"))),
    ),
    Step(
        "SMI mode: only TrafficTargets allow traffic",
        _replace(
            "00-mesh.yaml",
            "enablePermissiveTrafficPolicyMode: true",
            "enablePermissiveTrafficPolicyMode: false",
        ),
        (("bookthief fails", fails("bookthief")), ("bookbuyer succeeds", succeeds("bookbuyer"))),
    ),
    Step(
        "a TrafficTarget lets bookthief buy",
        _append("40-policies.yaml", THIEF_TARGET),
        (("bookthief succeeds", succeeds("bookthief")), ("bookbuyer succeeds", succeeds("bookbuyer"))),
    ),
    Step(
        "the split moves to bookstore-v2",
        _replace(
            "50-traffic-split.yaml",
            "{service: bookstore-v1, weight: 50}\n  - {service: bookstore-v2, weight: 50}",
            "{service: bookstore-v1, weight: 0}\n  - {service: bookstore-v2, weight: 100}",
        ),
        (
            (
                "bookstore-v2 serves >= 95% of bookbuyer's purchases",
                version_share("bookbuyer", "bookstore-v2", 0.95),
            ),
        ),
    ),
)


def prepare(state_dir: Path, source: Path) -> Path:
    work = state_dir / "demo-manifests"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(source, work)
    return work


def _wait_for(
    observer: Observer, checks: tuple[tuple[str, Callable[[Observer], bool]], ...], timeout: float
) -> float | None:
    """Seconds until every check held (the start of the window they held over); None on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        observer.sample()
        if all(check(observer) for _, check in checks):
            return max(0.0, time.monotonic() - start - WINDOW)
        time.sleep(0.25)
    return None


def run_script(state_dir: Path, manifests: Path, echo: Callable[[str], None]) -> bool:
    observer = Observer(state_dir)
    echo("waiting for the bookstore apps to be ready and trading...")
    warm = _wait_for(observer, (("bookbuyer succeeds", succeeds("bookbuyer")),), 120)
    if warm is None:
        echo("FAIL  the demo never became healthy (bookbuyer has no successful purchases)")
        return False
    ok = True
    for i, step in enumerate(STEPS, 1):
        step.edit(manifests)
        took = _wait_for(observer, step.expect, STEP_TIMEOUT)
        expectations = "; ".join(name for name, _ in step.expect)
        if took is None:
            held = [name for name, check in step.expect if check(observer)]
            echo(
                f"FAIL  step {i}: {step.title}: expected {expectations} within {STEP_TIMEOUT:.0f} s "
                f"(held: {', '.join(held) or 'none'})"
            )
            ok = False
            break
        echo(f"PASS  step {i}: {step.title}: {expectations} (converged in {took:.1f} s)")
    return ok


def dashboard(state_dir: Path, manifests: Path) -> None:
    from rich.live import Live

    prev: dict[str, dict[str, Any]] = {}
    with Live(refresh_per_second=2, screen=False) as live:
        while True:
            status = up.read_status(state_dir) or {"pods": [], "events": []}
            cur = collect(Path(p["dir"]) for p in status["pods"])
            live.update(render(build_rows(prev, cur), traffic_mode(manifests), status.get("events", [])))
            prev = cur
            time.sleep(1.0)


@click.command("demo")
@STATE_DIR
@click.option("--script", is_flag=True, help="walk upstream's demo steps and exit 0 only if every one held")
@click.option(
    "--manifests",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="the demo manifests to copy (default: the ones installed with osm)",
)
def demo_cmd(state_dir: Path, script: bool, manifests: Path | None) -> None:
    """Run the bookstore demo on this machine (root, Linux) with real Envoy sidecars."""
    from osm.local.preflight import PreflightError

    work = prepare(state_dir, manifests or default_manifests())
    with_prometheus = shutil.which("prometheus") is not None  # Debian's package, when installed
    try:
        up.up(work, state_dir, detach=True, prometheus=with_prometheus)
    except (up.LocalError, PreflightError) as e:
        raise click.ClickException(str(e)) from None
    try:
        if script:
            passed = run_script(state_dir, work, click.echo)
            click.echo("demo script " + ("passed" if passed else "FAILED"))
            raise SystemExit(0 if passed else 1)
        click.echo(
            "bookstore demo running; edit the manifests in " + str(work) + " and watch. Ctrl-C stops it."
        )
        endpoints = (up.read_status(state_dir) or {}).get("endpoints") or {}
        for name, url in endpoints.items():
            click.echo(f"{name}: {url}")  # on this host (Prometheus scrapes the mesh when installed)
        with contextlib.suppress(KeyboardInterrupt):
            dashboard(state_dir, work)
    finally:
        up.down(state_dir)
