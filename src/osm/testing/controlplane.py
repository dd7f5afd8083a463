"""Run a control plane in a background thread for tests, and start real Envoy sidecars against it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from osm.cmd.controller import Controller, Settings
from osm.local.bootstrap import find_pod, write_bootstrap
from osm.testing.envoy import EnvoyProcess, free_port, next_base_id


class RunningController:
    """A Controller on its own event loop in a daemon thread. Use as a context manager."""

    def __init__(self, settings: Settings, *, start_timeout: float = 15.0) -> None:
        self.settings = settings
        self.controller = Controller(settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="osm-controller", daemon=True)
        self._task: asyncio.Task[None] | None = None
        self._start_timeout = start_timeout
        self.error: BaseException | None = None

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(self.controller.run())
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as e:  # surfaced to the test through .error
            self.error = e
        finally:
            self._loop.close()

    def start(self) -> RunningController:
        self._thread.start()
        waited = asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(self.controller.ready.wait(), self._start_timeout), self._loop
        )
        waited.result(self._start_timeout + 1)
        return self

    @property
    def port(self) -> int:
        return self.controller.port

    def stop(self) -> None:
        if self._task is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(10)

    def __enter__(self) -> RunningController:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sidecar(
    ctrl: RunningController,
    namespace: str,
    name: str,
    workdir: Path,
    *,
    xds: str = "sotw",
    ads_host: str = "127.0.0.1",
) -> EnvoyProcess:
    """Write the pod's bootstrap and start Envoy on loopback (no interception). The caller stops it."""
    out = workdir / f"{namespace}.{name}.{xds}"
    admin = free_port()
    local_dir, state_dir = ctrl.settings.local_dir, ctrl.settings.state_dir
    assert local_dir is not None and state_dir is not None, (
        "sidecars are started for a controller on a manifest directory"
    )
    pod = find_pod(local_dir, namespace, name, state_dir)
    written = write_bootstrap(
        pod,
        state_dir=state_dir,
        out=out,
        ads_host=ads_host,
        ads_port=ctrl.port,
        admin_port=admin,
        xds=xds,
    )
    proc = EnvoyProcess(written.path, admin, next_base_id(), out / "envoy.log")
    proc.start()
    return proc


@contextlib.contextmanager
def sidecars(
    ctrl: RunningController, pods: list[tuple[str, str]], workdir: Path, xds: str = "sotw"
) -> Iterator[dict[tuple[str, str], EnvoyProcess]]:
    procs: dict[tuple[str, str], EnvoyProcess] = {}
    try:
        for ns, name in pods:
            procs[(ns, name)] = start_sidecar(ctrl, ns, name, workdir, xds=xds)
        yield procs
    finally:
        for p in procs.values():
            p.stop()
