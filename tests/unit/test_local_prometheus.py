"""The local Prometheus' configuration and its sidecar targets (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from osm.local import prometheus
from osm.state.decode import decode
from osm.state.snapshot import MeshState

DOCS = """
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {openservicemesh.io/monitored-by: osm}
  annotations: {openservicemesh.io/metrics: enabled}
---
apiVersion: v1
kind: Namespace
metadata: {name: quiet, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-abc, namespace: shop, annotations: {local.openservicemesh.io/owner: Deployment/web}}
spec: {containers: [{name: web}]}
"""


def state() -> MeshState:
    return MeshState.build([o for o in (decode(d) for d in yaml.safe_load_all(DOCS)) if o is not None])


def pod(ns: str, name: str, ip: str, *, meshed: bool = True, phase: str = "running") -> dict[str, object]:
    return {"namespace": ns, "name": name, "ip": ip, "meshed": meshed, "phase": phase}


def test_sidecars_of_namespaces_with_metrics_enabled_are_targets_labelled_as_upstream() -> None:
    pods = [
        pod("shop", "web-abc", "10.250.0.2"),
        pod("shop", "plain", "10.250.0.3", meshed=False),
        pod("shop", "leaving", "10.250.0.4", phase="stopping"),
        pod("quiet", "other", "10.250.0.5"),
    ]
    assert prometheus.sidecar_targets(state(), pods) == [
        {
            "targets": ["10.250.0.2:15010"],
            "labels": {
                "source_namespace": "shop",
                "source_pod_name": "web-abc",
                "source_workload_kind": "Deployment",
                "source_workload_name": "web",
            },
        }
    ]


def test_the_config_scrapes_the_controller_and_the_listed_sidecars(tmp_path: Path) -> None:
    cfg = yaml.safe_load(prometheus.config("10.250.0.1:9091", tmp_path / "sidecars.json"))
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["osm-controller"]["static_configs"][0]["targets"] == ["10.250.0.1:9091"]
    assert jobs["kubernetes-pods"]["metrics_path"] == "/stats/prometheus"
    assert jobs["kubernetes-pods"]["file_sd_configs"][0]["files"] == [str(tmp_path / "sidecars.json")]
    prometheus.write_targets(tmp_path / "sidecars.json", [{"targets": ["a:1"], "labels": {}}])
    assert json.loads((tmp_path / "sidecars.json").read_text()) == [{"targets": ["a:1"], "labels": {}}]
