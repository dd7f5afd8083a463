"""The osm_* registry: upstream's names (no `_total` suffix on counters), types, label sets and
buckets, in Prometheus' text format; series bounded per family; a proxy's series dropped with it."""

from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from osm import metrics
from osm.metrics import ControlPlaneMetrics, Counter, ErrCodeCounter, Histogram, Registry


def parsed(text: str) -> dict[str, dict[str, object]]:
    """family name -> {"type": ..., "samples": [(name, labels, value)]}, by Prometheus' own parser."""
    out: dict[str, dict[str, object]] = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = {"type": fam.type, "samples": [(s.name, s.labels, s.value) for s in fam.samples]}
    return out


def test_upstream_families_are_exposed_with_their_types_and_labels() -> None:
    m = ControlPlaneMetrics()
    m.proxy_connect_count.set(3)
    m.proxy_xds_request_count.inc("u-1", "bookbuyer.bookbuyer", "CDS")
    m.proxy_config_update_time.observe(0.3, "all", "true")
    text = m.exposition()
    assert "# TYPE osm_proxy_xds_request_count counter" in text
    assert 'osm_proxy_xds_request_count{proxy_uuid="u-1",identity="bookbuyer.bookbuyer",type="CDS"} 1' in text
    assert "osm_proxy_connect_count 3" in text
    assert "osm_proxy_reconnect_count 0" in text  # a family without labels shows its zero
    buckets = [line for line in text.splitlines() if line.startswith("osm_proxy_config_update_time_bucket")]
    assert [b.split('le="')[1].split('"')[0] for b in buckets] == [
        "0.1",
        "0.25",
        "0.5",
        "1",
        "2.5",
        "5",
        "10",
        "20",
        "40",
        "90",
        "+Inf",
    ]
    assert buckets[1].endswith(" 0") and buckets[2].endswith(" 1") and buckets[-1].endswith(" 1")
    # Prometheus' parser reads it all (it names counters without _total: our text keeps upstream's names)
    families = parsed(text)
    assert families["osm_proxy_connect_count"]["type"] == "gauge"
    assert families["osm_proxy_config_update_time"]["type"] == "histogram"
    names = {f.name for f in m.registry.families}
    for upstream in (
        "osm_k8s_api_event_count",
        "osm_resource_namespace_count",
        "osm_proxy_connect_count",
        "osm_proxy_reconnect_count",
        "osm_proxy_response_send_success_count",
        "osm_proxy_response_send_error_count",
        "osm_proxy_config_update_time",
        "osm_proxy_broadcast_event_count",
        "osm_proxy_xds_request_count",
        "osm_proxy_max_connections_rejected",
        "osm_error_err_code_count",
        "osm_http_response_total",
        "osm_http_response_duration",
        "osm_feature_flag_enabled",
        "osm_version_info",
        "osm_admission_webhook_response_total",
        "osm_events_queued",
        "osm_reconciliation_total",
        "osm_cert_issued_count",
        "osm_cert_issued_time",
    ):
        assert upstream in names


def test_label_values_are_escaped() -> None:
    r = Registry()
    c = Counter(r, "x", "x", ("path",))
    c.inc('a"b\\c\nd')
    assert 'osm_x{path="a\\"b\\\\c\\nd"} 1' in r.exposition()
    # (prometheus_client's parser calls a counter's sample `<name>_total`; Prometheus keeps the name)
    [(_, labels, value)] = parsed(r.exposition())["osm_x"]["samples"]  # type: ignore[misc]
    assert (labels, value) == ({"path": 'a"b\\c\nd'}, 1.0)


def test_series_are_bounded_per_family_and_the_drops_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_SERIES", 3)
    r = Registry()
    c = Counter(r, "requests", "r", ("proxy_uuid",))
    h = Histogram(r, "time", "t", ("proxy_uuid",))
    for i in range(5):
        c.inc(f"u-{i}")
        h.observe(1.0, f"u-{i}")
    c.inc("u-0")  # a series already kept still moves
    assert [c.value(f"u-{i}") for i in range(5)] == [2.0, 1.0, 1.0, 0.0, 0.0]
    assert 'osm_metrics_series_dropped{family="osm_requests"} 2' in r.exposition()
    assert 'osm_metrics_series_dropped{family="osm_time"} 2' in r.exposition()


def test_a_proxy_s_series_go_with_it() -> None:
    m = ControlPlaneMetrics()
    for t in ("CDS", "LDS"):
        m.proxy_xds_request_count.inc("u-1", "a.b", t)
        m.proxy_response_send_success_count.inc("u-1", "a.b", t)
    m.proxy_xds_request_count.inc("u-2", "a.b", "CDS")
    m.registry.forget("proxy_uuid", "u-1")
    text = m.exposition()
    assert 'proxy_uuid="u-1"' not in text and 'proxy_uuid="u-2"' in text


def test_counters_only_go_up_and_label_counts_are_checked() -> None:
    r = Registry()
    c = Counter(r, "c", "c", ("a",))
    with pytest.raises(ValueError, match="only goes up"):
        c.inc("x", by=-1)
    with pytest.raises(ValueError, match="1 label values expected"):
        c.inc("x", "y")
    with pytest.raises(ValueError, match="registered twice"):
        Counter(r, "c", "again")


def test_logged_error_codes_are_counted() -> None:
    m = ControlPlaneMetrics()
    handler = ErrCodeCounter(m.error_err_code_count)
    log = logging.getLogger("test.errcodes")
    log.addHandler(handler)
    try:
        log.error("no proxy", extra={"err_code": "E5004"})
        log.error("again", extra={"err_code": "E5004"})
        log.warning("without a code")
    finally:
        log.removeHandler(handler)
    assert m.error_err_code_count.value("E5004") == 2
    assert 'osm_error_err_code_count{err_code="E5004"} 2' in m.exposition()


def test_a_disabled_registry_records_nothing() -> None:
    m = ControlPlaneMetrics(enabled=False)
    m.proxy_connect_count.set(3)
    m.proxy_xds_request_count.inc("u-1", "a.b", "CDS")
    m.proxy_config_update_time.observe(0.3, "all", "true")
    assert m.proxy_connect_count.value() == 0 and m.proxy_xds_request_count.value("u-1", "a.b", "CDS") == 0
    assert m.proxy_config_update_time.count("all", "true") == 0
