"""bench/ceiling.py end to end at toy scale: a pinned bare ADS server subprocess, 4 streams, 2 pushes."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from envoy.service.discovery.v3 import discovery_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where bench/ lives

from bench import ceiling

from osm.envoy import wire

STREAMS = 4
REPEATS = 2


def test_response_header_matches_protobuf() -> None:
    payload, _ = ceiling.cluster_payload(3000)
    body, n = ceiling.split_payload(payload)
    assert n >= 2
    msg = wire.field_str(1, "7") + body + wire.field_str(5, "n-7")
    parsed = discovery_pb2.DiscoveryResponse.FromString(msg)
    assert len(parsed.resources) == n
    assert ceiling.response_header(msg) == (b"7", parsed.type_url.encode(), b"n-7")
    # Repeated singular fields: the last one wins, wherever it is.
    twice = msg + wire.field_str(1, "8")
    assert (
        ceiling.response_header(twice)[0]
        == b"8"
        == discovery_pb2.DiscoveryResponse.FromString(twice).version_info.encode()
    )
    with pytest.raises((ValueError, IndexError)):
        ceiling.response_header(msg[:-1])
    ack = discovery_pb2.DiscoveryRequest.FromString(
        ceiling.ack_request(b"7", parsed.type_url.encode(), b"n-7")
    )
    assert (ack.version_info, ack.response_nonce, ack.type_url) == ("7", "n-7", parsed.type_url)


def test_split_payload_drops_version_and_nonce() -> None:
    resources = [wire.any_bytes(ceiling.CLUSTER_TYPE, b"x" * 10)]
    body, n = ceiling.split_payload(wire.discovery_response("v9", ceiling.CLUSTER_TYPE, "old", resources))
    assert n == 1
    assert body == wire.discovery_response("", ceiling.CLUSTER_TYPE, "", resources)


def test_serialization_cost() -> None:
    clusters = ceiling.mesh_clusters(5)
    out = ceiling.serialization_cost(clusters, repeats=2, build=lambda: ceiling.mesh_clusters(5))
    assert out["count"] == 5 and out["build_count"] == 5
    assert out["bytes"] == sum(len(c.SerializeToString(deterministic=True)) for c in clusters)
    assert 0 < out["serialize_s"]["min"] <= out["serialize_s"]["median"] <= out["serialize_s"]["max"]
    assert out["build_s"]["median"] > 0


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "mtls"])
def test_tiny_ceiling(tls: bool) -> None:
    payload, _ = ceiling.cluster_payload(1000)
    affinity = os.sched_getaffinity(0)
    result = asyncio.run(
        asyncio.wait_for(ceiling.transport_ceiling(STREAMS, payload, tls=tls, repeats=REPEATS), timeout=30)
    )
    assert os.sched_getaffinity(0) == affinity  # the load side's pinning is undone

    body, n_resources = ceiling.split_payload(payload)
    pushes = result["pushes"]
    assert len(pushes) == REPEATS
    assert result["all_acked"] is True
    assert result["tls"] is tls and result["connections"] == STREAMS
    assert result["resources"] == n_resources
    for i, p in enumerate(pushes, start=1):
        assert p["acked"] == p["streams"] == STREAMS and not p["timed_out"]
        assert p["elapsed_s"] > 0 and p["server_cpu_s"] >= 0 and p["load_cpu_s"] >= 0
        expected = len(wire.field_str(1, str(i)) + body + wire.field_str(5, f"push-{i}-0"))
        assert p["resp_bytes"] == expected
        assert p["rx_bytes"] == expected * STREAMS  # what the streams received is what was pushed
    assert result["bytes_per_push"] == pushes[-1]["resp_bytes"] * STREAMS
    assert result["responses_per_stream"] == {"min": 1 + REPEATS, "median": 1 + REPEATS, "max": 1 + REPEATS}
    assert result["unexpected_requests"] == 0
    assert 0 < result["push_s"]["min"] <= result["push_s"]["median"] <= result["push_s"]["max"]
    assert result["connect_s"] > 0
    assert all(v > 0 for v in result["rss_mb"].values())


def test_shared_channels_and_protobuf_parse() -> None:
    payload, _ = ceiling.cluster_payload(1000)
    result = asyncio.run(
        asyncio.wait_for(
            ceiling.transport_ceiling(
                6, payload, tls=True, channels=2, repeats=1, client_parse="protobuf", client="grpc"
            ),
            timeout=30,
        )
    )
    assert result["connections"] == 2 and result["all_acked"] is True


def test_a_push_of_several_messages_waits_for_every_ack() -> None:
    # B5's same-messages ceiling: a CDS and an LDS response per stream, each ACKed with its own type
    listener_type = "type.googleapis.com/envoy.config.listener.v3.Listener"
    payloads = [ceiling.cluster_payload(1000)[0], ceiling.cluster_payload(3000, listener_type)[0]]
    result = asyncio.run(
        asyncio.wait_for(ceiling.transport_ceiling(STREAMS, payloads, tls=True, repeats=REPEATS), timeout=30)
    )
    assert result["all_acked"] is True and result["unexpected_requests"] == 0
    assert [m["type_url"] for m in result["messages_per_push"]] == [ceiling.CLUSTER_TYPE, listener_type]
    bodies = [ceiling.split_payload(p)[0] for p in payloads]
    for i, p in enumerate(result["pushes"], start=1):
        expected = sum(
            len(wire.field_str(1, str(i)) + body + wire.field_str(5, f"push-{i}-{j}"))
            for j, body in enumerate(bodies)
        )
        assert p["acked"] == STREAMS and p["resp_bytes"] == expected
        assert p["rx_bytes"] == expected * STREAMS
    per_stream = 1 + 2 * REPEATS  # the initial response, then two per push
    assert result["responses_per_stream"] == {"min": per_stream, "median": per_stream, "max": per_stream}
