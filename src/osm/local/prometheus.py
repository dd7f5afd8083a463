"""A real Prometheus for the local mesh (`osm local up --prometheus`): Debian's `prometheus`, run by the
node process in the node network namespace, its data under the state directory.

It scrapes what upstream's chart has Prometheus scrape: the controller's `/metrics` (9091), and every
sidecar at `:15010/stats/prometheus` whose namespace enables metrics (`openservicemesh.io/metrics`, as
`osm metrics enable` sets it; upstream reads the `prometheus.io/*` pod annotations that command adds).
Sidecars are found through a file the runtime rewrites as pods come and go (file_sd), each labelled
as upstream's relabelling labels them: `source_namespace`, `source_pod_name`, `source_workload_kind`,
`source_workload_name`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from osm.envoy.common import PORT_METRICS
from osm.injector.patch import metrics_enabled
from osm.local.workloads import owner
from osm.state.snapshot import MeshState

PORT = 9090
SCRAPE_INTERVAL = "2s"  # a laptop's mesh: quick to show, cheap to keep
TARGETS_FILE = "sidecars.json"


class PrometheusError(Exception):
    pass


def binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise PrometheusError(
            "no `prometheus` on PATH: install Debian's package (apt-get install prometheus)"
        )
    return found


def config(controller: str, targets: Path) -> str:
    """prometheus.yml (JSON is YAML): the controller, and the sidecars listed in `targets`."""
    doc = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "osm-controller",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [controller], "labels": {"app": "osm-controller"}}],
            },
            {
                "job_name": "kubernetes-pods",
                "metrics_path": "/stats/prometheus",
                "file_sd_configs": [{"files": [str(targets)], "refresh_interval": SCRAPE_INTERVAL}],
            },
        ],
    }
    return json.dumps(doc, indent=1) + "\n"


def sidecar_targets(state: MeshState, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """file_sd groups: every running meshed pod whose namespace enables metrics."""
    out = []
    for p in sorted(pods, key=lambda p: (p["namespace"], p["name"])):
        if not p.get("meshed") or p.get("phase") != "running":
            continue
        if not metrics_enabled(state.namespaces.get(p["namespace"])):
            continue
        pod = state.pods.get((p["namespace"], p["name"]))
        owned_by = owner(pod) if pod is not None else ""
        kind, _, name = owned_by.partition("/") if owned_by else ("Pod", "", p["name"])
        out.append(
            {
                "targets": [f"{p['ip']}:{PORT_METRICS}"],
                "labels": {
                    "source_namespace": p["namespace"],
                    "source_pod_name": p["name"],
                    "source_workload_kind": kind,
                    "source_workload_name": name,
                },
            }
        )
    return out


def write_targets(path: Path, groups: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups, indent=1) + "\n")
    os.replace(tmp, path)


def argv(state_dir: Path, host: str) -> list[str]:
    """The command that runs Prometheus for the mesh on `state_dir`, serving on host:9090; writes its
    configuration first."""
    home = state_dir / "prometheus"
    (home / "data").mkdir(parents=True, exist_ok=True)
    targets = home / TARGETS_FILE
    if not targets.exists():
        write_targets(targets, [])
    (home / "prometheus.yml").write_text(config(f"{host}:9091", targets))
    return [
        binary(),
        f"--config.file={home / 'prometheus.yml'}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address={host}:{PORT}",
        "--storage.tsdb.retention.time=1d",
    ]
