"""The simulated proxies read names from resource bytes; they must agree with a full protobuf parse.

Checked on every proxy of every golden scenario and of small standard meshes (SMI and permissive), for
state-of-the-world and delta envelopes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.simproxy import fast_refs, parse_envelope, parsed_refs
from tests.golden.scenarios import proxy_resources, scenario_and_standard_meshes

from osm.envoy.types import ORDER, ProxyResources
from osm.state.snapshot import MeshState


def envelopes(res: ProxyResources, type_url: str) -> tuple[bytes, bytes]:
    anys = [any_pb2.Any.FromString(r.any_bytes) for r in res.get(type_url).values()]
    sotw = discovery_pb2.DiscoveryResponse(type_url=type_url, version_info="v1", nonce="n1", resources=anys)
    delta = discovery_pb2.DeltaDiscoveryResponse(
        type_url=type_url,
        nonce="n2",
        resources=[
            discovery_pb2.Resource(name=r.name, version=r.version, resource=a)
            for r, a in zip(res.get(type_url).values(), anys, strict=True)
        ],
        removed_resources=["gone"],
    )
    return sotw.SerializeToString(), delta.SerializeToString()


@pytest.mark.parametrize(
    ("name", "state"), scenario_and_standard_meshes(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_fast_refs_agree_with_a_full_parse(name: str, state: MeshState) -> None:
    checked = 0
    for res in proxy_resources(state).values():
        for type_url in ORDER:
            sotw, delta = envelopes(res, type_url)
            e = parse_envelope(sotw, delta=False)
            assert (e.type_url, e.version, e.nonce) == (type_url, "v1", "n1")
            fast = fast_refs(e)
            assert fast == parsed_refs(e)
            assert set(fast.names) == set(res.get(type_url))
            d = parse_envelope(delta, delta=True)
            assert d.removed == ["gone"] and d.nonce == "n2"
            assert fast_refs(d) == parsed_refs(d) == fast
            checked += len(fast.names)
    assert checked > 0


def test_route_names_are_read_from_their_field_not_from_look_alikes() -> None:
    from envoy.config.core.v3 import config_source_pb2
    from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
    from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm

    def listener(name: str, route: str, stat_prefix: str) -> any_pb2.Any:
        manager = hcm.HttpConnectionManager(
            stat_prefix=stat_prefix,
            rds=hcm.Rds(config_source=config_source_pb2.ConfigSource(ads={}), route_config_name=route),
            add_user_agent={"value": True},  # field 6: its tag is the byte "2", right after the route name
        )
        packed = any_pb2.Any()
        packed.Pack(manager)
        filt = listener_components_pb2.Filter(name="hcm", typed_config=packed)
        out = any_pb2.Any()
        out.Pack(
            listener_pb2.Listener(
                name=name, filter_chains=[listener_components_pb2.FilterChain(filters=[filt])]
            )
        )
        return out

    anys = [
        listener("a", "rds-inbound.8", "mesh-http-conn-manager.rds-outbound.80"),
        listener("b", "rds-x.1", "x"),
    ]
    raw = discovery_pb2.DiscoveryResponse(type_url=anys[0].type_url, resources=anys)
    e = parse_envelope(raw.SerializeToString(), delta=False)
    assert fast_refs(e).rds == parsed_refs(e).rds == frozenset({"rds-inbound.8", "rds-x.1"})
