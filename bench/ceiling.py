"""B5 reference measurements: the grpc.aio transport ceiling and the pure protobuf serialization cost.

`transport_ceiling` starts a bare grpc.aio ADS server (no config computation: one pre-serialized
DiscoveryResponse is fanned out to every stream) in a subprocess pinned to CPU 0, opens N ADS streams from
this process pinned to CPU 1, and times fleet-wide pushes from the trigger to the last stream's ACK. It is
the floor any full push of our ADS server is compared against (B5 "full push <= 1.5x the ceiling").

The server mirrors `osm.envoy.ads.server`: the same SERVER_OPTIONS (incl. max_pending_requests), the same
generic handler with `response_serializer=None`, an async-generator handler fed by a per-stream queue and a
reader task that parses each DiscoveryRequest with protobuf, and mTLS with `require_client_auth=True`.

    .venv/bin/python bench/ceiling.py --streams 250 --payload-kb 100 --tls
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from osm.envoy import wire

ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
ADS_METHOD = f"/{ADS_SERVICE}/StreamAggregatedResources"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
SERVER_CN = "ads.osm-bench.local"
INIT_NONCE = "init"
SERVER_CPU = 0
LOAD_CPU = 1
_SCRIPT = Path(__file__).resolve()
SATURATED = 0.95
CLIENT_PARSE = (
    "wire",
    "protobuf",
)  # load-side utilisation at which the measurement is limited by the load, not the server


# ---------------------------------------------------------------------------------------------- wire reader


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    b = buf[i]
    if b < 0x80:
        return b, i + 1
    result, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _skip(buf: bytes, i: int, wire_type: int) -> int:
    """The offset after the value of a field of `wire_type` starting at `i`."""
    if wire_type == 0:
        return _varint(buf, i)[1]
    if wire_type == 1:
        return i + 8
    if wire_type == 2:
        length, i = _varint(buf, i)
        return i + length
    if wire_type == 5:
        return i + 4
    raise ValueError(f"unsupported wire type {wire_type}")


def response_header(buf: bytes) -> tuple[bytes, bytes, bytes]:
    """(version_info, type_url, nonce) of a serialized DiscoveryResponse; every other field is skipped.

    Singular fields may repeat on the wire (the last one wins), so the whole message is walked; the
    resources are skipped by length, never parsed.
    """
    version = type_url = nonce = b""
    i, n = 0, len(buf)
    while i < n:
        key = buf[i]
        if key < 0x80:
            i += 1
        else:
            key, i = _varint(buf, i)
        field, wire_type = key >> 3, key & 7
        if wire_type != 2:
            i = _skip(buf, i, wire_type)
            continue
        length = buf[i]
        if length < 0x80:
            i += 1
        else:
            length, i = _varint(buf, i)
        end = i + length
        if field == 1:
            version = buf[i:end]
        elif field == 4:
            type_url = buf[i:end]
        elif field == 5:
            nonce = buf[i:end]
        i = end
    if i != n:
        raise ValueError("truncated DiscoveryResponse")
    return version, type_url, nonce


def _protobuf_header(buf: bytes) -> tuple[bytes, bytes, bytes]:
    """`response_header` by a full protobuf (upb) parse; Any bodies are copied, not decoded."""
    from envoy.service.discovery.v3 import discovery_pb2

    m = discovery_pb2.DiscoveryResponse.FromString(buf)
    return m.version_info.encode(), m.type_url.encode(), m.nonce.encode()


def split_payload(payload: bytes) -> tuple[bytes, int]:
    """`payload` without version_info (1) and nonce (5) (stamped per push), and its number of resources."""
    out: list[bytes] = []
    resources = 0
    i, n = 0, len(payload)
    while i < n:
        start = i
        key, i = _varint(payload, i)
        field, wire_type = key >> 3, key & 7
        i = _skip(payload, i, wire_type)
        if i > n:
            raise ValueError("truncated DiscoveryResponse payload")
        if field == 2:
            resources += 1
        if field not in (1, 5):
            out.append(payload[start:i])
    return b"".join(out), resources


def _field(number: int, value: bytes) -> bytes:
    return wire.field_bytes(number, value) if value else b""


def ack_request(version: bytes, type_url: bytes, nonce: bytes) -> bytes:
    """DiscoveryRequest{version_info=1, type_url=4, response_nonce=5}: the ACK of a response."""
    return _field(1, version) + _field(4, type_url) + _field(5, nonce)


# ---------------------------------------------------------------------------------------- process helpers


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (thousands of sockets); return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_mb(pid: int) -> float:
    """VmRSS of `pid` in MiB (from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def set_all_threads(cpus: set[int]) -> None:
    """sched_setaffinity on every thread of this process (pid 0 would only pin the calling thread)."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            os.sched_setaffinity(int(tid), cpus)


def _can_pin() -> bool:
    return {SERVER_CPU, LOAD_CPU} <= os.sched_getaffinity(0)


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


# ------------------------------------------------------------------------------------------ server process


class _Stream:
    __slots__ = ("acked", "connected", "queue")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.acked: set[str] = set()  # nonces of the current push
        self.connected = False


class _BareServer:
    """The server side: shared pre-serialized response bytes, one queue per stream, ACK accounting.

    A push sends every message of `messages` ((body, type_url) pairs) to every stream and ends when each
    stream has ACKed each of them."""

    def __init__(self, messages: list[tuple[bytes, str]]) -> None:
        self.messages = messages
        self.init = wire.discovery_response("0", messages[0][1], INIT_NONCE, [])
        self.streams: set[_Stream] = set()
        self.connected = 0
        self.all_connected = asyncio.Event()
        self.expected = 0
        self.t_first_request: float | None = None
        self.t_all_connected: float | None = None
        self.nonces: frozenset[str] = frozenset()
        self.pending = 0
        self.done = asyncio.Event()
        self.version = 0
        self.bad_requests = 0

    async def handler(self, requests: AsyncIterator[bytes], context: Any) -> None:
        # Written as the ADS server writes (context.write from a coroutine handler), the cheaper way.
        st = _Stream()
        self.streams.add(st)
        reader = asyncio.create_task(self._read(requests, st))
        try:
            while (item := await st.queue.get()) is not None:
                await context.write(item)
        finally:
            reader.cancel()
            self.streams.discard(st)
            if st.connected:
                self.connected -= 1

    async def _read(self, requests: AsyncIterator[bytes], st: _Stream) -> None:
        from envoy.service.discovery.v3 import discovery_pb2

        parse = discovery_pb2.DiscoveryRequest.FromString
        try:
            async for raw in requests:
                req = parse(raw)
                nonce = req.response_nonce
                if not nonce:
                    if self.t_first_request is None:
                        self.t_first_request = time.monotonic()
                    st.queue.put_nowait(self.init)
                elif nonce == INIT_NONCE:
                    if not st.connected:
                        st.connected = True
                        self.connected += 1
                        if self.connected >= self.expected > 0 and not self.all_connected.is_set():
                            self.t_all_connected = time.monotonic()
                            self.all_connected.set()
                elif nonce in self.nonces and nonce not in st.acked:
                    st.acked.add(nonce)
                    self.pending -= 1
                    if self.pending == 0:
                        self.done.set()
                else:
                    self.bad_requests += 1
        except asyncio.CancelledError:
            raise
        except Exception:  # the client went away
            pass
        finally:
            st.queue.put_nowait(None)

    async def wait_connected(self, n: int, limit_s: float) -> dict[str, Any]:
        self.expected = n
        if self.connected >= n and not self.all_connected.is_set():
            self.t_all_connected = time.monotonic()
            self.all_connected.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_connected.wait(), limit_s)
        return {
            "connected": self.connected,
            "streams": len(self.streams),
            "t_first_request": self.t_first_request,
            "t_all_connected": self.t_all_connected,
        }

    async def push(self, limit_s: float) -> dict[str, Any]:
        cpu0 = _cpu_seconds()
        t0 = time.monotonic()
        self.version += 1
        # The same bytes objects for every stream (as the ADS server shares bytes), one nonce per message.
        nonces = [f"push-{self.version}-{j}" for j in range(len(self.messages))]
        msgs = [
            wire.field_str(1, str(self.version)) + body + wire.field_str(5, nonce)
            for (body, _), nonce in zip(self.messages, nonces, strict=True)
        ]
        live = [s for s in self.streams if s.connected]
        self.nonces, self.pending, self.done = frozenset(nonces), len(live) * len(msgs), asyncio.Event()
        for s in live:
            s.acked = set()
            for msg in msgs:
                s.queue.put_nowait(msg)
        t_fanout = time.monotonic() - t0
        timed_out = False
        if live:
            try:
                await asyncio.wait_for(self.done.wait(), limit_s)
            except TimeoutError:
                timed_out = True
        elapsed = time.monotonic() - t0
        cpu = _cpu_seconds() - cpu0
        return {
            "nonce": nonces[-1],
            "streams": len(live),
            "acked": sum(1 for s in live if len(s.acked) == len(msgs)),
            "timed_out": timed_out,
            "elapsed_s": elapsed,
            "fanout_s": t_fanout,
            "server_cpu_s": cpu,
            "resp_bytes": sum(len(m) for m in msgs),
            "t_trigger": t0,
        }


async def _serve(workdir: Path) -> None:
    import grpc

    from osm.envoy.ads.server import SERVER_OPTIONS, server_credentials

    cfg = json.loads((workdir / "config.json").read_text())
    bare = _BareServer(
        [((workdir / f"body-{j}.bin").read_bytes(), t) for j, t in enumerate(cfg["type_urls"])]
    )
    server = grpc.aio.server(options=SERVER_OPTIONS)
    handler = grpc.stream_stream_rpc_method_handler(bare.handler, response_serializer=None)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(ADS_SERVICE, {"StreamAggregatedResources": handler}),)
    )
    if cfg["tls"]:
        creds = server_credentials(
            (workdir / "server.crt").read_bytes(),
            (workdir / "server.key").read_bytes(),
            (workdir / "ca.crt").read_bytes(),
        )
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    await server.start()

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"ready": True, "port": port, "pid": os.getpid(), "affinity": sorted(os.sched_getaffinity(0))})
    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "wait_connected":
                reply(await bare.wait_connected(int(cmd["n"]), float(cmd["timeout"])))
            elif op == "push":
                reply(await bare.push(float(cmd["timeout"])))
            elif op == "gc":
                gc.collect()
                reply({"ok": True, "bad_requests": bare.bad_requests})
            elif op == "quit":
                break
            else:
                reply({"error": f"unknown op {op!r}"})
    finally:
        for s in list(bare.streams):
            s.queue.put_nowait(None)
        await server.stop(0)
        reply({"bye": True})


def serve_main(workdir: Path, cpu: int | None) -> None:
    """Entry point of the server subprocess."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # before grpc starts any thread: they all inherit it
    raise_nofile_limit()
    asyncio.run(_serve(workdir))


# ---------------------------------------------------------------------------------------- load side


class _Control:
    """JSON lines over the server's stdin/stdout; one request at a time."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self.proc = proc
        self.stderr_path = stderr_path

    def _stderr_tail(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    async def read(self, wait_s: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), wait_s)
        except TimeoutError:
            raise TimeoutError(f"ceiling server did not answer within {wait_s:.0f} s") from None
        if not line:
            raise RuntimeError(f"ceiling server exited: {self._stderr_tail()}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"ceiling server: {reply['error']}")
        return reply

    async def call(self, wait_s: float, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        return await self.read(wait_s)


class _Load:
    """The simulated proxies: N ADS streams that ACK every response."""

    def __init__(self, n: int, type_url: str, client_parse: str) -> None:
        self.type_url = type_url.encode()
        self.header = response_header if client_parse == "wire" else _protobuf_header
        self.responses = [0] * n
        self.rx_bytes = 0
        self.errors: list[BaseException] = []

    async def stream(self, channel: Any, i: int) -> None:
        import grpc
        from envoy.config.core.v3 import base_pb2
        from envoy.service.discovery.v3 import discovery_pb2

        call = channel.stream_stream(ADS_METHOD, request_serializer=None, response_deserializer=None)()
        node = base_pb2.Node(id=f"{i:08d}-bench.sidecar.sa-{i}.bench", cluster=f"sa-{i}.bench")
        try:
            first = discovery_pb2.DiscoveryRequest(node=node, type_url=self.type_url.decode())
            await call.write(first.SerializeToString())
            while (resp := await call.read()) is not grpc.aio.EOF:
                version, type_url, nonce = self.header(resp)
                if nonce != b"init":
                    self.rx_bytes += len(resp)
                self.responses[i] += 1  # before the ACK: the server answers PUSH only after every ACK
                await call.write(ack_request(version, type_url or self.type_url, nonce))
        except asyncio.CancelledError:
            call.cancel()
            raise
        except Exception as e:
            self.errors.append(e)
            raise

    async def stream_h2(self, port: int, ctx: Any, i: int) -> None:
        """The same stream on bench/h2client.py: each response is ACKed in the connection's callback."""
        from envoy.config.core.v3 import base_pb2
        from envoy.service.discovery.v3 import discovery_pb2

        from bench import h2client

        conns: list[h2client.GrpcStream] = []

        def on_message(resp: bytes) -> None:
            version, type_url, nonce = self.header(resp)
            if nonce != b"init":
                self.rx_bytes += len(resp)
            self.responses[i] += 1
            conns[0].send(ack_request(version, type_url or self.type_url, nonce))

        node = base_pb2.Node(id=f"{i:08d}-bench.sidecar.sa-{i}.bench", cluster=f"sa-{i}.bench")
        try:
            conns.append(
                await h2client.open_stream(
                    "127.0.0.1", port, ctx, ADS_METHOD, on_message, server_name=SERVER_CN
                )
            )
            conns[0].send(
                discovery_pb2.DiscoveryRequest(node=node, type_url=self.type_url.decode()).SerializeToString()
            )
            reason = await conns[0].ended
            if conns[0].status != 0:
                raise h2client.StreamEnded(reason)
        except asyncio.CancelledError:
            if conns:
                conns[0].close()
            raise
        except Exception as e:
            self.errors.append(e)
            raise


def _issue_certs(n_clients: int, tls: bool, workdir: Path) -> list[tuple[bytes, bytes]]:
    """CA + server cert into `workdir`; one distinct client (key, cert) per connection."""
    if not tls:
        return []
    from osm.certificate.tresor import TresorCA

    now = datetime.now(UTC)
    ca = TresorCA.create(now=now)
    srv = ca.issue(SERVER_CN, timedelta(days=1), now=now)
    for name, data in (
        ("server.crt", srv.cert_pem),
        ("server.key", srv.key_pem),
        ("ca.crt", ca.root_cert_pem),
    ):
        path = workdir / name
        path.write_bytes(data)
        path.chmod(0o600)
    clients = []
    for i in range(n_clients):
        c = ca.issue(f"{i:08d}-bench.sidecar.sa-{i}.bench.cluster.local", timedelta(days=1), now=now)
        clients.append((c.key_pem, c.cert_pem))
    return clients


def _channels(port: int, n: int, clients: list[tuple[bytes, bytes]], ca_pem: bytes | None) -> list[Any]:
    import grpc

    target = f"127.0.0.1:{port}"
    out = []
    for i in range(n):
        # A local subchannel pool and a unique arg: every channel opens its own TCP (+TLS) connection.
        opts: list[tuple[str, Any]] = [
            ("grpc.use_local_subchannel_pool", 1),
            ("osm.bench.channel_id", i),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ]
        if ca_pem is None:
            out.append(grpc.aio.insecure_channel(target, options=opts))
        else:
            key, cert = clients[i]
            creds = grpc.ssl_channel_credentials(ca_pem, key, cert)
            opts.append(("grpc.ssl_target_name_override", SERVER_CN))
            out.append(grpc.aio.secure_channel(target, creds, options=opts))
    return out


async def _close_channels(channels: list[Any], wait_s: float) -> None:
    if channels:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(c.close() for c in channels), return_exceptions=True), wait_s
            )


async def transport_ceiling(
    n_streams: int,
    payload: bytes | Sequence[bytes],
    *,
    tls: bool,
    channels: int | None = None,
    repeats: int = 3,
    pin: bool = True,
    client_parse: str = "wire",
    client: str = "h2",
) -> dict[str, Any]:
    """Time `repeats` pushes of `payload` (a serialized DiscoveryResponse, or several sent in turn, each
    ACKed) to `n_streams` ADS streams.

    One connection per stream unless `channels` is given (streams are then spread over that many
    connections). With `tls`, mTLS with a TresorCA server cert and one distinct client cert per connection.
    Per push: trigger -> last ACK (server clock), server CPU-s, load CPU-s and utilisation.
    `client_parse` picks how the load side reads version/nonce: "wire" (a Python field walk, ~70 us per
    100 KB response) or "protobuf" (a full upb parse, ~7 us: the Any bodies are only copied).
    `client` is the load's gRPC client: "h2" (bench/h2client.py, as the simulated proxies use by default;
    one stream per connection) or "grpc" (grpc's aio client).
    """
    if n_streams < 1 or repeats < 1:
        raise ValueError("n_streams and repeats must be >= 1")
    if client_parse not in CLIENT_PARSE:
        raise ValueError(f"client_parse must be one of {CLIENT_PARSE}")
    n_conns = min(channels or n_streams, n_streams)
    if client not in ("h2", "grpc"):
        raise ValueError(f"client must be h2 or grpc, not {client!r}")
    if client == "h2" and n_conns != n_streams:
        raise ValueError("the h2 client opens one stream per connection: shared channels need client='grpc'")
    payloads = [payload] if isinstance(payload, bytes) else list(payload)
    bodies = [split_payload(p) for p in payloads]
    n_resources = sum(n for _, n in bodies)
    type_urls = [response_header(p)[1].decode() or CLUSTER_TYPE for p in payloads]
    type_url = type_urls[0]
    raise_nofile_limit()
    pinned = pin and _can_pin()
    orig_affinity = os.sched_getaffinity(0)
    workdir = Path(tempfile.mkdtemp(prefix="osm-ceiling-"))
    proc: asyncio.subprocess.Process | None = None
    chans: list[Any] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for j, (body, _) in enumerate(bodies):
            (workdir / f"body-{j}.bin").write_bytes(body)
        (workdir / "config.json").write_text(json.dumps({"tls": tls, "type_urls": type_urls}))
        t_certs = time.monotonic()
        clients = _issue_certs(n_conns, tls, workdir)
        certs_s = time.monotonic() - t_certs
        stderr_path = workdir / "server.stderr"
        with stderr_path.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(_SCRIPT),
                "--serve",
                str(workdir),
                *(["--cpu", str(SERVER_CPU)] if pinned else []),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
        ctl = _Control(proc, stderr_path)
        ready = await ctl.read(30)
        if pinned:
            set_all_threads({LOAD_CPU})
        await ctl.call(10, op="gc")
        rss_before = rss_mb(proc.pid)

        load = _Load(n_streams, type_url, client_parse)
        ca_pem = (workdir / "ca.crt").read_bytes() if tls else None
        t_start = time.monotonic()
        if client == "h2":
            from bench.h2client import client_context

            contexts: list[Any] = (
                [client_context(ca_pem, cert, key) for key, cert in clients] if ca_pem else [None] * n_streams
            )
            t_start = time.monotonic()
            tasks = [
                asyncio.create_task(load.stream_h2(ready["port"], contexts[i], i)) for i in range(n_streams)
            ]
        else:
            chans = _channels(ready["port"], n_conns, clients, ca_pem)
            tasks = [asyncio.create_task(load.stream(chans[i % n_conns], i)) for i in range(n_streams)]
        connect_timeout = 30 + 0.05 * n_streams
        waiter = asyncio.create_task(
            ctl.call(connect_timeout + 5, op="wait_connected", n=n_streams, timeout=connect_timeout)
        )
        done, _ = await asyncio.wait({waiter, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            failed = next(t for t in done if t is not waiter)
            raise RuntimeError(f"a stream ended while connecting: {failed.exception()!r}")
        conn = waiter.result()
        if conn["connected"] < n_streams:
            first = repr(load.errors[0]) if load.errors else "none"
            raise RuntimeError(
                f"only {conn['connected']}/{n_streams} streams connected in {connect_timeout:.0f} s "
                f"({len(load.errors)} stream errors, first: {first})"
            )
        connect_s = conn["t_all_connected"] - t_start
        await ctl.call(10, op="gc")
        rss_connected = rss_mb(proc.pid)

        push_timeout = 30 + n_streams * sum(len(b) for b, _ in bodies) / 20e6
        pushes = []
        for _ in range(repeats):
            await asyncio.sleep(0.1)
            rx0, cpu0, t0 = load.rx_bytes, _cpu_seconds(), time.monotonic()
            res = await ctl.call(push_timeout + 10, op="push", timeout=push_timeout)
            wall, load_cpu = time.monotonic() - t0, _cpu_seconds() - cpu0
            res["rx_bytes"] = load.rx_bytes - rx0
            res["load_cpu_s"] = load_cpu
            res["load_util"] = load_cpu / wall if wall > 0 else 0.0
            res["server_util"] = res["server_cpu_s"] / res["elapsed_s"] if res["elapsed_s"] > 0 else 0.0
            res["load_saturated"] = res["load_util"] >= SATURATED
            pushes.append(res)
            if res["timed_out"]:
                break
        gc_reply = await ctl.call(10, op="gc")
        rss_after = rss_mb(proc.pid)
        if load.errors:
            raise RuntimeError(f"{len(load.errors)} stream errors, first: {load.errors[0]!r}")

        times = [p["elapsed_s"] for p in pushes]
        resp_bytes = pushes[-1]["resp_bytes"]
        median = statistics.median(times)
        return {
            "n_streams": n_streams,
            "connections": n_conns,
            "tls": tls,
            "repeats": repeats,
            "client_parse": client_parse,
            "client": client,
            "pinned": {"server_cpu": SERVER_CPU, "load_cpu": LOAD_CPU} if pinned else None,
            "server_affinity": ready["affinity"],
            "type_url": type_url,
            "messages_per_push": [
                {"type_url": t, "bytes": len(p)} for t, p in zip(type_urls, payloads, strict=True)
            ],
            "payload_bytes": sum(len(p) for p in payloads),
            "resources": n_resources,
            "resp_bytes": resp_bytes,
            "bytes_per_push": resp_bytes * n_streams,
            "cert_issue_s": certs_s,
            "connect_s": connect_s,
            "push_s": _stats(times),
            "server_cpu_s": _stats([p["server_cpu_s"] for p in pushes]),
            "server_util": _stats([p["server_util"] for p in pushes]),
            "load_cpu_s": _stats([p["load_cpu_s"] for p in pushes]),
            "load_util": _stats([p["load_util"] for p in pushes]),
            "load_saturated": any(p["load_saturated"] for p in pushes),
            "mb_per_s": resp_bytes * n_streams / median / 1e6 if median > 0 else None,
            "all_acked": all(p["acked"] == n_streams and not p["timed_out"] for p in pushes)
            and len(pushes) == repeats,
            "responses_per_stream": _stats([float(c) for c in load.responses]),
            "unexpected_requests": gc_reply.get("bad_requests", 0),
            "rss_mb": {"before": rss_before, "connected": rss_connected, "after": rss_after},
            "kib_per_stream": (rss_connected - rss_before) * 1024 / n_streams,
            "pushes": pushes,
        }
    finally:
        for t in tasks:
            t.cancel()
        if tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        await _close_channels(chans, 10)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(Exception):
                assert proc.stdin is not None
                proc.stdin.write(b'{"op": "quit"}\n')
                await proc.stdin.drain()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 5)
        if pinned:
            set_all_threads(orig_affinity)
        shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------------------------------------------------ serialization


def serialization_cost(
    resources: Sequence[Any], repeats: int = 5, *, build: Callable[[], Sequence[Any]] | None = None
) -> dict[str, Any]:
    """Pure protobuf cost of `SerializeToString(deterministic=True)` over `resources` (seconds, summed).

    With `build`, also the cost of building the messages (a callable returning a fresh list).
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    times: list[float] = []
    total = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        total = sum(len(r.SerializeToString(deterministic=True)) for r in resources)
        times.append(time.perf_counter() - t0)
    out: dict[str, Any] = {
        "count": len(resources),
        "bytes": total,
        "serialize_s": _stats(times),
        "serialize_us_per_resource": statistics.median(times) / len(resources) * 1e6 if resources else None,
    }
    if build is not None:
        build_times: list[float] = []
        built = 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            built = len(build())
            build_times.append(time.perf_counter() - t0)
        out["build_count"] = built
        out["build_s"] = _stats(build_times)
        out["build_us_per_resource"] = statistics.median(build_times) / built * 1e6 if built else None
    return out


# ------------------------------------------------------------------------------------------ payloads


def mesh_clusters(count: int) -> list[Any]:
    """`count` upstream clusters built by our CDS generator (EDS over ADS, mTLS via SDS), ~460 B each."""
    from osm.envoy.cds.clusters import upstream_cluster
    from osm.models.identity import ServiceIdentity
    from osm.models.service import MeshService
    from osm.models.trafficpolicy import TLSSettings, UpstreamCluster

    client = ServiceIdentity("bench", "client")
    tls = TLSSettings("TLSv1_2", "TLSv1_3")
    return [
        upstream_cluster(
            UpstreamCluster(MeshService(f"ns-{i % 50}", f"svc-{i}", 8080, 8080, "http"), (), ()),
            client,
            tls,
            "cluster.local",
        )
        for i in range(count)
    ]


def cluster_payload(target_bytes: int, type_url: str = CLUSTER_TYPE) -> tuple[bytes, list[Any]]:
    """A DiscoveryResponse of about `target_bytes` (of `type_url`; the resources are clusters either way:
    the load side never decodes them), built once around pre-serialized Any resources."""
    from osm.envoy import wire

    per = len(wire.any_bytes(CLUSTER_TYPE, mesh_clusters(1)[0].SerializeToString(deterministic=True))) + 3
    clusters = mesh_clusters(max(1, round(target_bytes / per)))
    anys = [wire.any_bytes(CLUSTER_TYPE, c.SerializeToString(deterministic=True)) for c in clusters]
    return wire.discovery_response("", type_url, "", anys), clusters


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=250)
    ap.add_argument("--payload-kb", type=float, default=100.0)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument(
        "--channels", type=int, default=None, help="share this many connections (default: one each)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument(
        "--client-parse",
        choices=CLIENT_PARSE,
        default="wire",
        help="how the load reads version/nonce: the Python wire reader, or a full upb parse",
    )
    ap.add_argument("--client", choices=("h2", "grpc"), default="h2", help="the load's gRPC client")
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve is not None:
        serve_main(args.serve, args.cpu)
        return 0
    payload, clusters = cluster_payload(int(args.payload_kb * 1000))
    result = asyncio.run(
        transport_ceiling(
            args.streams,
            payload,
            tls=args.tls,
            channels=args.channels,
            repeats=args.repeats,
            pin=not args.no_pin,
            client_parse=args.client_parse,
            client=args.client,
        )
    )
    result["serialization"] = serialization_cost(clusters, build=lambda: mesh_clusters(len(clusters)))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
