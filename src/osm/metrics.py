"""The control plane's Prometheus metrics: upstream OSM's names (namespace `osm_`), labels, types and
buckets, in the Prometheus text format (0.0.4).

A small registry of our own rather than prometheus_client: upstream's counters are named without the
`_total` suffix that prometheus_client appends, and dashboards query them by those names. Every family
bounds its series (`MAX_SERIES`): a label value an outsider controls (a proxy's UUID, a request path)
cannot grow it without limit; series beyond the bound are dropped and counted in
`osm_metrics_series_dropped`. A proxy's series go when it disconnects (`forget`).
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections.abc import Collection, Iterable, Sequence
from typing import Any

MAX_SERIES = 20_000  # per family
UPDATE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 90.0)  # upstream's, seconds
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # client_golang's default

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


class _Family:
    kind = "untyped"

    def __init__(self, registry: Registry, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name = f"osm_{name}"
        self.help = help
        self.labels = tuple(labels)
        self._registry = registry
        self._series: dict[Labels, Any] = {}  # label values -> the series' state
        self._lock = threading.Lock()
        registry.register(self)

    def _key(self, values: Sequence[str]) -> Labels:
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.labels)} label values expected, got {len(values)}")
        return values if type(values) is tuple else tuple(values)

    def _admit(self, series: Collection[Labels], key: Labels) -> bool:
        if key in series or len(series) < MAX_SERIES:
            return True
        self._registry.dropped(self.name)
        return False

    def _label_text(self, key: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
        pairs = [*zip(self.labels, key, strict=True), *extra]
        if not pairs:
            return ""
        return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"

    def forget(self, label: str, value: str) -> None:
        """Drop every series whose `label` is `value` (a proxy that went away)."""
        if label not in self.labels:
            return
        i = self.labels.index(label)
        with self._lock:
            for key in [k for k in self._series if k[i] == value]:
                del self._series[key]

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"


class _Valued(_Family):
    def _add(self, values: Sequence[str], by: float) -> None:
        if not self._registry.enabled:
            return
        key = self._key(values)
        with self._lock:
            if self._admit(self._series, key):
                self._series[key] = self._series.get(key, 0.0) + by

    def value(self, *values: str) -> float:
        return float(self._series.get(self._key(values), 0.0))

    def lines(self) -> Iterable[str]:
        yield from super().lines()
        with self._lock:
            items = sorted(self._series.items())
        if not items and not self.labels:
            items = [((), 0.0)]
        for key, v in items:
            yield f"{self.name}{self._label_text(key)} {_number(v)}"


class Counter(_Valued):
    kind = "counter"

    def inc(self, *values: str, by: float = 1.0) -> None:
        if by < 0:
            raise ValueError(f"{self.name}: a counter only goes up")
        self._add(values, by)


class Gauge(_Valued):
    kind = "gauge"

    def set(self, value: float, *values: str) -> None:
        if not self._registry.enabled:
            return
        key = self._key(values)
        with self._lock:
            if self._admit(self._series, key):
                self._series[key] = float(value)

    def inc(self, *values: str, by: float = 1.0) -> None:
        self._add(values, by)


class Histogram(_Family):
    kind = "histogram"

    def __init__(
        self,
        registry: Registry,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = UPDATE_BUCKETS,
    ) -> None:
        super().__init__(registry, name, help, labels)
        self.buckets = tuple(sorted(buckets))  # a series: its bucket counts, the +Inf count, the sum

    def observe(self, value: float, *values: str) -> None:
        if not self._registry.enabled:
            return
        key = self._key(values)
        with self._lock:
            if not self._admit(self._series, key):
                return
            s = self._series.setdefault(key, [0.0] * (len(self.buckets) + 2))
            s[bisect.bisect_left(self.buckets, value)] += 1  # the first bucket whose bound >= value
            s[-1] += value

    def count(self, *values: str) -> int:
        s = self._series.get(self._key(values))
        return 0 if s is None else int(sum(s[:-1]))

    def lines(self) -> Iterable[str]:
        yield from super().lines()
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        for key, s in items:
            running = 0.0
            for bound, n in zip((*self.buckets, math.inf), s[:-1], strict=True):
                running += n
                le = self._label_text(key, (("le", _number(bound)),))
                yield f"{self.name}_bucket{le} {_number(running)}"
            yield f"{self.name}_sum{self._label_text(key)} {_number(s[-1])}"
            yield f"{self.name}_count{self._label_text(key)} {_number(running)}"


class Registry:
    def __init__(self, *, enabled: bool = True) -> None:
        self.families: list[_Family] = []
        self._dropped: dict[str, int] = {}
        self.enabled = enabled  # off: every family ignores what it is told (to measure their cost)

    def register(self, family: _Family) -> None:
        if any(f.name == family.name for f in self.families):
            raise ValueError(f"{family.name} is registered twice")
        self.families.append(family)

    def dropped(self, name: str) -> None:
        self._dropped[name] = self._dropped.get(name, 0) + 1

    def forget(self, label: str, value: str) -> None:
        for f in self.families:
            f.forget(label, value)

    def exposition(self) -> str:
        out: list[str] = []
        for f in self.families:
            out.extend(f.lines())
        out.append("# HELP osm_metrics_series_dropped series not kept because their family is full")
        out.append("# TYPE osm_metrics_series_dropped counter")
        for name, n in sorted(self._dropped.items()):
            out.append(f'osm_metrics_series_dropped{{family="{name}"}} {n}')
        return "\n".join(out) + "\n"


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ControlPlaneMetrics:
    """The families of upstream's metrics store, as one process's registry."""

    def __init__(self, *, enabled: bool = True) -> None:
        r = self.registry = Registry(enabled=enabled)
        self.k8s_api_event_count = Counter(
            r, "k8s_api_event_count", "events received from the state source", ("type", "namespace")
        )
        self.resource_namespace_count = Gauge(r, "resource_namespace_count", "namespaces in the mesh")
        self.proxy_connect_count = Gauge(r, "proxy_connect_count", "proxies connected to the controller")
        self.proxy_reconnect_count = Counter(r, "proxy_reconnect_count", "proxies that connected again")
        per_proxy = ("proxy_uuid", "identity", "type")
        self.proxy_response_send_success_count = Counter(
            r, "proxy_response_send_success_count", "xDS responses sent to proxies", per_proxy
        )
        self.proxy_response_send_error_count = Counter(
            r, "proxy_response_send_error_count", "xDS responses that could not be sent", per_proxy
        )
        self.proxy_config_update_time = Histogram(
            r,
            "proxy_config_update_time",
            "seconds spent building a proxy's configuration",
            ("resource_type", "success"),
            UPDATE_BUCKETS,
        )
        self.proxy_broadcast_event_count = Counter(
            r, "proxy_broadcast_event_count", "snapshots of the mesh pushed to the proxies they affect"
        )
        self.proxy_xds_request_count = Counter(
            r, "proxy_xds_request_count", "xDS requests received from proxies", per_proxy
        )
        self.proxy_max_connections_rejected = Counter(
            r, "proxy_max_connections_rejected", "proxy streams refused at the connection limit"
        )
        self.error_err_code_count = Counter(
            r, "error_err_code_count", "errors logged, by upstream's error code", ("err_code",)
        )
        self.http_response_total = Counter(
            r,
            "http_response_total",
            "HTTP responses of the control plane's servers",
            ("code", "method", "path"),
        )
        self.http_response_duration = Histogram(
            r,
            "http_response_duration",
            "seconds to answer HTTP requests",
            ("code", "method", "path"),
            HTTP_BUCKETS,
        )
        self.feature_flag_enabled = Gauge(
            r, "feature_flag_enabled", "MeshConfig feature flags (1: on)", ("feature_flag",)
        )
        self.version_info = Gauge(
            r, "version_info", "the running version", ("version", "build_date", "git_commit")
        )
        self.admission_webhook_response_total = Counter(
            r, "admission_webhook_response_total", "admission reviews answered", ("kind", "success")
        )
        self.events_queued = Gauge(r, "events_queued", "state changes waiting to become a snapshot")
        self.reconciliation_total = Counter(
            r, "reconciliation_total", "resources the reconciler put back", ("kind",)
        )
        self.cert_issued_count = Counter(r, "cert_issued_count", "certificates issued")
        self.cert_issued_time = Histogram(
            r, "cert_issued_time", "seconds to issue a certificate", (), UPDATE_BUCKETS
        )

    def cert_issued(self, seconds: float) -> None:
        self.cert_issued_count.inc()
        self.cert_issued_time.observe(seconds)

    def exposition(self) -> str:
        return self.registry.exposition()


class ErrCodeCounter(logging.Handler):
    """Counts every log record that carries an `err_code` (osm.errcode) into osm_error_err_code_count."""

    def __init__(self, counter: Counter) -> None:
        super().__init__(level=logging.DEBUG)
        self.counter = counter

    def emit(self, record: logging.LogRecord) -> None:
        code = getattr(record, "err_code", None)
        if code:
            self.counter.inc(str(code))
