from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from osm.local.source import DocumentError, ManifestSource, SourceLimits
from osm.local.uuids import ProxyUuids
from osm.models.k8s import Pod, Service
from osm.state.decode import ObjectKey
from osm.state.store import Event, EventType, Store
from osm.testing.wait import eventually

WEB = ObjectKey("Service", "shop", "web")
API = ObjectKey("Service", "shop", "api")


def svc(name: str = "web", port: int = 80, ns: str | None = "shop") -> str:
    ns_line = f"\n  namespace: {ns}" if ns else ""
    return (
        f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}{ns_line}\n"
        f"spec:\n  ports:\n  - port: {port}\n"
    )


def pod(name: str, uuid_label: str | None = None) -> str:
    labels = f"\n  labels:\n    osm-proxy-uuid: {uuid_label}" if uuid_label else ""
    return (
        f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: shop{labels}\n"
        "spec:\n  containers:\n  - name: app\n"
    )


def docs(*parts: str) -> str:
    return "---\n".join(parts)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def port_of(store: Store, key: ObjectKey) -> int | None:
    obj = store.get(key)
    return obj.ports[0].port if isinstance(obj, Service) else None


class Source:
    """A ManifestSource on tmp_path with its store and the errors it reported."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = Store()
        self.reported: list[DocumentError] = []
        self.source = ManifestSource(root, self.store, on_error=self.reported.append)

    def load(self) -> set[ObjectKey]:
        self.reported.clear()
        self.source.load()
        return set(self.store.keys())


@pytest.fixture
def src(tmp_path: Path) -> Source:
    return Source(tmp_path)


# --- loading ---------------------------------------------------------------------------------------


def test_load_reads_the_tree_recursively_with_multi_document_and_list_files(src):
    write(
        src.root / "a.yaml",
        docs(svc("web"), "", "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n"),
    )
    write(
        src.root / "sub" / "deep" / "b.yml",
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: Service, metadata: {name: api, namespace: shop},\n"
        "   spec: {ports: [{port: 81}]}}\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: cm}}\n",
    )
    write(src.root / "c.json", '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}')
    write(src.root / ".hidden.yaml", svc("hidden"))
    write(src.root / ".git" / "x.yaml", svc("git"))
    write(src.root / "..data" / "x.yaml", svc("configmap-mount"))
    write(src.root / "notes.txt", svc("txt"))
    write(src.root / "README.md", "# not yaml: [")

    assert src.load() == {
        WEB,
        API,
        ObjectKey("ServiceAccount", "default", "sa"),
        ObjectKey("Namespace", "", "shop"),
    }
    assert src.reported == []


def test_rejected_documents_are_reported_with_file_index_kind_name_field_and_reason(src):
    bad = write(src.root / "sub" / "bad.yaml", docs(svc("api"), svc("web", port=0)))
    assert src.load() == {API}
    (err,) = src.reported
    assert (err.file, err.index, err.kind, err.name, err.field) == (
        "sub/bad.yaml",
        1,
        "Service",
        "shop/web",
        "spec.ports[0].port",
    )
    assert "must be >= 1" in err.reason
    assert str(err).startswith("sub/bad.yaml (document 1): Service shop/web: field spec.ports[0].port: ")
    assert src.source.errors[bad] == [err]


def test_an_invalid_edit_keeps_the_last_accepted_version_and_applies_the_rest_of_the_file(src):
    path = write(src.root / "m.yaml", docs(svc("web", 80), svc("api", 80)))
    src.load()
    write(path, docs(svc("web", 0), svc("api", 81)))
    assert src.load() == {WEB, API}
    assert [e.name for e in src.reported] == ["shop/web"]
    assert (port_of(src.store, WEB), port_of(src.store, API)) == (80, 81)

    write(path, docs(svc("web", 82), svc("api", 81)))
    src.load()
    assert src.reported == []
    assert port_of(src.store, WEB) == 82


def test_unparseable_yaml_keeps_every_object_of_the_file(src):
    path = write(src.root / "m.yaml", docs(svc("web"), svc("api")))
    src.load()
    write(path, "kind: Service\nmetadata: [unclosed\n")
    assert src.load() == {WEB, API}
    (err,) = src.reported
    assert (err.file, err.index) == ("m.yaml", 0)
    assert "invalid YAML" in err.reason


def test_a_document_removed_from_a_file_deletes_its_object(src):
    path = write(src.root / "m.yaml", docs(svc("web"), svc("api")))
    src.load()
    write(path, svc("api"))
    assert src.load() == {API}


def test_deleting_a_file_deletes_its_objects_but_not_those_defined_elsewhere(src):
    events: list[Event] = []
    src.store.subscribe(events.append)
    a = write(src.root / "a.yaml", docs(svc("web"), svc("api")))
    b = write(src.root / "b.yaml", svc("web"))
    src.load()
    events.clear()

    a.unlink()
    assert src.load() == {WEB}
    assert [(e.type, e.key) for e in events] == [(EventType.DELETED, API)]

    b.unlink()
    assert src.load() == set()


def test_pods_without_a_proxy_uuid_get_a_random_one_per_creation_kept_across_restarts(tmp_path):
    manifests = tmp_path / "m"
    path = write(manifests / "pods.yaml", docs(pod("a"), pod("b"), pod("c", uuid_label="given")))

    def uuids() -> dict[str, str]:
        store = Store()
        ManifestSource(manifests, store, uuids=ProxyUuids.in_dir(tmp_path / "state")).load()
        pods = [store.get(ObjectKey("Pod", "shop", n)) for n in "abc"]
        return {p.meta.name: p.proxy_uuid for p in pods if isinstance(p, Pod)}

    first = uuids()
    assert first["c"] == "given"
    assert first["a"] != first["b"]
    assert uuid.UUID(first["a"]).version == 4
    assert uuids() == first  # a restarted control plane keeps them (its sidecars keep working)
    # b is deleted while the control plane is down, then created again: a new pod, a new proxy
    write(path, docs(pod("a"), pod("c", uuid_label="given")))
    assert uuids()["a"] == first["a"]
    write(path, docs(pod("a"), pod("b"), pod("c", uuid_label="given")))
    assert uuids()["b"] != first["b"]


def test_a_pod_deleted_and_created_again_gets_a_new_proxy_uuid(src):
    path = write(src.root / "pods.yaml", pod("a"))
    src.load()
    key = ObjectKey("Pod", "shop", "a")
    before = src.store.get(key)
    write(path, svc("web"))
    src.load()
    write(path, pod("a"))
    src.load()
    after = src.store.get(key)
    assert isinstance(before, Pod) and isinstance(after, Pod)
    assert before.proxy_uuid and after.proxy_uuid and before.proxy_uuid != after.proxy_uuid


def test_a_list_without_items_does_not_break_loading(src):
    write(src.root / "a.yaml", "apiVersion: v1\nkind: List\nitems:\n")
    write(src.root / "b.yaml", svc("web"))
    assert WEB in src.load()


def test_an_unsupported_api_version_keeps_the_last_accepted_object_without_namespace(src):
    path = write(src.root / "m.yaml", svc("web", ns=None))
    key = ObjectKey("Service", "default", "web")
    assert src.load() == {key}
    write(path, svc("web", ns=None).replace("apiVersion: v1", "apiVersion: v2"))
    assert src.load() == {key}
    assert [(e.kind, e.name, e.field) for e in src.reported] == [("Service", "default/web", "apiVersion")]


def test_removing_a_file_falls_back_to_the_other_definition(src):
    a = write(src.root / "a.yaml", svc("web", 80))
    write(src.root / "b.yaml", svc("web", 81))
    src.load()
    assert port_of(src.store, WEB) == 80
    a.unlink()
    src.source.load_file(a)  # what watch() does for a deleted file
    assert port_of(src.store, WEB) == 81


# --- watching --------------------------------------------------------------------------------------


@asynccontextmanager
async def watching(source: ManifestSource, resync_s: float = 1.0) -> AsyncIterator[asyncio.Task[None]]:
    """The source watching its directory: once this enters, every edit is seen."""
    task = asyncio.create_task(source.watch(debounce_ms=20, resync_s=resync_s))
    try:
        await asyncio.wait_for(source.watching.wait(), 10)
        yield task
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        assert task.done()


@pytest.mark.asyncio
async def test_watch_applies_written_and_deleted_files(src):
    src.load()
    path = src.root / "sub" / "m.yaml"
    async with watching(src.source):
        write(path, svc("web", 80))
        assert await eventually(lambda: port_of(src.store, WEB) == 80)
        write(path, svc("web", 81))
        assert await eventually(lambda: port_of(src.store, WEB) == 81)
        path.unlink()
        assert await eventually(lambda: src.store.get(WEB) is None)


@pytest.mark.asyncio
async def test_watch_ignores_hidden_files_like_load_does(src):
    (src.root / "..data").mkdir()
    src.load()
    hidden = ObjectKey("Service", "shop", "hidden")
    async with watching(src.source):
        write(src.root / "..data" / "x.yaml", svc("hidden"))
        write(src.root / "m.yaml", svc("web"))
        assert await eventually(lambda: src.store.get(WEB) is not None)
    assert src.store.get(hidden) is None


@pytest.mark.asyncio
async def test_watch_with_a_relative_root_deletes_objects_of_a_deleted_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "mesh" / "m.yaml", svc("web", 80))
    src = Source(Path("mesh"))
    src.load()
    async with watching(src.source):
        write(path, svc("web", 81))
        assert await eventually(lambda: port_of(src.store, WEB) == 81)
        path.unlink()
        assert await eventually(lambda: src.store.get(WEB) is None, within=2)


@pytest.mark.asyncio
async def test_edits_made_between_the_load_and_the_watch_are_applied_before_it_reports_watching(src):
    write(src.root / "edited.yaml", svc("web", 80))
    write(src.root / "deleted.yaml", svc("api"))
    src.load()
    # before any watcher exists: no file-system event will ever tell of these
    write(src.root / "edited.yaml", svc("web", 8080))
    (src.root / "deleted.yaml").unlink()
    write(src.root / "new" / "added.yaml", svc("added"))
    assert not src.source.watching.is_set()
    async with watching(src.source):
        assert port_of(src.store, WEB) == 8080
        assert src.store.get(API) is None
        assert src.store.get(ObjectKey("Service", "shop", "added")) is not None


@pytest.mark.asyncio
async def test_resync_reads_only_the_files_whose_stamp_moved(src, monkeypatch):
    write(src.root / "a.yaml", svc("web", 80))
    write(src.root / "b.yaml", svc("api", 80))
    src.load()
    read: list[str] = []
    parse = src.source._parse
    monkeypatch.setattr(src.source, "_parse", lambda p: (read.append(p.name), parse(p))[1])
    await src.source.resync()
    assert read == []  # nothing changed: nothing is read
    write(src.root / "b.yaml", svc("api", 8081))
    await src.source.resync()
    assert read == ["b.yaml"]
    assert port_of(src.store, API) == 8081 and port_of(src.store, WEB) == 80
    # a file that appeared is read, alone; one that went away is dropped, the others are not read
    read.clear()
    write(src.root / "sub" / "c.yaml", svc("added"))
    (src.root / "a.yaml").unlink()
    await src.source.resync()
    assert sorted(read) == ["a.yaml", "c.yaml"]  # a.yaml: found gone
    assert src.store.get(ObjectKey("Service", "shop", "added")) is not None
    assert src.store.get(WEB) is None and port_of(src.store, API) == 8081


@pytest.mark.asyncio
async def test_a_change_no_event_reported_is_applied_by_the_periodic_resync(src, monkeypatch):
    """A change the watcher's events miss (an overflowed kernel queue, say) is applied within a resync
    period: here the events are filtered out entirely."""
    import watchfiles

    original = watchfiles.awatch
    monkeypatch.setattr(
        watchfiles, "awatch", lambda *a, **kw: original(*a, **kw, watch_filter=lambda c, p: False)
    )
    src.load()
    async with watching(src.source, resync_s=0.1):
        write(src.root / "m.yaml", svc("web", 80))
        assert await eventually(lambda: port_of(src.store, WEB) == 80, within=3)
        write(src.root / "m.yaml", svc("web", 8081))
        assert await eventually(lambda: port_of(src.store, WEB) == 8081, within=3)


@pytest.mark.asyncio
async def test_a_tree_slow_to_compare_is_compared_less_often(src, monkeypatch):
    """Comparing stamps takes at most about 2% of the time: after a comparison that took 20 ms, the next
    one waits 50 times as long, however short the resync period asked for."""
    loop = asyncio.get_running_loop()
    began: list[float] = []

    async def slow_resync() -> None:
        began.append(loop.time())
        await asyncio.sleep(0.02)

    monkeypatch.setattr(src.source, "resync", slow_resync)
    async with watching(src.source, resync_s=0.001):
        await asyncio.sleep(1.5)
    assert 1 <= len(began) <= 2
    assert all(b - a >= 50 * 0.02 for a, b in itertools.pairwise(began))


# --- broken and hostile input: the last accepted state is kept, every rejection is reported ---------

SPLIT = """apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: web-split, namespace: shop}
spec:
  service: web
  backends: [{service: web-v1, weight: 50}, {service: web-v2, weight: 50}]
"""
SPLIT_KEY = ObjectKey("TrafficSplit", "shop", "web-split")


def test_a_kind_typo_in_an_existing_document_keeps_the_object_and_suggests_the_kind(src):
    path = write(src.root / "split.yaml", SPLIT)
    src.load()
    write(path, SPLIT.replace("kind: TrafficSplit", "kind: TrafficSplitt"))
    assert SPLIT_KEY in src.load()
    (err,) = src.reported
    assert (err.kind, err.name, err.field) == ("TrafficSplitt", "shop/web-split", "kind")
    assert "unknown kind 'TrafficSplitt'" in err.reason and "did you mean 'TrafficSplit'?" in err.reason


def test_a_kind_typo_of_a_core_kind_is_reported_but_other_kinds_of_the_group_are_not(src):
    write(src.root / "a.yaml", svc("web").replace("kind: Service", "kind: Servce"))
    write(src.root / "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\n")
    write(src.root / "x.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    assert src.load() == set()
    assert [(e.file, e.field) for e in src.reported] == [("a.yaml", "kind")]
    assert "did you mean 'Service'?" in src.reported[0].reason


@pytest.mark.parametrize(
    "broken",
    [
        "metadata:\n  name: 12\n  namespace: shop\n",
        "metadata:\n  name: web\n  namespace: 12\n",
        "metadata: [web]\n",
    ],
    ids=["name-12", "namespace-12", "metadata-list"],
)
def test_invalid_metadata_in_an_existing_document_keeps_the_object(src, broken):
    path = write(src.root / "m.yaml", docs(svc("api"), svc("web")))
    src.load()
    bad = svc("web").replace("metadata:\n  name: web\n  namespace: shop\n", broken)
    assert bad != svc("web")
    write(path, docs(svc("api"), bad))
    assert src.load() == {API, WEB}
    assert [e.index for e in src.reported] == [1]


def test_an_object_defined_in_two_files_keeps_the_first_and_reports_the_second(src):
    write(src.root / "a.yaml", svc("web", 80))
    write(src.root / "b.yaml", svc("web", 81))
    src.load()
    assert port_of(src.store, WEB) == 80
    (err,) = src.reported
    assert (err.file, err.kind, err.name) == ("b.yaml", "Service", "shop/web")
    assert "already defined by a.yaml (document 0)" in err.reason
    # an edit of the second definition does not reach the store while the first exists
    write(src.root / "b.yaml", svc("web", 82))
    src.load()
    assert port_of(src.store, WEB) == 80


def test_an_object_defined_twice_in_one_file_keeps_the_first(src):
    write(src.root / "a.yaml", docs(svc("web", 80), svc("web", 81)))
    src.load()
    assert port_of(src.store, WEB) == 80
    assert [(e.index, e.name) for e in src.reported] == [(1, "shop/web")]


def test_a_second_pod_of_the_same_name_with_another_service_account_does_not_replace_the_first(src):
    other = pod("a").replace("spec:\n", "spec:\n  serviceAccountName: thief\n")
    write(src.root / "a.yaml", pod("a"))
    src.load()
    key = ObjectKey("Pod", "shop", "a")
    first = src.store.get(key)
    write(src.root / "b.yaml", other)
    src.load()
    assert src.store.get(key) == first
    assert isinstance(first, Pod) and first.service_account == "default"
    assert [e.file for e in src.reported] == ["b.yaml"]


def _load_within(src: Source, seconds: float = 10.0) -> set[ObjectKey]:
    """load(), failing (instead of hanging the test) if it does not return in time."""
    import threading

    out: list[set[ObjectKey]] = []
    t = threading.Thread(target=lambda: out.append(src.load()), daemon=True)
    t.start()
    t.join(seconds)
    assert out, "load() did not return"
    return out[0]


def test_an_owned_file_replaced_by_a_fifo_is_reported_and_its_objects_kept(src):
    import os

    path = write(src.root / "m.yaml", svc("web"))
    src.load()
    path.unlink()
    os.mkfifo(path)
    assert _load_within(src) == {WEB}
    (err,) = src.reported
    assert err.file == "m.yaml" and "not a regular file (a FIFO)" in err.reason


def test_an_oversized_file_is_not_read_and_its_objects_are_kept(tmp_path):
    s = Source(tmp_path)
    s.source = ManifestSource(
        tmp_path, s.store, on_error=s.reported.append, limits=SourceLimits(max_file_bytes=4096)
    )
    path = write(tmp_path / "m.yaml", svc("web"))
    s.load()
    write(path, svc("web") + "#" + "x" * 5000 + "\n")
    assert s.load() == {WEB}
    (err,) = s.reported
    assert "manifest files are limited to 4096 bytes" in err.reason


def test_too_many_objects_in_one_file_are_refused_as_a_whole(tmp_path):
    s = Source(tmp_path)
    s.source = ManifestSource(
        tmp_path, s.store, on_error=s.reported.append, limits=SourceLimits(max_documents=3)
    )
    write(tmp_path / "m.yaml", docs(*(svc(f"s{i}") for i in range(4))))
    assert s.load() == set()
    assert "holds more than 3 objects" in s.reported[0].reason


def test_files_beyond_the_file_limit_are_reported_not_read(tmp_path):
    s = Source(tmp_path)
    s.source = ManifestSource(tmp_path, s.store, on_error=s.reported.append, limits=SourceLimits(max_files=2))
    for name in ("a", "b", "c"):
        write(tmp_path / f"{name}.yaml", svc(name))
    assert {k.name for k in s.load()} == {"a", "b"}
    assert [(e.file, "more than 2 manifest files" in e.reason) for e in s.reported] == [("c.yaml", True)]


@pytest.mark.asyncio
async def test_resync_keeps_the_file_limit(tmp_path):
    """A file beyond the limit that no event told of is reported, not read; once another file goes,
    it is within the limit and read."""
    s = Source(tmp_path)
    s.source = ManifestSource(tmp_path, s.store, on_error=s.reported.append, limits=SourceLimits(max_files=2))
    for name in ("a", "b"):
        write(tmp_path / f"{name}.yaml", svc(name))
    s.load()
    write(tmp_path / "c.yaml", svc("c"))
    await s.source.resync()
    assert {k.name for k in list(s.store.keys())} == {"a", "b"}
    assert [(e.file, "more than 2 manifest files" in e.reason) for e in s.reported] == [("c.yaml", True)]
    (tmp_path / "a.yaml").unlink()
    await s.source.resync()
    assert {k.name for k in list(s.store.keys())} == {"b", "c"}


def test_a_symlink_is_followed_only_inside_the_directory(tmp_path):
    outside = write(tmp_path / "secret.yaml", svc("leak"))
    root = tmp_path / "m"
    write(root / "real" / "web.yaml", svc("web"))
    (root / "inside.yaml").symlink_to(root / "real" / "web.yaml")
    (root / "outside.yaml").symlink_to(outside)
    s = Source(root)
    assert s.load() == {WEB}
    (err,) = [e for e in s.reported if e.file == "outside.yaml"]
    assert "outside the manifest directory; it is not followed" in err.reason


@pytest.mark.asyncio
async def test_files_are_read_and_parsed_off_the_event_loop(src, monkeypatch):
    import threading

    import osm.local.source as source_mod

    threads: list[str] = []
    real = source_mod.parse_manifest

    def parse(*args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(source_mod, "parse_manifest", parse)
    write(src.root / "m.yaml", svc("web"))
    await src.source.reload()
    await src.source.reload_file(src.root / "m.yaml")
    assert src.store.get(WEB) is not None
    assert len(threads) == 2 and threading.main_thread().name not in threads
