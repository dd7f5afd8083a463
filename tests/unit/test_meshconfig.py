from __future__ import annotations

import pytest

from osm.apis.meshconfig import MeshConfig
from osm.models.errors import ValidationError
from osm.models.trafficpolicy import Tracing


def mesh_config(**spec: dict) -> dict:
    return {"metadata": {"name": "osm-mesh-config", "namespace": "osm-system"}, "spec": spec}


@pytest.mark.parametrize(
    "data", [mesh_config(), {"metadata": {"name": "osm-mesh-config", "namespace": "osm-system"}}]
)
def test_defaults_when_spec_is_empty(data):
    mc = MeshConfig.from_k8s(data)
    assert mc == MeshConfig(meta=mc.meta)  # a MeshConfig left empty is the closed default
    assert mc.permissive is False  # booleans left out are false, as upstream's: closed, no egress
    assert mc.traffic.enable_egress is False
    assert mc.certificate.service_cert_validity_duration == 24 * 3600
    assert mc.certificate.cert_key_bit_size == 2048
    assert mc.sidecar.log_level == "error"
    assert mc.sidecar.config_resync_interval == 0
    assert (mc.sidecar.tls_min_protocol_version, mc.sidecar.tls_max_protocol_version) == (
        "TLSv1_2",
        "TLSv1_3",
    )
    assert mc.sidecar.local_proxy_mode == "Localhost"
    assert mc.traffic.outbound_port_exclusion_list == ()
    assert mc.feature_flags.enable_egress_policy is False
    assert mc.feature_flags.enable_retry_policy is False
    assert mc.observability.osm_log_level == "info"


def test_values_from_the_spec_override_defaults():
    mc = MeshConfig.from_k8s(
        mesh_config(
            sidecar={"logLevel": "debug", "configResyncInterval": "1m", "localProxyMode": "PodIP"},
            traffic={
                "enablePermissiveTrafficPolicyMode": False,
                "enableEgress": False,
                "outboundIPRangeExclusionList": ["10.0.0.1/8", "fd00::/64", "192.168.1.1"],
                "outboundPortExclusionList": [6379, 5432],
                "inboundPortExclusionList": [9090],
                "networkInterfaceExclusionList": ["eth1"],
            },
            certificate={"serviceCertValidityDuration": "1h30m", "certKeyBitSize": 4096},
            featureFlags={"enableRetryPolicy": True},
        )
    )
    assert mc.permissive is False
    assert mc.traffic.enable_egress is False
    assert mc.sidecar.log_level == "debug"
    assert mc.sidecar.config_resync_interval == 60
    assert mc.sidecar.local_proxy_mode == "PodIP"
    assert mc.traffic.outbound_ip_range_exclusion_list == ("10.0.0.0/8", "fd00::/64", "192.168.1.1/32")
    assert mc.traffic.outbound_port_exclusion_list == (6379, 5432)
    assert mc.traffic.inbound_port_exclusion_list == (9090,)
    assert mc.traffic.network_interface_exclusion_list == ("eth1",)
    assert mc.certificate.service_cert_validity_duration == 5400
    assert mc.certificate.cert_key_bit_size == 4096
    assert mc.feature_flags.enable_retry_policy is True


@pytest.mark.parametrize(("resync", "seconds"), [("0s", 0), ("30s", 30), ("2m", 120)])
def test_resync_interval_off_or_at_least_30s(resync, seconds):
    mc = MeshConfig.from_k8s(mesh_config(sidecar={"configResyncInterval": resync}))
    assert mc.sidecar.config_resync_interval == seconds


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"sidecar": {"logLevel": "loud"}}, "spec.sidecar.logLevel", "must be one of trace, debug"),
        (
            {"sidecar": {"tlsMinProtocolVersion": "SSLv3"}},
            "spec.sidecar.tlsMinProtocolVersion",
            "got 'SSLv3'",
        ),
        ({"sidecar": {"localProxyMode": "Host"}}, "spec.sidecar.localProxyMode", "Localhost, PodIP"),
        ({"sidecar": {"configResyncInterval": "10s"}}, "spec.sidecar.configResyncInterval", "at least 30s"),
        (
            {"sidecar": {"configResyncInterval": "5x"}},
            "spec.sidecar.configResyncInterval",
            "invalid unit 'x'",
        ),
        ({"sidecar": {"configResyncInterval": 30}}, "spec.sidecar.configResyncInterval", "must be a string"),
        (
            {"sidecar": {"maxDataPlaneConnections": -1}},
            "spec.sidecar.maxDataPlaneConnections",
            "must be >= 0",
        ),
        (
            {"certificate": {"serviceCertValidityDuration": "soon"}},
            "spec.certificate.serviceCertValidityDuration",
            "invalid duration 'soon'",
        ),
        (
            {"certificate": {"serviceCertValidityDuration": "500ms"}},
            "spec.certificate.serviceCertValidityDuration",
            "at least 1s",
        ),
        ({"certificate": {"certKeyBitSize": 512}}, "spec.certificate.certKeyBitSize", "must be >= 1024"),
        ({"traffic": {"enableEgress": "yes"}}, "spec.traffic.enableEgress", "must be a boolean"),
        (
            {"traffic": {"outboundIPRangeExclusionList": ["10.0.0.0/8", "10.0.0.0/33"]}},
            "spec.traffic.outboundIPRangeExclusionList[1]",
            "'10.0.0.0/33' is not a CIDR range",
        ),
        (
            {"traffic": {"outboundIPRangeInclusionList": ["lan"]}},
            "spec.traffic.outboundIPRangeInclusionList[0]",
            "not a CIDR range",
        ),
        (
            {"traffic": {"outboundPortExclusionList": [0]}},
            "spec.traffic.outboundPortExclusionList[0]",
            "between 1 and 65535, got 0",
        ),
        (
            {"traffic": {"inboundPortExclusionList": [80, "81"]}},
            "spec.traffic.inboundPortExclusionList[1]",
            "got '81'",
        ),
        ({"traffic": "permissive"}, "spec.traffic", "must be an object"),
        (
            {"sidecar": {"tlsMaxProtocolVersion": "TLSv1_1"}},
            "spec.sidecar.tlsMaxProtocolVersion",
            "would cut every sidecar off the control plane, which needs TLSv1_2 or later",
        ),
        (
            {"sidecar": {"tlsMinProtocolVersion": "TLSv1_3", "tlsMaxProtocolVersion": "TLSv1_2"}},
            "spec.sidecar.tlsMinProtocolVersion",
            "TLSv1_3 is above tlsMaxProtocolVersion TLSv1_2",
        ),
        (
            {"observability": {"osmLogLevel": "loud"}},
            "spec.observability.osmLogLevel",
            "must be one of trace, debug, info, warn, error, fatal, panic, disabled",
        ),
        (
            {"certificate": {"ingressGateway": {"secret": {"name": "s", "namespace": "n"}}}},
            "spec.certificate.ingressGateway.subjectAltNames",
            "is required",
        ),
        (
            {
                "certificate": {
                    "ingressGateway": {
                        "subjectAltNames": ["Not A Name"],
                        "secret": {"name": "s", "namespace": "n"},
                    }
                }
            },
            "spec.certificate.ingressGateway.subjectAltNames[0]",
            "is not a DNS name",
        ),
        (
            {"certificate": {"ingressGateway": {"subjectAltNames": ["gw.example.com"]}}},
            "spec.certificate.ingressGateway.secret",
            "is required",
        ),
        (
            {
                "certificate": {
                    "ingressGateway": {
                        "subjectAltNames": ["gw.example.com"],
                        "validityDuration": "0s",
                        "secret": {"name": "s", "namespace": "n"},
                    }
                }
            },
            "spec.certificate.ingressGateway.validityDuration",
            "must be positive",
        ),
        (
            {
                "certificate": {
                    "ingressGateway": {
                        "subjectAltNames": ["gw.example.com"],
                        "secret": {"name": "s", "namespace": "N_S"},
                    }
                }
            },
            "spec.certificate.ingressGateway.secret.namespace",
            "RFC 1123 label",
        ),
        (
            {"observability": {"tracing": {"enable": True, "address": "not a host!"}}},
            "spec.observability.tracing.address",
            "neither a DNS name nor an IP address",
        ),
        (
            {"observability": {"tracing": {"enable": True, "endpoint": "api/v2/spans"}}},
            "spec.observability.tracing.endpoint",
            "is not a URL path",
        ),
        (
            {"observability": {"tracing": {"enable": True, "port": 0}}},
            "spec.observability.tracing.port",
            "must be >= 1",
        ),
        (
            {"observability": {"tracing": {"enable": True, "sampling": 100.5}}},
            "spec.observability.tracing.sampling",
            "between 0 and 100",
        ),
        (
            {"observability": {"tracing": {"enable": True, "sampling": "all"}}},
            "spec.observability.tracing.sampling",
            "between 0 and 100",
        ),
    ],
)
def test_rejections(spec, field, reason):
    with pytest.raises(ValidationError) as ei:
        MeshConfig.from_k8s(mesh_config(**spec))
    e = ei.value
    assert (e.kind, e.namespace, e.name, e.field) == ("MeshConfig", "osm-system", "osm-mesh-config", field)
    assert reason in e.reason
    assert f"MeshConfig osm-system/osm-mesh-config: field {field}" in str(e)


def test_a_misspelt_traffic_mode_is_rejected_naming_the_field_and_the_closest_known_one():
    with pytest.raises(ValidationError) as e:
        MeshConfig.from_k8s(mesh_config(traffic={"enablePermisiveTrafficPolicyMode": True}))
    assert e.value.field == "spec.traffic.enablePermisiveTrafficPolicyMode"
    assert "unknown field; did you mean 'enablePermissiveTrafficPolicyMode'?" in e.value.reason


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"trafic": {}}, "spec.trafic"),
        ({"sidecar": {"logLevl": "debug"}}, "spec.sidecar.logLevl"),
        ({"observability": {"tracing": {"adress": "x"}}}, "spec.observability.tracing.adress"),
        (
            {"certificate": {"ingressGateway": {"secret": {"nmae": "x"}}}},
            "spec.certificate.ingressGateway.secret.nmae",
        ),
    ],
)
def test_unknown_fields_anywhere_in_the_spec_are_rejected(spec, field):
    with pytest.raises(ValidationError) as e:
        MeshConfig.from_k8s(mesh_config(**spec))
    assert e.value.field == field


def test_upstream_fields_the_mesh_does_not_act_on_are_accepted():
    mc = MeshConfig.from_k8s(
        mesh_config(
            sidecar={"resources": {"limits": {"cpu": "1"}, "anything": {"free": "form"}}, "cipherSuites": []},
            traffic={"inboundExternalAuthorization": {"enable": False, "timeout": "1s"}},
            featureFlags={"enableSnapshotCacheMode": False, "enableAsyncProxyServiceMapping": False},
        )
    )
    assert mc.permissive is False


def test_the_ingress_gateway_certificate_names_its_secret():
    mc = MeshConfig.from_k8s(
        mesh_config(
            certificate={
                "ingressGateway": {
                    "subjectAltNames": ["nginx.web.cluster.local", "gw.example.com"],
                    "validityDuration": "12h",
                    "secret": {"name": "ingress-gateway-cert", "namespace": "web"},
                }
            }
        )
    )
    g = mc.certificate.ingress_gateway
    assert g is not None
    assert g.subject_alt_names == ("nginx.web.cluster.local", "gw.example.com")
    assert (g.validity_duration, g.secret_namespace, g.secret_name) == (
        12 * 3600.0,
        "web",
        "ingress-gateway-cert",
    )
    assert MeshConfig.from_k8s(mesh_config()).certificate.ingress_gateway is None


def test_tracing_is_off_unless_enabled_and_takes_upstreams_defaults():
    assert MeshConfig.from_k8s(mesh_config()).observability.tracing is None
    off = mesh_config(observability={"tracing": {"enable": False, "address": "zipkin.example"}})
    assert MeshConfig.from_k8s(off).observability.tracing is None
    on = MeshConfig.from_k8s(mesh_config(observability={"tracing": {"enable": True, "address": ""}}))
    assert on.observability.tracing == Tracing(
        "jaeger.osm-system.svc.cluster.local", 9411, "/api/v2/spans", 100.0
    )
    custom = MeshConfig.from_k8s(
        mesh_config(
            observability={
                "tracing": {
                    "enable": True,
                    "address": "10.0.0.7",
                    "port": 9412,
                    "endpoint": "/zipkin/spans",
                    "sampling": 12.5,
                }
            }
        )
    )
    assert custom.observability.tracing == Tracing("10.0.0.7", 9412, "/zipkin/spans", 12.5)
