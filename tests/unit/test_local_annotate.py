"""`osm metrics enable|disable` on the local mesh: the Namespace's annotation written into the manifest
that defines it (osm.local.annotate)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from osm.local.annotate import AnnotateError, annotate_namespace
from osm.local.source import parse_manifest

KEY = "openservicemesh.io/metrics"


def test_the_namespace_is_annotated_in_its_own_file_and_the_rest_kept(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "ns.yaml").write_text("kind: Namespace\nmetadata: {name: shop}\n")
    other = tmp_path / "a.yaml"
    other.write_text("kind: Namespace\nmetadata: {name: other}\n")
    shop = tmp_path / "apps" / "shop.yaml"
    shop.write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n"
        "  labels: {openservicemesh.io/monitored-by: osm}\n"
        "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web, namespace: shop}\n"
    )
    shop.chmod(0o640)
    assert annotate_namespace(tmp_path, "shop", {KEY: "enabled"}) == shop
    docs = list(yaml.safe_load_all(shop.read_text()))
    assert docs[0]["metadata"] == {
        "name": "shop",
        "labels": {"openservicemesh.io/monitored-by": "osm"},
        "annotations": {KEY: "enabled"},
    }
    assert docs[1] == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "web", "namespace": "shop"},
    }
    assert shop.stat().st_mode & 0o777 == 0o640
    assert other.read_text() == "kind: Namespace\nmetadata: {name: other}\n"  # untouched
    assert "annotations" not in (tmp_path / ".hidden" / "ns.yaml").read_text()
    # the control plane reads the rewritten file: the Namespace and its annotation
    parsed = parse_manifest(shop.read_bytes(), "apps/shop.yaml")
    assert not parsed.errors
    annotate_namespace(tmp_path, "shop", {KEY: None})
    assert "annotations" not in yaml.safe_load_all(shop.read_text()).__next__()["metadata"]


def test_json_manifests_stay_json_and_a_missing_namespace_is_said(tmp_path: Path) -> None:
    f = tmp_path / "ns.json"
    f.write_text(json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
    annotate_namespace(tmp_path, "shop", {KEY: "enabled"})
    assert json.loads(f.read_text())["metadata"]["annotations"] == {KEY: "enabled"}
    (tmp_path / "broken.yaml").write_text("kind: [unclosed\n")
    with pytest.raises(AnnotateError, match=f"no Namespace nope in the manifests under {tmp_path}"):
        annotate_namespace(tmp_path, "nope", {KEY: "enabled"})
