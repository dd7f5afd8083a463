from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from osm.demo.resp import (
    NOT_READY,
    RedisClient,
    RedisConnectionError,
    RedisError,
    RedisProtocolError,
    ReplyError,
    RespReader,
    encode_command,
)


def test_encode_command_arrays_of_bulk_strings() -> None:
    assert encode_command("PING") == b"*1\r\n$4\r\nPING\r\n"
    assert encode_command("INCRBY", "books", 12) == b"*3\r\n$6\r\nINCRBY\r\n$5\r\nbooks\r\n$2\r\n12\r\n"
    assert encode_command("SET", "k", b"a\r\nb") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n"
    assert encode_command("SET", "k", "é") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n"
    assert encode_command("SET", "k", "") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
    with pytest.raises(ValueError):
        encode_command()
    with pytest.raises(TypeError):
        encode_command("INCRBY", "k", True)


def _parse_all(data: bytes) -> list[Any]:
    reader = RespReader()
    reader.feed(data)
    out = []
    while (value := reader.gets()) is not NOT_READY:
        out.append(value)
    assert reader.buffered == 0
    return out


def test_reader_types() -> None:
    values = _parse_all(
        b"+PONG\r\n:42\r\n:-7\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n"
        b"*3\r\n:1\r\n$-1\r\n*1\r\n+x\r\n-WRONGTYPE Operation against a key\r\n"
    )
    assert values[:8] == ["PONG", 42, -7, b"hello", b"", None, None, []]
    assert values[8] == [1, None, ["x"]]
    assert isinstance(values[9], ReplyError) and str(values[9]) == "WRONGTYPE Operation against a key"


def test_reader_bulk_may_contain_crlf() -> None:
    assert _parse_all(b"$4\r\na\r\nb\r\n") == [b"a\r\nb"]


def test_reader_split_at_every_byte() -> None:
    data = b"*2\r\n$6\r\nINCRBY\r\n:10\r\n$3\r\nabc\r\n$-1\r\n"
    reader = RespReader()
    out: list[Any] = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        while (value := reader.gets()) is not NOT_READY:
            out.append(value)
    assert out == [[b"INCRBY", 10], b"abc", None]


@pytest.mark.parametrize(
    "data",
    [b"?what\r\n", b":12x\r\n", b"$-5\r\n", b"$3\r\nabcde\r\n", b"*-2\r\n", b"$abc\r\n"],
)
def test_reader_protocol_errors(data: bytes) -> None:
    reader = RespReader()
    reader.feed(data)
    with pytest.raises(RedisProtocolError):
        reader.gets()


def test_client_commands(fake_redis: Any) -> None:
    with RedisClient("127.0.0.1", fake_redis.port, timeout=2) as client:
        assert client.ping() is True
        assert client.get("books") is None
        assert client.incrby("books", 1) == 1
        assert client.incrby("books", 41) == 42
        assert client.get("books") == "42"
        client.set("title", "Le Petit Prince")
        assert client.get("title") == "Le Petit Prince"
        assert client.connects == 1  # one connection kept
    assert fake_redis.commands[2] == [b"INCRBY", b"books", b"1"]


def test_client_error_reply_raises_and_connection_stays_usable(fake_redis: Any) -> None:
    with RedisClient("127.0.0.1", fake_redis.port) as client:
        client.set("title", "not a number")
        with pytest.raises(ReplyError, match="not an integer"):
            client.incrby("title", 1)
        fake_redis.raw_replies.append(b"-ERR injected\r\n")
        with pytest.raises(RedisError, match="ERR injected"):
            client.ping()
        assert client.incrby("books", 3) == 3
        assert client.connects == 1


def test_client_split_reads(fake_redis: Any) -> None:
    fake_redis.split_replies = True
    with RedisClient("127.0.0.1", fake_redis.port) as client:
        assert client.incrby("books", 123456) == 123456
        client.set("k", "x" * 300)
        assert client.get("k") == "x" * 300
        fake_redis.raw_replies.append(b"$-1\r\n")
        assert client.get("k") is None


def test_client_unexpected_reply_type(fake_redis: Any) -> None:
    with RedisClient("127.0.0.1", fake_redis.port) as client:
        fake_redis.raw_replies.append(b"+OK\r\n")
        with pytest.raises(RedisProtocolError):
            client.incrby("books", 1)
        fake_redis.raw_replies.append(b"~garbage\r\n")
        with pytest.raises(RedisProtocolError):
            client.ping()
        assert client.ping() is True  # reconnected after the protocol error
        assert client.connects == 2


def test_client_reconnects_when_server_closes_idle_connection(fake_redis: Any) -> None:
    fake_redis.close_after_reply = True
    with RedisClient("127.0.0.1", fake_redis.port) as client:
        for i in range(1, 5):
            assert client.incrby("books", 1) == i  # stale connection retried once, no double count
        assert fake_redis.get_int("books") == 4
        assert client.connects == 4


def test_client_connection_refused(free_port: int) -> None:
    client = RedisClient("127.0.0.1", free_port, timeout=1)
    with pytest.raises(RedisConnectionError, match="cannot connect"):
        client.ping()
    with pytest.raises(RedisError):  # every failure is a RedisError
        client.incrby("books", 1)


def test_client_timeout_is_not_retried() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog) but never answers
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        client = RedisClient("127.0.0.1", listener.getsockname()[1], timeout=0.2)
        with pytest.raises(RedisConnectionError, match="timed out"):
            client.ping()
        with pytest.raises(RedisConnectionError, match="timed out"):
            client.ping()
        assert client.connects == 2
        client.close()
    finally:
        stop.set()
        t.join(2)
        listener.close()
        for c in accepted:
            c.close()
