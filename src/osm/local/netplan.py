"""The local network plan (pure): addresses, names, hosts files and the node's service NAT rules.

One "node" network namespace holds a bridge; each pod is a namespace with a veth on that bridge and
an address from the pod CIDR. Services get ClusterIPs from the service CIDR; the node namespace does
what kube-proxy does (DNAT from ClusterIP:port to a ready endpoint, masquerading so replies return).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

POD_CIDR = ipaddress.ip_network("10.250.0.0/16")
SERVICE_CIDR = ipaddress.ip_network("10.251.0.0/16")
NODE_IP = str(POD_CIDR.network_address + 1)
BRIDGE = "osm0"
CLUSTER_DOMAIN = "cluster.local"


def state_id(state_dir: str) -> str:
    """A short id for one state directory: namespaces of one local mesh share it as a prefix."""
    return hashlib.sha256(state_dir.encode()).hexdigest()[:6]


def node_netns(sid: str) -> str:
    return f"osm-{sid}-node"


def pod_netns(sid: str, index: int) -> str:
    return f"osm-{sid}-p{index}"


def netns_prefix(sid: str) -> str:
    return f"osm-{sid}-"


class Pool:
    """Pod IPs and indexes: the lowest free one first."""

    def __init__(self) -> None:
        self._used: set[int] = set()

    def take(self) -> tuple[int, str]:
        i = 2
        while i in self._used:
            i += 1
        if i >= POD_CIDR.num_addresses - 1:
            raise RuntimeError("pod CIDR exhausted")
        self._used.add(i)
        return i, str(POD_CIDR.network_address + i)

    def release(self, index: int) -> None:
        self._used.discard(index)


def cluster_ip(namespace: str, name: str, taken: Iterable[str]) -> str:
    """A stable ClusterIP for a Service (hash of its name, probing past collisions)."""
    used = set(taken)
    size = SERVICE_CIDR.num_addresses - 2
    start = int.from_bytes(hashlib.sha256(f"{namespace}/{name}".encode()).digest()[:4], "big") % size
    for step in range(size):
        ip = str(SERVICE_CIDR.network_address + 1 + (start + step) % size)
        if ip not in used:
            return ip
    raise RuntimeError("service CIDR exhausted")


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    namespace: str
    name: str
    cluster_ip: str


def hosts_file(
    pod_namespace: str,
    hostname: str,
    pod_ip: str,
    services: Iterable[ServiceEntry],
    aliases: Iterable[tuple[str, tuple[str, ...]]] = (),
) -> str:
    """/etc/hosts for one pod: short names resolve in the pod's own namespace, qualified names everywhere;
    the pod's hostAliases first, as the kubelet writes them."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{pod_ip}\t{hostname}"]
    lines += [f"{ip}\t{' '.join(names)}" for ip, names in aliases if names]
    for s in sorted(services, key=lambda s: (s.namespace, s.name)):
        names = [
            f"{s.name}.{s.namespace}",
            f"{s.name}.{s.namespace}.svc",
            f"{s.name}.{s.namespace}.svc.{CLUSTER_DOMAIN}",
        ]
        if s.namespace == pod_namespace:
            names.insert(0, s.name)
        lines.append(f"{s.cluster_ip}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class ServicePortNAT:
    cluster_ip: str
    port: int
    endpoints: tuple[tuple[str, int], ...]  # ready (pod IP, target port)


def service_nat_rules(ports: Iterable[ServicePortNAT]) -> str:
    """iptables-restore input for the node namespace's nat and filter tables (replaces them whole).

    A port with ready endpoints is DNATed to one of them at random (equal shares); a port without
    any is refused at once with a TCP reset, as kube-proxy does.
    """
    nat = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":OSM_LOCAL_SERVICES - [0:0]",
        "-A PREROUTING -j OSM_LOCAL_SERVICES",
        "-A OUTPUT -j OSM_LOCAL_SERVICES",
        # Replies must come back through the node to be un-NATed: masquerade what was DNATed.
        "-A POSTROUTING -m conntrack --ctstate DNAT -j MASQUERADE",
    ]
    filt = [
        "*filter",
        ":INPUT ACCEPT [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":OSM_LOCAL_REJECT - [0:0]",
        "-A FORWARD -j OSM_LOCAL_REJECT",
        "-A OUTPUT -j OSM_LOCAL_REJECT",
    ]
    for p in sorted(ports, key=lambda p: (p.cluster_ip, p.port)):
        match = f"-d {p.cluster_ip}/32 -p tcp -m tcp --dport {p.port}"
        if not p.endpoints:
            filt.append(f"-A OSM_LOCAL_REJECT {match} -j REJECT --reject-with tcp-reset")
            continue
        n = len(p.endpoints)
        for i, (ip, port) in enumerate(p.endpoints):
            left = n - i
            balance = f" -m statistic --mode random --probability {1 / left:.5f}" if left > 1 else ""
            nat.append(f"-A OSM_LOCAL_SERVICES {match}{balance} -j DNAT --to-destination {ip}:{port}")
    return "\n".join([*nat, "COMMIT", *filt, "COMMIT"]) + "\n"


def pod_env(
    pod_name: str, namespace: str, pod_ip: str, service_account: str, pod_dir: str, extra: Mapping[str, str]
) -> dict[str, str]:
    """The environment of a container: the downward-API values a pod would see, then its own env."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/tmp",
        "POD_NAME": pod_name,
        "POD_NAMESPACE": namespace,
        "POD_IP": pod_ip,
        "SERVICE_ACCOUNT": service_account,
        "OSM_LOCAL_POD_DIR": pod_dir,
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env
