"""The ADS server's osm_proxy_* metrics move where the events happen: a proxy connects, asks, is
answered, is pushed a policy edit, reconnects, goes away. (Refused at the limit,
osm_proxy_max_connections_rejected: test_ads_hostile.)"""

from __future__ import annotations

import pytest
from envoy.service.discovery.v3 import discovery_pb2

from osm.envoy.types import TYPE_CLUSTER, TYPE_LISTENER
from osm.state.decode import ObjectKey
from osm.testing.xds import ack, client, eventually, proxy_cn, running_mesh, subscribe

pytestmark = pytest.mark.asyncio

BUYER = ("bookbuyer", "bookbuyer")


async def test_connect_requests_responses_and_disconnect() -> None:
    async with running_mesh() as mesh:
        m = mesh.server.metrics
        assert m.proxy_connect_count.value() == 0
        cn = proxy_cn(*BUYER)
        uuid = cn.split(".")[0]
        async with client(mesh, cn) as c:
            await subscribe(c, TYPE_CLUSTER)  # a request, a response, its ACK
            await subscribe(c, TYPE_LISTENER)
            await eventually(lambda: m.proxy_xds_request_count.value(uuid, "bookbuyer.bookbuyer", "CDS") == 2)
            assert m.proxy_connect_count.value() == 1
            assert m.proxy_xds_request_count.value(uuid, "bookbuyer.bookbuyer", "LDS") >= 1
            assert m.proxy_response_send_success_count.value(uuid, "bookbuyer.bookbuyer", "CDS") == 1
            assert m.proxy_config_update_time.count("all", "true") >= 1
            text = m.exposition()
            assert f'osm_proxy_response_send_success_count{{proxy_uuid="{uuid}"' in text
        await eventually(lambda: m.proxy_connect_count.value() == 0)
        assert f'proxy_uuid="{uuid}"' not in m.exposition()  # its series went with it
        assert m.proxy_reconnect_count.value() == 0
        async with client(mesh, cn) as again:
            await subscribe(again, TYPE_CLUSTER)
            assert m.proxy_reconnect_count.value() == 1  # the same proxy, back


async def test_a_policy_edit_is_a_broadcast_and_a_config_update_observed() -> None:
    async with running_mesh() as mesh:
        m = mesh.server.metrics
        async with client(mesh, proxy_cn(*BUYER)) as c:
            await subscribe(c, TYPE_CLUSTER)
            broadcasts = m.proxy_broadcast_event_count.value()
            updates = m.proxy_config_update_time.count("all", "true")
            assert mesh.store.delete(ObjectKey("TrafficTarget", "bookstore", "bookbuyer-access-bookstore-v1"))
            assert mesh.store.delete(ObjectKey("TrafficTarget", "bookstore", "bookbuyer-access-bookstore-v2"))
            await mesh.push()
            pushed = await c.next()
            assert pushed is not None, c.error
            await c.send(ack(pushed))
            assert m.proxy_broadcast_event_count.value() == broadcasts + 1
            assert m.proxy_config_update_time.count("all", "true") > updates


async def test_a_config_that_cannot_be_built_is_observed_as_a_failure() -> None:
    async with running_mesh() as mesh:
        m = mesh.server.metrics

        def broken(group, previous=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("generation is broken")

        mesh.server.cache.resources = broken  # type: ignore[method-assign]
        async with client(mesh, proxy_cn(*BUYER)) as c:
            await c.send(discovery_pb2.DiscoveryRequest(type_url=TYPE_CLUSTER))
            await eventually(lambda: m.proxy_config_update_time.count("all", "false") >= 1)
