from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from osm.local.source import DocumentError, ManifestSource
from osm.models.k8s import Pod, Service
from osm.state.decode import ObjectKey
from osm.state.store import Event, EventType, Store

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


def test_pods_without_a_proxy_uuid_get_a_stable_one(tmp_path):
    write(tmp_path / "pods.yaml", docs(pod("a"), pod("b"), pod("c", uuid_label="given")))

    def uuids() -> dict[str, str]:
        s = Source(tmp_path)
        s.load()
        pods = [s.store.get(ObjectKey("Pod", "shop", n)) for n in "abc"]
        return {p.meta.name: p.proxy_uuid for p in pods if isinstance(p, Pod)}

    first, second = uuids(), uuids()
    assert first == second
    assert first["c"] == "given"
    assert first["a"] != first["b"]
    assert uuid.UUID(first["a"]) and uuid.UUID(first["b"])


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
    write(src.root / "a.yaml", svc("web", 80))
    b = write(src.root / "b.yaml", svc("web", 81))
    src.load()
    assert port_of(src.store, WEB) == 81
    b.unlink()
    src.source.load_file(b)  # what watch() does for a deleted file
    assert port_of(src.store, WEB) == 80


# --- watching --------------------------------------------------------------------------------------


async def eventually(pred: Callable[[], bool], within: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not pred():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def write_until(writes: list[tuple[Path, str]], pred: Callable[[], bool], within: float = 5.0) -> bool:
    """Write, and write again until `pred` holds: the watcher may not be listening yet."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        for path, text in writes:
            write(path, text)
        if await eventually(pred, 0.25):
            return True
    return False


@asynccontextmanager
async def watching(source: ManifestSource) -> AsyncIterator[None]:
    task = asyncio.create_task(source.watch(debounce_ms=20))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        assert task.done()


@pytest.mark.asyncio
async def test_watch_applies_written_and_deleted_files(src):
    src.load()
    path = src.root / "sub" / "m.yaml"
    async with watching(src.source):
        assert await write_until([(path, svc("web", 80))], lambda: port_of(src.store, WEB) == 80)
        assert await write_until([(path, svc("web", 81))], lambda: port_of(src.store, WEB) == 81)
        path.unlink()
        assert await eventually(lambda: src.store.get(WEB) is None)


@pytest.mark.asyncio
async def test_watch_ignores_hidden_files_like_load_does(src):
    (src.root / "..data").mkdir()
    src.load()
    hidden = ObjectKey("Service", "shop", "hidden")
    async with watching(src.source):
        written = [(src.root / "..data" / "x.yaml", svc("hidden")), (src.root / "m.yaml", svc("web"))]
        assert await write_until(written, lambda: src.store.get(WEB) is not None)
    assert src.store.get(hidden) is None


@pytest.mark.asyncio
async def test_watch_with_a_relative_root_deletes_objects_of_a_deleted_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "mesh" / "m.yaml", svc("web", 80))
    src = Source(Path("mesh"))
    src.load()
    async with watching(src.source):
        assert await write_until([(path, svc("web", 81))], lambda: port_of(src.store, WEB) == 81)
        path.unlink()
        assert await eventually(lambda: src.store.get(WEB) is None, within=2)
