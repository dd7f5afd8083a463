"""A packet capture on an interface inside a network namespace (AF_PACKET), for on-the-wire checks."""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass

from osm.local.netops import enter_netns

ETH_P_ALL = 0x0003


@dataclass(frozen=True, slots=True)
class Segment:
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes


def parse_frame(frame: bytes) -> Segment | None:
    """An Ethernet frame carrying IPv4/TCP -> its addresses, ports and payload; anything else -> None."""
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != 6 or len(ip) < ihl + 20:
        return None
    total = struct.unpack("!H", ip[2:4])[0]
    tcp = ip[ihl:total]
    offset = (tcp[12] >> 4) * 4
    sport, dport = struct.unpack("!HH", tcp[:4])
    return Segment(
        socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), sport, dport, bytes(tcp[offset:])
    )


class Sniffer:
    """Captures TCP segments seen on `iface` in `netns` until stop() (bounded by `limit` segments)."""

    def __init__(self, netns: str, iface: str, limit: int = 200_000) -> None:
        self.netns, self.iface, self.limit = netns, iface, limit
        self.segments: list[Segment] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            enter_netns(self.netns)
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as s:
                s.bind((self.iface, 0))
                s.settimeout(0.2)
                self._ready.set()
                while not self._stop.is_set() and len(self.segments) < self.limit:
                    try:
                        frame = s.recv(65535)
                    except TimeoutError:
                        continue
                    seg = parse_frame(frame)
                    if seg is not None:
                        self.segments.append(seg)
        except BaseException as e:  # reported by start()/stop()
            self._error = e
            self._ready.set()

    def start(self) -> Sniffer:
        self._thread.start()
        self._ready.wait(5)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> list[Segment]:
        self._stop.set()
        self._thread.join(5)
        return self.segments
