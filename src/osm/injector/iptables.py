"""OSM's sidecar traffic interception rules (nat table), as `iptables-restore --noflush` input.

Pure functions, no I/O: the injector's init container, the local runtime and the tests all render the
same text. The rule set is upstream OSM's (`pkg/injector/iptables.go`, contract section 5.5):

* inbound: PREROUTING -> OSM_PROXY_INBOUND, which skips the metrics and health-probe ports (and any
  excluded interface or port) and sends the rest to OSM_PROXY_IN_REDIRECT (REDIRECT to the inbound
  listener, 15003);
* outbound: OUTPUT -> OSM_PROXY_OUTBOUND, which lets the proxy's own traffic (uid 1500) and
  localhost traffic through, applies the exclusions and inclusions, and sends the rest to
  OSM_PROXY_OUT_REDIRECT (REDIRECT to the outbound listener, 15001).

Only TCP is intercepted. Only IPv4 is handled (these are `iptables`, not `ip6tables`, rules).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from osm.apis.meshconfig import MeshConfig
from osm.models.k8s import (
    ANNOTATION_INBOUND_PORT_EXCLUSION,
    ANNOTATION_OUTBOUND_IP_EXCLUSION,
    ANNOTATION_OUTBOUND_IP_INCLUSION,
    ANNOTATION_OUTBOUND_PORT_EXCLUSION,
)

__all__ = [
    "ADMIN_PORT",
    "CHAIN_INBOUND",
    "CHAIN_IN_REDIRECT",
    "CHAIN_OUTBOUND",
    "CHAIN_OUT_REDIRECT",
    "INBOUND_SKIP_PORTS",
    "POD_IP_ENV_REF",
    "IptablesConfig",
    "init_container_command",
    "iptables_config_for_pod",
    "iptables_rules",
]

CHAIN_INBOUND = "OSM_PROXY_INBOUND"
CHAIN_IN_REDIRECT = "OSM_PROXY_IN_REDIRECT"
CHAIN_OUTBOUND = "OSM_PROXY_OUTBOUND"
CHAIN_OUT_REDIRECT = "OSM_PROXY_OUT_REDIRECT"

ADMIN_PORT = 15000
# Prometheus (15010), liveness/readiness/startup probe listeners (15901-15903) and osm-healthcheck (15904):
# reached directly by the kubelet / Prometheus, never redirected.
INBOUND_SKIP_PORTS: tuple[int, ...] = (15010, 15901, 15902, 15903, 15904)

# The init container gets POD_IP from the downward API; the shell expands it inside the heredoc.
POD_IP_ENV_REF = "$POD_IP"

# `-m multiport` accepts at most 15 ports per rule; longer lists are split over several rules.
_MULTIPORT_MAX = 15
_IFACE_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")
_PORT_RE = re.compile(r"^[0-9]{1,5}$")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class IptablesConfig:
    """Inputs of the interception rule set. Defaults are OSM's."""

    proxy_uid: int = 1500
    outbound_port: int = 15001
    inbound_port: int = 15003
    outbound_ip_range_exclusions: tuple[str, ...] = ()
    outbound_ip_range_inclusions: tuple[str, ...] = ()
    outbound_port_exclusions: tuple[int, ...] = ()
    inbound_port_exclusions: tuple[int, ...] = ()
    network_interface_exclusions: tuple[str, ...] = ()
    pod_ip_mode: bool = False  # MeshConfig sidecar.localProxyMode == PodIP
    pod_ip: str = ""  # an IPv4 address, or POD_IP_ENV_REF for the init container; required in pod_ip_mode


# ----------------------------------------------------------------------------- validation


def _check_port(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{field}: must be a port number between 1 and 65535, got {value!r}")
    return value


def _check_cidr(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field}: must be a CIDR string, got {value!r}")
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not a valid CIDR range") from None
    if net.version != 4:
        raise ValueError(f"{field}: {value!r} is an IPv6 range; iptables rules are IPv4 only")
    return str(net)


def _check_iface(field: str, value: object) -> str:
    if not isinstance(value, str) or not _IFACE_RE.match(value):
        raise ValueError(f"{field}: {value!r} is not a valid network interface name")
    return value


def _check_pod_ip(cfg: IptablesConfig) -> str:
    if not cfg.pod_ip:
        if cfg.pod_ip_mode:
            raise ValueError("pod_ip: is required when pod_ip_mode is set (an IPv4 address or '$POD_IP')")
        return ""
    if cfg.pod_ip == POD_IP_ENV_REF:
        return cfg.pod_ip
    try:
        addr = ipaddress.ip_address(cfg.pod_ip)
    except ValueError:
        raise ValueError(f"pod_ip: {cfg.pod_ip!r} is not an IP address (or '$POD_IP')") from None
    if addr.version != 4:
        raise ValueError(f"pod_ip: {cfg.pod_ip!r} is an IPv6 address; iptables rules are IPv4 only")
    return str(addr)


def _check_seq(field: str, values: object) -> Sequence[object]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ValueError(f"{field}: must be a tuple, got {type(values).__name__}")
    return values


def _validated(cfg: IptablesConfig) -> tuple[list[str], list[str], list[int], list[int], list[str], str]:
    uid = cfg.proxy_uid
    if isinstance(uid, bool) or not isinstance(uid, int) or not 0 <= uid < 2**32 - 1:
        raise ValueError(f"proxy_uid: must be a uid (0 .. 2**32-2), got {uid!r}")
    _check_port("outbound_port", cfg.outbound_port)
    _check_port("inbound_port", cfg.inbound_port)
    excl = [
        _check_cidr(f"outbound_ip_range_exclusions[{i}]", v)
        for i, v in enumerate(_check_seq("outbound_ip_range_exclusions", cfg.outbound_ip_range_exclusions))
    ]
    incl = [
        _check_cidr(f"outbound_ip_range_inclusions[{i}]", v)
        for i, v in enumerate(_check_seq("outbound_ip_range_inclusions", cfg.outbound_ip_range_inclusions))
    ]
    out_ports = [
        _check_port(f"outbound_port_exclusions[{i}]", v)
        for i, v in enumerate(_check_seq("outbound_port_exclusions", cfg.outbound_port_exclusions))
    ]
    in_ports = [
        _check_port(f"inbound_port_exclusions[{i}]", v)
        for i, v in enumerate(_check_seq("inbound_port_exclusions", cfg.inbound_port_exclusions))
    ]
    ifaces = [
        _check_iface(f"network_interface_exclusions[{i}]", v)
        for i, v in enumerate(_check_seq("network_interface_exclusions", cfg.network_interface_exclusions))
    ]
    return excl, incl, out_ports, in_ports, ifaces, _check_pod_ip(cfg)


# ----------------------------------------------------------------------------- rendering


def _multiport(ports: Sequence[int]) -> list[str]:
    return [
        ",".join(str(p) for p in ports[i : i + _MULTIPORT_MAX]) for i in range(0, len(ports), _MULTIPORT_MAX)
    ]


def iptables_rules(cfg: IptablesConfig) -> str:
    """The `iptables-restore --noflush` input (nat table) for `cfg`; ends with "COMMIT\\n".

    Raises ValueError naming the offending field when `cfg` holds an invalid value.
    """
    excl, incl, out_ports, in_ports, ifaces, pod_ip = _validated(cfg)
    uid = cfg.proxy_uid
    lines = [
        "# OSM sidecar interception rules",
        "*nat",
        f":{CHAIN_INBOUND} - [0:0]",
        f":{CHAIN_IN_REDIRECT} - [0:0]",
        f":{CHAIN_OUTBOUND} - [0:0]",
        f":{CHAIN_OUT_REDIRECT} - [0:0]",
        # Inbound
        f"-A {CHAIN_IN_REDIRECT} -p tcp -j REDIRECT --to-port {cfg.inbound_port}",
        f"-A PREROUTING -p tcp -j {CHAIN_INBOUND}",
    ]
    lines += [f"-A {CHAIN_INBOUND} -p tcp --dport {p} -j RETURN" for p in INBOUND_SKIP_PORTS]
    lines.append(f"-A {CHAIN_INBOUND} -p tcp -j {CHAIN_IN_REDIRECT}")
    # Inserted (-I) so that they come before the redirect; later inserts land above earlier ones.
    lines += [f"-I {CHAIN_INBOUND} -i {iface} -j RETURN" for iface in ifaces]
    lines += [
        f"-I {CHAIN_INBOUND} -p tcp --match multiport --dports {ports} -j RETURN"
        for ports in _multiport(in_ports)
    ]
    # Outbound
    lines += [
        f"-A {CHAIN_OUT_REDIRECT} -p tcp -j REDIRECT --to-port {cfg.outbound_port}",
        f"-A {CHAIN_OUT_REDIRECT} -p tcp --dport {ADMIN_PORT} -j ACCEPT",
        f"-A OUTPUT -p tcp -j {CHAIN_OUTBOUND}",
        # Envoy -> local app through the app's own Service: back to Envoy's inbound listener.
        f"-A {CHAIN_OUTBOUND} -o lo ! -d 127.0.0.1/32 -m owner --uid-owner {uid} -j {CHAIN_IN_REDIRECT}",
        # The app talking to itself over lo (e.g. via the pod IP) is not intercepted.
        f"-A {CHAIN_OUTBOUND} -o lo -m owner ! --uid-owner {uid} -j RETURN",
        # Envoy's own traffic.
        f"-A {CHAIN_OUTBOUND} -m owner --uid-owner {uid} -j RETURN",
        f"-A {CHAIN_OUTBOUND} -d 127.0.0.1/32 -j RETURN",
    ]
    if cfg.pod_ip_mode:
        lines.append(
            f"-I OUTPUT -p tcp -o lo -d 127.0.0.1/32 -m owner --uid-owner {uid} "
            f"-j DNAT --to-destination {pod_ip}"
        )
    lines += [f"-A {CHAIN_OUTBOUND} -o {iface} -j RETURN" for iface in ifaces]
    lines += [f"-A {CHAIN_OUTBOUND} -d {cidr} -j RETURN" for cidr in excl]
    lines += [
        f"-A {CHAIN_OUTBOUND} -p tcp --match multiport --dports {ports} -j RETURN"
        for ports in _multiport(out_ports)
    ]
    if incl:
        lines += [f"-A {CHAIN_OUTBOUND} -d {cidr} -j {CHAIN_OUT_REDIRECT}" for cidr in incl]
        lines.append(f"-A {CHAIN_OUTBOUND} -j RETURN")
    else:
        lines.append(f"-A {CHAIN_OUTBOUND} -j {CHAIN_OUT_REDIRECT}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def init_container_command(cfg: IptablesConfig) -> list[str]:
    """The `osm-init` container command: `/bin/sh -c "iptables-restore --noflush <<EOF ... EOF"`.

    In PodIP mode without an explicit pod IP, the rules reference `$POD_IP`, which the shell expands
    from the container's environment (downward API `status.podIP`).
    """
    if cfg.pod_ip_mode and not cfg.pod_ip:
        cfg = replace(cfg, pod_ip=POD_IP_ENV_REF)
    return ["/bin/sh", "-c", f"iptables-restore --noflush <<EOF\n{iptables_rules(cfg)}EOF\n"]


# ----------------------------------------------------------------------------- pod annotations


def _items(annotations: Mapping[str, str], name: str) -> list[str]:
    raw = annotations.get(name)
    if raw is None:
        return []
    if not isinstance(raw, str):
        raise ValueError(f"annotation {name}: must be a string, got {type(raw).__name__}")
    return [item.strip() for item in raw.split(",") if item.strip()]


def _annotation_ports(annotations: Mapping[str, str], name: str) -> list[int]:
    out: list[int] = []
    for item in _items(annotations, name):
        if not _PORT_RE.match(item) or not 1 <= int(item) <= 65535:
            raise ValueError(
                f"annotation {name}: invalid port {item!r} (must be an integer between 1 and 65535)"
            )
        out.append(int(item))
    return out


def _annotation_cidrs(annotations: Mapping[str, str], name: str) -> list[str]:
    out: list[str] = []
    for item in _items(annotations, name):
        try:
            if "/" not in item:
                raise ValueError(item)
            net = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(
                f"annotation {name}: invalid IP range {item!r} (must be a CIDR such as 10.0.0.0/8)"
            ) from None
        if net.version != 4:
            raise ValueError(f"annotation {name}: IP range {item!r} is IPv6; iptables rules are IPv4 only")
        out.append(str(net))
    return out


def _dedup(*groups: Iterable[_T]) -> tuple[_T, ...]:
    return tuple(dict.fromkeys(v for group in groups for v in group))


def _canonical_cidrs(field: str, values: Iterable[str]) -> list[str]:
    return [_check_cidr(f"{field}[{i}]", v) for i, v in enumerate(values)]


def iptables_config_for_pod(
    mesh: MeshConfig, annotations: Mapping[str, str], pod_ip: str = ""
) -> IptablesConfig:
    """The interception config of one pod: MeshConfig's global lists merged with the pod's annotations.

    Merge order follows upstream OSM: ports are global-then-pod, IP ranges pod-then-global; duplicates
    are dropped keeping the first occurrence. Annotation values are comma-separated (blanks ignored).
    Raises ValueError naming the annotation and the bad item, or the MeshConfig field.
    """
    t = mesh.traffic
    out_ports = _annotation_ports(annotations, ANNOTATION_OUTBOUND_PORT_EXCLUSION)
    in_ports = _annotation_ports(annotations, ANNOTATION_INBOUND_PORT_EXCLUSION)
    ip_excl = _annotation_cidrs(annotations, ANNOTATION_OUTBOUND_IP_EXCLUSION)
    ip_incl = _annotation_cidrs(annotations, ANNOTATION_OUTBOUND_IP_INCLUSION)
    mesh_excl = _canonical_cidrs("traffic.outboundIPRangeExclusionList", t.outbound_ip_range_exclusion_list)
    mesh_incl = _canonical_cidrs("traffic.outboundIPRangeInclusionList", t.outbound_ip_range_inclusion_list)
    ifaces = [
        _check_iface(f"traffic.networkInterfaceExclusionList[{i}]", v)
        for i, v in enumerate(t.network_interface_exclusion_list)
    ]
    return IptablesConfig(
        outbound_ip_range_exclusions=_dedup(ip_excl, mesh_excl),
        outbound_ip_range_inclusions=_dedup(ip_incl, mesh_incl),
        outbound_port_exclusions=_dedup(t.outbound_port_exclusion_list, out_ports),
        inbound_port_exclusions=_dedup(t.inbound_port_exclusion_list, in_ports),
        network_interface_exclusions=_dedup(ifaces),
        pod_ip_mode=mesh.sidecar.local_proxy_mode == "PodIP",
        pod_ip=pod_ip,
    )
