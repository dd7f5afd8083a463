"""Health-probe rewriting for meshed pods (pure).

Inbound traffic to a meshed pod is redirected to Envoy, which requires mTLS, so the kubelet's probes
cannot reach the app directly. HTTP(S) probes move to the sidecar's static probe listeners
(15901/15902/15903, path `/osm-<kind>-probe`) that forward to the app on localhost. TCP probes become
HTTP probes of the osm-healthcheck container (15904, `/osm-healthcheck`), which dials the app's port
from inside the pod, named by the `Original-Tcp-Port` header (as upstream's).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from osm.envoy.bootstrap.bootstrap import PROBE_PORTS, ProbeRoute
from osm.models.k8s import HEALTHCHECK_HEADER, HEALTHCHECK_PATH, HEALTHCHECK_PORT, Container, Probe

KINDS = ("liveness", "readiness", "startup")


@dataclass(frozen=True, slots=True)
class RewrittenProbes:
    routes: tuple[ProbeRoute, ...]  # for the bootstrap's static listeners
    probes: dict[tuple[str, str], Probe]  # (container, kind) -> the probe as the kubelet runs it
    healthcheck: bool = False  # a probe goes to the osm-healthcheck container


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
                https = probe.scheme == "HTTPS"
                probes[(c.name, kind)] = replace(
                    probe,
                    port=PROBE_PORTS[kind],
                    # HTTPS passes through the sidecar as TLS: the app sees the kubelet's own request,
                    # so its path stays (as upstream's); HTTP is routed by the probe path and rewritten
                    path=probe.path or "/" if https else f"/osm-{kind}-probe",
                    scheme="HTTPS" if https else "HTTP",
                )
            elif probe.kind == "tcpSocket" and port is not None:
                # The kubelet's connection would reach Envoy's inbound listener, not the app.
                probes[(c.name, kind)] = replace(
                    probe,
                    kind="httpGet",
                    port=HEALTHCHECK_PORT,
                    path=HEALTHCHECK_PATH,
                    scheme="HTTP",
                    headers=((HEALTHCHECK_HEADER, str(port)),),
                )
            else:
                probes[(c.name, kind)] = probe if port is None else replace(probe, port=port)
    healthcheck = any(p.port == HEALTHCHECK_PORT and p.path == HEALTHCHECK_PATH for p in probes.values())
    return RewrittenProbes(tuple(routes), probes, healthcheck)
