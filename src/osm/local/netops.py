"""Network namespaces, links and NAT for the local runtime (the one owner of `ip`/`iptables` calls)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

from osm.local.netplan import BRIDGE, NODE_IP, POD_CIDR

NETNS_ETC = Path("/etc/netns")
_CLONE_NEWNET = 0x40000000


class NetError(RuntimeError):
    pass


def run(*args: str, input: str | None = None, timeout: float = 15.0, check: bool = True) -> str:
    try:
        cp = subprocess.run(
            list(args), input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise NetError(f"{' '.join(args)}: timed out after {timeout}s") from None
    if check and cp.returncode != 0:
        raise NetError(f"{' '.join(args)}: {cp.stderr.strip() or f'exit {cp.returncode}'}")
    return cp.stdout


def run_rc(*args: str, timeout: float = 15.0) -> int:
    """Exit code of a command (-1 when it timed out or could not start)."""
    try:
        return subprocess.run(list(args), capture_output=True, timeout=timeout, check=False).returncode
    except (subprocess.TimeoutExpired, OSError):
        return -1


def list_netns() -> list[str]:
    return [line.split()[0] for line in run("ip", "netns", "list", check=False).splitlines() if line.strip()]


def netns_pids(name: str) -> list[int]:
    return [int(x) for x in run("ip", "netns", "pids", name, check=False).split() if x.isdigit()]


def create_node(name: str) -> None:
    """The node namespace: a bridge with the node IP, forwarding on, and an empty service NAT table."""
    run("ip", "netns", "add", name)
    run("ip", "-n", name, "link", "set", "lo", "up")
    run("ip", "-n", name, "link", "add", BRIDGE, "type", "bridge")
    run("ip", "-n", name, "addr", "add", f"{NODE_IP}/{POD_CIDR.prefixlen}", "dev", BRIDGE)
    run("ip", "-n", name, "link", "set", BRIDGE, "up")
    run("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.ip_forward=1")


# A pod's resolver: the mesh's names are in its hosts file, and the node has no DNS server a pod can
# reach, so any other name must fail at once (nothing listens on the pod's own port 53) rather than
# wait for the host's nameserver to time out (which stalls, for one, Python's http.server at start).
POD_RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"


def create_pod(node: str, pod: str, index: int, ip: str, hosts: str) -> None:
    """A pod namespace with eth0 on the node's bridge, its address, a default route, its hosts file and
    its resolv.conf."""
    write_hosts(pod, hosts)
    (NETNS_ETC / pod / "resolv.conf").write_text(POD_RESOLV_CONF)
    run("ip", "netns", "add", pod)
    host_if = f"vp{index}"
    run("ip", "-n", node, "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", pod)
    run("ip", "-n", node, "link", "set", host_if, "master", BRIDGE, "up")
    run("ip", "-n", pod, "link", "set", "lo", "up")
    run("ip", "-n", pod, "addr", "add", f"{ip}/{POD_CIDR.prefixlen}", "dev", "eth0")
    run("ip", "-n", pod, "link", "set", "eth0", "up")
    run("ip", "-n", pod, "route", "add", "default", "via", NODE_IP)


def write_hosts(netns: str, content: str) -> None:
    """/etc/netns/<ns>/hosts, which `ip netns exec` mounts over /etc/hosts.

    Written in place, since processes already running have the file itself mounted and would keep an old
    one that was replaced. A reader (every name lookup) must never see it half written: truncating first
    would leave a window in which every lookup fails. So the new text goes in with a single write at
    offset 0 that covers all of the old text, padded with a comment line when shorter; the file never
    shrinks."""
    d = NETNS_ETC / netns
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / "hosts", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        old = os.pread(fd, max(os.fstat(fd).st_size, 1), 0)
        new = padded_hosts(content.encode(), len(old))
        if new != old:
            os.pwrite(fd, new, 0)
    finally:
        os.close(fd)


def padded_hosts(text: bytes, size: int) -> bytes:
    """`text` lengthened to at least `size` bytes by a trailing comment line (or an empty line)."""
    if not text.endswith(b"\n"):
        text += b"\n"
    short = size - len(text)
    if short <= 0:
        return text
    return text + (b"\n" if short == 1 else b"#" + b" " * (short - 2) + b"\n")


def iptables_restore(netns: str, rules: str, *, noflush: bool) -> None:
    args = ["ip", "netns", "exec", netns, "iptables-restore", *(["--noflush"] if noflush else [])]
    run(*args, input=rules)


def kill_netns_processes(name: str) -> None:
    for pid in netns_pids(name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def delete_netns(name: str) -> None:
    kill_netns_processes(name)
    if name in list_netns():
        run("ip", "netns", "del", name, check=False)
    shutil.rmtree(NETNS_ETC / name, ignore_errors=True)


def cleanup(prefix: str) -> list[str]:
    """Remove every namespace (and its processes and /etc/netns dir) whose name starts with `prefix`."""
    gone = []
    names = set(list_netns()) | ({p.name for p in NETNS_ETC.iterdir()} if NETNS_ETC.is_dir() else set())
    for name in sorted(names):
        if name.startswith(prefix):
            delete_netns(name)
            gone.append(name)
    return gone


def enter_netns(netns: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetError(f"setns {netns}: {os.strerror(err)}")
    finally:
        os.close(fd)


def connect_in_netns(netns: str, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection made from inside `netns` (e.g. to its loopback), usable from this process.

    A short-lived thread enters the namespace (setns affects only the calling thread) and connects; the
    socket stays in that namespace after the thread ends.
    """
    result: list[socket.socket | BaseException] = []

    def work() -> None:
        try:
            enter_netns(netns)
            result.append(socket.create_connection((host, port), timeout=timeout))
        except BaseException as e:  # handed to the caller
            result.append(e)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout + 2)
    if not result:
        raise TimeoutError(f"connect to {host}:{port} in {netns} timed out")
    got = result[0]
    if isinstance(got, BaseException):
        raise got
    return got


def http_get_in_netns(
    netns: str,
    port: int,
    path: str,
    timeout: float = 1.0,
    *,
    host: str = "127.0.0.1",
    https: bool = False,
    headers: Sequence[tuple[str, str]] = (),
) -> int:
    """Status of GET http(s)://<host>:<port><path> made inside `netns`; 0 when there is no answer.
    HTTPS does not verify the server's certificate (as the kubelet's probes do not)."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}Connection: close\r\n\r\n".encode()
    try:
        with connect_in_netns(netns, host, port, timeout) as raw:
            raw.settimeout(timeout)
            if https:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                with ctx.wrap_socket(raw, server_hostname=None) as s:
                    s.sendall(request)
                    head = s.recv(64)
            else:
                raw.sendall(request)
                head = raw.recv(64)
    except (OSError, NetError, TimeoutError):
        return 0
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


MAX_FETCH_BYTES = 64 * 1024 * 1024


def http_fetch_in_netns(
    netns: str,
    port: int,
    path: str,
    *,
    host: str = "127.0.0.1",
    host_header: str = "",
    timeout: float = 10.0,
    method: str = "GET",
) -> tuple[int, bytes]:
    """(status, body) of `method` (GET, or a POST without a body) http://<host>:<port><path> made inside
    `netns` (the connection closed after it), at most MAX_FETCH_BYTES of it."""
    length = "Content-Length: 0\r\n" if method == "POST" else ""
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: {host_header or host}:{port}\r\n{length}Connection: close\r\n\r\n"
    ).encode()
    chunks: list[bytes] = []
    size = 0
    with connect_in_netns(netns, host, port, timeout) as s:
        s.settimeout(timeout)
        s.sendall(request)
        while chunk := s.recv(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_FETCH_BYTES:
                raise NetError(f"the answer to {method} {path} exceeds {MAX_FETCH_BYTES} bytes")
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise NetError(f"{method} {path}: not an HTTP answer")
    if b"\r\ntransfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    return int(parts[1]), body


def dechunk(body: bytes) -> bytes:
    """An HTTP/1.1 chunked body, joined."""
    out: list[bytes] = []
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            raise NetError("a malformed chunked body") from None
        if size == 0:
            break
        out.append(rest[:size])
        body = rest[size + 2 :]
    return b"".join(out)


def exec_args(netns: str, argv: Sequence[str], uid: int | None) -> list[str]:
    user = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"] if uid is not None else []
    return ["ip", "netns", "exec", netns, *user, *argv]
