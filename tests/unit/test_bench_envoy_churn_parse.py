"""The B6 instrument's pure parts: Envoy stat names to xDS types, and apply latency from update_time."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.envoy_churn import Edit, applied, apply, rejected, xds_type

from osm.testing.envoy import parse_stats


@pytest.mark.parametrize(
    ("stat", "kind"),
    [
        ("cluster_manager.cds", "CDS"),
        ("listener_manager.lds", "LDS"),
        ("http.mesh-http-conn-manager.rds-outbound.14001.rds.rds-outbound.14001", "RDS"),
        ("sds.service-cert_bookbuyer/bookbuyer", "SDS"),
        ("cluster.bookstore/bookstore-v1|14001", "EDS"),
        ("server.live", None),
    ],
)
def test_stat_prefix_names_its_xds_type(stat: str, kind: str | None) -> None:
    assert xds_type(stat) == kind


def test_parse_stats_keeps_integer_stats_only() -> None:
    text = 'cluster_manager.cds.update_time: 1700\ncluster_manager.cds.version_text: "ab"\nbad line\n'
    assert parse_stats(text) == {"cluster_manager.cds.update_time": 1700}


def test_applied_takes_the_latest_new_update_time_per_type_after_the_edit() -> None:
    before = {"a": {"listener_manager.lds.update_time": 900, "cluster_manager.cds.update_time": 950}}
    after = {
        "a": {"listener_manager.lds.update_time": 1100, "cluster_manager.cds.update_time": 950},
        "b": {"listener_manager.lds.update_time": 1250, "sds.x.update_time": 999, "server.uptime": 5000},
    }
    # CDS did not move; b's SDS update predates the edit; LDS took until 1250 ms on pod b.
    assert applied(before, after, 1000) == {"LDS": 0.25}


def test_rejected_sums_every_subscription() -> None:
    stats = {
        "a": {"cluster_manager.cds.update_rejected": 1, "x.update_time": 5},
        "b": {"sds.y.update_rejected": 2},
    }
    assert rejected(stats) == 3


def test_apply_edits_and_reverts_files(tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text("weight: 50\n")
    edit = Edit("w", "f.yaml", (("weight: 50", "weight: 90"),))
    apply(tmp_path, edit, True)
    assert (tmp_path / "f.yaml").read_text() == "weight: 90\n"
    apply(tmp_path, edit, False)
    assert (tmp_path / "f.yaml").read_text() == "weight: 50\n"
    with pytest.raises(ValueError, match="w: 'weight: 90' not in"):
        apply(tmp_path, edit, False)
    created = Edit("c", "new.yaml", create="kind: Service\n")
    apply(tmp_path, created, True)
    assert (tmp_path / "new.yaml").read_text() == "kind: Service\n"
    apply(tmp_path, created, False)
    assert not (tmp_path / "new.yaml").exists()
