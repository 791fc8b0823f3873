"""sinks/http.py on the real ClickHouse: a keep-alive connection the server closed while idle is replaced."""

from __future__ import annotations

import socket

from sinks.http import ClickHouseHTTP


def test_an_insert_after_the_server_dropped_the_idle_connection_goes_through(stack):
    client = ClickHouseHTTP(stack)
    assert client.request("/", b"SELECT 1").strip() == b"1"
    # What ClickHouse does after keep_alive_timeout: the kept connection is shut from the other end.
    client.connection.sock.shutdown(socket.SHUT_RDWR)
    assert client.request("/", b"SELECT 2").strip() == b"2"
    client.close()
