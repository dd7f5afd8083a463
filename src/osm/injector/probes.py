"""Health-probe rewriting for meshed pods (pure).

Inbound traffic to a meshed pod is redirected to Envoy, which requires mTLS, so the kubelet's probes
cannot reach the app directly. HTTP(S) probes move to the sidecar's static probe listeners
(15901/15902/15903, path `/osm-<kind>-probe`) that forward to the app on localhost. TCP probes are
checked from inside the pod against localhost (what upstream's osm-healthcheck container does).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from osm.envoy.bootstrap.bootstrap import PROBE_PORTS, ProbeRoute
from osm.models.k8s import Container, Probe

KINDS = ("liveness", "readiness", "startup")


@dataclass(frozen=True, slots=True)
class RewrittenProbes:
    routes: tuple[ProbeRoute, ...]  # for the bootstrap's static listeners
    probes: dict[tuple[str, str], Probe]  # (container, kind) -> the probe as the kubelet runs it


def _probe(c: Container, kind: str) -> Probe | None:
    probe: Probe | None = getattr(c, f"{kind}_probe")
    return probe


def _resolve(c: Container, port: int | str) -> int | None:
    if isinstance(port, int):
        return port
    for p in c.ports:
        if p.name == port:
            return p.container_port
    return None


def rewrite_probes(containers: tuple[Container, ...]) -> RewrittenProbes:
    routes: list[ProbeRoute] = []
    probes: dict[tuple[str, str], Probe] = {}
    taken: set[str] = set()
    for c in containers:
        for kind in KINDS:
            probe = _probe(c, kind)
            if probe is None:
                continue
            port = _resolve(c, probe.port)
            if probe.kind == "httpGet" and kind not in taken and port is not None:
                taken.add(kind)
                routes.append(
                    ProbeRoute(
                        kind,
                        port,
                        probe.path or "/",
                        https=probe.scheme == "HTTPS",
                        timeout_seconds=probe.timeout_seconds,
                    )
                )
                probes[(c.name, kind)] = replace(
                    probe,
                    port=PROBE_PORTS[kind],
                    path=f"/osm-{kind}-probe",
                    scheme="HTTP" if probe.scheme != "HTTPS" else "HTTPS",
                )
            else:
                probes[(c.name, kind)] = probe if port is None else replace(probe, port=port)
    return RewrittenProbes(tuple(routes), probes)
