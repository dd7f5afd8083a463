from __future__ import annotations

from typing import Any

import pytest

from osm.apis.meshconfig import MeshConfig
from osm.injector.iptables import (
    IptablesConfig,
    init_container_command,
    iptables_config_for_pod,
    iptables_rules,
)
from osm.models.k8s import (
    ANNOTATION_INBOUND_PORT_EXCLUSION,
    ANNOTATION_OUTBOUND_IP_EXCLUSION,
    ANNOTATION_OUTBOUND_IP_INCLUSION,
    ANNOTATION_OUTBOUND_PORT_EXCLUSION,
)

HEADER = [
    "# OSM sidecar interception rules",
    "*nat",
    ":OSM_PROXY_INBOUND - [0:0]",
    ":OSM_PROXY_IN_REDIRECT - [0:0]",
    ":OSM_PROXY_OUTBOUND - [0:0]",
    ":OSM_PROXY_OUT_REDIRECT - [0:0]",
]
INBOUND = [
    "-A OSM_PROXY_IN_REDIRECT -p tcp -j REDIRECT --to-port 15003",
    "-A PREROUTING -p tcp -j OSM_PROXY_INBOUND",
    "-A OSM_PROXY_INBOUND -p tcp --dport 15010 -j RETURN",
    "-A OSM_PROXY_INBOUND -p tcp --dport 15901 -j RETURN",
    "-A OSM_PROXY_INBOUND -p tcp --dport 15902 -j RETURN",
    "-A OSM_PROXY_INBOUND -p tcp --dport 15903 -j RETURN",
    "-A OSM_PROXY_INBOUND -p tcp --dport 15904 -j RETURN",
    "-A OSM_PROXY_INBOUND -p tcp -j OSM_PROXY_IN_REDIRECT",
]
OUTBOUND_FIXED = [
    "-A OSM_PROXY_OUT_REDIRECT -p tcp -j REDIRECT --to-port 15001",
    "-A OSM_PROXY_OUT_REDIRECT -p tcp --dport 15000 -j ACCEPT",
    "-A OUTPUT -p tcp -j OSM_PROXY_OUTBOUND",
    "-A OSM_PROXY_OUTBOUND -o lo ! -d 127.0.0.1/32 -m owner --uid-owner 1500 -j OSM_PROXY_IN_REDIRECT",
    "-A OSM_PROXY_OUTBOUND -o lo -m owner ! --uid-owner 1500 -j RETURN",
    "-A OSM_PROXY_OUTBOUND -m owner --uid-owner 1500 -j RETURN",
    "-A OSM_PROXY_OUTBOUND -d 127.0.0.1/32 -j RETURN",
]
REDIRECT_ALL = "-A OSM_PROXY_OUTBOUND -j OSM_PROXY_OUT_REDIRECT"
DNAT = "-I OUTPUT -p tcp -o lo -d 127.0.0.1/32 -m owner --uid-owner 1500 -j DNAT --to-destination {}"


def lines(cfg: IptablesConfig) -> list[str]:
    text = iptables_rules(cfg)
    assert text.endswith("COMMIT\n")
    out = text.splitlines()
    assert out[: len(HEADER)] == HEADER
    assert out[-1] == "COMMIT"
    return out[len(HEADER) : -1]


def mesh(traffic: dict[str, Any] | None = None, sidecar: dict[str, Any] | None = None) -> MeshConfig:
    return MeshConfig.from_k8s(
        {
            "metadata": {"name": "osm-mesh-config", "namespace": "osm-system"},
            "spec": {"traffic": traffic or {}, "sidecar": sidecar or {}},
        }
    )


def test_default_rule_set_exactly() -> None:
    assert lines(IptablesConfig()) == [*INBOUND, *OUTBOUND_FIXED, REDIRECT_ALL]


def test_default_text_matches_upstream_verbatim() -> None:
    expected = "\n".join([*HEADER, *INBOUND, *OUTBOUND_FIXED, REDIRECT_ALL, "COMMIT"]) + "\n"
    assert iptables_rules(IptablesConfig()) == expected


def test_custom_ports_and_uid() -> None:
    out = lines(IptablesConfig(proxy_uid=1337, outbound_port=16001, inbound_port=16003))
    assert "-A OSM_PROXY_IN_REDIRECT -p tcp -j REDIRECT --to-port 16003" in out
    assert "-A OSM_PROXY_OUT_REDIRECT -p tcp -j REDIRECT --to-port 16001" in out
    assert "-A OSM_PROXY_OUTBOUND -m owner --uid-owner 1337 -j RETURN" in out
    assert not any("--uid-owner 1500 " in line for line in out)


def test_exclusions_inserted_where_upstream_puts_them() -> None:
    cfg = IptablesConfig(
        outbound_ip_range_exclusions=("1.1.1.1/32", "2.2.2.0/24"),
        outbound_port_exclusions=(10, 20),
        inbound_port_exclusions=(30, 40),
        network_interface_exclusions=("eth1", "net@2"),
    )
    assert lines(cfg) == [
        *INBOUND,
        "-I OSM_PROXY_INBOUND -i eth1 -j RETURN",
        "-I OSM_PROXY_INBOUND -i net@2 -j RETURN",
        "-I OSM_PROXY_INBOUND -p tcp --match multiport --dports 30,40 -j RETURN",
        *OUTBOUND_FIXED,
        "-A OSM_PROXY_OUTBOUND -o eth1 -j RETURN",
        "-A OSM_PROXY_OUTBOUND -o net@2 -j RETURN",
        "-A OSM_PROXY_OUTBOUND -d 1.1.1.1/32 -j RETURN",
        "-A OSM_PROXY_OUTBOUND -d 2.2.2.0/24 -j RETURN",
        "-A OSM_PROXY_OUTBOUND -p tcp --match multiport --dports 10,20 -j RETURN",
        REDIRECT_ALL,
    ]


def test_inclusions_change_the_tail() -> None:
    cfg = IptablesConfig(
        outbound_ip_range_exclusions=("1.1.1.1/32",),
        outbound_ip_range_inclusions=("3.3.3.3/32", "10.0.0.0/8"),
    )
    out = lines(cfg)
    assert REDIRECT_ALL not in out
    assert out[-4:] == [
        "-A OSM_PROXY_OUTBOUND -d 1.1.1.1/32 -j RETURN",
        "-A OSM_PROXY_OUTBOUND -d 3.3.3.3/32 -j OSM_PROXY_OUT_REDIRECT",
        "-A OSM_PROXY_OUTBOUND -d 10.0.0.0/8 -j OSM_PROXY_OUT_REDIRECT",
        "-A OSM_PROXY_OUTBOUND -j RETURN",
    ]


def test_cidrs_are_canonicalised() -> None:
    out = lines(IptablesConfig(outbound_ip_range_exclusions=("10.1.2.3/8", "192.168.0.1")))
    assert "-A OSM_PROXY_OUTBOUND -d 10.0.0.0/8 -j RETURN" in out
    assert "-A OSM_PROXY_OUTBOUND -d 192.168.0.1/32 -j RETURN" in out


def test_long_port_lists_are_split_for_multiport() -> None:
    ports = tuple(range(1000, 1020))  # multiport takes at most 15 ports per rule
    out = lines(IptablesConfig(outbound_port_exclusions=ports))
    multi = [line for line in out if "multiport" in line]
    assert multi == [
        "-A OSM_PROXY_OUTBOUND -p tcp --match multiport --dports "
        + ",".join(str(p) for p in range(1000, 1015))
        + " -j RETURN",
        "-A OSM_PROXY_OUTBOUND -p tcp --match multiport --dports "
        + ",".join(str(p) for p in range(1015, 1020))
        + " -j RETURN",
    ]


def test_pod_ip_mode_adds_dnat_after_fixed_rules() -> None:
    out = lines(IptablesConfig(pod_ip_mode=True, pod_ip="10.1.2.3"))
    assert out == [*INBOUND, *OUTBOUND_FIXED, DNAT.format("10.1.2.3"), REDIRECT_ALL]


def test_pod_ip_mode_requires_pod_ip() -> None:
    with pytest.raises(ValueError, match="pod_ip"):
        iptables_rules(IptablesConfig(pod_ip_mode=True))
    with pytest.raises(ValueError, match="pod_ip"):
        iptables_rules(IptablesConfig(pod_ip_mode=True, pod_ip="not-an-ip"))
    with pytest.raises(ValueError, match="pod_ip"):
        iptables_rules(IptablesConfig(pod_ip_mode=True, pod_ip="fd00::1"))
    assert DNAT.format("$POD_IP") in lines(IptablesConfig(pod_ip_mode=True, pod_ip="$POD_IP"))


@pytest.mark.parametrize(
    ("cfg", "field"),
    [
        (
            IptablesConfig(outbound_ip_range_exclusions=("10.0.0.0/8", "bogus")),
            "outbound_ip_range_exclusions[1]",
        ),
        (IptablesConfig(outbound_ip_range_inclusions=("10.0.0.0/33",)), "outbound_ip_range_inclusions[0]"),
        (IptablesConfig(outbound_ip_range_exclusions=("fd00::/8",)), "outbound_ip_range_exclusions[0]"),
        (IptablesConfig(outbound_port_exclusions=(0,)), "outbound_port_exclusions[0]"),
        (IptablesConfig(inbound_port_exclusions=(80, 65536)), "inbound_port_exclusions[1]"),
        (IptablesConfig(inbound_port_exclusions=(True,)), "inbound_port_exclusions[0]"),  # type: ignore[arg-type]
        (IptablesConfig(network_interface_exclusions=("eth0; rm -rf /",)), "network_interface_exclusions[0]"),
        (IptablesConfig(network_interface_exclusions=("a" * 16,)), "network_interface_exclusions[0]"),
        (IptablesConfig(network_interface_exclusions=("$IF",)), "network_interface_exclusions[0]"),
        (IptablesConfig(outbound_port=0), "outbound_port"),
        (IptablesConfig(inbound_port=70000), "inbound_port"),
        (IptablesConfig(proxy_uid=-1), "proxy_uid"),
        (IptablesConfig(outbound_port_exclusions="80"), "outbound_port_exclusions"),  # type: ignore[arg-type]
    ],
)
def test_invalid_values_name_the_field(cfg: IptablesConfig, field: str) -> None:
    with pytest.raises(ValueError) as err:
        iptables_rules(cfg)
    assert str(err.value).startswith(field + ":")


def test_init_container_command_matches_upstream_shape() -> None:
    cmd = init_container_command(IptablesConfig())
    assert cmd[:2] == ["/bin/sh", "-c"]
    assert cmd[2] == "iptables-restore --noflush <<EOF\n" + iptables_rules(IptablesConfig()) + "EOF\n"
    assert cmd[2].endswith("\nCOMMIT\nEOF\n")


def test_init_container_command_pod_ip_mode_uses_env_reference() -> None:
    cmd = init_container_command(IptablesConfig(pod_ip_mode=True))
    assert DNAT.format("$POD_IP") in cmd[2].splitlines()


def test_config_for_pod_defaults() -> None:
    assert iptables_config_for_pod(MeshConfig(), {}) == IptablesConfig()


def test_config_for_pod_merges_mesh_and_annotations() -> None:
    m = mesh(
        traffic={
            "outboundPortExclusionList": [6379, 5432],
            "inboundPortExclusionList": [9090],
            "outboundIPRangeExclusionList": ["10.0.0.0/8", "169.254.169.254/32"],
            "outboundIPRangeInclusionList": ["172.16.0.0/12"],
            "networkInterfaceExclusionList": ["eth1"],
        },
        sidecar={"localProxyMode": "PodIP"},
    )
    annotations = {
        ANNOTATION_OUTBOUND_PORT_EXCLUSION: " 8080 , 6379,9000 ",
        ANNOTATION_INBOUND_PORT_EXCLUSION: "9091,9090",
        ANNOTATION_OUTBOUND_IP_EXCLUSION: "192.168.0.0/16, 10.0.0.0/8",
        ANNOTATION_OUTBOUND_IP_INCLUSION: "1.2.3.4/32,",
        "unrelated": "x",
    }
    cfg = iptables_config_for_pod(m, annotations, pod_ip="10.9.8.7")
    assert cfg == IptablesConfig(
        outbound_port_exclusions=(6379, 5432, 8080, 9000),  # global first, like upstream
        inbound_port_exclusions=(9090, 9091),
        outbound_ip_range_exclusions=("192.168.0.0/16", "10.0.0.0/8", "169.254.169.254/32"),  # pod first
        outbound_ip_range_inclusions=("1.2.3.4/32", "172.16.0.0/12"),
        network_interface_exclusions=("eth1",),
        pod_ip_mode=True,
        pod_ip="10.9.8.7",
    )
    assert DNAT.format("10.9.8.7") in lines(cfg)


def test_config_for_pod_pod_ip_mode_off_by_default() -> None:
    assert not iptables_config_for_pod(mesh(sidecar={"localProxyMode": "Localhost"}), {}).pod_ip_mode


@pytest.mark.parametrize(
    ("annotation", "value", "bad"),
    [
        (ANNOTATION_OUTBOUND_PORT_EXCLUSION, "80,http", "'http'"),
        (ANNOTATION_OUTBOUND_PORT_EXCLUSION, "0", "'0'"),
        (ANNOTATION_INBOUND_PORT_EXCLUSION, "80, 65536", "'65536'"),
        (ANNOTATION_INBOUND_PORT_EXCLUSION, "-1", "'-1'"),
        (ANNOTATION_INBOUND_PORT_EXCLUSION, "8_0", "'8_0'"),
        (ANNOTATION_OUTBOUND_IP_EXCLUSION, "10.0.0.0/8, 300.1.1.1/32", "'300.1.1.1/32'"),
        (ANNOTATION_OUTBOUND_IP_EXCLUSION, "10.0.0.1", "'10.0.0.1'"),  # upstream requires CIDR notation
        (ANNOTATION_OUTBOUND_IP_INCLUSION, "fd00::/8", "'fd00::/8'"),
    ],
)
def test_bad_annotations_name_annotation_and_item(annotation: str, value: str, bad: str) -> None:
    with pytest.raises(ValueError) as err:
        iptables_config_for_pod(MeshConfig(), {annotation: value})
    assert annotation in str(err.value)
    assert bad in str(err.value)


def test_bad_mesh_interface_names_the_meshconfig_field() -> None:
    with pytest.raises(ValueError, match=r"traffic\.networkInterfaceExclusionList\[0\]"):
        iptables_config_for_pod(mesh(traffic={"networkInterfaceExclusionList": ["bad name"]}), {})
