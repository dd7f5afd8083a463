"""fakekube's API semantics the mesh's informers and tests rely on, over HTTP."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from osm.testing.fakekube import FakeKube

pytestmark = pytest.mark.asyncio


async def call(
    fk: FakeKube, method: str, path: str, body: object = None, ctype: str = "application/json"
) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method,
            fk.url + path,
            data=None if body is None else json.dumps(body),
            headers={"Content-Type": ctype},
        ) as r,
    ):
        return r.status, await r.json()


def cm(name: str, **labels: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"a": "1"},
    }


async def watch(fk: FakeKube, query: str, n: int, within: float = 5.0) -> list[dict]:
    """The first `n` events of a watch (or fewer, if it ends)."""
    out: list[dict] = []
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{fk.url}/api/v1/namespaces/default/configmaps?watch=true&{query}") as r,
    ):

        async def read() -> None:
            async for line in r.content:
                out.append(json.loads(line))
                if len(out) >= n:
                    return

        await asyncio.wait_for(read(), within)
    return out


async def test_resource_versions_grow_and_a_stale_update_is_a_conflict(fk: FakeKube) -> None:
    code, created = await call(fk, "POST", "/api/v1/namespaces/default/configmaps", cm("c"))
    assert code == 201 and created["metadata"]["uid"] and created["metadata"]["creationTimestamp"]
    rv1 = int(created["metadata"]["resourceVersion"])
    created["data"] = {"a": "2"}
    code, updated = await call(fk, "PUT", "/api/v1/namespaces/default/configmaps/c", created)
    assert code == 200 and int(updated["metadata"]["resourceVersion"]) > rv1
    code, status = await call(
        fk, "PUT", "/api/v1/namespaces/default/configmaps/c", created
    )  # its old version
    assert (code, status["reason"]) == (409, "Conflict")
    code, status = await call(fk, "POST", "/api/v1/namespaces/default/configmaps", cm("c"))
    assert (code, status["reason"]) == (409, "AlreadyExists")


async def test_services_get_cluster_ips_and_lists_filter_by_label_and_field(fk: FakeKube) -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]},
    }
    _, made = await call(fk, "POST", "/api/v1/namespaces/default/services", svc)
    assert made["spec"]["clusterIP"].startswith("10.96.")
    for name, app in (("a", "x"), ("b", "y"), ("c", "x")):
        await call(fk, "POST", "/api/v1/namespaces/default/configmaps", cm(name, app=app))
    _, listed = await call(fk, "GET", "/api/v1/namespaces/default/configmaps?labelSelector=app%3Dx")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a", "c"]
    _, listed = await call(fk, "GET", "/api/v1/configmaps?fieldSelector=metadata.name%3Db")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["b"]
    _, listed = await call(
        fk, "GET", "/api/v1/namespaces/default/configmaps?labelSelector=app+in+(x,y),app!%3Dy"
    )
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a", "c"]


async def test_a_watch_from_a_list_sees_later_changes_and_bookmarks(fk: FakeKube) -> None:
    _, listed = await call(fk, "GET", "/api/v1/namespaces/default/configmaps")
    rv = listed["metadata"]["resourceVersion"]

    async def later() -> None:
        await asyncio.sleep(0.1)
        await call(fk, "POST", "/api/v1/namespaces/default/configmaps", cm("new"))
        await call(fk, "DELETE", "/api/v1/namespaces/default/configmaps/new")

    task = asyncio.create_task(later())
    events = await watch(fk, f"resourceVersion={rv}&allowWatchBookmarks=true", 3)
    await task
    kinds = [e["type"] for e in events if e["type"] != "BOOKMARK"]
    assert kinds[:2] == ["ADDED", "DELETED"]
    bookmarks = await watch(fk, f"resourceVersion={rv}&allowWatchBookmarks=true", 3)
    assert any(
        e["type"] == "BOOKMARK" and int(e["object"]["metadata"]["resourceVersion"]) >= int(rv)
        for e in bookmarks
    )


async def test_a_watch_from_a_compacted_version_gets_410_gone(fk: FakeKube) -> None:
    _, listed = await call(fk, "GET", "/api/v1/namespaces/default/configmaps")
    await call(fk, "POST", "/api/v1/namespaces/default/configmaps", cm("x"))
    fk.compact()
    (event,) = await watch(fk, f"resourceVersion={listed['metadata']['resourceVersion']}", 1)
    assert event["type"] == "ERROR" and event["object"]["code"] == 410


async def test_a_streaming_list_ends_its_initial_events_with_a_marked_bookmark(fk: FakeKube) -> None:
    await call(fk, "POST", "/api/v1/namespaces/default/configmaps", cm("there"))
    events = await watch(
        fk, "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", 2
    )
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_restart_keeps_the_objects_and_the_port(fk: FakeKube) -> None:
    await call(fk, "POST", "/api/v1/namespaces/default/configmaps", cm("kept"))
    port = fk.port
    await fk.restart()
    assert fk.port == port
    code, got = await call(fk, "GET", "/api/v1/namespaces/default/configmaps/kept")
    assert code == 200 and got["data"] == {"a": "1"}


async def test_oversized_and_malformed_bodies_are_refused_clearly(fk: FakeKube) -> None:
    code, status = await call(fk, "POST", "/api/v1/namespaces/default/configmaps", None, "application/json")
    assert code == 400 and "not valid JSON" in status["message"]
    big = cm("big")
    big["data"] = {"a": "x" * (4 * 1024 * 1024)}
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            fk.url + "/api/v1/namespaces/default/configmaps",
            data=json.dumps(big),
            headers={"Content-Type": "application/json"},
        ) as r,
    ):
        assert r.status == 413
